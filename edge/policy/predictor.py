"""`TorchPredictor`: a training output's `Policy` run stage by stage in torch fp32, as a
`ChunkPredictor` (edge.policy.contract), the reference the bundle's engines are measured against."""

from __future__ import annotations

import torch

from edge.policy.components import suffix_length
from edge.policy.contract import Prediction, Stopwatch
from edge.policy.policy import Policy
from edge.policy.prompt import IMAGE_TOKEN_INDEX
from edge.policy.sampler import DDIMSampler


class TorchPredictor:
    """A `Policy` run stage by stage in torch (fp32), with a fixed DDIM sampler."""

    def __init__(self, policy: Policy, sampler: DDIMSampler | None = None, camera_names: tuple[str, ...] = (),
                 max_prompt_tokens: int = 256, seed: int = 0):
        self.policy = policy
        self.config, self.stats, self.decoder = policy.config, policy.stats, policy.decoder
        cfg = policy.config
        self.sampler = sampler or policy.sampler()
        self.camera_names = camera_names or cfg.camera_names or tuple(f"cam{i}" for i in range(cfg.num_cameras))
        self.chunk_size, self.action_dim, self.state_dim = cfg.head.chunk_size, cfg.head.action_dim, cfg.head.state_dim
        self.head_steps = self.sampler.steps
        self.max_prompt_tokens = max_prompt_tokens
        self._generator = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            self._step_features = policy.network.embed_out.step_features(self.sampler.timesteps)

    @torch.inference_mode()
    def predict(self, images, state, instruction, noise=None) -> Prediction:
        watch = Stopwatch()
        net = self.policy.network
        obs = self.policy.prepare(images, state, instruction)
        watch.lap("preprocess")
        image_tokens = net.encode_images(obs.pixel_values)
        watch.lap("vision")
        hidden = net.language_model(net.splice(obs.input_ids, image_tokens))
        watch.lap("language")
        cond = net.embed_out.encode_condition(hidden, obs.states)
        noise = self.policy.initial_noise(self._generator) if noise is None else torch.as_tensor(noise, dtype=torch.float32)
        normalized = self.sample_head(cond, noise)
        watch.lap("head")
        return Prediction(normalized[0].numpy(), watch.times)

    def sample_head(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The head's normalized chunk [1, chunk, action_dim] for one condition and initial noise
        (benchmarks/policy_latency.py swaps another implementation's head in here)."""
        return self.policy.network.sample(cond, noise, self.sampler, self._step_features)

    def prompt_tokens(self, instruction: str) -> int:
        """Prompt tokens after the image token, as a bundle built from this policy budgets them."""
        return suffix_length(self.policy.tokenizer.encode_instruction(instruction), IMAGE_TOKEN_INDEX)
