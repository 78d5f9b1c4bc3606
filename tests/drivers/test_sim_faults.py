"""Fault specs for `sim-arm --fault` and what the injector does with bytes and time."""

from __future__ import annotations

import random

import pytest

from drivers.errors import SpecError
from drivers.sim.faults import Fault, FaultInjector, FaultKind, parse_faults


@pytest.mark.parametrize(
    "text, expected",
    [
        ("corrupt:0.01", Fault(FaultKind.CORRUPT, 0.01)),
        ("corrupt:0.01:rx", Fault(FaultKind.CORRUPT, 0.01, direction="rx")),
        ("drop:0.5:tx", Fault(FaultKind.DROP, 0.5, direction="tx")),
        ("delay:0.02", Fault(FaultKind.DELAY, 0.02)),
        ("nak:0.05", Fault(FaultKind.NAK, 0.05)),
        ("silence:2.0@5.0", Fault(FaultKind.SILENCE, 2.0, at_s=5.0)),
        ("UNPLUG:1@3", Fault(FaultKind.UNPLUG, 1.0, at_s=3.0)),
    ],
)
def test_specs_parse(text, expected):
    assert Fault.parse(text) == expected
    assert Fault.parse(str(expected)) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("explode:1", "unknown fault 'explode'; valid: corrupt:P"),
        ("corrupt", "bad fault spec"),
        ("corrupt:1.5", r"fraction in \[0, 1\]"),
        ("drop:x", "bad number"),
        ("silence:2.0", "needs a start time: silence:SECONDS@AFTER"),
        ("delay:0.1@3", "does not take @AFTER"),
        ("corrupt:0.1:up", "direction"),
        ("nak:0.1:rx", "does not take a direction"),
        ("delay:-1", "seconds >= 0"),
    ],
)
def test_bad_specs_say_what_is_valid(text, message):
    with pytest.raises(SpecError, match=message):
        Fault.parse(text)


def test_parse_faults_accepts_strings_and_faults():
    fault = Fault(FaultKind.DELAY, 0.1)
    assert parse_faults(["nak:0.1", fault]) == [Fault(FaultKind.NAK, 0.1), fault]


def test_drop_and_corrupt_rates_and_directions():
    data = bytes(range(1, 256)) * 40  # 10200 bytes
    injector = FaultInjector(random.Random(1))
    injector.arm(Fault.parse("drop:0.1:rx"), 0.0)
    rx = injector.mangle(data, "rx")
    assert 0.85 * len(data) < len(rx) < 0.95 * len(data)
    assert injector.mangle(data, "tx") == data  # rx-only

    injector = FaultInjector(random.Random(2))
    injector.arm(Fault.parse("corrupt:0.05"), 0.0)
    for direction in ("rx", "tx"):
        out = injector.mangle(data, direction)
        changed = sum(a != b for a, b in zip(out, data))
        assert len(out) == len(data) and 0.03 * len(data) < changed < 0.07 * len(data)


def test_windows_delay_and_nak():
    injector = FaultInjector(random.Random(3))
    injector.arm(Fault.parse("silence:1.0@2.0"), now=10.0)
    injector.arm(Fault.parse("unplug:0.5@0.0"), now=10.0)
    injector.arm(Fault.parse("delay:0.02"), now=10.0)
    injector.arm(Fault.parse("delay:0.01"), now=10.0)
    assert [injector.silenced(t) for t in (11.9, 12.0, 12.99, 13.0)] == [False, True, True, False]
    assert [injector.unplugged(t) for t in (9.99, 10.0, 10.49, 10.5)] == [False, True, True, False]
    assert injector.delay_s == pytest.approx(0.03)
    assert not injector.nak_now()
    injector.arm(Fault.parse("nak:0.25"), now=10.0)
    naks = sum(injector.nak_now() for _ in range(4000))
    assert 800 < naks < 1200
