"""`tinyvla-edge run` through the CLI: refusals before any motion, a dry run, a real run on the
emulator, an ESTOP left latched, and SIGTERM to a running process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.sim.sim_arm import SimArm
from edge.cli import main
from edge.runtime.audit import audit_arm_log

REPO = Path(__file__).resolve().parents[2]
PROFILE = """
name: test-fast
target: any
model: {head_steps: 2, chunk_size: 16, max_prompt_tokens: 64}
control: {rate_hz: 25, max_rate_hz: 60, ensemble_k: 0.01, action_deadline_s: 0.4}
arm:
  max_step: [0.02, 0.02, 0.02, 0.1, 0.1, 0.1, 0.2]
  on_shutdown: estop
"""


@pytest.fixture()
def profile(tmp_path) -> Path:
    path = tmp_path / "test-fast.yaml"
    path.write_text(PROFILE)
    return path


@pytest.fixture()
def sim(tmp_path):
    arm = SimArm(dof=6, space="ee", log=tmp_path / "arm.jsonl", link=tmp_path / "arm-link")
    arm.start()
    yield arm
    arm.stop()


def _cameras(recording) -> list[str]:
    return ["--camera", f"cam0=recording:{recording}?loop", "--camera", f"cam1=recording:{recording}?loop"]


def _arm_events(tmp_path) -> list[dict]:
    path = tmp_path / "arm.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _run(args, capsys) -> tuple[int, str, str]:
    code = main(["run", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _refused(code: int, err: str, tmp_path, expected: str) -> None:
    lines = err.strip().splitlines()
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert not [e for e in _arm_events(tmp_path) if e["type"] == "SET_TARGET"], "the arm was commanded"


def test_rate_above_the_profile_maximum_is_refused(tiny_output, recording, profile, sim, tmp_path, capsys):
    code, _, err = _run([str(tiny_output), *_cameras(recording), "--arm", str(sim.link), "--instruction", "pick",
                         "--profile", str(profile), "--rate", "100"], capsys)
    _refused(code, err, tmp_path, "above what profile test-fast allows")


def test_cameras_not_in_the_bundle_are_refused(tiny_output, recording, profile, sim, tmp_path, capsys):
    code, _, err = _run([str(tiny_output), "--camera", f"left=recording:{recording}", "--arm", str(sim.link),
                         "--instruction", "pick", "--profile", str(profile)], capsys)
    _refused(code, err, tmp_path, "camera 'left' is not in the bundle")


def test_an_instruction_over_the_prompt_budget_is_refused(tiny_output, recording, profile, sim, tmp_path, capsys):
    code, _, err = _run([str(tiny_output), *_cameras(recording), "--arm", str(sim.link),
                         "--instruction", "pick up the red cube " * 20, "--profile", str(profile)], capsys)
    _refused(code, err, tmp_path, "instruction is too long")


def test_an_arm_of_another_action_space_or_dof_is_refused(tiny_output, recording, profile, tmp_path, capsys):
    with SimArm(dof=7, space="joint", log=tmp_path / "arm.jsonl") as joint_arm:
        code, _, err = _run([str(tiny_output), *_cameras(recording), "--arm", joint_arm.port,
                             "--instruction", "pick", "--profile", str(profile)], capsys)
    _refused(code, err, tmp_path, "arm mismatch")


def test_a_bundle_that_fails_verification_is_refused(tmp_path, recording, profile, sim, capsys):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"schema_version": 1}')
    (bundle / "manifest.sha256").write_text("0" * 64 + "\n")
    code, _, err = _run([str(bundle), *_cameras(recording), "--arm", str(sim.link), "--instruction", "pick",
                         "--profile", str(profile)], capsys)
    _refused(code, err, tmp_path, "hash mismatch")


def test_a_latched_estop_is_not_cleared_silently(tiny_output, recording, profile, sim, tmp_path, capsys):
    sim.inspect(lambda fw: setattr(fw, "estop", True))
    code, _, err = _run([str(tiny_output), *_cameras(recording), "--arm", str(sim.link), "--instruction", "pick",
                         "--profile", str(profile), "--ticks", "10"], capsys)
    _refused(code, err, tmp_path, "--clear-estop")
    code, out, err = _run([str(tiny_output), *_cameras(recording), "--arm", str(sim.link), "--instruction", "pick",
                           "--profile", str(profile), "--ticks", "10", "--clear-estop", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["ticks"] == 10


def test_a_dry_run_only_sends_heartbeats(tiny_output, recording, profile, sim, tmp_path, capsys):
    code, out, err = _run([str(tiny_output), *_cameras(recording), "--arm", str(sim.link), "--instruction", "pick",
                           "--profile", str(profile), "--ticks", "15", "--dry-run", "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["dry_run"] and report["link"]["sent"] == 0 and report["shutdown"]["action"] == "none"
    assert "plan:" in err and "dry run" in err
    assert report["plan"]["inference"]["where"] == "process"


def test_the_model_can_run_in_a_thread_for_debugging(tiny_output, recording, profile, sim, tmp_path, capsys):
    affinity = os.sched_getaffinity(0)
    code, out, err = _run([str(tiny_output), *_cameras(recording), "--arm", str(sim.link), "--instruction", "pick",
                           "--profile", str(profile), "--ticks", "15", "--dry-run", "--inference-thread", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["plan"]["inference"] == {"where": "thread"}
    assert "inference: in a thread of the control process" in err
    assert os.sched_getaffinity(0) == affinity
    assert not [e for e in _arm_events(tmp_path) if e["type"] in ("SET_TARGET", "ESTOP")]


def test_a_run_against_the_emulator_in_its_own_process(tiny_output, recording, profile, tmp_path, capsys):
    log = tmp_path / "log"
    affinity = os.sched_getaffinity(0)
    code, out, err = _run([str(tiny_output), *_cameras(recording), "--arm", "sim", "--instruction", "pick",
                           "--profile", str(profile), "--ticks", "25", "--log", str(log)], capsys)
    assert code == 0, err
    assert os.sched_getaffinity(0) == affinity  # the control CPU set was left behind with the run
    assert "cadence: target 25.0 Hz" in out and "shutdown: estop, arm safe: yes" in out
    plan = json.loads((log / "meta.json").read_text())
    assert plan["inference"]["where"] == "process" and "inference: own process" in err
    if os.cpu_count() > 1:
        assert not set(plan["inference"]["cpus"]["control"]) & set(plan["inference"]["cpus"]["model"])
    assert plan["rate_hz"] == 25 and plan["arm"]["action_space"] == "ee" and len(plan["limits"]) == 7
    assert len((log / "ticks.jsonl").read_text().splitlines()) == 25
    from edge.demo import _limits_from_plan

    audit = audit_arm_log(log / "sim-arm.jsonl", _limits_from_plan(plan))
    assert audit.ok and audit.accepted > 0 and audit.last_event == "ESTOP"


def test_sigterm_estops_the_arm_and_completes_the_logs(tiny_output, recording, profile, sim, tmp_path):
    log = tmp_path / "log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", str(tiny_output), *_cameras(recording), "--arm", str(sim.link),
         "--instruction", "pick up the red cube", "--profile", str(profile), "--log", str(log)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 90
        ticks = log / "ticks.jsonl"
        while time.monotonic() < deadline and proc.poll() is None:
            if ticks.exists() and len(ticks.read_text().splitlines()) >= 10:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        # The control process stays lean: the model (torch) lives in the inference process only.
        assert "libtorch" not in Path(f"/proc/{proc.pid}/maps").read_text()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stop: signal (SIGTERM received)" in out
    events = [json.loads(line) for line in (log / "events.jsonl").read_text().splitlines()]
    stop = next(e for e in events if e["event"] == "stop")
    shutdown = next(e for e in events if e["event"] == "shutdown")
    assert stop["reason"] == "signal" and stop["estop"]
    assert shutdown["action"] == "estop" and shutdown["arm_safe"]
    report = json.loads((log / "report.json").read_text())
    assert report["ticks"] == len((log / "ticks.jsonl").read_text().splitlines())
    assert sim.inspect(lambda fw: fw.estop)
    assert any(e["type"] == "ESTOP" for e in _arm_events(tmp_path))


def test_a_fault_stop_exits_non_zero_with_the_reason(tiny_output, short_recording, profile, sim, tmp_path, capsys):
    # The warm-up outlasts the short recording: the loop sees a stalled camera at once and ESTOPs.
    code, out, err = _run([str(tiny_output), "--camera", f"cam0=recording:{short_recording}",
                           "--camera", f"cam1=recording:{short_recording}", "--arm", str(sim.link),
                           "--instruction", "pick", "--profile", str(profile), "--duration", "5"], capsys)
    assert code == 3, err
    assert err.strip().splitlines()[-1].startswith("error: run stopped by ESTOP: camera cam")
    assert "shutdown: estop, arm safe: yes" in out
    assert sim.inspect(lambda fw: fw.estop)
