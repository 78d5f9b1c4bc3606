"""Serial protocol v1 codec: known vectors, the documented examples, and properties."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.arm import protocol as sp
from drivers.errors import ProtocolError

# -- CRC and COBS against published vectors ------------------------------------------------------


def test_crc16_ccitt_false_check_values():
    assert sp.crc16_ccitt_false(b"123456789") == 0x29B1  # the catalogue's check value
    assert sp.crc16_ccitt_false(b"") == 0xFFFF
    assert sp.crc16_ccitt_false(b"A") == 0xB915
    # Continuing a CRC over a split input gives the CRC of the whole.
    assert sp.crc16_ccitt_false(b"6789", sp.crc16_ccitt_false(b"12345")) == 0x29B1


@pytest.mark.parametrize(
    "raw, encoded",
    [
        (b"\x00", b"\x01\x01"),
        (b"\x00\x00", b"\x01\x01\x01"),
        (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
        (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    ],
)
def test_cobs_matches_published_examples(raw, encoded):
    assert sp.cobs_encode(raw) == encoded
    assert sp.cobs_decode(encoded) == raw


def test_cobs_decodes_both_forms_of_a_full_254_byte_block():
    raw = bytes(range(1, 255))
    minimal = b"\xff" + raw  # the form other encoders emit
    assert sp.cobs_decode(minimal) == raw
    assert sp.cobs_decode(sp.cobs_encode(raw)) == raw


@pytest.mark.parametrize("bad", [b"\x00", b"\x05\x11\x22", b"\x03\x11\x00"])
def test_cobs_rejects_malformed_input(bad):
    with pytest.raises(ProtocolError):
        sp.cobs_decode(bad)


# -- the worked examples in docs/serial-protocol.md ----------------------------------------------


@pytest.mark.parametrize(
    "message, seq, wire_hex",
    [
        (sp.Heartbeat(), 5, "04 01 03 05 03 d1 54 00"),
        (sp.Hello(), 0, "03 01 01 01 03 44 c5 00"),
        (sp.SetTarget((0.5, -1.0, 0.25)), 0x0102, "05 01 02 02 01 01 01 02 3f 01 03 80 bf 01 05 80 3e e2 03 00"),
        (sp.Ack(2), 0x0102, "08 01 83 02 01 02 aa 80 00"),
        (sp.Nak(2, 2, 1), 0x0102, "0a 01 84 02 01 02 02 01 3a b1 00"),
        (
            sp.State(0x09, 0x0102, (0.5, -1.0, 0.25)),
            7,
            "04 01 82 07 02 09 03 02 01 01 01 02 3f 01 03 80 bf 01 05 80 3e bc 38 00",
        ),
    ],
)
def test_documented_examples_are_what_the_codec_sends(message, seq, wire_hex):
    wire = bytes.fromhex(wire_hex)
    assert sp.encode(message, seq) == wire
    assert sp.decode_frame(wire[:-1]) == sp.Received(1, seq, message)


def test_info_layout_matches_the_document():
    info = sp.Info(1, (1, 2, 3), 2, sp.ActionSpace.JOINT, 500, (-1.0, -1.0, 0.0), (1.0, 1.0, 1.0), (0.5, 0.5, 1.0))
    payload = sp.cobs_decode(sp.encode(info, 0)[:-1])
    body = payload[4:-2]
    assert body[:8] == bytes([1, 1, 2, 3, 2, 0]) + struct.pack("<H", 500)
    assert struct.unpack("<9f", body[8:]) == (-1.0, -1.0, 0.0, 1.0, 1.0, 1.0, 0.5, 0.5, 1.0)


# -- rejections carry the NAK reason an arm answers ---------------------------------------------


def _frame(version: int, msg_type: int, seq: int, body: bytes) -> bytes:
    payload = struct.pack("<BBH", version, msg_type, seq) + body
    return sp.cobs_encode(payload + struct.pack("<H", sp.crc16_ccitt_false(payload)))


def test_bad_crc_is_rejected_as_bad_crc_with_unknown_seq():
    frame = bytearray(sp.cobs_decode(sp.encode(sp.Heartbeat(), 9)[:-1]))
    frame[-1] ^= 0x40
    with pytest.raises(sp.FrameRejected) as e:
        sp.decode_frame(sp.cobs_encode(bytes(frame)))
    assert e.value.reason == sp.NakReason.BAD_CRC and e.value.seq == sp.SEQ_UNKNOWN


def test_unknown_type_bad_length_and_bad_version_are_told_apart():
    with pytest.raises(sp.FrameRejected) as e:
        sp.decode_frame(_frame(1, 0x42, 77, b""))
    assert (e.value.reason, e.value.msg_type, e.value.seq) == (sp.NakReason.UNKNOWN_TYPE, 0x42, 77)
    with pytest.raises(sp.FrameRejected) as e:
        sp.decode_frame(_frame(1, sp.MsgType.SET_TARGET, 78, b"\x00\x00\x80"))
    assert (e.value.reason, e.value.seq) == (sp.NakReason.BAD_LENGTH, 78)
    with pytest.raises(sp.FrameRejected) as e:
        sp.decode_frame(_frame(2, sp.MsgType.SET_TARGET, 79, struct.pack("<f", 0.0)))
    assert (e.value.reason, e.value.seq) == (sp.NakReason.BAD_VERSION, 79)


def test_an_info_of_another_version_decodes_its_frozen_header_only():
    body = bytes([2, 3, 1, 0, 40, 9]) + (1234).to_bytes(2, "little") + b"\x55" * 7  # v2: any layout after byte 8
    info = sp.decode_frame(_frame(2, sp.MsgType.INFO, 0, body)).message
    assert (info.protocol_version, info.firmware_version, info.dof, info.watchdog_ms) == (2, (3, 1, 0), 40, 1234)
    assert info.lower == info.upper == info.max_step == ()


@pytest.mark.parametrize("dof, space, named", [(16, 0, "dof=16"), (2, 2, "action_space=2")])
def test_an_info_this_host_cannot_use_names_the_field(dof, space, named):
    body = bytes([1, 1, 0, 0, dof, space]) + (500).to_bytes(2, "little") + b"\x00" * (12 * (dof + 1))
    with pytest.raises(sp.FrameRejected, match=named):
        sp.decode_frame(_frame(1, sp.MsgType.INFO, 0, body))


def test_hello_with_a_body_is_still_hello():
    assert sp.decode_frame(_frame(2, sp.MsgType.HELLO, 4, b"\x01\x02")) == sp.Received(2, 4, sp.Hello())
    with pytest.raises(sp.FrameRejected) as e:
        sp.decode_frame(_frame(1, sp.MsgType.HEARTBEAT, 4, b"\x01"))
    assert e.value.reason == sp.NakReason.BAD_LENGTH


def test_hello_and_info_decode_in_any_version():
    assert sp.decode_frame(_frame(7, sp.MsgType.HELLO, 3, b"")) == sp.Received(7, 3, sp.Hello())
    info = sp.Info(1, (9, 0, 0), 1, sp.ActionSpace.EE, 100, (-1.0, 0.0), (1.0, 1.0), (0.125, 1.0))
    assert sp.decode_frame(sp.encode(info, 4, version=2)[:-1]).message == info  # the field decides, not the header


def test_encoder_refuses_what_does_not_fit():
    with pytest.raises(ProtocolError):
        sp.encode(sp.SetTarget(tuple([0.0] * (sp.MAX_AXES + 1))), 0)
    with pytest.raises(ValueError):
        sp.encode(sp.Heartbeat(), 0x10000)


def test_decoder_discards_an_endless_frame_then_recovers():
    decoder = sp.FrameDecoder()
    results = decoder.feed(b"\x01" * (3 * sp.MAX_ENCODED))
    assert results == []
    results = decoder.feed(b"\x00" + sp.encode(sp.GetState(), 11))
    assert results == [sp.Received(1, 11, sp.GetState())]  # the overflow is dropped without an answer


# -- properties ------------------------------------------------------------------------------------

f32 = st.floats(width=32, allow_nan=False)
axes = st.lists(f32, min_size=1, max_size=sp.MAX_AXES).map(tuple)
seqs = st.integers(0, 0xFFFF)
u8 = st.integers(0, 255)


@st.composite
def infos(draw):
    dof = draw(st.integers(1, sp.MAX_AXES - 1))
    vals = st.lists(f32, min_size=dof + 1, max_size=dof + 1).map(tuple)
    return sp.Info(
        sp.PROTOCOL_VERSION,
        (draw(u8), draw(u8), draw(u8)),
        dof,
        draw(st.sampled_from(list(sp.ActionSpace))),
        draw(st.integers(0, 0xFFFF)),
        draw(vals),
        draw(vals),
        draw(vals),
    )


messages = st.one_of(
    st.sampled_from([sp.Hello(), sp.Heartbeat(), sp.Estop(), sp.ClearEstop(), sp.GetState()]),
    axes.map(sp.SetTarget),
    infos(),
    st.builds(sp.State, u8, seqs, axes),
    st.builds(sp.Ack, u8),
    st.builds(sp.Nak, u8, u8, st.one_of(st.none(), st.integers(0, 254))),
)


@given(messages, seqs)
def test_round_trip(message, seq):
    wire = sp.encode(message, seq)
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    assert len(wire) - 1 <= sp.MAX_ENCODED
    assert sp.decode_frame(wire[:-1]) == sp.Received(sp.PROTOCOL_VERSION, seq, message)


@given(st.binary(max_size=600))
def test_random_bytes_raise_only_protocol_error(data):
    try:
        sp.decode_frame(data)
    except ProtocolError:
        pass


@given(st.binary(max_size=600))
def test_streaming_decoder_never_raises(data):
    for item in sp.FrameDecoder().feed(data):
        assert isinstance(item, (sp.Received, sp.FrameRejected))


@settings(max_examples=200)
@given(st.binary(max_size=400), st.lists(st.tuples(messages, seqs), min_size=1, max_size=5), st.data())
def test_decoder_resynchronizes_after_garbage(garbage, frames, data):
    # Garbage, then a delimiter (as the host sends before every frame), then valid frames,
    # delivered in arbitrary chunks: every valid frame comes out, in order, after the garbage.
    stream = garbage + b"\x00" + b"".join(sp.encode(m, s) for m, s in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = sp.FrameDecoder()
    results = []
    for start, end in zip([0] + cuts, cuts + [len(stream)]):
        results += decoder.feed(stream[start:end])
    decoded = [r for r in results if isinstance(r, sp.Received)]
    expected = [sp.Received(1, s, m) for m, s in frames]
    assert decoded[len(decoded) - len(expected) :] == expected
