"""Both methods improve on the warm start; the K = 2 student keeps both modes of a bimodal task."""

from edge.policy.sampler import leading_timesteps
from quantize.distill import distill_head
from tests.distill.synthetic import mode_fractions

FAST = dict(batch_size=32, learning_rate=3e-3, progress=False, fidelity_noises=4, fidelity_samples=16, fidelity_conditions=2)


def test_a_progressive_round_improves_the_paired_error_over_the_warm_start(bimodal_task):
    # A 4-step teacher (75, 50, 25, 0) distilled to 2 steps is exactly one halving round.
    result = distill_head(bimodal_task.teacher, bimodal_task.conditions, 2, teacher_steps=4, method="progressive",
                          iterations=60, **{**FAST, "learning_rate": 1e-3})
    assert result.report.rounds == [[75, 25]] and result.timesteps == [75, 25]
    assert result.fidelity.paired.rmse < 0.9 * result.fidelity.baseline_paired.rmse
    assert result.method == "progressive" and result.teacher_steps == 4


def test_output_matching_keeps_every_mode_at_two_steps(bimodal_task):
    teacher, cond = bimodal_task.teacher, bimodal_task.conditions
    result = distill_head(teacher, cond, 2, method="output-matching", iterations=150, **{**FAST, "learning_rate": 1e-3})
    assert result.fidelity.paired.rmse < result.fidelity.baseline_paired.rmse
    probe = cond[:4]
    want = mode_fractions(teacher, leading_timesteps(10), probe)
    got = mode_fractions(result.head, result.timesteps, probe)
    assert min(want) > 0.15, f"the teacher itself must show both modes: {want}"
    for w, g in zip(want, got):
        assert abs(w - g) <= 0.10, f"mode fractions: teacher {want}, student {got}"
