"""Latency statistics: percentiles per stage, throughput from inference boundaries."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict


class StageSummary(BaseModel):
    """Percentiles of one stage's latency samples, in ms.

    Percentiles use linear interpolation between order statistics (numpy's default), so p99 of
    fewer than 100 samples lies between the two largest values rather than being the maximum.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    n: int


def summarize_stage(samples: Sequence[float]) -> StageSummary:
    """p50/p90/p99/max/mean/n of latency samples (ms). Raises ValueError on no or non-finite samples."""
    if len(samples) == 0:
        raise ValueError("no latency samples to summarize")
    values = np.asarray(samples, dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError("latency samples must be finite")
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return StageSummary(
        p50=float(p50), p90=float(p90), p99=float(p99), max=float(values.max()), mean=float(values.mean()), n=len(values)
    )


def inferences_per_second(boundaries: Sequence[tuple[float, float]]) -> float:
    """Inferences per second over the span from the first start to the last end."""
    if not boundaries:
        raise ValueError("no inference boundaries")
    span = boundaries[-1][1] - boundaries[0][0]
    return len(boundaries) / span if span > 0 else math.inf
