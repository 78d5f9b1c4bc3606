"""The diffusion head: shapes, reference parameter names, bf16 step table, shape inference."""

import math

import pytest
import torch

from edge.policy.config import HeadConfig
from edge.policy.head import ConditionalUnet1D, infer_head_config, sinusoidal_table
from tests.policy.reference_keys import reference_keys


@pytest.mark.parametrize(
    "cfg,hidden",
    [
        (HeadConfig(action_dim=10, state_dim=7, chunk_size=16, down_dims=(16, 32, 64), step_embed_dim=16), 32),
        (HeadConfig(action_dim=4, state_dim=8, chunk_size=8, down_dims=(16, 32), step_embed_dim=32, kernel_size=3), 24),
        (HeadConfig(action_dim=14, state_dim=14, chunk_size=32, down_dims=(8, 16, 32), step_embed_dim=16), 16),
    ],
)
@pytest.mark.parametrize("batch", [1, 3])
def test_shapes_and_dtypes(cfg, hidden, batch):
    head = ConditionalUnet1D(hidden, cfg).eval()
    x = torch.randn(batch, cfg.chunk_size, cfg.action_dim)
    out = head(x, torch.tensor(50), global_cond=torch.randn(batch, 9, hidden), states=torch.randn(batch, cfg.state_dim))
    assert out.shape == x.shape and out.dtype == torch.float32
    cond = head.encode_condition(torch.randn(batch, 9, hidden), torch.randn(batch, cfg.state_dim))
    assert cond.shape == (batch, hidden)


def test_reference_parameter_names_and_shapes(tiny_cfg):
    """Names and shapes are the hand-written table's `embed_out.*` rows (diffusion_policy's
    Downsample1d/Upsample1d keep their convolution as `.conv`)."""
    head = ConditionalUnet1D(tiny_cfg.language.hidden_size, tiny_cfg.head)
    table = {k.removeprefix("base_model.model.embed_out."): shape
             for k, (_, shape) in reference_keys("non_lora", tiny_cfg).items() if ".embed_out." in k}
    state = head.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == table
    assert not any("table" in n for n in state)  # the step table is a non-persistent buffer


def reference_bf16_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The reference SinusoidalPosEmb(dim, torch.bfloat16).forward, verbatim arithmetic."""
    half = dim // 2
    emb = math.log(10000) / (half - 1)
    emb = torch.exp(torch.arange(half, dtype=torch.bfloat16) * -emb)
    emb = t[:, None] * emb[None, :]
    return torch.cat((emb.sin(), emb.cos()), dim=-1)


def test_faithful_table_matches_reference_bf16_arithmetic():
    t = torch.arange(100)
    table = sinusoidal_table(256, 100, faithful_bf16=True)
    assert torch.equal(table, reference_bf16_embedding(t, 256).float())
    fp32 = sinusoidal_table(256, 100, faithful_bf16=False)
    assert (fp32 - table).abs().max().item() > 0.05  # bf16 rounding is large at t≈90


def test_hoisted_condition_equals_per_step_forward():
    cfg = HeadConfig(down_dims=(16, 32, 64), step_embed_dim=16)
    head = ConditionalUnet1D(32, cfg).eval()
    hidden, states = torch.randn(2, 7, 32), torch.randn(2, 7)
    x = torch.randn(2, 16, 10)
    t = torch.tensor([30])
    a = head(x, t, global_cond=hidden, states=states)
    b = head.denoise(x, head.step_features(t), head.encode_condition(hidden, states))
    assert torch.allclose(a, b, atol=1e-6)


def test_masked_pool_ignores_padding():
    head = ConditionalUnet1D(32, HeadConfig(down_dims=(16, 32, 64), step_embed_dim=16)).eval()
    hidden, states = torch.randn(1, 5, 32), torch.randn(1, 7)
    padded = torch.cat([hidden, torch.randn(1, 3, 32) * 100], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 3])
    assert torch.allclose(head.encode_condition(hidden, states), head.encode_condition(padded, states, mask), atol=1e-5)


def test_infer_head_config_from_shapes():
    true = HeadConfig(action_dim=4, state_dim=8, down_dims=(8, 16, 32), step_embed_dim=32, kernel_size=3)
    state = {f"embed_out.{k}": v for k, v in ConditionalUnet1D(24, true).state_dict().items()}
    inferred = infer_head_config(state, HeadConfig(), prefix="embed_out.")
    assert (inferred.action_dim, inferred.state_dim, inferred.down_dims, inferred.step_embed_dim, inferred.kernel_size) == (
        4, 8, (8, 16, 32), 32, 3,
    )
    assert infer_head_config({}, HeadConfig()).down_dims == (256, 512, 1024)  # reference defaults
