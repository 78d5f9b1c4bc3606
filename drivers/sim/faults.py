"""Fault injection for the firmware emulator: what can go wrong on a serial link, on demand.

Spec syntax (the `--fault` option of `tinyvla-edge sim-arm`, combinable, repeatable):

    corrupt:P[:rx|tx]    flip bits in a fraction P of bytes (rx: host->arm, tx: arm->host, default both)
    drop:P[:rx|tx]       lose a fraction P of bytes
    delay:S              answer every command S seconds late
    nak:P                NAK a fraction P of commands as BAD_CRC (the host must retry)
    silence:S@T          stop answering (and processing) for S seconds, T seconds after start
    unplug:S@T           close the pty T seconds after start, reopen a new one S seconds later
    fault:S@T            report a hardware FAULT (and refuse targets) for S seconds, T seconds after start

P is in [0, 1]; S and T are seconds. Example: --fault corrupt:0.01 --fault unplug:1.0@3.0
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from drivers.errors import SpecError

FAULT_SYNTAX = (
    "corrupt:P[:rx|tx], drop:P[:rx|tx], delay:SECONDS, nak:P, silence:SECONDS@AFTER, unplug:SECONDS@AFTER, "
    "fault:SECONDS@AFTER"
)


class FaultKind(Enum):
    CORRUPT = "corrupt"
    DROP = "drop"
    DELAY = "delay"
    NAK = "nak"
    SILENCE = "silence"
    UNPLUG = "unplug"
    FAULT = "fault"

    @classmethod
    def _missing_(cls, value):
        raise SpecError(f"unknown fault {value!r}; valid: {FAULT_SYNTAX}")


_FRACTION_KINDS = (FaultKind.CORRUPT, FaultKind.DROP, FaultKind.NAK)
_WINDOW_KINDS = (FaultKind.SILENCE, FaultKind.UNPLUG, FaultKind.FAULT)
_DIRECTIONS = ("both", "rx", "tx")


@dataclass(frozen=True)
class Fault:
    """One fault. `at_s` (silence, unplug) counts from when the fault is armed: the emulator's
    start for faults given at construction, the call for `SimArm.add_fault`."""

    kind: FaultKind
    value: float
    at_s: float | None = None
    direction: str = "both"

    def __post_init__(self) -> None:
        if self.kind in _FRACTION_KINDS and not 0.0 <= self.value <= 1.0:
            raise SpecError(f"{self.kind.value} takes a fraction in [0, 1], got {self.value}")
        if self.kind not in _FRACTION_KINDS and not self.value >= 0.0:
            raise SpecError(f"{self.kind.value} takes seconds >= 0, got {self.value}")
        if self.kind in _WINDOW_KINDS and (self.at_s is None or self.at_s < 0):
            raise SpecError(f"{self.kind.value} needs a start time: {self.kind.value}:SECONDS@AFTER")
        if self.kind not in _WINDOW_KINDS and self.at_s is not None:
            raise SpecError(f"{self.kind.value} does not take @AFTER")
        if self.direction not in _DIRECTIONS:
            raise SpecError(f"fault direction {self.direction!r}; valid: rx, tx")
        if self.direction != "both" and self.kind not in (FaultKind.CORRUPT, FaultKind.DROP):
            raise SpecError(f"{self.kind.value} does not take a direction")

    @classmethod
    def parse(cls, text: str) -> "Fault":
        """Parse one `--fault` spec (see the module docstring)."""
        parts = text.strip().split(":")
        if len(parts) not in (2, 3) or not parts[1]:
            raise SpecError(f"bad fault spec {text!r}; valid: {FAULT_SYNTAX}")
        kind = FaultKind(parts[0].lower())
        value_text, at_text = (parts[1].split("@", 1) + [None])[:2]
        try:
            value = float(value_text)
            at_s = None if at_text is None else float(at_text)
        except ValueError:
            raise SpecError(f"bad number in fault spec {text!r}; valid: {FAULT_SYNTAX}") from None
        direction = parts[2].lower() if len(parts) == 3 else "both"
        return cls(kind, value, at_s, direction)

    def __str__(self) -> str:
        text = f"{self.kind.value}:{self.value:g}"
        if self.at_s is not None:
            text += f"@{self.at_s:g}"
        if self.direction != "both":
            text += f":{self.direction}"
        return text


def parse_faults(specs) -> list[Fault]:
    """Faults from strings or Fault objects (mixed lists are fine)."""
    return [spec if isinstance(spec, Fault) else Fault.parse(spec) for spec in specs]


class FaultInjector:
    """Applies armed faults to bytes and time. Not thread-safe: the emulator thread owns it."""

    def __init__(self, rng: random.Random):
        self._rng = rng
        self._byte_faults: list[Fault] = []
        self._nak_rates: list[float] = []
        self.delay_s = 0.0
        self._silences: list[tuple[float, float]] = []
        self._unplugs: list[tuple[float, float]] = []
        self._faults: list[tuple[float, float]] = []

    def arm(self, fault: Fault, now: float) -> None:
        """Activate `fault`; window faults start `fault.at_s` after `now`."""
        if fault.kind in (FaultKind.CORRUPT, FaultKind.DROP):
            self._byte_faults.append(fault)
        elif fault.kind is FaultKind.NAK:
            self._nak_rates.append(fault.value)
        elif fault.kind is FaultKind.DELAY:
            self.delay_s += fault.value
        else:
            window = (now + fault.at_s, now + fault.at_s + fault.value)
            windows = {FaultKind.SILENCE: self._silences, FaultKind.UNPLUG: self._unplugs, FaultKind.FAULT: self._faults}
            windows[fault.kind].append(window)

    def mangle(self, data: bytes, direction: str) -> bytes:
        """`data` after the corrupt/drop faults for `direction` ('rx' into the arm, 'tx' out of it)."""
        faults = [f for f in self._byte_faults if f.direction in ("both", direction) and f.value > 0]
        if not faults or not data:
            return data
        out = bytearray()
        for byte in data:
            keep = True
            for fault in faults:
                if self._rng.random() < fault.value:
                    if fault.kind is FaultKind.DROP:
                        keep = False
                    else:
                        byte ^= self._rng.randrange(1, 256)
            if keep:
                out.append(byte)
        return bytes(out)

    def nak_now(self) -> bool:
        """Whether to NAK the command at hand."""
        return any(self._rng.random() < rate for rate in self._nak_rates)

    def silenced(self, now: float) -> bool:
        return any(start <= now < end for start, end in self._silences)

    def unplugged(self, now: float) -> bool:
        return any(start <= now < end for start, end in self._unplugs)

    def hardware_fault(self, now: float) -> bool:
        return any(start <= now < end for start, end in self._faults)
