"""Jetson power modes (nvpmodel) and clock locking (jetson_clocks), reference/jetson.md §2.

Power modes are always addressed by NAME and resolved to an ID through the device's own
`/etc/nvpmodel.conf`: IDs differ between modules (mode 0 is MAXN on an AGX Orin but 15W on an
Orin Nano Super), so a hard-coded ID is a bug waiting for the next module.

Used by `install` (set the profile's mode once), `doctor` (is it set?) and `profile` (switch per
profile and restore afterwards, see `switched_power`).
"""

from __future__ import annotations

import os
import re
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol, Sequence

from edge.errors import EdgeError

CONF_PATH = "/etc/nvpmodel.conf"
STATUS_PATH = "/var/lib/nvpmodel/status"
NVPMODEL = "nvpmodel"
JETSON_CLOCKS = "jetson_clocks"
# jtop waits 4 s per try; a mode switch that changes power gating takes longer on some boards.
NVPMODEL_TIMEOUT_S = 30.0


class PowerModeError(EdgeError):
    """A power mode that does not exist here, or an nvpmodel/jetson_clocks call that failed."""


# ----------------------------------------------------------------------------- running tools


class Runner(Protocol):
    """Runs a command; `stdin=None` means stdin is closed (never inherit a terminal)."""

    def __call__(
        self, argv: Sequence[str], *, stdin: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]: ...


def run_command(
    argv: Sequence[str], *, stdin: str | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run `argv` with stdin closed (or fed `stdin`), capturing text output.

    Closing stdin is what keeps nvpmodel's "DO YOU WANT TO REBOOT NOW?" prompt and
    jetson_clocks' "Can I overwrite it? Y/N" prompt from blocking forever.
    """
    try:
        return subprocess.run(
            list(argv),
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as e:
        hint = " (part of JetPack's L4T packages: is this a Jetson?)" if argv[0] in (NVPMODEL, JETSON_CLOCKS) else ""
        raise PowerModeError(f"command not found: {argv[0]}{hint}") from e
    except subprocess.TimeoutExpired as e:
        raise PowerModeError(f"'{' '.join(argv)}' did not finish within {timeout:.0f} s") from e


# ----------------------------------------------------------------------------- the conf file


@dataclass(frozen=True)
class PowerMode:
    """One `< POWER_MODEL ID=n NAME=x >` block."""

    id: int
    name: str
    online_cpus: tuple[int, ...] | None  # cores with CPU_ONLINE 1; None when the block lists none
    settings: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)  # (PARAM, ARG, VALUE)

    def setting(self, param: str, arg: str) -> str | None:
        return next((v for p, a, v in self.settings if p == param and a == arg), None)

    @property
    def gating(self) -> tuple[str | None, str | None]:
        """GPU TPC/FBP power-gating masks; a change between modes makes nvpmodel ask for a reboot."""
        return self.setting("TPC_POWER_GATING", "TPC_PG_MASK"), self.setting("FBP_POWER_GATING", "FBP_PG_MASK")


@dataclass(frozen=True)
class NvpmodelConf:
    """A parsed nvpmodel conf: the modes and the mandatory DEFAULT."""

    path: str
    modes: tuple[PowerMode, ...]
    default_id: int | None

    def names(self) -> list[str]:
        return [m.name for m in self.modes]

    def by_name(self, name: str) -> PowerMode:
        """The mode called `name` (exact match, then case-insensitive); errors list what exists."""
        for mode in self.modes:
            if mode.name == name:
                return mode
        for mode in self.modes:
            if mode.name.lower() == name.lower():
                return mode
        where = Path(self.path).name or "nvpmodel.conf"
        raise PowerModeError(
            f"power mode '{name}' is not defined in {where}; this device has: {', '.join(self.names())}"
        )

    def by_id(self, mode_id: int) -> PowerMode | None:
        return next((m for m in self.modes if m.id == mode_id), None)

    def reboot_expected(self, from_id: int | None, to_id: int) -> bool:
        """Whether switching changes GPU power gating, the case where nvpmodel prompts for a reboot."""
        current, target = self.by_id(from_id) if from_id is not None else None, self.by_id(to_id)
        return bool(current and target and current.gating != target.gating)


_HEADER = re.compile(r"^<\s*(\w+)\s*(.*?)\s*>\s*$")


def parse_conf(text: str, path: str = CONF_PATH) -> NvpmodelConf:
    """Parse nvpmodel conf text. Tolerates NVIDIA's own `<PARAM` (no space) variation.

    Lines inside PARAM definition blocks look like mode settings (`MAX_FREQ /sys/...`), so
    settings are collected only inside POWER_MODEL blocks.
    """
    modes: list[PowerMode] = []
    default_id: int | None = None
    current: dict | None = None

    def close() -> None:
        if current is not None:
            online = [int(a.split("_")[1]) for p, a, v in current["settings"]
                      if p == "CPU_ONLINE" and a.startswith("CORE_") and v == "1"]
            modes.append(PowerMode(current["id"], current["name"], tuple(sorted(online)) or None,
                                   tuple(current["settings"])))

    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _HEADER.match(line)
        if header:
            close()
            current = None
            kind, attrs = header.group(1), dict(re.findall(r"(\w+)=(\S+)", header.group(2)))
            if kind == "POWER_MODEL":
                if "ID" not in attrs or "NAME" not in attrs:
                    raise PowerModeError(f"{path}: POWER_MODEL block without ID or NAME: {line}")
                current = {"id": int(attrs["ID"]), "name": attrs["NAME"], "settings": []}
            elif kind == "PM_CONFIG" and "DEFAULT" in attrs:
                default_id = int(attrs["DEFAULT"])
            continue
        if current is not None:
            parts = line.split()
            if len(parts) >= 3:
                current["settings"].append((parts[0], parts[1], parts[2]))
    close()
    if not modes:
        raise PowerModeError(f"{path}: no POWER_MODEL blocks found")
    return NvpmodelConf(path=path, modes=tuple(modes), default_id=default_id)


def _resolve_in_root(root: str | Path, path: str) -> Path:
    """Follow symlinks inside a (possibly staged) root: an absolute link target is re-rooted.

    On a device /etc/nvpmodel.conf links to /etc/nvpmodel/nvpmodel_<module>.conf; in a staged
    tree that absolute target must resolve inside the tree, not on this machine.
    """
    current = Path(root) / path.lstrip("/")
    for _ in range(16):
        if not current.is_symlink():
            return current
        target = os.readlink(current)
        current = Path(root) / target.lstrip("/") if target.startswith("/") else current.parent / target
    return current


def read_conf(root: str | Path = "/") -> NvpmodelConf | None:
    """The device's conf (following the nvpower.sh symlink), or None when there is none."""
    resolved = _resolve_in_root(root, CONF_PATH)
    try:
        text = resolved.read_text(errors="replace")
    except OSError:
        return None
    relative = "/" + str(resolved.relative_to(root)) if str(resolved).startswith(str(root)) else str(resolved)
    return parse_conf(text, path=relative.replace("//", "/"))


# ----------------------------------------------------------------------------- current mode


@dataclass(frozen=True)
class ModeState:
    """The active power mode and where the answer came from."""

    id: int
    name: str | None
    source: str  # "nvpmodel -q", "status file", "conf default"


def read_status(root: str | Path = "/") -> int | None:
    """The persisted mode from /var/lib/nvpmodel/status (`pmode:0002 ...`), readable without root."""
    try:
        text = (Path(root) / STATUS_PATH.lstrip("/")).read_text()
    except OSError:
        return None
    match = re.search(r"pmode:(\d+)", text)
    return int(match.group(1)) if match else None


def parse_query(text: str) -> tuple[str, int]:
    """Parse `nvpmodel -q` output: `NV Power Mode: <NAME>` then the ID on the next line.

    Warning lines (`NVPM WARN: fan mode is not set!`) and `--verbose` lines may come first.
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.search(r"NV Power Mode: (\S+)", line)
        if match:
            for following in lines[i + 1:]:
                if following.strip().isdigit():
                    return match.group(1), int(following.strip())
    raise PowerModeError(f"cannot parse 'nvpmodel -q' output: {text.strip()[:120]!r}")


def current_mode(root: str | Path = "/", runner: Runner | None = None, conf: NvpmodelConf | None = None) -> ModeState | None:
    """The active mode: `nvpmodel -q` when a runner is given, else the status file, else DEFAULT."""
    conf = conf or read_conf(root)
    if runner is not None:
        result = runner([NVPMODEL, "-q"], timeout=NVPMODEL_TIMEOUT_S)
        name, mode_id = parse_query(result.stdout + "\n" + result.stderr)
        return ModeState(mode_id, name, "nvpmodel -q")
    mode_id = read_status(root)
    if mode_id is not None:
        mode = conf.by_id(mode_id) if conf else None
        return ModeState(mode_id, mode.name if mode else None, "status file")
    if conf and conf.default_id is not None:
        mode = conf.by_id(conf.default_id)
        return ModeState(conf.default_id, mode.name if mode else None, "conf default")
    return None


# ----------------------------------------------------------------------------- switching


@dataclass(frozen=True)
class SetModeResult:
    """What `set_mode` did."""

    mode: PowerMode
    previous: ModeState | None
    changed: bool
    reboot_required: bool
    message: str


def set_mode(
    name: str,
    *,
    root: str | Path = "/",
    runner: Runner = run_command,
    conf: NvpmodelConf | None = None,
    confirm_reboot: bool = False,
) -> SetModeResult:
    """Switch to the mode called `name` (needs root), resolving the ID from the conf.

    nvpmodel asks "DO YOU WANT TO REBOOT NOW?" on stdin when the switch changes GPU power gating.
    Stdin is closed, so it gets EOF and declines; the result then says `reboot_required` and the
    mode is unchanged. `confirm_reboot=True` answers YES: the device reboots into the new mode.
    """
    conf = conf or read_conf(root)
    if conf is None:
        raise PowerModeError("no /etc/nvpmodel.conf on this device: cannot set a power mode")
    mode = conf.by_name(name)
    previous = current_mode(root, runner, conf)
    if previous and previous.id == mode.id:
        return SetModeResult(mode, previous, False, False, f"power mode already {mode.name} (ID {mode.id})")

    result = runner([NVPMODEL, "-m", str(mode.id)], stdin="YES\n" if confirm_reboot else None,
                    timeout=NVPMODEL_TIMEOUT_S)
    output = result.stdout + "\n" + result.stderr
    if re.search(r"reboot required", output, re.I):
        if confirm_reboot:
            return SetModeResult(mode, previous, True, True, f"rebooting into {mode.name} (ID {mode.id})")
        return SetModeResult(
            mode, previous, False, True,
            f"switching to {mode.name} changes GPU power gating and needs a reboot: run "
            f"'sudo nvpmodel -m {mode.id}' and answer YES (reboots now)",
        )
    errors = [line.strip() for line in output.splitlines() if "NVPM ERROR" in line]
    if errors or result.returncode != 0:
        detail = errors[0] if errors else f"exit code {result.returncode}"
        hint = " (nvpmodel -m needs root)" if os.geteuid() != 0 else ""
        raise PowerModeError(f"nvpmodel -m {mode.id} ({mode.name}) failed: {detail}{hint}")
    after = current_mode(root, runner, conf)
    if after is None or after.id != mode.id:
        raise PowerModeError(f"nvpmodel -m {mode.id} reported success but the mode is still {after and after.name}")
    return SetModeResult(mode, previous, True, False, f"power mode set to {mode.name} (ID {mode.id})")


# ----------------------------------------------------------------------------- jetson_clocks


def _clocks(args: list[str], runner: Runner) -> subprocess.CompletedProcess[str]:
    result = runner([JETSON_CLOCKS, *args], timeout=60.0)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or output.startswith("Error"):
        first = output.splitlines()[0] if output else f"exit code {result.returncode}"
        raise PowerModeError(f"jetson_clocks {' '.join(args)} failed: {first}")
    return result


def lock_clocks(store_path: str | Path, runner: Runner = run_command) -> None:
    """Store the current clocks to `store_path`, then pin them at the mode's maximum (needs root).

    The store file is deleted first: jetson_clocks prompts "Can I overwrite it? Y/N" on an
    existing file. Run this after any nvpmodel switch: jetson_clocks locks to the mode's caps.
    """
    store = Path(store_path)
    store.unlink(missing_ok=True)
    _clocks(["--store", str(store)], runner)
    _clocks([], runner)


def restore_clocks(store_path: str | Path, runner: Runner = run_command) -> None:
    """Put back the clocks saved by `lock_clocks` (needs root)."""
    if not Path(store_path).is_file():
        raise PowerModeError(f"cannot restore clocks: {store_path} does not exist (lock_clocks never stored it)")
    _clocks(["--restore", str(store_path)], runner)


@dataclass(frozen=True)
class ClockState:
    """Whether clocks are pinned, judged the way jtop does (CPU min == max, GPU min == max)."""

    locked: bool | None  # None: the sysfs files are not readable here
    detail: str


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def clocks_locked(root: str | Path = "/") -> ClockState:
    """Read cpufreq and GPU devfreq under `root` (no root privileges or tools needed)."""
    from edge.device.detect import parse_cpu_list  # local: detect imports this module

    root = Path(root)
    try:
        online = parse_cpu_list((root / "sys/devices/system/cpu/online").read_text())
    except OSError:
        return ClockState(None, "no /sys/devices/system/cpu/online")
    unlocked: list[str] = []
    for cpu in online:
        base = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        lo, hi = _read_int(base / "scaling_min_freq"), _read_int(base / "scaling_max_freq")
        if lo is None or hi is None:
            return ClockState(None, f"cpu{cpu} cpufreq not readable")
        if lo != hi:
            unlocked.append(f"cpu{cpu} {lo // 1000}-{hi // 1000} MHz")
    for gpu in sorted((root / "sys/class/devfreq").glob("*")):
        if "gpu" in gpu.name or "ga10b" in gpu.name or "gb10b" in gpu.name:
            lo, hi = _read_int(gpu / "min_freq"), _read_int(gpu / "max_freq")
            if lo is not None and hi is not None and lo != hi:
                unlocked.append(f"GPU {lo // 1_000_000}-{hi // 1_000_000} MHz")
    if unlocked:
        return ClockState(False, "not locked: " + ", ".join(unlocked[:3]))
    return ClockState(True, f"CPU{'s' if len(online) > 1 else ''} and GPU pinned at max")


# ----------------------------------------------------------------------------- switch and restore


@contextmanager
def switched_power(
    name: str | None,
    *,
    lock: bool,
    store_path: str | Path,
    root: str | Path = "/",
    runner: Runner = run_command,
) -> Iterator[SetModeResult | None]:
    """Run a block under power mode `name` (and locked clocks), restoring both afterwards.

    Order follows jtop: clocks are restored before the mode switch back, and nvpmodel runs
    before jetson_clocks on the way in. Restoration also runs on Ctrl-C or an exception. A
    switch that needs a reboot raises: a measurement under the wrong mode would be a lie.
    """
    original = current_mode(root, runner) if name is not None else None
    result = None
    if name is not None:
        result = set_mode(name, root=root, runner=runner)
        if result.reboot_required:
            raise PowerModeError(result.message)
    locked = False
    try:
        if lock:
            lock_clocks(store_path, runner)
            locked = True
        yield result
    finally:
        if locked:
            restore_clocks(store_path, runner)
        if result is not None and result.changed and original is not None:
            set_mode(original.name or str(original.id), root=root, runner=runner)
