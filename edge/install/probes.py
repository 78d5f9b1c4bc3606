"""Small Python programs that prove a GPU stack works, run in a separate interpreter.

Import alone proves nothing on a Jetson: PyPI bitsandbytes imports fine and fails at its first
kernel (`Error named symbol not found`), and a CPU-only torch imports fine too (reference §4).
So each probe runs real work and prints one JSON line. Running them in a subprocess keeps a
crashing CUDA library from taking `doctor` down with it, and lets `install` point them at the
venv's interpreter. Each program is a self-contained string, so it runs before tinyvla-edge
itself is installed in that interpreter.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

# A matmul on the GPU checked against the CPU: exercises the CUDA runtime, cuBLAS and the driver.
TORCH_CUDA = """
import json, torch
out = {"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda": torch.cuda.is_available()}
if out["cuda"]:
    a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    gpu = (a.cuda() @ a.cuda()).cpu()
    torch.cuda.synchronize()
    out["device"] = torch.cuda.get_device_name(0)
    out["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    want = a @ a
    out["rel_err"] = float((gpu - want).abs().max() / want.abs().max())
    out["ok"] = out["rel_err"] < 1e-3
else:
    out["ok"] = False
print(json.dumps(out))
raise SystemExit(0 if out["ok"] else 1)
"""

# An int8 Linear (LLM.int8 path) against the fp16 reference: the first real bitsandbytes kernel.
BITSANDBYTES_INT8 = """
import json, torch, bitsandbytes as bnb
torch.manual_seed(0)
ref = torch.nn.Linear(256, 128, bias=False).half()
int8 = bnb.nn.Linear8bitLt(256, 128, bias=False, has_fp16_weights=False, threshold=0.0)
int8.load_state_dict(ref.state_dict())
int8 = int8.cuda()
x = torch.randn(8, 256, dtype=torch.float16, device="cuda")
y = int8(x)
torch.cuda.synchronize()
want = ref.cuda()(x)
rel = float((y.float() - want.float()).norm() / want.float().norm())
print(json.dumps({"bitsandbytes": bnb.__version__, "rel_err": rel, "ok": rel < 0.05}))
raise SystemExit(0 if rel < 0.05 else 1)
"""

TENSORRT_IMPORT = """
import json, tensorrt
print(json.dumps({"tensorrt": tensorrt.__version__, "ok": True}))
"""

ONNXRUNTIME_PROVIDERS = """
import json, onnxruntime
print(json.dumps({"onnxruntime": onnxruntime.__version__,
                  "providers": onnxruntime.get_available_providers(), "ok": True}))
"""

PYREALSENSE_IMPORT = """
import json, pyrealsense2 as rs
print(json.dumps({"pyrealsense2": getattr(rs, "__version__", "unknown"), "ok": True}))
"""


def probe_argv(python: str, program: str) -> list[str]:
    """The command that runs `program` under `python` (exit code 0 only when the work checked out)."""
    return [python, "-c", program.strip()]


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    data: dict
    error: str  # one line when not ok


def run_probe(python: str, program: str, timeout_s: float = 120.0) -> ProbeResult:
    """Run a probe program and parse its JSON line; any failure becomes a one-line error."""
    try:
        result = subprocess.run(probe_argv(python, program), stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return ProbeResult(False, {}, f"timed out after {timeout_s:.0f} s")
    except OSError as e:
        return ProbeResult(False, {}, str(e))
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        errors = [line for line in result.stderr.strip().splitlines() if line.strip()]
        return ProbeResult(False, {}, errors[-1][:200] if errors else f"exit code {result.returncode}")
    data = json.loads(lines[-1])
    return ProbeResult(bool(data.get("ok")), data, "" if data.get("ok") else json.dumps(data)[:200])
