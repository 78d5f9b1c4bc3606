"""Hostile inputs to `tinyvla-edge install`: every one is refused with one line and no side effect.

Each attack goes through the real command line (`edge.cli.main`) on a staged Orin Nano root, and
the test checks the exit code, that stderr is exactly one `error:` line, and that neither the
staged root nor a directory outside it changed. Issue 14 items 4 (injection into udev rules,
unit files and commands) and 5 (writes outside `--root`), and the NaN/Inf part of item 8.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.cli import main
from tests.device.conftest import INDEX_URL, REALSENSE_SOURCE
from tests.device.jetson_tree import ORIN_NANO_SUPER_JP62, build_tree, snapshot

UNIT = "etc/systemd/system/tinyvla-edge.service"
UDEV_PAYLOAD = 'FT4", RUN+="/bin/sh -c \'touch /tmp/pwned\'", ATTRS{serial}=="x'
UNIT_PAYLOAD = "\nExecStartPre=+/bin/sh -c 'touch /tmp/pwned'\n"


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A staged Orin Nano root, an `outside` directory next to it, and a clean environment."""
    root = build_tree(tmp_path / "root", ORIN_NANO_SUPER_JP62)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.10.12\n")
    for name in ("TINYVLA_EDGE_INDEX_URL", "TINYVLA_EDGE_PROFILES", "SUDO_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TINYVLA_EDGE_REALSENSE_SOURCE", REALSENSE_SOURCE)
    return root, outside


def install(root: Path, *args: str, dry_run: bool = False) -> list[str]:
    argv = ["install", "--root", str(root), "--user", "robot", "--index-url", INDEX_URL, *args]
    return argv + (["--dry-run"] if dry_run else [])


def refused(argv: list[str], capsys, *, root: Path, outside: Path, match: str) -> str:
    """Run the CLI and assert: exit 1, one `error:` line containing `match`, nothing changed."""
    before_root, before_outside = snapshot(root), snapshot(outside)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert match in err, err
    assert snapshot(root) == before_root and snapshot(outside) == before_outside
    assert not Path("/tmp/pwned").exists()
    return err


def profile_file(tmp_path: Path, text: str, name: str = "hostile.yaml") -> str:
    path = tmp_path / name
    path.write_text("target: p3767-0005\npower: {mode: 25W}\n" + text)
    return str(path)


# ----------------------------------------------------------------------------- udev rules


def test_udev_injection_through_arm_serial_is_refused(rig, capsys):
    root, outside = rig
    err = refused(install(root, "--profile", "orin-nano-8gb", "--arm-serial", UDEV_PAYLOAD), capsys,
                  root=root, outside=outside, match="--arm-serial")
    assert "letters, digits" in err


# ----------------------------------------------------------------------------- unit files


@pytest.mark.parametrize("option, value", [
    ("--venv", "/opt/venv" + UNIT_PAYLOAD),
    ("--user", "robot" + UNIT_PAYLOAD),
    ("--index-url", "https://x.invalid/{platform}/{cuda_tag} --trusted-host evil.invalid"),
    ("--index-url", "https://user:secret@x.invalid/{platform}"),
    ("--index-url", "https://x.invalid/{platform}/{0.__class__}"),  # str.format field access
])
def test_unit_and_command_injection_through_arguments_is_refused(rig, capsys, option, value):
    root, outside = rig
    options = {"--user": "robot", "--index-url": INDEX_URL, "--venv": "/opt/venv", option: value}
    argv = ["install", "--root", str(root), "--profile", "orin-nano-8gb", *(x for kv in options.items() for x in kv)]
    refused(argv, capsys, root=root, outside=outside, match="is not allowed")


def test_unit_injection_through_sudo_user_is_refused(rig, capsys, monkeypatch):
    root, outside = rig
    monkeypatch.setenv("SUDO_USER", "robot" + UNIT_PAYLOAD)
    argv = ["install", "--root", str(root), "--profile", "orin-nano-8gb", "--index-url", INDEX_URL]
    refused(argv, capsys, root=root, outside=outside, match="$SUDO_USER")


def test_unit_injection_through_the_targets_passwd_is_refused(rig, capsys):
    root, outside = rig
    passwd = root / "etc/passwd"
    passwd.write_text(passwd.read_text().replace(":/home/robot:", ":/home/robot ExecStartPre=+/bin/id:"))
    refused(install(root, "--profile", "orin-nano-8gb"), capsys, root=root, outside=outside,
            match="home directory of robot")


@pytest.mark.parametrize("text, match", [
    ("arm: {usb_vendor: '0403', usb_serial: '%s'}\n" % UDEV_PAYLOAD.replace("'", "''"), "arm.usb_serial"),
    ("arm: {usb_vendor: '0403\", RUN+=\"/bin/true'}\n", "four hex digits"),
    ('name: "nano\\nExecStartPre=+/bin/sh -c id"\n', "field 'name'"),
    ('install: {venv: "/opt/venv\\nExecStartPre=+/bin/sh -c id"}\n', "install.venv"),
    ("install: {user: 'robot root'}\n", "install.user"),
    ("install: {index_url: 'https://x.invalid/{platform} --trusted-host evil'}\n", "install.index_url"),
    ("install: {realsense_source: 'https://x.invalid/r.git;id'}\n", "install.realsense_source"),
    ("install: {realsense_ref: '--upload-pack=id'}\n", "install.realsense_ref"),
    ('install: {cpu_affinity: "1-3\\nExecStartPre=+/bin/id"}\n', "install.cpu_affinity"),
    ("cameras: [{name: 'left --camera x=recording:/etc/shadow'}]\n", "cameras.0.name"),  # run.env
    ('power: {mode: "25W\\nExecStartPre=+/bin/id"}\n', "power.mode"),
])
def test_injection_through_profile_fields_is_refused(rig, capsys, tmp_path, text, match):
    root, outside = rig
    refused(install(root, "--profile", profile_file(tmp_path, text), dry_run=True), capsys, root=root,
            outside=outside, match=match)


def test_profile_file_name_injection_is_refused(rig, capsys, tmp_path):
    # The file name is the default profile name, and the path goes into ExecStart=.
    root, outside = rig
    folder = tmp_path / "my profiles"
    folder.mkdir()
    profile = profile_file(folder, "name: nano\n", name="nano.yaml")
    refused(install(root, "--profile", profile), capsys, root=root, outside=outside, match="profile path")
    named = profile_file(tmp_path, "", name="nano;id.yaml")
    refused(install(root, "--profile", named), capsys, root=root, outside=outside, match="field 'name'")


def test_a_profile_name_cannot_walk_out_of_the_profile_directories(rig, capsys, tmp_path):
    root, outside = rig
    profile_file(outside, "", name="planted.yaml")
    climb = "../" * 12 + str(outside / "planted").lstrip("/")
    err = refused(install(root, "--profile", climb, dry_run=True), capsys, root=root, outside=outside,
                  match="unknown profile")
    assert "available: " in err


def test_a_librealsense_source_with_shell_characters_is_refused(rig, capsys, monkeypatch):
    root, outside = rig
    monkeypatch.setenv("TINYVLA_EDGE_REALSENSE_SOURCE", "https://x.invalid/repo.git;id")
    refused(install(root, "--profile", "orin-nano-8gb"), capsys, root=root, outside=outside,
            match="librealsense source")


# ----------------------------------------------------------------------------- writes outside --root


def test_venv_with_dotdot_is_refused(rig, capsys):
    root, outside = rig
    escape = "/opt/" + "../" * (len(root.parts) + 2) + str(outside).lstrip("/")
    refused(install(root, "--profile", "orin-nano-8gb", "--venv", escape), capsys, root=root, outside=outside,
            match="no '.' or '..' parts")


def test_symlinks_in_the_staged_tree_are_resolved_inside_the_root(rig, capsys):
    """`/etc/udev -> <outside>` and `/opt -> /` in an image mean paths in the image, not on this host."""
    root, outside = rig
    os.symlink(str(outside), root / "etc/udev")  # absolute, and outside the root on this host
    os.symlink("/", root / "opt")
    os.symlink("../../../../../../../../..", root / "var/lib/tinyvla-edge")  # relative, climbing above the root
    before_outside = snapshot(outside)
    assert main(install(root, "--profile", "orin-nano-8gb", "--yes")) == 0, capsys.readouterr().err
    assert snapshot(outside) == before_outside  # nothing written through the links
    # Each write landed where its link points inside the image.
    rules = root / str(outside).lstrip("/") / "rules.d/70-tinyvla-edge-serial.rules"
    assert rules.is_file() and 'ATTR{latency_timer}="1"' in rules.read_text()
    assert (root / "install.json").is_file() and (root / "staged-commands.sh").is_file()
    assert (root / UNIT).is_file()


def test_a_link_to_a_host_file_is_neither_read_nor_written_through(rig, capsys):
    """The staged command script is read back and rewritten: as a link to a host file it is
    replaced inside the root, and the host file is neither copied into the tree nor changed."""
    root, outside = rig
    secret = outside / "secret"
    secret.write_text("#!/bin/sh\nset -e\nexec </dev/null\n# step: service\nhost secret line\n")
    (root / "var/lib/tinyvla-edge").mkdir(parents=True)
    os.symlink(str(secret), root / "var/lib/tinyvla-edge/staged-commands.sh")
    os.symlink(str(secret), root / "var/lib/tinyvla-edge/install.json")
    before_outside = snapshot(outside)
    assert main(install(root, "--profile", "orin-nano-8gb")) == 0, capsys.readouterr().err
    assert snapshot(outside) == before_outside
    script = root / "var/lib/tinyvla-edge/staged-commands.sh"
    assert not script.is_symlink() and "host secret line" not in script.read_text()
    assert not (root / "var/lib/tinyvla-edge/install.json").is_symlink()


def test_a_symlink_loop_in_the_staged_tree_is_one_line(rig, capsys):
    root, outside = rig
    os.symlink("/etc/udev/loop", root / "etc/udev-loop")
    (root / "etc/udev").mkdir(parents=True, exist_ok=True)
    os.symlink("/etc/udev-loop", root / "etc/udev/loop")
    os.symlink("/etc/udev/loop", root / "etc/udev/rules.d")
    refused(install(root, "--profile", "orin-nano-8gb"), capsys, root=root, outside=outside,
            match="too many levels of symbolic links")


# ----------------------------------------------------------------------------- profile numbers


@pytest.mark.parametrize("text, field", [
    ("control: {rate_hz: .nan}\n", "control.rate_hz"),
    ("control: {action_deadline_s: .inf}\n", "control.action_deadline_s"),
    ("control: {max_rate_hz: .inf, rate_hz: 30}\n", "control.max_rate_hz"),
    ("arm: {lower: [-.inf, 0, 0, 0, 0, 0, 0]}\n", "arm.lower.0"),
    ("arm: {max_step: [.nan]}\n", "arm.max_step.0"),
    ("arm: {upper: [1.0e+300]}\n", "arm.upper.0"),
    ("power: {mode: 25W, budget_w: 1.0e+308}\n", "power.budget_w"),
    ("model: {max_prompt_tokens: 1000000000}\n", "model.max_prompt_tokens"),
    ("cameras: [{name: left, width: 100000000}]\n", "cameras.0.width"),
])
def test_nan_inf_and_absurd_profile_numbers_are_refused(rig, capsys, tmp_path, text, field):
    root, outside = rig
    profile = profile_file(tmp_path, text)
    refused(install(root, "--profile", profile, dry_run=True), capsys, root=root, outside=outside,
            match=f"field '{field}'")
