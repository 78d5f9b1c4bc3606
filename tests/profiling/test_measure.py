"""`tinyvla-edge profile` end to end on the tiny policy: the report matches the measured run."""

import json

import pytest
from PIL import Image

from edge.cli import main


def test_model_only_profile_writes_a_consistent_report(tiny_output, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["profile", str(tiny_output), "--profile", "cpu-dev", "--model-only", "--ticks", "6", "--warmup", "2",
                 "--output", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    report = json.loads((out / "profile.json").read_text())
    run = report["runs"][0]
    assert run["profile"] == "cpu-dev" and run["ticks"] == 6 and run["warmup"] == 2
    assert run["mode"] == "model-only" and result["runs"][0]["mode"] == "model-only"
    assert run["control"] is None and run["throughput"]["control_hz"] is None  # no control loop, no control rate
    stages = run["stages_ms"]
    assert set(stages) == {"capture", "preprocess", "vision", "language", "head", "postprocess"}
    assert all(len(v) == 6 for v in stages.values())
    assert len(run["inference_boundaries"]) == 6
    assert all(b > a for a, b in run["inference_boundaries"])
    assert run["throughput"]["inferences_per_s"] > 0
    if run["power"].get("unavailable_reason"):
        assert run["energy_per_inference_j"] is None  # never zeros for a missing sensor
    summary = result["runs"][0]
    assert summary["stages_ms"]["head"]["p50"] == pytest.approx(sorted(stages["head"])[len(stages["head"]) // 2], rel=0.5)
    assert "cpu-dev" in (out / "report.md").read_text()
    for png in result["plots"]:
        with Image.open(png) as img:
            assert img.format == "PNG" and img.size[0] > 100 and img.size[1] > 100


def test_compare_rebuilds_a_report(tiny_output, tmp_path, capsys):
    first = tmp_path / "a"
    assert main(["profile", str(tiny_output), "--profile", "cpu-dev", "--model-only", "--ticks", "3", "--warmup", "1",
                 "--output", str(first), "--json"]) == 0
    capsys.readouterr()
    assert main(["profile", "--compare", str(first / "profile.json"), "--compare", str(first / "profile.json"),
                 "--output", str(tmp_path / "cmp"), "--json"]) == 0
    assert (tmp_path / "cmp" / "report.md").is_file()


def test_bad_requests_are_one_line_errors(tiny_output, tmp_path, capsys):
    assert main(["profile", str(tiny_output), "--output", str(tmp_path / "x")]) == 1
    assert "at least one --profile" in capsys.readouterr().err
    assert main(["profile", str(tiny_output), "--profile", "nope", "--output", str(tmp_path / "x")]) == 1
    assert "unknown profile 'nope'" in capsys.readouterr().err
    assert main(["profile", str(tiny_output), "--profile", "cpu-dev", "--set-power-mode", "--output", str(tmp_path / "x")]) == 1
    assert "needs a Jetson" in capsys.readouterr().err
    assert main(["profile", str(tiny_output), "--profile", "cpu-dev", "--model-only", "--arm", "sim",
                 "--output", str(tmp_path / "x")]) == 1
    assert "--model-only measures the model without an arm" in capsys.readouterr().err
    assert main(["profile", str(tiny_output), "--profile", "cpu-dev", "--arm", "none", "--output", str(tmp_path / "x")]) == 1
    assert "needs an arm: --arm sim" in capsys.readouterr().err
