"""Text rendering of `tinyvla-edge profile` results."""

from __future__ import annotations


def render_profile(result: dict) -> str:
    lines = [f"report: {result['markdown']}  (profile.json, {len(result['plots'])} plots in {result['output']})"]
    for run in result["runs"]:
        rate = (f"control {run['control_hz']:.2f} Hz (target {run['target_rate_hz']:g}), "
                if run.get("control_hz") is not None else "")
        lines.append(f"  {run['profile']} [{run.get('mode', 'model-only')}]: {rate}{run['inferences_per_s']:.2f} "
                     f"inferences/s over {run['ticks']} ticks; {run['power']}")
        for stage, s in run["stages_ms"].items():
            lines.append(f"    {stage:<12} p50 {s['p50']:9.2f} ms   p99 {s['p99']:9.2f} ms")
        for w in run["warnings"]:
            lines.append(f"    WARNING: {w}")
    return "\n".join(lines)
