"""The static DDIM sampler against diffusers' DDIMScheduler (the oracle) and pinned numbers."""

import pytest
import torch
from diffusers import DDIMScheduler

from edge.policy.head import ConditionalUnet1D
from edge.policy.sampler import DDIMSampler, alphas_cumprod, leading_timesteps, trailing_timesteps
from edge.policy.tiny import tiny_config


def reference_scheduler() -> DDIMScheduler:
    return DDIMScheduler(
        num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", clip_sample=True,
        set_alpha_to_one=True, steps_offset=0, prediction_type="epsilon",
    )


@pytest.mark.parametrize("steps", [10, 4, 2, 1])
def test_full_chain_equals_diffusers_with_a_real_head(steps):
    cfg = tiny_config()
    torch.manual_seed(0)
    head = ConditionalUnet1D(cfg.language.hidden_size, cfg.head).eval()
    hidden = torch.randn(3, 12, cfg.language.hidden_size)
    states = torch.randn(3, cfg.head.state_dim)
    noise = torch.randn(3, cfg.head.chunk_size, cfg.head.action_dim)

    oracle = reference_scheduler()
    oracle.set_timesteps(steps)
    x = noise.clone()
    with torch.no_grad():
        for t in oracle.timesteps:
            x = oracle.step(head(x, t, global_cond=hidden, states=states), t, x).prev_sample

        sampler = DDIMSampler.leading(steps)
        cond = head.encode_condition(hidden, states)
        feats = head.step_features(sampler.timesteps)
        y = sampler.sample(lambda i, s: head.denoise(s, feats[i : i + 1], cond), noise.clone())

    assert sampler.timesteps.tolist() == oracle.timesteps.tolist()
    assert (x - y).abs().max().item() <= 1e-5


def test_pinned_schedule_numbers():
    ac = alphas_cumprod()
    assert leading_timesteps(10) == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert leading_timesteps(4) == [75, 50, 25, 0]
    assert trailing_timesteps(2) == [99, 49]
    assert trailing_timesteps(1) == [99]
    assert ac[0].item() == pytest.approx(0.999369, abs=1e-6)  # 1 − β₀ of squaredcos_cap_v2 at N = 100
    assert ac[-1].item() < 1e-3  # the cosine schedule ends near pure noise
    assert torch.all(ac[1:] < ac[:-1])


def test_clipping_bounds_predicted_x0():
    sampler = DDIMSampler.leading(1)
    huge_eps = torch.full((1, 4, 2), -50.0)
    out = sampler.step(0, torch.zeros(1, 4, 2), huge_eps)
    # Last step goes to ᾱ = 1, so the output is the clipped x0 itself.
    assert out.max().item() <= 1.0 + 1e-6


@pytest.mark.parametrize("bad", [[], [10, 20], [100], [5, 5]])
def test_rejects_bad_timesteps(bad):
    with pytest.raises(ValueError):
        DDIMSampler(bad)


def test_describe_records_the_schedule():
    d = DDIMSampler.leading(2).describe()
    assert d["timesteps"] == [50, 0]
    assert len(d["alphas_cumprod"]) == 2
    assert d["alphas_cumprod"][1] == pytest.approx(alphas_cumprod()[0].item(), rel=1e-5)
