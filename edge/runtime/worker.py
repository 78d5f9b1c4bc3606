"""The inference worker: newest observation in, time-stamped chunk out, on its own thread.

The control tick never waits for it: finished chunks go into a small outbox that the tick
drains with `take()` (a deque: appends and pops are atomic, no lock held across inference).
If the predictor raises, the worker records why and stops; the control loop turns that into
an ESTOP. A slow predictor only means fewer chunks, which the loop answers with holds.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Callable

from drivers.errors import DriverError
from edge.policy.contract import ChunkPredictor
from edge.runtime.chunks import TimedChunk
from edge.runtime.observation import Observation, ObservationSource
from edge.runtime.pacing import now

OUTBOX_SIZE = 8  # the tick drains it every period; more than a few waiting means the tick is gone


class InferenceWorker:
    """Runs `predictor` on the newest observation, over and over, until stopped."""

    def __init__(
        self,
        predictor: ChunkPredictor,
        source: ObservationSource,
        instruction: str,
        frame_timeout_s: float = 0.1,
        on_chunk: Callable[[TimedChunk, Observation], None] | None = None,
    ):
        self.predictor = predictor
        self.source = source
        self.instruction = instruction
        self.frame_timeout_s = frame_timeout_s
        self.on_chunk = on_chunk
        self.inferences = 0
        self.failure: str | None = None  # set once if the predictor raised; the worker has stopped
        self.camera_error: str | None = None  # the last camera error other than a stall
        self._outbox: deque[TimedChunk] = deque(maxlen=OUTBOX_SIZE)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread (daemon: a predictor stuck in native code cannot block exit)."""
        if self._thread is not None:
            raise RuntimeError("the inference worker is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="inference-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Ask the worker to stop after its current inference; True if it ended within timeout_s."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def take(self) -> list[TimedChunk]:
        """Every chunk finished since the last call, oldest first. Never blocks."""
        taken = []
        while True:
            try:
                taken.append(self._outbox.popleft())
            except IndexError:
                return taken

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._step()
        except Exception as e:  # noqa: BLE001 - any failure ends the run (the loop ESTOPs), with its message
            self.failure = f"{type(e).__name__}: {e}"

    def _step(self) -> None:
        asked = now()
        try:
            observation = self.source.next(self.frame_timeout_s)
        except DriverError as e:
            observation, self.camera_error = None, str(e)
        if observation is None:
            if now() - asked < self.frame_timeout_s / 2:  # ended or failed: it answers at once
                self.camera_error = self.camera_error or self.source.last_stall
                # Wait out the timeout instead of spinning on it (and starving the tick of the GIL).
                self._stopping.wait(self.frame_timeout_s)
            return
        if self._stopping.is_set():
            return
        capture_ms = (now() - observation.obs_time) * 1e3  # frame receipt → aligned observation in hand
        prediction = self.predictor.predict(observation.images, observation.state_vector, self.instruction)
        chunk = TimedChunk(
            chunk_id=self.inferences,
            obs_time=observation.obs_time,
            normalized=prediction.normalized,
            published_at=now(),
            timings_ms={"capture": capture_ms, **prediction.timings_ms},
            frame_numbers=observation.frame_numbers,
        )
        self.inferences += 1
        self._outbox.append(chunk)
        if self.on_chunk is not None:
            self.on_chunk(chunk, observation)
