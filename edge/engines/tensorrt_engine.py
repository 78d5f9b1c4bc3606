"""torch-tensorrt (dynamo) at fp16 or int8 on CUDA devices, with the device's engine cache.

Engines are specific to the device: built at first run and kept in the device's engine cache
(`edge.engines.cache`), keyed by the sha256 of the verified weights plus TensorRT version, GPU
compute capability, precision and input shapes. An engine for another key, or whose bytes do not
match their recorded sha256, is never loaded; it is rebuilt.
"""

from __future__ import annotations

import io

import torch

from edge.engines.table import require
from edge.engines.cache import EngineCache, engine_key
from edge.engines.torch_engine import DTYPES


def engine_facts(precision: str, shapes: list[tuple[int, ...]]) -> dict:
    """Everything besides the weights that an engine depends on."""
    import torch_tensorrt

    cc = torch.cuda.get_device_capability()
    return {"trt": torch_tensorrt.__version__, "cc": f"{cc[0]}.{cc[1]}", "precision": precision,
            "shapes": [list(s) for s in shapes]}


class TensorRTRunner:
    """Compile `module` with torch-tensorrt on first use, reuse the verified cached engine afterwards."""

    def __init__(self, module: torch.nn.Module, precision: str, example_inputs: list[torch.Tensor],
                 weights_sha256: str, component: str, cache: EngineCache | None = None):
        require("torch-tensorrt", component)
        import torch_tensorrt

        cache = cache or EngineCache()
        key = engine_key(weights_sha256, component, engine_facts(precision, [tuple(x.shape) for x in example_inputs]))
        inputs = [x.cuda() for x in example_inputs]
        cached = cache.load(key)
        if cached is not None:
            # torch.export.load reads file objects; importing torch_tensorrt registered its engine ops.
            self.module = torch.export.load(io.BytesIO(cached)).module()
        else:
            enabled = {torch.float16} if precision == "fp16" else {torch.float16, torch.int8} if precision == "int8" else {torch.float32}
            self.module = torch_tensorrt.compile(module.cuda().eval(), ir="dynamo", inputs=inputs, enabled_precisions=enabled)
            staging = cache.staging_path(key)
            torch_tensorrt.save(self.module, str(staging), inputs=inputs)
            cache.store(key, staging)
        self.precision = precision
        self.dtype = DTYPES.get(precision, torch.float32)

    @torch.inference_mode()
    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.module(*[x.cuda() for x in inputs])
        torch.cuda.synchronize()
        return out  # on the GPU: the next component takes it from there
