"""Serial arm protocol v1: pure encode/decode functions and a streaming frame decoder.

The byte-level specification is `docs/serial-protocol.md`; this module is its executable form
and the two must agree. Layers, bottom up:

    wire:    COBS(payload) 0x00        (0x00 never appears inside a frame)
    payload: version u8 | type u8 | seq u16 | body | crc u16     (little-endian)
    body:    per message type (see the dataclasses below)

Nothing here does I/O or keeps time: the client (`serial_arm.py`) and the firmware emulator
(`sim_firmware.py`) both build on it.
"""

from __future__ import annotations

import binascii
import math
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Union

from drivers.errors import ProtocolError

PROTOCOL_VERSION = 1
HEADER_SIZE = 4  # version, type, seq (u16)
CRC_SIZE = 2
MAX_PAYLOAD = 254  # header + body + crc; keeps a COBS frame to a single 256-byte buffer
MAX_ENCODED = MAX_PAYLOAD + 2  # COBS adds at most one byte per 254, plus one (our encoder's worst case)
MAX_AXES = 16  # dof + gripper
SEQ_UNKNOWN = 0xFFFF  # "no sequence": a NAK for a frame whose seq could not be trusted; STATE before any target
SEQ_MODULUS = 0xFFFF  # hosts count 0 .. 0xFFFE and wrap, so SEQ_UNKNOWN never names a real command
NO_AXIS = 0xFF
REPLY_BUDGET_S = 0.005  # the arm starts its reply within this of the command's delimiter (spec 6)
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit


class MsgType(IntEnum):
    """Message type byte. Host -> arm below 0x80, arm -> host from 0x80."""

    HELLO = 0x01
    SET_TARGET = 0x02
    HEARTBEAT = 0x03
    ESTOP = 0x04
    CLEAR_ESTOP = 0x05
    GET_STATE = 0x06
    INFO = 0x81
    STATE = 0x82
    ACK = 0x83
    NAK = 0x84


class NakReason(IntEnum):
    """Why the arm refused a frame (NAK body byte 1)."""

    BAD_CRC = 1  # the frame failed COBS, length-of-header or CRC checks: resend it
    OUT_OF_LIMITS = 2  # a value is outside [lower, upper] or not finite; never clamped
    ESTOPPED = 3  # ESTOP is latched; send CLEAR_ESTOP first
    UNKNOWN_TYPE = 4
    BAD_LENGTH = 5  # body length wrong for the type (e.g. SET_TARGET with the wrong axis count)
    STEP_TOO_LARGE = 6  # |target - current target| > max_step on some axis
    BAD_VERSION = 7  # header version differs from the arm's protocol version
    FAULT = 8  # the arm reports a hardware fault and refuses motion


class ActionSpace(IntEnum):
    """What SET_TARGET values mean, declared by the arm in INFO."""

    JOINT = 0  # joint positions
    EE = 1  # end-effector pose


class StateFlag(IntEnum):
    """Bits of the STATE flags byte."""

    MOVING = 0x01
    FAULT = 0x02
    ESTOP = 0x04
    WATCHDOG_HOLD = 0x08


# ---------------------------------------------------------------------------------------------
# Messages. Frozen dataclasses, one per type; floats are float32 on the wire.


@dataclass(frozen=True)
class Hello:
    """Host -> arm: start a session; the arm answers INFO."""


@dataclass(frozen=True)
class SetTarget:
    """Host -> arm: one value per degree of freedom, then the gripper."""

    values: tuple[float, ...]


@dataclass(frozen=True)
class Heartbeat:
    """Host -> arm: keeps the watchdog fed without moving."""


@dataclass(frozen=True)
class Estop:
    """Host -> arm: stop and latch until CLEAR_ESTOP."""


@dataclass(frozen=True)
class ClearEstop:
    """Host -> arm: release a latched ESTOP (the arm then holds until a new target)."""


@dataclass(frozen=True)
class GetState:
    """Host -> arm: ask for STATE."""


@dataclass(frozen=True)
class Info:
    """Arm -> host: what the arm is and what it accepts."""

    protocol_version: int
    firmware_version: tuple[int, int, int]
    dof: int
    action_space: ActionSpace
    watchdog_ms: int
    lower: tuple[float, ...]  # dof + 1 values (gripper last)
    upper: tuple[float, ...]
    max_step: tuple[float, ...]


@dataclass(frozen=True)
class State:
    """Arm -> host: measured values (dof + gripper), flags and the last applied sequence."""

    flags: int
    last_seq: int
    values: tuple[float, ...]

    def has(self, flag: StateFlag) -> bool:
        return bool(self.flags & flag)


@dataclass(frozen=True)
class Ack:
    """Arm -> host: the command of this sequence number was applied."""

    command: int


@dataclass(frozen=True)
class Nak:
    """Arm -> host: the command was refused, with a reason and the offending axis if any."""

    command: int  # 0 when the type could not be read
    reason: int  # a NakReason value (kept int so unknown future codes still decode)
    axis: int | None = None


Message = Union[Hello, SetTarget, Heartbeat, Estop, ClearEstop, GetState, Info, State, Ack, Nak]

_EMPTY_BODY_TYPES = {
    Hello: MsgType.HELLO,
    Heartbeat: MsgType.HEARTBEAT,
    Estop: MsgType.ESTOP,
    ClearEstop: MsgType.CLEAR_ESTOP,
    GetState: MsgType.GET_STATE,
}


@dataclass(frozen=True)
class Received:
    """One decoded frame."""

    version: int
    seq: int
    message: Message


class FrameRejected(ProtocolError):
    """A frame that does not decode, with the NAK reason an arm would answer."""

    def __init__(self, detail: str, reason: NakReason, msg_type: int = 0, seq: int = SEQ_UNKNOWN):
        super().__init__(detail)
        self.reason = reason
        self.msg_type = msg_type
        self.seq = seq


# ---------------------------------------------------------------------------------------------
# CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor. check("123456789") = 0x29B1.
# The standard library's crc_hqx is exactly this CRC when started at 0xFFFF.


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of `data` (pass a previous result as `crc` to continue)."""
    return binascii.crc_hqx(data, crc)


# ---------------------------------------------------------------------------------------------
# COBS (Cheshire & Baker 1999): removes every 0x00 so 0x00 can delimit frames.


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode `data`; the result contains no 0x00 (the delimiter is not appended)."""
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(0xFF)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Invert `cobs_encode`; raise ProtocolError for anything that is not valid COBS."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise ProtocolError("0x00 inside a COBS frame")
        end = i + code
        if end > n:
            raise ProtocolError("COBS block runs past the end of the frame")
        chunk = data[i + 1 : end]
        if 0 in chunk:
            raise ProtocolError("0x00 inside a COBS frame")
        out += chunk
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Bodies


def _pack_floats(values: tuple[float, ...]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def _unpack_floats(body: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(body) // 4}f", body)


def _check_axes(count: int, what: str) -> None:
    if not 1 <= count <= MAX_AXES:
        raise ProtocolError(f"{what} carries {count} values; protocol v1 allows 1..{MAX_AXES}")


def encode_body(message: Message) -> tuple[MsgType, bytes]:
    """The type byte and body bytes of a message."""
    if type(message) in _EMPTY_BODY_TYPES:
        return _EMPTY_BODY_TYPES[type(message)], b""
    if isinstance(message, SetTarget):
        _check_axes(len(message.values), "SET_TARGET")
        return MsgType.SET_TARGET, _pack_floats(message.values)
    if isinstance(message, Info):
        n = message.dof + 1
        _check_axes(n, "INFO")
        if not (len(message.lower) == len(message.upper) == len(message.max_step) == n):
            raise ProtocolError(f"INFO limits must have dof + 1 = {n} values each")
        major, minor, patch = message.firmware_version
        head = struct.pack(
            "<BBBBBBH",
            message.protocol_version,
            major,
            minor,
            patch,
            message.dof,
            int(message.action_space),
            message.watchdog_ms,
        )
        return MsgType.INFO, head + _pack_floats(message.lower) + _pack_floats(message.upper) + _pack_floats(
            message.max_step
        )
    if isinstance(message, State):
        _check_axes(len(message.values), "STATE")
        return MsgType.STATE, struct.pack("<BBH", message.flags, 0, message.last_seq) + _pack_floats(message.values)
    if isinstance(message, Ack):
        return MsgType.ACK, struct.pack("<B", message.command)
    if isinstance(message, Nak):
        axis = NO_AXIS if message.axis is None else message.axis
        return MsgType.NAK, struct.pack("<BBB", message.command, int(message.reason), axis)
    raise TypeError(f"not a protocol message: {message!r}")


def _decode_body(msg_type: MsgType, body: bytes, seq: int) -> Message:
    def bad_length(expected: str) -> FrameRejected:
        return FrameRejected(
            f"{msg_type.name} body is {len(body)} bytes, expected {expected}", NakReason.BAD_LENGTH, msg_type, seq
        )

    if msg_type is MsgType.HELLO:
        return Hello()  # any body is ignored: version negotiation must work whatever a newer host adds
    if msg_type in (MsgType.HEARTBEAT, MsgType.ESTOP, MsgType.CLEAR_ESTOP, MsgType.GET_STATE):
        if body:
            raise bad_length("0")
        return {
            MsgType.HEARTBEAT: Heartbeat,
            MsgType.ESTOP: Estop,
            MsgType.CLEAR_ESTOP: ClearEstop,
            MsgType.GET_STATE: GetState,
        }[msg_type]()
    if msg_type is MsgType.SET_TARGET:
        if len(body) % 4 or not 1 <= len(body) // 4 <= MAX_AXES:
            raise bad_length(f"4 x (1..{MAX_AXES})")
        return SetTarget(_unpack_floats(body))
    if msg_type is MsgType.INFO:
        if len(body) < 8:
            raise bad_length("8 + 12 x (dof + 1)")
        protocol_version, major, minor, patch, dof, space, watchdog_ms = struct.unpack_from("<BBBBBBH", body)
        if protocol_version != PROTOCOL_VERSION:
            # Only the frozen first 8 bytes mean the same in every version: enough to refuse it by name.
            return Info(protocol_version, (major, minor, patch), dof, space, watchdog_ms, (), (), ())
        n = dof + 1
        if n > MAX_AXES:
            raise FrameRejected(f"INFO declares dof={dof}; protocol v1 allows 1..{MAX_AXES - 1}", NakReason.BAD_LENGTH, msg_type, seq)
        if len(body) != 8 + 12 * n:
            raise bad_length(f"8 + 12 x (dof + 1) with dof = {dof}")
        try:
            action_space = ActionSpace(space)
        except ValueError:
            raise FrameRejected(
                f"INFO declares action_space={space}; protocol v1 knows 0 (joint) and 1 (end-effector)",
                NakReason.BAD_LENGTH, msg_type, seq,
            ) from None
        floats = _unpack_floats(body[8:])
        return Info(
            protocol_version, (major, minor, patch), dof, action_space, watchdog_ms, floats[:n], floats[n : 2 * n], floats[2 * n :]
        )
    if msg_type is MsgType.STATE:
        if len(body) < 8 or (len(body) - 4) % 4 or (len(body) - 4) // 4 > MAX_AXES:
            raise bad_length(f"4 + 4 x (1..{MAX_AXES})")
        flags, _reserved, last_seq = struct.unpack_from("<BBH", body)
        return State(flags, last_seq, _unpack_floats(body[4:]))
    if msg_type is MsgType.ACK:
        if len(body) != 1:
            raise bad_length("1")
        return Ack(body[0])
    if msg_type is MsgType.NAK:
        if len(body) != 3:
            raise bad_length("3")
        return Nak(body[0], body[1], None if body[2] == NO_AXIS else body[2])
    raise AssertionError(f"unhandled message type {msg_type!r}")  # every MsgType is handled above


# ---------------------------------------------------------------------------------------------
# Frames


def encode(message: Message, seq: int, version: int = PROTOCOL_VERSION) -> bytes:
    """A complete wire frame: COBS(payload) followed by the 0x00 delimiter."""
    if not 0 <= seq <= 0xFFFF:
        raise ValueError(f"seq {seq} does not fit in u16")
    msg_type, body = encode_body(message)
    payload = struct.pack("<BBH", version, int(msg_type), seq) + body
    if len(payload) + CRC_SIZE > MAX_PAYLOAD:
        raise ProtocolError(f"{msg_type.name} payload of {len(payload) + CRC_SIZE} bytes exceeds {MAX_PAYLOAD}")
    payload += struct.pack("<H", crc16_ccitt_false(payload))
    return cobs_encode(payload) + b"\x00"


def decode_frame(frame: bytes, expected_version: int | None = PROTOCOL_VERSION) -> Received:
    """Decode one frame (the bytes between two 0x00 delimiters, delimiters excluded).

    Raises FrameRejected (a ProtocolError) carrying the NAK reason. HELLO and INFO decode
    whatever their header version, because version negotiation depends on them.
    """
    if len(frame) > MAX_ENCODED:
        raise FrameRejected(f"frame of {len(frame)} bytes exceeds {MAX_ENCODED}", NakReason.BAD_CRC)
    try:
        payload = cobs_decode(frame)
    except ProtocolError as e:
        raise FrameRejected(str(e), NakReason.BAD_CRC) from None
    if len(payload) < HEADER_SIZE + CRC_SIZE:
        raise FrameRejected(f"frame of {len(payload)} bytes is shorter than header + CRC", NakReason.BAD_CRC)
    (crc,) = struct.unpack_from("<H", payload, len(payload) - CRC_SIZE)
    if crc16_ccitt_false(payload[:-CRC_SIZE]) != crc:
        raise FrameRejected("CRC mismatch", NakReason.BAD_CRC)
    version, raw_type, seq = struct.unpack_from("<BBH", payload)
    body = payload[HEADER_SIZE:-CRC_SIZE]
    try:
        msg_type = MsgType(raw_type)
    except ValueError:
        raise FrameRejected(f"unknown message type 0x{raw_type:02x}", NakReason.UNKNOWN_TYPE, raw_type, seq) from None
    version_free = msg_type in (MsgType.HELLO, MsgType.INFO)
    if expected_version is not None and version != expected_version and not version_free:
        raise FrameRejected(
            f"protocol version {version}, expected {expected_version}", NakReason.BAD_VERSION, raw_type, seq
        )
    return Received(version, seq, _decode_body(msg_type, body, seq))


_BODY_SIZE = {  # body bytes per type, as a function of the axis count n
    MsgType.HELLO: lambda n: 0,
    MsgType.SET_TARGET: lambda n: 4 * n,
    MsgType.HEARTBEAT: lambda n: 0,
    MsgType.ESTOP: lambda n: 0,
    MsgType.CLEAR_ESTOP: lambda n: 0,
    MsgType.GET_STATE: lambda n: 0,
    MsgType.INFO: lambda n: 8 + 12 * n,
    MsgType.STATE: lambda n: 4 + 4 * n,
    MsgType.ACK: lambda n: 1,
    MsgType.NAK: lambda n: 3,
}


def wire_size(msg_type: MsgType, axes: int) -> int:
    """Most bytes a frame of this type takes on the wire for `axes` values: payload, COBS
    overhead and the delimiter."""
    payload = HEADER_SIZE + _BODY_SIZE[msg_type](axes) + CRC_SIZE
    return payload + 1 + payload // 254 + 1


def transfer_s(byte_count: int, baud: int) -> float:
    """Seconds `byte_count` bytes take on a UART at `baud` (8N1)."""
    return byte_count * BITS_PER_BYTE / baud


def is_finite(values: tuple[float, ...]) -> bool:
    """True when every value is a finite number (NaN and infinities are out of limits)."""
    return all(math.isfinite(v) for v in values)


def float32(value: float) -> float:
    """`value` rounded to float32, as it travels on the wire."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


class FrameDecoder:
    """Streaming decoder: feed it bytes as they arrive, get decoded frames and rejections back.

    It resynchronizes on every 0x00: garbage costs at most the frame it landed in. Empty
    frames (repeated delimiters) are ignored, so a sender may prefix frames with 0x00 to flush
    the receiver after line noise. Bytes beyond MAX_ENCODED without a delimiter are discarded
    silently up to the next 0x00 (spec section 2: nothing in them can be trusted, and answering
    each overflow would let noise make the arm talk), bounding memory whatever arrives.
    """

    def __init__(self, expected_version: int | None = PROTOCOL_VERSION):
        self._expected_version = expected_version
        self._buffer = bytearray()
        self._overflowed = False

    def reset(self) -> None:
        """Forget any partial frame."""
        self._buffer.clear()
        self._overflowed = False

    def feed(self, data: bytes) -> list[Received | FrameRejected]:
        """Consume bytes; return every frame completed by them, in order. Never raises."""
        results: list[Received | FrameRejected] = []
        start = 0
        while start <= len(data):
            end = data.find(0, start)
            piece = data[start:] if end < 0 else data[start:end]
            if not self._overflowed:
                self._buffer += piece
                if len(self._buffer) > MAX_ENCODED:
                    self._overflowed = True
                    self._buffer.clear()
            if end < 0:
                break
            if self._buffer and not self._overflowed:
                try:
                    results.append(decode_frame(bytes(self._buffer), self._expected_version))
                except FrameRejected as e:
                    results.append(e)
            self._buffer.clear()
            self._overflowed = False
            start = end + 1
        return results
