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


def latency_ms(fn: Callable[[], object], repeats: int, warmup: int = 2, sync: Callable[[], None] | None = None):
    """p50/p90/p99/max of `fn`'s wall time in ms over `repeats` runs after `warmup` untimed ones.
    `sync` (e.g. torch.cuda.synchronize) runs before each clock read, so GPU work is counted."""
    from edge.profiling.stats import summarize_stage

    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1e3)
    return summarize_stage(times)


def normalized_rmse(chunk, reference) -> float:
    """RMSE between two action chunks in the policy's normalized action space (both as float32)."""
    return float(((chunk.float().cpu() - reference.float().cpu()) ** 2).mean().sqrt())
