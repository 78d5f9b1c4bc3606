"""INA3221 hwmon: rail discovery, totals per module, and no repeated samples."""

from __future__ import annotations

import pytest

from edge.device.power import Ina3221Source, TotalBasis, find_ina3221_rails
from tests.power.fakesys import (
    AGX_ORIN_0040,
    AGX_ORIN_0041,
    FakeClock,
    make_agx_orin,
    make_ina3221,
    make_orin_nano,
    write,
)


def watts(channels, label):
    _, mv, ma = next(c for c in channels.values() if c[0] == label)
    return mv * ma / 1e6


def test_orin_nano_total_is_vdd_in(tmp_path):
    make_orin_nano(tmp_path)
    source = Ina3221Source(tmp_path, clock=FakeClock())
    assert source.available()
    sample = source.read()
    assert sample is not None
    assert list(sample.rails_w) == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert sample.rails_w["VDD_IN"] == pytest.approx(5072 * 899 / 1e6)
    assert sample.rails_w["VDD_SOC"] == pytest.approx(5072 * 286 / 1e6)
    assert sample.total_w == pytest.approx(4.559728)
    assert sample.basis is TotalBasis.INPUT_RAIL


def test_orin_nano_sum_channel_is_skipped(tmp_path):
    make_orin_nano(tmp_path)
    rails, refresh_s = find_ina3221_rails(tmp_path)
    assert [r.name for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert refresh_s == pytest.approx(0.43)


def test_orin_nano_sample_carries_temperatures_and_cpu_clocks(tmp_path):
    make_orin_nano(tmp_path)
    sample = Ina3221Source(tmp_path, clock=FakeClock()).read()
    assert sample.temperatures_c == {"cpu-thermal": pytest.approx(47.687)}  # cv0 at -256 C is off
    assert sample.clocks_mhz == {"cpu0": pytest.approx(729.6), "cpu1": pytest.approx(1510.4)}


def test_agx_orin_total_is_sum_of_rails_with_nc_skipped(tmp_path):
    make_agx_orin(tmp_path)
    sample = Ina3221Source(tmp_path, clock=FakeClock()).read()
    assert list(sample.rails_w) == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"]
    expected = sum(mv * ma for _, mv, ma in AGX_ORIN_0040.values()) / 1e6 + watts(AGX_ORIN_0041, "VDDQ_VDD2_1V8AO")
    assert sample.total_w == pytest.approx(expected)
    assert sample.basis is TotalBasis.RAIL_SUM
    assert "no input rail" in sample.basis.describe()


def test_repeated_values_within_refresh_are_not_new_samples(tmp_path):
    device = make_orin_nano(tmp_path)
    clock = FakeClock()
    source = Ina3221Source(tmp_path, clock=clock)
    assert source.read() is not None
    assert source.read() is None  # same instant, same values
    clock.advance(0.2)
    assert source.read() is None  # sensor has not refreshed yet
    write(device / "curr1_input", 950)  # the sensor refreshes
    clock.advance(0.05)
    fresh = source.read()
    assert fresh is not None and fresh.rails_w["VDD_IN"] == pytest.approx(5072 * 950 / 1e6)
    clock.advance(0.1)
    assert source.read() is None
    clock.advance(0.33)  # a full refresh period since the last sample: identical values are new data
    assert source.read() is not None


def test_refresh_period_comes_from_update_interval(tmp_path):
    make_ina3221(tmp_path, 0, {1: ("VDD_IN", 5000, 1000)}, update_interval_ms=1000)
    clock = FakeClock()
    source = Ina3221Source(tmp_path, clock=clock)
    assert source.read() is not None
    clock.advance(0.5)
    assert source.read() is None
    clock.advance(0.5)
    assert source.read() is not None
    assert source.refresh_s == pytest.approx(1.0)


def test_missing_update_interval_assumes_nvidia_default(tmp_path):
    make_ina3221(tmp_path, 0, {1: ("VDD_IN", 5000, 1000)}, update_interval_ms=None)
    _, refresh_s = find_ina3221_rails(tmp_path)
    assert refresh_s == pytest.approx(0.43)


def test_no_ina3221_is_unavailable_with_reason(tmp_path):
    availability = Ina3221Source(tmp_path).available()
    assert not availability
    assert "no ina3221" in availability.reason
