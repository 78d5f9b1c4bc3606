"""Builders of fake sysfs trees (hwmon, powercap, thermal, cpufreq) and a controllable clock."""

from __future__ import annotations

from pathlib import Path


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def write(path: Path, value: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")
    return path


def make_hwmon(root: Path, index: int, name: str) -> Path:
    """An hwmon device directory with its `name` file."""
    device = root / "sys/class/hwmon" / f"hwmon{index}"
    write(device / "name", name)
    return device


def make_ina3221(
    root: Path, index: int, channels: dict[int, tuple[str, int, int]], update_interval_ms: int | None = 430
) -> Path:
    """An INA3221 hwmon device: channel -> (label, bus mV, mA), plus the summed channel and shunts.

    Like the kernel driver: in1-3 are bus voltages with labels, in4-6 shunt voltages (no label),
    in7 is "sum of shunt voltages" and curr4 the summed current.
    """
    device = make_hwmon(root, index, "ina3221")
    if update_interval_ms is not None:
        write(device / "update_interval", update_interval_ms)
    write(device / "samples", 512)
    total_ma = 0
    for channel, (label, millivolts, milliamps) in channels.items():
        write(device / f"in{channel}_label", label)
        write(device / f"in{channel}_input", millivolts)
        write(device / f"curr{channel}_input", milliamps)
        write(device / f"curr{channel}_crit", 20000)
        write(device / f"in{channel + 3}_input", milliamps * 5)  # shunt uV, unlabelled
        total_ma += milliamps
    write(device / "in7_label", "sum of shunt voltages")
    write(device / "in7_input", total_ma * 5)
    write(device / "curr4_input", total_ma)
    return device


# Orin Nano / NX devkit (1-0040): VDD_IN is the whole module input.
ORIN_NANO_CHANNELS = {
    1: ("VDD_IN", 5072, 899),
    2: ("VDD_CPU_GPU_CV", 5072, 95),
    3: ("VDD_SOC", 5072, 286),
}
# AGX Orin: no input rail; 1-0041 has two unconnected channels.
AGX_ORIN_0040 = {
    1: ("VDD_GPU_SOC", 5024, 478),
    2: ("VDD_CPU_CV", 5024, 80),
    3: ("VIN_SYS_5V0", 5024, 803),
}
AGX_ORIN_0041 = {
    1: ("NC", 0, 0),
    2: ("VDDQ_VDD2_1V8AO", 5024, 60),
    3: ("NC", 0, 0),
}


def make_thermal_zone(root: Path, index: int, zone_type: str, millicelsius: int) -> None:
    zone = root / "sys/class/thermal" / f"thermal_zone{index}"
    write(zone / "type", zone_type)
    write(zone / "temp", millicelsius)


def make_cpufreq(root: Path, cpu: int, khz: int) -> None:
    write(root / "sys/devices/system/cpu" / f"cpu{cpu}" / "cpufreq/scaling_cur_freq", khz)


def make_orin_nano(root: Path) -> Path:
    """A fake Orin Nano: another hwmon first (index not hard-coded), INA3221 at hwmon3, thermal, cpufreq."""
    make_hwmon(root, 0, "pwmfan")
    make_hwmon(root, 1, "soctherm")
    device = make_ina3221(root, 3, ORIN_NANO_CHANNELS)
    make_thermal_zone(root, 0, "cpu-thermal", 47687)
    make_thermal_zone(root, 1, "cv0-thermal", -256000)  # off: must not be reported
    make_cpufreq(root, 0, 729600)
    make_cpufreq(root, 1, 1510400)
    return device


def make_agx_orin(root: Path) -> tuple[Path, Path]:
    make_hwmon(root, 0, "pwmfan")
    return make_ina3221(root, 1, AGX_ORIN_0040), make_ina3221(root, 2, AGX_ORIN_0041)


def make_rapl_zone(root: Path, dirname: str, name: str, energy_uj: int, max_range_uj: int) -> Path:
    """A powercap zone as /sys/class/powercap shows it (subzones appear flat there too)."""
    zone = root / "sys/class/powercap" / dirname
    write(zone / "name", name)
    write(zone / "energy_uj", energy_uj)
    write(zone / "max_energy_range_uj", max_range_uj)
    return zone


RAPL_MAX_RANGE_UJ = 262143328850


def make_rapl(root: Path, package_uj: int = 1_000_000, dram_uj: int = 500_000) -> dict[str, Path]:
    """One package with core and dram subzones."""
    return {
        "package": make_rapl_zone(root, "intel-rapl:0", "package-0", package_uj, RAPL_MAX_RANGE_UJ),
        "core": make_rapl_zone(root, "intel-rapl:0:0", "core", 300_000, RAPL_MAX_RANGE_UJ),
        "dram": make_rapl_zone(root, "intel-rapl:0:1", "dram", dram_uj, 65_712_999_613),
    }
