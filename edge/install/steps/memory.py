"""Swap when RAM is small for the profile's model (or for on-device source builds)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge.install.actions import Command, FileChange, cmd
from edge.install.context import InstallContext
from edge.install.plan import StepPlan
from edge.install.steps.realsense import realsense_backend
from edge.install.sysstate import swap_areas

SWAPFILE = "/swapfile"
FSTAB_LINE = f"{SWAPFILE} none swap sw 0 0"

# Total parameters (paper §5.1): LLM + CLIP-L/336 + projector + UNet head.
PARAMS_BY_VARIANT = {"S": 422e6, "B": 740e6, "H": 1.3e9}
# OS and desktop, the CUDA context, torch/TensorRT/cuDNN libraries and the camera pipeline.
RUNTIME_BASELINE_MB = 3072
# librealsense's source build OOMs an 8 GB module with more than two jobs (reference §4.4/§5).
SOURCE_BUILD_MB = 12 * 1024
MIN_SWAPFILE_GB = 4


@dataclass(frozen=True)
class MemoryNeed:
    mb: int
    why: str


def memory_need(variant: str, source_build: bool) -> MemoryNeed:
    """Peak memory the device must hold: RAM plus disk swap (zram is compressed RAM: not counted).

    Building TensorRT engines on the device holds the fp16 weights and the engine being built at
    the same time, so the model's peak is about twice its fp16 size, plus the runtime baseline.
    """
    params = PARAMS_BY_VARIANT.get(variant, 0.0)
    model_mb = int(2 * params * 2 / 2**20) + RUNTIME_BASELINE_MB
    why = f"TinyVLA-{variant}: 2 x fp16 weights + {RUNTIME_BASELINE_MB} MB runtime" if params else "runtime baseline"
    if source_build and SOURCE_BUILD_MB > model_mb:
        return MemoryNeed(SOURCE_BUILD_MB, "librealsense source build on the device")
    return MemoryNeed(model_mb, why)


class SwapStep:
    name = "swap"
    title = "swap file if RAM is small for the model"
    covers = "issue 8 §2: swap if RAM is small for the profile's model"

    def skip_reason(self, ctx: InstallContext) -> str | None:
        return None if ctx.device.is_jetson else "not a Jetson"

    def plan(self, ctx: InstallContext) -> StepPlan:
        fstab = ctx.read("/etc/fstab") or ""
        in_fstab = any(line.split()[:1] == [SWAPFILE] for line in fstab.splitlines())
        areas = swap_areas(ctx.root)
        active = any(a.name == SWAPFILE for a in areas)
        disk_swap = sum(a.size_mb for a in areas if not a.is_zram)
        ram = ctx.device.ram_mb or 0
        explicit = ctx.profile.install.swap_gb
        need = memory_need(ctx.profile.model.variant, realsense_backend(ctx).kind == "rsusb-source")

        if in_fstab and active:
            return StepPlan(state=f"{SWAPFILE} active")
        if not in_fstab:
            if explicit == 0:
                return StepPlan(state="the profile disables swap (install.swap_gb: 0)")
            if explicit is None and ram + disk_swap >= need.mb:
                return StepPlan(state=f"RAM {ram} MB + swap {disk_swap} MB covers {need.mb} MB ({need.why})")
        size_gb = explicit or max(MIN_SWAPFILE_GB, math.ceil((need.mb - ram - disk_swap) / 1024))
        commands: list[Command] = []
        if not ctx.path(SWAPFILE).exists():
            commands += [cmd("fallocate", "-l", f"{size_gb:g}G", SWAPFILE, why=f"{need.mb} MB needed ({need.why}), "
                             f"RAM {ram} MB + disk swap {disk_swap} MB", fix="free disk space or set install.swap_gb"),
                         cmd("chmod", "600", SWAPFILE, why="swap must not be world-readable"),
                         cmd("mkswap", SWAPFILE, why="format it")]
        commands.append(cmd("swapon", SWAPFILE, why="use it now"))
        files = [] if in_fstab else [FileChange("/etc/fstab", fstab.rstrip("\n") + ("\n" if fstab.strip() else "")
                                                + FSTAB_LINE + "\n", fstab or None, why="use it at every boot")]
        return StepPlan(files=files, commands=commands, state=f"{size_gb:g} GB {SWAPFILE}")
