"""NVML through a stand-in pynvml module: energy counter first, power fallback."""

from __future__ import annotations

import sys
import types

import pytest

from edge.device.power import NvmlSource, TotalBasis
from tests.power.fakesys import FakeClock


class NotSupported(Exception):
    pass


def fake_pynvml(energy_mj: list[int] | None, power_mw: int = 65_000, gpus: int = 1) -> types.ModuleType:
    """A pynvml with `gpus` devices; energy_mj=None makes the energy counter unsupported."""
    module = types.ModuleType("pynvml")
    module.NVML_TEMPERATURE_GPU = 0
    module.NVML_CLOCK_SM = 1
    module.calls = []
    module.nvmlInit = lambda: module.calls.append("init")
    module.nvmlShutdown = lambda: module.calls.append("shutdown")
    module.nvmlDeviceGetCount = lambda: gpus
    module.nvmlDeviceGetHandleByIndex = lambda i: i

    def energy(handle):
        if energy_mj is None:
            raise NotSupported("energy counter not supported")
        return energy_mj[0]

    module.nvmlDeviceGetTotalEnergyConsumption = energy
    module.nvmlDeviceGetPowerUsage = lambda handle: power_mw
    module.nvmlDeviceGetTemperature = lambda handle, sensor: 61
    module.nvmlDeviceGetClockInfo = lambda handle, clock: 1980
    return module


def test_energy_counter_gives_average_power(monkeypatch):
    counter = [5_000_000]
    nvml = fake_pynvml(counter)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    clock = FakeClock(0.0)
    source = NvmlSource(clock=clock)
    assert source.available()
    assert source.read() is None  # primes the counter
    counter[0] += 30_000  # 30 J in 0.25 s
    clock.advance(0.25)
    sample = source.read()
    assert sample.total_w == pytest.approx(120.0)
    assert sample.basis is TotalBasis.GPU_BOARD
    assert sample.t == pytest.approx(0.125)
    assert sample.temperatures_c == {"gpu0": 61.0}
    assert sample.clocks_mhz == {"gpu0_sm": 1980.0}
    source.close()
    assert nvml.calls[-1] == "shutdown"


def test_power_usage_fallback_when_energy_counter_unsupported(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(None, power_mw=42_500, gpus=2))
    sample = NvmlSource(clock=FakeClock()).read()
    assert sample.rails_w == {"gpu0": pytest.approx(42.5), "gpu1": pytest.approx(42.5)}
    assert sample.total_w == pytest.approx(85.0)


def test_missing_pynvml_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    availability = NvmlSource().available()
    assert not availability and "nvidia-ml-py" in availability.reason
