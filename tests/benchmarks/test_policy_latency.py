"""benchmarks/policy_latency.py's measurement: alternating real predictors, per-stage medians."""

from __future__ import annotations

import torch

from benchmarks.policy_latency import measure, observation
from edge.policy.checkpoint import load_training_output
from edge.policy.predictor import TorchPredictor


def test_measure_alternates_predictors_and_reports_every_stage(tiny_output):
    policy = load_training_output(tiny_output)
    predictors = {"ddim10": TorchPredictor(policy, sampler=policy.sampler(10)),
                  "ddim2": TorchPredictor(policy, sampler=policy.sampler(2))}
    images, state = observation(policy.config.num_cameras)
    noise = torch.zeros((1, policy.config.head.chunk_size, policy.config.head.action_dim))
    results = measure(predictors, repeats=3, noise=noise, images=images, state=state)
    assert set(results) == {"ddim10", "ddim2"}
    for r in results.values():
        assert r["runs"] == 3 and 0 < r["median_ms"] <= r["p99_ms"]
        assert {"preprocess", "vision", "language", "head"} <= set(r["stage_median_ms"])
        assert all(v >= 0 for v in r["stage_median_ms"].values())
