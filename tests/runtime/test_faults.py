"""The fault matrix, end to end: tiny policy, RealSense recordings through pyrealsense2, the
firmware emulator on a pty, SerialArm over pyserial. Assertions are on counts and outcomes,
never on speed (that is benchmarks/loop_overhead.py's job)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from edge.runtime.safety import StopReason
from edge.runtime.shutdown import ShutdownAction
from tests.runtime.predictors import (
    FailingConversion, NonFiniteChunks, NonFiniteConversion, Stalling,
)


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _accepted_targets(rig):
    return [e for e in _lines(rig.arm_log) if e["type"] == "SET_TARGET" and e["result"] == "ack"]


def test_a_run_follows_the_policy_within_limits_and_ends_with_the_arm_stopped(rig_factory):
    rig = rig_factory()
    result = rig.run()
    report = result.report
    assert result.ok and result.stop.reason is StopReason.COMPLETED
    assert report["ticks"] > 20 and report["inferences"] > 3
    assert report["link"]["accepted"] > 0 and report["chunks"]["admitted"] > 0
    assert rig.audit().ok
    assert result.shutdown.action is ShutdownAction.ESTOP and result.shutdown.arm_safe
    assert rig.firmware(lambda fw: fw.estop)
    # The episode log is complete: one line per tick, chunks with their frames, the report.
    episode = rig.directory / "episode"
    ticks = _lines(episode / "ticks.jsonl")
    assert len(ticks) == report["ticks"]
    assert {"tick", "due", "obs_time", "action", "target", "state", "hold", "limit_clamped"} <= ticks[-1].keys()
    chunks = _lines(episode / "chunks.jsonl")
    assert len(chunks) >= report["chunks"]["admitted"]
    for camera in rig.predictor.camera_names:
        assert len(list((episode / "frames" / camera).glob("*.png"))) == len(chunks)
    assert json.loads((episode / "report.json").read_text())["ticks"] == report["ticks"]
    events = [e["event"] for e in _lines(episode / "events.jsonl")]
    assert events == ["start", "stop", "shutdown"]


def test_an_inference_stall_holds_counts_and_resumes(rig_factory):
    rig = rig_factory()
    stalling = Stalling(rig.predictor, at=4, stall_s=0.7)
    result = rig.run(predictor=stalling, duration_s=2.5)
    assert result.ok, result.stop
    holds = result.report["safety"]["holds_by_reason"]
    assert holds["stale"] + holds["no_action"] > 0
    ticks = _lines(rig.directory / "episode" / "ticks.jsonl")
    held = [t["hold"] is not None for t in ticks]
    first_hold_after_start = next(i for i in range(5, len(held)) if held[i])
    assert not all(held[first_hold_after_start:]), "never resumed after the stall"
    assert not held[-1]  # following the policy again at the end
    assert rig.audit().ok


def test_a_camera_stall_longer_than_the_deadline_estops_with_a_clear_reason(rig_factory, short_recording):
    rig = rig_factory(recording_spec=f"recording:{short_recording}")
    result = rig.run(duration_s=3.0)
    assert result.stop.reason is StopReason.CAMERA_STALL
    assert "camera cam" in result.stop.message and "no new frame" in result.stop.message
    assert result.shutdown.action is ShutdownAction.ESTOP and result.shutdown.arm_safe
    assert rig.firmware(lambda fw: fw.estop)
    assert rig.audit().ok


def test_an_arm_unplugged_mid_run_estops_reconnects_and_stays_stopped(rig_factory):
    rig = rig_factory(faults=["unplug:0.5@1.0"])
    result = rig.run(duration_s=4.0, reconnect_budget_s=3.0)
    assert result.stop.reason is StopReason.ARM_DISCONNECTED
    assert result.shutdown.reconnect_attempts >= 1
    assert result.shutdown.arm_safe and rig.firmware(lambda fw: fw.estop)
    events = _lines(rig.arm_log)
    estop_at = max(i for i, e in enumerate(events) if e["type"] == "ESTOP")
    assert not any(e["type"] == "SET_TARGET" and e["result"] == "ack" for e in events[estop_at:])
    # No silent resume: nothing moves the arm after the run, however long we wait.
    accepted = rig.sim.summary()["accepted"]
    time.sleep(0.3)
    assert rig.sim.summary()["accepted"] == accepted
    assert rig.audit().ok


def test_corrupted_serial_bytes_are_retried_and_no_bad_target_is_ever_accepted(rig_factory):
    rig = rig_factory(faults=["corrupt:0.005"])
    result = rig.run(duration_s=2.5)
    link = result.report["link"]
    assert link["retried"] + link["timeouts"] + sum(link["naks"].values()) > 0, "the fault never bit"
    assert link["accepted"] > 0
    assert result.stop.reason in (StopReason.COMPLETED, StopReason.ARM_UNRESPONSIVE)
    assert rig.audit().ok


def test_nan_chunks_are_rejected_and_the_arm_holds(rig_factory):
    rig = rig_factory()
    result = rig.run(predictor=NonFiniteChunks(rig.predictor, good=3), duration_s=2.0)
    assert result.ok, result.stop
    assert result.report["chunks"]["rejected_non_finite"] > 0
    assert result.report["safety"]["holds"] > 0
    ticks = _lines(rig.directory / "episode" / "ticks.jsonl")
    assert ticks[-1]["hold"] in ("stale", "no_action")
    assert all(np.isfinite(e["values"]).all() for e in _accepted_targets(rig))
    assert rig.audit().ok


def test_a_nan_action_is_rejected_at_the_safety_layer_and_held(rig_factory):
    rig = rig_factory()
    result = rig.run(predictor=NonFiniteConversion(rig.predictor), duration_s=1.0)
    assert result.ok, result.stop
    assert result.report["safety"]["holds_by_reason"]["non_finite"] > 0
    assert result.report["safety"]["rejected_non_finite"] == result.report["safety"]["holds_by_reason"]["non_finite"]
    assert all(np.isfinite(e["values"]).all() for e in _accepted_targets(rig))


def test_the_arm_estop_flag_stops_the_loop(rig_factory):
    rig = rig_factory()
    threading.Timer(0.6, lambda: rig.firmware(lambda fw: setattr(fw, "estop", True))).start()
    result = rig.run(duration_s=3.0)
    assert result.stop.reason is StopReason.ARM_ESTOP
    assert result.shutdown.arm_safe


def test_an_exception_in_the_tick_still_leaves_the_arm_safe(rig_factory):
    rig = rig_factory()
    with pytest.raises(RuntimeError, match="conversion exploded"):
        rig.run(predictor=FailingConversion(rig.predictor), duration_s=2.0)
    assert rig.loop.result.stop.reason is StopReason.RUNTIME_ERROR
    assert rig.loop.result.shutdown.arm_safe and rig.firmware(lambda fw: fw.estop)
    assert (rig.directory / "episode" / "report.json").is_file()


def test_a_dry_run_sends_heartbeats_only(rig_factory):
    rig = rig_factory()
    result = rig.run(dry_run=True, duration_s=1.0)
    assert result.ok and result.report["dry_run"]
    assert result.report["link"]["sent"] == 0 and not _accepted_targets(rig)
    assert result.shutdown.action is ShutdownAction.NONE
    assert not rig.firmware(lambda fw: fw.estop)


def test_hold_on_shutdown_leaves_the_arm_holding_not_estopped(rig_factory):
    rig = rig_factory()
    result = rig.run(on_shutdown=ShutdownAction.HOLD, duration_s=1.0)
    assert result.ok and result.shutdown.action is ShutdownAction.HOLD
    assert not rig.firmware(lambda fw: fw.estop)
