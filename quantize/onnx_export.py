"""Export the backbone components to ONNX (the torch.export-based exporter) with static shapes."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch

from edge.errors import require


def export_onnx(module: torch.nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str]) -> Path:
    """Export `module` at the shapes of `args` to `path` (opset 18, static shapes)."""
    require("onnxscript", "quantize")
    module = module.eval()
    quiet = io.StringIO()
    with torch.no_grad(), contextlib.redirect_stdout(quiet):
        program = torch.onnx.export(
            module, args, dynamo=True, opset_version=18, input_names=input_names, output_names=output_names,
            verbose=False,
        )
        program.save(str(path))
    return path


def check_torch_export(module: torch.nn.Module, args: tuple) -> None:
    """`torch.export` must succeed: it is what the torch-tensorrt dynamo path consumes on device."""
    torch.export.export(module.eval(), args, strict=False)
