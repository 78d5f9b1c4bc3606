"""Engines: what runs each compiled component of a bundle, chosen per component by the manifest.

The one table of engines, their probes and loaders is `edge.engines.table`. Heavy dependencies
(torch, onnxruntime, torch-tensorrt, bitsandbytes) are imported only when an engine is probed or
used, so the manifest schema can name engines without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch


class ComponentRunner(Protocol):
    """A compiled component: tensors in (moved and cast as it needs), one tensor out, on the
    device it ran on (the next component moves it only if it runs elsewhere)."""

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor: ...


def engine_unavailable_reason(name: str) -> str | None:
    """None when engine `name` (of `edge.engines.table.ENGINES`) can run here, else why not."""
    from edge.engines.table import ENGINES, probe

    if name not in ENGINES:
        return f"unknown engine '{name}' (known: {', '.join(ENGINES)})"
    result = probe(name)
    return None if result.available else f"engine {name} {result.reason}"
