"""Serial access for the arm: groups, a stable udev name, and no port thieves (reference §6, §8.8)."""

from __future__ import annotations

from edge.install.actions import FileChange, cmd
from edge.install.context import SERVICE_GROUPS, InstallContext
from edge.install.plan import StepPlan
from edge.install.sysstate import group_members, group_name, installed_packages, unit_enabled, users
from edge.install.udev import SERIAL_RULES_PATH, serial_rules


class GroupsStep:
    name = "groups"
    title = "service user in dialout, plugdev, video"
    covers = "§8.8 Serial: dialout group (plus plugdev for RealSense, video for cameras)"

    def skip_reason(self, ctx: InstallContext) -> str | None:
        return None

    def plan(self, ctx: InstallContext) -> StepPlan:
        user = ctx.settings.user
        members = group_members(ctx.root)
        primary = group_name(ctx.root, users(ctx.root)[user].gid)
        commands = [cmd("groupadd", "--system", g, why=f"group {g} does not exist yet")
                    for g in SERVICE_GROUPS if g not in members]
        missing = [g for g in SERVICE_GROUPS if user not in members.get(g, []) and primary != g]
        if missing:
            commands.append(cmd("usermod", "-aG", ",".join(missing), user,
                                why="serial ports are group dialout, RealSense rules use plugdev, cameras video"))
        if not commands:
            return StepPlan(state=f"{user} is in {', '.join(SERVICE_GROUPS)}")
        return StepPlan(commands=commands, state=f"add {user} to {', '.join(missing)}",
                        notes=["group changes reach login sessions at the next login; the service gets them "
                               "through SupplementaryGroups"])


class SerialUdevStep:
    name = "serial-udev"
    title = "udev rule: stable arm port, FTDI latency 1 ms, ModemManager off"
    covers = "§8.8 Serial: by-id symlink, FTDI latency 1 ms rule, ID_MM_DEVICE_IGNORE"

    def skip_reason(self, ctx: InstallContext) -> str | None:
        return None

    def plan(self, ctx: InstallContext) -> StepPlan:
        arm = ctx.profile.arm
        content = serial_rules(ctx.profile.name, arm.usb_vendor, arm.usb_product, ctx.settings.arm_serial)
        old = ctx.read(SERIAL_RULES_PATH)
        identity = "/".join(x for x in (arm.usb_vendor, arm.usb_product, ctx.settings.arm_serial) if x)
        state = f"{SERIAL_RULES_PATH} ({'arm ' + identity + ' -> /dev/tinyvla-arm' if identity else 'no arm identity'})"
        if old == content:
            return StepPlan(state=state)
        notes = [] if identity else ["set arm.usb_vendor/usb_product in the profile or pass --arm-serial "
                                     "for a stable /dev/tinyvla-arm"]
        return StepPlan(
            files=[FileChange(SERIAL_RULES_PATH, content, old, why="stable arm port and low-latency FTDI")],
            commands=[cmd("udevadm", "control", "--reload-rules", why="load the new rule"),
                      cmd("udevadm", "trigger", "--action=add", "--subsystem-match=tty",
                          "--subsystem-match=usb-serial", why="apply it to adapters already plugged in")],
            notes=notes, state=state,
        )


class ConflictsStep:
    name = "serial-conflicts"
    title = "brltty and ModemManager off the serial ports"
    covers = "§8.8 Serial: brltty/ModemManager removal"

    def skip_reason(self, ctx: InstallContext) -> str | None:
        return None

    def plan(self, ctx: InstallContext) -> StepPlan:
        findings: list[tuple[str, object]] = []
        if "brltty" in installed_packages(ctx.root):
            findings.append((
                "brltty is installed: it claims CH340/CP210x adapters and their ttyUSB node disappears",
                cmd("apt-get", "remove", "-y", "brltty", why="brltty steals USB-serial adapters",
                    env={"DEBIAN_FRONTEND": "noninteractive"}),
            ))
        if unit_enabled(ctx.root, "ModemManager.service"):
            findings.append((
                "ModemManager is enabled: it probes ttyACM/ttyUSB ports by writing AT commands",
                cmd("systemctl", "disable", "--now", "ModemManager.service", why="ModemManager probes serial ports"),
            ))
        if not findings:
            return StepPlan(state="no brltty, ModemManager not enabled")
        if not ctx.settings.consent:
            return StepPlan(
                notes=[f"{what}; rerun with --yes to run: {fix.shell()}" for what, fix in findings],
                needs_consent=True, state="conflicts found; not touched without --yes",
            )
        return StepPlan(commands=[fix for _, fix in findings], notes=[what for what, _ in findings],
                        state="remove brltty / disable ModemManager")
