"""RealSense recordings through the real pyrealsense2: written with rs.software_device + rs.recorder,
played back through RealSenseSource + ThreadedCamera exactly like a live camera."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from drivers.camera import RecordingConfig, open_camera
from drivers.errors import CameraNotFound, CameraStalled, DriverError, SpecError
from drivers.camera.realsense import select_serial, start_with_retries
from drivers.camera.synthetic import SQUARE_MM, square_box, synthetic_pattern

from .conftest import FIXTURES, RECORDED_FRAMES, RECORDED_GAP, RECORDED_SIZE

W, H = RECORDED_SIZE


def _play_all(camera, timeout_s: float = 2.0):
    """Every frame wait_newer hands out until the recording ends, and the error that ended it."""
    frames, last = [], -1
    while True:
        try:
            frame = camera.wait_newer(last, timeout_s)
        except CameraStalled as e:
            return frames, e
        frames.append(frame)
        last = frame.frame_number


def _sdk_version(rs) -> tuple[int, ...]:
    return tuple(int(part) for part in getattr(rs, "__version__", "0").split(".")[:2])


def test_installed_librealsense_records_db3(rs, tmp_path):
    from drivers.camera.recording import record_synthetic

    if _sdk_version(rs) < (2, 57):
        pytest.skip("librealsense < 2.57 records .bag")
    with pytest.raises(DriverError, match=r"\.db3"):
        record_synthetic(tmp_path / "x.bag", frames=2, pace=False)
    path = record_synthetic(tmp_path / "x.db3", frames=2, pace=False)
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"  # ROS2 bag storage


def test_db3_playback_gives_every_recorded_frame_with_aligned_depth(db3_recording):
    with open_camera(RecordingConfig(db3_recording, real_time=False, depth=True), "rec") as camera:
        assert (camera.info.width, camera.info.height, camera.info.fps, camera.info.depth) == (W, H, 30.0, True)
        frames, end = _play_all(camera)
        stats = camera.stats
    expected_numbers = [n for n in range(1, RECORDED_FRAMES + 1) if n not in RECORDED_GAP]
    assert [f.frame_number for f in frames] == expected_numbers
    assert stats.received == len(expected_numbers)
    assert stats.dropped == len(RECORDED_GAP) and stats.stalls == 0
    assert "recording ended" in str(end)
    for frame in frames:
        color, depth = synthetic_pattern(frame.frame_number, W, H)
        assert np.array_equal(frame.color, color), f"color of frame {frame.frame_number}"
        assert frame.device_time_s == pytest.approx(frame.frame_number / 30, abs=1e-6)
        assert frame.depth_scale == pytest.approx(0.001)
        # Depth was recorded at 32x24; aligned to color it is 64x48 and matches the scene.
        assert frame.depth.shape == (H, W) and frame.depth.dtype == np.uint16
        close = np.abs(frame.depth.astype(int) - depth.astype(int)) <= 10
        assert close.mean() > 0.95, f"aligned depth of frame {frame.frame_number} matches {close.mean():.0%}"
        x0, y0, side = square_box(frame.frame_number, W, H)
        assert frame.depth[y0 + side // 2, x0 + side // 2] == SQUARE_MM


def test_end_of_a_non_repeating_recording_is_a_stall_from_latest(db3_recording):
    with open_camera(RecordingConfig(db3_recording, real_time=False), "rec") as camera:
        _play_all(camera)
        with pytest.raises(CameraStalled, match="recording ended after 28 frames"):
            camera.latest(max_age_s=10.0)


def test_real_time_playback_paces_frames_and_stalls_at_the_end(db3_recording):
    start = time.monotonic()
    with open_camera(f"recording:{db3_recording}", "rec") as camera:
        frames, end = _play_all(camera)
        elapsed = time.monotonic() - start
        with pytest.raises(CameraStalled):
            camera.latest(max_age_s=10.0)
    numbers = [f.frame_number for f in frames]
    assert numbers == sorted(set(numbers)) and len(numbers) >= 20
    # 30 frame periods at 30 fps: about a second, not the few ms a non-real-time read takes.
    assert 0.7 < elapsed < 4.0
    assert np.array_equal(frames[-1].color, synthetic_pattern(frames[-1].frame_number, W, H)[0])


def test_looping_recording_keeps_frame_numbers_increasing(db3_recording):
    with open_camera(f"recording:{db3_recording}?loop&realtime=0", "loop") as camera:
        frames, last = [], -1
        while len(frames) < 2 * RECORDED_FRAMES:
            frame = camera.wait_newer(last, 2.0)
            frames.append(frame)
            last = frame.frame_number
        stats = camera.stats
    numbers = [f.frame_number for f in frames]
    assert numbers == sorted(set(numbers))
    assert RECORDED_FRAMES + 1 in numbers  # frame 1 of the second pass continues the count
    second_pass_first = next(f for f in frames if f.frame_number == RECORDED_FRAMES + 1)
    assert np.array_equal(second_pass_first.color, synthetic_pattern(1, W, H)[0])
    assert stats.dropped == 2 * len(RECORDED_GAP)  # the recorded gap, once per pass; not the restart


def test_bag_recordings_play_too(rs):
    bag = FIXTURES / "synthetic_32x24.bag"  # written by librealsense 2.55 (make_bag_fixture.py)
    assert bag.read_bytes()[:13] == b"#ROSBAG V2.0\n"
    with open_camera(RecordingConfig(bag, real_time=False, depth=True), "bag") as camera:
        frames, _ = _play_all(camera)
        stats = camera.stats
    recorded = [n for n in range(1, 21) if n != 7]
    numbers = [f.frame_number for f in frames]
    # The pipeline's syncer only pairs color with depth once it has seen both streams, and a
    # ROS1 .bag delivers frame 1 of each stream separately: librealsense drops that first set.
    assert numbers in (recorded, recorded[1:])
    assert stats.dropped == 1  # the recorded gap at 7
    for frame in frames:
        color, depth = synthetic_pattern(frame.frame_number, 32, 24)
        assert np.array_equal(frame.color, color)
        assert np.mean(np.abs(frame.depth.astype(int) - depth.astype(int)) <= 10) > 0.95


def test_recording_without_depth(rs, tmp_path):
    from drivers.camera.recording import record_synthetic

    path = record_synthetic(tmp_path / "color.db3", frames=3, width=16, height=12, depth=False, pace=False)
    with open_camera(RecordingConfig(path, real_time=False), "c") as camera:
        frames, _ = _play_all(camera)
        assert camera.info.depth is False
    assert [f.frame_number for f in frames] == [1, 2, 3]
    assert all(f.depth is None and f.depth_scale == 0.0 for f in frames)


def test_missing_and_foreign_recordings_are_one_line_errors(rs, tmp_path):
    with pytest.raises(DriverError, match=r"recording .*missing\.db3 not found"):
        open_camera(f"recording:{tmp_path / 'missing.db3'}", "r")
    for name, content in [("notes.db3", b"just text\n"), ("notes.bag", b"just text\n")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DriverError) as e:
            open_camera(f"recording:{tmp_path / name}", "r")
        assert "is not a readable RealSense recording" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SpecError, match="expected a .bag or .db3"):
        open_camera(f"recording:{tmp_path / 'video.mp4'}", "r")


def test_no_realsense_connected_says_so_and_lists_usb_devices(rs):
    if len(rs.context().query_devices()) > 0:
        pytest.skip("a RealSense is connected to this machine")
    with pytest.raises(CameraNotFound) as e:
        open_camera("realsense", "live")
    assert "no RealSense camera found (USB devices:" in str(e.value)


def test_select_serial():
    devices = [("Intel RealSense D435", "111"), ("Intel RealSense D405", "222")]
    assert select_serial(devices[:1], None) == "111"
    assert select_serial(devices, "222") == "222"
    with pytest.raises(CameraNotFound, match=r"2 RealSense cameras connected: .*D435 \(serial 111\).*realsense:SERIAL"):
        select_serial(devices, None)
    with pytest.raises(CameraNotFound, match=r"no RealSense with serial 333; connected: .*serial 111.*serial 222"):
        select_serial(devices, "333")


def test_start_retries_with_a_hardware_reset_before_the_last_try():
    events = []

    def start():
        events.append("start")
        if events.count("start") < 3:
            raise RuntimeError("Frame didn't arrive within 5000")
        return "pipeline"

    assert start_with_retries(start, lambda: events.append("reset"), 3, "D435 (serial 1)") == "pipeline"
    assert events == ["start", "start", "reset", "start"]

    def never():
        raise RuntimeError("xioctl(VIDIOC_S_FMT) failed\nLast Error: Device or resource busy")

    with pytest.raises(DriverError) as e:
        start_with_retries(never, lambda: None, 2, "D435 (serial 1)")
    assert "D435 (serial 1) did not start after 2 tries" in str(e.value)
    assert "\n" not in str(e.value)


def test_connected_usb_devices_are_listed_without_hubs(tmp_path):
    from drivers.camera.realsense import describe_usb_devices

    for name, vendor, product, cls, label in [
        ("1-1", "8086", "0b07", "ef", "Intel(R) RealSense(TM) Depth Camera 435"),
        ("usb1", "1d6b", "0002", "09", "xHCI Host Controller"),
        ("1-2", "0403", "6014", "00", None),
    ]:
        device = tmp_path / name
        device.mkdir()
        (device / "idVendor").write_text(vendor + "\n")
        (device / "idProduct").write_text(product + "\n")
        (device / "bDeviceClass").write_text(cls + "\n")
        if label:
            (device / "product").write_text(label + "\n")
    assert describe_usb_devices(tmp_path) == "Intel(R) RealSense(TM) Depth Camera 435 (8086:0b07), ? (0403:6014)"
    assert describe_usb_devices(tmp_path / "absent") == "none"


def _import_in_fresh_process(block_libusb_package: bool) -> subprocess.CompletedProcess:
    """import_pyrealsense2 in a new interpreter (a loaded libusb cannot be unloaded in this one)."""
    script = (
        "import sys\n"
        + ("sys.modules['libusb_package'] = None\n" if block_libusb_package else "")
        + "from drivers.camera.realsense_import import import_pyrealsense2, load_libusb\n"
        "from drivers.errors import DriverError\n"
        "try:\n    import_pyrealsense2()\nexcept DriverError as e:\n    print('error:', e)\n"
        "else:\n    print('origin:', load_libusb().origin, load_libusb().path)\n"
    )
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=60)


def _system_has_libusb() -> bool:
    script = "import ctypes; ctypes.CDLL('libusb-1.0.so.0')"
    return subprocess.run([sys.executable, "-c", script], capture_output=True).returncode == 0


def test_pyrealsense2_imports_with_the_libusb_the_project_brings(rs):
    result = _import_in_fresh_process(block_libusb_package=False)
    origin, path = result.stdout.split()[1:3]
    assert origin == ("system" if _system_has_libusb() else "libusb-package"), result.stdout + result.stderr
    if origin == "libusb-package":
        assert Path(path).is_file() and Path(path).name.startswith("libusb-1.0")


def test_missing_libusb_is_named_with_its_fix_not_reported_as_not_installed(rs):
    if _system_has_libusb():
        pytest.skip("this machine has a system libusb, so pyrealsense2 loads without libusb-package")
    result = _import_in_fresh_process(block_libusb_package=True)
    message = result.stdout.strip()
    assert message.startswith("error: pyrealsense2 is installed, but its shared library libusb-1.0.so.0 could "
                              "not be loaded (no system libusb and libusb-package is not installed)"), message
    assert message.endswith("pip install 'tinyvla-edge[realsense]' (brings the libusb-package wheel) or sudo "
                            "apt-get install libusb-1.0-0")
    assert "not installed:" not in message.split("(")[0] and "\n" not in message


def test_missing_library_names_the_shared_object():
    from drivers.camera.realsense_import import library_fix, missing_library

    error = ImportError("libfoo.so.3: cannot open shared object file: No such file or directory")
    assert missing_library(error) == "libfoo.so.3"
    assert missing_library(ImportError("No module named 'x'")) is None
    assert "apt-file search libfoo.so.3" in library_fix("libfoo.so.3")


def test_doctor_says_which_libusb_pyrealsense2_uses(rs):
    from types import SimpleNamespace

    from drivers.camera.realsense_import import load_libusb
    from edge.doctor import check_realsense_libusb

    (check,) = check_realsense_libusb(SimpleNamespace(camera=None))
    assert check.status == "pass" and check.detail.startswith(f"pyrealsense2 {rs.__version__}, libusb: ")
    assert check.detail.endswith(load_libusb().detail) and load_libusb().origin in ("system", "libusb-package")
