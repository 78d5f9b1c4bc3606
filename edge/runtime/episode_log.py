"""The episode log (`run --log DIR`): what the loop saw and did, tick by tick. Format: docs/episode-log.md.

    DIR/meta.json        the run plan: bundle, instruction, rate, K, chunk, limits, cameras, arm
    DIR/ticks.jsonl      one line per control tick
    DIR/chunks.jsonl     one line per inference (the policy rate)
    DIR/events.jsonl     start, stop, ESTOP, shutdown
    DIR/frames/CAM/NNNNNN.png   the color frames each inference saw (chunk id NNNNNN)
    DIR/report.json      the cadence report, written last

A writer thread does all encoding and I/O; the control tick only appends to a bounded queue
and never blocks: if the disk cannot keep up, records are dropped and counted (`dropped`).
A write that fails (a full disk: ENOSPC, a failing one: EIO) is counted (`write_errors`, the
first reason kept) and never raised: at shutdown the arm's safety matters more than the log.
"""

from __future__ import annotations

import contextlib
import errno
import json
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import EdgeError
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
        self.first_error = ""  # why the first failed write failed, e.g. "ENOSPC: No space left on device"
        self.report_written = False
        self._queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self._files: dict[str, object] = {}
        self._thread: threading.Thread | None = None

    def open(self, meta: dict) -> "EpisodeLog":
        """Create the directory, write meta.json, start the writer. A directory that cannot be written is
        an EdgeError here, before the loop moves anything."""
        make_log_directory(self.directory)
        try:
            (self.directory / "meta.json").write_text(json.dumps(with_provenance(meta), indent=2, default=_jsonable))
            for name in (self.TICKS, self.CHUNKS, self.EVENTS):
                self._files[name] = open(self.directory / name, "w", encoding="utf-8")
        except OSError as e:
            self._close_files()
            raise EdgeError(f"cannot write the episode log in {self.directory}: {describe_os_error(e)}") from e
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

    def close(self, report: dict | None = None, timeout_s: float = 10.0) -> dict:
        """Write everything queued, then report.json; close the files. Idempotent; never raises for a
        failed write. Returns the log's state (`status()`)."""
        if self._thread is None:
            return self.status()
        self._queue.put(_STOP)  # blocking on purpose: the loop is over, completeness matters now
        self._thread.join(timeout_s)
        self._thread = None
        self._close_files()
        if report is not None:
            report = dict(report, log=self.status())
            try:
                (self.directory / "report.json").write_text(json.dumps(report, indent=2, default=_jsonable))
                self.report_written = True
            except OSError as e:
                self._count_error(e)
                with contextlib.suppress(OSError):  # a truncated report would read as a broken one
                    (self.directory / "report.json").unlink()
        return self.status()

    def status(self) -> dict:
        """What reached the disk: records dropped (queue full), writes failed and why, report.json written."""
        return {"dropped_records": self.dropped, "write_errors": self.write_errors,
                "first_error": self.first_error, "report_written": self.report_written}

    def _close_files(self) -> None:
        for f in self._files.values():
            try:
                f.close()  # flushes: on a full disk this is where the last records fail
            except OSError as e:
                self._count_error(e)
        self._files.clear()

    def _count_error(self, error: OSError) -> None:
        self.write_errors += 1
        self.first_error = self.first_error or describe_os_error(error)

    def _put(self, item) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return  # _close_files flushes
            try:
                if isinstance(item, _Line):
                    self._files[item.file].write(json.dumps(item.record, default=_jsonable) + "\n")
                    if self._queue.empty():
                        self._files[item.file].flush()  # a crash loses at most what is still queued
                else:
                    _write_png(item.path, item.pixels)
            except OSError as e:
                self._count_error(e)
            except (ValueError, TypeError):
                self.write_errors += 1


def with_provenance(meta: dict) -> dict:
    """The run plan plus where the run came from: wall-clock start (ISO 8601 UTC, and the monotonic
    time beside it), toolkit version, the bundle's manifest sha256. The profile is in the plan."""
    return {**meta, **run_provenance(meta.get("bundle"))}


def make_log_directory(directory: Path) -> None:
    """Create the log directory, or say in one line why it cannot be (before anything moves)."""
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeError(f"cannot write the episode log in {directory}: {describe_os_error(e)}") from e


def describe_os_error(error: OSError) -> str:
    """'ENOSPC: No space left on device' (the errno's name and its text)."""
    name = errno.errorcode.get(error.errno, "") if error.errno else ""
    text = error.strerror or str(error)
    return f"{name}: {text}" if name else text


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
