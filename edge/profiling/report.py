"""Write a profile report: profile.json, report.md and PNG plots; compare earlier reports.

The Markdown table has one row per run and one column per figure; the best value of each
column is bold (lowest latency, power, energy and memory; highest throughput) when at least
two runs have a value. See docs/profile-report.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from pydantic import ValidationError

from edge import __version__
from edge.errors import EdgeError
from edge.profiling.checks import with_warnings
from edge.profiling.model import SCHEMA_VERSION, ProfileReport, ProfileRun, RunSummary, Stage, WarningKind
from edge.profiling.plots import (
    ENERGY_LATENCY_PNG,
    LATENCY_CDF_PNG,
    POWER_TRACE_PNG,
    plot_energy_latency,
    plot_latency_cdf,
    plot_power_trace,
)
from edge.profiling.stats import summarize_stage

PROFILE_JSON = "profile.json"
REPORT_MD = "report.md"


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written."""

    directory: Path
    json: Path
    markdown: Path
    plots: tuple[Path, ...]


class Better(Enum):
    """Which end of a column wins."""

    LOWER = "lower"
    HIGHER = "higher"


@dataclass(frozen=True)
class Column:
    """One figure of the results table."""

    header: str
    value: Callable[[ProfileRun, RunSummary], float | None]
    better: Better | None
    decimals: int
    missing: Callable[[ProfileRun], str] = lambda run: "n/a"


def _power_missing(run: ProfileRun) -> str:
    return "unavailable" if not run.power.available else "n/a"


def _stage_column(stage: Stage, stat: str) -> Column:
    def value(run: ProfileRun, summary: RunSummary) -> float | None:
        found = summary.stages.get(stage)
        return getattr(found, stat) if found is not None else None

    return Column(f"{stage.value} {stat}", value, Better.LOWER, 2, lambda run: "—")


PERCENTILES = ("p50", "p90", "p99", "max")


def table_columns(runs: Sequence[ProfileRun]) -> list[Column]:
    """The results table's columns: stages that ran in any of `runs`, then the run-level figures."""
    columns = [Column("ticks", lambda run, s: run.ticks, None, 0)]
    columns += [
        Column(f"tick {stat}", lambda run, s, stat=stat: getattr(s.tick_total, stat), Better.LOWER, 2)
        for stat in PERCENTILES
    ]
    present = [stage for stage in Stage if any(stage in run.stages_ms for run in runs)]
    columns += [_stage_column(stage, stat) for stage in present for stat in PERCENTILES]
    columns += [
        Column("inferences/s", lambda run, s: run.throughput.inferences_per_s, Better.HIGHER, 1),
        Column("control Hz", lambda run, s: run.throughput.control_hz, Better.HIGHER, 1),
        Column("power (W)", lambda run, s: s.mean_power_w, Better.LOWER, 2, _power_missing),
        Column("J/inference", lambda run, s: run.energy_per_inference_j, Better.LOWER, 3, _power_missing),
        Column("J/action", lambda run, s: run.energy_per_action_j, Better.LOWER, 4, _power_missing),
        Column("RSS peak (MiB)", lambda run, s: run.memory.rss_peak_mb, Better.LOWER, 0),
        Column("CUDA peak (MiB)", lambda run, s: run.memory.cuda_peak_mb, Better.LOWER, 0),
    ]
    return columns


def best_indices(values: Sequence[float | None], better: Better | None) -> set[int]:
    """Rows holding the best value of a column (ties all win); none unless two rows have values."""
    present = [(i, v) for i, v in enumerate(values) if v is not None]
    if better is None or len(present) < 2:
        return set()
    pick = min if better is Better.LOWER else max
    best = pick(v for _, v in present)
    return {i for i, v in present if math.isclose(v, best, rel_tol=1e-9, abs_tol=1e-12)}


def run_labels(runs: Sequence[ProfileRun]) -> list[str]:
    """Row labels: the profile name, with the device added where names repeat (e.g. in comparisons)."""
    names = [run.profile for run in runs]
    labels = [
        f"{run.profile} ({run.environment.device})" if names.count(run.profile) > 1 else run.profile for run in runs
    ]
    # Same profile on the same device (e.g. two runs of one machine): number them.
    repeated = {label for label in labels if labels.count(label) > 1}
    counters = dict.fromkeys(repeated, 0)
    for i, label in enumerate(labels):
        if label in repeated:
            counters[label] += 1
            labels[i] = f"{label} #{counters[label]}"
    return labels


def summarize_run(run: ProfileRun, label: str) -> RunSummary:
    """The derived figures stored with a run in profile.json."""
    return RunSummary(
        label=label,
        stages=run.stage_summaries(),
        tick_total=summarize_stage(run.tick_totals_ms()),
        mean_power_w=run.mean_power_w(),
        power=run.power.describe(),
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def results_table(report: ProfileReport) -> list[str]:
    """The Markdown results table, best value per column in bold."""
    columns = table_columns(report.runs)
    cells: list[list[str]] = [[_cell(s.label)] for s in report.summaries]
    for column in columns:
        values = [column.value(run, s) for run, s in zip(report.runs, report.summaries)]
        best = best_indices(values, column.better)
        for i, (run, value) in enumerate(zip(report.runs, values)):
            text = column.missing(run) if value is None else f"{value:.{column.decimals}f}"
            cells[i].append(f"**{text}**" if i in best else text)
    header = ["profile"] + [c.header for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return lines


def render_markdown(report: ProfileReport, plots: Sequence[str]) -> str:
    """report.md for a ProfileReport whose plots are the given file names."""
    lines = [
        "# tinyvla-edge profile report",
        "",
        f"Written by tinyvla-edge {report.tool_version} at {report.created_utc}. "
        "Latencies in ms per measured tick (after warm-up); **bold** is the best value in its column.",
    ]
    if report.compared_from:
        lines += ["", "Compared from: " + ", ".join(f"`{p}`" for p in report.compared_from) + "."]
    lines += ["", "## Warnings", ""]
    warnings = [(s.label, w) for run, s in zip(report.runs, report.summaries) for w in run.warnings]
    if warnings:
        lines += [f"> **WARNING ({_cell(label)})**: {w.message}  " for label, w in warnings]
        if any(w.kind is not WarningKind.RANDOM_WEIGHTS for _, w in warnings):
            lines += ["", "These runs do not measure what the profile promises; fix the conditions and rerun."]
    else:
        lines.append("None: power mode, clocks, temperature and warm-up were as expected.")
    lines += ["", "## Results", ""] + results_table(report)
    lines += ["", "## Power", ""]
    lines += [f"- {_cell(s.label)}: {s.power}" for s in report.summaries]
    lines += [
        "",
        "Energy per inference and per action divide the energy of the whole measured window "
        "(trapezoidal integration of instantaneous power) by the inferences and actions in it.",
        "",
        "## Environment",
        "",
        "| profile | device | JetPack | power mode (profile) | clocks locked | python | torch | engines |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run, s in zip(report.runs, report.summaries):
        env = run.environment
        engines = ", ".join(f"{k} {v}" for k, v in sorted(env.engine_versions.items())) or "—"
        locked = "—" if env.clocks_locked is None else ("yes" if env.clocks_locked else "no")
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    s.label,
                    env.device,
                    env.jetpack or "—",
                    f"{env.power_mode or '—'} ({run.expected_power_mode or 'any'})",
                    locked,
                    env.python,
                    env.torch,
                    engines,
                )
            )
            + " |"
        )
    lines += ["", "## Plots", ""] + [f"![{Path(p).stem.replace('_', ' ')}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def write_profile_report(
    runs: Sequence[ProfileRun], output: Path, compared_from: Sequence[Path] = ()
) -> ReportFiles:
    """Write profile.json, report.md and the plots for `runs` into `output` (created if needed).

    The warning rules are applied to every run first, so the files carry them.
    """
    if not runs:
        raise EdgeError("no profile runs to report")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise EdgeError(f"report output {output} exists and is not a directory")
    output.mkdir(parents=True, exist_ok=True)
    checked = [with_warnings(run) for run in runs]
    labels = run_labels(checked)
    report = ProfileReport(
        schema_version=SCHEMA_VERSION,
        tool_version=__version__,
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        compared_from=[str(p) for p in compared_from],
        runs=checked,
        summaries=[summarize_run(run, label) for run, label in zip(checked, labels)],
    )
    json_path = output / PROFILE_JSON
    json_path.write_text(report.model_dump_json(indent=2) + "\n")
    plots = (
        plot_latency_cdf(checked, labels, output / LATENCY_CDF_PNG),
        plot_power_trace(checked, labels, output / POWER_TRACE_PNG),
        plot_energy_latency(checked, labels, output / ENERGY_LATENCY_PNG),
    )
    markdown_path = output / REPORT_MD
    markdown_path.write_text(render_markdown(report, [p.name for p in plots]))
    return ReportFiles(output, json_path, markdown_path, plots)


def load_profile_report(path: Path) -> ProfileReport:
    """Read a profile.json; EdgeError naming the file for anything unreadable or of another schema."""
    path = Path(path)
    if path.is_dir():
        path = path / PROFILE_JSON
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgeError(f"{path}: no such profile report") from None
    except json.JSONDecodeError as e:
        raise EdgeError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from e
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise EdgeError(f"{path}: schema_version {version} is not supported (this tinyvla-edge reads {SCHEMA_VERSION})")
    try:
        return ProfileReport.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise EdgeError(f"{path}: field '{field}': {first['msg']}") from e


def compare_reports(paths: list[Path], output: Path) -> ReportFiles:
    """One report across the runs of earlier profile.json files (e.g. a Jetson's and a workstation's)."""
    if not paths:
        raise EdgeError("compare needs at least one profile.json")
    runs = [run for path in paths for run in load_profile_report(path).runs]
    return write_profile_report(runs, output, compared_from=paths)
