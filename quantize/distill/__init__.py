"""Few-step distillation of TinyVLA's diffusion head (docs/distillation.md).

`distill_head` trains a K-step student of the 10-step teacher on cached head conditions and
reports its fidelity; `compute_conditions` makes those conditions from observations.
"""

from quantize.distill.api import DistillReport, DistillResult, distill_head, render_summary
from quantize.distill.conditions import compute_conditions, read_calibration, synthetic_observations
from quantize.distill.fidelity import DistributionalFidelity, Fidelity, PairedFidelity, measure_fidelity
from quantize.distill.objectives import DEFAULT_METHOD, METHODS
from quantize.distill.schedule import ladder, student_timesteps

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "DistillReport",
    "DistillResult",
    "DistributionalFidelity",
    "Fidelity",
    "PairedFidelity",
    "compute_conditions",
    "distill_head",
    "ladder",
    "measure_fidelity",
    "read_calibration",
    "render_summary",
    "student_timesteps",
    "synthetic_observations",
]
