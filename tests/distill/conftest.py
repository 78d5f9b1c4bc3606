"""Fixtures for distillation tests (the synthetic task lives in tests/distill/synthetic.py)."""

from __future__ import annotations

import pytest
import torch

from tests.distill.synthetic import BimodalTask, make_bimodal_task


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny heads gain nothing from intra-op threads, and two threads on a busy 2-core machine
    run several times slower; the session's setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def bimodal_task() -> BimodalTask:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return make_bimodal_task()
    finally:
        torch.set_num_threads(before)
