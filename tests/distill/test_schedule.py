"""Student timesteps, the progressive ladder, and the refusals of impossible step counts."""

import pytest

from edge.errors import EdgeError
from edge.policy.config import HeadConfig
from quantize.distill.methods import CONSISTENCY, OUTPUT_MATCHING, PROGRESSIVE
from quantize.distill.objectives import rounds_for
from quantize.distill.schedule import (ladder, one_step_timestep, output_matching_timesteps, segments,
                                       student_timesteps, validate_head, validate_steps, x0_gain)


def test_students_start_where_the_teacher_starts():
    assert student_timesteps(1, 10) == [90]
    assert student_timesteps(2, 10) == [90, 40]
    assert student_timesteps(4, 10) == [90, 70, 40, 10]


def test_x0_gain_matches_diffusers_cosine_schedule():
    # The oracle is diffusers' own ᾱ for the reference's scheduler (squaredcos_cap_v2, 100 steps).
    from diffusers import DDIMScheduler

    alpha_bar = DDIMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2").alphas_cumprod
    for t in (0, 30, 50, 90, 99):
        assert x0_gain(t) == pytest.approx(float(((1 - alpha_bar[t]) / alpha_bar[t]).sqrt()), rel=1e-5)
    assert x0_gain(40) < 1 < x0_gain(50) < x0_gain(60)


def test_one_step_output_matching_samples_where_the_gain_is_about_one():
    assert one_step_timestep(10) == 50
    assert output_matching_timesteps(1, 10) == [50]
    assert output_matching_timesteps(2, 10) == [90, 40] and output_matching_timesteps(4, 10) == [90, 70, 40, 10]
    assert one_step_timestep(20) == 50 and one_step_timestep(4) == 50  # leading: 95, 90, …; 75, 50, 25, 0
    with pytest.raises(EdgeError, match="steps must be between"):
        output_matching_timesteps(0, 10)


def test_each_method_samples_at_its_own_timesteps():
    assert rounds_for(OUTPUT_MATCHING, 1, 10)[-1].student_timesteps == [50]
    # Consistency and progressive train steps on the teacher's trajectory, so they start where it does.
    assert rounds_for(CONSISTENCY, 1, 10)[-1].student_timesteps == [90]
    assert rounds_for(PROGRESSIVE, 1, 10)[-1].student_timesteps == [90]


def test_ladder_halves_after_a_first_rung_below_the_teacher():
    rungs = ladder(1, 10)
    assert [len(r) for r in rungs] == [10, 8, 4, 2, 1]
    assert rungs[1] == [90, 80, 70, 50, 40, 30, 10, 0]  # 10 → 8 merges two pairs of teacher steps
    assert [len(r) for r in ladder(5, 10)] == [10, 5] and ladder(5, 10)[1] == [90, 70, 50, 30, 10]
    for teacher, student in zip(rungs[:-1], rungs[1:]):
        starts = segments(teacher, student)
        covered = [b - a for a, b in zip(starts, starts[1:] + [len(teacher)])]
        assert all(c in (1, 2) for c in covered)  # each student step covers one or two teacher steps


@pytest.mark.parametrize("steps,teacher", [(0, 10), (10, 10), (12, 10), (-1, 10), (1, 1)])
def test_impossible_step_counts_are_refused(steps, teacher):
    with pytest.raises(EdgeError, match="steps must be between"):
        validate_steps(steps, teacher)


def test_horizon_not_divisible_by_four_is_refused():
    with pytest.raises(EdgeError, match="not divisible by 4"):
        validate_head(HeadConfig(chunk_size=6))
    validate_head(HeadConfig(chunk_size=16))
