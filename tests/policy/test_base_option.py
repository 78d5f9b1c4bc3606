"""`profile` and `run` take a training output with `--base`, as `inspect` does."""

import json
import shutil

import pytest

from edge.cli import main
from edge.errors import EdgeError
from edge.runtime.startup import load_run_predictor


@pytest.fixture()
def hub_recorded(tmp_path, tiny_output):
    """A training output whose config names the base by its Hub id (as real runs record it)."""
    root = shutil.copytree(tiny_output, tmp_path / tiny_output.name)
    for name in ("config.json", "adapter_config.json"):
        for path in (root / name, root / "checkpoint-1000" / name):
            if path.is_file():
                data = json.loads(path.read_text())
                data.update({"_name_or_path": "lesjie/Llava-Pythia-400M", "base_model_name_or_path": "lesjie/Llava-Pythia-400M"})
                path.write_text(json.dumps(data))
    return root


def test_profile_takes_base(hub_recorded, tiny_base, tmp_path, capsys):
    # --model-only: this tests --base; 2 deployed ticks may end before an inference does
    args = ["profile", str(hub_recorded / "checkpoint-1000"), "--profile", "cpu-dev", "--model-only", "--ticks", "2",
            "--warmup", "1"]
    assert main([*args, "--output", str(tmp_path / "a")]) == 1
    assert "pass --base DIR" in capsys.readouterr().err
    assert main([*args, "--base", str(tiny_base), "--output", str(tmp_path / "b"), "--json"]) == 0
    assert json.loads((tmp_path / "b" / "profile.json").read_text())["runs"][0]["ticks"] == 2


def test_run_takes_base(hub_recorded, tiny_base, capsys):
    args = ["run", str(hub_recorded), "--camera", "recording:/no/such/recording.db3", "--arm", "sim", "--instruction", "pick", "--dry-run"]
    assert main(args) == 1
    assert "pass --base DIR" in capsys.readouterr().err
    assert main([*args, "--base", str(tiny_base)]) == 1
    err = capsys.readouterr().err
    assert "--base" not in err and "camera" in err.lower()  # loaded; stopped later, at the camera


def test_base_is_refused_for_a_bundle(tmp_path, tiny_base):
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(EdgeError, match="--base is for a training output"):
        load_run_predictor(tmp_path, base=tiny_base)
