"""quantize you can watch and trust: a plain line per stage off a terminal, library output kept
in the log, the fidelity gate and its override, refusals before torch is imported."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.cli import main
from quantize.progress import QUANTIZE_STAGES
from tests.conftest import TORCH_PROFILE

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def write_profile(directory: Path, name: str, precision: str = "fp32", head_steps: int = 10, gate: float | None = None):
    """The shared torch profile with another head step count and, optionally, a fidelity gate."""
    text = TORCH_PROFILE.format(name=name, precision=precision).replace("head_steps: 10", f"head_steps: {head_steps}")
    if gate is not None:
        text = text.replace("cameras:", f"  fidelity_max_rmse: {gate}\ncameras:")
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def accepted_run(tmp_path_factory, tiny_output, calibration_dir):
    """`quantize` as a user runs it, stderr a pipe: the head distilled to K = 2 in one iteration
    (far above the default gate), written with --accept-fidelity; 8 of the 12 calibration frames
    (6 to distill on, 2 held out: the fidelity stage is most of the run's time)."""
    directory = tmp_path_factory.mktemp("watch")
    profile = write_profile(directory, "torch-k2", head_steps=2)
    bundle = directory / "bundle"
    argv = [sys.executable, "-m", "edge.cli", "quantize", str(tiny_output), "--profile", str(profile),
            "--output", str(bundle), "--calibration", str(calibration_dir), "--calibration-frames", "8",
            "--distill-iterations", "1", "--accept-fidelity"]
    proc = subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return bundle, proc


def test_each_stage_is_one_plain_line_when_stderr_is_not_a_terminal(accepted_run):
    bundle, proc = accepted_run
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr
    ends = [re.match(r"quantize \[(\d)/7\] (\w+): (done|skipped)", line) for line in proc.stderr.splitlines()]
    ends = [m for m in ends if m]
    assert [m[2] for m in ends] == list(QUANTIZE_STAGES)
    assert [int(m[1]) for m in ends] == list(range(1, 8))
    skipped = {m[2] for m in ends if m[3] == "skipped"}
    assert skipped == {"calibration", "quantization"}  # torch fp32: nothing to quantize
    # Every line the run printed is a stage line (the summary goes to stdout).
    assert all(line.startswith("quantize [") for line in proc.stderr.splitlines()), proc.stderr
    log = Path(f"{bundle}.quantize.log").read_text()
    assert all(f"] {stage}: " in log for stage in QUANTIZE_STAGES)


def test_a_bundle_above_the_default_gate_is_written_only_with_the_override_and_says_so(accepted_run):
    bundle, proc = accepted_run
    fidelity = json.loads((bundle / "manifest.json").read_text())["fidelity"]
    assert fidelity["observations"] == 2 and fidelity["distillation"]["iterations"] == 1
    gate = fidelity["gate"]
    assert gate["max_action_rmse"] == 0.05 and gate["source"] == "profile torch-k2 (model.fidelity_max_rmse)"
    assert gate["action_rmse"] > 0.05 and gate["passed"] is False
    report = (bundle / "report.md").read_text()
    assert f"| fidelity gate | end-to-end RMSE {gate['action_rmse']:.5f} <= 0.05" in report
    assert "FAILED, written with --accept-fidelity" in report
    assert "FAILED, written with --accept-fidelity" in proc.stdout


def test_the_gate_refuses_in_one_line_with_the_figures_and_the_override(tmp_path, tiny_output, calibration_dir,
                                                                          capsys):
    profile = write_profile(tmp_path, "strict-fp16", precision="fp16", gate=1e-6)
    out = tmp_path / "refused"
    code = main(["quantize", str(tiny_output), "--profile", str(profile), "--output", str(out), "--json",
                 "--calibration", str(calibration_dir), "--calibration-frames", "3"])  # 1 held out
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    figures = re.search(r"end-to-end action RMSE ([\d.]+) \(max abs ([\d.]+), normalized", err)
    assert figures and 0 < float(figures[1]) <= 0.005 and float(figures[2]) >= float(figures[1])  # fp16's cost
    assert "exceeds the fidelity gate 1e-06 of profile strict-fp16" in err and "--accept-fidelity" in err
    assert not out.exists() and not list(tmp_path.glob(".refused*"))
    assert "error: end-to-end action RMSE" in (tmp_path / "refused.quantize.log").read_text()


def test_library_output_goes_to_the_log_not_the_console(tmp_path):
    """Python warnings, a library logger, print() and C-level writes to descriptor 2 all land in
    the log; the progress stream still reaches the real stderr."""
    script = textwrap.dedent(f"""
        import logging, os, sys, warnings
        from quantize.progress import StageProgress, captured_output
        logging.getLogger("torch.onnx").addHandler(logging.StreamHandler(sys.stderr))
        with captured_output({str(tmp_path / 'q.log')!r}) as (console, log):
            stages = StageProgress("quantize", ("export",), console, log)
            with stages.stage("export"):
                warnings.warn("torchvision is not installed")
                logging.getLogger("torch.onnx").warning("a library logger")
                print("a library print")
                os.write(2, b"a C++ warning\\n")
        print("after")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"quantize \[1/1\] export: done \([\d.]+ s\)\n", proc.stderr)
    assert proc.stdout == "after\n"
    log = (tmp_path / "q.log").read_text()
    for text in ("torchvision is not installed", "a library logger", "a library print", "a C++ warning",
                 "export: done"):
        assert text in log


def test_bad_input_is_refused_before_torch_is_imported(tmp_path, tiny_output):
    calib = tmp_path / "calib"
    (calib / "front").mkdir(parents=True)
    cases = {
        "checkpoint not found: /nowhere/runs/x/checkpoint-1": ["/nowhere/runs/x/checkpoint-1", "--profile", "cpu-dev"],
        "calibration directory not found": [str(tiny_output), "--profile", "cpu-dev", "--calibration", str(tmp_path / "no")],
        "no PNG frames for camera 'left' (camera folders found: front)": [
            str(tiny_output), "--profile", "cpu-dev", "--calibration", str(calib)],
        "--calibration-recording: file not found": [
            str(tiny_output), "--profile", "cpu-dev", "--calibration-recording", str(tmp_path / "no.db3")],
        "unknown profile 'cpu-dve'": [str(tiny_output), "--profile", "cpu-dve"],
        "'int4' is not one of": [str(tiny_output), "--profile", "cpu-dev", "--precision", "int4"],
        "--distill-iterations": [str(tiny_output), "--profile", "cpu-dev", "--distill-iterations", "0"],
        "--calibration-frames": [str(tiny_output), "--profile", "cpu-dev", "--calibration-frames", "2"],
    }
    script = textwrap.dedent(f"""
        import json, sys
        from edge.cli import main
        codes = [main(["quantize", *argv, "--output", {str(tmp_path / 'b')!r}]) for argv in json.loads(sys.argv[1])]
        print(json.dumps({{"codes": codes, "torch": "torch" in sys.modules}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(list(cases.values()))], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=120)
    result = json.loads(proc.stdout)
    assert result["torch"] is False
    assert all(code != 0 for code in result["codes"])
    for message in cases:
        assert message in proc.stderr, (message, proc.stderr)
    assert not list(tmp_path.glob("b*"))
