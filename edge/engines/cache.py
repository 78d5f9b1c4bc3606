"""The device's engine cache: engines built here, keyed by the sha256 of the weights they came from.

Bundles are untrusted and get copied over each other, so no engine is ever read from a bundle.
Engines live in a directory of this device (`$TINYVLA_EDGE_ENGINE_CACHE`, else
`$XDG_CACHE_HOME/tinyvla-edge/engines`, else `~/.cache/tinyvla-edge/engines`; created 0700).
A key covers the verified sha256 of the weights, the component and everything the engine
depends on (TensorRT version, compute capability, precision, shapes), so an engine built from
other weights is never found. Each engine's own sha256 is recorded when it is stored and checked
before it is used: a planted, truncated or unrecorded engine is deleted and rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

ENV_VAR = "TINYVLA_EDGE_ENGINE_CACHE"


def engine_cache_root() -> Path:
    """Where this device keeps its engines."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tinyvla-edge" / "engines"


def engine_key(weights_sha256: str, component: str, facts: dict) -> str:
    """The name of an engine: its weights' sha256, the component and what else it depends on."""
    described = {"weights_sha256": weights_sha256, "component": component, **facts}
    return f"{component}-{hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]}"


class EngineCache:
    """Engines by key under `root`, each with its recorded sha256."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else engine_cache_root()

    def _ensure_root(self) -> Path:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.root

    def directory(self, key: str) -> Path:
        """A private directory for an engine runtime that manages its own files (ORT's TensorRT EP)."""
        path = self._ensure_root() / key
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.engine", self.root / f"{key}.sha256"

    def load(self, key: str) -> bytes | None:
        """The engine stored under `key` if its bytes match the recorded sha256; otherwise None
        (and whatever was there is removed, so it is rebuilt)."""
        engine, digest = self._paths(key)
        try:
            data, recorded = engine.read_bytes(), digest.read_text().strip()
        except OSError:
            self._discard(key)
            return None
        if hashlib.sha256(data).hexdigest() != recorded:
            self._discard(key)
            return None
        return data

    def store(self, key: str, written: Path) -> None:
        """Adopt engine file `written` (produced by the engine's own save) under `key`."""
        engine, digest = self._paths(key)
        self._ensure_root()
        data = Path(written).read_bytes()
        os.replace(written, engine)
        tmp = digest.with_suffix(".tmp")
        tmp.write_text(hashlib.sha256(data).hexdigest() + "\n")
        os.replace(tmp, digest)

    def staging_path(self, key: str) -> Path:
        """Where an engine's own save writes before `store` adopts it."""
        return self._ensure_root() / f"{key}.staging.ep"

    def _discard(self, key: str) -> None:
        for path in self._paths(key):
            path.unlink(missing_ok=True)
