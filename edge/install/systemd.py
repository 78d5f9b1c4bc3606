"""systemd units: the control-loop service and the clock-locking oneshot (reference §7, §2.4)."""

from __future__ import annotations

from dataclasses import dataclass

from edge.device.detect import format_cpu_list, parse_cpu_list
from edge.device.nvpmodel import Runner

SERVICE_NAME = "tinyvla-edge.service"
SERVICE_PATH = f"/etc/systemd/system/{SERVICE_NAME}"
CLOCKS_SERVICE_NAME = "tinyvla-edge-clocks.service"
CLOCKS_SERVICE_PATH = f"/etc/systemd/system/{CLOCKS_SERVICE_NAME}"
CLOCKS_STORE = "/var/lib/tinyvla-edge/jetson_clocks.store"
RUN_ENV_PATH = "/etc/tinyvla-edge/run.env"


@dataclass(frozen=True)
class Scheduling:
    """How the service is scheduled, and why."""

    realtime: bool
    priority: int
    nice: int
    reason: str


def decide_realtime(*, probe_ok: bool | None, kernel_config: str | None, priority: int, nice: int) -> Scheduling:
    """SCHED_FIFO only when it is known to work; otherwise a negative nice value.

    With CONFIG_RT_GROUP_SCHED (JetPack 5's kernel) services get zero RT budget and a unit with
    CPUSchedulingPolicy=fifo fails to start (status=214/SETSCHEDULER), so a wrong guess would
    leave the robot without its control loop. `probe_ok` is the result of actually trying; when
    no probe could run (staged root, dry run), the kernel config decides, and without one, nice.
    """
    if probe_ok is not None:
        if probe_ok:
            return Scheduling(True, priority, nice, "probe: SCHED_FIFO works in a service")
        return Scheduling(False, priority, nice, "probe: SCHED_FIFO refused in a service (RT group scheduling?)")
    if kernel_config is None:
        return Scheduling(False, priority, nice, "no probe possible and no kernel config: using nice")
    if "CONFIG_RT_GROUP_SCHED=y" in kernel_config:
        return Scheduling(False, priority, nice, "kernel has CONFIG_RT_GROUP_SCHED: services get no RT budget")
    return Scheduling(True, priority, nice, "kernel config has no RT group scheduling (probe runs on the device)")


def probe_realtime(runner: Runner) -> bool:
    """Try SCHED_FIFO inside a transient service, where the real unit would run (reference §7)."""
    result = runner(["systemd-run", "--wait", "--collect", "--quiet", "chrt", "-f", "1", "true"], timeout=30.0)
    return result.returncode == 0


def service_affinity(mode_cpus: list[int], override: str | None) -> list[int]:
    """CPUs for the control loop: the mode's online cores minus CPU0, or a validated override.

    CPU0 takes most interrupts and cannot be offlined; keeping the loop off it reduces jitter.
    An affinity naming a core the power mode offlines would be invalid (systemd then ignores the
    offline CPUs, or the unit fails if none is left), so the override must fit the mode.
    """
    if override:
        chosen = parse_cpu_list(override)
        outside = sorted(set(chosen) - set(mode_cpus))
        if outside:
            raise ValueError(
                f"cpu_affinity {override} includes CPUs {format_cpu_list(outside)} that the power mode "
                f"takes offline (online: {format_cpu_list(mode_cpus)})"
            )
        return chosen
    return mode_cpus[1:] if len(mode_cpus) > 2 else list(mode_cpus)


def service_unit(
    *,
    profile_name: str,
    profile_ref: str,
    user: str,
    group: str,
    home: str,
    venv: str,
    cpus: list[int],
    scheduling: Scheduling,
    after_clocks: bool,
) -> str:
    """The control-loop unit. Not started by install: starting it moves the arm."""
    if scheduling.realtime:
        sched = [
            f"# Real-time: {scheduling.reason}.",
            "CPUSchedulingPolicy=fifo",
            f"CPUSchedulingPriority={scheduling.priority}",
            f"LimitRTPRIO={scheduling.priority}",
        ]
    else:
        sched = [f"# No real-time scheduling: {scheduling.reason}.", f"Nice={scheduling.nice}"]
    after = "network-online.target nvpmodel.service" + (f" {CLOCKS_SERVICE_NAME}" if after_clocks else "")
    lines = [
        f"# Written by `tinyvla-edge install` for profile {profile_name}; rerunning install rewrites it.",
        f"# Set the bundle and devices in {RUN_ENV_PATH}.",
        "[Unit]",
        f"Description=tinyvla-edge control loop (profile {profile_name})",
        f"After={after}",
        "Wants=network-online.target",
        # Five crashes in a minute means something is wrong with the setup, not a glitch.
        "StartLimitIntervalSec=60",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=simple",
        f"User={user}",
        f"Group={group}",
        "SupplementaryGroups=dialout plugdev video",
        f"WorkingDirectory={home}",
        f"EnvironmentFile=-{RUN_ENV_PATH}",
        "Environment=PYTHONUNBUFFERED=1",
        # ${X} is one argument (the instruction has spaces); $X splits on whitespace (flag lists).
        f"ExecStart={venv}/bin/tinyvla-edge run ${{TINYVLA_EDGE_BUNDLE}} --profile {profile_ref} "
        "--arm ${TINYVLA_EDGE_ARM} --instruction ${TINYVLA_EDGE_INSTRUCTION} $TINYVLA_EDGE_CAMERA_ARGS "
        "$TINYVLA_EDGE_RUN_ARGS",
        # SIGINT takes the runtime's Ctrl-C path: stop sending, apply the profile's on_shutdown.
        "KillSignal=SIGINT",
        "TimeoutStopSec=10",
        "Restart=on-failure",
        "RestartSec=2s",
        "# CPUs online in this profile's power mode, minus CPU0 (interrupts).",
        f"CPUAffinity={format_cpu_list(cpus)}",
        *sched,
        "LimitMEMLOCK=infinity",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def run_env_file(profile_name: str, cameras: list[tuple[str, int, int, int]]) -> str:
    """The operator-edited settings for `tinyvla-edge run`; written once, never overwritten.

    `cameras` is (name, width, height, fps) per profile camera, in the bundle's order.
    """
    camera_args = " ".join(f"--camera {name}=realsense:{w}x{h}@{fps}" for name, w, h, fps in cameras)
    return (
        f"# Settings for `tinyvla-edge run` when started by {SERVICE_NAME} (profile {profile_name}).\n"
        "# The service fails until TINYVLA_EDGE_BUNDLE names a real bundle directory.\n"
        "TINYVLA_EDGE_BUNDLE=/home/CHANGE-ME/bundles/CHANGE-ME\n"
        "# The udev rule's stable name for the arm's adapter (or a /dev/serial/by-id/ path).\n"
        "TINYVLA_EDGE_ARM=/dev/tinyvla-arm\n"
        "TINYVLA_EDGE_INSTRUCTION=pick up the cube\n"
        "# One --camera NAME=SPEC per bundle camera; with several RealSense cameras add serials:\n"
        "# realsense:SERIAL:640x480@30\n"
        f"TINYVLA_EDGE_CAMERA_ARGS={camera_args}\n"
        "# Anything else for `tinyvla-edge run`, e.g. --log /var/log/tinyvla-edge\n"
        "TINYVLA_EDGE_RUN_ARGS=\n"
    )


def clocks_unit() -> str:
    """Lock clocks at boot after nvpmodel has applied the mode (jetson_clocks does not persist)."""
    return "\n".join([
        "# Written by `tinyvla-edge install`: the profile asks for locked clocks.",
        "[Unit]",
        "Description=tinyvla-edge: lock Jetson clocks at the power mode's maximum (jetson_clocks)",
        # nvpmodel first, then jetson_clocks: jetson_clocks locks to the active mode's caps.
        "After=nvpmodel.service",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        "StateDirectory=tinyvla-edge",
        "StandardInput=null",
        # --store prompts "overwrite? Y/N" on an existing file; delete it first.
        f"ExecStartPre=/bin/rm -f {CLOCKS_STORE}",
        f"ExecStartPre=/usr/bin/jetson_clocks --store {CLOCKS_STORE}",
        "ExecStart=/usr/bin/jetson_clocks",
        f"ExecStop=/usr/bin/jetson_clocks --restore {CLOCKS_STORE}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]) + "\n"
