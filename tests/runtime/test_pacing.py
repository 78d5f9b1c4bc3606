"""Fixed-rate scheduling logic (no timing asserts: speed belongs in benchmarks/loop_overhead.py)."""

from __future__ import annotations

from edge.runtime.pacing import TickSchedule, now, sleep_until


def test_ticks_are_due_one_period_apart():
    s = TickSchedule(start=100.0, period=0.1)
    assert s.due() == 100.0 and s.due(3) == 100.0 + 3 * 0.1
    assert s.tick_at(100.26) == 3 and s.tick_at(99.0) == -10


def test_on_time_ticks_advance_one_by_one():
    s = TickSchedule(start=0.0, period=0.1)
    for i in range(1, 20):
        assert s.advance(s.due() + 0.01) == i
    assert s.missed == 0


def test_an_overrun_skips_to_the_next_slot_ahead_and_counts_the_misses():
    s = TickSchedule(start=0.0, period=0.1)
    # Tick 0 ran until t = 0.35: slots 1, 2 and 3 are gone; the next tick is 4, not a burst of catch-up ticks.
    assert s.advance(0.35) == 4
    assert s.missed == 3
    assert s.due() > 0.35


def test_a_slightly_late_finish_runs_the_next_tick_late_rather_than_skipping_it():
    s = TickSchedule(start=0.0, period=0.1)
    assert s.advance(0.14) == 1 and s.missed == 0


def test_sleep_until_never_returns_early():
    for offset in (0.0, 0.0005, 0.002, 0.01):
        deadline = now() + offset
        sleep_until(deadline)
        assert now() >= deadline
    sleep_until(now() - 1.0)  # a deadline in the past returns at once
