"""`ThreadedCamera`: the `Camera` protocol on top of any `FrameSource`, with one reader thread.

The thread reads frames as the source delivers them and keeps the newest one plus a short
history (for `frame_before`); nothing queues up without bound. Stalls (no frame for two frame
periods) and the end of a recording are noticed by the thread and reported by `latest`.

In lockstep mode (recordings played not in real time) the thread reads the next frame only once
the current one was handed out by `latest`/`wait_newer`, so a consumer sees every frame in order.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Optional, Protocol

from drivers.camera.base import CameraInfo, CameraStats, Frame
from drivers.errors import CameraStalled, DriverError, NotConnectedError

STALL_PERIODS = 2.0  # no frame for this many frame periods is a stall
HISTORY_S = 0.5  # how far back frame_before can look
HISTORY_MIN, HISTORY_MAX = 4, 16  # frames; bounds memory whatever the rate


class EndOfStream(Exception):
    """Raised by a source when a (non-looping) recording has no more frames."""


class FrameSource(Protocol):
    """What a backend implements; ThreadedCamera does the threading and bookkeeping."""

    def open(self) -> CameraInfo:
        """Start the device; raise DriverError with what to do if it cannot."""
        ...

    def read(self, timeout_s: float) -> Optional[Frame]:
        """The next frame, None if none came within timeout_s; EndOfStream at the end of a recording."""
        ...

    def close(self) -> None: ...


@dataclass
class _Counters:
    received: int = 0
    dropped: int = 0
    stalls: int = 0


class ThreadedCamera:
    """A Camera backed by a FrameSource and a reader thread."""

    def __init__(self, name: str, source: FrameSource, *, lockstep: bool = False, first_frame_timeout_s: float = 5.0):
        self.name = name
        self._source = source
        self._lockstep = lockstep
        self._first_frame_timeout_s = first_frame_timeout_s
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._info: CameraInfo | None = None
        self._stall_after_s = 1.0
        self._reset()

    def _reset(self) -> None:
        self._newest: Frame | None = None
        self._history: deque[Frame] = deque(maxlen=HISTORY_MIN)
        self._handed_out = True  # lockstep: the newest frame was taken, read the next
        self._stalled_since: float | None = None
        self._ended = False
        self._error: BaseException | None = None
        self._counters = _Counters()

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> "ThreadedCamera":
        if self._thread is not None:
            return self
        self._reset()
        self._info = self._source.open()
        period = 1.0 / self._info.fps
        self._stall_after_s = STALL_PERIODS * period
        self._history = deque(maxlen=max(HISTORY_MIN, min(HISTORY_MAX, round(HISTORY_S / period))))
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()
        with self._cond:
            self._cond.wait_for(
                lambda: self._newest is not None or self._ended or self._error is not None, self._first_frame_timeout_s
            )
            newest, ended, error = self._newest, self._ended, self._error
        if newest is None:
            self.close()
            if error is not None:
                raise _as_driver_error(self.name, error)
            what = "the recording has no frames" if ended else f"no frame within {self._first_frame_timeout_s:g} s"
            raise CameraStalled(f"camera {self.name} ({self._info.description}): {what}")
        return self

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            # read() returns within a stall period, so this join is bounded.
            thread.join(timeout=self._stall_after_s + 2.0)
            self._source.close()

    def __enter__(self) -> "ThreadedCamera":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def info(self) -> CameraInfo:
        if self._info is None:
            raise NotConnectedError(f"camera {self.name} is not open")
        return self._info

    @property
    def stats(self) -> CameraStats:
        with self._cond:
            c = self._counters
            return CameraStats(c.received, c.dropped, c.stalls)

    # -- reading --------------------------------------------------------------------------------

    def latest(self, max_age_s: float) -> Frame:
        with self._cond:
            self._raise_if_unusable()
            newest = self._newest
            if newest is None:
                raise CameraStalled(f"camera {self.name} has no frame yet")
            now = time.monotonic()
            if self._stalled_since is not None:
                raise CameraStalled(
                    f"camera {self.name}: no frame for {1000 * (now - newest.host_time_s):.0f} ms "
                    f"(expected one every {1000 / self.info.fps:.0f} ms); check the cable and USB bandwidth"
                )
            # Lockstep frames wait for their consumer, so their age says nothing about the camera.
            if not self._lockstep and now - newest.host_time_s > max_age_s:
                raise CameraStalled(
                    f"camera {self.name}: newest frame is {1000 * (now - newest.host_time_s):.0f} ms old "
                    f"(max {1000 * max_age_s:.0f} ms)"
                )
            self._hand_out()
            return newest

    def wait_newer(self, after_frame: int, timeout_s: float) -> Frame:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                newest = self._newest
                if newest is not None and newest.frame_number > after_frame:
                    self._hand_out()
                    return newest
                self._raise_if_unusable()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CameraStalled(f"camera {self.name}: no frame after #{after_frame} within {timeout_s:g} s")
                self._cond.wait(remaining)

    def frame_before(self, t: float) -> Optional[Frame]:
        with self._cond:
            for frame in reversed(self._history):
                if frame.host_time_s <= t:
                    return frame
        return None

    def _hand_out(self) -> None:
        if not self._handed_out:
            self._handed_out = True
            self._cond.notify_all()

    def _raise_if_unusable(self) -> None:
        if self._thread is None:
            raise NotConnectedError(f"camera {self.name} is not open; call open() or use it in a with block")
        if self._error is not None:
            raise _as_driver_error(self.name, self._error)
        if self._ended:
            raise CameraStalled(
                f"camera {self.name}: recording ended after {self._counters.received} frames "
                "(use recording:PATH?loop to repeat it)"
            )

    # -- the reader thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._lockstep:
                    self._cond.wait_for(lambda: self._handed_out or self._stopping)
                if self._stopping:
                    return
            try:
                frame = self._source.read(self._stall_after_s)
            except EndOfStream:
                self._finish(ended=True)
                return
            except BaseException as e:  # noqa: BLE001 - reported to the consumer by latest()
                self._finish(error=e)
                return
            with self._cond:
                if frame is None:
                    if self._stalled_since is None:
                        self._stalled_since = time.monotonic()
                        self._counters.stalls += 1
                        self._cond.notify_all()
                    continue
                previous = self._newest
                if previous is not None and frame.frame_number <= previous.frame_number:
                    continue  # a repeat (e.g. after a seek): never hand out frames out of order
                if previous is not None:
                    self._counters.dropped += frame.frame_number - previous.frame_number - 1
                self._counters.received += 1
                self._newest = frame
                self._history.append(frame)
                self._stalled_since = None
                self._handed_out = False
                self._cond.notify_all()

    def _finish(self, ended: bool = False, error: BaseException | None = None) -> None:
        with self._cond:
            self._ended = ended
            self._error = error
            self._cond.notify_all()


def _as_driver_error(name: str, error: BaseException) -> DriverError:
    if isinstance(error, DriverError):
        return error
    message = " ".join(str(error).split())  # SDK messages can span lines; ours are one line
    return DriverError(f"camera {name} failed: {message}")
