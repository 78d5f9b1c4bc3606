"""Fixed-rate pacing on the monotonic clock: sleep most of the way, spin the last millisecond.

`time.sleep` on Linux wakes up to a few hundred microseconds late (and a millisecond or more
under load); spinning through the final stretch puts the tick start within tens of
microseconds of its slot, as diffusion_policy's `precise_wait` does (style.md §5).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

now = time.monotonic  # the one clock of the runtime: frames and arm states are stamped with it

DEFAULT_SPIN_S = 0.001


def sleep_until(deadline: float, spin_s: float = DEFAULT_SPIN_S) -> None:
    """Return at `deadline` (monotonic seconds): sleep until `spin_s` before it, then spin."""
    remaining = deadline - now()
    if remaining > spin_s:
        time.sleep(remaining - spin_s)
    while now() < deadline:
        pass


@dataclass
class TickSchedule:
    """Tick k is due at `start + k * period`. Ticks are never bunched up to catch up: after an
    overrun the schedule skips to the next slot still ahead, and the skipped slots count as misses."""

    start: float
    period: float
    index: int = 0
    missed: int = 0

    @classmethod
    def at_rate(cls, rate_hz: float, start: float | None = None) -> "TickSchedule":
        """A schedule at `rate_hz` whose tick 0 is due at `start` (default: one period from now)."""
        period = 1.0 / rate_hz
        return cls(start=now() + period if start is None else start, period=period)

    def due(self, index: int | None = None) -> float:
        """When tick `index` (default: the current one) is due."""
        return self.start + (self.index if index is None else index) * self.period

    def tick_at(self, t: float) -> int:
        """The tick whose slot is nearest to time `t` (may be negative or in the future)."""
        return round((t - self.start) / self.period)

    def advance(self, t: float) -> int:
        """Move to the next tick after the current one finished at time `t`; returns its index.

        If `t` is already past that tick's slot by more than half a period, the slots in
        between are skipped and counted in `missed`.
        """
        following = self.index + 1
        late_by = t - self.due(following)
        if late_by > self.period / 2:
            skip_to = math.floor((t - self.start) / self.period) + 1
            self.missed += skip_to - following
            following = skip_to
        self.index = following
        return following
