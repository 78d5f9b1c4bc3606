"""The CLI surface and `inspect` end to end (in-process and as a real subprocess)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edge import __version__
from edge.cli import app, main

DESIGN_COMMANDS = {"install", "doctor", "inspect", "quantize", "distill", "capture", "run", "profile", "sim-arm", "demo"}


def test_every_design_command_is_registered():
    import typer.main

    names = set(typer.main.get_command(app).commands)
    assert DESIGN_COMMANDS <= names


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tinyvla-edge {__version__}"


def test_inspect_text(tiny_output, capsys):
    assert main(["inspect", str(tiny_output)]) == 0
    out = capsys.readouterr().out
    assert "(verified)" in out and "action_dim 10" in out and "DDIM 10 of 100 steps" in out


def test_inspect_json(tiny_output, capsys):
    assert main(["inspect", str(tiny_output / "checkpoint-1000"), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["kind"] == "training_output"
    assert facts["head"]["chunk_size"] == 16 and facts["cameras"] == 2
    assert facts["scheduler"]["timesteps"] == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert facts["parameters"]["total"] == sum(v for k, v in facts["parameters"].items() if k != "total")
    assert len(facts["normalization"]["action_min"]) == 10


def test_inspect_runs_an_observation_with_given_noise(tiny_output, tiny_policy, tiny_observation, tmp_path, capsys):
    noise = np.random.default_rng(3).standard_normal((1, 16, 10)).astype(np.float32)
    np.save(tmp_path / "noise.npy", noise)
    out = tmp_path / "out.npz"
    code = main(["inspect", str(tiny_output), "--observation", str(tiny_observation), "--noise",
                 str(tmp_path / "noise.npy"), "--output", str(out), "--json"])
    assert code == 0
    result = np.load(out)
    assert result["normalized"].shape == (16, 10) and result["robot_actions"].shape == (16, 7)
    assert np.all(np.abs(result["normalized"]) <= 1.0 + 1e-6)
    data = np.load(tiny_observation)
    import torch

    expected = tiny_policy.predict([data["image_0"], data["image_1"]], data["state"], str(data["instruction"]),
                                   noise=torch.from_numpy(noise))
    assert np.array_equal(result["normalized"], expected.normalized)
    assert np.array_equal(result["actions"], expected.actions)


def test_inspect_rejects_wrongly_shaped_noise(tiny_output, tiny_observation, tmp_path, capsys):
    np.save(tmp_path / "noise.npy", np.zeros((1, 8, 10), dtype=np.float32))
    code = main(["inspect", str(tiny_output), "--observation", str(tiny_observation), "--noise",
                 str(tmp_path / "noise.npy"), "--output", str(tmp_path / "o.npz")])
    assert code == 1
    assert "noise must have shape (1, 16, 10)" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate", "remove_adapter", "evil_pickle", "nothing_there"])
def test_broken_inputs_give_one_line_and_no_traceback(tiny_output, tmp_path, damage):
    target = shutil.copytree(tiny_output, tmp_path / "llava_pythia_lora_x")
    if damage == "truncate":
        f = target / "non_lora_trainables.bin"
        f.write_bytes(f.read_bytes()[:1000])
    elif damage == "remove_adapter":
        (target / "adapter_config.json").unlink()
    elif damage == "evil_pickle":
        (target / "dataset_stats.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    else:
        target = tmp_path / "missing"
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "inspect", str(target)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
