"""Choosing a source, the unavailable path, and the background monitor."""

from __future__ import annotations

import sys
import time

import pytest

from edge.device.power import (
    Availability,
    Ina3221Source,
    NoPowerSource,
    PowerMonitor,
    PowerSample,
    PowerSourceName,
    RaplSource,
    TotalBasis,
    choose_power_source,
)
from edge.errors import EdgeError
from edge.profiling import PowerRecord, ThermalSample
from tests.power.fakesys import make_orin_nano, make_rapl


@pytest.fixture(autouse=True)
def no_pynvml(monkeypatch):
    """Keep a host's real NVML out of source selection."""
    monkeypatch.setitem(sys.modules, "pynvml", None)


def choose(tmp_path, name=None):
    return choose_power_source(name, root=tmp_path, tegrastats="no-such-tegrastats")


def test_auto_picks_ina3221_on_a_jetson(tmp_path):
    make_orin_nano(tmp_path)
    make_rapl(tmp_path)
    assert isinstance(choose(tmp_path), Ina3221Source)


def test_auto_picks_rapl_on_x86(tmp_path):
    make_rapl(tmp_path)
    assert isinstance(choose(tmp_path), RaplSource)


def test_nothing_available_says_why_and_never_reports_zeros(tmp_path):
    source = choose(tmp_path)
    assert isinstance(source, NoPowerSource)
    for name in ("ina3221", "tegrastats", "nvml", "rapl"):
        assert f"{name}:" in source.available().reason
    with PowerMonitor(source) as monitor:
        pass
    trace = monitor.trace
    assert not trace.available
    assert trace.samples == () and trace.points() == []
    assert trace.describe().startswith("power: unavailable (ina3221: no ina3221")
    record = PowerRecord.from_trace(trace)
    assert record.trace == [] and record.unavailable_reason == trace.reason
    assert record.describe().startswith("power: unavailable (")


def test_named_source_unavailable_is_an_error(tmp_path):
    with pytest.raises(EdgeError, match="power source rapl is unavailable: no RAPL zones"):
        choose(tmp_path, "rapl")


def test_unknown_source_name_lists_the_valid_ones(tmp_path):
    with pytest.raises(EdgeError, match="choose one of: ina3221, tegrastats, nvml, rapl, none"):
        choose(tmp_path, "battery")


def test_none_disables_measurement(tmp_path):
    make_rapl(tmp_path)
    source = choose(tmp_path, "none")
    assert source.name is PowerSourceName.NONE and not source.available()


class ScriptedSource:
    """A source that returns scripted readings (None = nothing new), then optionally fails."""

    name = PowerSourceName.INA3221
    refresh_s = 0.02

    def __init__(self, readings, fail_after: bool = False):
        self.readings = list(readings)
        self.fail_after = fail_after
        self.closed = False

    def available(self):
        return Availability(True)

    def read(self):
        if self.readings:
            watts = self.readings.pop(0)
            if watts is None:
                return None
            return PowerSample(time.monotonic(), watts, {"VDD_IN": watts}, TotalBasis.INPUT_RAIL, {"tj": 50.0}, {"gpu": 612.0})
        if self.fail_after:
            raise OSError("sensor vanished")
        return None

    def close(self):
        self.closed = True


def wait_for(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)


def test_monitor_collects_new_samples_in_order_and_closes_the_source():
    source = ScriptedSource([4.0, None, 5.0, None, None, 6.0])
    monitor = PowerMonitor(source, poll_s=0.002)
    monitor.start()
    wait_for(lambda: len(monitor.trace.samples) == 3)
    trace = monitor.stop()
    assert [s.total_w for s in trace.samples] == [4.0, 5.0, 6.0]
    times = [s.t for s in trace.samples]
    assert times == sorted(times)
    assert source.closed
    assert trace.available and trace.error is None and trace.basis is TotalBasis.INPUT_RAIL
    thermal = ThermalSample.from_trace(trace)
    assert thermal[0].temperatures_c == {"tj": 50.0} and thermal[0].clocks_mhz == {"gpu": 612.0}


def test_monitor_keeps_samples_and_error_when_the_source_fails():
    source = ScriptedSource([4.0, 5.0], fail_after=True)
    with PowerMonitor(source, poll_s=0.002) as monitor:
        wait_for(lambda: monitor.trace.error is not None)
    trace = monitor.trace
    assert [s.total_w for s in trace.samples] == [4.0, 5.0]
    assert trace.error == "sensor vanished"
    assert "sampling stopped early" in trace.describe()


def test_monitor_on_fake_orin_tree(tmp_path):
    make_orin_nano(tmp_path)
    with PowerMonitor(Ina3221Source(tmp_path)) as monitor:
        time.sleep(0.05)
    trace = monitor.trace
    # Constant sensor files and a run shorter than the 0.43 s refresh: one sample, not repeats.
    assert len(trace.samples) == 1
    assert trace.samples[0].total_w == pytest.approx(4.559728)


def test_monitor_cannot_start_twice():
    monitor = PowerMonitor(ScriptedSource([1.0]), poll_s=0.01)
    monitor.start()
    try:
        with pytest.raises(EdgeError):
            monitor.start()
    finally:
        monitor.stop()
