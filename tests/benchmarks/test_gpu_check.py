"""benchmarks/gpu_check.py on a CPU-only machine: it finishes, writes valid JSON, and every row
that needs a GPU says it was skipped and why; its torch code paths run on CPU at tiny widths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.gpu_check import Check, Workload, backbone_torch, head_rows

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_on_cpu_writes_json_and_skips_every_gpu_row_with_a_reason(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--quick", "--json-out", str(out)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["dims"] == "tiny" and report["environment"]["cuda_available"] is False
    gpu_rows = [r for r in report["rows"] if r["needs_gpu"]]
    names = {r["check"] for r in gpu_rows}
    assert {"backbone torch fp16", "backbone onnxruntime CUDA EP int8", "head fp16 CUDA graph K=1",
            "language bitsandbytes LLM.int8", "peak GPU memory (max over rows)"} <= names
    for row in gpu_rows:
        assert row["status"] == "skipped" and row["reason"].strip(), row
    assert "skipped" in run.stdout and "head fp16 CUDA graph K=10" in run.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="exercises the CPU path of the torch rows")
def test_torch_rows_measure_and_compare_against_fp32_on_cpu():
    work = Workload(quick=True, device=torch.device("cpu"))
    check = Check(work.device, warmup=0)
    head_rows(work, check, repeats=1, gpu_reason=None)
    rows = {r["check"]: r for r in check.rows}
    for steps in (1, 2, 10):
        eager = rows[f"head fp16 eager K={steps}"]
        assert eager["status"] == "ok" and eager["runs"] == 1 and eager["median_ms"] > 0
        # fp16 rounding moves the chunk a little, never by a visible fraction of the action range.
        assert 0 <= eager["action_nrmse_vs_fp32"] < 0.05
        assert rows[f"head fp16 CUDA graph K={steps}"]["status"] == "skipped"
    bf16 = backbone_torch(work, check, "bf16", repeats=1)
    assert 0.99 < bf16["cosine_vs_fp32"] <= 1.0 + 1e-6
