"""`sudo tinyvla-edge install --profile NAME` works as written: the defaults a new user gets.

The README's line must print a plan with no extra flags on every shipped Jetson profile (issue 15
item 2): the service user comes from sudo or the login session, the wheel index and the
librealsense source have defaults, and a fact that cannot be read from the root is one line
naming the file, never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.cli import main
from tests.device.jetson_tree import SUPPORTED, ORIN_NANO_SUPER_JP62, build_tree, snapshot

JETSON_PROFILES = {spec.profile: spec for spec in SUPPORTED}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch):
    """No tinyvla-edge settings from the test machine's environment; sudo's SUDO_USER."""
    for name in list(os.environ):
        if name.startswith("TINYVLA_EDGE_") or name == "SUDO_USER":
            monkeypatch.delenv(name)
    return monkeypatch


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_shipped_jetson_profile_covers_a_staged_device():
    shipped = {p.stem for p in (Path(__file__).resolve().parents[2] / "profiles").glob("*.yaml")}
    assert shipped - {"cpu-dev"} == set(JETSON_PROFILES)


@pytest.mark.parametrize("profile", sorted(JETSON_PROFILES))
def test_sudo_install_with_no_extra_flags_prints_a_plan(tmp_path, capsys, clean_env, profile):
    root = build_tree(tmp_path / "root", JETSON_PROFILES[profile])
    clean_env.setenv("SUDO_USER", "robot")
    before = snapshot(root)
    code, out, err = cli(capsys, "install", "--profile", profile, "--root", str(root), "--dry-run")
    assert code == 0, err
    assert snapshot(root) == before
    assert "service user: robot (from $SUDO_USER)" in out
    assert "wheel index: https://pypi.jetson-ai-lab.io/" in out and "(default: Jetson AI Lab community index)" in out
    assert "User=robot" in out and "$ nvpmodel -m " in out


def test_the_login_session_owner_runs_the_service_without_sudo_user(tmp_path, capsys, clean_env):
    root = build_tree(tmp_path / "root", ORIN_NANO_SUPER_JP62)
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/loginuid").write_text("1000")
    code, out, err = cli(capsys, "install", "--profile", "orin-nano-8gb", "--root", str(root), "--dry-run")
    assert code == 0, err
    assert "service user: robot (from the login session (/proc/self/loginuid))" in out


@pytest.mark.parametrize("loginuid", [None, "0", "4294967295"])
def test_no_user_to_be_found_is_one_line_with_the_fix(tmp_path, capsys, clean_env, loginuid):
    root = build_tree(tmp_path / "root", ORIN_NANO_SUPER_JP62)
    if loginuid is not None:  # root's session, or no login session (a service, a container)
        (root / "proc/self").mkdir(parents=True)
        (root / "proc/self/loginuid").write_text(loginuid)
    clean_env.setenv("SUDO_USER", "root")  # `sudo` from a root shell says nothing either
    code, out, err = cli(capsys, "install", "--profile", "orin-nano-8gb", "--root", str(root), "--dry-run")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "which user runs the service? run install with sudo from that user's account, or pass --user" in err


def _remove(root: Path, device_path: str) -> None:
    """Delete a file or link (glob patterns allowed; links into the image dangle on this host)."""
    relative = device_path.lstrip("/")
    for path in (root.glob(relative) if "*" in relative else [root / relative]):
        path.unlink()


# Each fact a step derives from the root, the file(s) it is read from, and what must happen
# without them: a one-line error naming the file, or a plan with a warning naming it.
MISSING = [
    ("python", ["/usr/bin/python3"], "error", "/usr/bin/python3"),
    ("l4t", ["/etc/nv_tegra_release"], "error", "/etc/nv_tegra_release"),
    ("l4t-and-dpkg", ["/etc/nv_tegra_release", "/var/lib/dpkg/status"], "error", "/etc/nv_tegra_release"),
    ("module", ["/proc/device-tree/compatible"], "error", "/proc/device-tree/compatible"),
    ("cuda", ["/usr/local/cuda/version.json", "/usr/local/cuda/targets/*/lib/libcudart.so.*"], "warning",
     "/usr/local/cuda/version.json"),
    ("power-modes", ["/etc/nvpmodel.conf"], "warning", "/etc/nvpmodel.conf"),
    ("users", ["/etc/passwd"], "error", "user 'robot' does not exist on the target (not in /etc/passwd)"),
    ("ram", ["/proc/meminfo"], "plan", ""),
    ("cpus", ["/sys/devices/system/cpu/online"], "plan", ""),
    ("kernel", ["/proc/sys/kernel/osrelease"], "plan", ""),
]


@pytest.mark.parametrize("fact, paths, outcome, named", MISSING, ids=[m[0] for m in MISSING])
def test_a_staged_root_missing_a_file_is_one_line_or_a_plan_never_a_traceback(
        tmp_path, capsys, clean_env, fact, paths, outcome, named):
    root = build_tree(tmp_path / "root", ORIN_NANO_SUPER_JP62)
    for path in paths:
        _remove(root, path)
    clean_env.setenv("SUDO_USER", "robot")
    code, out, err = cli(capsys, "install", "--profile", "orin-nano-8gb", "--root", str(root), "--dry-run")
    assert "Traceback" not in err
    if outcome == "error":
        assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert named in err
    else:
        assert code == 0, err
        assert "dry run: nothing below has been changed" in out
        if outcome == "warning":
            assert any(line.startswith("warning: ") and named in line for line in out.splitlines()), out
