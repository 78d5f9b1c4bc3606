"""`tinyvla-edge doctor`: does everything the runtime needs work here? Each check is pass, warn,
fail, skip (does not apply here) or unavailable (could not be checked), with a one-line fix.

Checks run real work where import alone proves nothing (a CUDA matmul, a bitsandbytes int8
matmul), read what `install` set up (its record, the power mode, locked clocks, the service),
and probe devices when asked (`--camera`, `--arm`). On a machine that is not a Jetson it says so
and checks what applies (Python, torch, onnxruntime, disk, serial conflicts).
"""

from __future__ import annotations

import grp
import importlib.metadata
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

from edge.config import Profile, load_profile
from edge.device.detect import DeviceInfo, detect, under
from edge.device.nvpmodel import clocks_locked, current_mode, run_command
from edge.errors import EdgeError
from edge.engines.table import CPU_PROVIDER, ENGINES, ONNX, profile_engine
from edge.install.context import SERVICE_GROUPS, wheel_index
from edge.install.installer import profile_matches, select_profile
from edge.install.probes import (
    BITSANDBYTES_INT8,
    ONNXRUNTIME_PROVIDERS,
    TORCH_CUDA,
    ProbeResult,
    run_probe,
)
from edge.install.record import read_record
from edge.install.steps.memory import memory_need
from edge.install.sysstate import installed_packages, swap_areas, unit_enabled
from edge.install.systemd import SERVICE_NAME, SERVICE_PATH
from edge.install.udev import ARM_SYMLINK
from edge.install.wheel_index import check_index

ORT_ENGINES = tuple(name for name, engine in ENGINES.items() if engine.file_kind == ONNX)
ORT_GPU_ENGINES = tuple(name for name in ORT_ENGINES if ENGINES[name].provider != CPU_PROVIDER)
MIN_FREE_GB_FAIL = 1.0
MIN_FREE_GB_WARN = 5.0  # TensorRT engine builds and wheels need several GB


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass | warn | fail | skip | unavailable
    detail: str
    fix: str = ""


@dataclass
class DoctorContext:
    device: DeviceInfo
    profile: Profile | None
    profile_note: str
    root: str
    python: str
    probes: dict[str, ProbeResult]
    camera: str | None
    arm: str | None
    query_runner: Callable | None  # runs `nvpmodel -q` when the tool is on PATH
    arm_conformance: bool = False  # --conformance: run the full conformance check on the arm (moves it)

    def uses(self, *engines: str) -> bool:
        """Does the profile need any of these engine-table engines?"""
        return any(engine in profile_engines(self.profile) for engine in engines)


# ----------------------------------------------------------------------------- checks


def check_device(ctx: DoctorContext) -> list[Check]:
    d = ctx.device
    if d.status == "not-jetson":
        checks = [Check("device", "skip", f"{d.reason}: Jetson checks (power mode, clocks, TensorRT) skipped")]
    elif d.status == "refused":
        checks = [Check("device", "fail", d.reason, "reflash with JetPack 6.2 or newer")]
    else:
        checks = [Check("device", "pass", f"{d.display_name} ({d.module}), {d.reason}")]
        missing = [name for name, value in (("CUDA", d.cuda), ("cuDNN", d.cudnn), ("TensorRT", d.tensorrt)) if not value]
        if missing:
            checks.append(Check("jetpack-libraries", "warn", f"{', '.join(missing)} not found on the host",
                                "sudo apt-get install nvidia-jetpack"))
        else:
            checks.append(Check("jetpack-libraries", "pass", f"CUDA {d.cuda}, cuDNN {d.cudnn}, TensorRT {d.tensorrt}"))
    checks += [Check("detection", "warn", w, "see docs/jetson.md (detection)") for w in d.warnings]
    return checks


def check_profile(ctx: DoctorContext) -> list[Check]:
    if ctx.profile is None:
        return [Check("profile", "skip", ctx.profile_note or "no profile: profile-specific checks skipped",
                      "pass --profile NAME")]
    if not profile_matches(ctx.profile.target, ctx.device):
        return [Check("profile", "fail", f"{ctx.profile.name} targets {ctx.profile.target}, this is "
                      f"{ctx.device.display_name}", "pass the --profile made for this device")]
    return [Check("profile", "pass", f"{ctx.profile.name} ({ctx.profile_note})")]


def check_python(ctx: DoctorContext) -> list[Check]:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if sys.version_info < (3, 10):
        return [Check("python", "fail", f"Python {version}; tinyvla-edge needs >= 3.10", "use Python 3.10 or newer")]
    if not ctx.device.is_jetson:
        return [Check("python", "pass", f"Python {version} ({sys.prefix})")]
    if version != ctx.device.python:
        return [Check("python", "fail", f"Python {version}, but TensorRT's bindings exist only for the system "
                      f"Python {ctx.device.python}",
                      f"recreate the venv: /usr/bin/python{ctx.device.python} -m venv --system-site-packages VENV")]
    cfg = Path(sys.prefix) / "pyvenv.cfg"
    if sys.prefix != sys.base_prefix and "include-system-site-packages = true" not in (
            cfg.read_text() if cfg.exists() else ""):
        return [Check("python", "warn", f"venv {sys.prefix} hides system site-packages (TensorRT bindings)",
                      "sudo tinyvla-edge install (it turns them on)")]
    return [Check("python", "pass", f"Python {version}, system site-packages visible")]


def check_torch(ctx: DoctorContext) -> list[Check]:
    probe = ctx.probes["torch"]
    if not probe.data:
        return [Check("torch", "fail", f"torch does not import: {probe.error}",
                      "./jetson_setup.sh (Jetson) or make venv (development machine)")]
    data = probe.data
    checks = [Check("torch", "pass", f"torch {data['torch']} (CUDA build: {data.get('cuda_build') or 'none'})")]
    if data.get("cuda"):
        status = "pass" if probe.ok else "fail"
        detail = (f"matmul on {data.get('device')} (sm_{data.get('capability', '?').replace('.', '')}) matches the "
                  f"CPU (relative error {data.get('rel_err', float('nan')):.1e})")
        checks.append(Check("cuda-kernel", status, detail if probe.ok else f"CUDA kernel wrong: {detail}",
                            "" if probe.ok else "reinstall the JetPack torch wheel: sudo tinyvla-edge install"))
    elif ctx.device.is_jetson:
        checks.append(Check("cuda-kernel", "fail", f"torch {data['torch']} cannot use CUDA here (CPU-only or "
                            "wrong-CUDA build)", "sudo tinyvla-edge install --index-url URL (JetPack wheels)"))
    else:
        checks.append(Check("cuda-kernel", "skip", "no CUDA device on this machine"))
    return checks


# Runs the engine table's probes in the checked interpreter (a crashing CUDA library cannot take
# doctor down); needs tinyvla-edge importable there, which the runtime needs anyway.
ENGINE_TABLE_PROBE = """
import json
from dataclasses import asdict
from edge.engines.table import ENGINES
print(json.dumps({"engines": {name: asdict(engine.probe()) for name, engine in ENGINES.items()}, "ok": True}))
"""


def profile_engines(profile: Profile | None) -> dict[str, list[str]]:
    """Engine-table name → the profile's components it will run (what quantize writes for them)."""
    used: dict[str, list[str]] = {}
    if profile is not None:
        for component in ("vision", "language", "head"):
            spec = getattr(profile.model, component)
            used.setdefault(profile_engine(spec.engine, spec.precision), []).append(component)
    return used


def check_engines(ctx: DoctorContext) -> list[Check]:
    """One check per engine of the table: fail when the profile needs it and it cannot run."""
    probe = ctx.probes["engines"]
    if not probe.ok:
        return [Check("engines", "unavailable", f"the engine table could not be probed: {probe.error}")]
    used = profile_engines(ctx.profile)
    checks = []
    for name, result in probe.data["engines"].items():
        needed_by = f" for {', '.join(used[name])}" if name in used else ""
        if result["available"]:
            checks.append(Check(f"engine:{name}", "pass", f"{name} can run here{needed_by}"))
        elif needed_by:
            checks.append(Check(f"engine:{name}", "fail", f"{name}{needed_by}: {result['reason']}",
                                "install what the line above names (sudo tinyvla-edge install on a Jetson)"))
        else:
            checks.append(Check(f"engine:{name}", "skip", f"{name}: not used by the profile, and "
                                f"{result['reason']}"))
    return checks


def check_bitsandbytes(ctx: DoctorContext) -> list[Check]:
    if not ctx.probes["torch"].data.get("cuda"):
        return [Check("bitsandbytes", "skip", "no CUDA here: the int8 kernel cannot run")]
    probe = ctx.probes["bitsandbytes"]
    if probe.ok:
        return [Check("bitsandbytes", "pass", f"bitsandbytes {probe.data.get('bitsandbytes')} int8 matmul "
                      f"(relative error {probe.data.get('rel_err', 0):.3f})")]
    status = "fail" if ctx.uses("bitsandbytes") else "warn"
    return [Check("bitsandbytes", status, f"int8 matmul failed: {probe.error}",
                  "install a Jetson build of bitsandbytes (PyPI aarch64 wheels are for SBSA servers)")]


def check_onnxruntime(ctx: DoctorContext) -> list[Check]:
    checks: list[Check] = []
    dists = {d: _dist_version(d) for d in ("onnxruntime", "onnxruntime-gpu")}
    if dists["onnxruntime"] and dists["onnxruntime-gpu"]:
        checks.append(Check("onnxruntime-dists", "warn", "onnxruntime and onnxruntime-gpu are both installed: the "
                            "CPU package overwrites the GPU one's module",
                            "pip uninstall -y onnxruntime && pip install --force-reinstall --no-deps onnxruntime-gpu"))
    probe = ctx.probes["onnxruntime"]
    if not probe.ok:
        status = "fail" if ctx.uses(*ORT_ENGINES) else ("warn" if ctx.device.is_jetson else "skip")
        return checks + [Check("onnxruntime", status, f"onnxruntime does not import: {probe.error}",
                               "pip install onnxruntime-gpu (Jetson: from the JetPack index)")]
    providers = probe.data.get("providers", [])
    gpu = [p for p in providers if p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")]
    if ctx.device.is_jetson and not gpu:
        status = "fail" if ctx.uses(*ORT_GPU_ENGINES) else "warn"
        return checks + [Check("onnxruntime", status, f"onnxruntime {probe.data['onnxruntime']} has only CPU "
                               f"providers ({', '.join(providers)})", "install onnxruntime-gpu from the JetPack index")]
    return checks + [Check("onnxruntime", "pass", f"onnxruntime {probe.data['onnxruntime']}: {', '.join(providers)}")]


def check_power(ctx: DoctorContext) -> list[Check]:
    if not ctx.device.is_jetson:
        return []
    if ctx.profile is None or not ctx.profile.power.mode:
        return [Check("power-mode", "skip", "the profile sets no power mode")]
    from edge.device.nvpmodel import read_conf

    conf = read_conf(ctx.root)
    if conf is None:
        return [Check("power-mode", "fail", "no /etc/nvpmodel.conf", "reinstall nvidia-l4t-core (nvpmodel)")]
    try:
        target = conf.by_name(ctx.profile.power.mode)
        now = current_mode(ctx.root, ctx.query_runner, conf)
    except EdgeError as e:
        return [Check("power-mode", "fail", str(e), "pick a mode this device defines in the profile")]
    if now is not None and now.id == target.id:
        checks = [Check("power-mode", "pass", f"{target.name} (ID {target.id}), from {now.source}")]
    else:
        checks = [Check("power-mode", "fail", f"power mode is {now.name if now else 'unknown'}, the profile wants "
                        f"{target.name}: measurements and latency will not match",
                        f"sudo nvpmodel -m {target.id}   # {target.name} on this module")]
    if ctx.profile.power.lock_clocks:
        state = clocks_locked(ctx.root)
        if state.locked is None:
            checks.append(Check("clocks", "unavailable", state.detail))
        elif state.locked:
            checks.append(Check("clocks", "pass", state.detail))
        else:
            checks.append(Check("clocks", "fail", state.detail,
                                "sudo systemctl restart tinyvla-edge-clocks (or: sudo jetson_clocks)"))
    return checks


def check_camera(ctx: DoctorContext) -> list[Check]:
    if not ctx.camera:
        return [Check("camera", "skip", "pass --camera SPEC to open and stream a camera")]
    try:
        from drivers.probe import probe_camera
    except ImportError as e:
        return [Check("camera", "unavailable", f"camera probe not available: {e}")]
    result = probe_camera(ctx.camera, seconds=2.0)
    return [_from_probe("camera", result, "check the cable (USB3), the udev rules and `tinyvla-edge capture`")]


def check_arm(ctx: DoctorContext) -> list[Check]:
    if not ctx.arm:
        if ctx.profile and ctx.profile.arm.usb_vendor and ctx.device.is_jetson:
            link = under(ctx.root, f"/dev/{ARM_SYMLINK}")
            if not link.exists():
                return [Check("arm", "warn", f"/dev/{ARM_SYMLINK} is missing (arm unplugged or udev rule not "
                              "installed)", "plug the arm in; sudo tinyvla-edge install writes the rule")]
            return [Check("arm", "pass", f"/dev/{ARM_SYMLINK} present (pass --arm to test the handshake)")]
        return [Check("arm", "skip", "pass --arm PORT to test the serial port and handshake")]
    if not os.path.exists(ctx.arm):
        return [Check("arm", "fail", f"{ctx.arm} does not exist",
                      "plug the adapter in; check `ls /dev/serial/by-id/` and that brltty is removed")]
    if not os.access(ctx.arm, os.R_OK | os.W_OK):
        return [Check("arm", "fail", f"{ctx.arm} is not readable/writable by this user",
                      "sudo usermod -aG dialout $USER, then log in again")]
    try:
        from drivers.probe import probe_arm
    except ImportError as e:
        return [Check("arm", "unavailable", f"{ctx.arm} exists and is accessible; handshake probe not available: {e}")]
    baud = ctx.profile.arm.baud if ctx.profile else 1_000_000
    rate_hz = ctx.profile.control.rate_hz if ctx.profile else DEFAULT_ARM_RATE_HZ
    checks = arm_checks(probe_arm(ctx.arm, baud, timeout_s=1.0), rate_hz)
    if ctx.arm_conformance:
        checks += arm_conformance_checks(ctx.arm, baud)
    return checks


DEFAULT_ARM_RATE_HZ = 30.0  # the shipped profiles' control rate, when no profile is known
_ARM_FIXES = {
    "garbage": "the bytes are not frames: set the profile's arm.baud to the firmware's baud rate",
    "silent": "nothing answered: check the arm's power and cable, and that this is its port",
    "refused": "the arm answers in valid frames this host refuses (named above): fix the firmware "
               "against docs/serial-protocol.md (Firmware checklist)",
    "incompatible": "update the arm's firmware or tinyvla-edge so both speak the same protocol version",
}


def arm_checks(probe: dict, rate_hz: float) -> list[Check]:
    """The arm probe against the spec and the control rate: what it declared, its state, its
    reply time, whether the tick's exchange fits and feeds its watchdog."""
    from drivers.arm.serial_arm import ReplyTime
    from edge.runtime.startup import RunRefused, check_reply_time, check_watchdog, plan_link_timing

    if not probe["ok"]:
        fix = _ARM_FIXES.get(probe.get("diagnosis") or "", "check the port and the arm's firmware")
        return [Check("arm", "fail", f"[{probe.get('diagnosis')}] {probe['error']}", fix)]
    info, state, reply = probe["info"], probe["state"], probe["reply_time"]
    limits = ", ".join(f"[{lo:.3g}, {hi:.3g}] step {st:.3g}"
                       for lo, hi, st in zip(info["lower"], info["upper"], info["max_step"]))
    checks = [Check("arm", "pass", f"{info['dof']} DOF + gripper, {info['action_space']} space, firmware "
                    f"{info['firmware_version']}, protocol v{info['protocol_version']}, watchdog "
                    f"{1e3 * info['watchdog_s']:g} ms; limits {limits}")]
    latched = [name for name in ("estop", "fault") if state[name]]
    checks.append(Check("arm-state", "fail" if latched else "pass",
                        f"{' and '.join(n.upper() for n in latched)} latched" if latched else
                        "no ESTOP, no FAULT" + (" (in watchdog hold: waiting for a target)" if state["watchdog_hold"] else ""),
                        "make the scene safe, clear the fault on the arm, then `run --clear-estop`" if latched else ""))
    try:
        timing = plan_link_timing(rate_hz, probe["baud"], info["dof"] + 1)
    except RunRefused as e:
        return checks + [Check("arm-rate", "fail", str(e), "lower the profile's control.rate_hz, or speed up the link")]
    checks.append(Check("arm-rate", "pass", f"at {rate_hz:g} Hz each call has {1e3 * timing.call_timeout_s:.1f} ms: "
                        f"{timing.attempts_that_fit} attempt(s) of {1e3 * timing.target_attempt_s:.1f} ms fit "
                        f"(up to {timing.max_rate_hz:.0f} Hz)"))
    measured_text = (f"p50 {reply['p50_ms']:.2f} ms, p99 {reply['p99_ms']:.2f} ms over {reply['count']} GET_STATE "
                     f"(spec {reply['spec_ms']:g} ms; {1e3 * timing.call_timeout_s:.1f} ms per call at {rate_hz:g} Hz)")
    try:
        measured = ReplyTime(reply["count"], reply["p50_ms"] / 1e3, reply["p99_ms"] / 1e3, reply["max_ms"] / 1e3)
        warnings = check_reply_time(measured, timing)
        checks.append(Check("arm-reply-time", "warn" if warnings else "pass",
                            measured_text + (f": {warnings[0]}" if warnings else ""),
                            "the firmware must start each reply within 5 ms" if warnings else ""))
    except RunRefused as e:
        checks.append(Check("arm-reply-time", "fail", f"{measured_text}: {e}", "the firmware must start each reply within 5 ms"))
    try:
        check_watchdog(_arm_info(info), rate_hz)
        checks.append(Check("arm-watchdog", "pass", f"{1e3 * info['watchdog_s']:g} ms watchdog, fed every "
                            f"{1e3 / rate_hz:.1f} ms at {rate_hz:g} Hz (needs at most {1e3 * info['watchdog_s'] / 3:.1f} ms)"))
    except RunRefused as e:
        checks.append(Check("arm-watchdog", "fail", str(e), "lengthen the arm's watchdog or raise the rate"))
    return checks


def _arm_info(info: dict):
    from drivers.arm import ArmInfo

    return ArmInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in info.items()})


def arm_conformance_checks(port: str, baud: int) -> list[Check]:
    """The full conformance check as doctor rows (it moves one axis: a bench, not people)."""
    from drivers.arm.conformance import run_arm_conformance
    from drivers.arm.serial_arm import SerialArm

    rows = run_arm_conformance(lambda: SerialArm(port, baud, timeout_s=0.5), port=port, baud=baud)
    status = {"pass": "pass", "fail": "fail", "skip": "skip", "not run": "skip"}
    return [Check(f"conformance: {r.name}", status[r.status],
                  r.detail or ("not run: an earlier check failed" if r.status == "not run" else "ok"),
                  "see docs/serial-protocol.md, Firmware checklist" if r.status == "fail" else "")
            for r in rows]


def check_realsense_libusb(ctx: DoctorContext) -> list[Check]:
    """Whether pyrealsense2 imports here, and which libusb it uses (the system's or libusb-package's)."""
    from importlib.util import find_spec

    from drivers.camera.realsense_import import INSTALL_HINT, RealSenseImportError, import_pyrealsense2, load_libusb

    if find_spec("pyrealsense2") is None:
        return [Check("realsense", "skip", f"pyrealsense2 is not installed (for RealSense cameras: {INSTALL_HINT})")]
    try:
        rs = import_pyrealsense2()
    except RealSenseImportError as e:
        wanted = bool(ctx.camera and ctx.camera.startswith("realsense"))
        return [Check("realsense", "fail" if wanted else "warn", e.what, e.fix)]
    return [Check("realsense", "pass", f"pyrealsense2 {getattr(rs, '__version__', '?')}, libusb: {load_libusb().detail}")]


def _from_probe(name: str, result: dict, fix: str) -> Check:
    if result.get("ok"):
        facts = ", ".join(f"{k}={v}" for k, v in result.items()
                          if k not in ("ok", "error") and v is not None and not isinstance(v, (dict, list)))
        return Check(name, "pass", facts[:200])
    return Check(name, "fail", str(result.get("error") or "probe failed")[:200], fix)


def check_serial_conflicts(ctx: DoctorContext) -> list[Check]:
    checks = []
    if "brltty" in installed_packages(ctx.root):
        checks.append(Check("brltty", "warn", "brltty is installed: it grabs CH340/CP210x USB-serial adapters",
                            "sudo apt-get remove brltty (or sudo tinyvla-edge install --yes)"))
    if unit_enabled(ctx.root, "ModemManager.service"):
        checks.append(Check("modemmanager", "warn", "ModemManager is enabled: it probes serial ports",
                            "sudo systemctl disable --now ModemManager (or sudo tinyvla-edge install --yes)"))
    names = set()
    for gid in os.getgroups():
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            pass
    missing = [g for g in SERVICE_GROUPS if g not in names]
    if os.geteuid() == 0:
        checks.append(Check("groups", "skip", "running as root: group membership is checked for normal users"))
    elif missing:
        checks.append(Check("groups", "warn", f"this user is not in {', '.join(missing)} (serial, RealSense, cameras)",
                            f"sudo usermod -aG {','.join(missing)} $USER, then log in again"))
    elif not missing:
        checks.append(Check("groups", "pass", f"in {', '.join(SERVICE_GROUPS)}"))
    return checks


def check_memory_and_disk(ctx: DoctorContext) -> list[Check]:
    checks = []
    if ctx.device.is_jetson and ctx.profile is not None:
        need = memory_need(ctx.profile.model.variant, source_build=False)
        disk_swap = sum(a.size_mb for a in swap_areas(ctx.root) if not a.is_zram)
        have = (ctx.device.ram_mb or 0) + disk_swap
        if have < need.mb:
            checks.append(Check("swap", "warn", f"RAM + disk swap {have} MB < {need.mb} MB ({need.why})",
                                "sudo tinyvla-edge install (adds /swapfile) or set install.swap_gb"))
        else:
            checks.append(Check("swap", "pass", f"RAM + disk swap {have} MB >= {need.mb} MB ({need.why})"))
    path = Path(sys.prefix)
    usage = shutil.disk_usage(path if path.exists() else "/")
    free_gb = usage.free / 2**30
    status = "fail" if free_gb < MIN_FREE_GB_FAIL else "warn" if free_gb < MIN_FREE_GB_WARN else "pass"
    checks.append(Check("disk", status, f"{free_gb:.1f} GB free on the filesystem of {path}",
                        "" if status == "pass" else "free space: engines and wheels need several GB"))
    return checks


def check_power_sensor(ctx: DoctorContext) -> list[Check]:
    """Which power source `tinyvla-edge profile` would use here (reference §8 items 4 and 5)."""
    try:
        from edge.device.power import choose_power_source
    except ImportError as e:
        return [Check("power-sensor", "unavailable", f"power measurement not available: {e}")]
    try:
        source = choose_power_source(root=Path(ctx.root))
        availability = source.available()
        source.close()
    except (EdgeError, OSError) as e:  # a sensor that misbehaves must not take doctor down
        return [Check("power-sensor", "unavailable", f"could not check the power sensors: {e}")]
    if availability:
        return [Check("power-sensor", "pass", f"{source.name.value} (used by tinyvla-edge profile)")]
    fix = ("JetPack's INA3221 hwmon driver or tegrastats should be present: check /sys/bus/i2c/drivers/ina3221"
           if ctx.device.is_jetson else "profile reads RAPL (root-only energy_uj; absent in most VMs) or NVML "
           "(pip install nvidia-ml-py); see docs/power.md")
    # Name only the sources that could exist on this kind of machine.
    relevant = ("ina3221", "tegrastats") if ctx.device.is_jetson else ("rapl", "nvml")
    reasons = [r for r in availability.reason.split("; ") if r.startswith(relevant)] or [availability.reason]
    return [Check("power-sensor", "warn", f"no power source: {'; '.join(reasons)}"[:240], fix)]


def _service_activity(root: str) -> str | None:
    """`systemctl is-active` for the service on the real root, when systemd is there to ask."""
    if Path(root).resolve() != Path("/") or shutil.which("systemctl") is None:
        return None
    try:
        return run_command(["systemctl", "is-active", SERVICE_NAME], timeout=5.0).stdout.strip() or None
    except EdgeError:
        return None


def check_install(ctx: DoctorContext) -> list[Check]:
    record = read_record(ctx.root)
    if record is None:
        if not ctx.device.is_jetson:
            return [Check("install", "skip", "no install record (install provisions Jetsons)")]
        return [Check("install", "warn", "tinyvla-edge install has not run here",
                      f"sudo tinyvla-edge install --profile {ctx.profile.name if ctx.profile else 'NAME'}")]
    checks = []
    steps = record.get("steps", {})
    if record.get("failed_step"):
        checks.append(Check("install", "fail", f"install stopped at step '{record['failed_step']}'",
                            "rerun sudo tinyvla-edge install and read that step's message"))
    else:
        open_steps = {n: s["outcome"] for n, s in steps.items()
                      if s.get("outcome") in ("needs-consent", "reboot-required", "pending-on-target")}
        status = "warn" if open_steps else "pass"
        detail = f"installed for profile {record.get('profile')}" + (
            f"; open: {', '.join(f'{n} ({o})' for n, o in open_steps.items())}" if open_steps else "")
        checks.append(Check("install", status, detail, "rerun sudo tinyvla-edge install (--yes for consent, reboot "
                            "if asked)" if open_steps else ""))
    if ctx.profile and record.get("profile") != ctx.profile.name:
        checks.append(Check("install-profile", "warn", f"installed for {record.get('profile')}, checking "
                            f"{ctx.profile.name}", f"sudo tinyvla-edge install --profile {ctx.profile.name}"))
    unit = under(ctx.root, SERVICE_PATH)
    if unit.exists():
        enabled = "enabled" if unit_enabled(ctx.root, SERVICE_NAME) else "not enabled"
        activity = _service_activity(ctx.root)
        if activity == "failed":
            checks.append(Check("service", "warn", f"{SERVICE_NAME} {enabled}, failed",
                                f"journalctl -u {SERVICE_NAME} -n 50; settings in /etc/tinyvla-edge/run.env"))
        else:
            checks.append(Check("service", "pass", f"{SERVICE_NAME} installed, {enabled}"
                                + (f", {activity}" if activity else "")))
    else:
        checks.append(Check("service", "warn", f"{SERVICE_NAME} not installed", "sudo tinyvla-edge install"))
    return checks


def check_wheel_index(ctx: DoctorContext) -> list[Check]:
    """The JetPack wheel index answers and serves torch for this Python (network; reference §4.1).

    The index is the one install used (its record), else the one it would use. Once a CUDA torch
    works here an unreachable index is only a warning: nothing needs it until the next install.
    """
    if not ctx.device.is_jetson:
        return [Check("wheel-index", "skip", "not a Jetson: no JetPack wheel index needed")]
    record = read_record(ctx.root) or {}
    try:
        url, source = (record["index_url"], "install record") if record.get("index_url") else wheel_index(
            ctx.device, None, ctx.profile.install.index_url if ctx.profile else None, os.environ)
    except EdgeError as e:
        return [Check("wheel-index", "fail", str(e), "pass --index-url URL or set TINYVLA_EDGE_INDEX_URL")]
    if url is None:
        return [Check("wheel-index", "fail", f"no wheel index for JetPack {ctx.device.jetpack}",
                      "pass --index-url URL or set TINYVLA_EDGE_INDEX_URL")]
    answer = check_index(url, ctx.device.python)
    if answer.ok:
        return [Check("wheel-index", "pass", f"{answer.detail} ({source})")]
    torch_works = ctx.probes.get("torch") is not None and ctx.probes["torch"].ok
    return [Check("wheel-index", "warn" if torch_works else "fail", f"{answer.detail} ({source})",
                  "check the network, or point TINYVLA_EDGE_INDEX_URL / --index-url at the index's current "
                  "host ({platform}/{cuda_tag} are filled in)")]


CHECKS = (check_device, check_profile, check_python, check_torch, check_engines, check_bitsandbytes,
          check_onnxruntime, check_power, check_power_sensor, check_realsense_libusb, check_camera, check_arm, check_serial_conflicts,
          check_memory_and_disk, check_install, check_wheel_index)


# ----------------------------------------------------------------------------- running


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _resolve_profile(name: str | None, device: DeviceInfo, root: str) -> tuple[Profile | None, str]:
    if name:
        return load_profile(name), "from --profile"
    record = read_record(root)
    if record and record.get("profile_ref"):
        try:
            return load_profile(record["profile_ref"]), "from the install record"
        except EdgeError:
            pass
    try:
        profile, _ = select_profile(None, device)
        return profile, "the shipped profile for this device"
    except EdgeError:
        return None, "no profile given and none matches this device"


def _run_probes(python: str) -> dict[str, ProbeResult]:
    """Run the probe programs in parallel (each is a separate interpreter: mostly import time)."""
    programs = {"torch": TORCH_CUDA, "engines": ENGINE_TABLE_PROBE, "onnxruntime": ONNXRUNTIME_PROVIDERS}
    with ThreadPoolExecutor(max_workers=len(programs)) as pool:
        futures = {name: pool.submit(run_probe, python, program) for name, program in programs.items()}
        results = {name: future.result() for name, future in futures.items()}
    if results["torch"].data.get("cuda"):
        results["bitsandbytes"] = run_probe(python, BITSANDBYTES_INT8)
    return results


def run_doctor(
    profile: str | None = None,
    *,
    camera: str | None = None,
    arm: str | None = None,
    arm_conformance: bool = False,
    root: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    python: str | None = None,
) -> dict:
    """Run every check; the result has each check and `ok` (False when any check failed)."""
    device = detect(root, env)
    prof, note = _resolve_profile(profile, device, device.root)
    query = run_command if device.is_jetson and shutil.which("nvpmodel") else None
    ctx = DoctorContext(device=device, profile=prof, profile_note=note, root=device.root,
                        python=python or sys.executable, probes=_run_probes(python or sys.executable),
                        camera=camera, arm=arm, query_runner=query, arm_conformance=arm_conformance)
    checks = [check for fn in CHECKS for check in fn(ctx)]
    counts = {s: sum(c.status == s for c in checks) for s in ("pass", "warn", "fail", "skip", "unavailable")}
    return {
        "device": device.display_name,
        "jetson": device.is_jetson,
        "profile": prof.name if prof else None,
        "checks": [asdict(c) for c in checks],
        "counts": counts,
        "ok": counts["fail"] == 0,
    }


MARKS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "skip", "unavailable": "n/a "}


def render_doctor(report: dict) -> str:
    """One line per check, the fix indented below anything that is not a pass."""
    lines = [f"tinyvla-edge doctor: {report['device']}" + (f", profile {report['profile']}" if report["profile"] else "")]
    for check in report["checks"]:
        lines.append(f"  [{MARKS[check['status']]}] {check['name']}: {check['detail']}")
        if check["fix"] and check["status"] in ("warn", "fail"):
            lines.append(f"         fix: {check['fix']}")
    c = report["counts"]
    lines.append(f"{c['pass']} passed, {c['warn']} warnings, {c['fail']} failed, {c['skip']} skipped, "
                 f"{c['unavailable']} unavailable")
    return "\n".join(lines)
