"""`report.md`: the fidelity report a user reads next to a bundle."""

from __future__ import annotations

from pathlib import Path


def write_report(directory: Path, manifest: dict) -> Path:
    """Render the manifest's fidelity and components as Markdown into `report.md`."""
    f = manifest.get("fidelity", {})
    head = manifest["head"]
    lines = [
        f"# Bundle report: profile `{manifest['profile']}`",
        "",
        f"Created {manifest['created_at']} by tinyvla-edge {manifest['toolkit_version']} from "
        f"`{manifest['source'].get('path', '?')}` (fingerprint `{str(manifest['source'].get('fingerprint', ''))[:16]}`).",
        "",
        "| component | engine | precision | file |",
        "|---|---|---|---|",
    ]
    for name, c in manifest["components"].items():
        lines.append(f"| {name} | {c['engine']} | {c['precision']} | `{c['file']}` |")
    lines.append(f"| head | {head.get('engine', 'torch')} | {head.get('precision', 'fp32')} | `{head.get('network_file') or head['file']}` "
                 f"({head['steps']} DDIM steps, timesteps {head['sampler']['timesteps']}"
                 f"{', distilled: ' + str(head['method']) if head['distilled'] else ', teacher'}) |")
    lines += _head_fidelity_lines(head.get("fidelity"))
    lines += [
        "",
        f"## Fidelity vs the fp32 policy ({f.get('observations', 0)} held-out observations from {f.get('held_out_from', '?')})",
        "",
        "| figure | value |",
        "|---|---|",
        f"| head-condition cosine (mean / min) | {f.get('condition_cosine_mean', float('nan')):.5f} / {f.get('condition_cosine_min', float('nan')):.5f} |",
        f"| backbone-only normalized action RMSE (same head and noise) | {f.get('backbone_action_rmse', float('nan')):.5f} |",
        f"| backbone-only max abs error | {f.get('backbone_action_max_abs', float('nan')):.5f} |",
        f"| end-to-end normalized action RMSE vs {f.get('reference', 'teacher')} | {f.get('action_rmse', float('nan')):.5f} |",
        f"| end-to-end max abs error | {f.get('action_max_abs', float('nan')):.5f} |",
        *_gate_rows(f.get("gate")),
        "",
        "Latency on the machine that built the bundle (median ms): "
        + ", ".join(f"{k} {v:.2f}" for k, v in f.get("latency_ms_median", {}).items()),
        "",
    ]
    path = Path(directory) / "report.md"
    path.write_text("\n".join(lines))
    return path


def gate_line(gate: dict) -> str:
    """The fidelity gate and its verdict in one line (the report and the quantize summary)."""
    return (f"end-to-end RMSE {gate['action_rmse']:.5f} <= {gate['max_action_rmse']} ({gate['source']}): "
            f"{gate['verdict']}")


def _gate_rows(gate: dict | None) -> list[str]:
    if gate is None:
        return []
    return [f"| fidelity gate | {gate_line(gate)} |"]


def _head_fidelity_lines(fidelity: dict | None) -> list[str]:
    """The head engine's own figure: its chunk vs the fp32 head on the same condition and noise."""
    if not fidelity:
        return []
    if "action_nrmse" not in fidelity:
        return ["", f"Head engine fidelity: not measured ({fidelity.get('reason', '?')})."]
    return ["", f"Head engine fidelity vs the fp32 head ({fidelity['chunks']} chunks, same condition and noise): normalized "
                f"action RMSE {fidelity['action_nrmse']:.5f} (target <= {fidelity['target']}), max abs {fidelity['action_max_abs']:.5f}."]
