"""The summary table printed at the end of `tinyvla-edge quantize`."""

from __future__ import annotations

from quantize.report import gate_line


def render_summary(result: dict) -> str:
    f = result["fidelity"]
    head = result["head"]
    rows = [f"bundle written: {result['output']}  (profile {result['profile']}, {result['seconds']} s)", ""]
    rows.append(f"  {'component':<10} {'engine':<16} {'precision':<9} file")
    for name, c in result["components"].items():
        rows.append(f"  {name:<10} {c['engine']:<16} {c['precision']:<9} {c['file']}")
    kind = f"distilled ({head['method']})" if head["distilled"] else "teacher"
    rows.append(f"  {'head':<10} {'torch':<16} {'fp32':<9} {head['file']}  {head['steps']} steps, {kind}")
    rows += [
        "",
        f"  fidelity on {f['observations']} held-out observations ({f['held_out_from']}):",
        f"    condition cosine      {f['condition_cosine_mean']:.5f} (min {f['condition_cosine_min']:.5f})",
        f"    backbone action RMSE  {f['backbone_action_rmse']:.5f} (max abs {f['backbone_action_max_abs']:.5f})",
        f"    end-to-end RMSE       {f['action_rmse']:.5f} (max abs {f['action_max_abs']:.5f}) vs {f['reference']}",
        "    latency (median ms)   " + ", ".join(f"{k} {v:.2f}" for k, v in f["latency_ms_median"].items()),
    ]
    if "gate" in f:
        rows.append(f"    fidelity gate         {gate_line(f['gate'])}")
    if "log" in result:
        rows += ["", f"  log (warnings of the libraries it ran): {result['log']}"]
    return "\n".join(rows)
