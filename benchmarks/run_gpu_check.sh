#!/usr/bin/env bash
# The GPU checks of issue 19 (benchmarks/gpu_check.py), prepared for one `run` call on a lent
# H100/H200 (8 minutes at most; nothing is fetched from the network there).
#
# The GPU image has torch, transformers, onnx and onnxruntime but not pydantic, which the toolkit
# imports. So, on the development machine, once (PyPI reachable there; adds /.whl/ to git's exclude;
# PYTHON=/path/to/python if python3 there has no pip):
#     bash benchmarks/run_gpu_check.sh --prepare
# then, from the session that holds the GPU:
#     run(command="bash benchmarks/run_gpu_check.sh", carry=[".whl"], timeout_s=540)
# The JSON (and logs, nvidia-smi) come back from $OUT: gpu_check_quick.json (tiny dims, a
# sanity pass that fails fast) and gpu_check_s.json (TinyVLA-S widths, the figures to report).
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0)

if [ "${1:-}" = "--prepare" ]; then
  exclude=$(git rev-parse --git-path info/exclude)
  grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
  exec "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}"
fi

OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import pydantic, torch, transformers" ||
  { echo "missing packages: run 'bash benchmarks/run_gpu_check.sh --prepare' on the dev machine and carry .whl" >&2; exit 2; }
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
python3 -m pip list 2>/dev/null | grep -iE '^(torch|onnx|onnxruntime|onnxruntime-gpu|transformers|torch.tensorrt|bitsandbytes) ' >"$OUT/packages.txt"

# Tiny dims first: seconds, and a broken row shows up before the long run spends the budget.
timeout 120 python3 benchmarks/gpu_check.py --quick --json-out "$OUT/gpu_check_quick.json" 2>&1 | tee "$OUT/quick.log"
# TinyVLA-S: head and torch backbone rows come first and the JSON is rewritten after every row,
# so a run stopped by this limit still returns what it measured.
timeout 330 python3 benchmarks/gpu_check.py --json-out "$OUT/gpu_check_s.json" 2>&1 | tee "$OUT/s.log"
