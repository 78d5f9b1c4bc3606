"""The firmware contract as a pure state machine: explicit times, no threads, no pty."""

from __future__ import annotations

import math

import pytest

from drivers.arm import protocol as sp
from drivers.errors import DriverError
from drivers.sim.firmware import ArmFirmware, FirmwareConfig


def _firmware(events=None, **overrides) -> ArmFirmware:
    config = FirmwareConfig(**{"dof": 2, "space": "joint", "watchdog_s": 0.5, "time_constant_s": 0.05, **overrides})
    return ArmFirmware(config, on_event=(events.append if events is not None else (lambda e: None)))


def _send(fw: ArmFirmware, message, seq: int, now: float):
    (reply_seq, reply), = fw.handle(sp.Received(1, seq, message), now)
    assert reply_seq == seq
    return reply


def test_defaults_and_info():
    fw = _firmware()
    info = _send(fw, sp.Hello(), 0, 0.0)
    assert info.dof == 2 and info.action_space is sp.ActionSpace.JOINT and info.watchdog_ms == 500
    assert info.lower == (sp.float32(-math.pi), sp.float32(-math.pi), 0.0)
    assert info.upper == (sp.float32(math.pi), sp.float32(math.pi), 1.0)
    assert fw.measured == [0.0, 0.0, 0.5]  # home: the middle of every range
    state = _send(fw, sp.GetState(), 1, 0.0)
    assert state.has(sp.StateFlag.WATCHDOG_HOLD) and state.last_seq == sp.SEQ_UNKNOWN


def test_config_validates():
    with pytest.raises(DriverError, match="dof must be"):
        FirmwareConfig(dof=0)
    with pytest.raises(DriverError, match="lower needs dof \\+ 1 = 3 values"):
        FirmwareConfig(dof=2, lower=(0.0,))
    with pytest.raises(DriverError, match="below its upper"):
        FirmwareConfig(dof=1, lower=(1.0, 0.0), upper=(0.0, 1.0))
    with pytest.raises(DriverError, match="space"):
        FirmwareConfig(space="cartesian")


def test_target_applied_with_first_order_dynamics():
    fw = _firmware()
    fw.step(0.0)
    assert _send(fw, sp.SetTarget((0.3, -0.2, 0.5)), 1, 0.0) == sp.Ack(sp.MsgType.SET_TARGET)
    fw.step(0.05)  # one time constant: 63 % of the way
    assert fw.measured[0] == pytest.approx(0.3 * (1 - math.exp(-1)), rel=1e-5)
    assert fw.moving
    for t in (0.1, 0.2, 0.3, 0.4):
        fw.step(t)
    assert fw.measured[:2] == pytest.approx([0.3, -0.2], abs=1e-3)
    state = _send(fw, sp.GetState(), 2, 0.4)
    assert state.last_seq == 1 and not state.has(sp.StateFlag.WATCHDOG_HOLD)


def test_out_of_limits_is_refused_never_clamped():
    events = []
    fw = _firmware(events)
    fw.step(0.0)
    for values, axis in [((0.1, 3.5, 0.5), 1), ((0.1, 0.0, 1.01), 2), ((math.nan, 0.0, 0.5), 0), ((0.0, -math.inf, 0.5), 1)]:
        reply = _send(fw, sp.SetTarget(values), 7, 0.0)
        assert reply == sp.Nak(sp.MsgType.SET_TARGET, sp.NakReason.OUT_OF_LIMITS, axis)
    assert fw.target == [0.0, 0.0, 0.5]  # nothing changed
    assert fw.stats.accepted == 0 and fw.stats.naks == 4
    assert events[0]["result"] == "nak" and events[0]["reason"] == "out_of_limits" and events[0]["axis"] == 1


def test_exactly_at_the_limit_read_from_info_is_accepted():
    fw = _firmware(max_step=(10.0, 10.0, 1.0))
    info = _send(fw, sp.Hello(), 0, 0.0)
    assert _send(fw, sp.SetTarget(info.upper), 1, 0.0) == sp.Ack(sp.MsgType.SET_TARGET)


def test_step_larger_than_max_step_is_refused():
    fw = _firmware()
    reply = _send(fw, sp.SetTarget((0.4, 0.51, 0.5)), 1, 0.0)  # max_step 0.5 on axis 1
    assert reply == sp.Nak(sp.MsgType.SET_TARGET, sp.NakReason.STEP_TOO_LARGE, 1)
    # Steps are measured from the current target, so a walk of small steps is fine.
    for seq, x in enumerate((0.4, 0.8, 1.2), start=2):
        assert _send(fw, sp.SetTarget((x, 0.0, 0.5)), seq, 0.0) == sp.Ack(sp.MsgType.SET_TARGET)


def test_wrong_axis_count_is_bad_length():
    fw = _firmware()
    reply = _send(fw, sp.SetTarget((0.0, 0.0)), 1, 0.0)
    assert reply == sp.Nak(sp.MsgType.SET_TARGET, sp.NakReason.BAD_LENGTH, None)


def test_estop_latches_until_cleared():
    fw = _firmware()
    fw.step(0.0)
    _send(fw, sp.SetTarget((0.4, 0.0, 0.5)), 1, 0.0)
    fw.step(0.02)
    assert _send(fw, sp.Estop(), 2, 0.02) == sp.Ack(sp.MsgType.ESTOP)
    stopped_at = list(fw.measured)
    for t in (0.1, 0.5, 2.0):
        fw.step(t)
        assert _send(fw, sp.Heartbeat(), 3, t) == sp.Ack(sp.MsgType.HEARTBEAT)
        assert _send(fw, sp.SetTarget(tuple(stopped_at)), 4, t).reason == sp.NakReason.ESTOPPED
    assert fw.measured == stopped_at and fw.estop
    assert _send(fw, sp.ClearEstop(), 5, 2.0) == sp.Ack(sp.MsgType.CLEAR_ESTOP)
    state = _send(fw, sp.GetState(), 6, 2.0)
    assert not state.has(sp.StateFlag.ESTOP) and state.has(sp.StateFlag.WATCHDOG_HOLD)
    assert _send(fw, sp.SetTarget(tuple(stopped_at)), 7, 2.0) == sp.Ack(sp.MsgType.SET_TARGET)


def test_watchdog_holds_position_when_commands_stop():
    events = []
    fw = _firmware(events)
    fw.step(0.0)
    _send(fw, sp.SetTarget((0.45, 0.0, 0.5)), 1, 0.0)
    for t in (0.1, 0.2, 0.3, 0.4, 0.5):  # fed at 0.0: still within 0.5 s
        fw.step(t)
        _send(fw, sp.GetState(), 2, t)  # polling state does not feed the watchdog
    assert not fw.watchdog_hold
    fw.step(0.51)
    assert fw.watchdog_hold and fw.stats.watchdog_holds == 1
    held = list(fw.measured)
    assert fw.target == held and held[0] < 0.45  # it stopped where it was, short of the target
    fw.step(1.0)
    assert fw.measured == held and not fw.moving
    assert {"type": "WATCHDOG", "result": "hold"} in events


def test_heartbeats_keep_the_watchdog_fed():
    fw = _firmware()
    fw.step(0.0)
    _send(fw, sp.SetTarget((0.3, 0.0, 0.5)), 1, 0.0)
    for t in (0.3, 0.6, 0.9, 1.2):
        fw.step(t)
        _send(fw, sp.Heartbeat(), 2, t)
    fw.step(1.3)
    assert not fw.watchdog_hold
    assert fw.measured[0] == pytest.approx(0.3, abs=1e-3)


def test_retransmission_is_acked_not_reapplied_and_hello_starts_a_session():
    events = []
    fw = _firmware(events)
    _send(fw, sp.SetTarget((0.2, 0.0, 0.5)), 9, 0.0)
    _send(fw, sp.SetTarget((0.3, 0.0, 0.5)), 10, 0.0)
    assert _send(fw, sp.SetTarget((0.3, 0.0, 0.5)), 10, 0.0) == sp.Ack(sp.MsgType.SET_TARGET)
    assert fw.stats.accepted == 2 and len([e for e in events if e["result"] == "ack"]) == 2
    _send(fw, sp.Hello(), 0, 0.0)
    assert fw.last_seq == sp.SEQ_UNKNOWN
    assert _send(fw, sp.SetTarget((0.35, 0.0, 0.5)), 10, 0.0) == sp.Ack(sp.MsgType.SET_TARGET)
    assert fw.stats.accepted == 3 and fw.target[0] == pytest.approx(0.35)


def test_rejected_frames_and_wrong_direction_messages_are_nakked():
    fw = _firmware()
    (seq, reply), = fw.handle(sp.FrameRejected("CRC mismatch", sp.NakReason.BAD_CRC), 0.0)
    assert seq == sp.SEQ_UNKNOWN and reply == sp.Nak(0, sp.NakReason.BAD_CRC, None)
    (seq, reply), = fw.handle(sp.FrameRejected("v2", sp.NakReason.BAD_VERSION, sp.MsgType.SET_TARGET, 5), 0.0)
    assert seq == 5 and reply.reason == sp.NakReason.BAD_VERSION
    assert _send(fw, sp.Ack(1), 6, 0.0) == sp.Nak(sp.MsgType.ACK, sp.NakReason.UNKNOWN_TYPE, None)
    assert fw.stats.bad_frames == 2


def test_an_acked_retransmission_feeds_the_watchdog_but_a_clear_estop_when_not_estopped_changes_nothing():
    fw = _firmware()
    fw.step(0.0)
    _send(fw, sp.SetTarget((0.1, 0.0, 0.5)), 1, 0.0)
    for t in (0.4, 0.8):  # the ACK was lost, the host resends: the arm hears a live host
        fw.step(t)
        assert _send(fw, sp.SetTarget((0.1, 0.0, 0.5)), 1, t) == sp.Ack(sp.MsgType.SET_TARGET)
    fw.step(1.2)
    assert not fw.watchdog_hold and fw.stats.accepted == 1
    assert _send(fw, sp.ClearEstop(), 2, 1.2) == sp.Ack(sp.MsgType.CLEAR_ESTOP)
    assert not fw.watchdog_hold and not fw.estop


def test_injected_naks_take_the_spec_form_for_an_unreadable_frame():
    fw = _firmware()
    seq, reply = fw.nak_corrupted(sp.Received(1, 42, sp.SetTarget((0.1, 0.0, 0.5))), 0.0)
    assert (seq, reply) == (sp.SEQ_UNKNOWN, sp.Nak(0, sp.NakReason.BAD_CRC, None))
    assert sp.encode(reply, seq)[:-1] == sp.encode(sp.Nak(0, 1, None), 0xFFFF)[:-1]
