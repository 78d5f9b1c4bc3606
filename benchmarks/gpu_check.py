"""GPU checks in one run (issue 19, item 5): what the toolkit's policy does on a CUDA card.

Rows, each measured side by side in this one process (median and p99 over repeated runs, with the
ratio to its reference row and a fidelity figure):

- environment: CUDA availability, device name, torch version
- backbone (vision + language, 2 cameras, TinyVLA-S widths, random weights) in torch fp32 / fp16 /
  bf16; fidelity = cosine of the pooled hidden states vs fp32
- the same backbone on onnxruntime's CUDA execution provider at fp16 and int8 QDQ, when present
- diffusion head at K = 1, 2, 10 DDIM steps (K=10: the reference's leading schedule; K=1, 2: the
  trailing schedule distilled students use): fp32 eager (reference), fp16 eager, fp16 with the
  whole K-step loop captured once in a CUDA graph; fidelity = normalized RMSE of the chunk vs fp32
  on the same condition and noise (target ≤ 0.01)
- torch-tensorrt (language fp16) and bitsandbytes LLM.int8 (language), when importable
- peak GPU memory of each row and of the whole run

Every row that cannot run says why ("skipped") and a row that breaks says how ("failed"); the run
itself always finishes. On a CPU-only machine every GPU row is skipped in well under a second.

    python benchmarks/gpu_check.py [--quick] [--repeats N] [--json-out PATH]

`--quick` uses tiny dimensions (seconds on a GPU). Default: TinyVLA-S (CLIP ViT-L/14-336 +
Pythia-70M + the reference head), a few minutes on one H100 including the ONNX exports.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.backbone_latency import inputs as backbone_inputs  # noqa: E402
from benchmarks.common import latency_ms, normalized_rmse, print_table  # noqa: E402
from edge.policy.components import LanguageComponent, VisionComponent  # noqa: E402
from edge.policy.network import TinyVLANetwork  # noqa: E402
from edge.policy.sampler import DDIMSampler, trailing_timesteps  # noqa: E402
from edge.policy.tiny import s_dimension_config, tiny_config  # noqa: E402

HEAD_STEPS = (1, 2, 10)
CAMERAS = 2
HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


class Skip(Exception):
    """A check that cannot run here; the message says why."""


class Check:
    """Runs one named check after another, each recorded as a row (ok / skipped / failed)."""

    def __init__(self, device: torch.device, warmup: int = 3, after_row: Callable[[], None] = lambda: None):
        self.device = device
        self.warmup = warmup
        self.after_row = after_row  # e.g. rewrite the JSON, so a run cut off by a time limit keeps its rows
        self.rows: list[dict] = []

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def time(self, fn: Callable[[], object], repeats: int) -> dict:
        stats = latency_ms(fn, repeats, warmup=self.warmup, sync=self.sync)
        return {"median_ms": stats.p50, "p99_ms": stats.p99, "runs": stats.n}

    def run(self, name: str, needs_gpu: bool, fn: Callable[[], dict], skip_reason: str | None = None) -> dict:
        """Record `fn()`'s measurements under `name`; a Skip or an error becomes the row's reason."""
        row = {"check": name, "needs_gpu": needs_gpu}
        if skip_reason:
            row.update(status="skipped", reason=skip_reason)
        else:
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            try:
                row.update(status="ok", **fn())
                if self.device.type == "cuda":
                    row["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
            except Skip as e:
                row.update(status="skipped", reason=str(e))
            except Exception as e:  # noqa: BLE001 - a broken check must not stop the others
                first = (str(e).strip().splitlines() or [""])[0][:200]
                row.update(status="failed", reason=f"{type(e).__name__}: {first}")
        self.rows.append(row)
        self.after_row()
        return row


def sampler_for(steps: int) -> DDIMSampler:
    """K=10: the reference's schedule; fewer steps: the trailing schedule distilled heads use."""
    return DDIMSampler.leading(steps) if steps == 10 else DDIMSampler(trailing_timesteps(steps))


def cuda_skip_reason() -> str | None:
    if torch.cuda.is_available():
        return None
    return f"needs a CUDA GPU: torch {torch.__version__} (CUDA build {torch.version.cuda}) sees none"


def environment(device: torch.device) -> dict:
    facts = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    if device.type == "cuda":
        facts["device_name"] = torch.cuda.get_device_name()
        facts["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
        facts["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    return facts


class Workload:
    """The policy's network at the chosen widths, its inputs and its fp32 reference outputs."""

    def __init__(self, quick: bool, device: torch.device):
        self.cfg = tiny_config(num_cameras=CAMERAS) if quick else s_dimension_config(num_cameras=CAMERAS)
        self.device = device
        torch.manual_seed(0)
        with torch.device(device):  # random init directly on the device: seconds, not a minute, at S widths
            network = TinyVLANetwork(self.cfg).eval()
        self.vision, self.language, self.head = VisionComponent(network), LanguageComponent(network), network.head
        px, prefix, suffix = backbone_inputs(self.cfg, seed=7)
        self.pixels, self.prefix, self.suffix = px.to(device), prefix.to(device), suffix.to(device)
        g = torch.Generator().manual_seed(1)
        self.noise = torch.randn((1, self.cfg.head.chunk_size, self.cfg.head.action_dim), generator=g).to(device)
        self.state = torch.randn((1, self.cfg.head.state_dim), generator=g).to(device)
        with torch.inference_mode():
            self.hidden = self.backbone(self.vision, self.language, torch.float32)
            self.condition = self.head.encode_condition(self.hidden, self.state)

    def backbone(self, vision, language, dtype: torch.dtype) -> torch.Tensor:
        return language(self.prefix, vision(self.pixels.to(dtype)), self.suffix)


def pooled_cosine(hidden: torch.Tensor, reference: torch.Tensor) -> float:
    a, b = hidden.float().mean(dim=1).flatten(), reference.float().mean(dim=1).flatten()
    return float(a @ b / a.norm() / b.norm())


def backbone_torch(work: Workload, check: Check, precision: str, repeats: int) -> dict:
    dtype = HALF.get(precision, torch.float32)
    vision, language = (work.vision, work.language) if dtype == torch.float32 else (
        copy.deepcopy(work.vision).to(dtype), copy.deepcopy(work.language).to(dtype))
    with torch.inference_mode():
        out = check.time(lambda: work.backbone(vision, language, dtype), repeats)
        out["cosine_vs_fp32"] = pooled_cosine(work.backbone(vision, language, dtype), work.hidden)
    return out


def ort_cuda_skip_reason() -> str | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (has {', '.join(providers)}); onnxruntime-gpu provides it"
    return None


def export_backbone(work: Workload, directory: Path) -> dict[str, tuple[Path, Path]]:
    """fp32 ONNX of vision and language, then fp16 (onnxruntime's converter, fp32 inputs/outputs
    kept) and int8 QDQ (the toolkit's calibration, 2 observations): {precision: (vision, language)}."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from quantize.int8 import quantize_static_qdq
    from quantize.onnx_export import export_onnx

    vision, language = copy.deepcopy(work.vision).cpu(), copy.deepcopy(work.language).cpu()
    px, prefix, suffix = work.pixels.cpu(), work.prefix.cpu(), work.suffix.cpu()
    with torch.inference_mode():
        tokens = vision(px)
    paths = {p: (directory / f"vision.{p}.onnx", directory / f"language.{p}.onnx") for p in ("fp32", "fp16", "int8")}
    export_onnx(vision, (px,), paths["fp32"][0], ["pixel_values"], ["output"])
    export_onnx(language, (prefix, tokens, suffix), paths["fp32"][1], ["prefix_ids", "image_tokens", "suffix_ids"], ["output"])
    for fp32, fp16 in zip(paths["fp32"], paths["fp16"]):
        onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True), str(fp16))
    calib = [backbone_inputs(work.cfg, seed=100 + i) for i in range(2)]
    with torch.inference_mode():
        lang_feeds = [{"prefix_ids": p.numpy(), "image_tokens": vision(x).numpy(), "suffix_ids": s.numpy()} for x, p, s in calib]
    quantize_static_qdq(paths["fp32"][0], paths["int8"][0], [{"pixel_values": x.numpy()} for x, _, _ in calib])
    quantize_static_qdq(paths["fp32"][1], paths["int8"][1], lang_feeds)
    return paths


def backbone_ort_cuda(work: Workload, check: Check, models: tuple[Path, Path], repeats: int) -> dict:
    from edge.engines.onnx_engine import OnnxRunner

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    vision, language = OnnxRunner(models[0], providers=providers), OnnxRunner(models[1], providers=providers)
    if "CUDAExecutionProvider" not in vision.session.get_providers():
        raise Skip("onnxruntime could not start its CUDA execution provider (fell back to CPU)")
    px, prefix, suffix = work.pixels.cpu(), work.prefix.cpu(), work.suffix.cpu()

    def run():
        return language(prefix, vision(px), suffix)

    out = check.time(run, repeats)
    out["cosine_vs_fp32"] = pooled_cosine(run(), work.hidden.cpu())
    out["note"] = "inputs and outputs through host memory"
    return out


def head_eager(work: Workload, check: Check, steps: int, dtype: torch.dtype, repeats: int) -> tuple[dict, torch.Tensor]:
    head = work.head if dtype == torch.float32 else copy.deepcopy(work.head).to(dtype)
    sampler = sampler_for(steps)
    cond, noise = work.condition.to(dtype), work.noise.to(dtype)
    with torch.inference_mode():
        feats = head.step_features(sampler.timesteps.to(work.device))

        def chunk():
            return sampler.sample(lambda i, x: head.denoise(x, feats[i : i + 1], cond), noise)

        return check.time(chunk, repeats), chunk()


def head_graph(work: Workload, check: Check, steps: int, dtype: torch.dtype, repeats: int) -> tuple[dict, torch.Tensor]:
    """The toolkit's CUDA head engine (`edge.engines.head_runners.CudaGraphHead`, what a bundle
    whose head is torch fp16/bf16 runs): the K-step loop (the toolkit's sampler, same timesteps and
    arithmetic) captured once; each call copies in the condition and noise and replays, as a robot
    loop would, and returns the chunk on the host."""
    from edge.engines.head_runners import CudaGraphHead

    precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    runner = CudaGraphHead(work.head, sampler_for(steps), precision, work.device)

    def replay():
        return runner(work.condition, work.noise)

    return check.time(replay, repeats), replay()


def head_rows(work: Workload, check: Check, repeats: int, gpu_reason: str | None) -> None:
    for steps in HEAD_STEPS:
        chunks: dict[str, torch.Tensor] = {}

        def measured(kind: str, fn):
            def run():
                stats, chunks[kind] = fn()
                reference = chunks.get("fp32")
                if reference is not None and kind != "fp32":
                    stats["vs_reference"] = ref_row["median_ms"] / stats["median_ms"]
                    stats["action_nrmse_vs_fp32"] = normalized_rmse(chunks[kind], reference)
                return stats
            return run

        ref_row = check.run(f"head fp32 eager K={steps}", True,
                            measured("fp32", lambda: head_eager(work, check, steps, torch.float32, repeats)), gpu_reason)
        ref_missing = gpu_reason or (None if ref_row["status"] == "ok" else "the fp32 reference row did not run")
        eager = check.run(f"head fp16 eager K={steps}", True,
                          measured("fp16", lambda: head_eager(work, check, steps, torch.float16, repeats)), ref_missing)
        graph_reason = ref_missing or (None if work.device.type == "cuda" else "CUDA graphs need a CUDA device")
        graph = check.run(f"head fp16 CUDA graph K={steps}", True,
                          measured("graph", lambda: head_graph(work, check, steps, torch.float16, repeats)), graph_reason)
        if graph["status"] == "ok" and eager["status"] == "ok":
            graph["vs_fp16_eager"] = eager["median_ms"] / graph["median_ms"]
            graph["note"] = f"{graph['vs_fp16_eager']:.2f}x fp16 eager"


def backbone_rows(work: Workload, check: Check, repeats: int, gpu_reason: str | None) -> None:
    ref = check.run("backbone torch fp32", True, lambda: backbone_torch(work, check, "fp32", repeats), gpu_reason)
    for precision in HALF:
        row = check.run(f"backbone torch {precision}", True, lambda: backbone_torch(work, check, precision, repeats),
                        gpu_reason)
        add_ratio(row, ref)


def backbone_ort_rows(work: Workload, check: Check, repeats: int, gpu_reason: str | None) -> None:
    """Last in the run: the exports and the int8 calibration take the longest (CPU work)."""
    ref = next(r for r in check.rows if r["check"] == "backbone torch fp32")
    ort_reason = gpu_reason or ort_cuda_skip_reason()
    models = None
    with tempfile.TemporaryDirectory() as tmp:
        if not ort_reason:
            export = check.run("onnx export + int8 calibration (CPU)", False,
                               lambda: {"paths": {k: [str(p) for p in v] for k, v in export_backbone(work, Path(tmp)).items()}})
            models = export.get("paths")
            ort_reason = None if models else f"export failed: {export['reason']}"
        for precision in ("fp16", "int8"):
            row = check.run(f"backbone onnxruntime CUDA EP {precision}", True,
                            lambda: backbone_ort_cuda(work, check, tuple(map(Path, models[precision])), repeats), ort_reason)
            add_ratio(row, ref)


def add_ratio(row: dict, reference: dict) -> None:
    if row["status"] == "ok" and reference["status"] == "ok":
        row["vs_reference"] = reference["median_ms"] / row["median_ms"]


def optional_engine_rows(work: Workload, check: Check, repeats: int, gpu_reason: str | None) -> None:
    """torch-tensorrt and bitsandbytes on the language component, vs the same component in fp16."""
    from edge.engines import engine_unavailable_reason

    tokens = None
    if not gpu_reason:
        with torch.inference_mode():
            tokens = work.vision(work.pixels).half()
    language16 = None if gpu_reason else copy.deepcopy(work.language).half()

    def fp16_language():
        with torch.inference_mode():
            return check.time(lambda: language16(work.prefix, tokens, work.suffix), repeats)

    base = check.run("language torch fp16 (engine baseline)", True, fp16_language, gpu_reason)

    def tensorrt():
        from edge.engines.cache import EngineCache
        from edge.engines.tensorrt_engine import TensorRTRunner

        with tempfile.TemporaryDirectory() as tmp:
            runner = TensorRTRunner(copy.deepcopy(language16), "fp16", [work.prefix, tokens, work.suffix],
                                    weights_sha256="gpu-check-random-weights", component="language",
                                    cache=EngineCache(Path(tmp)))
            return check.time(lambda: runner(work.prefix, tokens, work.suffix), repeats)

    def bitsandbytes():
        from edge.engines.bnb_engine import to_llm_int8

        language8 = to_llm_int8(copy.deepcopy(work.language).cpu(), "language")
        with torch.inference_mode():
            return check.time(lambda: language8(work.prefix, tokens, work.suffix), repeats)

    for name, fn, engine in (("language torch-tensorrt fp16", tensorrt, "tensorrt"),
                             ("language bitsandbytes LLM.int8", bitsandbytes, "bitsandbytes")):
        row = check.run(name, True, fn, engine_unavailable_reason(engine))
        add_ratio(row, base)


def table_rows(rows: list[dict]) -> list[list[str]]:
    def num(row, key, fmt):
        return fmt.format(row[key]) if key in row else "-"

    out = []
    for r in rows:
        fidelity = (f"nrmse {r['action_nrmse_vs_fp32']:.4f}" if "action_nrmse_vs_fp32" in r
                    else f"cos {r['cosine_vs_fp32']:.5f}" if "cosine_vs_fp32" in r else "-")
        note = r.get("reason") or r.get("note") or ""
        out.append([r["check"], r["status"], num(r, "median_ms", "{:.2f}"), num(r, "p99_ms", "{:.2f}"),
                    num(r, "vs_reference", "{:.2f}x"), fidelity, num(r, "peak_gpu_mb", "{:.0f}"), note[:90]])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny dimensions instead of TinyVLA-S")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row (default 50, 10 with --quick)")
    parser.add_argument("--json-out", type=Path, help="also write the rows as JSON here")
    # Tests only: run the torch rows on this CPU, one untimed-warm-up-free run each, to exercise the code.
    parser.add_argument("--cpu-smoke", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = args.repeats or (10 if args.quick else 50)
    gpu_reason = None if args.cpu_smoke else cuda_skip_reason()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu_smoke else "cpu")
    payload = {"dims": "tiny" if args.quick else "tinyvla-s", "cameras": CAMERAS, "repeats": repeats, "rows": []}
    check = Check(device, warmup=0 if args.cpu_smoke else 3, after_row=lambda: save(payload, args.json_out))
    payload["rows"] = check.rows
    env = check.run("environment", False, lambda: environment(device))
    payload["environment"] = {k: v for k, v in env.items() if k not in ("check", "status", "needs_gpu")}
    work = None if gpu_reason else Workload(args.quick, device)
    # Most wanted first: a run stopped by a time limit still has the head and the torch backbone.
    head_rows(work, check, repeats, gpu_reason)
    backbone_rows(work, check, repeats, gpu_reason)
    optional_engine_rows(work, check, repeats, gpu_reason)
    backbone_ort_rows(work, check, repeats, gpu_reason)
    peaks = [r["peak_gpu_mb"] for r in check.rows if "peak_gpu_mb" in r]
    check.run("peak GPU memory (max over rows)", True, lambda: {"peak_gpu_mb": max(peaks)},
              gpu_reason or (None if peaks else "no row used a CUDA device"))
    title = (f"GPU check ({payload['dims']} dims, {CAMERAS} cameras, {repeats} runs per row) on "
             f"{env.get('device_name', 'no CUDA device')}, torch {torch.__version__}")
    print_table(title, ["check", "status", "median ms", "p99 ms", "vs ref", "fidelity", "peak MB", "note / reason"],
                table_rows(check.rows), False, payload)


def save(payload: dict, path: Path | None) -> None:
    """Progress on stderr, and the rows so far as JSON (a run cut off by a time limit keeps them)."""
    last = payload["rows"][-1]
    print(f"[gpu_check] {last['check']}: {last['status']} {last.get('median_ms', '')} {last.get('reason', '')}",
          file=sys.stderr, flush=True)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
