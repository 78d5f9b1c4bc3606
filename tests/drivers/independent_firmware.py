"""A second, independent arm firmware for tests, written from docs/serial-protocol.md alone.

It imports nothing from `drivers/`: its own COBS, its own bitwise CRC (the spec's C loop), its
own byte layouts, its own state machine, on a pty. Tests run the toolkit (SerialArm, the
conformance check, the doctor, the wrap case) against it, so a mistake shared by the toolkit's
codec and its emulator cannot hide. Knobs make it misbehave the ways a vendor's firmware might.
"""

from __future__ import annotations

import math
import os
import select
import struct
import threading
import time
import tty
from dataclasses import dataclass, field

HELLO, SET_TARGET, HEARTBEAT, ESTOP, CLEAR_ESTOP, GET_STATE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
INFO, STATE, ACK, NAK = 0x81, 0x82, 0x83, 0x84
BAD_CRC, OUT_OF_LIMITS, ESTOPPED, UNKNOWN_TYPE, BAD_LENGTH, STEP_TOO_LARGE, BAD_VERSION, FAULT = range(1, 9)
MOVING, FLAG_FAULT, FLAG_ESTOP, WATCHDOG_HOLD = 0x01, 0x02, 0x04, 0x08
NO_SEQ = 0xFFFF
NO_AXIS = 0xFF
RX_LIMIT = 256  # encoded bytes before a delimiter (section 2)


def crc16(data: bytes) -> int:
    """The spec's bit-by-bit CRC-16/CCITT-FALSE loop (section 3)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def cobs_encode(data: bytes) -> bytes:
    """Each 0x00-separated piece becomes (length + 1) + piece; 254-byte runs get code 0xFF."""
    out = bytearray()
    for piece in data.split(b"\x00"):
        while len(piece) >= 254:
            out += b"\xff" + piece[:254]
            piece = piece[254:]
        out += bytes([len(piece) + 1]) + piece
    return bytes(out)


def cobs_decode(data: bytes) -> bytes | None:
    """The spec's C decoder, transliterated; None when malformed."""
    out, i = bytearray(), 0
    while i < len(data):
        code = data[i]
        i += 1
        if code == 0 or i + code - 1 > len(data):
            return None
        for _ in range(code - 1):
            if data[i] == 0:
                return None
            out.append(data[i])
            i += 1
        if code < 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


@dataclass
class Knobs:
    """How this firmware presents itself and how it misbehaves."""

    dof: int = 2
    action_space: int = 0
    watchdog_ms: int = 200
    protocol_version: int = 1
    reply_delay_s: float = 0.0
    hello_nak: int | None = None  # answer HELLO with this NAK reason instead of INFO
    estop_at_power_up: bool = False
    fault: bool = False
    info_dof_byte: int | None = None  # declare this dof in INFO (with a body sized for it)


@dataclass
class IndependentFirmware:
    knobs: Knobs = field(default_factory=Knobs)

    def __post_init__(self) -> None:
        n = self.knobs.dof + 1
        self.lower = [f32(-1.5)] * self.knobs.dof + [0.0]
        self.upper = [f32(1.5)] * self.knobs.dof + [1.0]
        self.max_step = [f32(0.4)] * self.knobs.dof + [1.0]
        self.measured = [0.0] * self.knobs.dof + [0.5]
        self.target = list(self.measured)
        self.estop = self.knobs.estop_at_power_up
        self.hold = True
        self.last_seq = NO_SEQ
        self.last_fed: float | None = None
        self.applied = 0
        self.n = n
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outbox: list[tuple[float, bytes]] = []

    # -- pty ----------------------------------------------------------------------------------

    def start(self) -> str:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._loop, name="independent-firmware", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2.0)
        os.close(self._master)
        os.close(self._slave)

    def __enter__(self) -> "IndependentFirmware":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _loop(self) -> None:
        rx = bytearray()
        overflow = False
        last = time.monotonic()
        while not self._stop.is_set():
            wait = 0.002 if not self._outbox else max(0.0, min(0.002, self._outbox[0][0] - time.monotonic()))
            ready, _, _ = select.select([self._master], [], [], wait)
            data = os.read(self._master, 4096) if ready else b""
            now = time.monotonic()
            for byte in data:
                if byte != 0:
                    if len(rx) >= RX_LIMIT:
                        overflow = True
                    else:
                        rx.append(byte)
                    continue
                if rx and not overflow:
                    reply = self._frame(bytes(rx), now)
                    if reply is not None:
                        self._outbox.append((now + self.knobs.reply_delay_s, reply))
                rx.clear()
                overflow = False
            self._tick(now - last, now)
            last = now
            while self._outbox and self._outbox[0][0] <= time.monotonic():
                os.write(self._master, self._outbox.pop(0)[1])

    # -- frames -------------------------------------------------------------------------------

    def _send(self, msg_type: int, seq: int, body: bytes) -> bytes:
        payload = struct.pack("<BBH", self.knobs.protocol_version, msg_type, seq) + body
        return cobs_encode(payload + struct.pack("<H", crc16(payload))) + b"\x00"

    def _nak(self, command: int, seq: int, reason: int, axis: int = NO_AXIS) -> bytes:
        return self._send(NAK, seq, bytes([command, reason, axis]))

    def _ack(self, command: int, seq: int) -> bytes:
        return self._send(ACK, seq, bytes([command]))

    def _frame(self, encoded: bytes, now: float) -> bytes | None:
        payload = cobs_decode(encoded)
        if payload is None or len(payload) < 6 or crc16(payload[:-2]) != struct.unpack("<H", payload[-2:])[0]:
            return self._nak(0, NO_SEQ, BAD_CRC)
        version, msg_type, seq = struct.unpack("<BBH", payload[:4])
        body = payload[4:-2]
        if msg_type not in (HELLO, SET_TARGET, HEARTBEAT, ESTOP, CLEAR_ESTOP, GET_STATE):
            return self._nak(msg_type, seq, UNKNOWN_TYPE)
        if msg_type == HELLO:
            return self._hello(seq)
        if version != self.knobs.protocol_version:
            return self._nak(msg_type, seq, BAD_VERSION)
        if msg_type == SET_TARGET:
            if len(body) % 4 or not 1 <= len(body) // 4 <= 16:
                return self._nak(msg_type, seq, BAD_LENGTH)
            return self._set_target(seq, struct.unpack(f"<{len(body) // 4}f", body), now)
        if body:
            return self._nak(msg_type, seq, BAD_LENGTH)
        if msg_type == HEARTBEAT:
            self.last_fed = now
        elif msg_type == ESTOP:
            self.estop, self.target = True, list(self.measured)
        elif msg_type == CLEAR_ESTOP and self.estop:
            self.estop, self.hold = False, True
        elif msg_type == GET_STATE:
            return self._state(seq)
        return self._ack(msg_type, seq)

    def _hello(self, seq: int) -> bytes:
        if self.knobs.hello_nak is not None:
            return self._nak(HELLO, seq, self.knobs.hello_nak)
        self.last_seq = NO_SEQ
        dof = self.knobs.info_dof_byte if self.knobs.info_dof_byte is not None else self.knobs.dof
        n = dof + 1
        pad = lambda values: (values + [values[-1]] * n)[:n]  # noqa: E731 - a body sized for the declared dof
        body = struct.pack("<BBBBBBH", self.knobs.protocol_version, 2, 7, 1, dof, self.knobs.action_space,
                           self.knobs.watchdog_ms)
        body += struct.pack(f"<{3 * n}f", *pad(self.lower), *pad(self.upper), *pad(self.max_step))
        return self._send(INFO, seq, body)

    def _state(self, seq: int) -> bytes:
        flags = (MOVING if any(abs(t - m) > 1e-4 for t, m in zip(self.target, self.measured)) else 0)
        flags |= (FLAG_FAULT if self.knobs.fault else 0) | (FLAG_ESTOP if self.estop else 0)
        flags |= WATCHDOG_HOLD if self.hold else 0
        return self._send(STATE, seq, struct.pack(f"<BBH{self.n}f", flags, 0, self.last_seq, *self.measured))

    def _set_target(self, seq: int, values: tuple[float, ...], now: float) -> bytes:
        if self.estop:
            return self._nak(SET_TARGET, seq, ESTOPPED)
        if self.knobs.fault:
            return self._nak(SET_TARGET, seq, FAULT)
        if len(values) != self.n:
            return self._nak(SET_TARGET, seq, BAD_LENGTH)
        if seq == self.last_seq:
            self.last_fed = now  # a retransmission: ACK, do not apply, feed the watchdog
            return self._ack(SET_TARGET, seq)
        for axis, value in enumerate(values):
            if not (math.isfinite(value) and self.lower[axis] <= value <= self.upper[axis]):
                return self._nak(SET_TARGET, seq, OUT_OF_LIMITS, axis)
        for axis, value in enumerate(values):
            if abs(f32(value - self.target[axis])) > self.max_step[axis]:
                return self._nak(SET_TARGET, seq, STEP_TOO_LARGE, axis)
        self.target, self.last_seq, self.hold, self.last_fed = list(values), seq, False, now
        self.applied += 1
        return self._ack(SET_TARGET, seq)

    # -- time ---------------------------------------------------------------------------------

    def _tick(self, dt: float, now: float) -> None:
        if not self.estop and not self.hold and (self.last_fed is None or now - self.last_fed > self.knobs.watchdog_ms / 1000):
            self.hold, self.target = True, list(self.measured)
        if self.estop:
            self.target = list(self.measured)
        alpha = 1.0 - math.exp(-dt / 0.02)
        self.measured = [t if abs(t - m) < 1e-4 else f32(m + (t - m) * alpha) for m, t in zip(self.measured, self.target)]
