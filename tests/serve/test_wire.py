"""The msgpack + numpy wire format: arrays round-trip exactly; nothing else crosses."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from edge.serve.wire import WireError, WireLimits, pack, unpack


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int16", "<i8", ">f4", "float16", "float64"])
def test_arrays_round_trip_with_their_dtype_and_shape(dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 5).astype(dtype)
    decoded = unpack(pack({"a": array, "n": np.float32(1.5), "text": "x"}))
    assert decoded["a"].dtype == array.dtype and decoded["a"].shape == array.shape
    np.testing.assert_array_equal(decoded["a"], array)
    assert decoded["n"] == 1.5 and decoded["text"] == "x"


def _array(dtype: str, shape: list[int], data: bytes) -> bytes:
    return msgpack.packb({"a": {"__ndarray__": True, "dtype": dtype, "shape": shape, "data": data}})


@pytest.mark.parametrize("message, expected", [
    (_array("|O", [1], b"\0" * 8), "not allowed"),
    (_array("|V4", [1], b"\0" * 4), "not allowed"),
    (_array("<i4,<f4", [1], b"\0" * 8), "not allowed"),
    (_array("<c8", [1], b"\0" * 8), "not allowed"),
    (_array("<f4", [2, 2], b"\0" * 12), "does not match"),
    (_array("<f4", [-1], b""), "non-negative"),
    (_array("|u1", [2**32, 2**32, 1], b""), "does not match"),
    (_array("<f4", [1], "text"), "does not match"),
    (msgpack.packb({"a": 1}) + b"\x01", "not a valid message"),
    (msgpack.packb({"a": list(range(100))}), "not a valid message"),
    (msgpack.packb({"a": b"\0" * 2048}), "not a valid message"),
])
def test_malformed_or_unbounded_messages_are_refused_in_one_line(message, expected):
    limits = WireLimits(max_message_bytes=4096, max_array_bytes=1024)
    with pytest.raises(WireError, match=expected) as refused:
        unpack(message, limits)
    assert "\n" not in str(refused.value)


def test_a_message_over_the_byte_limit_is_refused_before_decoding():
    with pytest.raises(WireError, match="limit is 100"):
        unpack(b"\x80" * 101, WireLimits(max_message_bytes=100))
