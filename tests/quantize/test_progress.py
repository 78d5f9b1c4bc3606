"""The progress display: plain lines off a terminal (throttled, no carriage returns), rich on one."""

import io

import quantize.progress as progress
from quantize.progress import StageProgress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_are_throttled_and_never_return_the_carriage(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    console, log = io.StringIO(), io.StringIO()
    stages = StageProgress("quantize", ("load", "distillation"), console, log)
    with stages.stage("distillation", total=100) as stage:
        for _ in range(100):
            clock[0] += 1.0  # one step a second: a line every HEARTBEAT_S steps, not every step
            stage.advance(loss="0.1")
    stages.skip("load", "nothing to load")
    lines = console.getvalue().splitlines()
    assert "\r" not in console.getvalue()
    assert len(lines) == 100 // progress.HEARTBEAT_S + 2
    assert lines[0] == "quantize [2/2] distillation: 15/100 (15 %), loss 0.1 (15 s)"
    assert lines[-2] == "quantize [2/2] distillation: done, 100/100 (100 %), loss 0.1 (100.0 s)"
    assert lines[-1] == "quantize [1/2] load: skipped (nothing to load)"
    assert "distillation: started" in log.getvalue() and log.getvalue().count("\n") == len(lines) + 1


def test_a_terminal_gets_the_rich_display_and_a_failure_is_marked():
    console = Terminal()
    stages = StageProgress("quantize", ("export", "fidelity"), console)
    with stages.stage("export", total=2) as stage:
        stage.advance(2)
    try:
        with stages.stage("fidelity"):
            raise ValueError("boom")
    except ValueError:
        pass
    stages.close()
    shown = console.getvalue()
    assert "\x1b[" in shown  # rich drew it
    assert "quantize [1/2] export" in shown and "2/2" in shown
    assert "quantize [2/2] fidelity (failed)" in shown
