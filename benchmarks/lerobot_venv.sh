#!/usr/bin/env bash
# Build the separate LeRobot 0.4.4 venv that benchmarks/head_latency.py --lerobot-python times
# LeRobot's diffusion-policy head in (through benchmarks/lerobot_head_worker.py).
#
#   bash benchmarks/lerobot_venv.sh [VENV_DIR]     # default .venv-lerobot
#   python benchmarks/head_latency.py --lerobot-python VENV_DIR/bin/python
#
# LeRobot cannot live in the project venv: lerobot.policies/__init__ imports every policy's config,
# and groot's need transformers 4.x (the project runs 5.x). Two more conflicts are resolved here:
#   * lerobot 0.4.4 pins torch<2.11; the timing must use the project's CPU torch 2.13.0, so lerobot
#     goes in with --no-deps and only the packages its diffusion-policy import chain needs follow
#     (within lerobot's own version ranges, torch held at 2.13.0).
#   * no torchvision wheel works with CPU torch 2.13 (PyPI's 0.28/0.29 link libc10_cuda.so and
#     libtorch_cuda.so, so their ops never register). LeRobot imports torchvision at module level but
#     calls it only for image inputs (resnet backbone, crops, video decoding), so a stub package with
#     just the names bound at import time goes into the venv's site-packages. A state-only
#     DiffusionConfig never reaches it; anything that does gets an AttributeError naming the stub.
set -euo pipefail

VENV="${1:-.venv-lerobot}"
PYTHON="${PYTHON:-python3.11}"
TORCH="torch==2.13.0"

# Install torch first: it resolves to the local CPU build instead of a multi-GB CUDA download.
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet "$TORCH"
"$VENV/bin/pip" install --quiet --no-deps "lerobot==0.4.4"
# What `import lerobot.policies.diffusion.modeling_diffusion` pulls in, at lerobot 0.4.4's ranges.
"$VENV/bin/pip" install --quiet "$TORCH" \
    "transformers>=4.57.1,<5" "diffusers>=0.27.2,<0.36" "huggingface-hub>=0.34.2,<0.36" \
    "accelerate>=1.10.0,<2" "datasets>=4.0.0,<5" "draccus==0.10.0" "einops>=0.8.0,<0.9" \
    "imageio>=2.34.0,<3" "av>=15.0.0,<16" "deepdiff>=7.0.1,<9" "pyserial>=3.5,<4" \
    "packaging>=24.2,<26" "setuptools>=71.0.0,<81"

SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
STUB="$SITE/torchvision"
rm -rf "$STUB"
mkdir -p "$STUB/transforms/v2" "$STUB/models" "$STUB/io"

cat >"$STUB/__init__.py" <<'EOF'
"""Import-time stand-in for torchvision, written by benchmarks/lerobot_venv.sh: no torchvision
wheel works with the CPU torch 2.13 here. LeRobot binds these names when its modules load; only
image inputs would call into them, and the head benchmark has none."""

from . import io, models, transforms  # noqa: F401

__version__ = "0.0+stub"


def __getattr__(name):
    raise AttributeError(f"torchvision.{name}: torchvision is a stub in this venv (lerobot_venv.sh)")
EOF

cat >"$STUB/transforms/__init__.py" <<'EOF'
"""Stub: datasets/utils.py binds `torchvision.transforms`, processor/hil_processor.py `.functional`."""

from . import functional, v2  # noqa: F401


def __getattr__(name):
    raise AttributeError(f"torchvision.transforms.{name}: torchvision is a stub in this venv")
EOF

cat >"$STUB/transforms/v2/__init__.py" <<'EOF'
"""Stub: datasets/transforms.py subclasses `Transform` and binds `functional` at import time."""

import torch

from . import functional  # noqa: F401


class Transform(torch.nn.Module):
    """Base class LeRobot's image transforms derive from (never instantiated by the benchmark)."""


def __getattr__(name):
    raise AttributeError(f"torchvision.transforms.v2.{name}: torchvision is a stub in this venv")
EOF

for mod in transforms/functional transforms/v2/functional models/__init__ io/__init__; do
    printf '"""Stub module (benchmarks/lerobot_venv.sh): nothing here is callable."""\n' >"$STUB/$mod.py"
done

# Prove the two imports the head worker needs, from outside any source tree.
(cd / && "$VENV/bin/python" -c '
from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig  # noqa: F401
from lerobot.policies.diffusion.modeling_diffusion import DiffusionModel  # noqa: F401
import lerobot, torch, transformers
print(f"ok: lerobot {lerobot.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
')
