"""Fixtures for the Jetson provisioning tests: staged roots and the tool emulators on PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.device.jetson_tree import DeviceSpec, build_tree, emulator_env

INDEX_URL = "https://wheels.example.invalid/{platform}/{cuda_tag}/+simple"
REALSENSE_SOURCE = "https://git.example.invalid/librealsense.git"


@pytest.fixture
def staged(tmp_path: Path):
    """Build a staged root for a DeviceSpec: `staged(SPEC)` -> Path."""
    def make(spec: DeviceSpec, name: str | None = None) -> Path:
        return build_tree(tmp_path / (name or spec.key), spec)
    return make


@pytest.fixture
def emulators(monkeypatch: pytest.MonkeyPatch):
    """Put the nvpmodel/jetson_clocks emulators on PATH, acting on the given root."""
    def activate(root: Path, **extra: str) -> dict[str, str]:
        env = emulator_env(root, **extra)
        for key in ("PATH", "JETSON_EMU_ROOT", *extra):
            monkeypatch.setenv(key, env[key])
        return env
    return activate


def install_kwargs(root: Path, **overrides):
    """The arguments a staged install test passes (no host is real: example.invalid)."""
    kwargs = dict(root=root, user="robot", index_url=INDEX_URL,
                  env={"TINYVLA_EDGE_REALSENSE_SOURCE": REALSENSE_SOURCE})
    kwargs.update(overrides)
    return kwargs
