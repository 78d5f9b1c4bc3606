"""Head runners: the diffusion head's K-step DDIM loop with its noise-prediction network on the
engine the bundle names (`edge.engines.table.HEAD_ENGINES`, built by `load_head`).

Every runner is a callable (condition [1, H], noise [1, T, A]) → normalized chunk [1, T, A]
(float32, CPU). The sampler is always the verified `DDIMSampler` (same timesteps, same float32
coefficients); only the network call differs:

- `SampledHead`: the network is `ConditionalUnet1D.denoise` (torch fp32) or an ONNX graph of it
  on onnxruntime (int8 QDQ): one call per step, inputs (sample, step_feature, cond).
- `CudaGraphHead`: the whole loop in fp16/bf16 on CUDA, captured once as a CUDA graph, so a chunk
  is one graph replay instead of K × (dozens of kernel launches).
"""

from __future__ import annotations

import copy
from typing import Callable

import torch

from edge.policy.head import ConditionalUnet1D
from edge.policy.sampler import DDIMSampler

# The network's inputs in the order every head engine takes them (ONNX input names too).
NETWORK_INPUTS = ("sample", "step_feature", "cond")


class SampledHead:
    """The verified sampler calling `network(sample, step_feature, cond)` once per step; the step
    features come from the fp32 head's step-embedding MLP, computed once."""

    def __init__(self, network: Callable[..., torch.Tensor], head: ConditionalUnet1D, sampler: DDIMSampler):
        self.network, self.sampler = network, sampler
        with torch.inference_mode():
            self.step_features = head.step_features(sampler.timesteps)

    @torch.inference_mode()
    def __call__(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        features = self.step_features
        return self.sampler.sample(lambda i, x: self.network(x, features[i : i + 1], cond), noise.float())


class CudaGraphHead:
    """fp16 / bf16 head on CUDA with the K-step loop (the same sampler) captured once.

    Capture needs static tensors: each call copies the condition and noise into them and replays.
    The sampler's coefficients are CPU float32 scalars, baked into the graph as kernel arguments."""

    def __init__(self, head: ConditionalUnet1D, sampler: DDIMSampler, precision: str, device: torch.device | None = None):
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.device = device or torch.device("cuda")
        self.head = copy.deepcopy(head).to(self.device, dtype).eval()
        self.sampler = sampler
        cfg = head.cfg
        with torch.inference_mode():
            timesteps = sampler.timesteps.to(head.combine.weight.device)
            self.step_features = head.step_features(timesteps).to(self.device, dtype)
            self.cond = torch.zeros((1, head.combine.out_features), device=self.device, dtype=dtype)
            self.noise = torch.zeros((1, cfg.chunk_size, cfg.action_dim), device=self.device, dtype=dtype)
            self.out = self._capture()

    def _loop(self) -> torch.Tensor:
        return self.sampler.sample(lambda i, x: self.head.denoise(x, self.step_features[i : i + 1], self.cond), self.noise)

    def _capture(self) -> torch.Tensor:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up off the capture stream, as torch's CUDA graph docs require
            for _ in range(3):
                self._loop()
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            return self._loop()

    @torch.inference_mode()
    def __call__(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        self.cond.copy_(cond)
        self.noise.copy_(noise)
        self.graph.replay()
        return self.out.float().cpu()  # .cpu() waits for the replay: honest timings
