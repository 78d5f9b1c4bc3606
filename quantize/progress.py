"""Stage-by-stage progress for `quantize` and `distill`, and the log that keeps what libraries print.

On a terminal the stages are a rich display: a spinner per running stage, a bar where the total
is known, the elapsed time. Anywhere else (CI, a pipe, a file) each finished stage is one plain
line, a long stage adds a line at most every HEARTBEAT_S seconds, and nothing writes a carriage
return. Every line also goes to the log, with the time.

`captured_output(log)` sends what third-party code writes while a build runs (torch's
"torchvision is not installed", FutureWarnings, onnxruntime's C++ warnings, prints) to the log
file instead of the console: Python's streams and the process's file descriptors 1 and 2 both
point at the log, and the progress display keeps a duplicate of the real stderr.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from pathlib import Path
from typing import Iterator, TextIO

HEARTBEAT_S = 15.0
QUANTIZE_STAGES = ("load", "export", "calibration", "quantization", "distillation", "fidelity", "write")


class Stage:
    """One running stage: `advance` it, `note` what it is doing, `finish` it (or use it in `with`)."""

    def __init__(self, progress: "StageProgress", name: str, label: str, total: int | None):
        self._progress, self.name, self.label = progress, name, label
        self.total, self.done, self.fields = total, 0, {}
        self.started = self._last_line = time.monotonic()
        self.finished = False
        self.closes_display = False  # a stage on its own (`StageProgress.single`) ends the display with it

    def set_total(self, total: int, done: int = 0) -> None:
        """Known only once the stage is under way (the distillation's iterations, a resumed step)."""
        self.total, self.done = total, done
        self._progress._update(self)

    def advance(self, steps: int = 1, **fields) -> None:
        """`steps` more units done; `fields` (e.g. loss=...) are shown next to the count."""
        self.done += steps
        self.fields.update(fields)
        self._progress._update(self)

    def note(self, text: str) -> None:
        """What the stage did or is doing, shown on its line (e.g. the files it wrote)."""
        self.fields["note"] = text
        self._progress._update(self)

    def finish(self, failed: bool = False) -> None:
        if not self.finished:
            self.finished = True
            self._progress._finish(self, failed)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def describe(self) -> str:
        """The stage's state in words: count, fields, note."""
        parts = []
        if self.total:
            parts.append(f"{self.done}/{self.total} ({100 * self.done // self.total} %)")
        parts += [f"{k} {v}" for k, v in self.fields.items() if k != "note"]
        if "note" in self.fields:
            parts.append(str(self.fields["note"]))
        return ", ".join(parts)

    def __enter__(self) -> "Stage":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(failed=exc_type is not None)


class StageProgress:
    """Stages of one command, numbered against `stages` (names; others are shown unnumbered).

    `console` is where people look (None: show nothing); `log` gets every line with its time."""

    def __init__(self, title: str, stages: tuple[str, ...] = (), console: TextIO | None = None,
                 log: TextIO | None = None, rich_display: bool | None = None):
        self.title, self.stages, self.console, self.log = title, stages, console, log
        if rich_display is None:
            rich_display = console is not None and _isatty(console)
        label_width = max([len(self._label(name)) for name in stages] or [len(title) + 20])
        self._live = _RichDisplay(console, label_width) if rich_display and console is not None else None

    def stage(self, name: str, total: int | None = None) -> Stage:
        """Start stage `name`; finish it with `finish()` or by leaving a `with` block."""
        stage = Stage(self, name, self._label(name), total)
        self._write_log(f"{stage.label}: started")
        if self._live is not None:
            self._live.add(stage)
        return stage

    @classmethod
    def single(cls, title: str, name: str, total: int | None, console: TextIO | None) -> Stage:
        """One stage shown on its own (e.g. `distill_head` called from Python); finishing it ends the display."""
        stage = cls(title, console=console).stage(name, total)
        stage.closes_display = True
        return stage

    def skip(self, name: str, reason: str) -> None:
        """A stage this run does not need, said once so every stage shows."""
        self._line(f"{self._label(name)}: skipped ({reason})")

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _label(self, name: str) -> str:
        if name in self.stages:
            return f"{self.title} [{self.stages.index(name) + 1}/{len(self.stages)}] {name}"
        return f"{self.title} {name}"

    def _update(self, stage: Stage) -> None:
        if self._live is not None:
            self._live.update(stage)
        elif time.monotonic() - stage._last_line >= HEARTBEAT_S:
            stage._last_line = time.monotonic()
            self._line(f"{stage.label}: {stage.describe() or 'running'} ({stage.elapsed():.0f} s)")

    def _finish(self, stage: Stage, failed: bool) -> None:
        detail = stage.describe()
        text = f"{stage.label}: {'failed' if failed else 'done'}{', ' + detail if detail else ''} ({stage.elapsed():.1f} s)"
        if self._live is not None:
            self._live.finish(stage, failed)
            self._write_log(text)
        else:
            self._line(text)
        if stage.closes_display:
            self.close()

    def _line(self, text: str) -> None:
        if self._live is not None:
            self._live.print(text)
        elif self.console is not None:
            self.console.write(text + "\n")
            self.console.flush()
        self._write_log(text)

    def _write_log(self, text: str) -> None:
        if self.log is not None:
            self.log.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            self.log.flush()


class _RichDisplay:
    """The terminal form: one rich task per stage, kept on screen when finished."""

    def __init__(self, console: TextIO, label_width: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Column

        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("{task.description}", table_column=Column(min_width=label_width)),
            BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[detail]}"),
            console=Console(file=console, force_terminal=True), transient=False,
        )
        # The detail (files, loss, figures) is cut to the room the other columns leave: rich would
        # rather drop the bar and the counts than shorten a long text.
        self._detail_room = max(10, self._progress.console.width - label_width - 40)
        self._tasks: dict[int, int] = {}
        self._progress.start()

    def add(self, stage: Stage) -> None:
        self._tasks[id(stage)] = self._progress.add_task(stage.label, total=stage.total, detail="")

    def update(self, stage: Stage) -> None:
        detail = ", ".join(f"{k} {v}" if k != "note" else str(v) for k, v in stage.fields.items())
        if len(detail) > self._detail_room:
            detail = detail[: self._detail_room - 1] + "…"
        self._progress.update(self._tasks[id(stage)], total=stage.total, completed=stage.done, detail=detail)

    def finish(self, stage: Stage, failed: bool) -> None:
        task = self._tasks[id(stage)]
        if failed:
            self._progress.update(task, description=f"[red]{stage.label} (failed)")
            self._progress.stop_task(task)
            return
        self._progress.update(task, total=stage.total or 1, completed=stage.total or 1)

    def print(self, text: str) -> None:
        self._progress.console.print(text, markup=False, highlight=False)

    def stop(self) -> None:
        self._progress.stop()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False


def log_path_for(output: Path) -> Path:
    """Where `quantize OUTPUT` keeps its log: beside the bundle (a bundle holds only hashed files),
    so a refused or failed run leaves it too."""
    output = Path(output)
    return output.with_name(f"{output.name}.quantize.log")


@contextlib.contextmanager
def captured_output(log_path: Path) -> Iterator[tuple[TextIO, TextIO]]:
    """Route everything written to stdout and stderr (Python streams and file descriptors 1, 2)
    into `log_path` while the block runs. Yields (console, log): `console` still reaches the
    user's stderr (for progress), `log` is the open log file."""
    with open(log_path, "w", buffering=1) as log:
        console, owned = _console_stream()
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        for stream in (sys.stdout, sys.stderr):
            _flush(stream)
        try:
            for fd in saved:
                os.dup2(log.fileno(), fd)
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield console, log
        finally:
            _flush(sys.stdout)
            _flush(sys.stderr)
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            if owned:
                console.close()


def _console_stream() -> tuple[TextIO, bool]:
    """The user's stderr, surviving the redirection of descriptor 2: a duplicate of it when
    sys.stderr writes to descriptor 1 or 2, else sys.stderr itself (e.g. a test's capture)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return sys.stderr, False
    if fd not in (1, 2):
        return sys.stderr, False
    return os.fdopen(os.dup(fd), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8"), True


def _flush(stream) -> None:
    with contextlib.suppress(Exception):
        stream.flush()
