"""distill_head's one-line refusals (the CLI prints them as they are)."""

import pytest
import torch

from edge.errors import EdgeError
from edge.policy.head import ConditionalUnet1D
from quantize.distill import distill_head
from tests.distill.synthetic import COND_DIM, SMALL_HEAD


@pytest.fixture()
def head():
    return ConditionalUnet1D(COND_DIM, SMALL_HEAD)


@pytest.mark.parametrize(
    "count,holdout,message",
    [(5, 0.2, "calibration has 5 observations: holding out 20% .* needs at least 6"),
     (7, 0.5, "calibration has 7 observations: holding out 50% .* needs at least 8"),
     (20, 1.0, "holdout must be a fraction between 0 and 1")],
)
def test_too_small_calibration_says_how_many_are_needed(head, count, holdout, message):
    with pytest.raises(EdgeError, match=message):
        distill_head(head, torch.randn(count, COND_DIM), 2, holdout=holdout, progress=False)


def test_unknown_method_and_misshaped_conditions_are_refused(head):
    with pytest.raises(EdgeError, match="unknown distillation method 'magic': choose one of output-matching, progressive, consistency"):
        distill_head(head, torch.randn(20, COND_DIM), 2, method="magic", progress=False)
    with pytest.raises(EdgeError, match=r"conditions must be \[N, 8\] head conditions, got \[20, 5\]"):
        distill_head(head, torch.randn(20, 5), 2, progress=False)
    with pytest.raises(EdgeError, match="between 1 and 9"):
        distill_head(head, torch.randn(20, COND_DIM), 0, progress=False)
