"""`tinyvla-edge export LOG --format mcap`: an episode log as one MCAP file (Foxglove, the mcap tools and readers).

Channels (JSON messages, each with a JSON schema):

    /tinyvla/ticks     every tick record as in ticks.jsonl        (log time: when it was due)
    /tinyvla/action    tick, action, target, hold, sent, ...      (log time: when it was due)
    /tinyvla/state     tick, state, state_time, arm_flags         (log time: when it was read)
    /tinyvla/chunks    every chunk record as in chunks.jsonl      (log time: when it was published)
    /tinyvla/events    start, stop, shutdown                       (log time: the event's time)
    /camera/NAME       foxglove.CompressedImage, PNG               (log time: the frame's capture)

meta.json and report.json become MCAP metadata records. Log times are the monotonic times of the
log placed on the wall clock with meta.json's `started_at`/`started_at_monotonic` (logs written
before those fields keep raw monotonic seconds). NaN and infinite values become null. LeRobotDataset export is not implemented.
"""

from __future__ import annotations

import base64
import json
import math
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from edge import __version__
from edge.errors import EdgeError, require

FORMATS = ("mcap",)
TOPIC_TICKS, TOPIC_ACTION, TOPIC_STATE = "/tinyvla/ticks", "/tinyvla/action", "/tinyvla/state"
TOPIC_CHUNKS, TOPIC_EVENTS, CAMERA_TOPIC = "/tinyvla/chunks", "/tinyvla/events", "/camera/{}"
ACTION_FIELDS = ("tick", "action", "target", "hold", "sent", "accepted", "limit_clamped", "step_clamped")
STATE_FIELDS = ("tick", "state", "state_time", "arm_flags")

_NUMBERS = {"type": "array", "items": {"type": "number"}}
_OPTIONAL_NUMBERS = {"type": ["array", "null"], "items": {"type": "number"}}
_STRINGS = {"type": "array", "items": {"type": "string"}}
SCHEMAS: dict[str, dict] = {
    "tinyvla_edge.Tick": {"type": "object", "properties": {
        "tick": {"type": "integer"}, "due": {"type": "number"}, "start_error_ms": {"type": "number"},
        "obs_time": {"type": ["number", "null"]}, "chunks": {"type": "array", "items": {"type": "integer"}},
        "action": _OPTIONAL_NUMBERS, "target": _NUMBERS, "sent": {"type": "boolean"},
        "accepted": {"type": "boolean"}, "hold": {"type": ["string", "null"]}, "limit_clamped": _STRINGS,
        "step_clamped": _STRINGS, "state": _NUMBERS, "state_time": {"type": "number"},
        "arm_flags": {"type": "object"}, "stages_ms": {"type": "object"}}},
    "tinyvla_edge.Action": {"type": "object", "properties": {
        "tick": {"type": "integer"}, "action": _OPTIONAL_NUMBERS, "target": _NUMBERS,
        "hold": {"type": ["string", "null"]}, "sent": {"type": "boolean"}, "accepted": {"type": "boolean"},
        "limit_clamped": _STRINGS, "step_clamped": _STRINGS}},
    "tinyvla_edge.ArmState": {"type": "object", "properties": {
        "tick": {"type": "integer"}, "state": _NUMBERS, "state_time": {"type": "number"},
        "arm_flags": {"type": "object"}}},
    "tinyvla_edge.Chunk": {"type": "object", "properties": {
        "chunk": {"type": "integer"}, "obs_time": {"type": "number"}, "published_at": {"type": "number"},
        "frames": {"type": "object"}, "state": _NUMBERS, "timings_ms": {"type": "object"},
        "normalized": {"type": "array", "items": _NUMBERS}}},
    "tinyvla_edge.Event": {"type": "object", "properties": {
        "event": {"type": "string"}, "time": {"type": "number"}}},
    # Foxglove's well-known schema, JSON-encoded (bytes as base64), so Foxglove shows the frames.
    "foxglove.CompressedImage": {"type": "object", "properties": {
        "timestamp": {"type": "object", "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}}},
        "frame_id": {"type": "string"}, "data": {"type": "string", "contentEncoding": "base64"},
        "format": {"type": "string"}}},
}
TOPIC_SCHEMAS = {TOPIC_TICKS: "tinyvla_edge.Tick", TOPIC_ACTION: "tinyvla_edge.Action",
                 TOPIC_STATE: "tinyvla_edge.ArmState", TOPIC_CHUNKS: "tinyvla_edge.Chunk",
                 TOPIC_EVENTS: "tinyvla_edge.Event"}


@dataclass(frozen=True)
class _Message:
    topic: str
    time_s: float  # monotonic, as in the log
    payload: Callable[[], dict]  # built when written: images are read one at a time


class LogClock:
    """Monotonic log times → MCAP nanoseconds on the wall clock (when the log says how)."""

    def __init__(self, meta: dict):
        self.offset_s = 0.0
        if "started_at" in meta and "started_at_monotonic" in meta:
            wall = datetime.fromisoformat(str(meta["started_at"]).replace("Z", "+00:00")).timestamp()
            self.offset_s = wall - float(meta["started_at_monotonic"])

    def nanoseconds(self, monotonic_s: float) -> int:
        return max(0, round((monotonic_s + self.offset_s) * 1e9))


def export_log(log: Path, output: Path | None = None, fmt: str = "mcap") -> dict:
    """Write the episode log at `log` as `fmt` into `output` (default: LOG.mcap beside LOG)."""
    log = Path(log)
    if fmt not in FORMATS:
        raise EdgeError(f"unknown export format {fmt!r} (supported: {', '.join(FORMATS)}; "
                        "LeRobotDataset export is not implemented yet)")
    if not (log / "meta.json").is_file():
        raise EdgeError(f"{log}: not an episode log (no meta.json); write one with run --log DIR")
    output = Path(output) if output else log.parent / f"{log.name}.mcap"
    meta = json.loads((log / "meta.json").read_text())
    records = {name: _read_jsonl(log / name) for name in ("ticks.jsonl", "chunks.jsonl", "events.jsonl")}
    messages = sorted(_messages(log, records), key=lambda m: m.time_s)
    counts = _write_mcap(output, messages, LogClock(meta), _metadata(log, meta))
    return {"format": fmt, "log": str(log), "output": str(output), "bytes": output.stat().st_size,
            "messages": counts, "skipped_lines": sum(skipped for _, skipped in records.values())}


def render_export(result: dict) -> str:
    """One line per channel, then where the file is."""
    lines = [f"{topic}: {count} messages" for topic, count in sorted(result["messages"].items())]
    if result["skipped_lines"]:
        lines.append(f"skipped {result['skipped_lines']} unreadable log lines (a run cut off mid-write)")
    lines.append(f"wrote {result['output']} ({result['bytes']} bytes, {result['format']})")
    return "\n".join(lines)


def _read_jsonl(path: Path) -> tuple[list[dict], int]:
    """The records of one .jsonl file and how many lines could not be read (a crash may cut the
    last line short; an unreadable line is skipped and counted, never guessed at)."""
    if not path.is_file():
        return [], 0
    records, skipped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            skipped += 1
    return records, skipped


def _messages(log: Path, records: dict) -> Iterator[_Message]:
    ticks, chunks, events = (records[name][0] for name in ("ticks.jsonl", "chunks.jsonl", "events.jsonl"))
    for tick in ticks:
        yield _Message(TOPIC_TICKS, tick["due"], lambda tick=tick: tick)
        yield _Message(TOPIC_ACTION, tick["due"], lambda tick=tick: _subset(tick, ACTION_FIELDS))
        yield _Message(TOPIC_STATE, tick.get("state_time", tick["due"]), lambda tick=tick: _subset(tick, STATE_FIELDS))
    for chunk in chunks:
        yield _Message(TOPIC_CHUNKS, chunk["published_at"], lambda chunk=chunk: chunk)
    for event in events:
        yield _Message(TOPIC_EVENTS, event.get("time", 0.0), lambda event=event: event)
    capture_times = {chunk["chunk"]: chunk["obs_time"] for chunk in chunks}
    for camera_dir in sorted(p for p in (log / "frames").glob("*") if p.is_dir()):
        for png in sorted(camera_dir.glob("*.png")):
            chunk_id = int(png.stem) if png.stem.isdigit() else None
            if chunk_id in capture_times:
                yield _Message(CAMERA_TOPIC.format(camera_dir.name), capture_times[chunk_id],
                               lambda png=png, camera=camera_dir.name: _image(png, camera))


def _subset(record: dict, fields: tuple[str, ...]) -> dict:
    return {k: record[k] for k in fields if k in record}


def _image(png: Path, camera: str) -> dict:
    return {"frame_id": camera, "format": "png", "data": base64.b64encode(png.read_bytes()).decode("ascii")}


def _finite(value):
    """NaN and infinities (a `non_finite` hold logs the bad action) become null: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _metadata(log: Path, meta: dict) -> dict[str, dict[str, str]]:
    """meta.json (and report.json) as MCAP metadata: string values, nested ones as JSON."""
    found = {"tinyvla_edge.meta": meta}
    if (log / "report.json").is_file():
        found["tinyvla_edge.report"] = json.loads((log / "report.json").read_text())
    return {name: {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()} for name, data in found.items()}


def _write_mcap(output: Path, messages: list[_Message], clock: LogClock, metadata: dict) -> dict[str, int]:
    writer_module = require("mcap.writer", "export")
    partial = output.with_name(f".{output.name}.partial")  # a failed export leaves no half file behind
    counts: dict[str, int] = {}
    try:
        with open(partial, "wb") as stream:
            writer = writer_module.Writer(stream)
            writer.start(profile="", library=f"tinyvla-edge {__version__}")
            channels = _channels(writer, {m.topic for m in messages})
            for message in messages:
                log_time = clock.nanoseconds(message.time_s)
                payload = message.payload()
                if message.topic.startswith("/camera/"):
                    payload["timestamp"] = {"sec": log_time // 10**9, "nsec": log_time % 10**9}
                writer.add_message(channels[message.topic], log_time=log_time, publish_time=log_time,
                                   data=json.dumps(_finite(payload)).encode(), sequence=counts.get(message.topic, 0))
                counts[message.topic] = counts.get(message.topic, 0) + 1
            for name, data in metadata.items():
                writer.add_metadata(name, data)
            writer.finish()
        os.replace(partial, output)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise EdgeError(f"cannot write {output}: {e.strerror or e}") from e
    return counts


def _channels(writer, topics: set[str]) -> dict[str, int]:
    schema_ids: dict[str, int] = {}
    channels = {}
    for topic in sorted(topics):
        schema = TOPIC_SCHEMAS.get(topic, "foxglove.CompressedImage")
        if schema not in schema_ids:
            schema_ids[schema] = writer.register_schema(schema, "jsonschema", json.dumps(SCHEMAS[schema]).encode())
        channels[topic] = writer.register_channel(topic, "json", schema_ids[schema])
    return channels
