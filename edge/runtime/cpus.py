"""Which CPUs the control process and the model process run on.

On a loaded machine the scheduler may queue the tick (or the arm emulator answering it) behind
the model on the same core, and current Linux schedulers (EEVDF) let a running task finish its
slice first: 1.5-4 ms late ticks on a 2-core machine even with the model at a lower priority.
So the control side (tick, cameras, serial) gets its own CPUs and the model process the rest.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuPlan:
    """Disjoint CPU sets where the machine has two or more CPUs; both sets equal otherwise."""

    control: frozenset[int]
    model: frozenset[int]

    @classmethod
    def split(cls, available: set[int] | frozenset[int]) -> "CpuPlan":
        """A quarter of the CPUs (at least one) for control, the rest for the model."""
        cpus = sorted(available)
        if len(cpus) < 2:
            return cls(frozenset(cpus), frozenset(cpus))
        control = cpus[: max(1, len(cpus) // 4)]
        return cls(frozenset(control), frozenset(cpus[len(control):]))

    @classmethod
    def for_this_process(cls) -> "CpuPlan":
        return cls.split(os.sched_getaffinity(0))

    def describe(self) -> dict:
        return {"control": sorted(self.control), "model": sorted(self.model)}


@contextlib.contextmanager
def run_on(cpus: frozenset[int]):
    """Run the calling thread, and every thread and process it starts meanwhile, on `cpus`;
    the previous affinity is restored afterwards. Where it is not permitted, nothing changes."""
    previous = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cpus)
    except OSError:
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            os.sched_setaffinity(0, previous)
