"""SerialArm (real pyserial) against the firmware emulator on a real pty: the contract, bad
input, and the fault matrix. Timeouts are generous where success is expected, because other
work shares this machine's CPUs; the bounds asserted on failures are the client's own."""

from __future__ import annotations

import json
import os
import time

import pytest

from drivers.arm import RejectReason
from drivers.errors import (
    DeviceTimeoutError,
    DriverError,
    IncompatibleFirmware,
    NotConnectedError,
    PermissionDenied,
    PortBusy,
    PortNotFound,
)
from drivers.arm.serial_arm import SerialArm
from drivers.arm.protocol import float32
from drivers.sim.sim_arm import SimArm

SLACK_S = 0.25  # scheduling slack on a loaded machine, on top of a call's own timeout


def _timed(call, *args):
    start = time.monotonic()
    try:
        return call(*args), time.monotonic() - start
    except DriverError as e:
        return e, time.monotonic() - start


def _wait_until(predicate, timeout_s: float = 3.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- the contract over the wire ------------------------------------------------------------------


def test_handshake_state_stream_and_targets(sim_arm):
    sim = sim_arm(dof=3, space="joint")
    with SerialArm(sim.port, timeout_s=0.5) as arm:
        info = arm.info
        assert (info.protocol_version, info.firmware_version, info.dof, info.action_space) == (1, "1.0.0", 3, "joint")
        assert info.watchdog_s == pytest.approx(0.2) and len(info.lower) == 4
        assert arm.low_latency is False  # a pty has no FTDI latency timer; asking must not fail
        states = [arm.state() for _ in range(10)]
        assert all(b.host_time_s > a.host_time_s for a, b in zip(states, states[1:]))
        assert states[0].last_seq is None and states[0].watchdog_hold
        target = (0.2, -0.1, 0.05, 0.7)
        result = arm.send_target(target)
        assert result.accepted and result.attempts == 1

        def arrived():
            arm.heartbeat()
            state = arm.state()
            return not state.moving and state.as_target() == pytest.approx(target, abs=1e-3)

        _wait_until(arrived)
        state = arm.state()
        assert state.last_seq == result.seq and not state.watchdog_hold and not state.moving


def test_out_of_limits_is_nakked_with_the_axis_and_not_applied(sim_arm):
    sim = sim_arm(dof=2, space="joint", log=None)
    with SerialArm(sim.port, timeout_s=0.5) as arm:
        result = arm.send_target((0.1, 0.0, 1.5))  # gripper upper limit is 1.0
        assert (result.accepted, result.reason, result.axis) == (False, RejectReason.OUT_OF_LIMITS, 2)
        assert sim.inspect(lambda fw: list(fw.target)) == [0.0, 0.0, 0.5]
        result = arm.send_target((0.6, 0.0, 0.5))  # max_step 0.5
        assert (result.reason, result.axis) == (RejectReason.STEP_TOO_LARGE, 0)
        with pytest.raises(DriverError, match="target has 2 values but the arm takes 3"):
            arm.send_target((0.0, 0.0))
        with pytest.raises(DriverError, match="not finite"):
            arm.send_target((float("nan"), 0.0, 0.5))


def test_watchdog_hold_when_commands_stop(sim_arm):
    sim = sim_arm(dof=2, space="joint", watchdog_s=0.15, time_constant_s=0.5)
    with SerialArm(sim.port, timeout_s=0.5) as arm:
        assert arm.send_target((0.4, 0.0, 0.5)).accepted
        time.sleep(0.3)
        held = arm.state()
        assert held.watchdog_hold and not held.moving
        assert 0.0 < held.values[0] < 0.4  # stopped on the way, not at the target
        time.sleep(0.1)
        assert arm.state().values == held.values


def test_estop_latches_until_cleared(sim_arm):
    sim = sim_arm(dof=2, space="joint")
    with SerialArm(sim.port, timeout_s=0.5) as arm:
        arm.estop()
        assert arm.state().estop
        assert arm.send_target((0.0, 0.0, 0.5)).reason is RejectReason.ESTOPPED
        arm.heartbeat()
        time.sleep(0.3)  # longer than the watchdog: still latched
        assert arm.state().estop
        arm.clear_estop()
        assert not arm.state().estop
        assert arm.send_target((0.0, 0.0, 0.5)).accepted


def test_log_has_every_accepted_target_and_nak(sim_arm, tmp_path):
    log = tmp_path / "arm.jsonl"
    sim = sim_arm(dof=1, space="ee", log=log)
    with SerialArm(sim.port, timeout_s=0.5) as arm:
        ok = arm.send_target((0.25, 0.5))
        bad = arm.send_target((9.0, 0.5))
    sim.stop()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    targets = [r for r in records if r.get("type") == "SET_TARGET"]
    assert [(r["seq"], r["result"]) for r in targets] == [(ok.seq, "ack"), (bad.seq, "nak")]
    assert targets[0]["values"] == [0.25, 0.5] and targets[1]["reason"] == "out_of_limits"
    assert targets[1]["axis"] == 0 and all(isinstance(r["time"], float) for r in records)


# -- what a user can get wrong ------------------------------------------------------------------


def test_missing_port():
    arm = SerialArm("/dev/ttyDOES_NOT_EXIST")
    with pytest.raises(PortNotFound, match=r"serial port /dev/ttyDOES_NOT_EXIST does not exist \(connected: "):
        arm.connect()
    with pytest.raises(NotConnectedError, match="not connected"):
        arm.state()


def test_busy_port_is_refused_until_released(sim_arm):
    sim = sim_arm()
    first = SerialArm(sim.port, timeout_s=0.5)
    first.connect()
    with pytest.raises(PortBusy, match=rf"serial port {sim.port} is in use by another program.*fuser"):
        SerialArm(sim.port).connect()
    first.close()
    with SerialArm(sim.port, timeout_s=0.5) as second:
        assert second.state() is not None


def test_permission_denied_names_the_dialout_group(sim_arm):
    sim = sim_arm()
    if os.geteuid() != 0:
        os.chmod(sim.port, 0)
        with pytest.raises(PermissionDenied) as e:
            SerialArm(sim.port).connect()
        message = str(e.value)
    else:
        # root may open anything: try as 'nobody' in a forked child (which only opens the port).
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.setgid(65534)
                os.setuid(65534)
                try:
                    SerialArm(sim.port).connect()
                    os.write(write_fd, b"opened")
                except DriverError as err:
                    os.write(write_fd, f"{type(err).__name__}: {err}".encode())
            finally:
                os._exit(0)
        os.close(write_fd)
        deadline = time.monotonic() + 10
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            assert time.monotonic() < deadline, "child hung"
            time.sleep(0.01)
        message = os.read(read_fd, 4096).decode()
        os.close(read_fd)
        assert message.startswith("PermissionDenied: ")
    assert f"permission denied opening {sim.port}" in message
    assert "'dialout' group" in message and "usermod -aG dialout" in message


def test_wrong_protocol_version_is_refused(sim_arm):
    sim = sim_arm(protocol_version=2)
    arm = SerialArm(sim.port, timeout_s=0.5)
    with pytest.raises(IncompatibleFirmware, match="speaks serial protocol v2; this tinyvla-edge speaks v1"):
        arm.connect()
    assert not arm.is_connected


def test_baud_mismatch_times_out_and_says_so(sim_arm):
    sim = sim_arm(baud=115200)
    result, took = _timed(SerialArm(sim.port, baud=1_000_000, handshake_timeout_s=0.4).connect)
    assert isinstance(result, DeviceTimeoutError)
    assert "at 1000000 baud within 0.4 s" in str(result) and "probably does not match" in str(result)
    assert took < 0.4 + SLACK_S
    with SerialArm(sim.port, baud=115200, timeout_s=0.5) as arm:  # the right speed works
        assert arm.info.dof == 7


def test_nobody_answering_times_out_within_the_handshake_timeout():
    master, slave = os.openpty()
    try:
        result, took = _timed(SerialArm(os.ttyname(slave), handshake_timeout_s=0.3).connect)
    finally:
        os.close(master)
        os.close(slave)
    assert isinstance(result, DeviceTimeoutError)
    assert "no INFO reply to HELLO" in str(result) and "check the baud rate matches the firmware" in str(result)
    assert took < 0.3 + SLACK_S


# -- the fault matrix ---------------------------------------------------------------------------


def _drive(arm: SerialArm, count: int):
    """Send `count` small targets; return (results, errors, longest call, values sent)."""
    results, errors, longest, sent = [], [], 0.0, set()
    for i in range(count):
        values = (0.001 * i, 0.0, 0.5)
        sent.add(values)
        outcome, took = _timed(arm.send_target, values)
        longest = max(longest, took)
        (errors if isinstance(outcome, DriverError) else results).append(outcome)
    return results, errors, longest, sent


def _applied(sim: SimArm, log) -> list[tuple]:
    sim.stop()
    return [
        tuple(r["values"]) for r in map(json.loads, log.read_text().splitlines())
        if r.get("type") == "SET_TARGET" and r["result"] == "ack"
    ]


@pytest.mark.parametrize("fault", ["corrupt:0.005", "drop:0.005", "corrupt:0.02:tx", "drop:0.02:rx", "nak:0.2"])
def test_byte_faults_are_retried_and_never_apply_a_damaged_target(sim_arm, tmp_path, fault):
    log = tmp_path / "log.jsonl"
    sim = sim_arm(dof=2, space="joint", faults=[fault], log=log, seed=11)
    arm = SerialArm(sim.port, timeout_s=0.5, retries=4)
    arm.connect()
    results, errors, longest, sent = _drive(arm, 60)
    arm.close()
    assert longest < arm.timeout_s + SLACK_S
    assert all(isinstance(e, DeviceTimeoutError) for e in errors)
    assert len(results) >= 57 and all(r.accepted for r in results), (errors, [r for r in results if not r.accepted])
    assert sum(r.attempts for r in results) > len(results)  # the faults did bite, and retries fixed them
    assert set(_applied(sim, log)) <= {tuple(float32(v) for v in s) for s in sent}  # as float32 on the wire


def test_delayed_replies(sim_arm):
    sim = sim_arm(dof=2, space="joint", faults=["delay:0.05"])
    with SerialArm(sim.port, timeout_s=0.3, retries=2) as arm:  # 100 ms per attempt
        results, errors, _, _ = _drive(arm, 5)
        assert not errors and all(r.accepted and r.attempts == 1 for r in results)

    sim = sim_arm(dof=2, space="joint", faults=["delay:0.15"])
    with SerialArm(sim.port, timeout_s=0.6, retries=2, handshake_timeout_s=2.0) as arm:  # 200 ms per attempt
        results, errors, _, _ = _drive(arm, 3)
        assert not errors and all(r.accepted for r in results)
    sim = sim_arm(dof=2, space="joint", faults=["delay:0.15"])
    with SerialArm(sim.port, timeout_s=0.3, retries=2, handshake_timeout_s=2.0) as arm:  # 100 ms per attempt
        results, errors, _, _ = _drive(arm, 3)
        # The first attempt times out, the retransmission (same seq) is in flight when the late
        # reply arrives: accepted on attempt 2 or 3, and applied once per command.
        assert not errors and all(r.accepted and r.attempts >= 2 for r in results)
        assert sim.inspect(lambda fw: fw.stats.accepted) == 3

    sim = sim_arm(dof=2, space="joint", faults=["delay:0.5"])
    arm = SerialArm(sim.port, timeout_s=0.2, handshake_timeout_s=2.0)
    arm.connect()
    outcome, took = _timed(arm.state)
    arm.close()
    assert isinstance(outcome, DeviceTimeoutError) and "within 0.200 s" in str(outcome)
    assert took < 0.2 + SLACK_S


def test_silence_times_out_then_recovers(sim_arm):
    sim = sim_arm(dof=2, space="joint")
    with SerialArm(sim.port, timeout_s=0.15) as arm:
        sim.add_fault("silence:0.5@0")
        outcome, took = _timed(arm.state)
        assert isinstance(outcome, DeviceTimeoutError) and took < 0.15 + SLACK_S
        time.sleep(0.5)
        assert not arm.state().estop  # answering again, same session


def test_unplug_is_detected_and_reconnect_rehandshakes(sim_arm, tmp_path):
    link = tmp_path / "ttyARM"
    sim = sim_arm(dof=2, space="joint", link=link)
    arm = SerialArm(str(link), timeout_s=0.3)
    info = arm.connect()
    sim.add_fault("unplug:0.6@0")
    _wait_until(lambda: not link.exists(), 2.0)
    outcome, took = _timed(arm.state)
    assert isinstance(outcome, NotConnectedError) and took < 0.3 + SLACK_S
    assert "port is gone: unplugged?" in str(outcome) and "call reconnect()" in str(outcome)
    with pytest.raises(NotConnectedError, match="not connected"):
        arm.send_target((0.0, 0.0, 0.5))
    outcome, took = _timed(arm.reconnect, 0.1)
    assert isinstance(outcome, NotConnectedError) and "did not come back within 0.1 s" in str(outcome)
    assert arm.reconnect(timeout_s=3.0) == info
    assert sim.unplug_count == 1  # (the new pty may reuse the old number)
    assert arm.send_target((0.0, 0.0, 0.5)).accepted
    arm.close()


def test_calls_from_two_threads_never_mix_up_replies(sim_arm):
    import threading

    sim = sim_arm(dof=2, space="joint")
    failures = []
    with SerialArm(sim.port, timeout_s=1.0) as arm:

        def commander():
            for i in range(30):
                result = arm.send_target((0.001 * i, 0.0, 0.5))
                if not result.accepted:
                    failures.append(result)

        def watcher():
            for _ in range(30):
                state = arm.state()
                if len(state.values) != 2:
                    failures.append(state)

        threads = [threading.Thread(target=commander), threading.Thread(target=watcher)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert not failures
    assert sim.inspect(lambda fw: fw.stats.accepted) == 30
