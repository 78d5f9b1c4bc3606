"""The wire format between the policy server and its clients: msgpack with numpy arrays.

An array travels as a map `{"__ndarray__": true, "dtype": "<f4", "shape": [..], "data": bytes}`.
Only plain numeric dtypes (bool, integers, floats) cross the wire: object, structured and void
dtypes are refused, so nothing ever falls back to pickle. Decoding is bounded (bytes per
message, per array, dimensions per array, items per container) because a request is untrusted.
Imports no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgpack
import numpy as np

ARRAY_KEY = "__ndarray__"
ALLOWED_DTYPE_KINDS = "biuf"  # bool, signed, unsigned, float: never object ("O") or void ("V")


class WireError(ValueError):
    """A message that cannot be decoded or breaks the limits; its text is one line for the peer."""


@dataclass(frozen=True)
class WireLimits:
    """Bounds on one decoded message (the transport's frame limit is `max_message_bytes`)."""

    max_message_bytes: int = 16 * 1024 * 1024
    max_array_bytes: int = 8 * 1024 * 1024
    max_array_dims: int = 4
    max_container_items: int = 64

    def as_dict(self) -> dict:
        return {"max_message_bytes": self.max_message_bytes, "max_array_bytes": self.max_array_bytes,
                "max_array_dims": self.max_array_dims, "max_container_items": self.max_container_items}


def pack(message: dict) -> bytes:
    """Encode a message (dicts, lists, str, numbers, numpy arrays and scalars)."""
    return msgpack.packb(message, default=_encode_array, use_bin_type=True)


def unpack(data: bytes, limits: WireLimits = WireLimits()) -> dict:
    """Decode one message; WireError (one line) if it is malformed or over the limits."""
    if not isinstance(data, (bytes, bytearray)):
        raise WireError("expected a binary msgpack message, got text")
    if len(data) > limits.max_message_bytes:
        raise WireError(f"message is {len(data)} bytes; the limit is {limits.max_message_bytes}")
    try:
        message = msgpack.unpackb(
            data, raw=False, strict_map_key=True, object_hook=lambda m: _decode_array(m, limits),
            max_bin_len=limits.max_array_bytes, max_str_len=limits.max_array_bytes,
            max_array_len=limits.max_container_items, max_map_len=limits.max_container_items,
            max_ext_len=0,
        )
    except WireError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise WireError(f"not a valid message: {_one_line(e)}") from e
    if not isinstance(message, dict):
        raise WireError(f"a message must be a map, got {type(message).__name__}")
    return message


def _encode_array(value):
    if isinstance(value, np.ndarray):
        _check_dtype(value.dtype)
        array = np.ascontiguousarray(value)
        return {ARRAY_KEY: True, "dtype": array.dtype.str, "shape": list(array.shape), "data": array.tobytes()}
    if isinstance(value, np.generic):
        _check_dtype(value.dtype)
        return value.item()
    raise TypeError(f"cannot send {type(value).__name__} (only numbers, strings, lists, maps and numpy arrays)")


def _decode_array(mapping: dict, limits: WireLimits):
    if ARRAY_KEY not in mapping:
        return mapping
    try:
        dtype = np.dtype(mapping["dtype"])
        shape = tuple(int(n) for n in mapping["shape"])
        data = mapping["data"]
    except (KeyError, TypeError, ValueError) as e:
        raise WireError(f"malformed array: {_one_line(e)}") from e
    _check_dtype(dtype)
    if len(shape) > limits.max_array_dims or any(n < 0 for n in shape):
        raise WireError(f"array shape {list(shape)}: at most {limits.max_array_dims} non-negative dimensions")
    if not isinstance(data, bytes) or len(data) != math.prod(shape) * dtype.itemsize:
        raise WireError(f"array data does not match its shape {list(shape)} and dtype {dtype.str}")
    return np.frombuffer(data, dtype=dtype).reshape(shape)  # read-only, like camera frames


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in ALLOWED_DTYPE_KINDS or dtype.fields is not None:
        raise WireError(f"dtype {dtype.str} is not allowed (only bool, integer and float arrays)")


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
