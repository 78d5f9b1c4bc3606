"""Episode logs others can open: meta.json says when, with what and which bundle; `export
--format mcap` writes a file the `mcap` reader reads back with every record of the log."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from PIL import Image

from edge import __version__
from edge.cli import main
from edge.runtime.episode_log import EpisodeLog
from edge.runtime.export import export_log
from edge.runtime.run import SIM_ARM, RunRequest, run_policy


@pytest.fixture(scope="module")
def logged_run(tiny_output, tmp_path_factory):
    """One real `run` (tiny policy, synthetic cameras, the emulator on a pty) with its log."""
    log = tmp_path_factory.mktemp("run") / "episode"
    cameras = ("synthetic:64x48@30", "synthetic:64x48@30")
    request = RunRequest(bundle=tiny_output, cameras=cameras, arm=SIM_ARM, instruction="pick up the red cube",
                         profile="cpu-dev", rate_hz=20, max_ticks=30, log_dir=log, warmup=1, inference_process=False)
    return log, run_policy(request)


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _read_back(path) -> tuple[dict[str, list], dict[str, dict]]:
    """Messages per topic as (log_time, decoded JSON, schema name) and the metadata records."""
    topics: dict[str, list] = {}
    with open(path, "rb") as stream:
        reader = make_reader(stream)
        for schema, channel, message in reader.iter_messages():
            assert channel.message_encoding == "json" and schema.encoding == "jsonschema"
            topics.setdefault(channel.topic, []).append((message.log_time, json.loads(message.data), schema.name))
        stream.seek(0)
        metadata = {m.name: m.metadata for m in make_reader(stream).iter_metadata()}
    return topics, metadata


def test_meta_json_says_when_what_and_which_bundle(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"schema_version": 1}')
    log = EpisodeLog(tmp_path / "log").open({"bundle": str(bundle), "profile": "cpu-dev"})
    log.close()
    meta = json.loads((tmp_path / "log" / "meta.json").read_text())
    started = datetime.fromisoformat(meta["started_at"].replace("Z", "+00:00"))
    assert meta["started_at"].endswith("Z") and started.utcoffset().total_seconds() == 0
    assert abs(started.timestamp() - datetime.now().timestamp()) < 60
    assert meta["bundle_sha256"] == hashlib.sha256(b'{"schema_version": 1}').hexdigest()
    assert meta["toolkit_version"] == __version__ and meta["profile"] == "cpu-dev"
    assert isinstance(meta["started_at_monotonic"], float)


def test_an_exported_episode_reads_back_with_every_record(logged_run, tmp_path):
    log, report = logged_run
    summary = export_log(log, tmp_path / "episode.mcap")
    topics, metadata = _read_back(tmp_path / "episode.mcap")
    ticks, chunks, events = (_lines(log / name) for name in ("ticks.jsonl", "chunks.jsonl", "events.jsonl"))
    assert len(ticks) > 10 and len(chunks) > 0
    assert [m[1] for m in topics["/tinyvla/ticks"]] == ticks
    assert [m[1]["target"] for m in topics["/tinyvla/action"]] == [t["target"] for t in ticks]
    assert [m[1]["state"] for m in topics["/tinyvla/state"]] == [t["state"] for t in ticks]
    assert [m[1]["chunk"] for m in topics["/tinyvla/chunks"]] == [c["chunk"] for c in chunks]
    assert [m[1]["event"] for m in topics["/tinyvla/events"]] == [e["event"] for e in events]
    assert summary["messages"]["/tinyvla/ticks"] == len(ticks)
    meta = json.loads((log / "meta.json").read_text())
    assert meta["profile"] == "cpu-dev" and meta["bundle_sha256"] is None  # a training output, not a bundle
    assert metadata["tinyvla_edge.meta"]["started_at"] == meta["started_at"]
    assert json.loads(metadata["tinyvla_edge.report"]["stop"])["reason"] == report["stop"]["reason"]
    # Log times are the monotonic times placed on the wall clock with meta.json's pair.
    wall0 = datetime.fromisoformat(meta["started_at"].replace("Z", "+00:00")).timestamp()
    expected_ns = (wall0 + ticks[0]["due"] - meta["started_at_monotonic"]) * 1e9
    assert abs(topics["/tinyvla/ticks"][0][0] - expected_ns) < 1e3


def test_camera_frames_export_as_compressed_images_of_the_logged_pixels(logged_run, tmp_path):
    log, _ = logged_run
    export_log(log, tmp_path / "episode.mcap")
    topics, _ = _read_back(tmp_path / "episode.mcap")
    cameras = sorted(p.name for p in (log / "frames").iterdir())
    assert sorted(t for t in topics if t.startswith("/camera/")) == [f"/camera/{c}" for c in cameras]
    for camera in cameras:
        images = topics[f"/camera/{camera}"]
        files = sorted((log / "frames" / camera).glob("*.png"))
        assert len(images) == len(files)
        log_time, first, schema = images[0]
        assert schema == "foxglove.CompressedImage" and first["format"] == "png" and first["frame_id"] == camera
        assert first["timestamp"]["sec"] * 10**9 + first["timestamp"]["nsec"] == log_time
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(first["data"]))))
        np.testing.assert_array_equal(pixels, np.asarray(Image.open(files[0])))


def test_export_through_the_cli_and_its_refusals(logged_run, tmp_path, capsys):
    log, _ = logged_run
    assert main(["export", str(log), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["output"] == str(log.parent / "episode.mcap") and result["bytes"] > 0
    assert main(["export", str(tmp_path / "nothing")]) == 1
    assert "not an episode log" in capsys.readouterr().err
    assert main(["export", str(log), "--format", "lerobot"]) == 1
    assert "supported: mcap" in capsys.readouterr().err


def test_an_unreadable_last_line_is_skipped_and_counted(logged_run, tmp_path):
    log = Path(shutil.copytree(logged_run[0], tmp_path / "episode"))
    with open(log / "ticks.jsonl", "a") as f:
        f.write('{"tick": 99, "due"')  # a run cut off mid-write
    summary = export_log(log, tmp_path / "cut.mcap")
    assert summary["skipped_lines"] == 1
    assert summary["messages"]["/tinyvla/ticks"] == len((log / "ticks.jsonl").read_text().splitlines()) - 1
