"""ProfileRun validation: figures must agree with the tick count; no energy without power."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.profiling import PowerRecord, ProfileRun, Stage
from tests.profiling.runs import make_run


def changed(run: ProfileRun, **update) -> dict:
    data = run.model_dump()
    data.update(update)
    return data


def test_stage_sample_count_must_match_ticks():
    run = make_run(ticks=30)
    stages = dict(run.stages_ms)
    stages[Stage.VISION] = stages[Stage.VISION][:-1]
    with pytest.raises(ValidationError, match="stage vision has 29 samples for 30 ticks"):
        ProfileRun.model_validate(changed(run, stages_ms=stages))


def test_boundaries_must_match_ticks():
    run = make_run(ticks=30)
    with pytest.raises(ValidationError, match="29 inference boundaries for 30 ticks"):
        ProfileRun.model_validate(changed(run, inference_boundaries=run.inference_boundaries[1:]))


def test_no_energy_without_a_power_trace():
    run = make_run(watts=None)
    assert run.energy_per_inference_j is None
    with pytest.raises(ValidationError, match="energy figures without a power trace"):
        ProfileRun.model_validate(changed(run, energy_per_inference_j=0.0))


def test_power_record_is_a_trace_or_a_reason():
    with pytest.raises(ValidationError):
        PowerRecord(source="rapl")
    with pytest.raises(ValidationError):
        PowerRecord(source="rapl", trace=[(0.0, 1.0)], unavailable_reason="x")


def test_stages_are_kept_in_pipeline_order_and_absent_stages_stay_absent():
    run = make_run(ticks=20)
    reversed_stages = dict(reversed(list(run.stages_ms.items())))
    rebuilt = ProfileRun.model_validate(changed(run, stages_ms=reversed_stages))
    assert list(rebuilt.stages_ms) == list(run.stages_ms)
    assert Stage.SERIAL not in rebuilt.stages_ms and Stage.SAFETY not in rebuilt.stages_ms


def test_tick_totals_sum_the_stages():
    run = make_run(ticks=5)
    assert run.tick_totals_ms()[2] == pytest.approx(sum(samples[2] for samples in run.stages_ms.values()))


def test_energy_comes_from_the_trace():
    run = make_run(ticks=40, watts=10.0)
    window = run.window()[1] - run.window()[0]
    assert run.mean_power_w() == pytest.approx(10.0)
    assert run.energy_per_inference_j == pytest.approx(10.0 * window / 40)
    assert run.energy_per_action_j == pytest.approx(10.0 * window / 80)
