"""Image preprocessing against transformers' PIL CLIPImageProcessor (the 4.37 slow arithmetic)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edge.policy.actions import NormStats, to_robot_actions
from tests.policy.rotations import euler_xyz_to_matrix, matrix_to_euler_xyz
from edge.policy.preprocess import ImageSettings, center_crop_resize, clip_process, expand_to_square, preprocess_image


def slow_clip_processor(settings: ImageSettings):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    cfg = {k: v for k, v in settings.processor_config().items() if k != "image_processor_type"}
    return CLIPImageProcessorPil(**cfg)


@pytest.mark.parametrize("hw", [(48, 64), (64, 48), (40, 40), (270, 480), (37, 91)])
def test_clip_arithmetic_equals_slow_processor(hw):
    settings = ImageSettings(size=56)
    rng = np.random.default_rng(hw[0] * 1000 + hw[1])
    image = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    square = expand_to_square(center_crop_resize(x), settings.image_mean)
    reference = slow_clip_processor(settings).preprocess(
        square, do_rescale=False, do_normalize=True, do_center_crop=False, return_tensors="np"
    )["pixel_values"][0]
    ours = preprocess_image(image, settings).numpy()
    assert ours.shape == (3, 56, 56)
    assert np.abs(ours - reference).max() <= 1e-6


def test_truncation_not_rounding():
    """The reference turns the float image into uint8 by truncation; rounding differs visibly."""
    settings = ImageSettings(size=8)
    square = np.full((8, 8, 3), 0.999, dtype=np.float32)  # ×255 = 254.7 → 254, rounding gives 255
    out = clip_process(square, settings)
    expected = (254 / 255 - np.float32(settings.image_mean[0])) / np.float32(settings.image_std[0])
    assert out[0, 0, 0] == pytest.approx(expected, abs=1e-6)


def test_pad_to_square_uses_clip_mean_and_centres():
    img = torch.zeros(3, 4, 8)
    sq = expand_to_square(img, (0.1, 0.2, 0.3))
    assert sq.shape == (8, 8, 3)
    assert np.allclose(sq[0, 0], [0.1, 0.2, 0.3]) and np.allclose(sq[7, 7], [0.1, 0.2, 0.3])
    assert np.allclose(sq[2:6], 0.0)


def test_center_crop_is_antialiased_bilinear_of_the_central_95_percent():
    x = torch.rand(3, 40, 60)
    out = center_crop_resize(x)
    manual = F.interpolate(x[None, :, 1:39, 1:58], size=(40, 60), mode="bilinear", antialias=True)[0]
    assert torch.allclose(out, manual)


def test_rejects_non_uint8_images():
    with pytest.raises(ValueError):
        preprocess_image(np.zeros((8, 8, 3), dtype=np.float32), ImageSettings(size=28))


def test_denormalization_is_min_max():
    stats = NormStats(action_min=[-2.0, 0.0], action_max=[2.0, 10.0], qpos_mean=[0.0], qpos_std=[1.0])
    out = stats.denormalize_actions(np.array([[-1.0, 1.0], [0.0, 0.0]], dtype=np.float32))
    assert np.allclose(out, [[-2.0, 10.0], [0.0, 5.0]])


def test_rot6d_to_euler_round_trip():
    rng = np.random.default_rng(0)
    euler = torch.from_numpy(rng.uniform(-1.2, 1.2, (32, 3)).astype(np.float32))
    m = euler_xyz_to_matrix(euler)
    rot6d = m[..., :2, :].reshape(32, 6)  # first two rows, as the DROID converter stores them
    actions = np.concatenate([rng.normal(size=(32, 3)), rot6d.numpy() * 1.7, rng.uniform(0, 1, (32, 1))], axis=1)
    robot = to_robot_actions(actions.astype(np.float32), "xyz_rot6d_gripper")
    assert robot.shape == (32, 7)
    assert np.allclose(robot[:, 3:6], euler.numpy(), atol=1e-5)  # scale-invariant (Gram–Schmidt)
    assert np.allclose(robot[:, [0, 1, 2, 6]], actions[:, [0, 1, 2, 9]], atol=1e-6)
    assert torch.allclose(matrix_to_euler_xyz(m), euler, atol=1e-5)
