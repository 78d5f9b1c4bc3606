"""onnxruntime: fp32 and static int8 QDQ ONNX components."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edge.errors import BundleError


def available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


class OnnxRunner:
    """An ONNX model on onnxruntime; inputs in the model's input order."""

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
        chosen = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            # Common-subexpression elimination merges a QDQ model's dedicated Q/DQ pairs back into
            # shared ones, which stops QLinearMatMul fusion for q/k/v (see quantize/int8.py).
            self.session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=chosen,
                                                disabled_optimizers=["CommonSubexpressionElimination"])
        except Exception as e:  # onnxruntime raises its own exception types
            label = name or (Path(model).name if not isinstance(model, bytes) else "ONNX model")
            raise BundleError(f"{label}: onnxruntime cannot load it: {(str(e).strip().splitlines() or [type(e).__name__])[0][:200]}") from e
        self.inputs = [(i.name, i.shape) for i in self.session.get_inputs()]

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        feed = {}
        for (name, shape), value in zip(self.inputs, inputs):
            if list(value.shape) != list(shape):
                raise BundleError(f"input '{name}' has shape {list(value.shape)}, this bundle was built for {shape}")
            feed[name] = value.detach().cpu().numpy()
        out = self.session.run(None, feed)[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))
