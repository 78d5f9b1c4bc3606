"""Backbone latency on this CPU, side by side in one run: a TinyVLA-S-dimension backbone (CLIP
ViT-L/14-336 + Pythia-70M dimensions, random weights) with one and two cameras, as

  fp32 torch eager · fp32 onnxruntime · int8 QDQ onnxruntime · bitsandbytes int8 (CUDA only)

Reports the median latency of vision + language, the peak memory of each variant (each runs in
its own process, read from VmHWM), the cosine of the pooled final hidden states against fp32
torch, and what that costs in actions: the S-dimension head (random weights, same seed) turns
each variant's hidden states into a chunk by 10-step DDIM from the same noise, and the
normalized action RMSE against fp32 torch's chunk is reported (issue target for int8: ≤ 0.02).
Target: int8 QDQ onnxruntime ≥ 2× faster than fp32 torch eager at cosine ≥ 0.99.

    python benchmarks/backbone_latency.py [--cameras 1 2] [--repeats N] [--rounds R] [--json]

Variants run in rounds (torch, ORT fp32, ORT int8, bnb; again; ...), each in a fresh process, and
the median over rounds is reported with the spread of the round medians: on a shared machine the
baseline drifts by 10-15 % between minutes, and interleaving makes the ratios fair.

ONNX exports and int8 models are cached under benchmarks/.cache/backbone/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import median_ms, print_table  # noqa: E402
from edge.profiling.measure import peak_rss_mb  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "backbone"
VARIANTS = ("torch-fp32", "onnxruntime-fp32", "onnxruntime-int8", "bitsandbytes-int8")
SUFFIX_TOKENS = 24


def build_config(cameras: int):
    from edge.policy.tiny import s_dimension_config

    return s_dimension_config(num_cameras=cameras)


def build_components(cameras: int):
    from edge.policy.components import LanguageComponent, VisionComponent
    from edge.policy.network import TinyVLANetwork

    torch.manual_seed(0)
    cfg = build_config(cameras)
    net = TinyVLANetwork(cfg).eval()
    return cfg, VisionComponent(net).eval(), LanguageComponent(net).eval()


def inputs(cfg, seed: int):
    g = torch.Generator().manual_seed(seed)
    px = torch.randn(cfg.num_cameras, 3, cfg.vision.image_size, cfg.vision.image_size, generator=g)
    prefix = torch.randint(2, 250, (1, 40), generator=g)
    suffix = torch.randint(2, 250, (1, SUFFIX_TOKENS), generator=g)
    return px, prefix, suffix


def prepare(cameras: int) -> Path:
    """Export fp32 ONNX and calibrate int8 once (cached)."""
    from quantize.int8 import RECIPE, quantize_static_qdq
    from quantize.onnx_export import EXPORT_RECIPE, export_onnx

    d = CACHE / f"cams{cameras}"
    stamp = d / "recipe.json"
    recipe = {"export": EXPORT_RECIPE, "int8": RECIPE}
    if stamp.is_file() and json.loads(stamp.read_text()) == recipe:
        return d
    d.mkdir(parents=True, exist_ok=True)
    cfg, vision, language = build_components(cameras)
    px, prefix, suffix = inputs(cfg, 0)
    with torch.inference_mode():
        tokens = vision(px)
    export_onnx(vision, (px,), d / "vision.fp32.onnx", ["pixel_values"], ["output"])
    export_onnx(language, (prefix, tokens, suffix), d / "language.fp32.onnx",
                ["prefix_ids", "image_tokens", "suffix_ids"], ["output"])
    calib = [inputs(cfg, 100 + i) for i in range(4)]
    with torch.inference_mode():
        lang_feeds = [{"prefix_ids": p.numpy(), "image_tokens": vision(x).numpy(), "suffix_ids": s.numpy()} for x, p, s in calib]
    quantize_static_qdq(d / "vision.fp32.onnx", d / "vision.int8.onnx", [{"pixel_values": x.numpy()} for x, _, _ in calib])
    quantize_static_qdq(d / "language.fp32.onnx", d / "language.int8.onnx", lang_feeds)
    stamp.write_text(json.dumps(recipe))
    return d


def run_variant(variant: str, cameras: int, repeats: int) -> dict:
    """Child process: time one variant, save its pooled hidden state for the cosine."""
    d = CACHE / f"cams{cameras}"
    cfg, vision, language = build_components(cameras)
    px, prefix, suffix = inputs(cfg, 7)
    if variant == "torch-fp32":
        def run():
            with torch.inference_mode():
                return language(prefix, vision(px), suffix)
    elif variant.startswith("onnxruntime"):
        from edge.engines.onnx_engine import OnnxRunner

        precision = variant.split("-")[1]
        del vision, language
        v, lang = OnnxRunner(d / f"vision.{precision}.onnx"), OnnxRunner(d / f"language.{precision}.onnx")

        def run():
            return lang(prefix, v(px), suffix)
    else:
        from edge.engines import engine_unavailable_reason

        reason = engine_unavailable_reason("bitsandbytes")
        if reason:
            return {"variant": variant, "unavailable": reason}
        from edge.engines.bnb_engine import to_llm_int8

        language = to_llm_int8(language, "language")
        vision = vision.cuda().half()

        def run():
            with torch.inference_mode():
                return language(prefix.cuda(), vision(px.cuda().half()), suffix.cuda()).float().cpu()
    ms = median_ms(run, repeats, warmup=1)
    np.save(d / f"hidden-{variant}.npy", run().float().numpy())
    return {"variant": variant, "median_ms": ms, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description="TinyVLA-S backbone latency: fp32 vs int8, torch vs onnxruntime")
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant process")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of all variants, interleaved so machine drift hits each alike")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.cameras[0], args.repeats)))
        return
    results = []
    for cams in args.cameras:
        prepare(cams)
        rounds = [[measure_in_child(variant, cams, args.repeats) for variant in VARIANTS] for _ in range(args.rounds)]
        results += [combine_rounds(cams, [r[i] for r in rounds]) for i in range(len(VARIANTS))]
    rows = []
    for r in results:
        base = next(x for x in results if x["cameras"] == r["cameras"] and x["variant"] == "torch-fp32")
        if "unavailable" in r:
            rows.append([r["cameras"], r["variant"], "—", "—", "—", "—", "—", "—", r["unavailable"][:60]])
            continue
        d = CACHE / f"cams{r['cameras']}"
        hidden, reference = np.load(d / f"hidden-{r['variant']}.npy"), np.load(d / "hidden-torch-fp32.npy")
        a, b = hidden.mean(axis=1)[0], reference.mean(axis=1)[0]
        r["cosine_vs_fp32"] = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        r["action_rmse_vs_fp32"] = action_rmse(hidden, reference)
        r["speedup_vs_torch_fp32"] = base["median_ms"] / r["median_ms"]
        spread = f"{min(r['round_medians_ms']):.0f}-{max(r['round_medians_ms']):.0f}"
        rows.append([r["cameras"], r["variant"], f"{r['median_ms']:.0f}", spread, f"{r['speedup_vs_torch_fp32']:.2f}x",
                     f"{r['peak_rss_mb']:.0f}", f"{r['cosine_vs_fp32']:.5f}", f"{r['action_rmse_vs_fp32']:.4f}", ""])
    print_table(f"TinyVLA-S backbone (CLIP-L/336 + Pythia-70M dims), {torch.get_num_threads()} threads",
                ["cams", "variant", "median ms", "rounds ms", "vs fp32 torch", "peak RSS MB", "cosine", "action RMSE",
                 "note"],
                rows, args.json, {"results": results})


def measure_in_child(variant: str, cameras: int, repeats: int) -> dict:
    """One variant in a fresh process (its own peak memory, no shared caches)."""
    out = subprocess.run([sys.executable, __file__, "--variant", variant, "--cameras", str(cameras),
                          "--repeats", str(repeats)], capture_output=True, text=True, env=os.environ)
    if not out.stdout.strip():
        return {"variant": variant, "unavailable": out.stderr[-300:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def combine_rounds(cameras: int, runs: list[dict]) -> dict:
    """The median over rounds of each run's median, with the spread across rounds."""
    if "unavailable" in runs[0]:
        return {"cameras": cameras, **runs[0]}
    medians = [r["median_ms"] for r in runs]
    return {"cameras": cameras, "variant": runs[0]["variant"], "median_ms": statistics.median(medians),
            "round_medians_ms": medians, "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}


@torch.inference_mode()
def action_rmse(hidden: np.ndarray, reference: np.ndarray, observations: int = 4) -> float:
    """Normalized action RMSE of the S-dimension head (random weights, seed 0) fed `hidden` vs
    `reference`, 10-step DDIM, same noise and state per draw."""
    from edge.policy.head import ConditionalUnet1D
    from edge.policy.sampler import DDIMSampler

    cfg = build_config(1)
    torch.manual_seed(0)
    head = ConditionalUnet1D(cfg.language.hidden_size, cfg.head).eval()
    sampler = DDIMSampler.leading(10, cfg.train_timesteps)
    steps = head.step_features(sampler.timesteps)
    g = torch.Generator().manual_seed(1)
    errors = []
    for _ in range(observations):
        noise = torch.randn((1, cfg.head.chunk_size, cfg.head.action_dim), generator=g)
        state = torch.randn((1, cfg.head.state_dim), generator=g)
        chunks = []
        for h in (hidden, reference):
            cond = head.encode_condition(torch.from_numpy(h), state)
            chunks.append(sampler.sample(lambda i, x, c=cond: head.denoise(x, steps[i : i + 1], c), noise))
        errors.append((chunks[0] - chunks[1]).numpy())
    return float(np.sqrt(np.mean(np.square(errors))))


if __name__ == "__main__":
    main()
