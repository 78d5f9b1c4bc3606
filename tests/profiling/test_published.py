"""`tinyvla-edge profile` without a bundle: a random-weight bundle of a published TinyVLA size,
built once (cached), profiled, and reported as random weights.

The full-size build takes minutes on a small CPU, so the end-to-end test runs the same code path
with the tiny model's dimensions; the published dimensions are checked against the paper's
parameter counts (reference/tinyvla-format.md §1.1) without allocating them."""

from __future__ import annotations

import json

import pytest
import torch

from edge.cli import main
from edge.policy.network import TinyVLANetwork
from edge.policy.tiny import tiny_config
from edge.profiling import published

# Paper totals (LLM without its LM head + CLIP-L/14-336 + projector + UNet head), reference §1.1.
PAPER_TOTALS = {"tinyvla-s": 421.8e6, "tinyvla-b": 740.4e6, "tinyvla-h": 1317e6}


@pytest.mark.parametrize("model", published.PUBLISHED_MODELS)
def test_published_dimensions_give_the_papers_parameter_counts(model):
    config = published.published_config(model, num_cameras=2)
    with torch.device("meta"):
        count = sum(p.numel() for p in TinyVLANetwork(config).parameters())
    assert count == pytest.approx(PAPER_TOTALS[model], rel=0.001)
    assert config.variant == model[-1].upper()
    assert (config.vision.image_size, config.vision.hidden_size, config.vision.num_hidden_layers) == (336, 1024, 24)


@pytest.fixture()
def tiny_published(monkeypatch, tmp_path):
    """The published-model path with the tiny model's dimensions, cached under tmp_path."""
    monkeypatch.setenv("TINYVLA_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(published, "published_config", lambda model, num_cameras: tiny_config(num_cameras=num_cameras))
    return tmp_path / "cache" / "published"


def test_profile_without_a_bundle_builds_once_and_says_the_weights_are_random(tiny_published, tmp_path, capsys):
    args = ["profile", "--profile", "cpu-dev", "--model-only", "--ticks", "2", "--warmup", "0", "--json"]
    assert main([*args, "--output", str(tmp_path / "first")]) == 0
    first = capsys.readouterr()
    assert "[1] random tinyvla-s training output" in first.err and "done in" in first.err
    run = json.loads((tmp_path / "first" / "profile.json").read_text())["runs"][0]
    assert run["profile"] == "cpu-dev" and len(run["stages_ms"]["head"]) == 2
    # cpu_contention depends on this machine's load at the time, not on what is tested here.
    assert [w["kind"] for w in run["warnings"] if w["kind"] != "cpu_contention"] == ["random_weights"]
    assert "actions are not" in json.loads(first.out)["runs"][0]["warnings"][0]
    report = (tmp_path / "first" / "report.md").read_text()
    assert "random weights with the published tinyvla-s dimensions" in report
    # Random weights are not a measurement fault: only another warning asks for a rerun.
    faults = [w for w in run["warnings"] if w["kind"] != "random_weights"]
    assert ("fix the conditions and rerun" in report) == bool(faults)
    bundles = list(tiny_published.glob("tinyvla-s-*/bundle-cpu-dev-*/bundle/manifest.json"))
    assert len(bundles) == 1

    assert main([*args, "--model", "tinyvla-s", "--output", str(tmp_path / "second")]) == 0
    second = capsys.readouterr().err
    assert "cached" in second and "[1]" not in second  # nothing rebuilt
    assert list(tiny_published.glob("tinyvla-s-*/bundle-cpu-dev-*/bundle/manifest.json")) == bundles


def test_unknown_model_and_bundle_with_model_are_one_line_errors(tiny_output, tmp_path, capsys):
    assert main(["profile", "--profile", "cpu-dev", "--model", "tinyvla-xl", "--output", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err.strip() == ("error: 'tinyvla-xl' is not one of 'tinyvla-s', 'tinyvla-b', "
                                              "'tinyvla-h'. (option '--model'; see tinyvla-edge profile -h)")
    assert main(["profile", str(tiny_output), "--profile", "cpu-dev", "--model", "tinyvla-s"]) == 1
    assert capsys.readouterr().err.strip() == "error: pass either a BUNDLE or --model, not both"
