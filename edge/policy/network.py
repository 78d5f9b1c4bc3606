"""The TinyVLA network: LLaVA-Pythia backbone (CLIP tower → projector → GPT-NeoX) + diffusion head.

Attribute names are the reference `LlavaPythiaForCausalLM`'s, so parameter names are the reference
keys whatever transformers version is installed: `gpt_neox.{embed_in, layers.N…, final_layer_norm}`,
`gpt_neox.vision_tower.vision_model…` (TinyVLA's `CLIPVisionTower` holds a `CLIPVisionTransformer`
as `vision_model`), `gpt_neox.mm_projector.{0,2}` and `embed_out.*` (the head took the LM head's
name). Files in other layouts are renamed on load by `edge.policy.keymap`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, GPTNeoXConfig, GPTNeoXModel

from edge.policy.config import PolicyConfig
from edge.policy.head import ConditionalUnet1D
from edge.policy.prompt import IMAGE_TOKEN_INDEX
from edge.policy.sampler import DDIMSampler


def clip_config(cfg: PolicyConfig) -> CLIPVisionConfig:
    v = cfg.vision
    return CLIPVisionConfig(
        hidden_size=v.hidden_size,
        intermediate_size=v.intermediate_size,
        num_hidden_layers=v.num_hidden_layers,
        num_attention_heads=v.num_attention_heads,
        image_size=v.image_size,
        patch_size=v.patch_size,
        num_channels=v.num_channels,
        hidden_act=v.hidden_act,
        layer_norm_eps=v.layer_norm_eps,
        projection_dim=v.projection_dim,
    )


def neox_config(cfg: PolicyConfig) -> GPTNeoXConfig:
    lm = cfg.language
    return GPTNeoXConfig(
        hidden_size=lm.hidden_size,
        num_hidden_layers=lm.num_hidden_layers,
        num_attention_heads=lm.num_attention_heads,
        intermediate_size=lm.intermediate_size,
        vocab_size=lm.vocab_size,
        rotary_pct=lm.rotary_pct,
        rotary_emb_base=lm.rotary_emb_base,
        max_position_embeddings=lm.max_position_embeddings,
        layer_norm_eps=lm.layer_norm_eps,
        use_parallel_residual=lm.use_parallel_residual,
        hidden_act=lm.hidden_act,
        pad_token_id=cfg.pad_token_id,
    )


def build_projector(cfg: PolicyConfig) -> nn.Module:
    hidden = cfg.language.hidden_size
    if cfg.projector_type == "linear":
        return nn.Linear(cfg.vision.hidden_size, hidden)
    return nn.Sequential(nn.Linear(cfg.vision.hidden_size, hidden), nn.GELU(), nn.Linear(hidden, hidden))


def clip_transformer(cfg: PolicyConfig) -> nn.Module:
    """CLIP's vision transformer (embeddings, pre_layrnorm, encoder, post_layernorm) as a module
    with exactly those children: transformers 4.x nests it in `CLIPVisionModel.vision_model`,
    transformers 5 made `CLIPVisionModel` itself that module."""
    model = CLIPVisionModel(clip_config(cfg))
    return getattr(model, "vision_model", model)


class CLIPVisionTower(nn.Module):
    """TinyVLA's vision tower wrapper: the transformer under the attribute `vision_model`."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.vision_model = clip_transformer(cfg)

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool = True):
        return self.vision_model(pixel_values, output_hidden_states=output_hidden_states)


class VisionEncoder(nn.Module):
    """CLIP tower + projector for one batch of images → projected patch tokens [N, P, H]."""

    def __init__(self, tower: nn.Module, projector: nn.Module, select_layer: int, select_feature: str):
        super().__init__()
        self.tower, self.projector = tower, projector
        self.select_layer, self.select_feature = select_layer, select_feature

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.tower(pixel_values, output_hidden_states=True)
        feats = out.hidden_states[self.select_layer]
        if self.select_feature == "patch":
            feats = feats[:, 1:]
        return self.projector(feats)


class TinyVLANetwork(nn.Module):
    """Backbone + head, as plain torch modules (no generation, no KV cache: one forward pass)."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.gpt_neox = GPTNeoXModel(neox_config(cfg))
        self.gpt_neox.vision_tower = CLIPVisionTower(cfg)
        self.gpt_neox.mm_projector = build_projector(cfg)
        self.embed_out = ConditionalUnet1D(cfg.language.hidden_size, cfg.head)

    @property
    def head(self) -> ConditionalUnet1D:
        return self.embed_out

    def vision_encoder(self) -> VisionEncoder:
        """The vision component (tower + projector) as one module, e.g. for export."""
        v = self.cfg.vision
        return VisionEncoder(self.gpt_neox.vision_tower.vision_model, self.gpt_neox.mm_projector, v.select_layer, v.select_feature)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, cams, 3, S, S] → per-sample image tokens [B, cams·P, H], cameras concatenated
        on the token axis in camera order (`token_cat`)."""
        b, cams = pixel_values.shape[:2]
        feats = self.vision_encoder()(pixel_values.flatten(0, 1))
        return feats.reshape(b, cams * feats.shape[1], feats.shape[2])

    def splice(self, input_ids: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        """Embed the prompt and put the image tokens where `<image>` (−200) stands.

        Prompts are built from a fixed prefix, so the placeholder sits at the same index in
        every row; a batch where it does not is refused."""
        positions = (input_ids == IMAGE_TOKEN_INDEX).nonzero()
        if positions.shape[0] != input_ids.shape[0] or not bool((positions[:, 1] == positions[0, 1]).all()):
            raise ValueError("each prompt must hold exactly one <image> placeholder, at the same index")
        pos = int(positions[0, 1])
        embed = self.gpt_neox.embed_in
        before = embed(input_ids[:, :pos])
        after = embed(input_ids[:, pos + 1 :].clamp(min=0))
        return torch.cat([before, image_tokens.to(before.dtype), after], dim=1)

    def language_model(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """GPT-NeoX over the spliced sequence → final hidden states (after final_layer_norm)."""
        return self.gpt_neox(inputs_embeds=inputs_embeds, use_cache=False).last_hidden_state

    def backbone(self, input_ids: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """Prompt ids [B, L] (with one −200) + images [B, cams, 3, S, S] → hidden states."""
        return self.language_model(self.splice(input_ids, self.encode_images(pixel_values)))

    def token_mask(self, input_ids: torch.Tensor, valid_lengths: torch.Tensor | None) -> torch.Tensor | None:
        """Mask of real tokens in the spliced sequence when prompts are right-padded."""
        if valid_lengths is None:
            return None
        total = input_ids.shape[1] - 1 + self.cfg.image_tokens
        spliced_lengths = valid_lengths - 1 + self.cfg.image_tokens
        return torch.arange(total)[None, :] < spliced_lengths[:, None]

    def sample(
        self,
        cond: torch.Tensor,
        noise: torch.Tensor,
        sampler: DDIMSampler,
        step_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """K-step DDIM from `noise` [B, T, A] given the condition [B, H] → normalized chunk."""
        head = self.embed_out
        if step_features is None:
            step_features = head.step_features(sampler.timesteps)
        return sampler.sample(lambda i, x: head.denoise(x, step_features[i : i + 1], cond), noise)

    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        states: torch.Tensor,
        noise: torch.Tensor,
        sampler: DDIMSampler,
        valid_lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The whole policy: observation → normalized action chunk [B, T, A]."""
        hidden = self.backbone(input_ids, pixel_values)
        cond = self.embed_out.encode_condition(hidden, states, self.token_mask(input_ids, valid_lengths))
        return self.sample(cond, noise, sampler)
