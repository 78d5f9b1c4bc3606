"""`capture` writes the documented layout (docs/capture-format.md), from cameras and recordings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from drivers.camera.capture import capture, render_capture_summary
from drivers.errors import DriverError, SpecError
from drivers.camera.synthetic import synthetic_pattern

from .conftest import RECORDED_FRAMES, RECORDED_GAP, RECORDED_SIZE


def _index(output):
    return [json.loads(line) for line in (output / "frames.jsonl").read_text().splitlines()]


def test_capture_two_cameras_writes_pngs_and_an_index(db3_recording, tmp_path):
    output = tmp_path / "calib"
    result = capture({"front": "synthetic:32x24@60?depth=1", "rec": f"recording:{db3_recording}?depth=1"}, 12, output)
    assert result["frames"] == 12 and result["complete"] and result["stopped"] is None
    assert result["cameras"]["rec"]["width"] == RECORDED_SIZE[0] and result["cameras"]["front"]["depth"]
    entries = _index(output)
    assert [e["index"] for e in entries] == list(range(12))
    # A recording is captured frame by frame: its recorded frames in order, the gap included.
    recorded = [n for n in range(1, RECORDED_FRAMES + 1) if n not in RECORDED_GAP]
    assert [e["cameras"]["rec"]["frame_number"] for e in entries] == recorded[:12]
    front_numbers = [e["cameras"]["front"]["frame_number"] for e in entries]
    assert front_numbers == sorted(set(front_numbers))
    for entry in entries:
        for name, width, height in [("front", 32, 24), ("rec", *RECORDED_SIZE)]:
            cam = entry["cameras"][name]
            assert cam["color"] == f"{name}/{entry['index']:06d}.png"
            assert cam["depth"] == f"{name}/{entry['index']:06d}_depth.png"
            assert cam["depth_scale"] == pytest.approx(0.001) and cam["host_time_s"] > 0
            color = np.asarray(Image.open(output / cam["color"]))
            depth = np.asarray(Image.open(output / cam["depth"]))
            assert color.dtype == np.uint8 and color.shape == (height, width, 3)
            assert depth.dtype == np.uint16 and depth.shape == (height, width)
            expected_color, expected_depth = synthetic_pattern(cam["frame_number"], width, height)
            assert np.array_equal(color, expected_color)
            if name == "front":  # the recording's depth went through alignment; synthetic's is exact
                assert np.array_equal(depth, expected_depth)
    assert "captured 12/12 frame sets" in render_capture_summary(result)


def test_capture_stops_when_a_recording_ends(db3_recording, tmp_path):
    result = capture([f"recording:{db3_recording}?depth=1"], 100, tmp_path / "out")
    recorded = RECORDED_FRAMES - len(RECORDED_GAP)
    assert (result["frames"], result["requested"], result["complete"]) == (recorded, 100, False)
    assert "recording ended" in result["stopped"]
    assert len(_index(tmp_path / "out")) == recorded
    assert len(list((tmp_path / "out" / "recording").glob("*_depth.png"))) == recorded
    assert "stopped early: " in render_capture_summary(result)


def test_capture_without_depth_has_null_depth(tmp_path):
    capture(["synthetic:16x12@60"], 2, tmp_path / "a")
    from drivers.camera import SyntheticConfig

    capture({"nodepth": SyntheticConfig(16, 12, 60, depth=False)}, 2, tmp_path / "b")
    entry = _index(tmp_path / "b")[0]["cameras"]["nodepth"]
    assert entry["depth"] is None and entry["depth_scale"] is None
    assert sorted(p.name for p in (tmp_path / "b" / "nodepth").iterdir()) == ["000000.png", "000001.png"]


def test_capture_refuses_to_overwrite_and_bad_input(tmp_path):
    capture(["synthetic:16x12@60"], 1, tmp_path / "out")
    with pytest.raises(DriverError, match="already holds a capture"):
        capture(["synthetic:16x12@60"], 1, tmp_path / "out")
    with pytest.raises(DriverError, match="at least 1"):
        capture(["synthetic"], 0, tmp_path / "x")
    with pytest.raises(SpecError, match="unknown camera spec"):
        capture(["usbcam"], 1, tmp_path / "y")
    assert not (tmp_path / "y").exists()
