"""Reproduces the method comparison in docs/distillation.md (not a test; about 10 minutes):

    .venv/bin/python -m tests.distill.compare_methods

A teacher trained on the synthetic bimodal task (64 conditions), each method distilled to
K = 4, 2, 1 on the same budget; paired RMSE on held-out conditions, the warm start's, and the
fraction of samples at each mode (teacher vs student).
"""

from __future__ import annotations

import json

import torch

from edge.policy.sampler import leading_timesteps
from quantize.distill import distill_head
from tests.distill.synthetic import make_bimodal_task, mode_fractions


def main() -> None:
    torch.set_num_threads(1)
    task = make_bimodal_task(iterations=600, count=64)
    probe = task.conditions[:8]
    rows = {"teacher_modes": mode_fractions(task.teacher, leading_timesteps(10), probe)}
    for method in ("output-matching", "progressive"):
        for k in (4, 2, 1):
            r = distill_head(task.teacher, task.conditions, k, method=method, iterations=300, batch_size=64,
                             learning_rate=1e-3, progress=False, fidelity_samples=64, fidelity_conditions=8)
            f = r.fidelity
            rows[f"{method}/K={k}"] = {
                "paired_rmse": round(f.paired.rmse, 4), "warm_start_rmse": round(f.baseline_paired.rmse, 4),
                "mmd": round(f.distributional.mmd, 4), "mmd_floor": round(f.distributional.floor_mmd, 4),
                "modes": [round(x, 3) for x in mode_fractions(r.head, r.timesteps, probe)],
            }
            print(method, k, rows[f"{method}/K={k}"], flush=True)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
