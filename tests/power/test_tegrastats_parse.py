"""Every tegrastats line captured in the platform reference parses to its rails, totals and stats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.device.power import TotalBasis
from edge.device.tegrastats import (
    CpuCore,
    UnitLoad,
    parse_tegrastats_line,
    power_sample_from_reading,
)
from edge.errors import EdgeError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures/power/tegrastats"


@dataclass(frozen=True)
class Expected:
    file: str
    rails_mw: dict[str, float]
    total_w: float
    basis: TotalBasis
    ram: tuple[int, int]
    swap: tuple[int, int] | None
    cpu_count: int
    gpu: UnitLoad
    emc: UnitLoad | None
    temperatures_c: dict[str, float]
    sensors_off: tuple[str, ...] = ()
    gpu2: UnitLoad | None = None
    timestamp: str = ""


EXPECTED = [
    Expected(
        "orin-nano-super-jp62-idle.txt",
        {"VDD_IN": 4556, "VDD_CPU_GPU_CV": 483, "VDD_SOC": 1451},
        4.556,
        TotalBasis.INPUT_RAIL,
        (2147, 7620),
        (1476, 3810),
        6,
        UnitLoad(0.0, ()),  # `GR3D_FREQ 0%`: load only, as without root
        None,
        {"cpu": 47.687, "soc2": 46.718, "soc0": 47.468, "gpu": 48.625, "tj": 48.625, "soc1": 48.25},
        timestamp="07-14-2025 10:29:36",
    ),
    Expected(
        "orin-nano-super-jp6-loaded.txt",
        {"VDD_IN": 4541, "VDD_CPU_GPU_CV": 521, "VDD_SOC": 1446},  # SOC average 1473 must not be used
        4.541,
        TotalBasis.INPUT_RAIL,
        (1483, 7620),
        (253, 12002),
        6,
        UnitLoad(62.0, (612.0,)),  # `x%@MHz`
        None,
        {"cpu": 47.75, "soc2": 46.718, "soc0": 47.25, "gpu": 50.0, "tj": 50.0, "soc1": 48.093},
        timestamp="09-17-2026 02:10:16",
    ),
    Expected(
        "orin-nano-8gb-jp6-root.txt",
        {"VDD_IN": 5704, "VDD_CPU_GPU_CV": 831, "VDD_SOC": 1624},
        5.704,
        TotalBasis.INPUT_RAIL,
        (2461, 7620),
        (1243, 3810),
        6,
        UnitLoad(0.0, (305.0,)),  # `x%@[MHz]` per-GPC array with one GPC
        UnitLoad(4.0, (2133.0,)),
        {"cpu": 46.531, "soc2": 47.312, "soc0": 46.593, "gpu": 48.218, "tj": 48.843, "soc1": 48.843},
        timestamp="11-30-2025 13:26:01",
    ),
    Expected(
        "agx-orin-64gb-jp5-root.txt",
        {"VDD_GPU_SOC": 2399, "VDD_CPU_CV": 400, "VIN_SYS_5V0": 4032, "VDDQ_VDD2_1V8AO": 301},  # NC left out
        2.399 + 0.400 + 4.032 + 0.301,
        TotalBasis.RAIL_SUM,
        (1282, 62795),
        (0, 31398),
        12,
        UnitLoad(0.0, (0.0,)),
        UnitLoad(0.0, (2133.0,)),
        # JetPack 5 upper case names; -256C zones are off
        {"CPU": 42.593, "Tboard": 32.0, "SOC2": 39.343, "Tdiode": 33.25, "SOC0": 39.375, "tj": 42.593, "SOC1": 40.468},
        sensors_off=("CV0", "CV1", "GPU", "CV2"),
        gpu2=UnitLoad(0.0, (0.0,)),
        timestamp="04-24-2023 00:01:24",
    ),
    Expected(
        "agx-orin-r36.4.4-root.txt",
        {"VDD_GPU_SOC": 2412, "VDD_CPU_CV": 1607, "VIN_SYS_5V0": 4707},
        2.412 + 1.607 + 4.707,
        TotalBasis.RAIL_SUM,
        (18207, 62841),
        (86, 31420),
        12,
        UnitLoad(0.0, (0.0, 0.0)),  # two GPCs
        UnitLoad(3.0, (2133.0,)),
        {"cpu": 52.562, "soc2": 48.437, "soc0": 49.093, "tj": 52.562, "soc1": 49.656},
        timestamp="05-09-2026 18:42:06",
    ),
    Expected(
        "agx-orin-jp7.2.txt",
        {"VDD_GPU_SOC": 5139, "VDD_CPU_CV": 3268, "VIN_SYS_5V0": 5500},  # three values per rail
        5.139 + 3.268 + 5.500,
        TotalBasis.RAIL_SUM,
        (20642, 62817),
        None,
        12,
        UnitLoad(12.0, (1300.0, 1300.0)),
        UnitLoad(3.0, (3199.0,)),
        {"cpu": 52.968, "soc2": 48.406, "soc0": 49.531, "gpu": 47.625},  # `cpu@52.968C/52.968C`
        timestamp="07-25-2026 09:08:28",
    ),
]


def test_every_reference_line_has_an_expectation():
    assert sorted(p.name for p in FIXTURES.glob("*.txt")) == sorted(e.file for e in EXPECTED)


@pytest.mark.parametrize("expected", EXPECTED, ids=lambda e: e.file)
def test_reference_line_parses(expected: Expected):
    line = (FIXTURES / expected.file).read_text()
    reading = parse_tegrastats_line(line)

    assert {name: r.current_mw for name, r in reading.rails.items() if name != "NC"} == expected.rails_mw
    assert reading.rails_w == pytest.approx({k: v / 1000 for k, v in expected.rails_mw.items()})
    total_w, basis = reading.total
    assert total_w == pytest.approx(expected.total_w)
    assert basis is expected.basis
    assert (reading.ram_used_mb, reading.ram_total_mb) == expected.ram
    swap = (reading.swap_used_mb, reading.swap_total_mb)
    assert swap == (expected.swap or (None, None))
    assert len(reading.cpus) == expected.cpu_count
    assert reading.gpu == expected.gpu
    assert reading.gpu2 == expected.gpu2
    assert reading.emc == expected.emc
    assert reading.temperatures_c == expected.temperatures_c
    assert reading.sensors_off == expected.sensors_off
    assert reading.timestamp == expected.timestamp


@pytest.mark.parametrize("expected", EXPECTED, ids=lambda e: e.file)
def test_reference_line_becomes_a_power_sample(expected: Expected):
    reading = parse_tegrastats_line((FIXTURES / expected.file).read_text())
    sample = power_sample_from_reading(reading, t=12.5)
    assert sample.t == 12.5
    assert sample.total_w == pytest.approx(expected.total_w)
    assert sample.basis is expected.basis
    assert "NC" not in sample.rails_w
    assert sample.temperatures_c == expected.temperatures_c


def test_loaded_line_uses_instantaneous_not_running_average():
    reading = parse_tegrastats_line((FIXTURES / "orin-nano-super-jp6-loaded.txt").read_text())
    assert reading.rails["VDD_SOC"].current_mw == 1446
    assert reading.rails["VDD_SOC"].average_mw == 1473
    assert reading.rails_w["VDD_SOC"] == pytest.approx(1.446)


def test_cpu_loads_and_frequencies_per_core():
    reading = parse_tegrastats_line((FIXTURES / "agx-orin-r36.4.4-root.txt").read_text())
    assert [c.load_percent for c in reading.cpus] == [14, 5, 8, 14, 46, 47, 2, 10, 4, 5, 6, 10]
    assert [c.freq_mhz for c in reading.cpus] == [2188, 2112, 2035, 2201] + [1267] * 4 + [1036] * 4
    clocks = reading.clocks_mhz()
    assert clocks["cpu0"] == 2188 and clocks["emc"] == 2133
    assert clocks["gpu_gpc0"] == 0 and clocks["gpu_gpc1"] == 0


def test_single_frequency_gpu_clock_is_named_gpu():
    reading = parse_tegrastats_line((FIXTURES / "orin-nano-super-jp6-loaded.txt").read_text())
    assert reading.clocks_mhz()["gpu"] == 612


def test_thor_gpu_form_without_load():
    reading = parse_tegrastats_line("GR3D_FREQ @[1000,1000,1000]")
    assert reading.gpu == UnitLoad(None, (1000.0, 1000.0, 1000.0))
    assert reading.total is None


def test_jetpack4_unitless_rails_and_offline_cores():
    line = "RAM 2147/3964MB (lfb 2x4MB) CPU [1%@102,off,off,2%@102] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 POM_5V_IN 1038/1134 POM_5V_GPU 40/40"
    reading = parse_tegrastats_line(line)
    assert reading.rails["POM_5V_IN"].current_mw == 1038
    assert reading.rails["POM_5V_IN"].average_mw == 1134
    assert reading.total == (pytest.approx(1.038), TotalBasis.INPUT_RAIL)
    assert reading.cpus[1] == CpuCore(online=False)
    assert reading.cpus[0] == CpuCore(True, 1.0, 102.0)


def test_ram_is_not_mistaken_for_a_rail():
    reading = parse_tegrastats_line((FIXTURES / "orin-nano-super-jp62-idle.txt").read_text())
    assert "RAM" not in reading.rails and "SWAP" not in reading.rails


def test_garbage_is_rejected():
    with pytest.raises(EdgeError, match="not a tegrastats line"):
        parse_tegrastats_line("Segmentation fault (core dumped)")


def test_line_without_rails_cannot_become_a_power_sample():
    line = (FIXTURES / "orin-nano-super-jp62-idle.txt").read_text().split(" VDD_IN")[0]
    reading = parse_tegrastats_line(line)
    assert reading.rails == {}
    with pytest.raises(EdgeError, match="needs root"):
        power_sample_from_reading(reading, t=0.0)
