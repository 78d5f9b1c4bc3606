"""int8 calibration uses every frame it is given (onnxruntime's CalibMaxIntermediateOutputs drops
all but the last n mod N frames' ranges, so it must not be set)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from quantize.int8 import quantize_static_qdq


def _matmul_model(path):
    weight = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_the_largest_activation_of_the_first_frame_sets_the_range(tmp_path, method):
    _matmul_model(tmp_path / "fp32.onnx")
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.uniform(-1, 1, (1, 4)).astype(np.float32)} for _ in range(8)]
    feeds[0]["x"][0, 0] = 50.0  # only the first of 8 frames reaches 50
    quantize_static_qdq(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", feeds, method=method)
    session = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {"x": np.array([[50.0, 0.5, -0.5, 0.25]], np.float32)})[0]
    # A range learnt without frame 0 would clip 50 to about 1.
    assert out[0, 0] == pytest.approx(50.0, rel=0.02)
