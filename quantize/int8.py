"""Static int8 QDQ quantization with onnxruntime, calibrated on real calibration frames.

The QDQ graph runs on onnxruntime's CPU provider here and is what TensorRT builds an int8 engine
from on the device. TensorRT needs symmetric quantization (zero point 0) for activations and
weights, so both are symmetric; weights are per output channel. Only the weight-bearing ops
(MatMul, Gemm, Conv) are quantized: LayerNorm, GELU and Softmax stay in float, which is where
int8 costs most accuracy in transformers for little speed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from edge.errors import require

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
QUANTIZED_OPS = ["MatMul", "Gemm", "Conv"]
# What every int8 model of this toolkit is; recorded in manifests and used to invalidate caches.
RECIPE = {"format": "QDQ", "activations": "int8 symmetric per-tensor", "weights": "int8 symmetric per-channel",
          "quantized_ops": QUANTIZED_OPS, "dedicated_qdq_pairs": True, "gemm_output": "float",
          "ranges_from": "every calibration frame, collected one frame at a time"}


class _Reader:
    """onnxruntime CalibrationDataReader over a list of feed dicts; `set_range` lets onnxruntime
    calibrate a slice at a time (`CalibStridedMinMax`)."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._feeds = feeds
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def __len__(self) -> int:
        return len(self._feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self._feeds[start_index:end_index])

    def rewind(self):  # some onnxruntime versions call it
        pass


def activation_matmuls(model_path: Path) -> list[str]:
    """MatMul nodes whose inputs are both activations (attention scores and mixing).

    Quantizing Q·Kᵀ and softmax·V to symmetric int8 costs the most accuracy (the softmax output
    uses half the int8 range) for little speed, so they stay in float; weight MatMuls are int8."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    weights = {i.name for i in model.graph.initializer}
    constants = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and not any(i in weights or i in constants for i in n.input)]


def quantize_static_qdq(
    fp32_model: Path, int8_model: Path, feeds: Iterable[dict[str, np.ndarray]], method: str = "percentile",
    nodes: list[str] | None = None,
) -> dict:
    """Write a QDQ int8 model calibrated on `feeds`; returns the settings to record.

    `nodes`: quantize only these (weight-bearing) nodes and leave the rest in float; default: every
    MatMul, Gemm and Conv except the activation-by-activation MatMuls."""
    require("onnxruntime", "quantize")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if method not in methods:
        raise ValueError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}")
    feeds = list(feeds)
    excluded = activation_matmuls(fp32_model)
    # A dedicated Q/DQ pair per consumer: onnxruntime fuses DQ→MatMul→Q into QLinearMatMul only
    # when the DQ feeds that one MatMul, and q/k/v share the LayerNorm output. Shared, those three
    # ran as float MatMuls on weights dequantized every call (vision 1.05 s → 0.61 s fused).
    # Gemm outputs stay float: the layer runs as one QGemm with its bias folded in (quantize.onnx_gemm).
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "DedicatedQDQPair": True,
             "OpTypesToExcludeOutputQuantization": ["Gemm"]}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    # One frame per collection: the percentile and entropy calibrators keep every intermediate
    # tensor of the frames of one collection in memory (TinyVLA-S vision, 2 cameras: ~1 GB per
    # frame, twice over while merging; 8 frames ran a 24 GB machine out of memory) and merge
    # their histograms across collections; minmax merges its ranges. Not CalibMaxIntermediateOutputs:
    # onnxruntime (1.32) clears the held frames every N without merging their ranges.
    extra["CalibStridedMinMax"] = 1
    import contextlib
    import io
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # onnxruntime's advice lines go to the root logger
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(fp32_model), str(int8_model), _Reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, op_types_to_quantize=QUANTIZED_OPS,
                calibrate_method=methods[method], extra_options=extra, nodes_to_exclude=excluded,
                nodes_to_quantize=nodes,
            )
    finally:
        root.setLevel(level)
    selection = {} if nodes is None else {"quantized_nodes": len(nodes)}
    return {**RECIPE, "calibration_method": method, "calibration_samples": len(feeds),
            "float_activation_matmuls": len(excluded), **selection}
