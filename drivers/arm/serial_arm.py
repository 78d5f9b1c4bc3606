"""`SerialArm`: the `Arm` protocol over serial protocol v1 (docs/serial-protocol.md) with pyserial.

One request is in flight at a time: write a frame, read until the reply with the same sequence
number arrives. A request is retried (same sequence number, so the arm can tell a retransmission
from a new command) when the reply is a NAK(BAD_CRC), arrives corrupted, or does not come within
one attempt's time. An attempt lasts at least what the spec allows the arm (its 5 ms reply
budget plus both frames' transfer time at the baud rate, plus the host's USB/scheduling margin),
so an arm inside the spec is never sent a frame twice. The whole call never takes longer than
its timeout.
"""

from __future__ import annotations

import contextlib
import os
import select
import statistics
import termios
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import serial

from drivers.arm import protocol as sp
from drivers.arm.base import ArmInfo, ArmState, RejectReason, TargetResult
from drivers.errors import (
    DeviceTimeoutError,
    DriverError,
    HandshakeRefused,
    IncompatibleFirmware,
    NotConnectedError,
    PermissionDenied,
    PortNotFound,
)
from drivers.arm.serial_port import enable_low_latency, open_serial

_REJECT_REASONS = {
    sp.NakReason.BAD_CRC: RejectReason.CORRUPTED,
    sp.NakReason.OUT_OF_LIMITS: RejectReason.OUT_OF_LIMITS,
    sp.NakReason.ESTOPPED: RejectReason.ESTOPPED,
    sp.NakReason.STEP_TOO_LARGE: RejectReason.STEP_TOO_LARGE,
    sp.NakReason.FAULT: RejectReason.FAULT,
    sp.NakReason.UNKNOWN_TYPE: RejectReason.UNSUPPORTED,
    sp.NakReason.BAD_LENGTH: RejectReason.UNSUPPORTED,
    sp.NakReason.BAD_VERSION: RejectReason.UNSUPPORTED,
}

_EXPECTED_REPLY = {
    sp.MsgType.HELLO: sp.Info,
    sp.MsgType.GET_STATE: sp.State,
}
_REPLY_TYPE = {sp.MsgType.HELLO: sp.MsgType.INFO, sp.MsgType.GET_STATE: sp.MsgType.STATE}

# What the host adds to the spec's reply budget: USB-serial latency both ways (full-speed USB
# polls every 1 ms frame; an FTDI in low-latency mode flushes after 1 ms) and the scheduler
# waking the reading thread.
HOST_MARGIN_S = 0.002
_IO_ERRORS = (serial.SerialException, OSError, termios.error, TypeError, ValueError)


def attempt_timeout_s(command: sp.MsgType, axes: int, baud: int) -> float:
    """How long one attempt must wait for an arm inside the spec: the command's transfer time,
    the arm's reply budget, the longest reply's transfer time, and the host's margin."""
    reply = _REPLY_TYPE.get(command, sp.MsgType.NAK)  # NAK (3 bytes) is the longest ACK-or-NAK reply
    on_wire = 1 + sp.wire_size(command, axes) + sp.wire_size(reply, axes)  # 1: the leading 0x00
    return sp.transfer_s(on_wire, baud) + sp.REPLY_BUDGET_S + HOST_MARGIN_S


def state_transfer_s(axes: int, baud: int) -> float:
    """Wire time of one GET_STATE (with its leading 0x00) and its STATE reply."""
    return sp.transfer_s(1 + sp.wire_size(sp.MsgType.GET_STATE, axes) + sp.wire_size(sp.MsgType.STATE, axes), baud)


def time_replies(get_state: Callable[[], object], count: int, transfer_s: float) -> "ReplyTime":
    """The arm's reply time over `count` calls of `get_state`: each round trip less `transfer_s`."""
    replies = []
    for _ in range(count):
        start = time.perf_counter()
        get_state()
        replies.append(max(0.0, time.perf_counter() - start - transfer_s))
    replies.sort()
    p99 = replies[min(len(replies) - 1, int(0.99 * len(replies)))]
    return ReplyTime(len(replies), statistics.median(replies), p99, replies[-1])


@dataclass(frozen=True)
class ReplyTime:
    """The arm's measured reply time over a burst of GET_STATE (round trip less both frames'
    transfer time at the baud rate), against the spec's budget."""

    count: int
    p50_s: float
    p99_s: float
    max_s: float

    @property
    def within_spec(self) -> bool:
        return self.p99_s <= sp.REPLY_BUDGET_S

    def as_dict(self) -> dict:
        return {"count": self.count, "p50_ms": round(1e3 * self.p50_s, 3), "p99_ms": round(1e3 * self.p99_s, 3),
                "max_ms": round(1e3 * self.max_s, 3), "spec_ms": 1e3 * sp.REPLY_BUDGET_S,
                "within_spec": self.within_spec}


class SerialArm:
    """An arm speaking serial protocol v1 on `port`.

    timeout_s bounds every call but connect (handshake_timeout_s); a call makes up to
    1 + retries attempts within it. Use as a context manager or call close().
    """

    def __init__(
        self,
        port: str,
        baud: int = 1_000_000,
        timeout_s: float = 0.1,
        retries: int = 2,
        handshake_timeout_s: float = 1.0,
    ):
        if timeout_s <= 0 or handshake_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.port = port
        self.baud = baud
        self.timeout_s = timeout_s
        self.retries = retries
        self.handshake_timeout_s = handshake_timeout_s
        self.low_latency = False
        self._serial: serial.Serial | None = None
        self._info: ArmInfo | None = None
        self._decoder = sp.FrameDecoder()
        self._seq = 0
        # Sequence numbers the arm may hold as its last applied target: a new command must never
        # carry one of them, or the arm would ACK it as a retransmission without applying it
        # (docs/serial-protocol.md, section 6, "Idempotence across the wrap").
        self._maybe_applied: set[int] = set()
        self._lock = threading.Lock()  # one request in flight, whichever thread asks
        self._bytes_seen = 0  # bytes read since the handshake began, to tell silence from a baud mismatch
        self._unaccepted: str | None = None  # a valid frame (CRC good) this host could not accept, and why

    # -- lifecycle ------------------------------------------------------------------------------

    def connect(self) -> ArmInfo:
        """Open the port (exclusively) and handshake: HELLO -> INFO. Refuses other protocol versions."""
        with self._lock:
            self._close_port()
            self._serial = open_serial(self.port, self.baud)
            self.low_latency = enable_low_latency(self._serial)
            try:
                self._info = self._handshake()
            except BaseException:
                self._close_port()
                raise
            return self._info

    def reconnect(self, timeout_s: float = 3.0) -> ArmInfo:
        """Close, wait up to timeout_s for the port to (re)appear and open, then handshake again."""
        self.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.connect()
            except (PortNotFound, PermissionDenied) as e:
                # A re-plugged adapter shows up before udev has given it its group: keep trying.
                if time.monotonic() >= deadline:
                    raise NotConnectedError(
                        f"serial port {self.port} did not come back within {timeout_s:.1f} s ({e})"
                    ) from e
            time.sleep(0.02)

    def close(self) -> None:
        """Release the port. Idempotent."""
        with self._lock:
            self._close_port()
            self._info = None

    def __enter__(self) -> "SerialArm":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def info(self) -> ArmInfo:
        if self._info is None:
            raise NotConnectedError(f"arm on {self.port} is not connected; call connect() first")
        return self._info

    @property
    def is_connected(self) -> bool:
        return self._serial is not None and self._info is not None

    # -- commands -------------------------------------------------------------------------------

    def send_target(self, values: Sequence[float]) -> TargetResult:
        """Send one target (dof values + gripper). Returns accepted, or the arm's reason to refuse."""
        target = self.info.check_target(values)
        reply, seq, attempts = self._request(sp.SetTarget(target))
        if isinstance(reply, sp.Ack):
            return TargetResult(True, seq, attempts=attempts)
        return TargetResult(False, seq, _reject_reason(reply.reason), reply.axis, attempts)

    def state(self) -> ArmState:
        """Ask the arm for its measured state."""
        info = self.info
        reply, _, _ = self._request(sp.GetState())
        if not isinstance(reply, sp.State):
            raise DriverError(f"arm on {self.port} refused GET_STATE ({_nak_text(reply)})")
        if len(reply.values) != info.axes:
            raise DriverError(f"arm on {self.port} reported {len(reply.values)} values; its INFO said {info.axes}")
        return ArmState(
            values=tuple(reply.values[:-1]),
            gripper=reply.values[-1],
            moving=reply.has(sp.StateFlag.MOVING),
            fault=reply.has(sp.StateFlag.FAULT),
            estop=reply.has(sp.StateFlag.ESTOP),
            watchdog_hold=reply.has(sp.StateFlag.WATCHDOG_HOLD),
            last_seq=None if reply.last_seq == sp.SEQ_UNKNOWN else reply.last_seq,
            host_time_s=time.monotonic(),
        )

    def heartbeat(self) -> None:
        """Feed the arm's watchdog."""
        self._command(sp.Heartbeat())

    def estop(self) -> None:
        """Stop the arm; it stays stopped until clear_estop()."""
        self._command(sp.Estop())

    def clear_estop(self) -> None:
        """Release a latched ESTOP."""
        self._command(sp.ClearEstop())

    @contextlib.contextmanager
    def longer_timeout(self, timeout_s: float) -> Iterator[None]:
        """Within the block every call may take up to `timeout_s` (never less than the usual
        timeout): for shutdown and measurements, where a slow but live arm must get its answer in."""
        before = self.timeout_s
        self.timeout_s = max(before, timeout_s)
        try:
            yield
        finally:
            self.timeout_s = before

    def measure_reply_time(self, count: int = 30) -> ReplyTime:
        """Time `count` GET_STATE exchanges (which do not feed the watchdog or move the arm)."""
        return time_replies(self.state, count, state_transfer_s(self.info.axes, self.baud))

    # -- internals ------------------------------------------------------------------------------

    def _command(self, message: sp.Message) -> None:
        _ = self.info  # raises NotConnectedError before connect()
        reply, _, _ = self._request(message)
        if not isinstance(reply, sp.Ack):
            name = sp.encode_body(message)[0].name
            raise DriverError(f"arm on {self.port} refused {name} ({_nak_text(reply)})")

    def _handshake(self) -> ArmInfo:
        self._bytes_seen = 0
        self._unaccepted = None
        try:
            reply, _, _ = self._exchange(sp.Hello(), self.handshake_timeout_s, retries=max(self.retries, 4))
        except DeviceTimeoutError:
            if self._unaccepted:
                raise HandshakeRefused(
                    f"the arm on {self.port} answers in valid frames, but this host cannot accept its reply to "
                    f"HELLO: {self._unaccepted}; the baud rate is right, the firmware breaks docs/serial-protocol.md"
                ) from None
            hint = (
                f"received {self._bytes_seen} bytes but no valid frame: the baud rate "
                f"({self.baud}) probably does not match the firmware's"
                if self._bytes_seen
                else "check the baud rate matches the firmware, the arm is powered and this is the arm's port"
            )
            raise DeviceTimeoutError(
                f"no INFO reply to HELLO from {self.port} at {self.baud} baud within "
                f"{self.handshake_timeout_s:.1f} s; {hint}"
            ) from None
        if not isinstance(reply, sp.Info):
            raise HandshakeRefused(f"arm on {self.port} refused HELLO ({_nak_text(reply)}); the baud rate is right, "
                                   "the firmware breaks docs/serial-protocol.md (HELLO is answered INFO in any version)")
        self._maybe_applied.clear()  # HELLO made the arm forget its last applied seq
        if reply.protocol_version != sp.PROTOCOL_VERSION:
            raise IncompatibleFirmware(
                f"arm firmware on {self.port} speaks serial protocol v{reply.protocol_version}; this tinyvla-edge "
                f"speaks v{sp.PROTOCOL_VERSION}: update the firmware or tinyvla-edge so they match"
            )
        try:
            return self._arm_info(reply)
        except DriverError as e:
            raise HandshakeRefused(f"arm on {self.port} sent an INFO this host cannot use: {e}") from e

    @staticmethod
    def _arm_info(reply: sp.Info) -> ArmInfo:
        major, minor, patch = reply.firmware_version
        return ArmInfo(
            protocol_version=reply.protocol_version,
            firmware_version=f"{major}.{minor}.{patch}",
            dof=reply.dof,
            action_space="joint" if reply.action_space is sp.ActionSpace.JOINT else "ee",
            lower=tuple(reply.lower),
            upper=tuple(reply.upper),
            max_step=tuple(reply.max_step),
            watchdog_s=reply.watchdog_ms / 1000.0,
        )

    def _request(self, message: sp.Message) -> tuple[sp.Message, int, int]:
        # Waiting for another thread's call counts against this call's timeout.
        start = time.monotonic()
        if not self._lock.acquire(timeout=self.timeout_s):
            raise DeviceTimeoutError(f"arm on {self.port} stayed busy with another call for {self.timeout_s:.2f} s")
        try:
            if self._serial is None or self._info is None:
                raise NotConnectedError(f"arm on {self.port} is not connected; call connect() or reconnect()")
            return self._exchange(message, self.timeout_s, self.retries, started=start)
        finally:
            self._lock.release()

    def _exchange(
        self, message: sp.Message, timeout_s: float, retries: int, started: float | None = None
    ) -> tuple[sp.Message, int, int]:
        """Send `message` until a matching reply arrives, within timeout_s of `started` (default: now).

        Returns (reply, seq, attempts). The caller holds the lock.
        """
        seq = self._next_seq()
        msg_type = sp.encode_body(message)[0]
        # The leading 0x00 ends whatever partial frame line noise left in the arm's decoder.
        frame = b"\x00" + sp.encode(message, seq)
        deadline = (time.monotonic() if started is None else started) + timeout_s
        attempts_allowed = retries + 1
        axes = self._info.axes if self._info is not None else sp.MAX_AXES
        per_attempt_s = max(timeout_s / attempts_allowed, attempt_timeout_s(msg_type, axes, self.baud))
        # Attempt k ends when only the whole attempts after it still fit: a slow reply is waited
        # for as long as possible before a frame is sent twice. Attempts beyond those that fit
        # happen only after an early failure (NAK BAD_CRC, a corrupted reply).
        fitting = min(attempts_allowed, max(1, int(timeout_s / per_attempt_s + 1e-6)))
        failures: list[str] = []
        self._discard_stale_input()
        for attempt in range(1, attempts_allowed + 1):
            if time.monotonic() >= deadline:
                break
            attempt_deadline = deadline - max(0, fitting - attempt) * per_attempt_s
            if msg_type is sp.MsgType.SET_TARGET:
                self._maybe_applied.add(seq)  # from now on the arm may have applied it
            if not self._write(frame, attempt_deadline):
                failures.append("write stalled")
                continue
            outcome = self._await_reply(seq, msg_type, attempt_deadline)
            if not isinstance(outcome, str):
                self._note_target_outcome(msg_type, seq, outcome, attempt)
                return outcome, seq, attempt
            failures.append(outcome)
        tally = ", ".join(f"{failures.count(kind)} {kind}" for kind in sorted(set(failures))) or "none started in time"
        raise DeviceTimeoutError(
            f"arm on {self.port} gave no valid reply to {msg_type.name} within {timeout_s:.3f} s "
            f"({len(failures)} tries: {tally})"
        )

    def _await_reply(self, seq: int, msg_type: sp.MsgType, deadline: float) -> sp.Message | str:
        """The reply to (seq, msg_type), or why to retry: 'timed out', 'corrupted' or 'nakked as corrupted'.

        At the deadline one last non-blocking read runs: a reply already waiting is taken, not missed."""
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            for item in self._decoder.feed(self._read(remaining)):
                if isinstance(item, sp.FrameRejected) and item.reason != sp.NakReason.BAD_CRC:
                    self._unaccepted = str(item)  # it passed COBS and CRC: the bytes arrived intact
                outcome = _match_reply(item, seq, msg_type)
                if outcome is not None:
                    return outcome
            if remaining <= 0:
                return "timed out"

    def _read(self, timeout_s: float) -> bytes:
        port = self._serial
        try:
            ready, _, _ = select.select([port.fileno()], [], [], timeout_s)
            if not ready:
                return b""
            data = port.read(max(1, port.in_waiting))
        except _IO_ERRORS as e:
            raise self._lost(e) from e
        self._bytes_seen += len(data)
        return data

    def _write(self, frame: bytes, deadline: float) -> bool:
        """Write the whole frame by `deadline`; False if the port would not take it in time.

        Written here, not with pyserial's write timeout: that raises when its timer ran out even
        if every byte went out, which would turn a sent command into an error outside the retries."""
        fd = self._serial.fileno()
        pending = memoryview(frame)
        try:
            while pending:
                try:
                    pending = pending[os.write(fd, pending):]
                    continue
                except BlockingIOError:
                    pass  # the output buffer is full: wait until it drains or the attempt ends
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                select.select([], [fd], [], remaining)
        except _IO_ERRORS as e:
            raise self._lost(e) from e
        return True

    def _discard_stale_input(self) -> None:
        try:
            self._serial.reset_input_buffer()
        except _IO_ERRORS as e:
            raise self._lost(e) from e
        self._decoder.reset()

    def _lost(self, error: BaseException) -> NotConnectedError:
        """The device vanished mid-call: release it and say how to recover."""
        self._close_port()
        self._info = None
        gone = "" if os.path.exists(self.port) else " (the port is gone: unplugged?)"
        return NotConnectedError(f"lost the arm on {self.port}{gone}: {error}; call reconnect()")

    def _close_port(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError):
                pass  # closing a vanished device can fail; it is released either way
            self._serial = None
        self._decoder.reset()

    def _note_target_outcome(self, msg_type: sp.MsgType, seq: int, reply: sp.Message, attempt: int) -> None:
        if msg_type is not sp.MsgType.SET_TARGET:
            return
        if isinstance(reply, sp.Ack):
            self._maybe_applied = {seq}  # the arm's last applied seq is now exactly this one
        elif attempt == 1:
            self._maybe_applied.discard(seq)  # a NAK to the only copy sent: the arm changed nothing

    def _next_seq(self) -> int:
        """The next sequence number (0 .. 0xFFFE, wrapping) that the arm cannot hold as applied."""
        for _ in range(sp.SEQ_MODULUS):
            seq = self._seq
            self._seq = (self._seq + 1) % sp.SEQ_MODULUS
            if seq not in self._maybe_applied:
                return seq
        raise DriverError(f"arm on {self.port}: every sequence number may name an applied target; call reconnect()")


def _match_reply(item: sp.Received | sp.FrameRejected, seq: int, msg_type: sp.MsgType) -> sp.Message | str | None:
    """What one received frame means for the request (seq, msg_type): its reply, a reason to
    resend, or None (not ours: a late reply to an earlier request)."""
    if isinstance(item, sp.FrameRejected):
        # Only one request is in flight and stale input was discarded before it, so a
        # corrupted frame now is most likely our reply: resend rather than wait it out.
        return "corrupted"
    reply = item.message
    if isinstance(reply, sp.Nak) and reply.reason == sp.NakReason.BAD_CRC and item.seq in (seq, sp.SEQ_UNKNOWN):
        return "nakked as corrupted"
    if item.seq != seq:
        return None
    if isinstance(reply, sp.Nak) and reply.command in (msg_type, 0):
        return reply
    expected = _EXPECTED_REPLY.get(msg_type)
    if expected is not None and isinstance(reply, expected):
        return reply
    if expected is None and isinstance(reply, sp.Ack) and reply.command == msg_type:
        return reply
    return None


def _reject_reason(code: int) -> RejectReason:
    try:
        return _REJECT_REASONS[sp.NakReason(code)]
    except ValueError:
        return RejectReason.UNSUPPORTED


def _nak_text(reply: sp.Message) -> str:
    if isinstance(reply, sp.Nak):
        try:
            reason = sp.NakReason(reply.reason).name
        except ValueError:
            reason = f"reason {reply.reason}"
        return f"NAK {reason}"
    return f"unexpected {type(reply).__name__}"

