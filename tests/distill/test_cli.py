"""`tinyvla-edge distill` end to end on the tiny policy, its refusals, and calibration reading."""

import json

import numpy as np
import pytest
from PIL import Image

from edge.cli import main
from edge.policy.native import load_policy
from edge.policy.sampler import leading_timesteps
from quantize.distill import compute_conditions, measure_fidelity, read_calibration, synthetic_observations
from quantize.distill.conditions import split_conditions

FAST = ["--iterations", "3", "--batch-size", "8"]


def test_refuses_without_calibration(tiny_output, tmp_path, capsys):
    assert main(["distill", str(tiny_output), "--steps", "2", "--output", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--synthetic-calibration N" in err and "--calibration DIR" in err


@pytest.mark.parametrize("steps,message", [("0", "between 1 and 9"), ("10", "fewer than the teacher's 10")])
def test_refuses_impossible_step_counts(tiny_output, tmp_path, capsys, steps, message):
    args = ["distill", str(tiny_output), "--steps", steps, "--synthetic-calibration", "10", "--output", str(tmp_path / "o")]
    assert main(args) == 1
    assert message in capsys.readouterr().err


def test_refuses_calibration_too_small_to_hold_out(tiny_output, tmp_path, capsys):
    args = ["distill", str(tiny_output), "--steps", "2", "--synthetic-calibration", "5", "--output", str(tmp_path / "o")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "calibration has 5 observations" in err and "needs at least 6" in err


def test_distills_writes_a_policy_whose_fidelity_reproduces_on_reload(tiny_output, tiny_policy, tmp_path, capsys):
    out = tmp_path / "student"
    args = ["distill", str(tiny_output), "--steps", "2", "--synthetic-calibration", "10", "--output", str(out), *FAST]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    report = result["distillation"]
    assert report["timesteps"] == [90, 40] and report["method"] == "output-matching" and report["teacher_steps"] == 10
    assert report["calibration"]["synthetic"] is True and report["calibration"]["holdout"] == 2
    assert json.loads((out / "distill.json").read_text())["distillation"] == report

    student = load_policy(out)
    assert student.source["distillation"]["timesteps"] == [90, 40]
    # The backbone and the head's condition front-end are the teacher's, so the reloaded policy
    # recomputes the same conditions; the student reproduces its recorded figures exactly.
    observations = synthetic_observations(student, 10, seed=0)
    cond = compute_conditions(student, observations)
    assert cond.equal(compute_conditions(tiny_policy, observations))
    _, held = split_conditions(10, 0.2, seed=0)
    again = measure_fidelity(tiny_policy.network.embed_out, leading_timesteps(10), student.network.embed_out, [90, 40],
                             cond[held], seed=0)
    assert again.model_dump(mode="json") == report["fidelity"]

    # Again without --resume: refused; with --resume and other settings: refused, naming them.
    assert main(args) == 1
    assert "already holds a distilled policy" in capsys.readouterr().err
    assert main([*args[:-4], "--iterations", "4", "--batch-size", "8", "--resume"]) == 1
    assert "settings differ: iterations (checkpoint 3, now 4)" in capsys.readouterr().err
    # --resume with the same settings: the run is complete, so it only re-measures and re-writes.
    assert main([*args, "--resume"]) == 0
    text = capsys.readouterr().out
    assert "paired RMSE" in text and "SYNTHETIC" in text


def test_one_step_student_reloads_sampling_at_t50(tiny_output, tmp_path, capsys):
    # Output matching puts a one-step student's step where the x0 gain is ~1 (schedule.py); the
    # reloaded policy must sample there, through the runtime's own sampler.
    out = tmp_path / "k1"
    args = ["distill", str(tiny_output), "--steps", "1", "--synthetic-calibration", "10", "--output", str(out), *FAST]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["distillation"]["timesteps"] == [50]
    student = load_policy(out)
    assert student.sampler().timesteps.tolist() == [50]
    images, state, instruction = synthetic_observations(student, 1, seed=3)[0]
    chunk = student.predict(images, state, instruction).normalized
    assert chunk.shape == (student.config.head.chunk_size, student.config.head.action_dim)
    assert np.abs(chunk).max() <= 1.0 and np.isfinite(chunk).all()


def test_reads_a_capture_directory(tiny_policy, tmp_path):
    rng = np.random.default_rng(0)
    for cam in ("left", "right"):
        (tmp_path / cam).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(tmp_path / cam / f"{i:06d}.png")
    lines = [{"index": 0, "instruction": "open the drawer", "state": [0.1] * 7}]
    (tmp_path / "observations.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    observations = read_calibration(tiny_policy, tmp_path, instruction="push the button")
    assert len(observations) == 3
    images, state, text = observations[0]
    assert len(images) == 2 and images[0].shape == (24, 32, 3) and text == "open the drawer"
    assert np.allclose(state, 0.1)
    assert observations[1][2] == "push the button"
    assert compute_conditions(tiny_policy, observations).shape == (3, 32)
