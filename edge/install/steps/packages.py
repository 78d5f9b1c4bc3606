"""apt prerequisites for the detected JetPack release (reference §4.2)."""

from __future__ import annotations

from edge.install.actions import cmd
from edge.install.context import InstallContext
from edge.install.plan import StepPlan
from edge.install.sysstate import installed_packages

NONINTERACTIVE = {"DEBIAN_FRONTEND": "noninteractive"}

# Same names on Ubuntu 22.04 (JetPack 6) and 24.04 (JetPack 7). nvidia-jetpack brings CUDA,
# cuDNN and TensorRT; python3-libnvinfer is listed on its own so a missing TensorRT binding is
# named in the plan rather than hidden inside the meta-package.
JETSON_PACKAGES = (
    "nvidia-jetpack",
    "python3-libnvinfer",
    "python3-venv",
    "python3-pip",
    "python3-dev",
    "libopenblas-dev",  # torch wheels link OpenBLAS
    "libjpeg-dev",
    "zlib1g-dev",
    "libusb-1.0-0",  # RealSense RSUSB backend
    "v4l-utils",  # v4l2-ctl, which librealsense's udev setup needs
)


def apt_install(packages: list[str], why: str) -> list:
    """`apt-get update` then a non-interactive install of `packages`."""
    return [
        cmd("apt-get", "update", why="refresh package lists", env=NONINTERACTIVE,
            fix="check network access and /etc/apt/sources.list.d/nvidia-l4t-apt-source.list"),
        cmd("apt-get", "install", "-y", "--no-install-recommends", *packages, why=why, env=NONINTERACTIVE,
            fix="run the same apt-get command by hand to see the full error"),
    ]


class AptStep:
    name = "apt"
    title = "apt prerequisites"
    covers = "§8.6 Torch: JetPack CUDA/cuDNN/TensorRT and the TensorRT Python bindings"

    def skip_reason(self, ctx: InstallContext) -> str | None:
        return None if ctx.device.is_jetson else "not a Jetson"

    def plan(self, ctx: InstallContext) -> StepPlan:
        installed = installed_packages(ctx.root)
        missing = [p for p in JETSON_PACKAGES if p not in installed]
        if not missing:
            return StepPlan(state=f"{len(JETSON_PACKAGES)} packages installed")
        return StepPlan(commands=apt_install(missing, "JetPack runtime and build prerequisites"),
                        state=f"install {', '.join(missing)}")
