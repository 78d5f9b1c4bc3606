"""Control-loop overhead and cadence: tinyvla-edge's loop vs the naive inline loop, side by side.

Everything real but the robot: the tiny TinyVLA policy (torch, K = 2 head), two cameras playing a
RealSense recording through pyrealsense2, and the arm firmware emulator in its own process on a
pty, driven by SerialArm over pyserial. Scenarios, each repeated (medians reported):

  serial link alone    only the tick's serial exchange (send target + read state): this machine's floor
  ours                 the runtime as `run` places it: fixed-rate tick, worker thread, the real tiny
                       model in its own process (ProcessPredictor) on its own CPUs (CpuPlan)
  ours, slow model     the same, with inference stretched to 3x the tick period (sleeping, as a
                       GPU-bound engine waits): the tick must not notice
  ours, thread         the model in a thread of the control process (`run --inference-thread`),
  ours, thread, slow   where its Python work competes with the tick for the GIL
  naive                inference inline in the tick, as the reference eval does
  naive, slow model    the same with the 3x-period inference: the rate collapses

Targets (issue 7): runtime overhead per tick (all tick work: ensembling, conversion, safety,
serial write + state read, logging; model compute excluded) p99 <= 2 ms at 30 Hz; tick start
error p99 <= 1 ms; with the slow model the achieved rate within 5 % of target, misses <= 1 %.
The process runs at the installed service's niceness (--nice, default -10). On a shared machine
the pty round trip to the emulator process dominates the p99: compare with "serial link alone"
and "overhead without the serial link".

    .venv/bin/python benchmarks/loop_overhead.py [--seconds 10] [--repeats 3] [--rate 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.camera import open_camera  # noqa: E402
from drivers.errors import DeviceTimeoutError  # noqa: E402
from drivers.camera.recording import record_synthetic  # noqa: E402
from drivers.arm.serial_arm import SerialArm  # noqa: E402
from edge.config import ArmSpec, InstallSpec  # noqa: E402
from edge.runtime.loop import ControlLoop, LoopSettings  # noqa: E402
from edge.runtime.pacing import now, sleep_until  # noqa: E402
from edge.runtime.cpus import CpuPlan, run_on  # noqa: E402
from edge.runtime.inference_process import ProcessPredictor  # noqa: E402
from edge.runtime.run import SERIAL_RETRIES, connect_arm, reserve_a_core_for_control  # noqa: E402
from edge.runtime.startup import serial_timeout_s  # noqa: E402
from edge.runtime.safety import SafetyLayer, SafetyLimits  # noqa: E402
from edge.runtime.sim_process import SimArmProcess  # noqa: E402
from edge.runtime.telemetry import summarize  # noqa: E402

INSTRUCTION = "pick up the red cube"
OVERHEAD_P99_MS = 2.0
START_ERROR_P99_MS = 1.0
RATE_TOLERANCE = 0.05
MISS_TOLERANCE = 0.01
EMULATOR_REPLY_SAMPLES = 200


class SlowPredictor:
    """The tiny predictor with every inference stretched to `seconds` (sleep releases the GIL,
    as waiting on a GPU does)."""

    def __init__(self, inner, seconds: float):
        self.inner, self.seconds = inner, seconds

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, images, state, instruction, noise=None):
        start = time.perf_counter()
        prediction = self.inner.predict(images, state, instruction, noise)
        time.sleep(max(0.0, self.seconds - (time.perf_counter() - start)))
        return prediction


def apply_niceness(nice: int) -> int:
    """Run at `nice` like the systemd unit `tinyvla-edge install` writes (Nice=, or SCHED_FIFO where
    the kernel allows), before any thread exists so every thread and the emulator child inherit it
    (the emulator stands in for the arm's own microcontroller, which never waits for our CPU).
    Returns the niceness in effect."""
    if nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except (PermissionError, OSError):
            pass  # not allowed here: measure at the default priority and say so
    return os.getpriority(os.PRIO_PROCESS, 0)


def build_training_output(workdir: Path) -> Path:
    from edge.policy.tiny import tiny_config, write_base_vlm, write_training_output

    cfg = tiny_config()
    base = write_base_vlm(workdir / "Llava-Pythia-tiny", cfg, seed=0)
    return write_training_output(workdir / "llava_pythia_lora_tiny", base, cfg, seed=1)


def tiny_predictor(output: Path):
    """The tiny policy with a K = 2 head (module level: a child process builds it by reference)."""
    from edge.policy.checkpoint import load_training_output
    from edge.policy.predictor import TorchPredictor

    policy = load_training_output(output)
    return TorchPredictor(policy, policy.sampler(2))


def slow_tiny_predictor(output: Path, seconds: float):
    return SlowPredictor(tiny_predictor(output), seconds)


def in_own_process(load, cpus: CpuPlan) -> ProcessPredictor:
    """The model in a child process on the model CPUs, as `tinyvla-edge run` places it."""
    return ProcessPredictor(load, torch_threads=len(cpus.model), cpus=cpus.model)


class Rig:
    """Cameras on a looping recording + the emulator in a child process + SerialArm."""

    def __init__(self, predictor, recording: Path, rate_hz: float):
        self.cameras = [open_camera(f"recording:{recording}?loop", name) for name in predictor.camera_names]
        self.sim = SimArmProcess(dof=6, space="ee")
        port = self.sim.start()
        self.arm = SerialArm(port, timeout_s=serial_timeout_s(rate_hz), retries=SERIAL_RETRIES)
        self.limits = SafetyLimits.combine(connect_arm(self.arm), ArmSpec())
        # The rig's own cost: how fast the emulator answers, measured apart from any loop.
        with self.arm.longer_timeout(0.5):
            reply = self.arm.measure_reply_time(EMULATOR_REPLY_SAMPLES)
        self.emulator_reply = {"emulator_reply_p50_ms": 1e3 * reply.p50_s, "emulator_reply_p99_ms": 1e3 * reply.p99_s}

    def close(self) -> None:
        self.arm.close()
        self.sim.stop()
        for camera in self.cameras:
            camera.close()


def run_ours(predictor, rig: Rig, rate_hz: float, seconds: float) -> dict:
    loop = ControlLoop(predictor, rig.cameras, rig.arm, SafetyLayer(rig.limits),
                       LoopSettings(rate_hz=rate_hz, duration_s=seconds), INSTRUCTION)
    report = loop.run().report
    tick = report["tick_ms"]
    inference = report["inference_ms"]
    off_link = loop.telemetry.tick_series("work") - loop.telemetry.tick_series("serial")
    return {
        "overhead_without_link_p99_ms": summarize(off_link)["p99"],
        "achieved_hz": report["achieved_rate_hz"],
        "miss_ratio": report["miss_ratio"],
        "overhead_p50_ms": tick["work"]["p50"],
        "overhead_p95_ms": tick["work"]["p95"],
        "overhead_p99_ms": tick["work"]["p99"],
        "serial_p99_ms": tick["serial"]["p99"],
        "start_error_p99_ms": tick["start_error"]["p99"],
        "capture_preprocess_p99_ms": inference.get("capture", {}).get("p99", 0.0)
        + inference.get("preprocess", {}).get("p99", 0.0),
        "inference_p50_ms": sum(inference.get(s, {}).get("p50", 0.0) for s in ("preprocess", "vision", "language", "head", "postprocess")),
        "holds": report["safety"]["holds"],
        "policy_hz": report["policy_rate_hz"],
    }


def run_link_floor(predictor, rig: Rig, rate_hz: float, seconds: float) -> dict:
    """Just the serial exchange of a tick (send target + read state) at the rate, nothing else
    running: what this machine's pty and scheduler cost by themselves."""
    state = _retrying(rig.arm.state)
    target = state.as_target()
    times = []
    due = now() + 1.0 / rate_hz
    end = due + seconds
    while now() < end:
        sleep_until(due)
        start = now()
        try:
            rig.arm.send_target(target)
            rig.arm.state()
        except DeviceTimeoutError:
            pass
        times.append((now() - start) * 1e3)
        due += 1.0 / rate_hz
    s = summarize(times)
    return {"achieved_hz": rate_hz, "miss_ratio": 0.0, "overhead_p50_ms": s["p50"], "overhead_p95_ms": s["p95"],
            "overhead_p99_ms": s["p99"], "start_error_p99_ms": float("nan"), "holds": 0}


def run_naive(predictor, rig: Rig, rate_hz: float, seconds: float) -> dict:
    """The reference eval's shape: observe, infer, act, all in the tick; then pace to the rate."""
    safety = SafetyLayer(rig.limits)
    state = _retrying(rig.arm.state)
    safety.observe(state)
    period = 1.0 / rate_hz
    starts, works, timeouts = [], [], 0
    due = now() + period
    end = due + seconds
    while now() < end:
        sleep_until(due)
        start = now()
        starts.append(start)
        images = [c.wait_newer(0, 1.0).color for c in rig.cameras]
        prediction = predictor.predict(images, np.asarray(state.as_target(), np.float32), INSTRUCTION)
        decision = safety.decide(np.asarray(predictor.decoder.robot_actions(prediction.normalized[0]), np.float64), state)
        try:
            if rig.arm.send_target(decision.target).accepted:
                safety.accepted(decision.target)
            state = rig.arm.state()
            safety.observe(state)
        except DeviceTimeoutError:
            timeouts += 1
            safety.unconfirmed(decision.target)
        works.append((now() - start) * 1e3)
        due = max(due + period, now())  # no catch-up bursts; a late tick just starts late
    span = starts[-1] - starts[0]
    achieved = (len(starts) - 1) / span if span > 0 else 0.0
    return {
        "achieved_hz": achieved,
        "miss_ratio": max(0.0, 1 - achieved / rate_hz),
        "overhead_p50_ms": float("nan"),  # inference is inside the tick: no overhead to isolate
        "overhead_p95_ms": float("nan"),
        "overhead_p99_ms": float("nan"),
        "tick_p99_ms": summarize(works)["p99"],
        "start_error_p99_ms": float("nan"),
        "holds": 0,
        "serial_timeouts": timeouts,
    }


def _retrying(call, tries: int = 10):
    for attempt in range(tries):
        try:
            return call()
        except DeviceTimeoutError:
            if attempt == tries - 1:
                raise


def run_scenario(runner, pred, predictor, recording: Path, args) -> dict:
    rig = Rig(predictor, recording, args.rate)
    try:
        for _ in range(3):  # warm-up, excluded from the statistics
            pred.predict([c.wait_newer(0, 1.0).color for c in rig.cameras], np.zeros(7, np.float32), INSTRUCTION)
        return dict(runner(pred, rig, args.rate, args.seconds), **rig.emulator_reply)
    finally:
        rig.close()


def median_of(runs: list[dict]) -> dict:
    keys = runs[0].keys()
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--nice", type=int, default=InstallSpec().nice,
                        help="niceness to run at, as the installed service does (default %(default)s; 0: leave as is)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    niceness = apply_niceness(args.nice)
    reserve_a_core_for_control()
    slow_s = 3.0 / args.rate
    with tempfile.TemporaryDirectory(prefix="loop-bench-") as tmp:
        workdir = Path(tmp)
        output = build_training_output(workdir)
        predictor = tiny_predictor(output)
        slow = SlowPredictor(predictor, slow_s)
        cpus = CpuPlan.for_this_process()
        remote = in_own_process(partial(tiny_predictor, output), cpus)
        remote_slow = in_own_process(partial(slow_tiny_predictor, output, slow_s), cpus)
        recording = record_synthetic(workdir / "synthetic.db3", frames=60, width=64, height=48, fps=30)
        scenarios = {
            "serial link alone": (run_link_floor, predictor),
            "ours": (run_ours, remote),
            "ours, slow model": (run_ours, remote_slow),
            "ours, thread": (run_ours, predictor),
            "ours, thread, slow": (run_ours, slow),
            "naive": (run_naive, predictor),
            "naive, slow model": (run_naive, slow),
        }
        results: dict[str, list[dict]] = {name: [] for name in scenarios}
        try:
            for _ in range(args.repeats):
                for name, (runner, pred) in scenarios.items():
                    # As `run` does: with the model in its own process, the control side keeps its CPUs.
                    with run_on(cpus.control if isinstance(pred, ProcessPredictor) else cpus.model | cpus.control):
                        results[name].append(run_scenario(runner, pred, predictor, recording, args))
        finally:
            remote.close()
            remote_slow.close()

    medians = {name: median_of(runs) for name, runs in results.items()}
    ours, slow = medians["ours"], medians["ours, slow model"]
    targets = {
        "overhead_p99_le_2ms": ours["overhead_p99_ms"] <= OVERHEAD_P99_MS,
        "start_error_p99_le_1ms": ours["start_error_p99_ms"] <= START_ERROR_P99_MS,
        "slow_model_rate_within_5pct": abs(slow["achieved_hz"] - args.rate) / args.rate <= RATE_TOLERANCE,
        "slow_model_misses_le_1pct": slow["miss_ratio"] <= MISS_TOLERANCE,
    }
    summary = {
        "rate_hz": args.rate, "seconds": args.seconds, "repeats": args.repeats, "slow_inference_ms": 1e3 * slow_s,
        "cpus": os.cpu_count(), "cpu_plan": cpus.describe(), "load_average": os.getloadavg(), "niceness": niceness,
        "medians": medians, "runs": results, "targets": targets,
        "ratios": {
            "achieved_rate_ours_vs_naive_slow_model": slow["achieved_hz"] / medians["naive, slow model"]["achieved_hz"],
            "achieved_rate_ours_vs_naive": ours["achieved_hz"] / medians["naive"]["achieved_hz"],
        },
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render(summary))
    return 0


def render(summary: dict) -> str:
    cols = ["achieved_hz", "miss_ratio", "overhead_p50_ms", "overhead_p95_ms", "overhead_p99_ms", "start_error_p99_ms",
            "holds"]
    lines = [
        f"loop overhead at {summary['rate_hz']:g} Hz, {summary['repeats']} x {summary['seconds']:g} s "
        f"(medians), {summary['cpus']} CPUs, load average {summary['load_average'][0]:.2f}, "
        f"nice {summary['niceness']}; "
        f"slow model = {summary['slow_inference_ms']:.0f} ms per inference",
        f"{'scenario':<20}" + "".join(f"{c.replace('_ms', ''):>17}" for c in cols) + "   (ms)",
    ]
    for name, m in summary["medians"].items():
        lines.append(f"{name:<20}" + "".join(f"{m.get(c, float('nan')):>17.3f}" for c in cols))
    ratios = summary["ratios"]
    ours = summary["medians"]["ours"]
    lines.append(f"ours: overhead p99 {ours['overhead_p99_ms']:.3f} ms, of which the serial link p99 "
                 f"{ours['serial_p99_ms']:.3f} ms; without the link p99 {ours['overhead_without_link_p99_ms']:.3f} ms; "
                 f"capture + preprocess per inference p99 {ours['capture_preprocess_p99_ms']:.3f} ms")
    lines.append(f"the rig: the emulator's own reply time p50 {ours['emulator_reply_p50_ms']:.3f} ms, "
                 f"p99 {ours['emulator_reply_p99_ms']:.3f} ms (GET_STATE round trip less wire time; the "
                 f"protocol allows an arm 5 ms): the link's share of the overhead is the rig's, not the toolkit's")
    lines.append(f"achieved rate ours / naive: {ratios['achieved_rate_ours_vs_naive']:.2f} (tiny model), "
                 f"{ratios['achieved_rate_ours_vs_naive_slow_model']:.2f} (slow model)")
    lines.append("targets: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in summary["targets"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
