"""Graceful faults (issue 14): a full disk during `run` and in the arm emulator, `quantize --force`
against a directory that is not a bundle, SIGTERM/SIGKILL during `quantize`, bundle permissions,
and `sim-arm --link` over an existing file.

The full disk is real: a small tmpfs where this process may mount one, otherwise files that are
/dev/full (the kernel answers every write with ENOSPC, as a full filesystem does).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from drivers.arm.serial_arm import SerialArm
from drivers.sim.sim_arm import SimArm
from edge.cli import main

REPO = Path(__file__).resolve().parents[2]
PROFILE = """
name: test-faults
target: any
model:
  vision: {engine: torch, precision: fp32}
  language: {engine: torch, precision: fp32}
  head_steps: 10
  chunk_size: 16
  max_prompt_tokens: 64
control: {rate_hz: 25, max_rate_hz: 60, ensemble_k: 0.01, action_deadline_s: 0.4}
cameras:
  - {name: left, width: 64, height: 48}
  - {name: right, width: 64, height: 48}
arm:
  on_shutdown: estop
"""
CAMERAS = ["--camera", "cam0=synthetic:64x48@30", "--camera", "cam1=synthetic:64x48@30"]
LOG_FILES = ("ticks.jsonl", "chunks.jsonl", "events.jsonl")


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("profile") / "test-faults.yaml"
    path.write_text(PROFILE)
    return path


@pytest.fixture()
def full_disk(tmp_path):
    """A directory on a 32 KiB tmpfs (fills within a second of logging), else one whose log files are /dev/full."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mount)],
                                                   capture_output=True).returncode == 0
    yield mount / "episode" if mounted else _dev_full_log(mount)
    if mounted:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _dev_full_log(parent: Path) -> Path:
    """An episode directory whose log files are /dev/full: every write fails with ENOSPC."""
    log_dir = parent / "episode"
    log_dir.mkdir()
    for name in LOG_FILES:
        (log_dir / name).symlink_to("/dev/full")
    return log_dir


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


def test_full_disk_during_run_is_counted_and_reported_with_report_json(tiny_output, profile, tmp_path, capsys):
    log_dir = _dev_full_log(tmp_path)
    code = main(["run", str(tiny_output), *CAMERAS, "--arm", "sim", "--instruction", "pick", "--profile",
                 str(profile), "--ticks", "20", "--log", str(log_dir), "--json"])
    out, err = capsys.readouterr()
    _no_traceback(out, err)
    assert code == 0, err
    warning = [line for line in err.splitlines() if line.startswith("warning: episode log")]
    assert len(warning) == 1 and "writes failed (ENOSPC: No space left on device); report.json written" in warning[0]
    report = json.loads((log_dir / "report.json").read_text())
    assert report["log"]["write_errors"] > 0 and report["log"]["first_error"].startswith("ENOSPC")
    assert json.loads(out)["log"]["write_errors"] >= report["log"]["write_errors"]
    assert report["shutdown"]["arm_safe"] is True


def test_full_disk_does_not_hide_that_the_arm_could_not_be_confirmed_safe(tiny_output, profile, full_disk, tmp_path,
                                                                         capsys):
    """The arm goes silent mid-run (ESTOP cannot be confirmed) while the log's disk is full."""
    sim = SimArm(dof=6, space="ee", link=tmp_path / "arm-link")
    sim.start()
    silenced = threading.Event()

    def silence_once_ticking():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sim.summary()["accepted"] < 5:
            time.sleep(0.05)
        sim.add_fault("silence:60@0")
        silenced.set()

    threading.Thread(target=silence_once_ticking, daemon=True).start()
    try:
        code = main(["run", str(tiny_output), *CAMERAS, "--arm", str(sim.link), "--instruction", "pick",
                     "--profile", str(profile), "--duration", "60", "--log", str(full_disk)])
    finally:
        sim.stop()
    out, err = capsys.readouterr()
    _no_traceback(out, err)
    assert silenced.is_set()
    assert code == 3, err
    assert "ENOSPC: No space left on device" in err
    assert err.strip().splitlines()[-1].startswith("error: the arm could not be confirmed safe after the run")
    assert err.strip().endswith("check it now")


def test_the_emulator_keeps_answering_when_its_log_disk_is_full(tmp_path):
    sim = SimArm(dof=6, space="ee", log="/dev/full", link=tmp_path / "arm-link")
    sim.start()
    arm = SerialArm(str(sim.link), timeout_s=0.2, retries=2)
    try:
        arm.connect()
        state = arm.state()
        for _ in range(5):
            assert arm.send_target(state.as_target()).accepted
        assert arm.state() is not None
    finally:
        arm.close()
        sim.stop()
    summary = sim.summary()
    assert summary["accepted"] == 5 and summary["log_write_errors"] >= 5


def test_an_unwritable_log_directory_is_refused_before_any_motion(tiny_output, profile, tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    code = main(["run", str(tiny_output), *CAMERAS, "--arm", "sim", "--instruction", "pick", "--profile",
                 str(profile), "--ticks", "5", "--log", str(blocker / "episode")])
    _, err = capsys.readouterr()
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.strip().startswith(f"error: cannot write the episode log in {blocker / 'episode'}")


# ----------------------------------------------------------------------------- quantize


def _quantize_argv(tiny_output, profile, output, *extra) -> list[str]:
    return [sys.executable, "-m", "edge.cli", "quantize", str(tiny_output), "--profile", str(profile),
            "--output", str(output), "--json", *extra]


def test_force_never_replaces_a_directory_that_is_not_a_bundle(tiny_output, profile, tmp_path, capsys):
    thesis = tmp_path / "thesis"
    (thesis / "chapter1.tex").parent.mkdir()
    (thesis / "chapter1.tex").write_text("\\chapter{One}")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("notes")
    for target in (thesis, a_file):
        code = main(["quantize", str(tiny_output), "--profile", str(profile), "--output", str(target), "--force"])
        err = capsys.readouterr().err.strip()
        assert code == 1 and len(err.splitlines()) == 1, err
        assert err == (f"error: output {target} exists and is not a bundle (no manifest.json): --force only "
                       "replaces a bundle; choose another --output")
    assert (thesis / "chapter1.tex").read_text() == "\\chapter{One}" and a_file.read_text() == "notes"
    assert not list(tmp_path.glob(".*"))


def _start_quantize(argv, tmp_path, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def _wait_for(pattern: str, directory: Path, proc: subprocess.Popen, timeout_s: float = 60) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(directory.glob(pattern))
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"{pattern} never appeared in {directory} (exit {proc.poll()})")


def test_sigterm_during_quantize_removes_its_temporary_directories(tiny_output, profile, tmp_path, recording):
    output = tmp_path / "bundle"
    proc = _start_quantize(_quantize_argv(tiny_output, profile, output, "--calibration-recording", str(recording)),
                           tmp_path)
    _wait_for("tinyvla-calib-*", tmp_path / "tmp", proc)
    partial = _wait_for(".bundle.partial-*", tmp_path, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == "error: SIGTERM received: quantize stopped, no bundle written"
    assert not partial.exists() and not output.exists()
    assert not list((tmp_path / "tmp").glob("tinyvla-calib-*")) and not list(tmp_path.glob(".bundle.*"))


def test_sigkilled_quantize_leftovers_are_removed_by_the_next_run_and_bundles_are_world_readable(
        tiny_output, profile, tmp_path):
    output = tmp_path / "bundle"
    proc = _start_quantize(_quantize_argv(tiny_output, profile, output), tmp_path)
    orphan = _wait_for(".bundle.partial-*", tmp_path, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert orphan.is_dir()
    running = tmp_path / f".bundle.partial-{os.getpid()}-inuse"  # a live writer's directory stays
    running.mkdir()

    proc = _start_quantize(_quantize_argv(tiny_output, profile, output), tmp_path,
                           preexec_fn=lambda: os.umask(0o077))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert not orphan.exists() and running.is_dir()
    modes = {p.relative_to(output): stat.S_IMODE(p.stat().st_mode) for p in [output, *output.rglob("*")]}
    assert modes[Path(".")] == 0o755 and (output / "manifest.json").is_file()
    assert all(mode == (0o755 if (output / p).is_dir() else 0o644) for p, mode in modes.items()), modes


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    from importlib.util import find_spec

    from drivers.camera.recording import record_synthetic

    if find_spec("pyrealsense2") is None:
        pytest.skip("pyrealsense2 is not installed (the test extra installs it on x86_64)")
    return record_synthetic(tmp_path_factory.mktemp("rec") / "synthetic.db3", frames=20, width=64, height=48, fps=30)


# ----------------------------------------------------------------------------- sim-arm --link


def test_sim_arm_link_refuses_to_replace_an_existing_file(tmp_path, capsys):
    existing = tmp_path / "important.txt"
    existing.write_text("keep me")
    code = main(["sim-arm", "--link", str(existing)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == f"error: --link {existing} exists and is not a symlink; refusing to replace it"
    assert existing.read_text() == "keep me" and not existing.is_symlink()


def test_sim_arm_link_replaces_a_stale_symlink(tmp_path):
    link = tmp_path / "arm"
    link.symlink_to(tmp_path / "gone")
    with SimArm(dof=6, space="ee", link=link):
        assert os.readlink(link).startswith("/dev/pts/")
    assert not link.exists() and not link.is_symlink()
