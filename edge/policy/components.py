"""The policy split into the components that engines run separately, with static shapes.

- vision:   pixel_values [cams, 3, S, S]                       → image_tokens [1, cams·P, H]
- language: prefix_ids [1, A], image_tokens [1, I, H], suffix_ids [1, B] → hidden [1, A+I+B, H]
- head:     torch (condition once, K DDIM steps), see `TinyVLANetwork.sample`

The prompt is split at `<image>`: the prefix (system prompt + " USER: ") is the same for every
instruction, and the suffix (instruction + " ASSISTANT: <|endoftext|>") is right-padded to the
bundle's prompt budget. Causal attention means real tokens never see the padding, and the head
pools over real tokens only, so padding does not change the result.
"""

from __future__ import annotations

import torch
from torch import nn

from edge.policy.network import TinyVLANetwork


class VisionComponent(nn.Module):
    """CLIP tower (patch tokens of the selected layer) + projector, cameras concatenated."""

    def __init__(self, network: TinyVLANetwork):
        super().__init__()
        self.encoder = network.vision_encoder()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(pixel_values)
        return feats.reshape(1, feats.shape[0] * feats.shape[1], feats.shape[2])


class LanguageComponent(nn.Module):
    """Token embedding, image splice and GPT-NeoX: the final hidden states of all tokens."""

    def __init__(self, network: TinyVLANetwork):
        super().__init__()
        self.embed_in = network.gpt_neox.embed_in
        self.gpt_neox = network.gpt_neox

    def forward(self, prefix_ids: torch.Tensor, image_tokens: torch.Tensor, suffix_ids: torch.Tensor) -> torch.Tensor:
        embeds = torch.cat([self.embed_in(prefix_ids), image_tokens, self.embed_in(suffix_ids)], dim=1)
        return self.gpt_neox(inputs_embeds=embeds, use_cache=False).last_hidden_state


def suffix_length(ids: list[int], image_token: int) -> int:
    """Prompt tokens after the image token (instruction + ' ASSISTANT: <|endoftext|>'): what the
    bundle's prompt budget limits."""
    return len(ids) - ids.index(image_token) - 1


def split_prompt(ids: list[int], image_token: int, suffix_len: int, pad_id: int) -> tuple[list[int], list[int], int]:
    """(prefix, right-padded suffix, real suffix length) from prompt ids with one image token."""
    pos = ids.index(image_token)
    prefix, suffix = ids[:pos], ids[pos + 1 :]
    if len(suffix) > suffix_len:
        raise ValueError(f"instruction too long: {len(suffix)} prompt tokens, the budget is {suffix_len}")
    return prefix, suffix + [pad_id] * (suffix_len - len(suffix)), len(suffix)
