"""Calibration frames and bundles built once per session (each quantize run costs seconds)."""

import numpy as np
import pytest
from PIL import Image

from quantize.pipeline import quantize_training_output



@pytest.fixture(scope="session")
def calibration_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    for cam in ("left", "right"):
        (d / cam).mkdir()
        for i in range(12):
            base = np.stack([(xx * (2 + i) + yy * 3) % 256, (yy * (1 + i)) % 256, (xx + yy * i) % 256], -1)
            img = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / cam / f"{i:06d}.png")
    return d



@pytest.fixture(scope="session")
def int8_bundle(tmp_path_factory, tiny_output, calibration_dir):
    out = tmp_path_factory.mktemp("bundles") / "int8"
    summary = quantize_training_output(tiny_output, "cpu-dev", out, calibration=calibration_dir, head_steps=10,
                                       max_action_rmse=0.03, progress=False)
    return out, summary

