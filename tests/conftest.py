"""Shared fixtures: tiny TinyVLA-layout directories built from configs (no downloads)."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch

from edge.policy.tiny import tiny_config, write_base_vlm, write_observation, write_training_output

torch.set_num_threads(2)

# A shell's background job starts with SIGINT ignored, and children inherit an ignored signal:
# the tests that stop a child with Ctrl-C (sim-arm, serve) and check SIGINT handling need it
# deliverable, as at a terminal.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def tiny_cfg():
    return tiny_config()


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, tiny_cfg):
    return write_base_vlm(tmp_path_factory.mktemp("base") / "Llava-Pythia-tiny", tiny_cfg, seed=0)


@pytest.fixture(scope="session")
def tiny_output(tmp_path_factory, tiny_cfg, tiny_base):
    """A training output: root + checkpoint-1000, safetensors adapter, file-form non_lora."""
    root = tmp_path_factory.mktemp("runs") / "llava_pythia_lora_tiny"
    return write_training_output(root, tiny_base, tiny_cfg, seed=1)


@pytest.fixture(scope="session")
def tiny_policy(tiny_output):
    from edge.policy.checkpoint import load_training_output

    return load_training_output(tiny_output)


@pytest.fixture(scope="session")
def tiny_observation(tmp_path_factory, tiny_cfg):
    return write_observation(tmp_path_factory.mktemp("obs") / "obs.npz", tiny_cfg)


@pytest.fixture()
def fixed_noise(tiny_cfg):
    h = tiny_cfg.head
    return torch.from_numpy(np.random.default_rng(7).standard_normal((1, h.chunk_size, h.action_dim)).astype(np.float32))


TORCH_PROFILE = """
name: {name}
target: any
model:
  vision: {{engine: torch, precision: {precision}}}
  language: {{engine: torch, precision: {precision}}}
  head_steps: 10
cameras:
  - {{name: left, width: 64, height: 48}}
  - {{name: right, width: 64, height: 48}}
"""


@pytest.fixture(scope="session")
def torch_profile(tmp_path_factory):
    """A profile path running both backbone components in torch at `precision`."""
    def make(precision: str):
        path = tmp_path_factory.mktemp("profiles") / f"torch-{precision}.yaml"
        path.write_text(TORCH_PROFILE.format(name=f"torch-{precision}", precision=precision))
        return path

    return make


@pytest.fixture(scope="session")
def fp32_bundle(tmp_path_factory, tiny_output, torch_profile):
    """(directory, summary) of one torch fp32 bundle of the tiny output, built once per session;
    tests that tamper with it copy it first."""
    from quantize.pipeline import quantize_training_output

    out = tmp_path_factory.mktemp("bundles") / "fp32"
    summary = quantize_training_output(tiny_output, torch_profile("fp32"), out, progress=False)
    return out, summary
