"""Telemetry: per-tick stage times and start error, per-inference stage times, and the cadence
report at the end (achieved vs target rate, misses, p50/p95/p99/max per stage, holds, clamps,
stale drops), as a dict for `--json` and as a table for people.

Recording is append-only into float arrays (no per-tick allocation beyond the append), so it
costs the tick microseconds.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, fields

import numpy as np

PERCENTILES = (50, 95, 99)
# Stages of one inference, in pipeline order; the predictor reports all but capture and latency.
# `transfer`: with the model in its own process, the round trip's time outside the model's stages.
INFERENCE_STAGES = ("capture", "preprocess", "vision", "language", "head", "postprocess", "transfer", "latency")


@dataclass(frozen=True)
class TickTimes:
    """Milliseconds spent in each part of one control tick (all runtime work, no model compute)."""

    start_error: float  # how late the tick started after its slot
    chunks: float  # drain the worker's outbox, admit chunks, blend the actions for now
    convert: float  # de-normalize the blended action and convert it to robot units
    safety: float
    serial: float  # send the target (or heartbeat) and read the state, over the serial link
    log: float  # hand the tick's record to the episode log
    work: float  # the whole tick, from its start to the end of logging

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def summarize(values) -> dict[str, float]:
    """p50/p95/p99/max (and count) of a series; zeros for an empty one."""
    data = np.asarray(values, np.float64)
    if data.size == 0:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    p50, p95, p99 = np.percentile(data, PERCENTILES)
    return {"n": int(data.size), "p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(data.max())}


@dataclass
class LinkCounters:
    """What happened on the serial link."""

    sent: int = 0
    accepted: int = 0
    retried: int = 0  # target frames resent (timeouts, corrupted bytes, NAK BAD_CRC)
    timeouts: int = 0
    late: int = 0  # policy targets the arm confirmed after the time they were for (tick due + exec latency)
    naks: dict[str, int] | None = None

    def nak(self, reason: str) -> None:
        self.naks = self.naks or {}
        self.naks[reason] = self.naks.get(reason, 0) + 1

    def as_dict(self) -> dict:
        return {"sent": self.sent, "accepted": self.accepted, "retried": self.retried,
                "timeouts": self.timeouts, "late": self.late, "naks": dict(self.naks or {})}


@dataclass
class ChunkCounters:
    """What happened to the chunks the worker published."""

    published: int = 0
    admitted: int = 0
    stale_actions: int = 0  # actions due before now + exec latency when their chunk arrived (dropped)
    stale_chunks: int = 0  # chunks with every action already past
    rejected_non_finite: int = 0

    def as_dict(self) -> dict:
        return {"published": self.published, "admitted": self.admitted, "stale_actions_dropped": self.stale_actions,
                "stale_chunks_dropped": self.stale_chunks, "rejected_non_finite": self.rejected_non_finite}


class Telemetry:
    """Accumulates tick and inference timings for one run."""

    def __init__(self, target_rate_hz: float):
        self.target_rate_hz = target_rate_hz
        self._ticks = {name: array("d") for name in TickTimes.names()}
        self._starts = array("d")  # monotonic start time of every tick
        self._inference = {name: array("d") for name in INFERENCE_STAGES}
        self._inference_spans = array("d")  # (observation time, published time) of every chunk, flattened
        self.link = LinkCounters()
        self.chunks = ChunkCounters()

    @property
    def ticks(self) -> int:
        return len(self._ticks["work"])

    def record_tick(self, started_at: float, times: TickTimes) -> None:
        self._starts.append(started_at)
        for name in self._ticks:
            self._ticks[name].append(getattr(times, name))

    def record_inference(self, timings_ms: dict[str, float], obs_time: float, published_at: float) -> None:
        """One published chunk: its stage times and its observation → publication span (monotonic s)."""
        self._inference_spans.extend((obs_time, published_at))
        latency_ms = (published_at - obs_time) * 1e3
        for name in INFERENCE_STAGES:
            value = latency_ms if name == "latency" else timings_ms.get(name)
            if value is not None:
                self._inference[name].append(value)

    def tick_series(self, name: str) -> np.ndarray:
        """One tick stage over the run, in milliseconds (for benchmarks and tests)."""
        return np.asarray(self._ticks[name])

    def inference_series(self, name: str) -> np.ndarray:
        """One inference stage over the run, in milliseconds, one value per chunk that reported it."""
        return np.asarray(self._inference[name])

    def inference_spans(self) -> list[tuple[float, float]]:
        """(observation time, published time) of every chunk, monotonic seconds, in arrival order."""
        spans = self._inference_spans
        return [(spans[i], spans[i + 1]) for i in range(0, len(spans), 2)]

    def report(self, missed: int, extra: dict | None = None) -> dict:
        """The cadence report: rate, misses, per-stage percentiles, link and chunk counters.

        The achieved rate is measured from tick start times: (ticks - 1) / (last start - first start).
        """
        ticks = self.ticks
        slots = ticks + missed
        span = self._starts[-1] - self._starts[0] if ticks > 1 else 0.0
        achieved = (ticks - 1) / span if span > 0 else 0.0
        elapsed_s = span + 1.0 / self.target_rate_hz if ticks else 0.0
        inference = {name: summarize(values) for name, values in self._inference.items() if len(values)}
        backbone = [v + l for v, l in zip(self._inference["vision"], self._inference["language"])]
        if backbone:
            inference["backbone"] = summarize(backbone)
        report = {
            "target_rate_hz": self.target_rate_hz,
            "achieved_rate_hz": achieved,
            "rate_error": (achieved - self.target_rate_hz) / self.target_rate_hz if ticks > 1 else -1.0,
            "ticks": ticks,
            "missed": missed,
            "miss_ratio": missed / slots if slots else 0.0,
            "elapsed_s": elapsed_s,
            "tick_ms": {name: summarize(values) for name, values in self._ticks.items()},
            "inferences": len(self._inference["latency"]),
            "policy_rate_hz": len(self._inference["latency"]) / elapsed_s if elapsed_s > 0 else 0.0,
            "inference_ms": inference,
            "link": self.link.as_dict(),
            "chunks": self.chunks.as_dict(),
        }
        report.update(extra or {})
        return report


def render_report(report: dict) -> str:
    """The cadence report as a table."""
    lines = [
        f"cadence: target {report['target_rate_hz']:.1f} Hz, achieved {report['achieved_rate_hz']:.2f} Hz "
        f"({100 * report['rate_error']:+.1f}%), {report['ticks']} ticks, {report['missed']} missed "
        f"({100 * report['miss_ratio']:.1f}%), {report['inferences']} inferences "
        f"({report['policy_rate_hz']:.1f} Hz)",
        f"{'stage (ms)':<22}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}",
    ]

    def row(label: str, s: dict) -> None:
        lines.append(f"{label:<22}{s['p50']:>9.3f}{s['p95']:>9.3f}{s['p99']:>9.3f}{s['max']:>9.3f}")

    for name, s in report["tick_ms"].items():
        row(f"tick {name.replace('_', ' ')}", s)
    for name, s in report["inference_ms"].items():
        row(f"inference {name}", s)
    safety = report.get("safety", {})
    chunks, link = report["chunks"], report["link"]
    if safety:
        by_reason = ", ".join(f"{k} {v}" for k, v in safety["holds_by_reason"].items() if v)
        lines.append(
            f"holds {safety['holds']}" + (f" ({by_reason})" if by_reason else "")
            + f"; clamps: limit {safety['limit_clamps']}, step {safety['step_clamps']}"
        )
    lines.append(
        f"chunks: {chunks['published']} published, {chunks['stale_actions_dropped']} stale actions dropped, "
        f"{chunks['stale_chunks_dropped']} stale chunks, {chunks['rejected_non_finite']} rejected (NaN/Inf)"
        + (f"; execution latency {report['exec_latency_ms']:.1f} ms" if "exec_latency_ms" in report else "")
    )
    naks = ", ".join(f"{k} {v}" for k, v in link["naks"].items()) or "none"
    lines.append(f"serial: {link['accepted']}/{link['sent']} accepted, {link['retried']} retried, "
                 f"{link['timeouts']} timeouts, {link['late']} confirmed late, NAKs {naks}")
    stop = report.get("stop")
    if stop:
        lines.append(f"stop: {stop['reason']}" + (f" ({stop['message']})" if stop["message"] else ""))
    shutdown = report.get("shutdown")
    if shutdown:
        lines.append(f"shutdown: {shutdown['action']}, arm safe: {'yes' if shutdown['arm_safe'] else 'NO'}"
                     + (f" ({shutdown['detail']})" if shutdown.get("detail") else ""))
    return "\n".join(lines)
