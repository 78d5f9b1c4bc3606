"""`Policy`: the network plus everything needed to turn an observation into robot actions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edge.policy.actions import ActionChunk, ActionDecoder, NormStats
from edge.policy.config import PolicyConfig
from edge.policy.network import TinyVLANetwork
from edge.policy.preprocess import ImageSettings, preprocess_cameras
from edge.policy.prompt import PromptTokenizer
from edge.policy.sampler import DDIMSampler


@dataclass(frozen=True)
class PreparedObservation:
    """Tensors for one observation (batch 1)."""

    input_ids: torch.Tensor  # [1, L] with one −200
    pixel_values: torch.Tensor  # [1, cams, 3, S, S]
    states: torch.Tensor  # [1, state_dim], normalized


class Policy:
    """A loaded TinyVLA policy (fp32 torch): preprocess → backbone → K-step DDIM → actions."""

    def __init__(
        self,
        network: TinyVLANetwork,
        tokenizer: PromptTokenizer,
        image_settings: ImageSettings,
        stats: NormStats,
        source: dict | None = None,
    ):
        self.network = network.eval()
        self.tokenizer = tokenizer
        self.image_settings = image_settings
        self.stats = stats
        self.source = source or {}
        self.decoder = ActionDecoder(stats, network.cfg.action_layout)

    @property
    def config(self) -> PolicyConfig:
        return self.network.cfg

    def sampler(self, steps: int | None = None) -> DDIMSampler:
        """The head's DDIM schedule: a distilled head's own timesteps (recorded by `distill`) when
        `steps` is None or its K, else the reference's leading spacing at `steps` (default 10)."""
        distilled = self.source.get("distillation")
        if distilled and steps in (None, distilled.get("steps")):
            return DDIMSampler(distilled["timesteps"], self.config.train_timesteps)
        return DDIMSampler.leading(steps or self.config.inference_steps, self.config.train_timesteps)

    def prepare(self, images: list[np.ndarray], state: np.ndarray, instruction: str) -> PreparedObservation:
        """Preprocess one observation: images in camera order, raw state, instruction."""
        if len(images) != self.config.num_cameras:
            raise ValueError(f"the policy takes {self.config.num_cameras} camera images, got {len(images)}")
        ids = torch.tensor([self.tokenizer.encode_instruction(instruction)], dtype=torch.long)
        pixels = preprocess_cameras(images, self.image_settings)[None]
        states = torch.from_numpy(self.stats.normalize_state(np.asarray(state, dtype=np.float32)))[None]
        return PreparedObservation(ids, pixels, states)

    def initial_noise(self, generator: torch.Generator | None = None) -> torch.Tensor:
        h = self.config.head
        return torch.randn((1, h.chunk_size, h.action_dim), generator=generator)

    @torch.inference_mode()
    def predict(
        self,
        images: list[np.ndarray],
        state: np.ndarray,
        instruction: str,
        noise: torch.Tensor | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> ActionChunk:
        """Run one observation through the whole policy (float32, batch 1)."""
        obs = self.prepare(images, state, instruction)
        if noise is None:
            noise = self.initial_noise(generator)
        h = self.config.head
        if tuple(noise.shape) != (1, h.chunk_size, h.action_dim):
            raise ValueError(f"noise must have shape (1, {h.chunk_size}, {h.action_dim}), got {tuple(noise.shape)}")
        out = self.network(obs.input_ids, obs.pixel_values, obs.states, noise.float(), self.sampler(steps))
        return self.decoder.decode(out[0].numpy())

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per component."""
        neox = self.network.gpt_neox
        vision = sum(p.numel() for p in neox.vision_tower.parameters())
        projector = sum(p.numel() for p in neox.mm_projector.parameters())
        head = sum(p.numel() for p in self.network.embed_out.parameters())
        total = sum(p.numel() for p in self.network.parameters())
        return {
            "vision_tower": vision,
            "projector": projector,
            "language_model": total - vision - projector - head,
            "head": head,
            "total": total,
        }
