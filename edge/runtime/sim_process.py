"""The arm firmware emulator in a child process, for `run --arm sim`, the demo and benchmarks.

A real arm is another device: its firmware does not share our interpreter (or its GIL). Running
`drivers.sim.sim_arm` in its own process keeps the serial round trip as it would be on hardware.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from drivers.errors import DriverError

_SERVE = """
import json, os, signal, sys, threading
from drivers.sim.sim_arm import serve_sim_arm
options = json.loads(sys.argv[1])
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
parent = os.getppid()
def orphaned():  # the runtime died without stopping us: do not outlive it
    while not stop.wait(0.5):
        if os.getppid() != parent:
            stop.set()
threading.Thread(target=orphaned, daemon=True).start()
def ready(info):
    print(json.dumps(info), flush=True)
summary = serve_sim_arm(on_ready=ready, stop=stop, **options)
print(json.dumps(summary), flush=True)
"""


class SimArmProcess:
    """`SimArm` in a child process. `start()` returns the pty path; `stop()` returns its counters."""

    def __init__(self, dof: int, space: str, log: Path | None = None, faults: tuple[str, ...] = (),
                 start_timeout_s: float = 10.0):
        self.options = {"dof": dof, "space": space, "log": str(log) if log else None, "faults": list(faults)}
        self.start_timeout_s = start_timeout_s
        self.port: str | None = None
        self._proc: subprocess.Popen | None = None

    def start(self) -> str:
        root = Path(__file__).resolve().parents[2]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, json.dumps(self.options)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, not the arm: we ESTOP it first
        )
        line = self._read_line(self.start_timeout_s)
        if not line:
            err = self._proc.stderr.read() if self._proc.poll() is not None else ""
            self.stop()
            raise DriverError(f"the arm emulator did not start: {err.strip().splitlines()[-1] if err.strip() else 'no reply'}")
        self.port = json.loads(line)["device"]
        return self.port

    def _read_line(self, timeout_s: float) -> str:
        import select

        ready, _, _ = select.select([self._proc.stdout], [], [], timeout_s)
        return self._proc.stdout.readline() if ready else ""

    def stop(self) -> dict:
        """Stop the emulator (SIGTERM, then kill) and return its final counters."""
        proc, self._proc = self._proc, None
        if proc is None:
            return {}
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        lines = [line for line in (out or "").splitlines() if line.strip()]
        try:
            return json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            return {}

    def __enter__(self) -> "SimArmProcess":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
