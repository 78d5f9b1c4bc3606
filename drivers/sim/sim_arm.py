"""The arm firmware emulator on a pseudo-terminal (`tinyvla-edge sim-arm`).

`SimArm` opens a pty (os.openpty), runs `ArmFirmware` behind it on a thread, and injects faults
on the bytes and the timing. Anything that can open a serial port (SerialArm, minicom, a test)
talks to it through the pty's device path exactly as it would to a real arm.
"""

from __future__ import annotations

import json
import os
import random
import select
import termios
import threading
import time
import tty
from pathlib import Path
from typing import Callable, Iterable

from drivers.arm import protocol as sp
from drivers.errors import DriverError
from drivers.sim.faults import Fault, FaultInjector, parse_faults
from drivers.sim.firmware import ArmFirmware, FirmwareConfig


class SimArm:
    """An emulated arm behind a pty. `start()` returns the device path; `stop()` ends it.

    log: JSON-lines file receiving every accepted target and every NAK.
    faults: Fault objects or spec strings (see drivers.sim.faults), armed at start().
    link: a symlink kept pointing at the current pty (it changes across an unplug).
    baud: if set, a host that configured another speed gets garbled bytes, as on a real UART.
    """

    def __init__(
        self,
        dof: int = 7,
        space: str = "ee",
        log: str | os.PathLike | None = None,
        faults: Iterable[Fault | str] = (),
        *,
        lower: tuple[float, ...] | None = None,
        upper: tuple[float, ...] | None = None,
        max_step: tuple[float, ...] | None = None,
        watchdog_s: float = 0.5,
        time_constant_s: float = 0.05,
        firmware_version: tuple[int, int, int] = (1, 0, 0),
        protocol_version: int = sp.PROTOCOL_VERSION,
        link: str | os.PathLike | None = None,
        baud: int | None = None,
        seed: int = 0,
        tick_s: float = 0.002,
    ):
        self.config = FirmwareConfig(
            dof=dof,
            space=space,
            lower=lower,
            upper=upper,
            max_step=max_step,
            watchdog_s=watchdog_s,
            time_constant_s=time_constant_s,
            firmware_version=firmware_version,
            protocol_version=protocol_version,
        )
        self.link = Path(link) if link is not None else None
        self.baud = baud
        self._expected_speed = getattr(termios, f"B{baud}", None) if baud else None
        self._initial_faults = parse_faults(faults)
        self._log_path = Path(log) if log is not None else None
        self._rng = random.Random(seed)
        self._tick_s = tick_s
        self._lock = threading.Lock()  # guards firmware, injector and pty fds between threads
        self._firmware = ArmFirmware(self.config, on_event=self._log_event)
        self._injector = FaultInjector(self._rng)
        self._decoder = sp.FrameDecoder(expected_version=protocol_version)
        self._pending: list[tuple[float, bytes]] = []  # (due time, bytes): delayed replies
        self._master: int | None = None
        self._slave: int | None = None
        self._port: str | None = None
        self._log_file = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.unplug_count = 0
        self.log_write_errors = 0

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> str:
        """Open the pty, start the firmware thread, return the device path (or the link)."""
        if self._thread is not None:
            raise DriverError("this SimArm is already running")
        if self.link is not None and self.link.exists() and not self.link.is_symlink():
            raise DriverError(f"--link {self.link} exists and is not a symlink; refusing to replace it")
        if self._log_path is not None:
            try:
                self._log_file = open(self._log_path, "a", encoding="utf-8")
            except OSError as e:
                raise DriverError(f"cannot write the emulator log {self._log_path}: {e.strerror or e}") from e
        now = time.monotonic()
        for fault in self._initial_faults:
            self._injector.arm(fault, now)
        self._open_pty()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="sim-arm", daemon=True)
        self._thread.start()
        return str(self.link) if self.link is not None else self._port

    def stop(self) -> None:
        """Stop the thread and close the pty. Idempotent."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        with self._lock:
            self._close_pty()
            if self._log_file is not None:
                try:
                    self._log_file.close()
                except OSError:
                    self.log_write_errors += 1  # the last lines did not reach a full disk
                self._log_file = None

    def __enter__(self) -> "SimArm":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> str | None:
        """The current pty device path; None while unplugged."""
        return self._port

    def add_fault(self, fault: Fault | str) -> None:
        """Arm a fault now (window faults start `at_s` after this call)."""
        (fault,) = parse_faults([fault])
        with self._lock:
            self._injector.arm(fault, time.monotonic())

    def inspect(self, read: Callable[[ArmFirmware], object]) -> object:
        """Run `read(firmware)` under the emulator's lock (for tests and status displays)."""
        with self._lock:
            return read(self._firmware)

    def summary(self) -> dict:
        """Counters so far."""
        with self._lock:
            stats = self._firmware.stats
            return {
                "port": self._port,
                "link": str(self.link) if self.link else None,
                "accepted": stats.accepted,
                "naks": stats.naks,
                "frames": stats.frames,
                "bad_frames": stats.bad_frames,
                "watchdog_holds": stats.watchdog_holds,
                "unplugs": self.unplug_count,
                "log_write_errors": self.log_write_errors,
            }

    # -- the firmware thread --------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            master = self._master
            if master is None:
                time.sleep(self._tick_s)
                data = b""
            else:
                try:
                    ready, _, _ = select.select([master], [], [], self._wait_s())
                    data = os.read(master, 4096) if ready else b""
                except OSError:
                    data = b""  # the pty was closed under us by an unplug; the next loop sees it
            now = time.monotonic()
            with self._lock:
                self._apply_unplug(now)
                self._firmware.fault = self._injector.hardware_fault(now)
                if data and self._master is not None:
                    self._receive(data, now)
                self._firmware.step(now)
                self._send_due(now)

    def _wait_s(self) -> float:
        if not self._pending:
            return self._tick_s
        return max(0.0, min(self._tick_s, self._pending[0][0] - time.monotonic()))

    def _receive(self, data: bytes, now: float) -> None:
        if self._injector.silenced(now):
            return  # a hung firmware neither processes nor answers
        if self._baud_mismatch():
            data = bytes(self._rng.randrange(256) for _ in data)  # framing errors: noise, not bytes
        data = self._injector.mangle(data, "rx")
        for item in self._decoder.feed(data):
            if isinstance(item, sp.Received) and not isinstance(item.message, sp.Hello) and self._injector.nak_now():
                replies = [self._firmware.nak_corrupted(item, now)]
            else:
                replies = self._firmware.handle(item, now)
            for seq, message in replies:
                wire = sp.encode(message, seq, version=self.config.protocol_version)
                if self._baud_mismatch():
                    wire = bytes(self._rng.randrange(256) for _ in wire)
                self._pending.append((now + self._injector.delay_s, self._injector.mangle(wire, "tx")))
        self._pending.sort(key=lambda item: item[0])

    def _send_due(self, now: float) -> None:
        while self._pending and self._pending[0][0] <= now:
            _, data = self._pending.pop(0)
            if self._master is None or not data:
                continue
            try:
                os.write(self._master, data)
            except (BlockingIOError, OSError):
                pass  # nobody reading and the buffer is full: a real UART would lose these too

    def _baud_mismatch(self) -> bool:
        if self._expected_speed is None or self._slave is None:
            return False
        try:
            attrs = termios.tcgetattr(self._slave)
        except termios.error:
            return False
        return attrs[4] != self._expected_speed or attrs[5] != self._expected_speed

    def _apply_unplug(self, now: float) -> None:
        unplugged = self._injector.unplugged(now)
        if unplugged and self._master is not None:
            self._close_pty()
            self.unplug_count += 1
        elif not unplugged and self._master is None and not self._stopping.is_set():
            self._open_pty()

    # -- pty ------------------------------------------------------------------------------------

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: bytes pass through untouched
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._port = os.ttyname(slave)
        self._decoder.reset()
        self._pending.clear()
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            os.symlink(self._port, tmp)
            os.replace(tmp, self.link)  # atomic: a reader never sees a half-made link

    def _close_pty(self) -> None:
        # Closing the master hangs up the host's side: its reads fail and the /dev/pts node
        # vanishes, which is what unplugging a USB adapter looks like.
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None
        self._port = None
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def _log_event(self, event: dict) -> None:
        if self._log_file is None:
            return
        record = {"time": time.time(), **event}
        try:
            self._log_file.write(json.dumps(record) + "\n")
            self._log_file.flush()
        except OSError:
            # A full disk must not stop the firmware: a real arm answers whether or not we log it.
            self.log_write_errors += 1


def serve_sim_arm(
    dof: int = 7,
    space: str = "ee",
    link: str | None = None,
    log: str | None = None,
    faults: Iterable[str] = (),
    on_ready: Callable[[dict], None] = lambda info: None,
    stop: threading.Event | None = None,
) -> dict:
    """Run the emulator until Ctrl-C (or `stop` is set); return its counters.

    `on_ready` receives {"port", "link", ...} once the pty exists, so a CLI can print the path.
    """
    faults = parse_faults(faults)  # bad specs fail here, before a pty exists
    _run_like_dedicated_hardware()
    sim = SimArm(dof=dof, space=space, log=log, faults=faults, link=link)
    stop = stop or threading.Event()
    device = sim.start()
    try:
        on_ready(
            {
                "port": sim.port,
                "link": str(link) if link else None,
                "device": device,
                "dof": dof,
                "space": space,
                "faults": [str(f) for f in faults],
            }
        )
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a user ends the emulator: not an error
    finally:
        summary = sim.summary()
        sim.stop()
    return summary


EMULATOR_NICENESS = -10  # as the runtime's control process (profiles' install.nice default)


def _run_like_dedicated_hardware() -> None:
    """Raise this process's priority where the user may: a real arm answers from its own
    microcontroller, so the emulator standing in for it must not queue behind the host's work
    (its reply time would then measure this machine's load, not the protocol)."""
    try:
        if EMULATOR_NICENESS < os.getpriority(os.PRIO_PROCESS, 0):
            os.setpriority(os.PRIO_PROCESS, 0, EMULATOR_NICENESS)
    except OSError:
        pass  # not permitted (no CAP_SYS_NICE): answer at the inherited priority


def render_sim_arm_ready(info: dict) -> str:
    """The line a user needs first: the device path to give the runtime (and how to stop)."""
    link = f" (link {info['link']})" if info.get("link") else ""
    faults = f", faults: {' '.join(info['faults'])}" if info.get("faults") else ""
    return (
        f"{info['port']}{link}\n"
        f"sim-arm: {info['dof']} DOF + gripper, {info['space']} space{faults}; Ctrl-C to stop"
    )


def render_sim_arm_summary(summary: dict) -> str:
    return (
        f"sim-arm stopped: {summary['accepted']} targets accepted, {summary['naks']} NAKs, "
        f"{summary['bad_frames']} bad frames, {summary['watchdog_holds']} watchdog holds, {summary['unplugs']} unplugs"
    )
