"""Whole-policy latency per inference on this CPU (issue 19, item 4): two cameras, the prompt,
vision + language and the head's K steps, measured side by side in one run as

  reference: fp32 torch eager, DDIM-10 (the reference's setting: leading timesteps)
  cpu-dev:   the bundle `quantize` builds under the cpu-dev profile (int8 QDQ vision and language
             on onnxruntime, distilled K=2 head), loaded by the runtime's own loader
  lerobot-head (with --lerobot-python, TinyVLA-S dims only): the reference with its head swapped
             for LeRobot 0.4.4's DiffusionModel at DDIM-10 (its own venv, benchmarks/lerobot_venv.sh),
             sampling from the reference's condition and noise; LeRobot's UNet has its own random
             weights, so the row is latency only

Both take the same raw camera frames, state, instruction and initial noise through the
predictors the runtime uses (`TorchPredictor`, `BundlePredictor`), so preprocessing, tokenizing
and the head are counted alike. Calls alternate (reference, bundle, reference, ...) so drift on a
shared machine hits both alike. Prints median and p99 per variant, the per-stage medians and the
speedup; the bundle's own fidelity figure (normalized action RMSE vs fp32 on held-out frames) is
read from its build summary. Target (issue 19): cpu-dev ≥ 4× the fp32 reference setting.

    python benchmarks/policy_latency.py [--dims tiny|s] [--repeats N] [--distill-iterations N] [--json]
                                        [--lerobot-python .venv-lerobot/bin/python]

`--dims tiny` (default) is the tests' tiny policy: seconds to build. `--dims s` is TinyVLA-S widths
(CLIP ViT-L/14-336 + Pythia-70M + the reference head, random weights): building its bundle (export,
int8 calibration, distillation) takes a long time on a small CPU. Training outputs and bundles
are cached under benchmarks/.cache/policy_latency/<dims>/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import print_table  # noqa: E402
from edge.profiling.stats import summarize_stage  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "policy_latency"
PROFILE = "cpu-dev"
REFERENCE_STEPS = 10
INSTRUCTION = "pick up the red cube"
DONE = ".complete"


def policy_config(dims: str):
    from edge.policy.tiny import s_dimension_config, tiny_config

    return tiny_config(num_cameras=2) if dims == "tiny" else s_dimension_config(num_cameras=2)


def cached(path: Path, build) -> Path:
    """`path` built by `build(path)` unless a completed copy is there (a half-built one is rebuilt)."""
    if not (path / DONE).is_file():
        shutil.rmtree(path, ignore_errors=True)
        print(f"building {path} (cached for the next run)", file=sys.stderr, flush=True)
        build(path)
        (path / DONE).write_text("")
    return path


def training_output(dims: str) -> Path:
    from edge.policy.tiny import write_base_vlm, write_training_output

    def build(d: Path) -> None:
        cfg = policy_config(dims)
        base = write_base_vlm(d / "base", cfg, seed=0)
        write_training_output(d / "run", base, cfg, seed=1)

    return cached(CACHE / dims / "training_output", build) / "run"


def cpu_dev_bundle(dims: str, source: Path, distill_iterations: int) -> tuple[Path, dict]:
    """The cpu-dev bundle as `quantize` builds it, calibrated on synthetic frames (one folder
    per camera, as `tinyvla-edge capture` writes them)."""
    from quantize.pipeline import quantize_training_output

    directory = CACHE / dims / f"bundle-{PROFILE}-d{distill_iterations}"

    def build(d: Path) -> None:
        d.mkdir(parents=True)
        summary = quantize_training_output(source, PROFILE, d / "bundle", calibration=calibration_frames(d / "calibration"),
                                           distill_iterations=distill_iterations, accept_fidelity=True, progress=False)
        (d / "summary.json").write_text(json.dumps(summary, default=str))

    cached(directory, build)
    return directory / "bundle", json.loads((directory / "summary.json").read_text())


def calibration_frames(directory: Path, frames: int = 12) -> Path:
    """Smooth colour ramps with sensor-like noise per camera: image statistics, not pure noise
    (pyrealsense2's synthetic recorder needs libusb, which a CPU box may lack)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:48, 0:64]
    for cam in ("left", "right"):
        (directory / cam).mkdir(parents=True)
        for i in range(frames):
            ramp = np.stack([(cols * (3 + i) + rows) % 256, (rows * (2 + i)) % 256, (cols * 2 + rows * i) % 256], -1)
            frame = np.clip(ramp + rng.normal(0, 6, ramp.shape), 0, 255).astype(np.uint8)
            Image.fromarray(frame).save(directory / cam / f"{i:06d}.png")
    return directory


def lerobot_head_predictor(policy, worker):
    """The reference predictor with LeRobot's head sampling its chunk (same condition, noise and
    DDIM-10 leading schedule), through the worker of benchmarks/head_latency.py."""
    from edge.policy.predictor import TorchPredictor

    class LeRobotHead(TorchPredictor):
        def sample_head(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
            reply = worker.time(k=REFERENCE_STEPS, scheduler="DDIM", repeats=1, warmup=0,
                                threads=torch.get_num_threads(), cond=cond.tolist(), noise=noise.tolist())
            return torch.tensor(reply["chunk"], dtype=torch.float32)

    return LeRobotHead(policy, sampler=policy.sampler(REFERENCE_STEPS), max_prompt_tokens=64)


def observation(cameras: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(cameras)]
    return images, rng.normal(size=7).astype(np.float32)


def measure(predictors: dict, repeats: int, noise: torch.Tensor, images, state) -> dict[str, dict]:
    """Alternate the predictors call by call; per predictor the total and per-stage times (ms)."""
    totals = {name: [] for name in predictors}
    stages = {name: {} for name in predictors}
    for name, p in predictors.items():  # warm-up: first calls allocate and compile kernels
        p.predict(images, state, INSTRUCTION, noise=noise)
    for _ in range(repeats):
        for name, p in predictors.items():
            t = time.perf_counter()
            prediction = p.predict(images, state, INSTRUCTION, noise=noise)
            totals[name].append((time.perf_counter() - t) * 1e3)
            for stage, ms in prediction.timings_ms.items():
                stages[name].setdefault(stage, []).append(ms)
    out = {}
    for name in predictors:
        s = summarize_stage(totals[name])
        out[name] = {"median_ms": s.p50, "p99_ms": s.p99, "runs": s.n,
                     "stage_median_ms": {k: statistics.median(v) for k, v in stages[name].items()}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", choices=("tiny", "s"), default="tiny")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per predictor (alternating)")
    parser.add_argument("--distill-iterations", type=int, default=200,
                        help="head distillation iterations for the cpu-dev bundle (the demo's default)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--lerobot-python", metavar="PATH",
                        help="the LeRobot venv's python (benchmarks/lerobot_venv.sh): add a row with LeRobot's head (--dims s)")
    args = parser.parse_args()
    if args.lerobot_python and args.dims != "s":
        parser.error("--lerobot-python needs --dims s: LeRobot's head is built at TinyVLA-S dims (512-wide condition)")

    from edge.bundle.predictor import load_predictor
    from edge.policy.predictor import TorchPredictor
    from quantize.pipeline import load_source

    source = training_output(args.dims)
    bundle, summary = cpu_dev_bundle(args.dims, source, args.distill_iterations)
    policy = load_source(source, None)
    reference = TorchPredictor(policy, sampler=policy.sampler(REFERENCE_STEPS), max_prompt_tokens=64)
    cpu_dev = load_predictor(bundle)
    cfg = policy.config
    images, state = observation(cfg.num_cameras)
    noise = torch.randn((1, cfg.head.chunk_size, cfg.head.action_dim), generator=torch.Generator().manual_seed(3))
    predictors = {"reference": reference, "cpu-dev": cpu_dev}
    with contextlib.ExitStack() as stack:
        if args.lerobot_python:
            from benchmarks.head_latency import LeRobotWorker

            worker = stack.enter_context(LeRobotWorker(args.lerobot_python))
            predictors["lerobot-head"] = lerobot_head_predictor(policy, worker)
        results = measure(predictors, args.repeats, noise, images, state)
    if "lerobot-head" in results:
        results["lerobot-head"]["setting"] = f"fp32 torch eager backbone, LeRobot 0.4.4 head DDIM-{REFERENCE_STEPS}"
    results["reference"]["setting"] = f"fp32 torch eager, DDIM-{REFERENCE_STEPS} (leading)"
    results["cpu-dev"]["setting"] = (f"{PROFILE} bundle: vision/language "
                                     f"{'/'.join(f'{c.engine} {c.precision}' for c in cpu_dev.manifest.components.values())}, "
                                     f"head K={cpu_dev.head_steps}")
    speedup_median = results["reference"]["median_ms"] / results["cpu-dev"]["median_ms"]
    speedup_p99 = results["reference"]["p99_ms"] / results["cpu-dev"]["p99_ms"]
    payload = {"dims": args.dims, "threads": torch.get_num_threads(), "results": results,
               "speedup_median": speedup_median, "speedup_p99": speedup_p99,
               "bundle_fidelity": summary.get("fidelity"), "distill_iterations": args.distill_iterations}
    rows = []
    for name, r in results.items():
        stage_text = " ".join(f"{k} {v:.1f}" for k, v in r["stage_median_ms"].items())
        ratio = (f"{results['reference']['median_ms'] / r['median_ms']:.2f}x / "
                 f"{results['reference']['p99_ms'] / r['p99_ms']:.2f}x")
        rows.append([name, r["setting"], f"{r['median_ms']:.1f}", f"{r['p99_ms']:.1f}", ratio, stage_text])
    rmse = (summary.get("fidelity") or {}).get("action_rmse")
    print_table(f"Whole policy per inference ({args.dims} dims, 2 cameras, {torch.get_num_threads()} threads, "
                f"{args.repeats} alternating calls each); cpu-dev bundle action RMSE vs fp32: "
                f"{rmse if rmse is None else f'{rmse:.4f}'}",
                ["variant", "setting", "median ms", "p99 ms", "speedup (median / p99)", "stage medians ms"],
                rows, args.json, payload)


if __name__ == "__main__":
    main()
