"""Engines: what runs each compiled component of a bundle, chosen per component by the manifest.

One explicit table maps an engine name to its loader and the extra that provides it. Heavy
dependencies are imported only when an engine is used.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Protocol

import torch

from edge.errors import BundleError


class ComponentRunner(Protocol):
    """A compiled component: tensors in, one float32 tensor out."""

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class EngineInfo:
    name: str
    module: str  # the import that proves the engine is installed
    extra: str  # pip extra (or instructions) that provides it
    needs_cuda: bool


ENGINES = {
    "torch": EngineInfo("torch", "torch", "base install", needs_cuda=False),
    "onnxruntime": EngineInfo("onnxruntime", "onnxruntime", "pip install 'tinyvla-edge[quantize]' (or onnxruntime-gpu on Jetson)", needs_cuda=False),
    "tensorrt": EngineInfo("tensorrt", "torch_tensorrt", "torch-tensorrt from the JetPack wheel index (tinyvla-edge install)", needs_cuda=True),
    "bitsandbytes": EngineInfo("bitsandbytes", "bitsandbytes", "bitsandbytes built for this GPU (tinyvla-edge install)", needs_cuda=True),
}


def engine_unavailable_reason(name: str) -> str | None:
    """None when engine `name` can run here, else why not (naming what provides it)."""
    info = ENGINES.get(name)
    if info is None:
        return f"unknown engine '{name}' (known: {', '.join(ENGINES)})"
    if importlib.util.find_spec(info.module) is None:
        return f"engine {name} needs {info.module}: {info.extra}"
    if info.needs_cuda and not torch.cuda.is_available():
        return f"engine {name} needs a CUDA GPU and none is available here"
    return None


def require_engine(name: str, component: str) -> None:
    """Raise BundleError when the engine for `component` cannot run on this machine."""
    reason = engine_unavailable_reason(name)
    if reason:
        raise BundleError(f"{component}: {reason}")

