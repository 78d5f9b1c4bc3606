"""Text rendering of `tinyvla-edge profile` results."""

from __future__ import annotations


def render_profile(result: dict) -> str:
    """The terminal summary: where the report is, then per profile its rate, stages and warnings."""
    lines = [f"report: {result['markdown']}  (profile.json, {len(result['plots'])} plots in {result['output']})"]
    for run in result["runs"]:
        rate = (f"control {run['control_hz']:.2f} Hz (target {run['target_rate_hz']:g}), "
                if run.get("control_hz") is not None else "")
        lines.append(f"  {run['profile']} [{run.get('mode', 'model-only')}]: {rate}{run['inferences_per_s']:.2f} "
                     f"inferences/s over {run['ticks']} ticks; {run['power']}")
        lines.append(f"    {'stage':<12} {'p50 ms':>9}      {'p99 ms':>9}")
        for stage, s in run["stages_ms"].items():
            lines.append(f"    {stage:<12} {s['p50']:9.2f}      {s['p99']:9.2f}")
        for w in run["warnings"]:
            lines.append(f"    WARNING: {w}")
    return "\n".join(lines)
