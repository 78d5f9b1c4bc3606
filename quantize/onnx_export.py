"""Export the backbone components to ONNX (the torch.export-based exporter) with static shapes."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch

from edge.errors import require
from quantize.onnx_gemm import linear_layers_as_gemm


# What every ONNX export of this toolkit is; with int8.RECIPE it keys cached exports.
EXPORT_RECIPE = {"opset": 18, "attention": "eager", "linear": "gemm"}


def export_onnx(module: torch.nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str]) -> Path:
    """Export `module` at the shapes of `args` to `path` (opset 18, static shapes, eager attention,
    linear layers as Gemm: see `quantize.onnx_gemm`)."""
    require("onnxscript", "quantize")
    module = module.eval()
    quiet = io.StringIO()
    with torch.no_grad(), contextlib.redirect_stdout(quiet), eager_attention(module):
        program = torch.onnx.export(
            module, args, dynamo=True, opset_version=18, input_names=input_names, output_names=output_names,
            verbose=False,
        )
        program.save(str(path))
    linear_layers_as_gemm(path)
    return path


def check_torch_export(module: torch.nn.Module, args: tuple) -> None:
    """`torch.export` must succeed: it is what the torch-tensorrt dynamo path consumes on device."""
    torch.export.export(module.eval(), args, strict=False)


@contextlib.contextmanager
def eager_attention(module: torch.nn.Module):
    """Export transformers' attention in its eager form. Exported from SDPA, the language model's
    causal mask becomes Where + IsNaN over [heads, L, L] tensors (40 % of its onnxruntime time at
    TinyVLA-S dimensions); eager attention exports an additive mask. Same outputs to ~1e-6."""
    configs = {id(m.config): m.config for m in module.modules()
               if getattr(getattr(m, "config", None), "_attn_implementation", None) not in (None, "eager")}
    previous = {key: config._attn_implementation for key, config in configs.items()}
    try:
        for config in configs.values():
            config._attn_implementation = "eager"
        yield
    finally:
        for key, config in configs.items():
            config._attn_implementation = previous[key]
