"""Consistency distillation: its loss falls, its one-step student beats the warm start on
held-out conditions, its pairs cover the teacher's trajectory, and the CLI selects it."""

import json

import torch

from edge.cli import main
from edge.policy.sampler import DDIMSampler, leading_timesteps
from quantize.distill import distill_head
from quantize.distill.chain import sample_actions
from quantize.distill.conditions import split_conditions
from quantize.distill.objectives import CONSISTENCY, DistillLoss, Round, consistency_pairs, draw_pairs

FAST = dict(batch_size=32, learning_rate=1e-3, progress=False, fidelity_noises=4, fidelity_samples=16, fidelity_conditions=4)


def test_pairs_are_every_start_before_every_later_position_and_half_start_at_the_students_steps():
    every = consistency_pairs(3)
    assert every.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    own = consistency_pairs(3, starts=[0, 2])
    assert own.tolist() == [[0, 1], [0, 2], [0, 3], [2, 3]]
    drawn = draw_pairs((torch.arange(1000) + 0.5) / 1000, own, every)
    assert (drawn[:500, None] == own[None]).all(-1).any(-1).all()  # below ½: the student's own starts
    assert {tuple(p) for p in drawn[500:].tolist()} == {tuple(p) for p in every.tolist()}


def test_a_pair_ending_at_the_chunk_targets_the_teachers_ten_step_chunk(bimodal_task):
    # Independent check of the objective: with uniforms that pick (start 0, end 10) for every
    # row, the loss is the MSE between the student's x0 at t = 90 and the teacher's DDIM-10 chunk.
    teacher, cond = bimodal_task.teacher, bimodal_task.conditions[:6]
    student = bimodal_task.teacher  # the warm start: the student is the teacher's weights
    loss_module = DistillLoss(CONSISTENCY, Round(leading_timesteps(10), [90]), student, teacher)
    pick = consistency_pairs(10).tolist().index([0, 10])
    uniforms = torch.full((6,), 0.5 + (pick + 0.5) / 55 / 2)  # the upper half draws from every pair
    noise = torch.randn((6, 8, 2), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        loss = loss_module(cond, noise, uniforms)
        chunk = sample_actions(teacher, leading_timesteps(10), cond, noise)
        s = DDIMSampler([90])
        eps = student.denoise(noise, student.step_features(torch.full((6,), 90)), cond)
        x0 = (noise - s.sqrt_one_minus_alpha[0] * eps) / s.sqrt_alpha[0]
    # clip-aware: past ±1 on the chunk's side of the bound counts as a match
    err = torch.where((chunk >= 1) & (x0 > 1) | (chunk <= -1) & (x0 < -1), torch.zeros_like(x0), x0 - chunk)
    assert torch.allclose(loss, err.pow(2).mean(), rtol=1e-5)


def test_consistency_lowers_its_loss_and_beats_the_warm_start_at_one_step(bimodal_task):
    teacher, cond = bimodal_task.teacher, bimodal_task.conditions
    result = distill_head(teacher, cond, 1, method="consistency", iterations=80, seed=0, **FAST)
    history = [loss for _, loss in result.report.loss_history]
    assert sum(history[-4:]) < 0.7 * sum(history[:4]), history
    assert result.timesteps == [90] and result.method == "consistency"

    # Held-out conditions (the split distill_head made): the one-step student's chunk is closer
    # to the teacher's 10-step chunk from the same noise than the untrained (warm-start) student's.
    _, held = split_conditions(cond.shape[0], 0.2, seed=0)
    probe = cond[held].repeat_interleave(16, 0)
    noise = torch.randn((probe.shape[0], 8, 2), generator=torch.Generator().manual_seed(7))
    reference = sample_actions(teacher, leading_timesteps(10), probe, noise)
    trained = (sample_actions(result.head, [90], probe, noise) - reference).pow(2).mean().sqrt()
    untrained = (sample_actions(teacher, [90], probe, noise) - reference).pow(2).mean().sqrt()
    assert trained < 0.9 * untrained, (float(trained), float(untrained))


def test_cli_accepts_consistency_and_refuses_unknown_methods(tiny_output, tmp_path, capsys):
    args = ["distill", str(tiny_output), "--steps", "1", "--synthetic-calibration", "10", "--iterations", "2",
            "--batch-size", "4"]
    assert main([*args, "--method", "consistency", "--output", str(tmp_path / "c"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["distillation"]
    assert report["method"] == "consistency" and report["timesteps"] == [90]

    assert main([*args, "--method", "magic", "--output", str(tmp_path / "m")]) != 0
    err = capsys.readouterr().err
    assert "magic" in err and "consistency" in err and "Traceback" not in err
    assert not (tmp_path / "m" / "distill.json").exists()
