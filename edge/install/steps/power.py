"""Power mode by name and locked clocks (reference §2, §8.2, §8.3)."""

from __future__ import annotations

from edge.device.nvpmodel import current_mode, set_mode
from edge.install.actions import FileChange, cmd
from edge.install.context import InstallContext
from edge.install.plan import StepPlan
from edge.install.sysstate import unit_enabled
from edge.install.systemd import CLOCKS_SERVICE_NAME, CLOCKS_SERVICE_PATH, clocks_unit


class PowerModeStep:
    name = "power-mode"
    title = "nvpmodel power mode (by name)"
    covers = "§8.2 Power modes: parse the conf, set by name, never block on the reboot prompt"

    def skip_reason(self, ctx: InstallContext) -> str | None:
        if not ctx.device.is_jetson:
            return "not a Jetson"
        if not ctx.profile.power.mode:
            return "the profile sets no power mode"
        return None if ctx.conf else "no /etc/nvpmodel.conf"

    def plan(self, ctx: InstallContext) -> StepPlan:
        assert ctx.conf is not None
        target = ctx.conf.by_name(ctx.profile.power.mode or "")
        now = current_mode(ctx.root, ctx.runner if ctx.executing else None, ctx.conf)
        where = f"ID {target.id} in {ctx.conf.path}"
        if now is not None and now.id == target.id:
            return StepPlan(state=f"{target.name} ({where}) active")
        notes = []
        if ctx.conf.reboot_expected(now.id if now else None, target.id):
            notes.append(f"{now and now.name} -> {target.name} changes GPU power gating: nvpmodel will ask for a "
                         "reboot; install declines (stdin closed) and reports it")
        return StepPlan(
            commands=[cmd("nvpmodel", "-m", str(target.id), why=f"{target.name} is {where}",
                          fix="nvpmodel -m needs root")],
            notes=notes, state=f"{now.name if now else 'unknown'} -> {target.name} ({where})",
        )

    def apply(self, ctx: InstallContext, plan: StepPlan) -> StepPlan:
        """Switch through set_mode, which detects the reboot prompt instead of hanging on it."""
        assert ctx.runner is not None
        result = set_mode(ctx.profile.power.mode or "", root=ctx.root, runner=ctx.runner, conf=ctx.conf)
        if result.reboot_required:
            plan.reboot_required = True
            plan.state = result.message
        return plan


class ClocksStep:
    name = "clocks"
    title = "jetson_clocks at boot (explicit store file)"
    covers = "§8.3 Clocks: --store to an explicit path, after nvpmodel, restorable"

    def skip_reason(self, ctx: InstallContext) -> str | None:
        return None if ctx.device.is_jetson else "not a Jetson"

    def plan(self, ctx: InstallContext) -> StepPlan:
        old = ctx.read(CLOCKS_SERVICE_PATH)
        enabled = unit_enabled(ctx.root, CLOCKS_SERVICE_NAME)
        if not ctx.profile.power.lock_clocks:
            if old is None and not enabled:
                return StepPlan(state="the profile does not lock clocks")
            # ExecStop restores the stored clocks, so stop before the unit file goes.
            return StepPlan(
                files=[FileChange(CLOCKS_SERVICE_PATH, None, old, why="the profile no longer locks clocks")],
                commands=[cmd("systemctl", "disable", "--now", CLOCKS_SERVICE_NAME, why="restore the stored clocks"),
                          cmd("systemctl", "daemon-reload", why="forget the removed unit")],
                state="remove the clock-locking service",
            )
        content = clocks_unit()
        files = [] if old == content else [FileChange(CLOCKS_SERVICE_PATH, content, old,
                                                      why="jetson_clocks does not persist across reboots")]
        commands = []
        if files:
            commands.append(cmd("systemctl", "daemon-reload", why="load the unit"))
        if files or not enabled:
            commands += [cmd("systemctl", "enable", CLOCKS_SERVICE_NAME, why="lock clocks at every boot"),
                         cmd("systemctl", "restart", CLOCKS_SERVICE_NAME, why="lock them now (after the power mode)")]
        state = f"{CLOCKS_SERVICE_NAME} enabled"
        return StepPlan(files=files, commands=commands, state=state) if commands else StepPlan(state=state)
