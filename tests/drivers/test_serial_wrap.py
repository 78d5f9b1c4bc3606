"""Idempotence across the sequence wrap (docs/serial-protocol.md, section 6): after 65,536
commands the host's counter comes back to the number of the last applied target; the new
target must still be applied, not ACKed as a retransmission. Real pyserial, real pty."""

from __future__ import annotations

from drivers.arm import protocol as sp
from drivers.arm.serial_arm import SerialArm

TARGET_A = (0.1, 0.0, 0.5)
TARGET_B = (0.2, 0.0, 0.5)


def drive_through_the_wrap(arm: SerialArm) -> tuple[int, int]:
    """Target A, heartbeats until the counter is about to reuse A's seq, then target B.

    Returns (seq of A, seq of B)."""
    first = arm.send_target(TARGET_A)
    assert first.accepted
    heartbeats = sp.SEQ_MODULUS - 1  # 65,534: the next number the counter offers is A's again
    for _ in range(heartbeats):
        arm.heartbeat()
    second = arm.send_target(TARGET_B)
    assert second.accepted, second
    return first.seq, second.seq


def test_a_new_target_after_the_wrap_is_applied_not_taken_for_a_retransmission(sim_arm):
    sim = sim_arm(dof=2, space="joint", watchdog_s=5.0)
    with SerialArm(sim.port, timeout_s=0.5) as arm:
        seq_a, seq_b = drive_through_the_wrap(arm)
        assert seq_b != seq_a  # the host skipped the number the arm holds as applied
        applied = sim.inspect(lambda fw: (tuple(fw.target), fw.last_seq, fw.stats.accepted))
        assert applied == (tuple(sp.float32(v) for v in TARGET_B), seq_b, 2)
        assert arm.state().last_seq == seq_b
