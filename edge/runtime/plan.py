"""The run's plan: what start-up settled (rate, ensembling, arm, limits, serial budget, where the
model runs), as a dict for the episode log and `--json`, and as a few lines for people."""

from __future__ import annotations

import os

from edge.config import Profile
from edge.runtime.cpus import CpuPlan
from edge.runtime.loop import LoopSettings
from edge.runtime.safety import SafetyLimits


def build_plan(request, profile: Profile, predictor, info, limits: SafetyLimits, settings: LoopSettings,
               port: str, prompt_tokens: int, warmup_ms: list[float], cpus: CpuPlan | None) -> dict:
    """The plan of a run that start-up cleared (cameras, serial and execution latency are added by it)."""
    return {
        "bundle": str(request.bundle),
        "profile": profile.name,
        "instruction": request.instruction,
        "prompt_tokens": prompt_tokens,
        "max_prompt_tokens": predictor.max_prompt_tokens,
        "rate_hz": settings.rate_hz,
        "ensemble_k": settings.ensemble_k,
        "chunk_size": predictor.chunk_size,
        "head_steps": predictor.head_steps,
        "action_deadline_s": settings.action_deadline_s,
        "duration_s": settings.duration_s,
        "dry_run": settings.dry_run,
        "on_shutdown": settings.on_shutdown.value,
        "arm": {"port": port, "firmware": info.firmware_version, "protocol": info.protocol_version,
                "dof": info.dof, "action_space": info.action_space, "watchdog_s": info.watchdog_s},
        "limits": limits.describe(),
        "warmup_ms": [round(t, 2) for t in warmup_ms],
        "niceness": os.getpriority(os.PRIO_PROCESS, 0),
        "inference": _inference_placement(predictor, cpus),
    }


def _inference_placement(predictor, cpus: CpuPlan | None) -> dict:
    pid = getattr(predictor, "pid", None)  # a ProcessPredictor's child
    if pid is None or cpus is None:
        return {"where": "thread"}
    placement = {"where": "process", "pid": pid, "cpus": cpus.describe()}
    try:
        placement["niceness"] = os.getpriority(os.PRIO_PROCESS, pid)
    except OSError:  # it has exited; the loop will say why
        pass
    return placement


def render_plan(plan: dict) -> str:
    """The plan as a few lines for people."""
    arm = plan["arm"]
    lines = [
        f"plan: {plan['rate_hz']:g} Hz, ensemble k {plan['ensemble_k']:g}, chunk {plan['chunk_size']}, "
        f"head K={plan['head_steps']}, deadline {1e3 * plan['action_deadline_s']:.0f} ms, profile {plan['profile']}"
        + (" [dry run: heartbeats only]" if plan["dry_run"] else ""),
        f"arm: {arm['dof']} DOF {arm['action_space']} on {arm['port']} (firmware {arm['firmware']}), "
        f"on shutdown: {plan['on_shutdown']}",
        _render_serial(plan["serial"]) if "serial" in plan else "",
        f"execution latency: {plan['exec_latency']['ms']:.1f} ms ({plan['exec_latency']['source']}): actions are "
        "sent that long before they are due" if "exec_latency" in plan else "",
        "limits: " + ", ".join(f"{r['axis']} [{r['lower']:.3g}, {r['upper']:.3g}] step {r['max_step']:.3g}"
                               for r in plan["limits"]),
        f"warm-up: {len(plan['warmup_ms'])} inferences, last {plan['warmup_ms'][-1]:.1f} ms" if plan["warmup_ms"] else "",
        _render_inference(plan["inference"]),
    ]
    return "\n".join(line for line in lines if line)


def _render_serial(serial: dict) -> str:
    reply = serial["reply_time"]
    return (f"serial: {serial['call_timeout_ms']:.1f} ms per call ({serial['attempts_that_fit']} spec-length "
            f"attempt(s) of {serial['target_attempt_ms']:.1f} ms fit); arm replies p50 {reply['p50_ms']:.2f} ms, "
            f"p99 {reply['p99_ms']:.2f} ms (spec {reply['spec_ms']:g} ms)")


def _render_inference(inference: dict) -> str:
    if inference["where"] == "thread":
        return "inference: in a thread of the control process"
    nice = f", niceness {inference['niceness']}" if "niceness" in inference else ""
    cpus = inference["cpus"]
    return (f"inference: own process (pid {inference['pid']}{nice}) on CPUs {_cpu_list(cpus['model'])}, "
            f"control on CPUs {_cpu_list(cpus['control'])}")


def _cpu_list(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)
