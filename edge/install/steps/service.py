"""The systemd unit that runs the control loop (reference §7, §8.9)."""

from __future__ import annotations

from edge.device.detect import format_cpu_list
from edge.install.actions import Command, FileChange, cmd
from edge.install.context import InstallContext, InstallError
from edge.install.plan import StepPlan
from edge.install.sysstate import group_name, kernel_config, unit_enabled, users
from edge.install.systemd import (
    RUN_ENV_PATH,
    SERVICE_NAME,
    SERVICE_PATH,
    Scheduling,
    decide_realtime,
    probe_realtime,
    run_env_file,
    service_affinity,
    service_unit,
)


def scheduling_for(ctx: InstallContext) -> Scheduling:
    """Probe SCHED_FIFO where we can (on the device, as root); otherwise read the kernel config."""
    spec = ctx.profile.install
    probe_ok = None
    if ctx.runner is not None and ctx.is_root_user and not ctx.staged:
        if "realtime" not in ctx.cache:
            ctx.cache["realtime"] = probe_realtime(ctx.runner)
        probe_ok = ctx.cache["realtime"]
    return decide_realtime(probe_ok=probe_ok, kernel_config=kernel_config(ctx.root, ctx.device.kernel),
                           priority=spec.rt_priority, nice=spec.nice)


class ServiceStep:
    name = "service"
    title = "systemd unit tinyvla-edge.service"
    covers = "§8.9 Service: Restart=on-failure, CPUAffinity valid for the mode, RT only if the probe succeeds"

    def skip_reason(self, ctx: InstallContext) -> str | None:
        return None

    def plan(self, ctx: InstallContext) -> StepPlan:
        user = users(ctx.root)[ctx.settings.user]
        try:
            cpus = service_affinity(ctx.service_cpus(), ctx.profile.install.cpu_affinity)
        except ValueError as e:
            raise InstallError(f"profile {ctx.profile.name}: {e}") from e
        scheduling = scheduling_for(ctx)
        unit = service_unit(
            profile_name=ctx.profile.name, profile_ref=ctx.profile_ref, user=user.name,
            group=group_name(ctx.root, user.gid) or user.name, home=user.home, venv=ctx.settings.venv,
            cpus=cpus, scheduling=scheduling, after_clocks=ctx.profile.power.lock_clocks and ctx.device.is_jetson,
        )
        files: list[FileChange] = []
        old = ctx.read(SERVICE_PATH)
        if old != unit:
            files.append(FileChange(SERVICE_PATH, unit, old, why="the control loop as a service"))
        if ctx.read(RUN_ENV_PATH) is None:  # the operator edits this one: create, never overwrite
            cameras = [(c.name, c.width, c.height, c.fps) for c in ctx.profile.cameras]
            files.append(FileChange(RUN_ENV_PATH, run_env_file(ctx.profile.name, cameras), None,
                                    why="where the operator sets the bundle and devices"))
        commands: list[Command] = []
        if any(f.path == SERVICE_PATH for f in files):
            commands.append(cmd("systemctl", "daemon-reload", why="load the new unit"))
        enabled = unit_enabled(ctx.root, SERVICE_NAME)
        notes = [scheduling.reason]
        if ctx.settings.enable_service and not enabled:
            commands.append(cmd("systemctl", "enable", SERVICE_NAME, why="start at boot (asked for)"))
        elif enabled and not ctx.settings.enable_service:
            notes.append(f"{SERVICE_NAME} is enabled from an earlier install; disable with: "
                         f"sudo systemctl disable {SERVICE_NAME}")
        will_enable = enabled or ctx.settings.enable_service
        sched = f"SCHED_FIFO {scheduling.priority}" if scheduling.realtime else f"Nice={scheduling.nice}"
        state = (f"{SERVICE_PATH}: CPUAffinity={format_cpu_list(cpus)}, {sched}, "
                 f"{'enabled' if will_enable else 'not enabled (pass --enable-service)'}")
        if not files and not commands:
            return StepPlan(state=state, notes=notes[1:])
        return StepPlan(files=files, commands=commands, notes=notes, state=state)
