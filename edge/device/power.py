"""Power measurement: one sampler interface, four sources, a background monitor, energy math.

Sources, best first (see docs/power.md and the platform reference §3):

- `ina3221`: the Jetson module's INA3221 rails through hwmon sysfs (JetPack 5 and 6).
- `tegrastats`: NVIDIA's `tegrastats --interval MS` (any JetPack), parsed in `edge.device.tegrastats`.
- `nvml`: NVIDIA's management library through `pynvml` (discrete GPUs, Thor).
- `rapl`: Intel RAPL powercap energy counters (x86 CPU packages).

Every file-system source takes a `root` so tests point it at a fake sysfs tree. A source that
cannot be used says why (`available().reason`); when none can, `choose_power_source` returns a
`NoPowerSource` carrying the reasons, and the report prints "power: unavailable (reason)",
never zeros.

All times are `time.monotonic()` seconds, the same clock the runtime stamps inferences with, so
power traces and inference boundaries line up without conversion.
"""

from __future__ import annotations

import importlib
import re
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

from edge.errors import EdgeError

Clock = Callable[[], float]

# NVIDIA's nvpower.sh sets every INA3221 to 512 samples averaged, i.e. fresh values only every
# 430 ms (2 x 140 us x 3 channels x 512). Used when the `update_interval` file is missing.
INA3221_DEFAULT_REFRESH_S = 0.430
# Rails that measure the whole module input: total power when present. POM_5V_IN is Nano
# (JetPack 4) naming, VIN is Thor's carrier input. AGX Orin has none of them.
INPUT_RAIL_NAMES = ("VDD_IN", "POM_5V_IN", "VIN")
# Channels wired to nothing.
UNCONNECTED_LABEL = "NC"
# Jetson thermal zones that are switched off read -256 C; anything this cold is not a reading.
COLDEST_REAL_TEMP_C = -100.0


class PowerSourceName(str, Enum):
    """The sources `--power-source` accepts, best first."""

    INA3221 = "ina3221"
    TEGRASTATS = "tegrastats"
    NVML = "nvml"
    RAPL = "rapl"
    NONE = "none"


class TotalBasis(str, Enum):
    """What a sample's total watts stand for; the report states it next to every number."""

    INPUT_RAIL = "input_rail"
    RAIL_SUM = "rail_sum"
    CPU_PACKAGES = "cpu_packages"
    GPU_BOARD = "gpu_board"

    def describe(self) -> str:
        """One phrase for reports."""
        return {
            TotalBasis.INPUT_RAIL: "module input rail (whole module)",
            TotalBasis.RAIL_SUM: "sum of module rails (this module has no input rail; carrier and peripherals excluded)",
            TotalBasis.CPU_PACKAGES: "CPU packages and DRAM (RAPL; GPU and the rest of the board excluded)",
            TotalBasis.GPU_BOARD: "GPU board power (NVML; CPU and the rest of the host excluded)",
        }[self]


@dataclass(frozen=True)
class PowerSample:
    """One fresh reading.

    `t` is the monotonic time the value stands for: the read time for instantaneous sensors,
    the middle of the counting interval for energy counters (RAPL, NVML energy), which report
    the average power over that interval.
    """

    t: float
    total_w: float
    rails_w: Mapping[str, float]
    basis: TotalBasis
    temperatures_c: Mapping[str, float] = field(default_factory=dict)
    clocks_mhz: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Availability:
    """Whether a source can be used here; falsy with a reason when it cannot."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


class PowerSource(Protocol):
    """A power sampler.

    `read()` returns a sample holding data not reported before, or None when the sensor has
    produced nothing new since the previous call. It opens the source on first use; `close()`
    releases it (idempotent).
    """

    name: PowerSourceName
    refresh_s: float

    def available(self) -> Availability: ...

    def read(self) -> PowerSample | None: ...

    def close(self) -> None: ...


def read_sysfs_text(path: Path) -> str:
    """Read one sysfs attribute, stripped. Sources read through this one function."""
    return path.read_text().strip()


def total_from_rails(rails_w: Mapping[str, float]) -> tuple[float, TotalBasis]:
    """Total power from per-rail watts: the module input rail if there is one, else the sum."""
    for name in INPUT_RAIL_NAMES:
        if name in rails_w:
            return rails_w[name], TotalBasis.INPUT_RAIL
    return sum(rails_w.values()), TotalBasis.RAIL_SUM


class FreshnessGate:
    """Tells new sensor data from repeats.

    A reading is new when its values differ from the last accepted one (the sensor refreshed),
    or when a full refresh period has passed since then (it must have refreshed at least once,
    even if to identical values).
    """

    def __init__(self, refresh_s: float):
        self.refresh_s = refresh_s
        self._last_values: tuple[float, ...] | None = None
        self._last_t = float("-inf")

    def accept(self, values: tuple[float, ...], t: float) -> bool:
        """True when `values` read at `t` are new data; remembers them if so."""
        if values != self._last_values or t - self._last_t >= self.refresh_s:
            self._last_values, self._last_t = values, t
            return True
        return False


def read_thermal_zones(root: Path) -> dict[str, float]:
    """Temperatures (C) of readable thermal zones by zone type; zones that are off are left out."""
    temperatures: dict[str, float] = {}
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        try:
            name = read_sysfs_text(zone / "type")
            celsius = int(read_sysfs_text(zone / "temp")) / 1000.0
        except (OSError, ValueError):
            continue
        if celsius > COLDEST_REAL_TEMP_C:
            temperatures[name] = celsius
    return temperatures


def read_cpu_clocks_mhz(root: Path) -> dict[str, float]:
    """Current frequency (MHz) of each online CPU that exposes cpufreq."""
    clocks: dict[str, float] = {}
    for cpu in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*")):
        try:
            clocks[cpu.name] = int(read_sysfs_text(cpu / "cpufreq/scaling_cur_freq")) / 1000.0
        except (OSError, ValueError):
            continue
    return clocks


# ---------------------------------------------------------------------------------------------
# INA3221 (Jetson, hwmon)


@dataclass(frozen=True)
class Ina3221Rail:
    """One connected INA3221 channel: bus voltage in mV, current in mA."""

    name: str
    millivolts: Path
    milliamps: Path


def find_ina3221_rails(root: Path) -> tuple[list[Ina3221Rail], float]:
    """Connected rails of every INA3221 hwmon device under `root`, and the slowest refresh (s).

    The hwmon index differs per board and boot, so devices are found by their `name` file.
    Channels labelled `NC` are unconnected; the summed channel (in7 "sum of shunt voltages",
    curr4) has no matching per-channel current file and is skipped with them.
    """
    rails: list[Ina3221Rail] = []
    refresh_s = 0.0
    for device in sorted((root / "sys/class/hwmon").glob("hwmon*")):
        try:
            if read_sysfs_text(device / "name") != "ina3221":
                continue
        except OSError:
            continue
        try:
            refresh_s = max(refresh_s, int(read_sysfs_text(device / "update_interval")) / 1000.0)
        except (OSError, ValueError):
            refresh_s = max(refresh_s, INA3221_DEFAULT_REFRESH_S)
        for label_file in sorted(device.glob("in*_label")):
            channel = label_file.name[len("in") : -len("_label")]
            label = read_sysfs_text(label_file)
            current = device / f"curr{channel}_input"
            if label == UNCONNECTED_LABEL or label.lower().startswith("sum") or not current.exists():
                continue
            rails.append(Ina3221Rail(label, device / f"in{channel}_input", current))
    return rails, refresh_s or INA3221_DEFAULT_REFRESH_S


class Ina3221Source:
    """Jetson module rails from the INA3221 hwmon driver: watts = mV x mA per rail."""

    name = PowerSourceName.INA3221

    def __init__(self, root: Path = Path("/"), clock: Clock = time.monotonic):
        self.root = Path(root)
        self._clock = clock
        self._rails: list[Ina3221Rail] | None = None
        self._gate: FreshnessGate | None = None
        self.refresh_s = INA3221_DEFAULT_REFRESH_S

    def available(self) -> Availability:
        """Usable when at least one INA3221 rail exists and reads."""
        rails, _ = find_ina3221_rails(self.root)
        if not rails:
            return Availability(False, "no ina3221 hwmon device (not a Jetson Orin, or JetPack 4's iio driver)")
        try:
            self._read_raw(rails[:1])
        except PermissionError:
            return Availability(False, f"{rails[0].milliamps} is not readable (needs root on this image)")
        except (OSError, ValueError) as e:
            return Availability(False, f"ina3221 rail {rails[0].name} cannot be read: {e}")
        return Availability(True)

    def read(self) -> PowerSample | None:
        """A sample when the sensor has refreshed since the last one, else None."""
        if self._rails is None:
            self._rails, self.refresh_s = find_ina3221_rails(self.root)
            if not self._rails:
                raise EdgeError("no ina3221 rails found under " + str(self.root / "sys/class/hwmon"))
            self._gate = FreshnessGate(self.refresh_s)
        raw = self._read_raw(self._rails)
        t = self._clock()
        assert self._gate is not None
        if not self._gate.accept(tuple(v for pair in raw for v in pair), t):
            return None
        rails_w = {rail.name: mv * ma / 1e6 for rail, (mv, ma) in zip(self._rails, raw)}
        total_w, basis = total_from_rails(rails_w)
        return PowerSample(
            t, total_w, rails_w, basis, read_thermal_zones(self.root), read_cpu_clocks_mhz(self.root)
        )

    def close(self) -> None:
        """Nothing to release: files are opened per read."""

    @staticmethod
    def _read_raw(rails: Sequence[Ina3221Rail]) -> list[tuple[int, int]]:
        return [(int(read_sysfs_text(r.millivolts)), int(read_sysfs_text(r.milliamps))) for r in rails]


# ---------------------------------------------------------------------------------------------
# Energy counters (RAPL, NVML): turn cumulative energy into interval-average power


def counter_delta(before: int, after: int, wrap_range: int) -> int:
    """Counter increase from `before` to `after`, assuming at most one wrap at `wrap_range`."""
    if after >= before:
        return after - before
    return after + wrap_range - before


_RAPL_ZONE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")
RAPL_PERMISSION_HINT = (
    "needs root or a udev rule making energy_uj readable "
    "(root-only since the PLATYPUS fix, CVE-2020-8694; see docs/power.md)"
)


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone: `package-0`, or a subzone such as `package-0/dram`."""

    name: str
    energy_uj: Path
    max_energy_range_uj: int
    counts_in_total: bool


def find_rapl_zones(root: Path) -> list[RaplZone]:
    """RAPL zones under `root`. Raises PermissionError/OSError when a zone's files cannot be read.

    The total counts the packages plus DRAM subzones (DRAM is outside the package domain); core
    and uncore are parts of the package and psys overlaps everything, so they are rails only,
    unless there is no package zone at all.
    """
    powercap = root / "sys/class/powercap"
    found: list[tuple[str, str | None, Path]] = []
    for zone_dir in sorted(powercap.glob("intel-rapl:*")):
        match = _RAPL_ZONE.match(zone_dir.name)
        if match:
            found.append((match.group(1), match.group(2), zone_dir))
    package_names = {pkg: read_sysfs_text(d / "name") for pkg, sub, d in found if sub is None}
    has_packages = any(n.startswith("package") for n in package_names.values())
    zones = []
    for pkg, sub, zone_dir in found:
        own_name = read_sysfs_text(zone_dir / "name")
        name = own_name if sub is None else f"{package_names.get(pkg, 'intel-rapl:' + pkg)}/{own_name}"
        if has_packages:
            counted = own_name.startswith("package") if sub is None else own_name == "dram"
        else:
            counted = sub is None
        max_range = int(read_sysfs_text(zone_dir / "max_energy_range_uj"))
        zones.append(RaplZone(name, zone_dir / "energy_uj", max_range, counted))
    return zones


class RaplSource:
    """Intel RAPL powercap: average power from `energy_uj` deltas between reads."""

    name = PowerSourceName.RAPL
    # The counters update about every millisecond; 0.1 s keeps the counting noise small.
    refresh_s = 0.1

    def __init__(self, root: Path = Path("/"), clock: Clock = time.monotonic):
        self.root = Path(root)
        self._clock = clock
        self._zones: list[RaplZone] | None = None
        self._previous: tuple[float, list[int]] | None = None

    def available(self) -> Availability:
        """Usable when a RAPL zone exists and its energy counter reads (often root-only)."""
        try:
            zones = find_rapl_zones(self.root)
            if not zones:
                return Availability(False, "no RAPL zones under /sys/class/powercap (not an x86 host exposing powercap)")
            for zone in zones:
                int(read_sysfs_text(zone.energy_uj))
        except PermissionError as e:
            return Availability(False, f"RAPL {e.filename or 'energy_uj'} is not readable: {RAPL_PERMISSION_HINT}")
        except (OSError, ValueError) as e:
            return Availability(False, f"RAPL cannot be read: {e}")
        return Availability(True)

    def read(self) -> PowerSample | None:
        """Average power since the previous read; None on the first read (it only primes)."""
        if self._zones is None:
            try:
                self._zones = find_rapl_zones(self.root)
            except PermissionError as e:
                raise EdgeError(f"RAPL is not readable: {RAPL_PERMISSION_HINT}") from e
            if not self._zones:
                raise EdgeError("no RAPL zones under " + str(self.root / "sys/class/powercap"))
        try:
            counters = [int(read_sysfs_text(z.energy_uj)) for z in self._zones]
        except PermissionError as e:
            raise EdgeError(f"RAPL {e.filename or 'energy_uj'} is not readable: {RAPL_PERMISSION_HINT}") from e
        t = self._clock()
        previous, self._previous = self._previous, (t, counters)
        if previous is None or t <= previous[0]:
            return None
        t0, before = previous
        seconds = t - t0
        watts = [
            counter_delta(b, a, z.max_energy_range_uj) / 1e6 / seconds
            for z, b, a in zip(self._zones, before, counters)
        ]
        rails_w = {z.name: w for z, w in zip(self._zones, watts)}
        total_w = sum(w for z, w in zip(self._zones, watts) if z.counts_in_total)
        return PowerSample(
            (t0 + t) / 2,
            total_w,
            rails_w,
            TotalBasis.CPU_PACKAGES,
            read_thermal_zones(self.root),
            read_cpu_clocks_mhz(self.root),
        )

    def close(self) -> None:
        """Forget the primed counters; the next read primes again."""
        self._previous = None


# ---------------------------------------------------------------------------------------------
# NVML (discrete GPUs, Thor)


class NvmlSource:
    """GPU board power through `pynvml` (package nvidia-ml-py), summed over all GPUs.

    Prefers the total-energy counter (mJ since driver load; Volta and newer), whose deltas give
    the exact average power between reads. Falls back to `nvmlDeviceGetPowerUsage` (mW), which
    on Ampere and newer is itself a 1 s average, so fast changes are smoothed.
    """

    name = PowerSourceName.NVML
    refresh_s = 0.1

    def __init__(self, clock: Clock = time.monotonic):
        self._clock = clock
        self._nvml = None
        self._handles: list = []
        self._use_energy = True
        self._previous: tuple[float, list[int]] | None = None

    def available(self) -> Availability:
        """Usable when pynvml imports, NVML initialises and sees at least one GPU."""
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError:
            return Availability(False, "pynvml is not installed (pip install nvidia-ml-py)")
        try:
            nvml.nvmlInit()
            try:
                count = nvml.nvmlDeviceGetCount()
            finally:
                nvml.nvmlShutdown()
        except Exception as e:  # pynvml raises NVMLError subclasses built at run time
            return Availability(False, f"NVML does not initialise: {e}")
        if count < 1:
            return Availability(False, "NVML sees no GPU")
        return Availability(True)

    def read(self) -> PowerSample | None:
        """Energy-counter average since the previous read (None on the first), or instantaneous power."""
        if self._nvml is None:
            self._open()
        nvml = self._nvml
        t = self._clock()
        if self._use_energy:
            counters = [nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles]
            previous, self._previous = self._previous, (t, counters)
            if previous is None or t <= previous[0]:
                return None
            seconds = t - previous[0]
            # The mJ counter is 64-bit: it does not wrap within a run.
            rails_w = {f"gpu{i}": (a - b) / 1e3 / seconds for i, (b, a) in enumerate(zip(previous[1], counters))}
            t = (previous[0] + t) / 2
        else:
            rails_w = {f"gpu{i}": nvml.nvmlDeviceGetPowerUsage(h) / 1e3 for i, h in enumerate(self._handles)}
        return PowerSample(t, sum(rails_w.values()), rails_w, TotalBasis.GPU_BOARD, *self._conditions())

    def close(self) -> None:
        """Shut NVML down if this source initialised it."""
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None
            self._previous = None

    def _open(self) -> None:
        nvml = importlib.import_module("pynvml")
        nvml.nvmlInit()
        self._nvml = nvml
        self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        try:
            for handle in self._handles:
                nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except Exception:  # NVMLError_NotSupported on pre-Volta GPUs
            self._use_energy = False

    def _conditions(self) -> tuple[dict[str, float], dict[str, float]]:
        nvml = self._nvml
        temperatures, clocks = {}, {}
        for i, handle in enumerate(self._handles):
            try:
                temperatures[f"gpu{i}"] = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
                clocks[f"gpu{i}_sm"] = float(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM))
            except Exception:  # optional readings; some GPUs do not support them
                continue
        return temperatures, clocks


# ---------------------------------------------------------------------------------------------
# No source


class NoPowerSource:
    """Stands in when nothing can measure power: never available, never reads a number."""

    name = PowerSourceName.NONE
    refresh_s = 1.0

    def __init__(self, reason: str):
        self.reason = reason

    def available(self) -> Availability:
        """Never available; the reason says why every candidate failed."""
        return Availability(False, self.reason)

    def read(self) -> PowerSample | None:
        """No data, ever."""
        return None

    def close(self) -> None:
        """Nothing to release."""


# ---------------------------------------------------------------------------------------------
# Choosing a source


def parse_power_source_name(text: str | PowerSourceName) -> PowerSourceName:
    """A `--power-source` value as a name, or an EdgeError listing the valid ones."""
    try:
        return PowerSourceName(text)
    except ValueError:
        valid = ", ".join(n.value for n in PowerSourceName)
        raise EdgeError(f"unknown power source '{text}' (choose one of: {valid})") from None


def power_sources(
    root: Path = Path("/"),
    tegrastats: str = "tegrastats",
    tegrastats_interval_ms: int | None = None,
    clock: Clock = time.monotonic,
) -> list[PowerSource]:
    """Every real source, best first, configured for this machine (none opened yet)."""
    # Imported here: tegrastats.py builds on this module's types.
    from edge.device.tegrastats import DEFAULT_INTERVAL_MS, TegrastatsSource

    interval_ms = tegrastats_interval_ms or DEFAULT_INTERVAL_MS
    return [
        Ina3221Source(root, clock),
        TegrastatsSource(tegrastats, interval_ms, clock),
        NvmlSource(clock),
        RaplSource(root, clock),
    ]


def choose_power_source(
    name: str | PowerSourceName | None = None,
    root: Path = Path("/"),
    tegrastats: str = "tegrastats",
    tegrastats_interval_ms: int | None = None,
    clock: Clock = time.monotonic,
) -> PowerSource:
    """The named source, or the best available one.

    With no name (or "auto"), returns the first available source in `power_sources` order, or a
    `NoPowerSource` whose reason lists why each candidate failed. A named source that is not
    available raises EdgeError: the user asked for it explicitly. "none" disables measurement.
    """
    if name is None or name == "auto":
        reasons = []
        for source in power_sources(root, tegrastats, tegrastats_interval_ms, clock):
            availability = source.available()
            if availability:
                return source
            reasons.append(f"{source.name.value}: {availability.reason}")
        return NoPowerSource("; ".join(reasons))
    wanted = parse_power_source_name(name)
    if wanted is PowerSourceName.NONE:
        return NoPowerSource("disabled with --power-source none")
    source = next(s for s in power_sources(root, tegrastats, tegrastats_interval_ms, clock) if s.name is wanted)
    availability = source.available()
    if not availability:
        raise EdgeError(f"power source {wanted.value} is unavailable: {availability.reason}")
    return source


# ---------------------------------------------------------------------------------------------
# Background sampling


@dataclass(frozen=True)
class PowerTrace:
    """What a `PowerMonitor` recorded: the samples, or why there are none."""

    source: PowerSourceName
    samples: tuple[PowerSample, ...]
    unavailable_reason: str | None = None
    error: str | None = None

    @property
    def available(self) -> bool:
        """True when there is at least one sample to integrate."""
        return bool(self.samples)

    @property
    def reason(self) -> str | None:
        """Why there is no power figure, or None when there is one."""
        if self.samples:
            return None
        if self.unavailable_reason:
            return self.unavailable_reason
        if self.error:
            return f"{self.source.value} failed: {self.error}"
        return f"{self.source.value} produced no sample during the run (shorter than its refresh period?)"

    @property
    def basis(self) -> TotalBasis | None:
        """What the totals stand for (the last sample's basis), or None without samples."""
        return self.samples[-1].basis if self.samples else None

    def points(self) -> list[tuple[float, float]]:
        """(monotonic time, total watts) pairs in time order."""
        return [(s.t, s.total_w) for s in self.samples]

    def describe(self) -> str:
        """One line for reports: 'power: unavailable (reason)' or the source and what it measures."""
        if not self.samples:
            return f"power: unavailable ({self.reason})"
        assert self.basis is not None
        note = f"; sampling stopped early: {self.error}" if self.error else ""
        return f"power: {self.source.value}, {len(self.samples)} samples, total = {self.basis.describe()}{note}"


class PowerMonitor:
    """Samples a power source on a background thread.

    Use as a context manager or call `start()` and `stop()`; `stop()` returns the trace. A source
    that fails mid-run ends sampling; the trace keeps the samples so far and the error.
    """

    def __init__(self, source: PowerSource, poll_s: float | None = None):
        self.source = source
        # Poll several times per sensor refresh, so a fresh value is picked up soon after it
        # appears (its timestamp is late by at most one poll).
        self.poll_s = poll_s if poll_s is not None else min(max(source.refresh_s / 4, 0.01), 0.25)
        self._samples: list[PowerSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._unavailable_reason: str | None = None

    def start(self) -> None:
        """Check the source and start sampling (nothing runs if the source is unavailable)."""
        if self._thread is not None:
            raise EdgeError("power monitor already started")
        availability = self.source.available()
        if not availability:
            self._unavailable_reason = availability.reason
            return
        # The first read runs in the caller's thread: it opens the source (starts tegrastats,
        # primes counters); if that fails, the trace carries the error and no thread starts.
        if not self._take_sample():
            return
        self._thread = threading.Thread(target=self._run, name=f"power-{self.source.name.value}", daemon=True)
        self._thread.start()

    def stop(self) -> PowerTrace:
        """Stop sampling, close the source and return the trace."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            if self._error is None:
                self._take_sample()  # counters: closes the last interval at the end of the run
        self.source.close()
        return self.trace

    @property
    def trace(self) -> PowerTrace:
        """A snapshot of what has been recorded so far."""
        with self._lock:
            samples = tuple(self._samples)
        return PowerTrace(self.source.name, samples, self._unavailable_reason, self._error)

    def __enter__(self) -> "PowerMonitor":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            if not self._take_sample():
                return

    def _take_sample(self) -> bool:
        try:
            sample = self.source.read()
        except Exception as e:  # a failing sensor must not abort the measurement it observes
            self._error = str(e) or type(e).__name__
            return False
        if sample is not None:
            with self._lock:
                self._samples.append(sample)
        return True


# ---------------------------------------------------------------------------------------------
# Energy


def power_at(points: Sequence[tuple[float, float]], t: float) -> float:
    """Power at time `t`: linear between samples, held at the first/last sample outside them."""
    if not points:
        raise ValueError("no power samples")
    times = [p[0] for p in points]
    i = bisect_right(times, t)
    if i == 0:
        return points[0][1]
    if i == len(points):
        return points[-1][1]
    (t0, w0), (t1, w1) = points[i - 1], points[i]
    return w0 + (w1 - w0) * (t - t0) / (t1 - t0) if t1 > t0 else w1


def integrate_energy_j(points: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Energy (J) between `start` and `end` by the trapezoid rule over instantaneous power.

    The window's ends are interpolated (`power_at`), so windows shorter than the sensor refresh,
    such as one inference, still get their share. `points` must be in time order.
    """
    if end < start:
        raise ValueError(f"window ends ({end}) before it starts ({start})")
    inside = [(t, w) for t, w in points if start < t < end]
    knots = [(start, power_at(points, start)), *inside, (end, power_at(points, end))]
    return sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(knots, knots[1:]))


def energy_per_interval_j(
    points: Sequence[tuple[float, float]], intervals: Sequence[tuple[float, float]]
) -> list[float]:
    """Energy (J) of each (start, end) interval, e.g. each inference."""
    return [integrate_energy_j(points, start, end) for start, end in intervals]


@dataclass(frozen=True)
class EnergyFigures:
    """Energy over a measured window, divided among what happened in it.

    Per inference and per action divide the whole window's energy (idle time between ticks
    included): what it costs to run at this rate, not the marginal cost of one inference.
    """

    window_s: float
    energy_j: float
    mean_power_w: float
    per_inference_j: float
    per_action_j: float | None


def energy_figures(
    points: Sequence[tuple[float, float]], start: float, end: float, inferences: int, actions: int | None = None
) -> EnergyFigures:
    """Energy of the window [start, end] with `inferences` inferences and `actions` actions sent."""
    if inferences < 1:
        raise ValueError("need at least one inference")
    energy = integrate_energy_j(points, start, end)
    window = end - start
    return EnergyFigures(
        window_s=window,
        energy_j=energy,
        mean_power_w=energy / window if window > 0 else power_at(points, start),
        per_inference_j=energy / inferences,
        per_action_j=energy / actions if actions else None,
    )
