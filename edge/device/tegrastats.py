"""`tegrastats`: a parser for its lines and a power source that runs it.

One line per interval on stdout. Formats accepted (platform reference §3.2):

- an optional `MM-DD-YYYY HH:MM:SS` timestamp; `RAM used/totalMB`; `SWAP used/totalMB`;
- `CPU [load%@MHz,...]` with `off` for offline cores;
- `EMC_FREQ x%@MHz` (root only);
- GPU `GR3D_FREQ` (and AGX JetPack 5's `GR3D2_FREQ`) in four forms: `x%`, `x%@MHz`,
  `x%@[MHz,...]` (one frequency per GPC) and `@[MHz,...]` without load (Thor);
- temperatures `name@<float>C`, upper case (JetPack 5) or lower case (JetPack 6), and JetPack
  7.2's `cpu@52.968C/52.968C`; `-256C` marks a zone that is off;
- rails `NAME <cur>mW/<avg>mW`, JetPack 7.2's three values `a/b/c` (the third is undocumented
  and ignored), JetPack 4's unitless `1038/1134` (mW).

Only the first rail value is instantaneous; the second is a running average since tegrastats
started and must never be integrated.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from edge.device.power import (
    COLDEST_REAL_TEMP_C,
    INA3221_DEFAULT_REFRESH_S,
    Availability,
    Clock,
    FreshnessGate,
    PowerSample,
    PowerSourceName,
    TotalBasis,
    total_from_rails,
)
from edge.errors import EdgeError

# tegrastats reads the same INA3221 sensors, which refresh every ~430 ms: a shorter interval
# prints repeated rail values. 500 ms gives a fresh value on every line.
DEFAULT_INTERVAL_MS = 500

_NUMBER = r"-?\d+(?:\.\d+)?"
_TIMESTAMP = re.compile(r"^(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_CPU_CORE = re.compile(r"^(\d+)%(?:@(\d+))?$")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_GPU = re.compile(r"\b(GR3D2?)_FREQ (?:(\d+)%)?(?:@(?:\[([\d,]*)\]|(\d+)))?")
_TEMPERATURE = re.compile(rf"\b(\w+)@({_NUMBER})C(?:/{_NUMBER}C)?\b")
# Name, instantaneous value and unit, average value and unit, optional undocumented third
# value. The lookahead keeps `RAM 2147/7620MB` out: its unit is MB.
_RAIL = re.compile(
    rf"(?<![\w/@])([A-Za-z_]\w*) ({_NUMBER})(mW|W)?/({_NUMBER})(mW|W)?(?:/{_NUMBER}(?:mW|W)?)?(?=\s|$)"
)


@dataclass(frozen=True)
class RailReading:
    """One power rail: the instantaneous value and tegrastats' running average, in mW."""

    current_mw: float
    average_mw: float


@dataclass(frozen=True)
class CpuCore:
    """One CPU core; load and frequency are None when the core is offline or they are absent."""

    online: bool
    load_percent: float | None = None
    freq_mhz: float | None = None


@dataclass(frozen=True)
class UnitLoad:
    """Load and clock of a unit (GPU, EMC). `freq_mhz` has one entry per GPC for per-GPC GPUs."""

    load_percent: float | None
    freq_mhz: tuple[float, ...] = ()


@dataclass(frozen=True)
class TegrastatsReading:
    """Everything one tegrastats line says that tinyvla-edge uses. Absent fields are None/empty."""

    timestamp: str | None = None
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    swap_used_mb: int | None = None
    swap_total_mb: int | None = None
    cpus: tuple[CpuCore, ...] = ()
    emc: UnitLoad | None = None
    gpu: UnitLoad | None = None
    gpu2: UnitLoad | None = None
    temperatures_c: dict[str, float] = field(default_factory=dict)
    sensors_off: tuple[str, ...] = ()
    rails: dict[str, RailReading] = field(default_factory=dict)

    @property
    def rails_w(self) -> dict[str, float]:
        """Instantaneous watts per connected rail (`NC` channels left out)."""
        return {name: r.current_mw / 1000 for name, r in self.rails.items() if name != "NC"}

    @property
    def total(self) -> tuple[float, TotalBasis] | None:
        """Total watts and what they stand for, or None when the line has no rails."""
        rails_w = self.rails_w
        return total_from_rails(rails_w) if rails_w else None

    def clocks_mhz(self) -> dict[str, float]:
        """Clocks by unit: cpu0.., gpu (or gpu_gpc0.. per GPC), gpu2, emc."""
        clocks = {f"cpu{i}": c.freq_mhz for i, c in enumerate(self.cpus) if c.freq_mhz is not None}
        for label, unit in (("gpu", self.gpu), ("gpu2", self.gpu2), ("emc", self.emc)):
            if unit is None:
                continue
            if len(unit.freq_mhz) == 1:
                clocks[label] = unit.freq_mhz[0]
            else:
                clocks.update({f"{label}_gpc{i}": f for i, f in enumerate(unit.freq_mhz)})
        return clocks


def _milliwatts(value: str, unit: str | None) -> float:
    # JetPack 4 printed no unit; its values are mW.
    return float(value) * (1000.0 if unit == "W" else 1.0)


def _unit_load(load: str | None, freq_list: str | None, freq: str | None) -> UnitLoad:
    if freq_list is not None:
        freqs = tuple(float(f) for f in freq_list.split(",") if f)
    else:
        freqs = (float(freq),) if freq is not None else ()
    return UnitLoad(float(load) if load is not None else None, freqs)


def _parse_cpus(body: str) -> tuple[CpuCore, ...]:
    cores = []
    for entry in body.split(","):
        entry = entry.strip()
        match = _CPU_CORE.match(entry)
        if match:
            freq = float(match.group(2)) if match.group(2) else None
            cores.append(CpuCore(True, float(match.group(1)), freq))
        else:
            cores.append(CpuCore(False))
    return tuple(cores)


def parse_tegrastats_line(line: str) -> TegrastatsReading:
    """Parse one tegrastats line (any JetPack format); EdgeError if it has no known field."""
    text = line.strip()
    fields: dict = {}
    if m := _TIMESTAMP.match(text):
        fields["timestamp"] = m.group(1)
    if m := _RAM.search(text):
        fields["ram_used_mb"], fields["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    if m := _SWAP.search(text):
        fields["swap_used_mb"], fields["swap_total_mb"] = int(m.group(1)), int(m.group(2))
    if m := _CPU.search(text):
        fields["cpus"] = _parse_cpus(m.group(1))
    if m := _EMC.search(text):
        fields["emc"] = _unit_load(m.group(1), None, m.group(2))
    for m in _GPU.finditer(text):
        name, load, freq_list, freq = m.groups()
        if load is None and freq_list is None and freq is None:
            continue
        fields["gpu2" if name == "GR3D2" else "gpu"] = _unit_load(load, freq_list, freq)
    temperatures, sensors_off = {}, []
    for m in _TEMPERATURE.finditer(text):
        celsius = float(m.group(2))
        if celsius > COLDEST_REAL_TEMP_C:
            temperatures[m.group(1)] = celsius
        else:
            sensors_off.append(m.group(1))
    rails = {}
    for m in _RAIL.finditer(text):
        name, current, current_unit, average, average_unit = m.groups()
        rails[name] = RailReading(_milliwatts(current, current_unit), _milliwatts(average, average_unit))
    reading = TegrastatsReading(
        **fields, temperatures_c=temperatures, sensors_off=tuple(sensors_off), rails=rails
    )
    if reading == TegrastatsReading(timestamp=reading.timestamp):
        raise EdgeError(f"not a tegrastats line: {text[:60]!r}")
    return reading


def power_sample_from_reading(reading: TegrastatsReading, t: float) -> PowerSample:
    """A PowerSample from a parsed line; EdgeError when the line carries no power rails."""
    total = reading.total
    if total is None:
        raise EdgeError("tegrastats prints no power rails here (on some images it needs root to read them)")
    total_w, basis = total
    return PowerSample(t, total_w, reading.rails_w, basis, dict(reading.temperatures_c), reading.clocks_mhz())


class TegrastatsSource:
    """Runs `tegrastats --interval MS` and turns its lines into power samples.

    A reader thread stamps each line with the monotonic time it arrived; `read()` hands the
    samples out oldest first. Lines whose rails repeat the previous ones within the INA3221
    refresh period are dropped as stale.
    """

    name = PowerSourceName.TEGRASTATS

    def __init__(self, executable: str = "tegrastats", interval_ms: int = DEFAULT_INTERVAL_MS, clock: Clock = time.monotonic):
        if interval_ms < 1:
            raise EdgeError(f"tegrastats interval must be at least 1 ms, got {interval_ms}")
        self.executable = executable
        self.interval_ms = interval_ms
        self.refresh_s = interval_ms / 1000
        self._clock = clock
        self._process: subprocess.Popen | None = None
        self._stderr = None
        self._reader: threading.Thread | None = None
        self._pending: deque[PowerSample] = deque()
        self._error: str | None = None
        self._gate = FreshnessGate(INA3221_DEFAULT_REFRESH_S)

    def available(self) -> Availability:
        """Usable when the executable is found (it exists only on Jetson)."""
        if shutil.which(self.executable) is None:
            return Availability(False, f"{self.executable} not found on PATH (tegrastats exists only on Jetson)")
        return Availability(True)

    def read(self) -> PowerSample | None:
        """The oldest unread sample, None if none arrived; EdgeError once tegrastats has failed."""
        if self._process is None:
            self._open()
        if self._pending:
            return self._pending.popleft()
        if self._error is not None:
            raise EdgeError(self._error)
        return None

    def close(self) -> None:
        """Stop tegrastats and the reader thread (idempotent)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(timeout=2)
            self._reader = None
        if process.stdout is not None:
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _open(self) -> None:
        executable = shutil.which(self.executable)
        if executable is None:
            raise EdgeError(f"{self.executable} not found on PATH (tegrastats exists only on Jetson)")
        # stderr goes to a file, not a pipe nobody drains, so a chatty tegrastats cannot block.
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._process = subprocess.Popen(
            [executable, "--interval", str(self.interval_ms)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read_lines, args=(self._process,), name="tegrastats", daemon=True)
        self._reader.start()

    def _read_lines(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                t = self._clock()
                if not line.strip():
                    continue
                sample = power_sample_from_reading(parse_tegrastats_line(line), t)
                if self._gate.accept(tuple(sample.rails_w.values()), t):
                    self._pending.append(sample)
        except EdgeError as e:
            self._error = str(e)
            return
        except (OSError, ValueError):
            return  # stdout closed by close()
        code = process.wait()
        if self._process is process:  # ended on its own, not stopped by close()
            self._error = f"tegrastats exited with code {code}: {self._stderr_tail()}"

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return "no output"
        self._stderr.seek(0)
        lines = [ln.strip() for ln in self._stderr.read().splitlines() if ln.strip()]
        return lines[-1] if lines else "no output"
