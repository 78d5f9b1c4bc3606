"""The edge bundle: the only thing that crosses from the workstation to the device.

A directory holding `manifest.json`, `manifest.sha256` and weight files (safetensors, ONNX;
never pickle). One reader, in three floors: `manifest` (the schema, no torch), `verify` (every
listed file hashed through a descriptor the loaders then read), `predictor` (the engines, built
from those verified bytes). See docs/bundle-format.md and docs/security.md.

The predictor names are imported on first use, so that reading or verifying a manifest never
imports torch.
"""

from __future__ import annotations

from edge.bundle.manifest import (
    BACKBONE_WEIGHTS,
    ENGINE_CACHE,
    HEAD_WEIGHTS,
    MANIFEST,
    MANIFEST_HASH,
    SCHEMA_VERSION,
    TOKENIZER,
    ComponentEntry,
    HeadEntry,
    Manifest,
    bundle_facts,
    parse_manifest,
)
from edge.bundle.verify import VerifiedBundle, content_files, open_verified, sha256_file, verify
from edge.bundle.write import new_manifest_fields, write_manifest

_PREDICTOR_NAMES = ("BundlePredictor", "check_engines", "load_predictor")

__all__ = [
    "BACKBONE_WEIGHTS", "ENGINE_CACHE", "HEAD_WEIGHTS", "MANIFEST", "MANIFEST_HASH", "SCHEMA_VERSION", "TOKENIZER",
    "ComponentEntry", "HeadEntry", "Manifest", "VerifiedBundle", "bundle_facts", "content_files",
    "new_manifest_fields", "open_verified", "parse_manifest", "sha256_file", "verify", "write_manifest",
    *_PREDICTOR_NAMES,
]


def __getattr__(name: str):
    if name in _PREDICTOR_NAMES:
        from edge.bundle import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'edge.bundle' has no attribute {name!r}")
