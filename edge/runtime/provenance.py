"""Where a run or a served policy came from: wall-clock start, toolkit version, bundle hash.

The runtime times everything on the monotonic clock; `started_at` and `started_at_monotonic`
are read together so a log's monotonic times can be placed on the wall clock (MCAP export).
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from pathlib import Path

from edge import __version__
from edge.hub import resolve_path

MANIFEST = "manifest.json"


def manifest_sha256(bundle: str | Path | None) -> str | None:
    """sha256 of the bundle's manifest.json (which hashes every other file); None for a
    training output or no bundle."""
    if bundle is None:
        return None
    path = resolve_path(bundle) / MANIFEST  # a Hub id: its verified plain copy
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def run_provenance(bundle: str | Path | None) -> dict:
    """The fields a log's meta.json gets at start: wall clock (ISO 8601 UTC) with the monotonic
    time read beside it, the toolkit version and the bundle's manifest hash."""
    wall, monotonic = time.time(), time.monotonic()
    return {
        "started_at": datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "started_at_monotonic": monotonic,
        "toolkit_version": __version__,
        "bundle_sha256": manifest_sha256(bundle),
    }
