"""torch-tensorrt (dynamo) at fp16 or int8 on CUDA devices, with an on-device engine cache.

Engines are specific to the device: they are built on the device at first run and cached in the
bundle's `engine_cache/`, keyed by TensorRT version, GPU compute capability, precision and input
shapes. A cached engine for another key is never used; it is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from edge.engines import require_engine
from edge.engines.torch_engine import DTYPES


def cache_key(precision: str, shapes: list[tuple[int, ...]]) -> str:
    """Everything an engine depends on, hashed."""
    import torch_tensorrt

    cc = torch.cuda.get_device_capability()
    facts = {"trt": torch_tensorrt.__version__, "cc": f"{cc[0]}.{cc[1]}", "precision": precision, "shapes": shapes}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


class TensorRTRunner:
    """Compile `module` with torch-tensorrt on first use, reuse the cached engine afterwards."""

    def __init__(self, module: torch.nn.Module, precision: str, example_inputs: list[torch.Tensor], cache_dir: Path,
                 component: str):
        require_engine("tensorrt", component)
        import torch_tensorrt

        shapes = [tuple(x.shape) for x in example_inputs]
        self.precision = precision
        path = Path(cache_dir) / f"{component}-{cache_key(precision, shapes)}.ep"
        inputs = [x.cuda() for x in example_inputs]
        if path.is_file():
            self.module = torch_tensorrt.load(str(path)).module()
        else:
            enabled = {torch.float16} if precision == "fp16" else {torch.float16, torch.int8} if precision == "int8" else {torch.float32}
            self.module = torch_tensorrt.compile(module.cuda().eval(), ir="dynamo", inputs=inputs, enabled_precisions=enabled)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch_tensorrt.save(self.module, str(path), inputs=inputs)
        self.dtype = DTYPES.get(precision, torch.float32)

    @torch.inference_mode()
    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.module(*[x.cuda() for x in inputs])
        torch.cuda.synchronize()
        return out.float().cpu()
