"""Few-step distillation of TinyVLA's diffusion head (docs/distillation.md).

`distill_head` trains a K-step student of the 10-step teacher on cached head conditions and
reports its fidelity; `compute_conditions` makes those conditions from observations.

The names below are loaded on first use: they import torch, and the CLI reads
`quantize.distill.methods` while it parses, before anything heavy may load.
"""

from importlib import import_module

_EXPORTS = {
    "DistillReport": "api", "DistillResult": "api", "distill_head": "api", "render_summary": "api",
    "compute_conditions": "conditions", "read_calibration": "conditions", "synthetic_observations": "conditions",
    "DistributionalFidelity": "fidelity", "Fidelity": "fidelity", "PairedFidelity": "fidelity",
    "measure_fidelity": "fidelity", "DEFAULT_METHOD": "methods", "METHODS": "methods",
    "ladder": "schedule", "student_timesteps": "schedule",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'quantize.distill' has no attribute {name!r}")
    return getattr(import_module(f"quantize.distill.{_EXPORTS[name]}"), name)
