"""torch: fp32 / fp16 / bf16 components, optionally torch.compile'd."""

from __future__ import annotations

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TorchRunner:
    """A module at a precision on a device; inputs are moved and cast in, the output stays on the
    device at the module's precision (the next component takes it from there)."""

    def __init__(self, module: torch.nn.Module, precision: str = "fp32", device: torch.device | None = None,
                 compile: bool = False):
        self.device = device or default_device()
        self.dtype = DTYPES[precision]
        self.module = module.to(device=self.device, dtype=self.dtype).eval()
        if compile:
            self.module = torch.compile(self.module)

    @torch.inference_mode()
    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        cast = [x.to(self.device, self.dtype) if x.is_floating_point() else x.to(self.device) for x in inputs]
        out = self.module(*cast)
        if self.device.type == "cuda":
            torch.cuda.synchronize()  # honest timings: the clock is read after the GPU finished
        return out
