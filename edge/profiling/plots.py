"""PNG plots of profile runs, drawn with matplotlib's Agg canvas.

Figures are built with the object API (`Figure` + `FigureCanvasAgg`), never pyplot, so no
global backend is switched and nothing needs a display.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edge.errors import require
from edge.profiling.model import ProfileRun

LATENCY_CDF_PNG = "latency_cdf.png"
POWER_TRACE_PNG = "power_trace.png"
ENERGY_LATENCY_PNG = "energy_latency.png"
_DPI = 100


def _figure(width: float, height: float):
    require("matplotlib", "profile")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_latency_cdf(runs: list[ProfileRun], labels: list[str], path: Path) -> Path:
    """One panel per stage (plus the whole tick): the latency CDF of every run."""
    series: dict[str, list[tuple[str, list[float]]]] = {}
    for run, label in zip(runs, labels):
        for stage, samples in run.stages_ms.items():
            series.setdefault(stage.value, []).append((label, samples))
        series.setdefault("tick total", []).append((label, run.tick_totals_ms()))
    # The tick total first: it is the figure people look for.
    names = ["tick total"] + [n for n in series if n != "tick total"]
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    figure = _figure(4.0 * cols, 3.0 * rows)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        for label, samples in series[name]:
            values = np.sort(np.asarray(samples, dtype=float))
            fraction = np.arange(1, len(values) + 1) / len(values)
            ax.step(values, fraction, where="post", label=label)
        ax.set_title(name)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction of ticks")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    figure.savefig(path)
    return path


def plot_power_trace(runs: list[ProfileRun], labels: list[str], path: Path) -> Path:
    """Total power over time for each run, inference intervals shaded; unavailable power said so."""
    figure = _figure(10.0, 2.8 * len(runs))
    axes = figure.subplots(len(runs), 1, squeeze=False).ravel()
    for ax, run, label in zip(axes, runs, labels):
        ax.set_title(label)
        if not run.power.available:
            ax.text(0.5, 0.5, run.power.describe(), ha="center", va="center", wrap=True, transform=ax.transAxes)
            ax.set_axis_off()
            continue
        t0 = run.inference_boundaries[0][0]
        times = [t - t0 for t, _ in run.power.trace]
        watts = [w for _, w in run.power.trace]
        # One collection for all intervals: runs have hundreds of ticks.
        ax.broken_barh(
            [(start - t0, end - start) for start, end in run.inference_boundaries],
            (0, 1),
            transform=ax.get_xaxis_transform(),
            color="tab:orange",
            alpha=0.2,
            label="inference",
        )
        ax.plot(times, watts, marker=".", color="tab:blue", label=f"total ({run.power.source})")
        ax.set_xlabel("time since first inference (s)")
        ax.set_ylabel("power (W)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="lower right")
    figure.savefig(path)
    return path


def plot_energy_latency(runs: list[ProfileRun], labels: list[str], path: Path) -> Path:
    """Bars per run: tick latency (p50 with a p99 whisker) and energy per inference."""
    figure = _figure(max(6.0, 1.6 * len(runs) + 4.0), 3.6)
    latency_ax, energy_ax = figure.subplots(1, 2)
    x = np.arange(len(runs))
    totals = [run.tick_totals_ms() for run in runs]
    p50 = np.array([np.percentile(t, 50) for t in totals])
    p99 = np.array([np.percentile(t, 99) for t in totals])
    latency_ax.bar(x, p50, color="tab:blue")
    # The whisker drawn by hand: matplotlib's yerr path warns on single-bar arrays.
    latency_ax.vlines(x, p50, p99, color="black")
    latency_ax.scatter(x, p99, marker="_", s=200, color="black")
    latency_ax.set_title("tick latency (p50, whisker to p99)")
    latency_ax.set_ylabel("ms")
    energy = [run.energy_per_inference_j for run in runs]
    measured = [i for i, e in enumerate(energy) if e is not None]
    energy_ax.bar(x[measured], [energy[i] for i in measured], color="tab:green")
    for i, e in enumerate(energy):
        if e is None:  # no bar, not a zero bar: the energy is unknown
            energy_ax.text(
                i, 0.03, "unavailable", transform=energy_ax.get_xaxis_transform(), ha="center", va="bottom", rotation=90
            )
    energy_ax.set_title("energy per inference")
    energy_ax.set_ylabel("J")
    for ax in (latency_ax, energy_ax):
        ax.set_xticks(x, labels, rotation=20, ha="right", fontsize="small")
        ax.set_xlim(-0.6, len(runs) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    figure.savefig(path)
    return path
