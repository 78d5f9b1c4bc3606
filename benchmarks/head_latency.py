"""Head latency per action chunk on this CPU: TinyVLA-S head (hidden 512, down_dims
[256, 512, 1024], chunk 16, action_dim 10, random weights) at K = 1, 2, 4, 10 DDIM steps and
100-step DDPM (LeRobot's diffusion-policy default), all measured side by side in one run.

Also reports the sampler's per-step overhead relative to a bare UNet forward (target ≤ 10%)
and each step's time as a multiple of this machine's memory-read floor: at batch 1 a step reads
all 72.8M fp32 parameters (291 MB), so weight bytes / read bandwidth bounds it from below.

The fp32 onnxruntime head (`onnxruntime-cpu` fp32: the same network and arithmetic) is timed per
chunk next to torch eager, with its largest difference from the torch chunk. The int8 head
(`onnxruntime-cpu` engine: the noise network exported to ONNX, wide convs QDQ int8, calibrated
on the fp32 sampler's own inputs at DDIM-10 and the trailing K=2 schedule) is timed per step next
to the fp32 torch step, with its fidelity: the chunk vs the fp32 head on the same condition and
noise, normalized RMSE (target ≤ 0.01). Random weights: the figures are latency-true, and the
fidelity of a random head is a pessimistic proxy (its x0 estimates sit near the ±1 clip).

With `--lerobot-python PATH`, LeRobot 0.4.4's diffusion-policy head (its `DiffusionModel`, state-only
config at the same dims: 72.56M params, i.e. ours less our condition front-end) is timed side by
side per chunk at DDIM-2, DDIM-10 and DDPM-100 (unless --no-ddpm), in interleaved rounds (ours
torch eager, ours onnxruntime fp32, then LeRobot's, round after round), so both see the same machine
state; the medians of the round medians are compared (issue target: ours <= 0.5x LeRobot at equal
K). LeRobot cannot share this venv (its policy package needs transformers 4.x and torchvision), so
it runs in its own venv through benchmarks/lerobot_head_worker.py, one JSON line each way. Both
use the same number of UNet calls; LeRobot's DDIM uses diffusers' default "leading" timesteps.

    python benchmarks/head_latency.py [--repeats N] [--no-ddpm] [--no-int8] [--json]
    bash benchmarks/lerobot_venv.sh .venv-lerobot      # once: builds LeRobot's venv (~2 min)
    python benchmarks/head_latency.py --no-int8 --lerobot-python .venv-lerobot/bin/python [--lerobot-rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
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


def ddpm_chunk(head, cond, noise, steps: int = 100, network=None):
    """A chunk by diffusers' DDPM; `network(sample, step_feature, cond)` defaults to the torch head."""
    from diffusers import DDPMScheduler

    network = network or head.denoise
    sched = DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", clip_sample=True,
                          prediction_type="epsilon")
    sched.set_timesteps(steps)
    x = noise
    for t in sched.timesteps:
        x = sched.step(network(x, head.step_features(t[None]), cond), t, x).prev_sample
    return x


def int8_head(head, cond_dim: int, repeats: int, step_ms_fp32: float) -> dict:
    """Export and quantize the head's network (calibrated on random conditions through the fp32
    sampler), then time one step and measure the chunk fidelity at K = 2 and 10."""
    import tempfile

    from edge.engines.table import HEAD_ENGINES, load_head
    from quantize.head_engine import export_int8_network, head_fidelity

    g = torch.Generator().manual_seed(11)
    calibration = torch.randn(4, cond_dim, generator=g)
    held_out = torch.randn(4, cond_dim, generator=g)
    samplers = {2: DDIMSampler(trailing_timesteps(2)), 10: DDIMSampler.leading(10)}
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        # One network for both schedules: calibrated on the union of their steps' inputs.
        both = DDIMSampler(sorted({*samplers[2].timesteps.tolist(), *samplers[10].timesteps.tolist()}, reverse=True))
        export_int8_network(head, both, calibration, Path(tmp), noises_per_condition=2)
        row = HEAD_ENGINES[("onnxruntime-cpu", "int8")]
        runners = {k: load_head(row, head, s, Path(tmp) / "head.int8.onnx") for k, s in samplers.items()}
        net = runners[10].network
        x, feats = torch.randn(1, 16, 10), head.step_features(torch.tensor([50]))
        step_ms = median_ms(lambda: net(x, feats, held_out[:1]), repeats * 4)
        fidelity = {k: head_fidelity(r, head, samplers[k], held_out) for k, r in runners.items()}
        chunk_ms = {k: median_ms(lambda r=r: r(held_out[:1], x), repeats) for k, r in runners.items()}
    return {"step_ms": step_ms, "speedup_vs_fp32_step": step_ms_fp32 / step_ms, "chunk_ms": chunk_ms,
            "action_nrmse": {k: f["action_nrmse"] for k, f in fidelity.items()},
            "action_max_abs": {k: f["action_max_abs"] for k, f in fidelity.items()}}


def onnx_fp32_head(head, cond, noise, repeats: int) -> dict:
    """The fp32 noise network on onnxruntime inside the same sampler: ms per chunk at K = 2 and 10,
    and the largest difference from the torch head's chunk."""
    import tempfile

    from edge.engines.table import HEAD_ENGINES, load_head
    from quantize.head_engine import export_fp32_network

    samplers = {2: DDIMSampler(trailing_timesteps(2)), 10: DDIMSampler.leading(10)}
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        export_fp32_network(head, Path(tmp) / "head.fp32.onnx")
        row = HEAD_ENGINES[("onnxruntime-cpu", "fp32")]
        runners = {k: load_head(row, head, s, Path(tmp) / "head.fp32.onnx") for k, s in samplers.items()}
        torch_heads = {k: load_head(HEAD_ENGINES[("torch", "fp32")], head, s) for k, s in samplers.items()}
        diff = max(float((runners[k](cond, noise) - torch_heads[k](cond, noise)).abs().max()) for k in samplers)
        chunk_ms = {k: median_ms(lambda r=r: r(cond, noise), repeats) for k, r in runners.items()}
    return {"chunk_ms": chunk_ms, "max_abs_diff_vs_torch": diff}


LEROBOT_WORKER = Path(__file__).resolve().with_name("lerobot_head_worker.py")
SIDE_BY_SIDE_ROWS = (("DDIM", 2), ("DDIM", 10), ("DDPM", 100))


class LeRobotWorker:
    """LeRobot's head in its own venv (benchmarks/lerobot_head_worker.py), one JSON line each way.
    `-I` and cwd / keep this repository off the worker's import path."""

    def __init__(self, python: str):
        self.proc = subprocess.Popen([python, "-I", str(LEROBOT_WORKER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd="/")

    def __enter__(self) -> "LeRobotWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)

    def time(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the LeRobot worker exited (rc {self.proc.wait()}); its stderr is above")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"LeRobot worker: {reply['error']}")
        return reply


def our_chunk_fns(head, scheduler: str, k: int, onnx_path: Path) -> dict:
    """(condition, noise) → chunk for our torch eager head and our onnxruntime fp32 head, built as
    the bundle builds them (`load_head`); DDPM runs diffusers' scheduler around the same networks."""
    from edge.engines.table import HEAD_ENGINES, load_head, load_onnx

    if scheduler == "DDPM":
        ort = load_onnx("onnxruntime-cpu", onnx_path, "head")
        return {"torch": lambda c, n: ddpm_chunk(head, c, n, k),
                "onnxruntime": lambda c, n: ddpm_chunk(head, c, n, k, network=ort)}
    sampler = DDIMSampler.leading(k) if k == 10 else DDIMSampler(trailing_timesteps(k))
    return {"torch": load_head(HEAD_ENGINES[("torch", "fp32")], head, sampler),
            "onnxruntime": load_head(HEAD_ENGINES[("onnxruntime-cpu", "fp32")], head, sampler, onnx_path)}


def interleaved_rounds(ours: dict, worker: LeRobotWorker, cond, noise, repeats: int, rounds: int) -> tuple[dict, int]:
    """Per row, per engine: one median per round; each round times ours, then LeRobot's."""
    times = {row: {"torch": [], "onnxruntime": [], "lerobot": []} for row in ours}
    params = 0
    for _ in range(rounds):
        for (scheduler, k), fns in ours.items():
            n, warmup = (max(1, repeats // 3), 1) if scheduler == "DDPM" else (repeats, 2)
            for name, fn in fns.items():
                times[(scheduler, k)][name].append(median_ms(lambda fn=fn: fn(cond, noise), n, warmup))
            reply = worker.time(k=k, scheduler=scheduler, repeats=n, warmup=warmup, threads=torch.get_num_threads())
            times[(scheduler, k)]["lerobot"].append(reply["median_ms"])
            params = reply["params"]
    return times, params


def lerobot_side_by_side(head, cond, noise, python: str, repeats: int, rounds: int, ddpm: bool) -> dict:
    """Ours (torch eager, onnxruntime fp32) vs LeRobot 0.4.4's DiffusionModel, ms per chunk at equal K."""
    import tempfile

    from quantize.head_engine import export_fp32_network

    rows = [row for row in SIDE_BY_SIDE_ROWS if ddpm or row[0] != "DDPM"]
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode(), LeRobotWorker(python) as worker:
        export_fp32_network(head, Path(tmp) / "head.fp32.onnx")
        ours = {row: our_chunk_fns(head, *row, Path(tmp) / "head.fp32.onnx") for row in rows}
        times, lerobot_params = interleaved_rounds(ours, worker, cond, noise, repeats, rounds)
    front_end = sum(p.numel() for m in (head.norm_after_pool, head.combine) for p in m.parameters())
    return {"rounds": rounds, "threads": torch.get_num_threads(), "lerobot_parameters": lerobot_params,
            "our_parameters": sum(p.numel() for p in head.parameters()),
            "our_condition_front_end_parameters": front_end,
            "rows": {f"{s.lower()}{k}": side_by_side_row(s, k, times[(s, k)]) for s, k in rows}}


def side_by_side_row(scheduler: str, k: int, times: dict) -> dict:
    """Medians of the round medians, per step, and ours / LeRobot's for one sampler."""
    chunk = {name: statistics.median(ms) for name, ms in times.items()}
    return {"sampler": f"{scheduler}-{k}", "k": k, "chunk_ms": chunk,
            "step_ms": {name: ms / k for name, ms in chunk.items()},
            "ratio_vs_lerobot": {name: chunk[name] / chunk["lerobot"] for name in ("torch", "onnxruntime")},
            "round_medians_ms": times}


def print_side_by_side(side: dict) -> None:
    rows = [[r["sampler"], *(f"{r['chunk_ms'][e]:.1f}" for e in ("lerobot", "torch", "onnxruntime")),
             *(f"{r['ratio_vs_lerobot'][e]:.2f}x" for e in ("torch", "onnxruntime")),
             " / ".join(f"{r['step_ms'][e]:.1f}" for e in ("lerobot", "torch", "onnxruntime"))]
            for r in side["rows"].values()]
    ours, front_end = side["our_parameters"], side["our_condition_front_end_parameters"]
    print()
    print_table(
        f"Side by side with LeRobot 0.4.4's DiffusionModel ({side['lerobot_parameters'] / 1e6:.3f}M params; ours "
        f"{ours / 1e6:.3f}M = {(ours - front_end) / 1e6:.3f}M noise network + {front_end / 1e6:.3f}M condition "
        f"front-end), batch 1, {side['threads']} threads, median of {side['rounds']} interleaved rounds "
        "(target: ours <= 0.5x LeRobot)",
        ["sampler", "LeRobot ms/chunk", "ours torch", "ours onnxruntime", "torch/LeRobot", "onnxruntime/LeRobot",
         "ms/step LeRobot / torch / ort"], rows, False, {})
    for r in side["rows"].values():  # the spread shows how much the machine moved between rounds
        rounds = r["round_medians_ms"]
        print(f"{r['sampler']} round medians, ms: " + "; ".join(
            f"{e} " + ", ".join(f"{ms:.0f}" for ms in rounds[e]) for e in ("lerobot", "torch", "onnxruntime")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-ddpm", action="store_true", help="skip the slow 100-step DDPM row")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 head (its export takes a minute)")
    parser.add_argument("--lerobot-python", metavar="PATH",
                        help="the LeRobot venv's python (benchmarks/lerobot_venv.sh): time LeRobot's head side by side")
    parser.add_argument("--lerobot-rounds", type=int, default=3, help="interleaved rounds of the side-by-side (>= 3)")
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
        if not args.no_ddpm:
            results["ddpm100"] = median_ms(lambda: ddpm_chunk(head, cond, noise), max(1, args.repeats // 3), warmup=1)
    onnx_fp32 = onnx_fp32_head(head, cond, noise, args.repeats)
    results |= {f"ort fp32 ddim{k}": ms for k, ms in onnx_fp32["chunk_ms"].items()}
    int8 = None if args.no_int8 else int8_head(head, cond.shape[1], args.repeats, bare)
    if int8:
        results |= {f"int8 ddim{k}": ms for k, ms in int8["chunk_ms"].items()}

    overhead = (results["ddim10"] / 10 - bare) / bare
    rows = [[name, f"{ms:.1f}", f"{results['ddim10'] / ms:.2f}x", f"{ms / int(name.split('ddim')[-1].strip('dpm')) / floor_ms:.2f}"]
            for name, ms in results.items()]
    payload = {
        "machine": {"threads": torch.get_num_threads()},
        "head_parameters": params,
        "memory_floor_ms_per_step": floor_ms,
        "bare_unet_forward_ms": bare,
        "sampler_overhead_per_step": overhead,
        "chunk_ms": results,
        "speedup_vs_ddim10": {k: results["ddim10"] / v for k, v in results.items()},
        "speedup_ddim2_vs_ddpm100": results["ddpm100"] / results["ddim2"] if "ddpm100" in results else None,
        "onnxruntime_fp32_head": onnx_fp32,
        "int8_head": int8,
    }
    side = None
    if args.lerobot_python:
        side = lerobot_side_by_side(head, cond, noise, args.lerobot_python, args.repeats,
                                    max(3, args.lerobot_rounds), not args.no_ddpm)
        payload["lerobot_side_by_side"] = side
    ort_line = (f"; onnxruntime fp32 DDIM-2 {results['ort fp32 ddim2']:.1f} ms = "
                f"{results['ddim2'] / results['ort fp32 ddim2']:.2f}x faster than torch, max |diff| "
                f"{onnx_fp32['max_abs_diff_vs_torch']:.1e}")
    details = ort_line + ("" if not int8 else (
        f"; int8 step {int8['step_ms']:.1f} ms = {int8['speedup_vs_fp32_step']:.2f}x the fp32 step, chunk nRMSE vs fp32 "
        + ", ".join(f"K={k} {v:.4f}" for k, v in int8["action_nrmse"].items()) + " (target <= 0.01)"))
    print_table(
        f"TinyVLA-S head ({params / 1e6:.1f}M params), batch 1, {torch.get_num_threads()} threads; "
        f"bare UNet step {bare:.1f} ms = {bare / floor_ms:.2f}x the memory floor ({floor_ms:.1f} ms); "
        f"sampler overhead {overhead * 100:+.1f}% per step{details}",
        ["sampler", "ms/chunk", "speedup vs DDIM-10", "step / floor"], rows, args.json, payload)
    if side and not args.json:
        print_side_by_side(side)


if __name__ == "__main__":
    main()
