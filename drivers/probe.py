"""Device probes for `tinyvla-edge doctor`: open a camera or an arm, report facts, never raise.

Each probe returns a plain dict (JSON-ready) with "ok" and, when not ok, a one-line "error"
saying what to do.
"""

from __future__ import annotations

import dataclasses
import os
import time

from drivers.camera import open_camera, parse_camera_spec
from drivers.errors import (
    CameraStalled,
    DeviceTimeoutError,
    DriverError,
    HandshakeRefused,
    IncompatibleFirmware,
    ProtocolError,
)
from drivers.arm.serial_arm import SerialArm


def probe_camera(spec: str, seconds: float = 2.0) -> dict:
    """Open the camera `spec` names, stream for `seconds`, report resolution, fps achieved and drops."""
    result: dict = {
        "spec": spec,
        "ok": False,
        "error": None,
        "description": None,
        "width": None,
        "height": None,
        "depth": None,
        "fps_target": None,
        "fps_achieved": None,
        "received": 0,
        "dropped": 0,
        "stalls": 0,
    }
    try:
        config = parse_camera_spec(spec)
        with open_camera(config, "probe") as camera:
            info = camera.info
            result.update(description=info.description, width=info.width, height=info.height, depth=info.depth)
            result["fps_target"] = info.fps
            start_stats, start = camera.stats, time.monotonic()
            deadline = start + seconds
            last = -1
            while time.monotonic() < deadline:
                try:
                    last = camera.wait_newer(last, max(0.05, deadline - time.monotonic())).frame_number
                except CameraStalled as e:
                    if time.monotonic() < deadline:
                        result["error"] = str(e)  # a stall inside the window; a wait past the end is fine
                    break
            elapsed = time.monotonic() - start
            end_stats = camera.stats
            received = end_stats.received - start_stats.received
            result.update(
                received=received,
                dropped=end_stats.dropped - start_stats.dropped,
                stalls=end_stats.stalls - start_stats.stalls,
                fps_achieved=round(received / elapsed, 2) if elapsed > 0 else None,
            )
            result["ok"] = result["error"] is None and received > 0
            if received == 0 and result["error"] is None:
                result["error"] = f"no frames in {seconds:g} s"
    except DriverError as e:
        result["error"] = str(e)
    return result


REPLY_TIME_SAMPLES = 50


def probe_arm(port: str, baud: int = 1_000_000, timeout_s: float = 1.0) -> dict:
    """Check a serial arm: the port, the handshake, what the arm declares, its state flags and
    its reply time. Sends HELLO and GET_STATE only: a probe never moves the arm or feeds its
    watchdog.

    `diagnosis` says why a handshake failed: "silent" (no bytes), "garbage" (bytes but no valid
    frame: the baud rate), "refused" (valid frames this host cannot accept: the NAK or INFO
    field is in `error`), "incompatible" (another protocol version), or "port".
    """
    exists = os.path.exists(port)
    result: dict = {
        "port": port,
        "baud": baud,
        "exists": exists,
        "accessible": os.access(port, os.R_OK | os.W_OK) if exists else False,
        "ok": False,
        "info": None,
        "state": None,
        "reply_time": None,
        "low_latency": None,
        "diagnosis": None,
        "error": None,
    }
    arm = SerialArm(port, baud, timeout_s=max(0.05, timeout_s / 4), handshake_timeout_s=timeout_s)
    try:
        info = arm.connect()
        result["info"] = dataclasses.asdict(info)
        result["low_latency"] = arm.low_latency
        state = arm.state()
        result["state"] = {"estop": state.estop, "fault": state.fault, "watchdog_hold": state.watchdog_hold,
                           "moving": state.moving}
        result["reply_time"] = arm.measure_reply_time(REPLY_TIME_SAMPLES).as_dict()
        result["ok"] = True
    except DriverError as e:
        result["error"] = str(e)
        result["diagnosis"] = _diagnose(e)
    finally:
        arm.close()
    return result


def _diagnose(error: DriverError) -> str:
    if isinstance(error, IncompatibleFirmware):
        return "incompatible"
    if isinstance(error, (HandshakeRefused, ProtocolError)):
        return "refused"
    if isinstance(error, DeviceTimeoutError):
        return "garbage" if "no valid frame" in str(error) else "silent"
    return "port"
