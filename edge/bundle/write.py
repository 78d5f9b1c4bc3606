"""Writing a bundle's manifest (the quantize stage; the toolkit trusts what it wrote itself)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from edge import __version__
from edge.bundle.manifest import MANIFEST, MANIFEST_HASH, SCHEMA_VERSION, Manifest
from edge.bundle.verify import content_files, sha256_file


def write_manifest(directory: Path, manifest: dict) -> Manifest:
    """Hash every file, validate and write manifest.json + manifest.sha256."""
    manifest = dict(manifest, files={f: sha256_file(directory / f) for f in content_files(directory)})
    parsed = Manifest.model_validate(manifest)
    text = json.dumps(parsed.model_dump(mode="json"), indent=2)
    (directory / MANIFEST).write_text(text)
    (directory / MANIFEST_HASH).write_text(hashlib.sha256(text.encode()).hexdigest() + "\n")
    return parsed


def new_manifest_fields(profile: str) -> dict:
    """The manifest fields that say who wrote it, when, for which profile."""
    return {"schema_version": SCHEMA_VERSION, "toolkit_version": __version__,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "profile": profile}
