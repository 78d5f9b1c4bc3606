"""Head engines of the table: which runner each (engine, precision) gets, and a CUDA-only head
refused in one line where no GPU exists (issue 17 item 1, issue 19 item 1)."""

from __future__ import annotations

import shutil

import pytest
import torch

from edge.bundle import load_predictor
from edge.engines import head_runners
from edge.engines.table import HEAD_ENGINES, head_builder_stand_in, head_engine, load_head, require_head
from edge.errors import BundleError
from tests.security.conftest import edit_manifest

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="refusal and fakes only where CUDA cannot exist")


def test_profile_names_map_to_head_rows_and_unknown_ones_list_the_head_engines():
    assert head_engine("onnxruntime", "int8") is HEAD_ENGINES[("onnxruntime-cpu", "int8")]
    assert head_engine("torch", "fp16").file_kind == "safetensors"
    with pytest.raises(ValueError, match="head engines: torch fp32, torch fp16"):
        head_engine("tensorrt", "fp16")


def test_fp32_head_runs_the_verified_sampler_on_the_torch_head(tiny_policy, fixed_noise):
    head, sampler = tiny_policy.network.head, tiny_policy.sampler()
    runner = load_head(HEAD_ENGINES[("torch", "fp32")], head, sampler)
    cond = torch.randn(1, head.combine.out_features, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = tiny_policy.network.sample(cond, fixed_noise, sampler)
    torch.testing.assert_close(runner(cond, fixed_noise), expected, rtol=0, atol=0)


@no_cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_head_is_refused_here_in_one_line(precision):
    with pytest.raises(BundleError) as refused:
        require_head("torch", precision)
    message = str(refused.value)
    assert "\n" not in message and "CUDA graph" in message and "needs a CUDA GPU" in message
    # The builder measures such a head with the fp32 torch head instead (recorded as not measured).
    assert head_builder_stand_in(HEAD_ENGINES[("torch", precision)]) is HEAD_ENGINES[("torch", "fp32")]


@no_cuda
def test_fp16_head_bundle_is_refused_by_the_loader_and_the_cli(fp32_bundle, tmp_path, capsys):
    from edge.cli import main

    source, _ = fp32_bundle
    bundle = tmp_path / "fp16-head"
    shutil.copytree(source, bundle)
    edit_manifest(bundle, lambda m: m["head"].update(precision="fp16"))
    with pytest.raises(BundleError, match="head: engine torch fp16"):
        load_predictor(bundle)
    code = main(["inspect", str(bundle)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "head: engine torch fp16" in err and "CUDA" in err and len(err.splitlines()) == 1


@no_cuda
def test_fp16_head_is_captured_as_a_cuda_graph_when_cuda_is_present(tiny_policy, monkeypatch):
    """A fake CUDA (torch.cuda.is_available → True) and a recording CudaGraphHead: the selection
    logic only; the real capture runs in benchmarks/gpu_check.py on a GPU."""
    built = []

    class RecordingGraphHead:
        def __init__(self, head, sampler, precision):
            built.append((head, sampler, precision))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(head_runners, "CudaGraphHead", RecordingGraphHead)
    head, sampler = tiny_policy.network.head, tiny_policy.sampler()
    runner = load_head(head_engine("torch", "fp16"), head, sampler)
    assert isinstance(runner, RecordingGraphHead) and built == [(head, sampler, "fp16")]
    assert isinstance(load_head(head_engine("torch", "fp32"), head, sampler), head_runners.SampledHead)
