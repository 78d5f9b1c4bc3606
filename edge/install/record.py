"""The install record: what install did, for `doctor` to read (/var/lib/tinyvla-edge/install.json).

It holds the resulting state (not this run's actions), so a second run that changes nothing
produces the same record and leaves the file untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge import __version__
from edge.device.detect import DeviceInfo
from edge.install.actions import atomic_write
from edge.install.context import RECORD_PATH, InstallSettings
from edge.install.rootfs import inside_root, read_in_root

SCHEMA = 1

# Run status -> what it means for the device afterwards.
OUTCOME = {
    "ok": "done", "changed": "done", "recorded": "pending-on-target", "pending": "pending-on-target",
    "skipped": "skipped", "needs-consent": "needs-consent", "reboot-required": "reboot-required",
}


def build_record(*, profile: str, profile_ref: str, device: DeviceInfo, settings: InstallSettings, staged: bool,
                 steps: list[dict], failed: str | None = None) -> dict:
    """The record's content for this run's outcome."""
    return {
        "schema": SCHEMA,
        "tool_version": __version__,
        "profile": profile,
        "profile_ref": profile_ref,
        "staged": staged,
        "user": settings.user,
        "venv": settings.venv,
        "index_url": settings.index_url,
        "device": {
            "module": device.module, "name": device.display_name, "jetpack": device.jetpack, "l4t": device.l4t,
            "python": device.python, "cuda": device.cuda, "cudnn": device.cudnn, "tensorrt": device.tensorrt,
        },
        "steps": {s["name"]: {"outcome": "failed" if s["name"] == failed else OUTCOME.get(s["status"], s["status"]),
                              "state": s["state"]} for s in steps},
        "failed_step": failed,
    }


def read_record(root: str | Path = "/") -> dict | None:
    """The install record under `root`, or None when install never ran (or it is unreadable)."""
    text = read_in_root(root, RECORD_PATH)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def write_record(root: str | Path, record: dict) -> bool:
    """Write the record if its content changed; returns whether it wrote."""
    if read_record(root) == record:
        return False
    atomic_write(inside_root(root, RECORD_PATH), json.dumps(record, indent=2, sort_keys=True) + "\n")
    return True
