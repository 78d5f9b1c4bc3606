"""Checkpoints: a crashed run resumes from its saved step and ends where an uninterrupted run
ends; resuming under different settings, or starting over an existing checkpoint, is refused."""

import pytest
import torch

from edge.errors import EdgeError
from quantize.distill import distill_head, trainer
from quantize.distill.state import load_state

RUN = dict(iterations=12, batch_size=8, learning_rate=3e-3, progress=False, checkpoint_every_steps=3,
           fidelity_noises=2, fidelity_samples=8, fidelity_conditions=2)


@pytest.mark.parametrize("method,crash_at,saved", [("output-matching", 8, (0, 6)), ("progressive", 7, (1, 0))])
def test_resume_continues_from_the_saved_step(bimodal_task, tmp_path, monkeypatch, method, crash_at, saved):
    teacher, cond = bimodal_task.teacher, bimodal_task.conditions
    full = distill_head(teacher, cond, 2, method=method, checkpoint_dir=tmp_path / "full", **RUN)

    real_step, calls = trainer._train_step, []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == crash_at:
            raise RuntimeError("simulated crash")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "_train_step", crashing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        distill_head(teacher, cond, 2, method=method, checkpoint_dir=tmp_path / "crashed", **RUN)
    monkeypatch.undo()
    state = load_state(tmp_path / "crashed")
    assert (state["round"], state["step"]) == saved  # progressive: 3 rounds of 4 steps, saved at a round's end

    resumed = distill_head(teacher, cond, 2, method=method, checkpoint_dir=tmp_path / "crashed", resume=True, **RUN)
    per_round = 12 // len(resumed.report.rounds)
    assert resumed.report.resumed_from_step == saved[0] * per_round + saved[1]
    for (name, a), (_, b) in zip(full.head.state_dict().items(), resumed.head.state_dict().items()):
        assert torch.equal(a, b), name
    assert resumed.fidelity == full.fidelity


def test_resume_with_different_settings_names_them(bimodal_task, tmp_path):
    teacher, cond = bimodal_task.teacher, bimodal_task.conditions
    distill_head(teacher, cond, 2, checkpoint_dir=tmp_path, **{**RUN, "iterations": 3})
    with pytest.raises(EdgeError, match=r"settings differ: iterations \(checkpoint 3, now 4\); seed \(checkpoint 0, now 1\)"):
        distill_head(teacher, cond, 2, checkpoint_dir=tmp_path, resume=True, seed=1, **{**RUN, "iterations": 4})
    with pytest.raises(EdgeError, match="exists: resume it, or remove it"):
        distill_head(teacher, cond, 2, checkpoint_dir=tmp_path, **{**RUN, "iterations": 3})
