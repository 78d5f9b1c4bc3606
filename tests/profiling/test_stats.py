"""Stage summaries and throughput."""

from __future__ import annotations

import pytest

from edge.profiling import inferences_per_second, summarize_stage


def test_summary_of_one_to_hundred():
    summary = summarize_stage([float(v) for v in range(1, 101)])
    assert summary.p50 == pytest.approx(50.5)
    assert summary.p90 == pytest.approx(90.1)
    assert summary.p99 == pytest.approx(99.01)
    assert summary.max == 100.0
    assert summary.mean == pytest.approx(50.5)
    assert summary.n == 100


def test_summary_of_one_sample():
    summary = summarize_stage([3.5])
    assert (summary.p50, summary.p99, summary.max, summary.n) == (3.5, 3.5, 3.5, 1)


def test_summary_rejects_empty_and_non_finite():
    with pytest.raises(ValueError):
        summarize_stage([])
    with pytest.raises(ValueError):
        summarize_stage([1.0, float("nan")])


def test_inferences_per_second_over_the_span():
    boundaries = [(10.0 + 0.1 * k, 10.0 + 0.1 * k + 0.05) for k in range(10)]
    assert inferences_per_second(boundaries) == pytest.approx(10 / 0.95)
