"""Probes for the doctor: facts when the device works, a one-line error when it does not."""

from __future__ import annotations

import pytest

from drivers.probe import probe_arm, probe_camera


def test_probe_synthetic_camera_measures_fps():
    result = probe_camera("synthetic:32x24@30?depth=1", seconds=0.6)
    assert result["ok"] and result["error"] is None
    assert (result["width"], result["height"], result["depth"], result["fps_target"]) == (32, 24, True, 30.0)
    assert 12 <= result["fps_achieved"] <= 45  # ~30 fps, with room for a loaded machine
    assert result["dropped"] == 0 and result["stalls"] == 0


def test_probe_recording_reports_the_stall_at_its_end(db3_recording):
    result = probe_camera(f"recording:{db3_recording}?realtime=0", seconds=2.0)
    assert not result["ok"] and "recording ended" in result["error"]
    assert result["received"] >= 20 and result["dropped"] == 2


@pytest.mark.parametrize("spec, message", [("kinect", "unknown camera spec"), ("recording:/no/such.db3", "not found")])
def test_probe_camera_errors_are_reported_not_raised(spec, message):
    result = probe_camera(spec, seconds=0.1)
    assert not result["ok"] and message in result["error"]


def test_probe_arm(sim_arm):
    sim = sim_arm(dof=4, space="joint")
    result = probe_arm(sim.port, 1_000_000, timeout_s=1.0)
    assert result["ok"] and result["exists"] and result["accessible"]
    assert result["info"]["dof"] == 4 and result["info"]["action_space"] == "joint"
    assert result["reply_time"]["count"] == 50 and result["reply_time"]["p50_ms"] < 250
    assert result["low_latency"] is False and result["diagnosis"] is None
    assert result["state"] == {"estop": False, "fault": False, "watchdog_hold": True, "moving": False}
    assert sim.inspect(lambda fw: fw.stats.accepted) == 0  # a probe never moves the arm


def test_probe_arm_errors():
    result = probe_arm("/dev/ttyNOPE", 115200, timeout_s=0.2)
    assert not result["ok"] and not result["exists"] and "does not exist" in result["error"]
