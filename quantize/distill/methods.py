"""The distillation methods by name, importable without torch: the CLI checks `--method` while it
parses, before anything heavy is loaded (the objectives themselves live in objectives.py)."""

from __future__ import annotations

from edge.errors import EdgeError

PROGRESSIVE = "progressive"
OUTPUT_MATCHING = "output-matching"
CONSISTENCY = "consistency"
METHODS = (OUTPUT_MATCHING, PROGRESSIVE, CONSISTENCY)
# Chosen by the measured fidelity (docs/distillation.md): output matching gives a lower paired
# error at every K on the same budget and keeps the modes of the multimodal test task.
DEFAULT_METHOD = OUTPUT_MATCHING


def check_method(method: str | None) -> None:
    """Refuse an unknown distillation method before anything is loaded or computed."""
    if method is not None and method not in METHODS:
        raise EdgeError(f"unknown distillation method {method!r}: choose one of {', '.join(METHODS)}")
