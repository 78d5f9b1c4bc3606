"""A private copy of the session's fp32 bundle (tests/conftest.py) and a way to re-sign a
tampered manifest as an attacker who controls the bundle would."""

import hashlib
import json
import shutil

import pytest

from edge.bundle import MANIFEST, MANIFEST_HASH



@pytest.fixture()
def bundle(fp32_bundle, tmp_path):
    """A private copy of the session's fp32 bundle that each test may tamper with."""
    return shutil.copytree(fp32_bundle[0], tmp_path / "bundle")


def resign(directory, manifest_text: str) -> None:
    """Write manifest.json and a matching manifest.sha256 (anyone holding the bundle can)."""
    (directory / MANIFEST).write_text(manifest_text)
    (directory / MANIFEST_HASH).write_text(hashlib.sha256(manifest_text.encode()).hexdigest() + "\n")


def edit_manifest(directory, change) -> None:
    manifest = json.loads((directory / MANIFEST).read_text())
    change(manifest)
    resign(directory, json.dumps(manifest, indent=2))
