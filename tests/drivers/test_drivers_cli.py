"""`tinyvla-edge capture` and `tinyvla-edge sim-arm`: thin commands over drivers functions."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from drivers.arm.serial_arm import SerialArm
from edge.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_capture_command_json(tmp_path, capsys):
    code = main(["capture", "--camera", "front=synthetic:16x12@60?depth=1", "--frames", "3", "--output", str(tmp_path / "c"), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 3 and result["cameras"]["front"]["width"] == 16
    assert (tmp_path / "c" / "front" / "000002_depth.png").is_file()


def test_capture_command_bad_spec_is_one_line(tmp_path, capsys):
    code = main(["capture", "--camera", "webcam", "--frames", "1", "--output", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: unknown camera spec 'webcam'") and err.count("\n") == 1


def test_sim_arm_command_serves_until_ctrl_c(tmp_path):
    link, log = tmp_path / "ttyARM", tmp_path / "arm.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "sim-arm", "--link", str(link), "--dof", "3", "--space", "joint",
         "--log", str(log), "--fault", "nak:0.5", "--fault", "delay:0.001"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first_line = proc.stdout.readline().strip()
        assert first_line.startswith("/dev/pts/") and first_line.endswith(f"(link {link})")
        assert "3 DOF + gripper, joint space, faults: nak:0.5 delay:0.001" in proc.stdout.readline()
        assert link.is_symlink()
        with SerialArm(str(link), timeout_s=1.0, retries=8) as arm:
            assert arm.info.dof == 3 and arm.info.action_space == "joint"
            assert all(arm.send_target((0.01 * i, 0.0, 0.0, 0.5)).accepted for i in range(10))
            assert not arm.send_target((9.0, 0.0, 0.0, 0.5)).accepted
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "sim-arm stopped: 10 targets accepted" in out
    assert not link.exists()  # the link goes with the emulator
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(r["result"] == "ack" for r in records if r.get("type") == "SET_TARGET") == 10
    assert any(r.get("reason") == "out_of_limits" for r in records)
    assert any(r.get("reason") == "bad_crc" for r in records)  # the injected NAKs are logged too


def test_sim_arm_command_rejects_bad_faults(capsys):
    assert main(["sim-arm", "--fault", "meltdown:1"]) == 1
    assert "unknown fault 'meltdown'" in capsys.readouterr().err
