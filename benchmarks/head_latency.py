"""Head latency per action chunk on this CPU: TinyVLA-S head (hidden 512, down_dims
[256, 512, 1024], chunk 16, action_dim 10, random weights) at K = 1, 2, 4, 10 DDIM steps and
100-step DDPM (LeRobot's diffusion-policy default), all measured side by side in one run.

Also reports the sampler's per-step overhead relative to a bare UNet forward (target ≤ 10%)
and each step's time as a multiple of this machine's memory-read floor: at batch 1 a step reads
all 72.8M fp32 parameters (291 MB), so weight bytes / read bandwidth bounds it from below.

    python benchmarks/head_latency.py [--repeats N] [--json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import median_ms, print_table  # noqa: E402
from edge.policy.config import HeadConfig  # noqa: E402
from edge.policy.head import ConditionalUnet1D  # noqa: E402
from edge.policy.sampler import DDIMSampler, trailing_timesteps  # noqa: E402


def read_bandwidth_gbs(megabytes: int = 512, repeats: int = 5) -> float:
    """Memory read bandwidth from a large tensor copy (read + write counted as read only)."""
    src = torch.empty(megabytes * (1 << 20) // 4, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), repeats, warmup=1)
    return (src.numel() * 4 * 2) / (ms / 1e3) / 1e9  # bytes moved (read + write) per second


def ddpm_chunk(head, cond, noise, steps: int = 100):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", clip_sample=True,
                          prediction_type="epsilon")
    sched.set_timesteps(steps)
    x = noise
    for t in sched.timesteps:
        x = sched.step(head.denoise(x, head.step_features(t[None]), cond), t, x).prev_sample
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    head = ConditionalUnet1D(512, HeadConfig()).eval()
    params = sum(p.numel() for p in head.parameters())
    cond = head.encode_condition(torch.randn(1, 600, 512), torch.randn(1, 7)).detach()
    noise = torch.randn(1, 16, 10)
    floor_ms = params * 4 / (read_bandwidth_gbs() * 1e9) * 1e3

    results = {}
    with torch.inference_mode():
        feats1 = head.step_features(torch.tensor([50]))
        bare = median_ms(lambda: head.denoise(noise, feats1, cond), args.repeats)
        for k in (1, 2, 4, 10):
            sampler = DDIMSampler.leading(k) if k == 10 else DDIMSampler(trailing_timesteps(k))
            feats = head.step_features(sampler.timesteps)
            results[f"ddim{k}"] = median_ms(
                lambda: sampler.sample(lambda i, x: head.denoise(x, feats[i : i + 1], cond), noise), args.repeats)
        results["ddpm100"] = median_ms(lambda: ddpm_chunk(head, cond, noise), max(1, args.repeats // 3), warmup=1)

    overhead = (results["ddim10"] / 10 - bare) / bare
    rows = [[name, f"{ms:.1f}", f"{results['ddim10'] / ms:.2f}x", f"{ms / int(name.strip('ddimp')) / floor_ms:.2f}"]
            for name, ms in results.items()]
    payload = {
        "machine": {"threads": torch.get_num_threads()},
        "head_parameters": params,
        "memory_floor_ms_per_step": floor_ms,
        "bare_unet_forward_ms": bare,
        "sampler_overhead_per_step": overhead,
        "chunk_ms": results,
        "speedup_vs_ddim10": {k: results["ddim10"] / v for k, v in results.items()},
        "speedup_ddim2_vs_ddpm100": results["ddpm100"] / results["ddim2"],
    }
    print_table(
        f"TinyVLA-S head ({params / 1e6:.1f}M params), batch 1, {torch.get_num_threads()} threads; "
        f"bare UNet step {bare:.1f} ms = {bare / floor_ms:.2f}x the memory floor ({floor_ms:.1f} ms); "
        f"sampler overhead {overhead * 100:+.1f}% per step",
        ["sampler", "ms/chunk", "speedup vs DDIM-10", "step / floor"], rows, args.json, payload)


if __name__ == "__main__":
    main()
