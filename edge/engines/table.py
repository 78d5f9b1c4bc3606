"""The engine table: every engine a bundle component can name, the file kind it runs, what this
machine needs for it (`probe`) and how it is built (`load`).

Engine names say what runs: `onnxruntime-trt` is onnxruntime with its TensorRT execution provider,
never torch-tensorrt; `onnxruntime-cpu` never picks up a GPU behind the bundle's back, and an
onnxruntime engine whose provider is missing is refused, never run on the CPU instead. Older
names (`onnxruntime`, `tensorrt`) are read through `LEGACY_ENGINES`, resolved by the file kind.

This module imports nothing heavy: probes import onnxruntime / torch only when they run, so the
manifest schema can use the names without torch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

from edge.errors import BundleError

ONNX, SAFETENSORS = "onnx", "safetensors"
TRT_PROVIDER, CUDA_PROVIDER, CPU_PROVIDER = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
# Where GPU providers come from: PyPI's `onnxruntime` has CPU only, and PyPI's onnxruntime-gpu
# has no aarch64 Jetson build.
ORT_GPU_WHEEL = "onnxruntime-gpu from the JetPack index (Jetson AI Lab, pypi.jetson-ai-lab.io; `tinyvla-edge install`)"
ORT_CPU_WHEEL = "pip install 'tinyvla-edge[quantize]' (the onnxruntime wheel)"


@dataclass(frozen=True)
class Probe:
    """Whether an engine can run on this machine, and why not (naming the missing wheel, provider
    or device) when it cannot."""

    available: bool
    reason: str = ""


@dataclass(frozen=True)
class Engine:
    """One row of the table."""

    name: str
    file_kind: str  # ONNX or SAFETENSORS: the component file it runs
    precisions: frozenset[str]
    runs_on: str
    probe: Callable[[], Probe]
    provider: str | None = None  # onnxruntime engines: the provider that must run the model


def _module_probe(module: str, wheel: str) -> Probe:
    if importlib.util.find_spec(module) is None:
        return Probe(False, f"needs the Python module {module}: {wheel}")
    return Probe(True)


def _cuda_probe() -> Probe:
    import torch

    if not torch.cuda.is_available():
        return Probe(False, f"needs a CUDA GPU; torch {torch.__version__} sees none here")
    return Probe(True)


def _all(*probes: Callable[[], Probe]) -> Callable[[], Probe]:
    """The first failing probe, or available."""

    def probe() -> Probe:
        for one in probes:
            result = one()
            if not result.available:
                return result
        return Probe(True)

    return probe


def ort_provider_probe(provider: str) -> Probe:
    """onnxruntime importable and `provider` among its available providers."""
    found = _module_probe("onnxruntime", ORT_GPU_WHEEL if provider != CPU_PROVIDER else ORT_CPU_WHEEL)
    if not found.available:
        return found
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if provider not in available:
        return Probe(False, f"needs onnxruntime's {provider}, which onnxruntime {onnxruntime.__version__} here "
                            f"lacks (has {', '.join(available) or 'none'}): install {ORT_GPU_WHEEL}")
    return Probe(True)


def _ort(provider: str) -> Callable[[], Probe]:
    return lambda: ort_provider_probe(provider)


_TORCH = lambda: _module_probe("torch", "the base install (pip install tinyvla-edge)")  # noqa: E731
_TORCH_TRT_WHEEL = "torch-tensorrt from the JetPack index (Jetson AI Lab; `tinyvla-edge install`)"
_TRT_BINDINGS = "TensorRT's Python bindings (sudo apt-get install python3-libnvinfer; a venv with --system-site-packages)"
_BNB_WHEEL = "a bitsandbytes build for this GPU (`tinyvla-edge install`)"

ENGINES: dict[str, Engine] = {e.name: e for e in (
    Engine("onnxruntime-trt", ONNX, frozenset({"fp32", "fp16", "int8"}), "CUDA (TensorRT engines built by onnxruntime)",
           _ort(TRT_PROVIDER), TRT_PROVIDER),
    Engine("onnxruntime-cuda", ONNX, frozenset({"fp32", "int8"}), "CUDA", _ort(CUDA_PROVIDER), CUDA_PROVIDER),
    Engine("onnxruntime-cpu", ONNX, frozenset({"fp32", "int8"}), "CPU", _ort(CPU_PROVIDER), CPU_PROVIDER),
    Engine("torch-tensorrt", SAFETENSORS, frozenset({"fp32", "fp16", "int8"}), "CUDA",
           _all(_TORCH, lambda: _module_probe("torch_tensorrt", _TORCH_TRT_WHEEL),
                lambda: _module_probe("tensorrt", _TRT_BINDINGS), _cuda_probe)),
    Engine("torch", SAFETENSORS, frozenset({"fp32", "fp16", "bf16"}), "CUDA when present, else CPU", _TORCH),
    Engine("bitsandbytes", SAFETENSORS, frozenset({"int8"}), "CUDA",
           _all(_TORCH, lambda: _module_probe("bitsandbytes", _BNB_WHEEL), _cuda_probe)),
)}

# Names written by older toolkits (and still used by profiles), by the component's file kind.
# `onnxruntime` used to mean "CUDA if this onnxruntime has it, else CPU": it is read as the CPU
# engine, what cpu-dev bundles were built for. `tensorrt` meant two different engines.
LEGACY_ENGINES: dict[str, dict[str, str]] = {
    "onnxruntime": {ONNX: "onnxruntime-cpu"},
    "tensorrt": {ONNX: "onnxruntime-trt", SAFETENSORS: "torch-tensorrt"},
}


def file_kind(file: str) -> str:
    """ONNX for `.onnx` files, SAFETENSORS otherwise (the backbone weights)."""
    return ONNX if file.endswith(".onnx") else SAFETENSORS


def engine_name(name: str, kind: str) -> str:
    """The table's name for `name` running a `kind` file (older names mapped); ValueError when
    the engine is unknown or does not run that kind of file."""
    if name in LEGACY_ENGINES and kind not in LEGACY_ENGINES[name]:
        raise ValueError(f"engine {name} (an older name) runs {', '.join(LEGACY_ENGINES[name])} files, not {kind}")
    current = LEGACY_ENGINES.get(name, {}).get(kind, name)
    engine = ENGINES.get(current)
    if engine is None:
        raise ValueError(f"unknown engine '{name}' (known: {', '.join(ENGINES)}; older names: {', '.join(LEGACY_ENGINES)})")
    if engine.file_kind != kind:
        raise ValueError(f"engine {current} runs {engine.file_kind} files, not {kind}")
    return current


def profile_file_kind(engine: str, precision: str) -> str:
    """The file kind `quantize` writes for a profile's component spec: ONNX for onnxruntime and for
    int8 TensorRT (a QDQ graph that onnxruntime's TensorRT provider builds), else safetensors."""
    return ONNX if engine.startswith("onnxruntime") or (engine == "tensorrt" and precision == "int8") else SAFETENSORS


def profile_engine(engine: str, precision: str) -> str:
    """The table's engine for a profile's component spec (what the bundle's manifest will name)."""
    return engine_name(engine, profile_file_kind(engine, precision))


def probe(name: str) -> Probe:
    """Can engine `name` (a table name) run on this machine?"""
    return ENGINES[name].probe()


def require(name: str, component: str) -> None:
    """BundleError (one line) when engine `name` cannot run `component` here."""
    result = probe(name)
    if not result.available:
        raise BundleError(f"{component}: engine {name} {result.reason}")


def builder_stand_in(name: str) -> str:
    """The engine the workstation measures a component with while building its bundle: ONNX
    components on onnxruntime-cpu (the same graph, chosen by name, not fallen back to), torch
    modules on their own engine."""
    return "onnxruntime-cpu" if ENGINES[name].file_kind == ONNX else name


def ort_providers(name: str, trt_cache: str | None = None) -> list:
    """The provider list an onnxruntime engine asks for, its own provider first. TensorRT and
    CUDA keep the CPU for the nodes they do not implement (onnxruntime's partitioning); whether
    the session really got the engine's provider is checked after it is built."""
    if name == "onnxruntime-trt":
        options = {"trt_int8_enable": True, "trt_fp16_enable": True}
        if trt_cache:
            options |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": trt_cache}
        return [(TRT_PROVIDER, options), CUDA_PROVIDER, CPU_PROVIDER]
    if name == "onnxruntime-cuda":
        return [CUDA_PROVIDER, CPU_PROVIDER]
    return [CPU_PROVIDER]


def load_onnx(name: str, model, label: str, trt_cache: str | None = None):
    """An OnnxRunner for engine `name` on `model` (path or verified bytes); refused in one line
    when the engine's provider is not what the session runs."""
    from edge.engines.onnx_engine import OnnxRunner

    require(name, label)
    return OnnxRunner(model, providers=ort_providers(name, trt_cache), name=label)


def load_torch(name: str, module, precision: str, example_inputs, weights_sha256: str, component: str):
    """A runner for a torch-module engine (`torch`, `torch-tensorrt`, `bitsandbytes`)."""
    require(name, component)
    from edge.engines.torch_engine import TorchRunner

    if name == "torch":
        return TorchRunner(module, precision)
    if name == "torch-tensorrt":
        from edge.engines.tensorrt_engine import TensorRTRunner

        return TensorRTRunner(module, precision, example_inputs, weights_sha256, component)
    if name == "bitsandbytes":
        from edge.engines.bnb_engine import to_llm_int8

        return TorchRunner(to_llm_int8(module, component), "fp16")
    raise BundleError(f"{component}: engine {name} does not run torch modules")


# The diffusion head: one row per (engine, precision) that runs its K-step DDIM loop. The sampler
# is always the verified one (same timesteps and arithmetic); the engine runs the noise-prediction
# network (`ConditionalUnet1D.denoise`). The head's torch weights (`head.safetensors`: condition
# front-end, step embedding, fp32 network) are in every bundle; ONNX heads add the network file.
@dataclass(frozen=True)
class HeadEngine:
    """One way to run the head: the engine of `ENGINES`, its precision, the network's file kind."""

    engine: str
    precision: str
    file_kind: str  # SAFETENSORS: the torch weights; ONNX: a separate network graph
    runs: str
    probe: Callable[[], Probe]


HEAD_ENGINES: dict[tuple[str, str], HeadEngine] = {(h.engine, h.precision): h for h in (
    HeadEngine("torch", "fp32", SAFETENSORS, "torch eager on the CPU", _TORCH),
    HeadEngine("torch", "fp16", SAFETENSORS, "torch fp16 on CUDA, the K-step loop captured once as a CUDA graph",
               _all(_TORCH, _cuda_probe)),
    HeadEngine("torch", "bf16", SAFETENSORS, "torch bf16 on CUDA, the K-step loop captured once as a CUDA graph",
               _all(_TORCH, _cuda_probe)),
    # Same arithmetic as torch fp32 (chunks agree to ~1e-6), 2.65-3.6x faster per chunk at
    # TinyVLA-S dims on an AVX2 CPU (benchmarks/RESULTS.md; where torch's time goes: not profiled).
    HeadEngine("onnxruntime-cpu", "fp32", ONNX, "the fp32 network on onnxruntime's CPU provider",
               _ort(CPU_PROVIDER)),
    HeadEngine("onnxruntime-cpu", "int8", ONNX, "an int8 QDQ network on onnxruntime's CPU provider",
               _ort(CPU_PROVIDER)),
)}


def head_engine(engine: str, precision: str) -> HeadEngine:
    """The head row for `engine` (a table name or an older one) at `precision`; ValueError naming
    the head engines when there is none."""
    name = LEGACY_ENGINES.get(engine, {}).get(ONNX, engine)  # `onnxruntime` (profiles) → onnxruntime-cpu
    row = HEAD_ENGINES.get((name, precision))
    if row is None:
        known = ", ".join(f"{e} {p}" for e, p in HEAD_ENGINES)
        raise ValueError(f"the head does not run on {engine} {precision} (head engines: {known})")
    return row


def require_head(engine: str, precision: str) -> None:
    """BundleError (one line) when the head's engine cannot run here, saying what it needs."""
    row = head_engine(engine, precision)
    result = row.probe()
    if not result.available:
        raise BundleError(f"head: engine {row.engine} {row.precision} ({row.runs}) cannot run here: {result.reason}")


def head_builder_stand_in(row: HeadEngine) -> HeadEngine:
    """What the workstation measures a head with while building its bundle: the row itself when
    it can run here, else torch fp32 (a CUDA head built on a CPU machine; the report says so)."""
    return row if row.probe().available else HEAD_ENGINES[("torch", "fp32")]


def load_head(row: HeadEngine, head, sampler, network_model=None, label: str = "head"):
    """A callable (condition [1, H], noise [1, T, A]) → normalized chunk for head row `row`:
    `head` is the fp32 `ConditionalUnet1D`, `network_model` the ONNX network (bytes or path)."""
    require_head(row.engine, row.precision)
    from edge.engines import head_runners

    if row.file_kind == ONNX:
        return head_runners.SampledHead(load_onnx(row.engine, network_model, label), head, sampler)
    if row.precision == "fp32":
        return head_runners.SampledHead(head.denoise, head, sampler)
    return head_runners.CudaGraphHead(head, sampler, row.precision)
