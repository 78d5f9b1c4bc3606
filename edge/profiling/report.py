"""Write a profile report: profile.json, report.md and PNG plots; compare earlier reports.

report.md is written to be read in a terminal or on GitHub: every line fits 100 columns. Each
profile gets a headline (policy rate, control rate, tick p99, J/action) and a table with one
row per stage; several profiles are also compared in a summary table, one column per profile
(split into several tables when the columns would not fit), the best value of each row in bold.
See docs/profile-report.md.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from pydantic import ValidationError

from edge import __version__
from edge.errors import EdgeError, first_invalid_field
from edge.profiling.checks import with_warnings
from edge.profiling.model import SCHEMA_VERSION, ProfileReport, ProfileRun, RunSummary, WarningKind
from edge.profiling.plots import (
    ENERGY_PNG,
    LATENCY_CDF_PNG,
    POWER_TRACE_PNG,
    TICK_SERIES_PNG,
    control_period_ms,
    plot_energy,
    plot_latency_cdf,
    plot_power_trace,
    plot_tick_series,
)
from edge.profiling.stats import StageSummary, summarize_stage

PROFILE_JSON = "profile.json"
REPORT_MD = "report.md"


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written."""

    directory: Path
    json: Path
    markdown: Path
    plots: tuple[Path, ...]


MAX_WIDTH = 100  # report.md fits a terminal and GitHub's rendering of raw files
_MAX_HEADER = 32  # profile labels longer than this are shortened in table headers only


class Better(Enum):
    """Which end of a row wins."""

    LOWER = "lower"
    HIGHER = "higher"


@dataclass(frozen=True)
class Figure:
    """One row of the summary table: a figure every run may have."""

    name: str
    value: Callable[[ProfileRun, RunSummary], float | None]
    better: Better | None
    decimals: int
    missing: Callable[[ProfileRun], str] = lambda run: "n/a"


def _power_missing(run: ProfileRun) -> str:
    return "unavailable" if not run.power.available else "n/a"


def _stage_p50(stage) -> Figure:
    def value(run: ProfileRun, summary: RunSummary) -> float | None:
        found = summary.stages.get(stage)
        return found.p50 if found is not None else None

    return Figure(f"{stage.value} p50 (ms)", value, Better.LOWER, 2, lambda run: "—")


def summary_figures(runs: Sequence[ProfileRun], summaries: Sequence[RunSummary]) -> list[Figure]:
    """The summary table's rows: rates, tick percentiles, each stage's p50, power and memory."""
    present = [stage for summary in summaries for stage in summary.stages]
    stages = list(dict.fromkeys(present))
    return [
        Figure("policy rate (inferences/s)", lambda run, s: run.throughput.inferences_per_s, Better.HIGHER, 1),
        Figure("control rate (Hz)", lambda run, s: run.throughput.control_hz, Better.HIGHER, 1),
        Figure("tick p50 (ms)", lambda run, s: s.tick_total.p50, Better.LOWER, 2),
        Figure("tick p99 (ms)", lambda run, s: s.tick_total.p99, Better.LOWER, 2),
        *[_stage_p50(stage) for stage in stages],
        Figure("mean power (W)", lambda run, s: s.mean_power_w, Better.LOWER, 2, _power_missing),
        Figure("J/inference", lambda run, s: run.energy_per_inference_j, Better.LOWER, 3, _power_missing),
        Figure("J/action", lambda run, s: run.energy_per_action_j, Better.LOWER, 4, _power_missing),
        Figure("RSS peak (MiB)", lambda run, s: run.memory.rss_peak_mb, Better.LOWER, 0),
        Figure("CUDA peak (MiB)", lambda run, s: run.memory.cuda_peak_mb, Better.LOWER, 0),
        Figure("measured ticks", lambda run, s: run.ticks, None, 0),
    ]


def best_indices(values: Sequence[float | None], better: Better | None) -> set[int]:
    """Columns holding the best value of a row (ties all win); none unless two have values."""
    present = [(i, v) for i, v in enumerate(values) if v is not None]
    if better is None or len(present) < 2:
        return set()
    pick = min if better is Better.LOWER else max
    best = pick(v for _, v in present)
    return {i for i, v in present if math.isclose(v, best, rel_tol=1e-9, abs_tol=1e-12)}


def run_labels(runs: Sequence[ProfileRun]) -> list[str]:
    """Run labels: the profile name, with the device added where names repeat (e.g. in comparisons)."""
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


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _wrap(text: str, first: str = "", rest: str = "") -> list[str]:
    """`text` wrapped to MAX_WIDTH, `first` before the first line and `rest` before the others."""
    return textwrap.wrap(text, MAX_WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_long_words=True, break_on_hyphens=False) or [first.rstrip()]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> list[str]:
    """A Markdown table padded into aligned columns (readable as plain text too); columns from
    `right_from` on are right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    widths = [max(w, 3) for w in widths]

    def line(cells: Sequence[str]) -> str:
        padded = [c.rjust(w) if i >= right_from else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i >= right_from else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return [line(header), rule, *[line(row) for row in rows]]


def _summary_cells(report: ProfileReport) -> tuple[list[str], list[list[str]]]:
    """Row names and, per row, one cell per run (best in bold)."""
    names, cells = [], []
    for figure in summary_figures(report.runs, report.summaries):
        values = [figure.value(run, s) for run, s in zip(report.runs, report.summaries)]
        # Compared as printed: two cells that read the same are both best or neither.
        best = best_indices([None if v is None else round(v, figure.decimals) for v in values], figure.better)
        row = []
        for i, (run, value) in enumerate(zip(report.runs, values)):
            text = figure.missing(run) if value is None else f"{value:.{figure.decimals}f}"
            row.append(f"**{text}**" if i in best else text)
        names.append(figure.name)
        cells.append(row)
    return names, cells


def summary_tables(report: ProfileReport) -> list[str]:
    """Figures as rows, profiles as columns; as many tables as it takes to fit MAX_WIDTH."""
    names, cells = _summary_cells(report)
    headers = [_cell(_shorten(s.label, _MAX_HEADER)) for s in report.summaries]
    name_width = max(len(n) for n in names)
    groups: list[list[int]] = [[]]
    width = name_width + 4
    for i, header in enumerate(headers):
        column = max(len(header), *(len(row[i]) for row in cells), 4) + 3
        if groups[-1] and width + column > MAX_WIDTH:
            groups.append([])
            width = name_width + 4
        groups[-1].append(i)
        width += column
    lines: list[str] = []
    for group in groups:
        if lines:
            lines.append("")
        rows = [[name] + [row[i] for i in group] for name, row in zip(names, cells)]
        lines += markdown_table(["figure"] + [headers[i] for i in group], rows)
    return lines


def _ms(value: float) -> str:
    return f"{value:.2f}"


def stage_table(summary: RunSummary) -> list[str]:
    """One row per stage (then the tick total), p50/p90/p99/max/mean in ms."""
    def row(name: str, s: StageSummary) -> list[str]:
        return [name, _ms(s.p50), _ms(s.p90), _ms(s.p99), _ms(s.max), _ms(s.mean)]

    rows = [row(stage.value, s) for stage, s in summary.stages.items()]
    rows.append(row("tick total", summary.tick_total))
    return markdown_table(["stage (ms)", "p50", "p90", "p99", "max", "mean"], rows)


def headline(run: ProfileRun, summary: RunSummary) -> str:
    """Policy rate, control rate, tick p99 (against the control period) and energy per action."""
    control = f"{run.throughput.control_hz:.1f} Hz" if run.throughput.control_hz is not None else "n/a (no arm)"
    p99 = f"tick p99 {summary.tick_total.p99:.2f} ms"
    period = control_period_ms(run)
    if period is not None:
        share = summary.tick_total.p99 / period
        p99 += f" ({100 * share:.0f}% of" if share <= 1 else f" ({share:.1f}x"
        p99 += f" the {period:.1f} ms period)"
    if run.energy_per_action_j is not None:
        energy = f"{run.energy_per_action_j:.4f} J/action"
    elif not run.power.available:
        energy = "J/action unavailable (no power data)"
    else:
        energy = "J/action n/a (no actions sent)"
    return f"policy {run.throughput.inferences_per_s:.1f} inferences/s · control {control} · {p99} · {energy}"


def _environment_lines(run: ProfileRun) -> list[str]:
    env = run.environment
    locked = "unknown" if env.clocks_locked is None else ("yes" if env.clocks_locked else "no")
    engines = "".join(f", {k} {v}" for k, v in sorted(env.engine_versions.items()) if k != "torch")
    facts = [
        f"device: {env.device}" + (f", JetPack {env.jetpack}" if env.jetpack else ""),
        f"power mode: {env.power_mode or 'unknown'} (profile: {run.expected_power_mode or 'any'}); "
        f"clocks locked: {locked}",
        f"software: python {env.python}, torch {env.torch}{engines}",
        f"memory: RSS peak {run.memory.rss_peak_mb:.0f} MiB"
        + (f", CUDA peak {run.memory.cuda_peak_mb:.0f} MiB" if run.memory.cuda_peak_mb is not None else ""),
    ]
    if env.load_average is not None:
        facts.append(f"load average before the run: {' '.join(f'{v:.2f}' for v in env.load_average)}"
                     + (f" on {env.cpu_count} CPUs" if env.cpu_count else ""))
    return facts


def profile_section(run: ProfileRun, summary: RunSummary) -> list[str]:
    """A profile's headline, stage table, power and environment."""
    lines = ["## " + _shorten(summary.label, MAX_WIDTH - 3), ""]
    lines += _wrap(f"**{headline(run, summary)}**")
    mode = getattr(run, "mode", None)  # deployed or model-only, where the measurement records it
    if mode is not None:
        lines += ["", f"Mode: {getattr(mode, 'value', mode)}."]
    lines += [""] + stage_table(summary) + [""]
    facts = [summary.power] + _environment_lines(run)
    if run.power_budget_w is not None:
        facts.insert(1, f"power budget (profile): {run.power_budget_w:.1f} W")
    for fact in facts:
        lines += _wrap(_cell(fact), "- ", "  ")
    return lines


def _warning_lines(report: ProfileReport) -> list[str]:
    warnings = [(s.label, w) for run, s in zip(report.runs, report.summaries) for w in run.warnings]
    if not warnings:
        return ["None: power mode, clocks, temperature, CPU load, warm-up and power budget were as expected."]
    lines: list[str] = []
    for label, w in warnings:
        lines += _wrap(f"**WARNING ({_cell(label)})**: {w.message}", "> ", "> ") + [""]
    if any(w.kind is not WarningKind.RANDOM_WEIGHTS for _, w in warnings):
        lines += _wrap("These runs do not measure what the profile promises; fix the conditions and rerun.")
    return lines[:-1] if lines[-1] == "" else lines


def missing_power_note(report: ProfileReport) -> str | None:
    """Which runs the power and energy plots leave out, and why (None when none is left out)."""
    missing = [(s.label, run.power.unavailable_reason) for run, s in zip(report.runs, report.summaries)
               if not run.power.available]
    if not missing:
        return None
    reasons = "; ".join(f"{label}: {reason}" for label, reason in missing)
    if len(missing) == len(report.runs):
        return f"No power or energy plots: no run has power data ({reasons})."
    return f"The power and energy plots leave out the runs without power data ({reasons})."


def render_markdown(report: ProfileReport, plots: Sequence[str]) -> str:
    """report.md for a ProfileReport whose plots are the given file names."""
    lines = ["# tinyvla-edge profile report", ""]
    lines += _wrap(f"Written by tinyvla-edge {report.tool_version} at {report.created_utc}. Latencies are "
                   "in ms per measured tick (after warm-up); a tick runs every stage once.")
    if report.compared_from:
        lines += [""] + _wrap("Compared from: " + ", ".join(f"`{p}`" for p in report.compared_from) + ".")
    lines += ["", "## Warnings", ""] + _warning_lines(report)
    if len(report.runs) > 1:
        lines += ["", "## Summary", ""]
        lines += _wrap("One column per profile; **bold** is the best value in its row.") + [""]
        lines += summary_tables(report)
    for run, summary in zip(report.runs, report.summaries):
        lines += [""] + profile_section(run, summary)
    lines += ["", "## Plots", ""]
    lines += _wrap("Latency CDFs use a log axis: ● marks p50, ▼ p99, the dashed line the control period.")
    for plot in plots:
        lines += ["", f"![{Path(plot).stem.replace('_', ' ')}]({plot})"]
    note = missing_power_note(report)
    if note:
        lines += [""] + _wrap(_cell(note))
    lines += ["", "## Definitions", ""]
    lines += _wrap("Energy per inference and per action divide the energy of the whole measured window "
                   "(trapezoidal integration of instantaneous power) by the inferences and actions in it.")
    return "\n".join(lines) + "\n"


def _plots(runs: list[ProfileRun], labels: list[str], output: Path) -> tuple[Path, ...]:
    """The plots for `runs`: latency always, power and energy only where some run has power data."""
    plots = [plot_latency_cdf(runs, labels, output / LATENCY_CDF_PNG),
             plot_tick_series(runs, labels, output / TICK_SERIES_PNG)]
    stale = [output / POWER_TRACE_PNG, output / ENERGY_PNG]
    if any(run.power.available for run in runs):
        plots += [plot_power_trace(runs, labels, stale[0]), plot_energy(runs, labels, stale[1])]
    else:  # a rerun into the same directory must not leave an earlier run's power plots behind
        for path in stale:
            path.unlink(missing_ok=True)
    return tuple(plots)


def build_report(runs: Sequence[ProfileRun], compared_from: Sequence[Path] = ()) -> ProfileReport:
    """The report of `runs`: the warning rules applied to each, labels and summaries derived."""
    if not runs:
        raise EdgeError("no profile runs to report")
    checked = [with_warnings(run) for run in runs]
    labels = run_labels(checked)
    return ProfileReport(
        schema_version=SCHEMA_VERSION,
        tool_version=__version__,
        created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        compared_from=[str(p) for p in compared_from],
        runs=checked,
        summaries=[summarize_run(run, label) for run, label in zip(checked, labels)],
    )


def write_profile_report(
    runs: Sequence[ProfileRun], output: Path, compared_from: Sequence[Path] = ()
) -> ReportFiles:
    """Write profile.json, report.md and the plots for `runs` into `output` (created if needed).

    The warning rules are applied to every run first, so the files carry them.
    """
    report = build_report(runs, compared_from)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise EdgeError(f"report output {output} exists and is not a directory")
    output.mkdir(parents=True, exist_ok=True)
    json_path = output / PROFILE_JSON
    json_path.write_text(report.model_dump_json(indent=2) + "\n")
    plots = _plots(report.runs, [s.label for s in report.summaries], output)
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
        raise EdgeError(f"{path}: {first_invalid_field(e)}") from e


def compare_reports(paths: list[Path], output: Path) -> ReportFiles:
    """One report across the runs of earlier profile.json files (e.g. a Jetson's and a workstation's)."""
    if not paths:
        raise EdgeError("compare needs at least one profile.json")
    runs = [run for path in paths for run in load_profile_report(path).runs]
    return write_profile_report(runs, output, compared_from=paths)
