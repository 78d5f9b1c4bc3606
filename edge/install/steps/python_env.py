"""The virtual environment and the JetPack-matched wheels (reference §4.1, §4.3, §4.4, §8.6)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from edge.install.actions import Command, FileChange, cmd
from edge.install.context import INDEX_URL_ENV, InstallContext, InstallError
from edge.install.plan import StepPlan
from edge.install.probes import BITSANDBYTES_INT8, TORCH_CUDA, probe_argv
from edge.install.sysstate import dist_version, group_name, pyvenv_cfg, site_packages, users

CUSPARSELT_LDCONF = "/etc/ld.so.conf.d/tinyvla-edge-cusparselt.conf"

# (pip requirement, distribution name as in .dist-info)
JETSON_WHEELS = (
    ("torch", "torch"),
    ("torchvision", "torchvision"),
    ("torch-tensorrt", "torch_tensorrt"),
    ("onnxruntime-gpu", "onnxruntime_gpu"),
    ("bitsandbytes", "bitsandbytes"),
)


def require_index(ctx: InstallContext) -> str:
    """The wheel index, or a clear refusal: plain PyPI is never a fallback on a Jetson."""
    if ctx.settings.index_url:
        return ctx.settings.index_url
    raise InstallError(
        f"no wheel index for JetPack {ctx.device.jetpack}: its platform/CUDA tag is unknown; pass --index-url "
        f"URL (or set {INDEX_URL_ENV} / install.index_url). tinyvla-edge never installs plain PyPI torch on "
        "a Jetson: it is CPU-only or built for SBSA servers"
    )


def pip(ctx: InstallContext, *args: str, why: str) -> Command:
    """pip inside the venv, as the service user (so the venv stays theirs)."""
    return cmd(ctx.venv_python, "-m", "pip", "install", *args, why=why, as_user=ctx.settings.user,
               fix="check the index URL serves wheels for this JetPack (platform/cuda tag in the URL)")


def site(ctx: InstallContext) -> str:
    return site_packages(ctx.settings.venv, ctx.python)


class VenvStep:
    name = "venv"
    title = "virtual environment with system site-packages"
    covers = "§8.6 Torch: venv with --system-site-packages (TensorRT bindings)"

    def skip_reason(self, ctx: InstallContext) -> str | None:
        return None if ctx.device.is_jetson else "not a Jetson (development machines use `make venv`)"

    def plan(self, ctx: InstallContext) -> StepPlan:
        venv, python = ctx.settings.venv, ctx.python
        cfg = pyvenv_cfg(ctx.root, venv)
        if cfg is None:
            commands = []
            parent = str(PurePosixPath(venv).parent)
            if not ctx.path(parent).is_dir():
                user = users(ctx.root)[ctx.settings.user]
                group = group_name(ctx.root, user.gid) or ctx.settings.user
                commands.append(cmd("install", "-d", "-o", ctx.settings.user, "-g", group, parent,
                                    why="a directory the service user owns"))
            commands.append(cmd(f"/usr/bin/python{python}", "-m", "venv", "--system-site-packages", venv,
                                as_user=ctx.settings.user,
                                why="TensorRT's Python bindings exist only in the system Python's dist-packages"))
            return StepPlan(commands=commands, state=f"create {venv} (Python {python}, system site-packages)")
        version = cfg.get("version_info") or cfg.get("version") or ""
        major_minor = ".".join(version.split(".")[:2])
        if major_minor != python:
            raise InstallError(
                f"{venv} uses Python {major_minor or 'unknown'}, but TensorRT's bindings exist only for the "
                f"system Python {python}: remove it (rm -rf {venv}) and rerun, or pass --venv PATH"
            )
        if cfg.get("include-system-site-packages", "false").lower() != "true":
            path = f"{venv}/pyvenv.cfg"
            old = ctx.read(path) or ""
            new = re.sub(r"(?m)^include-system-site-packages\s*=.*$", "include-system-site-packages = true", old)
            if new == old:
                new = old.rstrip("\n") + "\ninclude-system-site-packages = true\n"
            return StepPlan(files=[FileChange(path, new, old, why="let the venv see TensorRT's bindings")],
                            state=f"{venv}: turn on system site-packages")
        return StepPlan(state=f"{venv} (Python {major_minor}, system site-packages)")


class CusparseltStep:
    name = "cusparselt"
    title = "cuSPARSELt for the JetPack 6 torch wheels"
    covers = "§8.6 Torch: install cuSPARSELt on JP6"

    def skip_reason(self, ctx: InstallContext) -> str | None:
        if not ctx.device.is_jetson:
            return "not a Jetson"
        return None if ctx.device.jetpack_major == 6 else "only JetPack 6 torch wheels need it"

    def plan(self, ctx: InstallContext) -> StepPlan:
        if ctx.path("/usr/local/cuda/lib64/libcusparseLt.so.0").exists():
            return StepPlan(state="cuSPARSELt installed in /usr/local/cuda/lib64")
        libdir = f"{site(ctx)}/nvidia/cusparselt/lib"
        commands: list[Command] = []
        files: list[FileChange] = []
        if not ctx.path(f"{libdir}/libcusparseLt.so.0").exists():
            commands.append(pip(ctx, "--index-url", require_index(ctx), "nvidia-cusparselt-cu12",
                                why="the JetPack 6 torch wheels link libcusparseLt.so.0, which JetPack does not ship"))
        content = libdir + "\n"
        old = ctx.read(CUSPARSELT_LDCONF)
        if old != content:
            files.append(FileChange(CUSPARSELT_LDCONF, content, old, why="let the loader find libcusparseLt.so.0"))
        if files or commands:
            commands.append(cmd("ldconfig", why="refresh the loader cache"))
            return StepPlan(files=files, commands=commands, state=f"cuSPARSELt from the wheel index in {libdir}")
        return StepPlan(state=f"cuSPARSELt in {libdir}")


class WheelsStep:
    name = "wheels"
    title = "torch, torchvision, torch-tensorrt, onnxruntime-gpu, bitsandbytes for this JetPack"
    covers = "§8.6 Torch: wheels by JetPack from the configured index, verified by real kernels"

    def skip_reason(self, ctx: InstallContext) -> str | None:
        return None if ctx.device.is_jetson else "not a Jetson"

    def plan(self, ctx: InstallContext) -> StepPlan:
        packages = site(ctx)
        missing = [req for req, dist in JETSON_WHEELS if dist_version(ctx.root, packages, dist) is None]
        commands: list[Command] = []
        notes: list[str] = []
        torch_version = dist_version(ctx.root, packages, "torch")
        if torch_version and not ctx.path(f"{packages}/torch/lib/libtorch_cuda.so").exists():
            notes.append(f"torch {torch_version} in the venv is CPU-only (no libtorch_cuda.so): replacing it")
            commands.append(pip(ctx, "--force-reinstall", "--no-deps", "--index-url", require_index(ctx), "torch",
                                why="replace the CPU-only torch with the JetPack build"))
        if dist_version(ctx.root, packages, "onnxruntime"):
            # Both distributions install the `onnxruntime` module; the CPU one shadows the GPU one.
            notes.append("PyPI onnxruntime (CPU) is installed next to onnxruntime-gpu: removing it")
            commands.append(cmd(ctx.venv_python, "-m", "pip", "uninstall", "-y", "onnxruntime",
                                as_user=ctx.settings.user, why="it overwrites onnxruntime-gpu's module"))
            if "onnxruntime-gpu" not in missing:
                commands.append(pip(ctx, "--force-reinstall", "--no-deps", "--index-url", require_index(ctx),
                                    "onnxruntime-gpu", why="restore the files the CPU package overwrote"))
        if missing:
            extra = ["numpy<2"] if ctx.device.jetpack_major == 6 else []  # JP6 torch wheels: numpy 1.x ABI
            commands.append(pip(ctx, "--index-url", require_index(ctx), *missing, *extra,
                                why="JetPack-matched builds (never plain PyPI torch on a Jetson)"))
        if not commands:
            return StepPlan(state=f"torch {torch_version} (CUDA build) and companions installed")
        verify = [
            cmd(*probe_argv(ctx.venv_python, TORCH_CUDA), as_user=ctx.settings.user,
                why="a CUDA matmul checked against the CPU: import alone proves nothing",
                fix="the torch wheel does not match this JetPack: check the index URL's platform/cuda tag"),
            cmd(*probe_argv(ctx.venv_python, BITSANDBYTES_INT8), as_user=ctx.settings.user,
                why="an int8 matmul: PyPI bitsandbytes imports on Jetson but fails at its first kernel",
                fix="install a Jetson build of bitsandbytes (index or source build with COMPUTE_CAPABILITY=87)"),
        ]
        state = f"install {', '.join(missing)}" if missing else "repair torch/onnxruntime"
        return StepPlan(commands=commands, verify=verify, notes=notes, state=state)
