"""TinyVLA's diffusion head: Chi et al.'s `ConditionalUnet1D` behind TinyVLA's front-end.

Module and parameter names are the reference's `embed_out.*` keys (TinyVLA's
`policy_heads/models/droid_unet_diffusion.py`, after diffusion_policy's `conditional_unet1d.py`),
including the `.conv` inside `Downsample1d`/`Upsample1d`, so training outputs and native bundles
share one naming (docs/checkpoint-format.md). Two additions for deployment, neither changing the
result: the condition front-end (pool, LayerNorm, state, Linear) can be computed once per
observation (`encode_condition`) instead of once per denoising step, and the sinusoidal step
table is precomputed for all training timesteps.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from edge.policy.config import HeadConfig, TRAIN_TIMESTEPS


def sinusoidal_table(dim: int, timesteps: int, faithful_bf16: bool) -> torch.Tensor:
    """Sinusoidal step embeddings for t = 0..timesteps-1, as float32 [timesteps, dim].

    With `faithful_bf16` the arithmetic is the reference's: frequency table, product and sin/cos
    all in bfloat16 (it hard-codes `SinusoidalPosEmb(dim, torch.bfloat16)`), then cast up.
    """
    half = dim // 2
    scale = math.log(10000) / (half - 1)
    dtype = torch.bfloat16 if faithful_bf16 else torch.float32
    freqs = torch.exp(torch.arange(half, dtype=dtype) * -scale)
    t = torch.arange(timesteps, dtype=torch.long)
    args = t[:, None] * freqs[None, :]
    return torch.cat((args.sin(), args.cos()), dim=-1).float()


class SinusoidalPosEmb(nn.Module):
    """Table lookup of the sinusoidal step embedding (no parameters, like the reference's)."""

    def __init__(self, dim: int, faithful_bf16: bool, timesteps: int = TRAIN_TIMESTEPS):
        super().__init__()
        self.dim = dim
        self.register_buffer("table", sinusoidal_table(dim, timesteps, faithful_bf16), persistent=False)

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        return self.table[timesteps.long()]


class Downsample1d(nn.Module):
    """Stride-2 convolution, held as `.conv` like diffusion_policy's (key `….2.conv.weight`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample1d(nn.Module):
    """Stride-2 transposed convolution, held as `.conv` like diffusion_policy's."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.ConvTranspose1d(dim, dim, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Conv1dBlock(nn.Module):
    """Conv1d → GroupNorm → Mish."""

    def __init__(self, inp: int, out: int, kernel_size: int, n_groups: int = 8):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(inp, out, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out),
            nn.Mish(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ConditionalResidualBlock1D(nn.Module):
    """Two conv blocks with FiLM (per-channel scale and bias from the condition) between them."""

    def __init__(self, inp: int, out: int, cond_dim: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            [Conv1dBlock(inp, out, kernel_size, n_groups), Conv1dBlock(out, out, kernel_size, n_groups)]
        )
        self.out_channels = out
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, out * 2), nn.Unflatten(-1, (-1, 1)))
        self.residual_conv = nn.Conv1d(inp, out, 1) if inp != out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.blocks[0](x)
        embed = self.cond_encoder(cond).reshape(cond.shape[0], 2, self.out_channels, 1)
        out = embed[:, 0] * out + embed[:, 1]
        out = self.blocks[1](out)
        return out + self.residual_conv(x)


class ConditionalUnet1D(nn.Module):
    """The diffusion head. `forward` has the reference signature; the runtime uses
    `encode_condition` once per observation and `denoise` once per step."""

    def __init__(self, global_cond_dim: int, cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg
        dims = [cfg.action_dim, *cfg.down_dims]
        start = cfg.down_dims[0]
        k, g, dsed = cfg.kernel_size, cfg.n_groups, cfg.step_embed_dim
        cond_dim = dsed + global_cond_dim

        self.norm_after_pool = nn.LayerNorm(global_cond_dim)
        self.combine = nn.Linear(global_cond_dim + cfg.state_dim, global_cond_dim)
        self.diffusion_step_encoder = nn.Sequential(
            SinusoidalPosEmb(dsed, cfg.faithful_bf16_step_embedding),
            nn.Linear(dsed, dsed * 4),
            nn.Mish(),
            nn.Linear(dsed * 4, dsed),
        )
        in_out = list(zip(dims[:-1], dims[1:]))
        mid = dims[-1]
        self.mid_modules = nn.ModuleList(
            [ConditionalResidualBlock1D(mid, mid, cond_dim, k, g) for _ in range(2)]
        )
        self.down_modules = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(in_out):
            last = i >= len(in_out) - 1
            self.down_modules.append(
                nn.ModuleList(
                    [
                        ConditionalResidualBlock1D(d_in, d_out, cond_dim, k, g),
                        ConditionalResidualBlock1D(d_out, d_out, cond_dim, k, g),
                        Downsample1d(d_out) if not last else nn.Identity(),
                    ]
                )
            )
        self.up_modules = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(reversed(in_out[1:])):
            last = i >= len(in_out) - 1
            self.up_modules.append(
                nn.ModuleList(
                    [
                        ConditionalResidualBlock1D(d_out * 2, d_in, cond_dim, k, g),
                        ConditionalResidualBlock1D(d_in, d_in, cond_dim, k, g),
                        Upsample1d(d_in) if not last else nn.Identity(),
                    ]
                )
            )
        self.final_conv = nn.Sequential(Conv1dBlock(start, start, k, g), nn.Conv1d(start, cfg.action_dim, 1))

    def encode_condition(
        self, hidden_states: torch.Tensor, states: torch.Tensor, token_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Pool the backbone's hidden states [B, L, H] (over valid tokens), LayerNorm, append the
        normalized state [B, state_dim], project: the per-observation condition [B, H]."""
        if token_mask is None:
            pooled = hidden_states.mean(dim=1)
        else:
            m = token_mask.to(hidden_states.dtype).unsqueeze(-1)
            pooled = (hidden_states * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
        pooled = self.norm_after_pool(pooled)
        return self.combine(torch.cat([pooled, states.to(pooled.dtype)], dim=-1))

    def step_features(self, timesteps: torch.Tensor) -> torch.Tensor:
        """The step-embedding MLP output for integer timesteps [N] → [N, step_embed_dim]."""
        table = self.diffusion_step_encoder[0](timesteps)
        mlp = self.diffusion_step_encoder[1:]
        return mlp(table.to(mlp[0].weight.dtype))

    def denoise(self, sample: torch.Tensor, step_feature: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Predict the noise of `sample` [B, T, A] given the step's features [B, dsed] and the
        condition [B, H]."""
        with _cpu_conv_path(sample):
            return self._unet(sample, step_feature, cond)

    def _unet(self, sample: torch.Tensor, step_feature: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        feature = torch.cat([step_feature.expand(cond.shape[0], -1), cond], dim=-1)
        x = sample.moveaxis(-1, -2)
        skips = []
        for res1, res2, down in self.down_modules:
            x = res2(res1(x, feature), feature)
            skips.append(x)
            x = down(x)
        for block in self.mid_modules:
            x = block(x, feature)
        for res1, res2, up in self.up_modules:
            x = torch.cat((x, skips.pop()), dim=1)
            x = up(res2(res1(x, feature), feature))
        return self.final_conv(x).moveaxis(-1, -2)

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor | int, global_cond: torch.Tensor, states: torch.Tensor
    ) -> torch.Tensor:
        """Reference-compatible call: noise prediction from raw hidden states, every step."""
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([timestep], dtype=torch.long)
        timestep = timestep.reshape(-1).expand(sample.shape[0])
        cond = self.encode_condition(global_cond, states)
        return self.denoise(sample, self.step_features(timestep), cond)


def _cpu_conv_path(sample: torch.Tensor):
    """On CPU, run the UNet's Conv1d layers without oneDNN. On an idle 2-core machine both paths
    take the same ~21 ms per TinyVLA-S step, but with the cores contended (the control loop,
    camera threads and onnxruntime share them on a device) oneDNN's conv degraded to 1.5–1.8 s
    per step while the native path stayed near 0.2 s, measured side by side. Same results."""
    if sample.device.type != "cpu" or sample.shape[0] > 1 or torch.compiler.is_compiling():
        # Batched work (distillation training) is faster on oneDNN: 24 vs 51 ms per batch-64 step.
        return contextlib.nullcontext()
    return _mkldnn_disabled()


@contextlib.contextmanager
def _mkldnn_disabled():
    # torch.backends.mkldnn.flags() also resets TF32 settings and warns on every call; this only
    # toggles oneDNN itself.
    previous = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(previous)


def infer_head_config(state: dict[str, torch.Tensor], base: HeadConfig, prefix: str = "") -> HeadConfig:
    """Head hyper-parameters the reference does not record (down_dims, kernel size, step-embedding
    size), read from weight shapes; fall back to `base` where a key is absent."""
    changes: dict = {}
    down = []
    i = 0
    while f"{prefix}down_modules.{i}.0.blocks.0.block.0.weight" in state:
        w = state[f"{prefix}down_modules.{i}.0.blocks.0.block.0.weight"]
        down.append(int(w.shape[0]))
        if i == 0:
            changes["kernel_size"] = int(w.shape[-1])
            changes["action_dim"] = int(w.shape[1])
        i += 1
    if down:
        changes["down_dims"] = tuple(down)
    step = state.get(f"{prefix}diffusion_step_encoder.1.weight")
    if step is not None:
        changes["step_embed_dim"] = int(step.shape[1])
    combine = state.get(f"{prefix}combine.weight")
    if combine is not None:
        changes["state_dim"] = int(combine.shape[1] - combine.shape[0])
    return base.model_copy(update=changes)
