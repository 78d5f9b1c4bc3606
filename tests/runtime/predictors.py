"""Predictor wrappers that inject faults (composition, like openpi's policy wrappers)."""

from __future__ import annotations

import threading
import time

import numpy as np

from edge.policy.contract import Prediction


class Wrapped:
    """Behaves as `inner` except where a subclass says otherwise."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, images, state, instruction, noise=None) -> Prediction:
        with self._lock:
            self.calls += 1
        return self.inner.predict(images, state, instruction, noise)


class Stalling(Wrapped):
    """Inference call number `at` takes `stall_s` longer (a hung engine, a GC pause, thermal throttling)."""

    def __init__(self, inner, at: int, stall_s: float):
        super().__init__(inner)
        self.at, self.stall_s = at, stall_s
        self.stalled_at: float | None = None

    def predict(self, images, state, instruction, noise=None):
        if self.calls + 1 == self.at:
            self.stalled_at = time.monotonic()
            time.sleep(self.stall_s)
        return super().predict(images, state, instruction, noise)


class Slow(Wrapped):
    """Every inference takes at least `seconds` (sleeping, as a GPU-bound engine waits)."""

    def __init__(self, inner, seconds: float):
        super().__init__(inner)
        self.seconds = seconds

    def predict(self, images, state, instruction, noise=None):
        start = time.perf_counter()
        prediction = super().predict(images, state, instruction, noise)
        time.sleep(max(0.0, self.seconds - (time.perf_counter() - start)))
        return prediction


class NonFiniteChunks(Wrapped):
    """After `good` sound chunks, every chunk is NaN (a diverged engine)."""

    def __init__(self, inner, good: int):
        super().__init__(inner)
        self.good = good

    def predict(self, images, state, instruction, noise=None):
        prediction = super().predict(images, state, instruction, noise)
        if self.calls <= self.good:
            return prediction
        return Prediction(np.full_like(prediction.normalized, np.nan), prediction.timings_ms)


class NonFiniteConversion(Wrapped):
    """Chunks are fine but the conversion to robot units yields NaN (e.g. a degenerate rotation)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.decoder = _NaNDecoder(inner.decoder)


class _NaNDecoder:
    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def robot_actions(self, normalized):
        robot = np.array(self.inner.robot_actions(normalized))
        robot[..., 0] = np.nan
        return robot


class FailingConversion(Wrapped):
    """The conversion raises: a bug in the tick itself."""

    def __init__(self, inner):
        super().__init__(inner)
        self.decoder = _ExplodingDecoder(inner.decoder)


class _ExplodingDecoder(_NaNDecoder):
    def robot_actions(self, normalized):
        raise RuntimeError("conversion exploded")


class Replaying(Wrapped):
    """Answers every inference with the first real prediction, `seconds` after being asked (sleeping,
    as the CPU waits on an accelerator): the model's CPU load out of the way of a timing test."""

    def __init__(self, inner, seconds: float):
        super().__init__(inner)
        self.seconds = seconds
        self._first: Prediction | None = None

    def predict(self, images, state, instruction, noise=None):
        if self._first is None:
            self._first = super().predict(images, state, instruction, noise)
        time.sleep(self.seconds)
        return self._first
