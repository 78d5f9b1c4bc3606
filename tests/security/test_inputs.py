"""Hostile observations, noise, configs and weight files: refused in one line, before anything
large is allocated, with no side effect."""

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch

from edge.bundle import load_predictor, verify
from edge.errors import CheckpointError, EdgeError
from edge.inspect import read_noise, read_observation
from edge.policy.actions import NormStats
from edge.policy.checkpoint import load_training_output
from edge.policy.safe_io import load_tensors
from tests.security.conftest import edit_manifest, resign

NOISE_SHAPE = (1, 16, 10)


def one_line(info) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


def npy_claiming(shape, dtype="<f4") -> bytes:
    """A .npy whose header claims `shape` but which holds 16 bytes of data."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(16)


def observation_npz(path, **overrides):
    rng = np.random.default_rng(0)
    arrays = {"image_0": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
              "image_1": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
              "state": np.zeros(7, np.float32), "instruction": np.array("pick up the cube")}
    arrays.update(overrides)
    np.savez(path, **arrays)
    return path


def test_a_valid_observation_reads(tmp_path):
    images, state, instruction = read_observation(observation_npz(tmp_path / "o.npz"), 2)
    assert len(images) == 2 and state.dtype == np.float32 and instruction == "pick up the cube"


@pytest.mark.parametrize(("overrides", "match"), [
    ({"state": np.array([0.0, np.nan, 0, 0, 0, 0, 0])}, "state must be a 1-D array of finite numbers"),
    ({"state": np.array([np.inf] * 7)}, "state must be a 1-D array of finite numbers"),
    ({"state": np.array(["a"] * 7)}, "state must be a 1-D array of finite numbers"),
    ({"state": np.array([1, "x"], dtype=object)}, "holds Python objects"),
    ({"instruction": np.array(["a", "b"])}, "instruction must be one string"),
    ({"instruction": np.array("x" * 5000)}, "instruction must be one string of at most 4096"),
    ({"image_0": np.zeros((48, 64), np.uint8)}, "image_0 must be uint8 H×W×3"),
    ({"image_1": np.zeros((1, 5000, 3), np.uint8)}, "image_1 must be uint8 H×W×3 RGB with sides of 2 to 4096"),
])
def test_hostile_observations_are_refused(tmp_path, overrides, match):
    path = observation_npz(tmp_path / "o.npz", **overrides)
    with pytest.raises(EdgeError, match=match) as info:
        read_observation(path, 2)
    one_line(info)


def test_an_observation_member_claiming_a_huge_shape_is_refused_before_allocation(tmp_path):
    path = tmp_path / "o.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("image_0.npy", npy_claiming((10**6, 10**6, 3), "|u1"))
    started = time.monotonic()
    with pytest.raises(EdgeError, match=r"image_0.npy: shape \(1000000, 1000000, 3\) is larger than") as info:
        read_observation(path, 2)
    assert time.monotonic() - started < 1
    one_line(info)


def test_an_oversized_or_special_observation_file_is_refused(tmp_path):
    big = tmp_path / "big.npz"
    with open(big, "wb") as f:
        f.truncate((256 << 20) + 1)  # sparse: no disk used
    with pytest.raises(EdgeError, match="at most 256 MiB"):
        read_observation(big, 2)
    os.mkfifo(tmp_path / "fifo.npz")
    with pytest.raises(EdgeError, match="must be a regular file"):
        read_observation(tmp_path / "fifo.npz", 2)


@pytest.mark.parametrize(("array", "match"), [
    (np.full(NOISE_SHAPE, np.nan, np.float32), "noise contains NaN or infinite"),
    (np.full(NOISE_SHAPE, np.inf, np.float64), "noise contains NaN or infinite"),
    (np.zeros(NOISE_SHAPE, np.int64), "noise must be floating point"),
    (np.zeros((1, 8, 10), np.float32), r"noise must have shape \(1, 16, 10\)"),
    (np.array([None] * 160, dtype=object).reshape(NOISE_SHAPE), "holds Python objects"),
])
def test_hostile_noise_is_refused(tmp_path, array, match):
    np.save(tmp_path / "n.npy", array, allow_pickle=True)
    with pytest.raises(EdgeError, match=match) as info:
        read_noise(tmp_path / "n.npy", NOISE_SHAPE)
    one_line(info)


def test_noise_claiming_a_huge_shape_is_refused(tmp_path):
    (tmp_path / "n.npy").write_bytes(npy_claiming((10**5, 10**5, 10)))
    with pytest.raises(EdgeError, match="is larger than"):
        read_noise(tmp_path / "n.npy", NOISE_SHAPE)


@pytest.fixture()
def output_copy(tiny_output, tmp_path):
    return shutil.copytree(tiny_output, tmp_path / "run")


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(("change", "match"), [
    (lambda c: c.__setitem__("hidden_size", 10**6), "field 'hidden_size': Input should be less than or equal to 8192"),
    (lambda c: c.__setitem__("num_hidden_layers", 10**4), "field 'num_hidden_layers'"),
    (lambda c: c.__setitem__("vocab_size", 10**9), "field 'vocab_size'"),
    (lambda c: c["vision_config"]["vision_tower"].__setitem__("image_size", 10**5), "field 'image_size'"),
    (lambda c: c["vision_config"]["vision_tower"].update(image_size=1024, patch_size=1), "1048576 tokens per image"),
    (lambda c: c.__setitem__("chunk_size", 10**7), "field 'chunk_size'"),
    (lambda c: c.__setitem__("action_dim", "ten"), "field 'action_dim'|invalid literal"),
    (lambda c: c.update(hidden_size=8192, num_hidden_layers=96, intermediate_size=32768), "backbone parameters"),
])
def test_huge_or_invalid_dimensions_are_refused_before_allocation(output_copy, change, match):
    edit_json(output_copy / "config.json", change)
    started = time.monotonic()
    with pytest.raises(CheckpointError, match=match) as info:
        load_training_output(output_copy)
    assert time.monotonic() - started < 5
    one_line(info)


def test_a_bundle_with_huge_dimensions_is_refused_before_allocation(bundle):
    edit_manifest(bundle, lambda m: m["policy"]["config"]["language"].__setitem__("hidden_size", 2**20))
    with pytest.raises(CheckpointError, match="field 'language.hidden_size'") as info:
        load_predictor(bundle)
    one_line(info)


@pytest.mark.parametrize(("text", "match"), [
    ('{"action_min": [1e999]}', "out of range"),
    ('{"x": -Infinity}', "-Infinity is not a number JSON allows"),
])
def test_non_finite_numbers_in_a_manifest_are_refused(bundle, text, match):
    manifest = (bundle / "manifest.json").read_text()
    resign(bundle, manifest.replace('"schema_version": 1,', f'"schema_version": 1, "nan_carrier": {text},', 1))
    with pytest.raises(EdgeError, match=match):
        verify(bundle)


def test_the_stats_schema_refuses_non_finite_values():
    """What a native policy.json or a bundle's norm_stats parse into: NaN would become NaN actions."""
    with pytest.raises(ValueError, match="finite"):
        NormStats(action_min=[float("nan")], action_max=[1.0], qpos_mean=[0.0], qpos_std=[1.0])


@pytest.mark.parametrize(("content", "match"), [
    ("{", "Expecting property name"),
    ('{"size": 1000000}', "field 'size'"),
    ('{"image_std": [0, 1, 1]}', "field 'image_std.0'"),
    ('{"image_mean": [NaN, 0, 0]}', "field 'image_mean.0'"),
])
def test_hostile_preprocessor_config_is_refused(output_copy, content, match):
    (output_copy / "checkpoint-1000" / "preprocessor_config.json").write_text(content)
    (output_copy / "preprocessor_config.json").write_text(content)
    with pytest.raises(CheckpointError, match=match) as info:
        load_training_output(output_copy)
    one_line(info)


def test_a_safetensors_header_error_is_one_line(tmp_path):
    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(CheckpointError, match="cannot read tensors") as info:
        load_tensors(path)
    one_line(info)


def test_a_malicious_bin_names_the_refused_global_not_torchs_advice(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    buffer = io.BytesIO()
    torch.save({"w": Evil()}, buffer)
    (tmp_path / "non_lora_trainables.bin").write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="unsupported GLOBAL posix.system") as info:
        load_tensors(tmp_path / "non_lora_trainables.bin")
    assert "weights_only" not in one_line(info) and not marker.exists()


def test_inspect_cli_refuses_a_hostile_observation_in_one_line(tiny_output, tmp_path):
    path = observation_npz(tmp_path / "o.npz", state=np.array([1, "x"], dtype=object))
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "inspect", str(tiny_output), "--observation", str(path),
                           "--output", str(tmp_path / "out.npz")], capture_output=True, text=True)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "holds Python objects" in lines[0]
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("text", ["[1, 2]", "{not json", "\udcff"])
def test_a_malformed_native_policy_file_is_one_line(tmp_path, text):
    from edge.policy.native import CONFIG_FILE, load_policy

    (tmp_path / CONFIG_FILE).write_text(text, errors="surrogateescape")
    with pytest.raises(CheckpointError) as info:
        load_policy(tmp_path)
    assert CONFIG_FILE in one_line(info)
