"""onnxruntime: fp32 and static int8 QDQ ONNX components."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edge.errors import BundleError


def _provider_name(provider) -> str:
    return provider[0] if isinstance(provider, tuple) else provider


def _check_provider(wanted: str, got: list[str], label: str, stage: str) -> None:
    """Refuse in one line when the provider a bundle asked for is not one onnxruntime runs:
    onnxruntime itself drops an unavailable provider silently and runs the model on the CPU."""
    if wanted not in got:
        from edge.engines.table import ORT_GPU_WHEEL

        raise BundleError(f"{label}: needs onnxruntime's {wanted}, but {stage} only {', '.join(got) or 'none'} "
                          f"(refusing to run it elsewhere): install {ORT_GPU_WHEEL}")


class OnnxRunner:
    """An ONNX model on onnxruntime; inputs in the model's input order.

    With `providers` given, the first is required: refused when this onnxruntime does not have it
    and again when the built session does not run it. Without, CUDA when available, else CPU."""

    def __init__(self, model: Path | bytes, threads: int | None = None, providers: list | None = None,
                 optimized_model: Path | None = None, name: str | None = None):
        """`model` is a path or the model's verified bytes (bundles: no second open by path);
        `optimized_model`, when given, receives the graph onnxruntime actually runs (for inspection)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads would steal the cores the torch head and the control loop need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        # x86 CPUs without VNNI run u8s8 int8 GEMMs with vpmaddubsw, whose int16 pair sums
        # saturate: on an AVX2-only EPYC the tiny int8 bundle's action RMSE went 0.013 -> 0.112.
        # This makes onnxruntime use u8u8 kernels there (no effect with VNNI, on ARM or on GPUs).
        options.add_session_config_entry("session.x64quantprecision", "1")
        if threads:
            options.intra_op_num_threads = threads
        if optimized_model:
            options.optimized_model_filepath = str(optimized_model)
        label = name or (Path(model).name if not isinstance(model, bytes) else "ONNX model")
        chosen = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        required = _provider_name(chosen[0]) if providers else None
        if required:
            _check_provider(required, ort.get_available_providers(), label, "this onnxruntime has")
        try:
            # Common-subexpression elimination merges a QDQ model's dedicated Q/DQ pairs back into
            # shared ones, which stops QLinearMatMul fusion for q/k/v (see quantize/int8.py).
            self.session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=chosen,
                                                disabled_optimizers=["CommonSubexpressionElimination"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise BundleError(f"{label}: onnxruntime cannot load it: {(str(e).strip().splitlines() or [type(e).__name__])[0][:200]}") from e
        if required:
            _check_provider(required, self.session.get_providers(), label, "the session runs")
        self.providers = self.session.get_providers()
        self.inputs = [(i.name, i.shape) for i in self.session.get_inputs()]

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        feed = {}
        for (name, shape), value in zip(self.inputs, inputs):
            if list(value.shape) != list(shape):
                raise BundleError(f"input '{name}' has shape {list(value.shape)}, this bundle was built for {shape}")
            value = value.detach().cpu()  # onnxruntime reads host memory; its models take fp32 floats
            feed[name] = (value.float() if value.is_floating_point() else value).numpy()
        out = self.session.run(None, feed)[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))
