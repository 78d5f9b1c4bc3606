"""The episode log (`run --log DIR`): what the loop saw and did, tick by tick. Format: docs/episode-log.md.

    DIR/meta.json        the run plan: bundle, instruction, rate, K, chunk, limits, cameras, arm
    DIR/ticks.jsonl      one line per control tick
    DIR/chunks.jsonl     one line per inference (the policy rate)
    DIR/events.jsonl     start, stop, ESTOP, shutdown
    DIR/frames/CAM/NNNNNN.png   the color frames each inference saw (chunk id NNNNNN)
    DIR/report.json      the cadence report, written last

A writer thread does all encoding and I/O; the control tick only appends to a bounded queue
and never blocks: if the disk cannot keep up, records are dropped and counted (`dropped`).
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.runtime.chunks import TimedChunk
from edge.runtime.observation import Observation
from edge.runtime.provenance import run_provenance

QUEUE_SIZE = 4096
PNG_COMPRESS_LEVEL = 1  # fast: the writer should keep up at the policy rate


@dataclass(frozen=True)
class _Line:
    file: str
    record: dict


@dataclass(frozen=True)
class _Image:
    path: Path
    pixels: np.ndarray


_STOP = object()


class EpisodeLog:
    """Writes one run's episode log into `directory` (created; existing files are replaced)."""

    TICKS, CHUNKS, EVENTS = "ticks.jsonl", "chunks.jsonl", "events.jsonl"

    def __init__(self, directory: Path, save_frames: bool = True):
        self.directory = Path(directory)
        self.save_frames = save_frames
        self.dropped = 0
        self.write_errors = 0
        self._queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self._files: dict[str, object] = {}
        self._thread: threading.Thread | None = None

    def open(self, meta: dict) -> "EpisodeLog":
        """Create the directory, write meta.json, start the writer."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "meta.json").write_text(json.dumps(with_provenance(meta), indent=2, default=_jsonable))
        for name in (self.TICKS, self.CHUNKS, self.EVENTS):
            self._files[name] = open(self.directory / name, "w", encoding="utf-8")
        self._thread = threading.Thread(target=self._run, name="episode-log", daemon=True)
        self._thread.start()
        return self

    def tick(self, record: dict) -> None:
        """Queue one tick's record (never blocks)."""
        self._put(_Line(self.TICKS, record))

    def event(self, kind: str, **fields) -> None:
        """Queue an event (start, stop, shutdown, ...)."""
        self._put(_Line(self.EVENTS, {"event": kind, **fields}))

    def chunk(self, chunk: TimedChunk, observation: Observation) -> None:
        """Queue one inference's record and the color frames it saw (called by the worker)."""
        self._put(_Line(self.CHUNKS, {
            "chunk": chunk.chunk_id,
            "obs_time": chunk.obs_time,
            "published_at": chunk.published_at,
            "frames": {f.camera: f.frame_number for f in observation.frames},
            "state": list(observation.state.as_target()),
            "timings_ms": chunk.timings_ms,
            "normalized": np.asarray(chunk.normalized).tolist(),
        }))
        if self.save_frames:
            for frame in observation.frames:
                self._put(_Image(self.directory / "frames" / frame.camera / f"{chunk.chunk_id:06d}.png", frame.color))

    def close(self, report: dict | None = None, timeout_s: float = 10.0) -> None:
        """Write everything queued, then report.json; close the files. Idempotent."""
        if self._thread is None:
            return
        self._queue.put(_STOP)  # blocking on purpose: the loop is over, completeness matters now
        self._thread.join(timeout_s)
        self._thread = None
        for f in self._files.values():
            f.close()
        self._files.clear()
        if report is not None:
            report = dict(report, log={"dropped_records": self.dropped, "write_errors": self.write_errors})
            (self.directory / "report.json").write_text(json.dumps(report, indent=2, default=_jsonable))

    def _put(self, item) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                for f in self._files.values():
                    f.flush()
                return
            try:
                if isinstance(item, _Line):
                    self._files[item.file].write(json.dumps(item.record, default=_jsonable) + "\n")
                    if self._queue.empty():
                        self._files[item.file].flush()  # a crash loses at most what is still queued
                else:
                    _write_png(item.path, item.pixels)
            except (OSError, ValueError, TypeError):
                self.write_errors += 1


def with_provenance(meta: dict) -> dict:
    """The run plan plus where the run came from: wall-clock start (ISO 8601 UTC, and the monotonic
    time beside it), toolkit version, the bundle's manifest sha256. The profile is in the plan."""
    return {**meta, **run_provenance(meta.get("bundle"))}


def _write_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, compress_level=PNG_COMPRESS_LEVEL)


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value"):  # enums
        return value.value
    return str(value)
