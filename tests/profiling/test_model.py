"""ProfileRun validation: figures must agree with the tick count; no energy without power."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.profiling import ControlFigures, PowerRecord, ProfileRun, RunMode, Stage, summarize_stage
from tests.profiling.runs import make_run


def changed(run: ProfileRun, **update) -> dict:
    data = run.model_dump()
    data.update(update)
    return data


def test_stage_sample_count_must_match_ticks():
    run = make_run(ticks=30)
    stages = dict(run.stages_ms)
    stages[Stage.VISION] = stages[Stage.VISION][:-1]
    with pytest.raises(ValidationError, match="stage vision has 29 samples for 30 inferences"):
        ProfileRun.model_validate(changed(run, stages_ms=stages))


def test_a_deployed_run_counts_inference_stages_per_inference_and_tick_stages_per_tick():
    run = make_run(ticks=30)
    control = ControlFigures(target_rate_hz=30, achieved_rate_hz=29.9, missed=0, exec_latency_ms=2.0,
                             tick_ms={"work": summarize_stage([0.5, 0.6])}, chunks={"published": 12}, late_targets=0,
                             holds=3)
    stages = {stage: samples[:12] for stage, samples in run.stages_ms.items()}  # 12 inferences in 30 ticks
    deployed = dict(changed(run, stages_ms=stages, inference_boundaries=run.inference_boundaries[:12]),
                    mode="deployed", control=control.model_dump())
    valid = ProfileRun.model_validate(deployed | {"stages_ms": stages | {Stage.SERIAL: [1.0] * 30}})
    assert valid.mode is RunMode.DEPLOYED and len(valid.tick_totals_ms()) == 12  # per inference, without serial
    with pytest.raises(ValidationError, match="stage serial has 12 samples for 30 ticks"):
        ProfileRun.model_validate(deployed | {"stages_ms": stages | {Stage.SERIAL: [1.0] * 12}})
    with pytest.raises(ValidationError, match="a deployed run has control figures"):
        ProfileRun.model_validate(deployed | {"control": None})


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
