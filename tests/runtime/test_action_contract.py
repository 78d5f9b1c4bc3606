"""The action contract: the model side returns the normalized chunk (numpy) and timings, the
control process decodes it once with the predictor's `ActionDecoder`, and the runtime's side of
it (protocol, worker, loop, start-up checks) loads no torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edge.engines.torch_engine import TorchRunner
from edge.policy.actions import ActionDecoder, NormStats, to_robot_actions
from edge.policy.contract import ChunkPredictor, Prediction
from edge.runtime.startup import arm_requirement

ROOT = Path(__file__).resolve().parents[2]


def _stats(action_dim: int) -> NormStats:
    return NormStats(action_min=[-1.0 - i for i in range(action_dim)], action_max=[2.0 + i for i in range(action_dim)],
                     qpos_mean=[0.0] * 7, qpos_std=[1.0] * 7)


def test_the_control_process_side_imports_no_torch():
    modules = ["edge.policy.contract", "edge.runtime.worker", "edge.runtime.loop", "edge.runtime.startup",
               "edge.runtime.inference_process", "edge.runtime.cameras"]
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:3])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_decoder_knows_the_robot_width_without_running_anything():
    assert ActionDecoder(_stats(10), "xyz_rot6d_gripper").robot_dim == 7
    assert ActionDecoder(_stats(14), "raw").robot_dim == 14
    with pytest.raises(ValueError, match="needs 10-D actions, the stats have 8"):
        ActionDecoder(_stats(8), "xyz_rot6d_gripper")
    with pytest.raises(ValueError, match="unknown action layout 'quat'"):
        ActionDecoder(_stats(10), "quat")


def test_decoding_is_min_max_denormalization_then_the_layout():
    decoder = ActionDecoder(_stats(10), "xyz_rot6d_gripper")
    normalized = np.random.default_rng(0).uniform(-1, 1, (16, 10)).astype(np.float32)
    lo, hi = np.array(decoder.stats.action_min, np.float32), np.array(decoder.stats.action_max, np.float32)
    expected = to_robot_actions((normalized + 1) / 2 * (hi - lo) + lo, "xyz_rot6d_gripper")
    np.testing.assert_allclose(decoder.robot_actions(normalized), expected, rtol=1e-6)
    chunk = decoder.decode(normalized)
    assert chunk.robot_actions.shape == (16, 7) and chunk.actions.shape == (16, 10)
    np.testing.assert_array_equal(chunk.robot_actions, decoder.robot_actions(normalized))
    np.testing.assert_allclose(decoder.robot_actions(normalized[3]), expected[3], rtol=1e-6)  # one blended action


class _DecoderOnly:
    """Everything start-up may ask, but predicting fails: the arm check must not run the model."""

    def __init__(self, decoder: ActionDecoder):
        self.decoder = decoder

    def predict(self, *args, **kwargs):
        raise AssertionError("start-up ran the model to learn the action width")


def test_the_arm_requirement_comes_from_the_decoder():
    need = arm_requirement(_DecoderOnly(ActionDecoder(_stats(10), "xyz_rot6d_gripper")))
    assert (need.axes, need.action_space) == (7, "ee")
    need = arm_requirement(_DecoderOnly(ActionDecoder(_stats(6), "raw")))
    assert (need.axes, need.action_space) == (6, None)


def test_predict_returns_the_normalized_chunk_which_the_decoder_turns_into_the_policys_actions(predictor, tiny_policy,
                                                                                             tiny_observation):
    assert isinstance(predictor, ChunkPredictor)
    obs = np.load(tiny_observation)
    images = [obs[f"image_{i}"] for i in range(len(predictor.camera_names))]
    state, instruction = obs["state"].astype(np.float32), str(obs["instruction"])
    noise = np.random.default_rng(3).standard_normal((1, predictor.chunk_size, predictor.action_dim)).astype(np.float32)
    prediction = predictor.predict(images, state, instruction, noise)
    assert isinstance(prediction, Prediction) and type(prediction.normalized) is np.ndarray
    assert prediction.normalized.shape == (predictor.chunk_size, predictor.action_dim)
    assert {"preprocess", "vision", "language", "head"} == prediction.timings_ms.keys()  # no conversion stage
    reference = tiny_policy.predict(images, state, instruction, noise=torch.from_numpy(noise), steps=predictor.head_steps)
    np.testing.assert_allclose(predictor.decoder.robot_actions(prediction.normalized), reference.robot_actions, atol=1e-5)


def test_a_torch_component_hands_its_output_on_at_its_own_precision():
    layer = torch.nn.Linear(4, 3)
    out = TorchRunner(layer, "bf16", device=torch.device("cpu"))(torch.ones(1, 4))
    assert out.dtype == torch.bfloat16  # not cast to float32 on the way out; the next component casts what it needs
    following = TorchRunner(torch.nn.Linear(3, 2), "fp32", device=torch.device("cpu"))(out)
    assert following.dtype == torch.float32 and torch.isfinite(following).all()
