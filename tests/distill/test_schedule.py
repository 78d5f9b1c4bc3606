"""Student timesteps, the progressive ladder, and the refusals of impossible step counts."""

import pytest

from edge.errors import EdgeError
from edge.policy.config import HeadConfig
from quantize.distill.schedule import ladder, segments, student_timesteps, validate_head, validate_steps


def test_students_start_where_the_teacher_starts():
    assert student_timesteps(1, 10) == [90]
    assert student_timesteps(2, 10) == [90, 40]
    assert student_timesteps(4, 10) == [90, 70, 40, 10]


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
