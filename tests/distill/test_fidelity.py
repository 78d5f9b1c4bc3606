"""Fidelity metrics: zero against oneself, a collapsed student is caught, figures are typed."""

import torch

from edge.policy.sampler import leading_timesteps
from quantize.distill.fidelity import Fidelity, measure_fidelity, mmd_rbf, sliced_wasserstein


def test_identical_sets_have_zero_distance_and_shifted_sets_do_not():
    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    d = torch.nn.functional.normalize(torch.randn(16, 6, dtype=torch.float64), dim=1)
    assert mmd_rbf(x, x) == 0.0 and sliced_wasserstein(x, x, d) == 0.0
    assert mmd_rbf(x, x + 1.0) > 0.3 and sliced_wasserstein(x, x + 1.0, d) > 0.1


def test_teacher_against_itself_is_exact_and_within_the_floor(bimodal_task):
    teacher, cond = bimodal_task.teacher, bimodal_task.conditions[:3]
    ts = leading_timesteps(10)
    f = measure_fidelity(teacher, ts, teacher, ts, cond, noises_per_condition=4, samples_per_condition=32)
    assert f.paired.rmse == 0.0 and f.paired.max_abs_error == 0.0
    d = f.distributional
    assert d.mmd < 2 * d.floor_mmd + 0.05 and d.sliced_wasserstein < 2 * d.floor_sliced_wasserstein + 0.05
    assert Fidelity.model_validate_json(f.model_dump_json()) == f


def test_a_mode_collapsed_student_is_caught_although_its_mean_is_close(bimodal_task):
    """A one-step warm start averages the two modes; its distributional gaps exceed the floor."""
    teacher, cond = bimodal_task.teacher, bimodal_task.conditions[:3]
    f = measure_fidelity(teacher, leading_timesteps(10), teacher, [90], cond, noises_per_condition=4, samples_per_condition=32)
    d = f.distributional
    assert d.covariance_gap > 0.5 and d.mmd > 2 * d.floor_mmd and d.sliced_wasserstein > 2 * d.floor_sliced_wasserstein
