"""A real bundle (torch fp32 engines, from the tiny training output) and a way to re-sign a
tampered manifest as an attacker who controls the bundle would."""

import hashlib
import json
import shutil

import pytest

from edge.bundle import MANIFEST, MANIFEST_HASH
from quantize.pipeline import quantize_training_output

PROFILE = """
name: torch-fp32
target: any
model:
  vision: {engine: torch, precision: fp32}
  language: {engine: torch, precision: fp32}
  head_steps: 10
cameras:
  - {name: left, width: 64, height: 48}
  - {name: right, width: 64, height: 48}
"""


@pytest.fixture(scope="session")
def built_bundle(tmp_path_factory, tiny_output):
    profile = tmp_path_factory.mktemp("profile") / "torch-fp32.yaml"
    profile.write_text(PROFILE)
    out = tmp_path_factory.mktemp("bundles") / "fp32"
    quantize_training_output(tiny_output, profile, out, progress=False)
    return out


@pytest.fixture()
def bundle(built_bundle, tmp_path):
    """A private copy each test may tamper with."""
    return shutil.copytree(built_bundle, tmp_path / "bundle")


def resign(directory, manifest_text: str) -> None:
    """Write manifest.json and a matching manifest.sha256 (anyone holding the bundle can)."""
    (directory / MANIFEST).write_text(manifest_text)
    (directory / MANIFEST_HASH).write_text(hashlib.sha256(manifest_text.encode()).hexdigest() + "\n")


def edit_manifest(directory, change) -> None:
    manifest = json.loads((directory / MANIFEST).read_text())
    change(manifest)
    resign(directory, json.dumps(manifest, indent=2))
