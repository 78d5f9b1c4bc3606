"""docs/python-api.md runs as written: its python blocks, top to bottom in one namespace, in a
directory where `tinyvla-bundle` is a real (tiny, torch fp32) bundle built here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_page_has_the_examples_it_promises():
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) == 5
    for name in ("load_policy", "open_camera", "connect_arm", "run_loop", "PolicyClient"):
        assert any(name in block for block in blocks), name


@pytest.mark.slow  # builds a bundle (about 20 s on 2 busy cores)
def test_every_python_block_runs_as_written(fp32_bundle, tmp_path, monkeypatch):
    (tmp_path / "tinyvla-bundle").symlink_to(fp32_bundle[0])
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "python_api_doc"}
    for number, block in enumerate(python_blocks(DOC.read_text()), 1):
        try:
            exec(compile(block, f"{DOC.name} block {number}", "exec"), namespace)
        except Exception as e:
            pytest.fail(f"docs/python-api.md block {number} failed: {type(e).__name__}: {e}")
    report = namespace["report"]
    assert report["stop"]["reason"] == "completed" and report["ticks"] == 40
    assert namespace["targets"], "the callback saw no target that followed the policy"
    assert namespace["result"]["actions"].shape[0] == namespace["policy"].chunk_size
    assert (tmp_path / "episode.mcap").stat().st_size > 0 and (tmp_path / "episode" / "meta.json").is_file()
