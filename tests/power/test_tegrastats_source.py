"""The tegrastats source against an emulator on PATH that prints the reference's real lines."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from edge.device.power import PowerMonitor, PowerSourceName, TotalBasis, choose_power_source
from edge.device.tegrastats import TegrastatsSource, parse_tegrastats_line

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures/power"
LINES = sorted((FIXTURES / "tegrastats").glob("*.txt"))


@pytest.fixture
def emulator(tmp_path, monkeypatch):
    """Put `tegrastats` (the emulator) first on PATH; returns a function choosing its lines."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "tegrastats"
    script.write_text(f"#!{sys.executable}\n" + (FIXTURES / "tegrastats_emulator.py").read_text())
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def use(lines: list[Path], exit_code: int | None = None) -> None:
        monkeypatch.setenv("TEGRASTATS_EMULATOR_LINES", os.pathsep.join(str(p) for p in lines))
        if exit_code is not None:
            monkeypatch.setenv("TEGRASTATS_EMULATOR_EXIT", str(exit_code))

    return use


def run_monitor(source, seconds: float, until=None):
    with PowerMonitor(source) as monitor:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until(monitor.trace)):
            time.sleep(0.01)
    return monitor.trace


def test_samples_follow_the_emulated_lines(emulator):
    emulator(LINES)
    expected = [parse_tegrastats_line(p.read_text()).total[0] for p in LINES]
    trace = run_monitor(TegrastatsSource("tegrastats", interval_ms=20), 3.0, until=lambda t: len(t.samples) >= 8)
    totals = [s.total_w for s in trace.samples]
    assert len(totals) >= 8
    assert totals[: len(expected)] == pytest.approx(expected)
    assert totals[len(expected)] == pytest.approx(expected[0])  # tegrastats' lines cycle
    assert trace.error is None
    times = [s.t for s in trace.samples]
    assert times == sorted(times)


def test_sample_carries_temperatures_and_clocks(emulator):
    emulator([FIXTURES / "tegrastats/orin-nano-8gb-jp6-root.txt"])
    trace = run_monitor(TegrastatsSource("tegrastats", interval_ms=20), 2.0, until=lambda t: t.samples)
    sample = trace.samples[0]
    assert sample.basis is TotalBasis.INPUT_RAIL and sample.total_w == pytest.approx(5.704)
    assert sample.temperatures_c["tj"] == pytest.approx(48.843)
    assert sample.clocks_mhz["gpu"] == 305 and sample.clocks_mhz["emc"] == 2133


def test_repeated_lines_faster_than_the_sensor_are_dropped(emulator):
    emulator([FIXTURES / "tegrastats/orin-nano-super-jp62-idle.txt"])
    with PowerMonitor(TegrastatsSource("tegrastats", interval_ms=20)) as monitor:
        deadline = time.monotonic() + 3.0
        while not monitor.trace.samples and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
    # ~15 identical lines within 0.3 s, less than one 0.43 s INA3221 refresh: one real sample.
    assert len(monitor.trace.samples) == 1


def test_tegrastats_exit_is_reported(emulator):
    emulator([FIXTURES / "tegrastats/agx-orin-jp7.2.txt"], exit_code=3)
    trace = run_monitor(TegrastatsSource("tegrastats", interval_ms=20), 3.0, until=lambda t: t.error)
    assert len(trace.samples) == 1
    assert "exited with code 3" in trace.error and "emulated failure" in trace.error


def test_lines_without_rails_make_power_unavailable(emulator, tmp_path):
    no_rails = tmp_path / "no-rails.txt"
    no_rails.write_text((FIXTURES / "tegrastats/orin-nano-super-jp62-idle.txt").read_text().split(" VDD_IN")[0] + "\n")
    emulator([no_rails])
    trace = run_monitor(TegrastatsSource("tegrastats", interval_ms=20), 3.0, until=lambda t: t.error)
    assert not trace.available
    assert trace.describe().startswith("power: unavailable (tegrastats failed: tegrastats prints no power rails")


def test_chosen_automatically_when_on_path(emulator, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    emulator(LINES)
    source = choose_power_source(root=tmp_path)
    assert source.name is PowerSourceName.TEGRASTATS


def test_missing_executable_is_unavailable():
    availability = TegrastatsSource("no-such-tegrastats").available()
    assert not availability and "only on Jetson" in availability.reason
