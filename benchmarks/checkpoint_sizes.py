"""TinyVLA-S / -B / -H dimension checks: reference-layout training outputs at the published widths
(CLIP ViT-L/14-336 + Pythia-70M / 410M / 1B, the reference head; random weights) are generated,
loaded strictly through `inspect`, and their facts printed with the peak resident memory of the
loading process (VmHWM, each load in a fresh process).

With the full layer counts the parameter counts are compared with tinyvla-format.md §1.1 / §2.5
(total without the LM head: 421.8M / 740.4M / 1317M; head 72.8M / 81.0M / 98.8M, within 0.5 %).
With `--layers N` (vision and LLM layers cut to N, widths kept) only the head is compared.

    python benchmarks/checkpoint_sizes.py [--variants S B H] [--layers N] [--lora-r 64] [--json]

Generated directories live in a temporary directory under --workdir (default /tmp) and are
removed afterwards; the base VLM is written in float16, as Hub checkpoints usually are.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import print_table  # noqa: E402

# tinyvla-format.md: §1.1 totals (LM head excluded, head included) and §2.5 head sizes, in millions.
PUBLISHED_TOTAL_M = {"S": 421.8, "B": 740.4, "H": 1317.0}
PUBLISHED_HEAD_M = {"S": 72.8, "B": 81.0, "H": 98.8}
TOLERANCE = 0.005


def _child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def generate(variant: str, layers: int | None, lora_r: int, directory: Path) -> dict:
    """Child process: the base VLM and a root-only training output of one variant."""
    import torch

    from edge.policy.tiny import published_config, write_base_vlm, write_training_output

    cfg = published_config(variant, num_cameras=2, vision_layers=layers or 24, llm_layers=layers)
    base = write_base_vlm(directory / f"Llava-Pythia-{variant}", cfg, seed=0, dtype=torch.float16)
    root = write_training_output(directory / f"llava_pythia_lora_{variant}", base, cfg, seed=1, step=None, lora_r=lora_r)
    sizes = {p.name: p.stat().st_size for p in [*root.iterdir(), base / "model.safetensors"] if p.is_file()}
    return {"root": str(root), "base": str(base), "file_mb": {k: round(v / 2**20, 1) for k, v in sizes.items()}}


def load(root: str, base: str) -> dict:
    """Child process: `inspect` facts of a training output and this process's peak RSS."""
    from edge.inspect import inspect_path
    from edge.profiling.measure import peak_rss_mb

    facts = inspect_path(Path(root), base=Path(base))
    return {"facts": facts, "peak_rss_mb": round(peak_rss_mb(), 1)}


def check(variant: str, counts: dict, full: bool) -> list[str]:
    """Differences from the published parameter counts, as sentences (empty: all match)."""
    wanted = {"head": PUBLISHED_HEAD_M[variant]}
    if full:
        wanted["total"] = PUBLISHED_TOTAL_M[variant]
    return [f"{variant} {name}: {counts[name] / 1e6:.1f}M, published {m}M"
            for name, m in wanted.items() if abs(counts[name] / 1e6 - m) > TOLERANCE * m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["S", "B", "H"], choices=["S", "B", "H"])
    parser.add_argument("--layers", type=int, default=None, help="cut vision and LLM layers to N (widths kept)")
    parser.add_argument("--lora-r", type=int, default=64, help="LoRA rank (train.sh: 64)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = generate(rest[0], int(rest[1]) or None, int(rest[2]), Path(rest[3])) if kind == "generate" else load(*rest)
        print(json.dumps(result, default=str))
        return

    rows, payload, problems = [], {"layers": args.layers, "lora_r": args.lora_r, "variants": {}}, []
    for variant in args.variants:
        directory = Path(tempfile.mkdtemp(prefix=f"tinyvla-{variant}-", dir=args.workdir))
        try:
            made = _child(["--child", "generate", variant, str(args.layers or 0), str(args.lora_r), str(directory)])
            loaded = _child(["--child", "load", made["root"], made["base"]])
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        facts, counts = loaded["facts"], loaded["facts"]["parameters"]
        problems += check(variant, counts, full=args.layers is None)
        v, lm = facts["vision_tower"], facts["language_model"]
        rows.append([variant, facts["variant"], f"{v['hidden_size']}x{v['layers']}", f"{lm['hidden_size']}x{lm['layers']}",
                     f"{counts['head'] / 1e6:.1f}M", f"{counts['total'] / 1e6:.1f}M", loaded["peak_rss_mb"]])
        payload["variants"][variant] = {"facts": facts, "peak_rss_mb": loaded["peak_rss_mb"], "file_mb": made["file_mb"]}
    payload["problems"] = problems
    print_table(f"TinyVLA reference-layout outputs, loaded strictly (layers: {args.layers or 'published'}, LoRA r={args.lora_r})",
                ["variant", "detected", "vision", "llm", "head", "total", "peak RSS MiB (load)"], rows, args.json, payload)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
