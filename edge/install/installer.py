"""`tinyvla-edge install`: detect, pick the profile, plan every step, then apply them in order."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

from edge.config import Profile, available_profiles, load_profile, resolve_profile_path
from edge.device.detect import DeviceInfo, UnsupportedDevice, detect
from edge.device.nvpmodel import Runner, read_conf, run_command
from edge.errors import EdgeError
from edge.install.actions import StagedCommandFile
from edge.install.context import RECORD_PATH, InstallContext, InstallError, checked, resolve_settings
from edge.install.plan import StepPlan, StepResult, apply_step, plan_step
from edge.install.record import build_record, write_record
from edge.install.rootfs import inside_root, read_in_root
from edge.install.steps import STEPS
from edge.install.sysstate import group_name, users

# Where detection looked for each fact a step derives from the root (reference §1).
TEGRA_RELEASE = "/etc/nv_tegra_release"
COMPATIBLE = "/proc/device-tree/compatible"
PYTHON_SOURCE = "/usr/bin/python3"
CUDA_SOURCES = "/usr/local/cuda/version.json or /usr/local/cuda/targets/*/lib/libcudart.so.X.Y.Z"


def profile_matches(target: str, device: DeviceInfo) -> bool:
    """Whether a profile's `target` names this device.

    `target` is `any`, `any-x86`, `any-jetson`, or module part numbers separated by commas
    (`p3767-0003,p3767-0005`); a `-super` suffix requires the Super variant.
    """
    tokens = [t for t in re.split(r"[,\s|]+", target.strip()) if t]
    for token in tokens:
        if token == "any":
            return True
        if token == "any-x86" and device.arch == "x86_64" and not device.is_jetson:
            return True
        if token == "any-jetson" and device.is_jetson:
            return True
        module, _, suffix = token.partition("-super")
        if (device.is_jetson and device.module and module == device.module
                and (not token.endswith("-super") or device.super_variant)):
            return True
    return False


def select_profile(name: str | None, device: DeviceInfo) -> tuple[Profile, str]:
    """The named profile, or the one shipped profile whose target is this device.

    The second value is how the service unit names the profile (its name, or its absolute path),
    so it must be a safe name or path.
    """
    if name:
        profile = load_profile(name)
        is_path = Path(name).suffix in (".yaml", ".yml")
        if is_path:
            return profile, checked("path", str(resolve_profile_path(name).resolve()), "profile path")
        return profile, checked("name", name, "profile name")
    matches = [p for p in available_profiles() if profile_matches(load_profile(p).target, device)]
    if len(matches) == 1:
        return load_profile(matches[0]), matches[0]
    listed = ", ".join(matches or available_profiles())
    raise InstallError(f"pass --profile NAME for {device.display_name} (candidates: {listed})")


def _status(plan: StepPlan, recorded_earlier: bool) -> str:
    """A step's status before applying; on a staged root, commands an earlier run recorded for
    the step are still to run on the target, so the step is "pending", not "ok"."""
    if plan.nothing_to_do:
        if plan.needs_consent:
            return "needs-consent"
        return "pending" if plan.pending or recorded_earlier else "ok"
    return "planned"


def install_device(
    profile: str | None = None,
    *,
    user: str | None = None,
    dry_run: bool = False,
    root: str | Path | None = None,
    yes: bool = False,
    index_url: str | None = None,
    arm_serial: str | None = None,
    enable_service: bool | None = None,
    venv: str | None = None,
    env: Mapping[str, str] | None = None,
    runner: Runner = run_command,
) -> dict:
    """Provision this Jetson, or a staged root (`root`), for a profile. Returns the run's result.

    `dry_run` changes nothing and returns the plan with file contents, diffs and commands. A
    staged root gets the file changes and a script of the commands (see StagedCommandFile).
    Every step is planned before anything changes, so a planning error stops cleanly.
    """
    env = os.environ if env is None else env
    staged = root is not None and Path(root).resolve() != Path("/")
    root_dir = str(Path(root).resolve()) if staged else "/"
    device = detect(root_dir, env)
    if not device.is_jetson and not staged:
        raise UnsupportedDevice(
            f"{device.reason}: install provisions a Jetson. On a development machine use `make venv` "
            "(or ./jetson_setup.sh); to prepare a Jetson image from here, pass --root DIR"
        )
    if device.status == "refused":
        raise UnsupportedDevice(device.reason)

    prof, profile_ref = select_profile(profile, device)
    _require_target(prof, device, staged)
    warnings = list(device.warnings) + _root_facts(device, root_dir)
    is_root_user = os.geteuid() == 0
    if not staged and not dry_run and not is_root_user:
        raise InstallError("install changes system files: run it as root, e.g. "
                           "sudo \"$(command -v tinyvla-edge)\" install ..., or add --dry-run to see the plan")
    settings = resolve_settings(prof, device, staged=staged, user=user, index_url=index_url,
                                venv=venv, arm_serial=arm_serial, enable_service=enable_service, consent=yes,
                                env=env)
    _check_account(root_dir, settings.user)

    mode = "dry-run" if dry_run else ("staged" if staged else "device")
    ctx = InstallContext(
        root=root_dir, mode=mode, device=device, profile=prof, profile_ref=profile_ref, settings=settings,
        conf=read_conf(root_dir) if device.is_jetson else None,
        runner=None if staged else runner, is_root_user=is_root_user,
    )
    staged_file = StagedCommandFile(Path(root_dir)).load() if staged else None
    steps = [(step, step.skip_reason(ctx)) for step in STEPS]

    # Plan everything first: a step that cannot be planned stops the run before any change.
    plans = {step.name: plan_step(step, ctx, staged_file) for step, skip in steps if skip is None}
    # Likewise every path it will write: a symlink loop in a staged tree stops it here, not halfway.
    for path in [RECORD_PATH, *(f.path for plan in plans.values() for f in plan.files)]:
        inside_root(root_dir, path)
    results: list[StepResult] = []
    failed: str | None = None
    try:
        for step, skip in steps:
            if skip is not None:
                results.append(StepResult(step.name, step.title, step.covers, "skipped", None, skip))
                continue
            plan = plans[step.name] if dry_run else plan_step(step, ctx, staged_file)
            status = _status(plan, bool(staged_file and staged_file.recorded(step.name)))
            if status != "planned" or dry_run:
                results.append(StepResult(step.name, step.title, step.covers, status, plan, plan.state))
                continue
            failed = step.name
            results.append(apply_step(step, ctx, plan, staged_file))
            failed = None
    except EdgeError as e:
        if not dry_run:
            _finish(ctx, staged_file, results, failed)
        if isinstance(e, InstallError):
            raise
        raise InstallError(f"step '{failed}': {e}") from e

    result = {
        "profile": prof.name,
        "mode": mode,
        "root": root_dir,
        "device": _device_summary(device),
        "warnings": warnings,
        "settings": settings.to_dict(),
        "steps": [r.to_dict() for r in results],
    }
    changed = [r.name for r in results if r.status in ("changed", "recorded", "reboot-required")]
    result["changed"] = changed
    result["nothing_to_do"] = not changed and not any(r.status == "planned" for r in results)
    result["reboot_required"] = any(r.status == "reboot-required" for r in results)
    result["needs_consent"] = [r.name for r in results if r.status == "needs-consent"]
    result["record"] = RECORD_PATH
    if staged_file is not None:
        result["staged_commands"] = staged_file.relpath
    if not dry_run:
        _finish(ctx, staged_file, results, None)
    return result


def _require_target(prof: Profile, device: DeviceInfo, staged: bool) -> None:
    """The profile targets this device; when it does not because the root lacks the files that
    identify a Jetson, the error names the missing file."""
    if profile_matches(prof.target, device):
        return
    if staged and not device.is_jetson and read_in_root(device.root, TEGRA_RELEASE) is None:
        raise InstallError(f"cannot read the L4T release: {TEGRA_RELEASE} is missing under {device.root} "
                           f"(profile {prof.name} targets a Jetson: {prof.target})")
    if device.is_jetson and device.module is None:
        raise InstallError(f"cannot tell which module this is: {COMPATIBLE} under {device.root} is missing or "
                           f"has no part number (profile {prof.name} targets {prof.target})")
    raise InstallError(
        f"profile {prof.name} targets {prof.target}, but this is {device.display_name} "
        f"({device.module or device.reason}); pick a profile for this device"
    )


def _root_facts(device: DeviceInfo, root: str) -> list[str]:
    """Check the facts steps derive from the root; an unreadable one is a one-line error naming
    the file detection looked for. Returns warnings for facts that fell back to the JetPack table."""
    if not device.is_jetson:
        return []
    if not re.fullmatch(r"\d+\.\d+", device.python):
        raise InstallError(f"cannot tell the system Python version: {PYTHON_SOURCE} under {root} is missing or "
                           "not a link to pythonX.Y (set TINYVLA_EDGE_PYTHON=3.10 if the image keeps it elsewhere)")
    if device.cuda is None:
        if device.expected_cuda is None:
            raise InstallError(f"cannot tell the CUDA version: none of {CUDA_SOURCES} under {root} and JetPack "
                               f"{device.jetpack} has no known CUDA")
        return [f"CUDA not found ({CUDA_SOURCES}): using CUDA {device.expected_cuda}, which JetPack "
                f"{device.jetpack} ships (the apt step installs it)"]
    return []


def _check_account(root: str, user: str) -> None:
    """The service user exists on the target, and its home and group are safe in a unit file."""
    account = users(root).get(user)
    if account is None:
        raise InstallError(f"user '{user}' does not exist on the target (not in /etc/passwd): create it "
                           f"(sudo adduser {user}) or pass --user")
    checked("path", account.home, f"home directory of {user} in /etc/passwd")
    checked("user", group_name(root, account.gid) or user, f"primary group of {user} in /etc/group")


def _finish(ctx: InstallContext, staged_file: StagedCommandFile | None, results: list[StepResult],
            failed: str | None) -> None:
    """Save the staged command script and the install record (each only if its content changed)."""
    if staged_file is not None and staged_file.lines and staged_file.render() != (ctx.read(staged_file.relpath) or ""):
        staged_file.save()
    record = build_record(profile=ctx.profile.name, profile_ref=ctx.profile_ref, device=ctx.device,
                          settings=ctx.settings, staged=ctx.staged, steps=[r.to_dict() for r in results],
                          failed=failed)
    write_record(ctx.root, record)


def _device_summary(device: DeviceInfo) -> dict:
    return {
        "name": device.display_name, "module": device.module, "model": device.model, "jetpack": device.jetpack,
        "l4t": device.l4t, "python": device.python, "ram_mb": device.ram_mb, "cuda": device.cuda,
        "tensorrt": device.tensorrt, "power_modes": {m.name: m.id for m in device.power_modes},
        "current_mode": device.mode_name(device.current_mode), "online_cpus": device.online_cpus,
    }


STATUS_MARK = {"ok": "ok", "pending": "pending on target", "planned": "to do", "changed": "changed",
               "recorded": "recorded", "skipped": "skipped", "needs-consent": "needs --yes",
               "reboot-required": "REBOOT REQUIRED"}


def render_install(result: dict) -> str:
    """Human-readable plan/result: per step its state, file contents or diffs, and commands."""
    dev = result["device"]
    head = f"tinyvla-edge install: profile {result['profile']} on {dev['name']}"
    if dev["jetpack"]:
        head += f", JetPack {dev['jetpack']} (L4T {dev['l4t']}), Python {dev['python']}"
    lines = [head]
    if result["mode"] == "dry-run":
        lines.append("dry run: nothing below has been changed")
    elif result["mode"] == "staged":
        lines.append(f"staged root {result['root']}: files written there, commands recorded in "
                     f"{result['staged_commands']}")
    settings = result["settings"]
    lines.append(f"service user: {settings['user']} (from {settings['user_from']})")
    if settings["index_url"]:
        lines.append(f"wheel index: {settings['index_url']} ({settings['index_from']})")
    lines += [f"warning: {w}" for w in result["warnings"]]
    for i, step in enumerate(result["steps"], 1):
        lines.append(f"[{i:2}/{len(result['steps'])}] {step['title']}: {STATUS_MARK.get(step['status'], step['status'])}"
                     + (f" - {step['state']}" if step["state"] else ""))
        for note in step["notes"]:
            lines.append(f"        note: {note}")
        if step["status"] in ("planned", "changed", "recorded"):
            for f in step["files"]:
                lines.append(f"        {f['action']} {f['path']} (mode {f['mode'][2:]}):")
                lines += [f"          | {line}" for line in f["diff"].splitlines()]
            for c in step["commands"]:
                lines.append(f"        $ {_short(c['command'])}")
            for c in step["verify"]:
                lines.append(f"        verify $ {_short(c['command'])}")
    pending = [s["name"] for s in result["steps"] if s["status"] == "pending"]
    if result["nothing_to_do"] and pending:
        lines.append(f"nothing new to do; commands of {len(pending)} steps are recorded in "
                     f"{result.get('staged_commands')} and still to run on the target")
    elif result["nothing_to_do"]:
        lines.append("nothing to do: the device is already provisioned for this profile")
    elif result["mode"] != "dry-run":
        lines.append(f"changed: {', '.join(result['changed'])}")
    if result["needs_consent"]:
        lines.append(f"needs consent: rerun with --yes to fix {', '.join(result['needs_consent'])}")
    if result["reboot_required"]:
        lines.append("a reboot is required for the power mode (see the power-mode step)")
    return "\n".join(lines)


def _short(command: str) -> str:
    """Probe programs are long; show their first line in text output (--json has them whole)."""
    first, *rest = command.splitlines()
    return first + (" ...'" if rest else "")
