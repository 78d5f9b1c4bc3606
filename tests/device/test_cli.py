"""The install and doctor commands: thin, --json, one-line errors."""

from __future__ import annotations

import json

from edge.cli import main
from tests.device.conftest import INDEX_URL, REALSENSE_SOURCE
from tests.device.jetson_tree import ORIN_NANO_SUPER_JP62, snapshot


def test_install_dry_run_json_on_a_staged_root(staged, capsys, monkeypatch):
    root = staged(ORIN_NANO_SUPER_JP62)
    monkeypatch.setenv("TINYVLA_EDGE_REALSENSE_SOURCE", REALSENSE_SOURCE)
    before = snapshot(root)
    code = main(["install", "--root", str(root), "--profile", "orin-nano-8gb", "--user", "robot",
                 "--index-url", INDEX_URL, "--dry-run", "--json"])
    assert code == 0 and snapshot(root) == before
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == "dry-run" and result["device"]["power_modes"]["25W"] == 1


def test_install_text_plan_shows_file_contents_and_commands(staged, capsys, monkeypatch):
    root = staged(ORIN_NANO_SUPER_JP62)
    monkeypatch.setenv("TINYVLA_EDGE_REALSENSE_SOURCE", REALSENSE_SOURCE)
    assert main(["install", "--root", str(root), "--user", "robot", "--index-url", INDEX_URL, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing below has been changed" in out
    assert "$ nvpmodel -m 1" in out and "| CPUAffinity=1-5" in out and "| +/swapfile none swap sw 0 0" in out


def test_install_here_is_one_line_error_not_a_traceback(capsys):
    code = main(["install", "--profile", "cpu-dev", "--user", "robot"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: not a Jetson") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
