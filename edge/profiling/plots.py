"""PNG plots of profile runs, drawn with matplotlib's Agg canvas.

Figures are built with the object API (`Figure` + `FigureCanvasAgg`), never pyplot, so no
global backend is switched and nothing needs a display. Plots of power and energy are drawn
only for runs that have power data; the report says why the others have none.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edge.errors import require
from edge.profiling.model import ProfileRun, Stage

LATENCY_CDF_PNG = "latency_cdf.png"
TICK_SERIES_PNG = "tick_series.png"
POWER_TRACE_PNG = "power_trace.png"
ENERGY_PNG = "energy.png"
_DPI = 100
TICK_TOTAL = "tick total"
# Log axes cannot show 0 ms: stages faster than the timer's resolution are drawn at this floor.
_LOG_FLOOR_MS = 1e-3
_MAX_LABEL = 28  # longer run labels (device strings) are shortened in legends and tick labels


def _short(label: str) -> str:
    return label if len(label) <= _MAX_LABEL else label[: _MAX_LABEL - 1] + "…"


def _figure(width: float, height: float):
    require("matplotlib", "profile")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def control_period_ms(run: ProfileRun) -> float | None:
    """The profile's control period (ms), where the run recorded its control rate."""
    return 1000.0 / run.control_rate_hz if run.control_rate_hz else None


def _draw_control_periods(ax, runs: list[ProfileRun], horizontal: bool = False) -> None:
    """One dashed line per distinct control period: the budget a tick must fit in."""
    for period in sorted({p for p in map(control_period_ms, runs) if p is not None}):
        draw = ax.axhline if horizontal else ax.axvline
        draw(period, color="tab:red", linestyle="--", linewidth=1, label=f"control period {period:.1f} ms")


def _plain_log_labels(axis, low: float, high: float) -> None:
    """Log-axis ticks as plain numbers (2, 5, 10), not 2×10⁰: latencies are read, not computed.
    Within a factor of 3 a log axis is nearly linear: a few evenly spaced ticks read best."""
    from matplotlib.ticker import FuncFormatter, LogFormatter, MaxNLocator, NullFormatter

    class PlainLogFormatter(LogFormatter):
        # LogFormatter picks which ticks get a label; the label itself is the plain number.
        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    if high < 3 * low:
        axis.set_major_locator(MaxNLocator(4))
        axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        axis.set_minor_formatter(NullFormatter())
    else:
        axis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
        axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1.5, 0.6)))


def _cdf_panel(ax, name: str, series: list[tuple[str, list[float]]], extra: float | None = None) -> None:
    """The CDFs of one stage; `extra` (e.g. the control period) is kept inside the axis limits."""
    for index, (label, samples) in enumerate(series):
        values = np.maximum(np.sort(np.asarray(samples, dtype=float)), _LOG_FLOOR_MS)
        fraction = np.arange(1, len(values) + 1) / len(values)
        color = f"C{index}"
        # From 0 at the fastest tick, so the curve rises from the axis instead of starting at 1/n.
        ax.step(np.r_[values[0], values], np.r_[0.0, fraction], where="post", color=color, label=_short(label))
        p50, p99 = np.percentile(values, [50, 99])
        ax.plot([p50], [0.5], "o", color=color, markersize=6)
        ax.plot([p99], [0.99], "v", color=color, markersize=7)
    ax.set_xscale("log")
    values = [max(v, _LOG_FLOOR_MS) for _, samples in series for v in samples] + ([extra] if extra else [])
    _plain_log_labels(ax.xaxis, min(values), max(values))
    ax.set_title(name)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of ticks")
    ax.set_ylim(0, 1.04)
    ax.grid(alpha=0.3, which="both")


def plot_latency_cdf(runs: list[ProfileRun], labels: list[str], path: Path) -> Path:
    """One panel per stage (tick total first): every run's latency CDF on a log axis, p50 (●)
    and p99 (▼) marked, the control period dashed on the tick-total panel."""
    series: dict[str, list[tuple[str, list[float]]]] = {TICK_TOTAL: []}
    for run, label in zip(runs, labels):
        series[TICK_TOTAL].append((label, run.tick_totals_ms()))
        for stage, samples in run.stages_ms.items():
            series.setdefault(stage.value, []).append((label, samples))
    names = list(series)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    figure = _figure(4.2 * cols, 3.2 * rows)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    periods = [p for p in map(control_period_ms, runs) if p is not None]
    for ax, name in zip(axes, names):
        _cdf_panel(ax, name, series[name], max(periods) if name == TICK_TOTAL and periods else None)
    _draw_control_periods(axes[0], runs)
    axes[0].plot([], [], "o", color="gray", label="p50")
    axes[0].plot([], [], "v", color="gray", label="p99")
    handles, legend_labels = axes[0].get_legend_handles_labels()
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    if len(axes) > len(names):  # the legend in a free panel, where it hides no curve
        axes[len(names)].legend(handles, legend_labels, loc="center")
    else:
        figure.legend(handles, legend_labels, loc="outside lower center", ncols=min(4, len(handles)))
    figure.savefig(path)
    return path


def plot_tick_series(runs: list[ProfileRun], labels: list[str], path: Path) -> Path:
    """Per run: each measured inference's latency (capture → transfer), stacked by stage, against the
    control period.
    Shows what a CDF hides: trends (warm-up, heating) and when the spikes came."""
    figure = _figure(10.0, 2.6 * len(runs) + 0.6)
    axes = figure.subplots(len(runs), 1, squeeze=False).ravel()
    for ax, run, label in zip(axes, runs, labels):
        stages = run.inference_stages_ms()
        count = len(run.tick_totals_ms())
        names = [stage.value for stage in stages]
        colors = [f"C{list(Stage).index(stage)}" for stage in stages]  # a stage keeps its colour across runs
        ax.stackplot(np.arange(1, count + 1), *[np.asarray(v[:count], dtype=float) for v in stages.values()],
                     labels=names, colors=colors, alpha=0.85)
        _draw_control_periods(ax, [run], horizontal=True)
        ax.set_xlim(1, max(count, 2))
        _time_panel(ax, label, "measured inference", "latency (ms)")
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.savefig(path)
    return path


def _time_panel(ax, title: str, xlabel: str, ylabel: str) -> None:
    """Title, axis labels, a zero-based y axis and a light grid: the time-series panels' frame."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)


def _with_power(runs: list[ProfileRun], labels: list[str]) -> list[tuple[ProfileRun, str]]:
    """(run, label) of the runs that have power data; ValueError when none has."""
    measured = [(run, label) for run, label in zip(runs, labels) if run.power.available]
    if not measured:
        raise ValueError("no run has power data to plot")
    return measured


def plot_power_trace(runs: list[ProfileRun], labels: list[str], path: Path) -> Path:
    """Total power over time for each run with power data, inference intervals shaded."""
    measured = _with_power(runs, labels)
    figure = _figure(10.0, 2.6 * len(measured) + 0.4)
    axes = figure.subplots(len(measured), 1, squeeze=False).ravel()
    for ax, (run, label) in zip(axes, measured):
        t0 = run.inference_boundaries[0][0]
        # One collection for all intervals: runs have hundreds of ticks.
        ax.broken_barh(
            [(start - t0, end - start) for start, end in run.inference_boundaries],
            (0, 1),
            transform=ax.get_xaxis_transform(),
            color="tab:orange",
            alpha=0.2,
            label="inference",
        )
        ax.plot([t - t0 for t, _ in run.power.trace], [w for _, w in run.power.trace], marker=".",
                color="tab:blue", label=f"total ({run.power.source})")
        if run.power_budget_w is not None:
            ax.axhline(run.power_budget_w, color="tab:red", linestyle="--", linewidth=1,
                       label=f"budget {run.power_budget_w:.1f} W")
        _time_panel(ax, label, "time since first inference (s)", "power (W)")
        highest = max([w for _, w in run.power.trace] + [run.power_budget_w or 0.0])
        ax.set_ylim(0, 1.15 * highest)  # headroom: a flat trace must not sit on the frame
        ax.legend(fontsize="small", loc="lower right")
    figure.savefig(path)
    return path


def plot_energy(runs: list[ProfileRun], labels: list[str], path: Path) -> Path:
    """Bars per run with power data: mean power and energy per inference (and per action)."""
    measured = _with_power(runs, labels)
    figure = _figure(max(6.0, 1.4 * len(measured) + 4.0), 3.6)
    power_ax, energy_ax = figure.subplots(1, 2)
    x = np.arange(len(measured))
    power_ax.bar(x, [run.mean_power_w() for run, _ in measured], color="tab:blue")
    power_ax.set_title("mean power")
    power_ax.set_ylabel("W")
    width = 0.4
    per_inference = [run.energy_per_inference_j or 0.0 for run, _ in measured]
    energy_ax.bar(x - width / 2, per_inference, width, color="tab:green", label="per inference")
    per_action = [(i, run.energy_per_action_j) for i, (run, _) in enumerate(measured)
                  if run.energy_per_action_j is not None]
    if per_action:
        energy_ax.bar([i + width / 2 for i, _ in per_action], [e for _, e in per_action], width,
                      color="tab:olive", label="per action")
    energy_ax.set_title("energy")
    energy_ax.set_ylabel("J")
    energy_ax.legend(fontsize="small")
    for ax in (power_ax, energy_ax):
        ax.set_xticks(x, [_short(label) for _, label in measured], rotation=20, ha="right", fontsize="small")
        ax.set_xlim(-0.6, len(measured) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    figure.savefig(path)
    return path
