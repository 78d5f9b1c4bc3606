"""RealSense: the Python binding with a backend that works on this kernel (reference §5, §8.7)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge.install.actions import Command, FileChange, cmd
from edge.install.context import REALSENSE_SOURCE_ENV, InstallContext
from edge.install.plan import StepPlan
from edge.install.probes import PYREALSENSE_IMPORT, probe_argv
from edge.install.steps.packages import apt_install
from edge.install.steps.python_env import pip, require_index, site
from edge.install.sysstate import dist_version, installed_packages
from edge.install.udev import REALSENSE_RULES_PATH, realsense_rules

SOURCE_DIR = "/opt/tinyvla-edge/src/librealsense"
BUILD_PACKAGES = ("git", "cmake", "build-essential", "libssl-dev", "libusb-1.0-0-dev", "pkg-config", "libgtk-3-dev")
# The source build's length, estimated on paper (not measured). The v2.58 tree compiles, with
# examples and DDS off and the Python bindings on, ~180 core C++ files (Linux/RSUSB backends),
# ~100 in rsutils and realsense-file (rosbag), 18 pybind11 wrapper files and 3 CUDA kernels
# (counted in the source tree). At ~15 s per core file and ~90 s per pybind11 file on one
# Cortex-A78AE core at 1.5 GHz, that is ~100 CPU-minutes; 110 leaves room for linking.
BUILD_CPU_MINUTES = 110
BUILD_REFERENCE_KHZ = 1_500_000
CPU_MAX_FREQ = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
UDEV_RELOAD = (
    cmd("udevadm", "control", "--reload-rules", why="load the new rules"),
    cmd("udevadm", "trigger", "--action=add", why="apply them to devices already plugged in"),
)


@dataclass(frozen=True)
class Backend:
    kind: str  # "rsusb-wheel" (dreamscale-pyrealsense2), "v4l-wheel" (pyrealsense2), "rsusb-source", "none"
    why: str


def realsense_backend(ctx: InstallContext) -> Backend:
    """Pick the binding by Python version and kernel (reference §5 and checklist item 7).

    - Python >= 3.11 (JetPack 7): dreamscale-pyrealsense2, an unmodified librealsense built with
      the RSUSB (libusb) backend: no kernel patch needed.
    - Python 3.10 (JetPack 6): no RSUSB wheel exists for cp310; the official pyrealsense2 uses V4L,
      which on an unpatched -tegra kernel misses formats and metadata, and Intel's patch script
      covers only L4T 36.3. So build librealsense from source with RSUSB.
    """
    choice = ctx.profile.install.realsense
    if not ctx.profile.cameras or choice == "none":
        return Backend("none", "profile has no cameras" if not ctx.profile.cameras else "profile sets realsense: none")
    if choice == "wheel":
        return Backend("v4l-wheel", "profile asks for the official wheel (V4L backend: needs a patched kernel "
                                    "for metadata and all formats)")
    if choice == "rsusb-source":
        return Backend("rsusb-source", "profile asks for a source build with the RSUSB backend")
    major, minor = (int(x) for x in ctx.python.split(".")[:2])
    if (major, minor) >= (3, 11):
        return Backend("rsusb-wheel", f"Python {ctx.python}: dreamscale-pyrealsense2 wheel with the RSUSB backend")
    return Backend("rsusb-source", f"Python {ctx.python}: no RSUSB wheel for cp{major}{minor} and the -tegra kernel "
                                   "is unpatched, so a source build with RSUSB")


def pyrealsense_visible(ctx: InstallContext) -> bool:
    """pyrealsense2 in the venv or in the system dist-packages the venv can see."""
    places = [f"{site(ctx)}/pyrealsense2", f"/usr/local/lib/python{ctx.python}/dist-packages/pyrealsense2",
              "/usr/lib/python3/dist-packages/pyrealsense2"]
    return any(ctx.path(p).exists() for p in places)


class RealSenseStep:
    name = "realsense"
    title = "RealSense Python binding and udev rules"
    covers = "§8.7 RealSense: backend by Python/kernel, 99-realsense-libusb.rules"

    def skip_reason(self, ctx: InstallContext) -> str | None:
        if not ctx.device.is_jetson:
            return "not a Jetson"
        backend = realsense_backend(ctx)
        return backend.why if backend.kind == "none" else None

    def plan(self, ctx: InstallContext) -> StepPlan:
        backend = realsense_backend(ctx)
        files: list[FileChange] = []
        commands: list[Command] = []
        rules = realsense_rules()
        old = ctx.read(REALSENSE_RULES_PATH)
        if old != rules:
            files.append(FileChange(REALSENSE_RULES_PATH, rules, old, why="camera access for the libusb backend"))
        binding = self._binding_commands(ctx, backend)
        commands += binding
        notes = [backend.why]
        if backend.kind == "rsusb-source" and binding:
            notes.append(f"{build_estimate(ctx)}; librealsense {ctx.profile.install.realsense_ref} from "
                         f"{ctx.settings.realsense_source} (override: install.realsense_ref, "
                         f"{REALSENSE_SOURCE_ENV} or install.realsense_source). Skip it with install.realsense: "
                         "none in the profile (no camera binding), or use install.realsense: wheel (V4L backend)")
        if files:
            commands += list(UDEV_RELOAD)
        if not commands and not files:
            return StepPlan(state=f"pyrealsense2 and rules in place ({backend.kind})")
        verify = [cmd(*probe_argv(ctx.venv_python, PYREALSENSE_IMPORT), as_user=ctx.settings.user,
                      why="the binding loads in the venv")] if binding else []
        return StepPlan(files=files, commands=commands, verify=verify, notes=notes,
                        state=f"pyrealsense2 via {backend.kind}")

    def _binding_commands(self, ctx: InstallContext, backend: Backend) -> list[Command]:
        packages = site(ctx)
        official, rsusb = dist_version(ctx.root, packages, "pyrealsense2"), dist_version(
            ctx.root, packages, "dreamscale-pyrealsense2")
        if backend.kind == "rsusb-wheel":
            if rsusb:
                return []
            # Both distributions provide the same module: never install both.
            remove = [cmd(ctx.venv_python, "-m", "pip", "uninstall", "-y", "pyrealsense2", as_user=ctx.settings.user,
                          why="same module as dreamscale-pyrealsense2")] if official else []
            return remove + [pip(ctx, "--index-url", require_index(ctx), "dreamscale-pyrealsense2",
                                 why="librealsense with the RSUSB backend, no kernel patch")]
        if backend.kind == "v4l-wheel":
            return [] if official else [pip(ctx, "--index-url", require_index(ctx), "pyrealsense2",
                                            why="official binding (V4L backend)")]
        if pyrealsense_visible(ctx):
            return []
        return self._source_build(ctx)

    def _source_build(self, ctx: InstallContext) -> list[Command]:
        source = ctx.settings.realsense_source
        missing = [p for p in BUILD_PACKAGES if p not in installed_packages(ctx.root)]
        commands = apt_install(missing, "librealsense build dependencies") if missing else []
        src = source if source.startswith("/") else SOURCE_DIR
        if not source.startswith("/") and not ctx.path(f"{SOURCE_DIR}/CMakeLists.txt").exists():
            commands.append(cmd("git", "clone", "--depth", "1", "--branch", ctx.profile.install.realsense_ref,
                                source, SOURCE_DIR, why="librealsense sources"))
        jobs = str(build_jobs(ctx))
        install_dir = f"/usr/local/lib/python{ctx.python}/dist-packages/pyrealsense2"
        commands += [
            cmd("cmake", "-S", src, "-B", f"{src}/build", "-DCMAKE_BUILD_TYPE=Release", "-DFORCE_RSUSB_BACKEND=ON",
                "-DBUILD_PYTHON_BINDINGS=ON", f"-DPYTHON_EXECUTABLE={ctx.venv_python}",
                f"-DPYTHON_INSTALL_DIR={install_dir}", "-DBUILD_WITH_CUDA=ON", "-DBUILD_EXAMPLES=OFF",
                "-DBUILD_GRAPHICAL_EXAMPLES=OFF", why="RSUSB backend: user-space libusb, no kernel patch"),
            cmd("make", "-C", f"{src}/build", f"-j{jobs}", why=build_estimate(ctx), timeout_s=3 * 3600,
                fix="if the compiler was killed, add swap (install.swap_gb) and rerun"),
            cmd("make", "-C", f"{src}/build", "install", why="install librealsense and pyrealsense2"),
            cmd("ldconfig", why="refresh the loader cache"),
        ]
        return commands


def build_jobs(ctx: InstallContext) -> int:
    """-j2 on 8 GB modules: the build runs out of memory with more jobs (reference §4.4, §5)."""
    return 2 if (ctx.device.ram_mb or 0) <= 8 * 1024 else 4


def build_estimate(ctx: InstallContext) -> str:
    """How long the source build takes on this module: BUILD_CPU_MINUTES scaled by its clock and jobs."""
    text = (ctx.read(CPU_MAX_FREQ) or "").strip()
    khz = int(text) if text.isdigit() and int(text) > 0 else BUILD_REFERENCE_KHZ
    minutes = BUILD_CPU_MINUTES * BUILD_REFERENCE_KHZ / khz / build_jobs(ctx)
    rounded = max(5, 5 * math.ceil(minutes / 5))
    return (f"the source build takes about {rounded} minutes here (an estimate, not a measurement: "
            f"~{BUILD_CPU_MINUTES} CPU-minutes at 1.5 GHz, {build_jobs(ctx)} jobs at {khz / 1e6:.2f} GHz)")
