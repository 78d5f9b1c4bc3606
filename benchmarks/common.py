"""Helpers shared by the benchmarks: medians of repeated timings, tables, JSON output."""

from __future__ import annotations

import json
import statistics
import time
from typing import Callable


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall time of `fn` in milliseconds after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def print_table(title: str, header: list[str], rows: list[list], as_json: bool, payload: dict) -> None:
    """A fixed-width table for people, or the payload as JSON for machines."""
    if as_json:
        print(json.dumps(payload, indent=2))
        return
    print(title)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
