"""`tinyvla-edge serve`: a real websocket server on 127.0.0.1 and the bundled client, with the
tiny policy behind it; bad and oversized requests are refused and the server keeps serving."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest
from websockets.sync.client import connect

from edge.cli import main
from edge.runtime.startup import load_local_predictor
from edge.serve.client import PolicyClient, PolicyServerError
from edge.serve.server import LOCALHOST, PolicyServer
from edge.serve.wire import WireLimits, pack, unpack

INSTRUCTION = "pick up the red cube"
SMALL = WireLimits(max_message_bytes=256 * 1024, max_array_bytes=128 * 1024)


@pytest.fixture(scope="module")
def predictor(tiny_output):
    return load_local_predictor(tiny_output, seed=0)


@pytest.fixture()
def server(predictor):
    with PolicyServer(predictor, port=0, limits=SMALL) as running:
        yield running


def _observation(predictor, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = {name: rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for name in predictor.camera_names}
    state = rng.uniform(-0.1, 0.1, predictor.state_dim).astype(np.float32)
    return images, state


def test_the_server_listens_on_localhost_by_default(server):
    assert server.host == LOCALHOST
    assert server.url.startswith("ws://127.0.0.1:")


def test_metadata_on_connect_says_what_to_send(server, predictor):
    with PolicyClient(server.url) as client:
        meta = client.metadata
    assert meta["camera_names"] == list(predictor.camera_names)
    assert meta["state_dim"] == predictor.state_dim
    assert meta["chunk_size"] == predictor.chunk_size
    assert meta["limits"]["max_message_bytes"] == SMALL.max_message_bytes
    assert meta["bundle_sha256"] is None  # a training output, not a bundle


def test_the_client_gets_the_same_chunk_as_the_predictor_in_process(server, tiny_output):
    images, state = _observation(server.predictor)
    with PolicyClient(server.url) as client:
        served = client.infer(images, state, INSTRUCTION)
    local = load_local_predictor(tiny_output, seed=0)  # same seed → same first noise as the server's
    expected = local.decoder.decode(local.predict([images[n] for n in local.camera_names], state, INSTRUCTION).normalized)
    assert served["actions"].dtype == np.float32
    assert served["actions"].shape == expected.robot_actions.shape
    np.testing.assert_allclose(served["actions"], expected.robot_actions, atol=1e-5)
    np.testing.assert_allclose(served["normalized"], expected.normalized, atol=1e-5)
    assert {"vision", "language", "head"} <= set(served["timings_ms"])
    assert served["server_timing"]["infer_ms"] > 0


def _object_array_message() -> bytes:
    array = {"__ndarray__": True, "dtype": "|O", "shape": [1], "data": b"\x80\x04N."}  # a pickle
    return msgpack.packb({"images": {}, "state": array, "instruction": "x"}, use_bin_type=True)


def _deep_array_message() -> bytes:
    array = {"__ndarray__": True, "dtype": "<f4", "shape": [1, 1, 1, 1, 1], "data": b"\0\0\0\0"}
    return msgpack.packb({"state": array}, use_bin_type=True)


BAD_REQUESTS = {
    "object dtype": (_object_array_message, "not allowed"),
    "too many dimensions": (_deep_array_message, "dimensions"),
    "not msgpack": (lambda: b"\xc1\xc1\xc1", "not a valid message"),
    "not a map": (lambda: msgpack.packb([1, 2, 3]), "must be a map"),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_a_malformed_request_gets_one_line_and_the_connection_keeps_serving(server, name):
    make, expected = BAD_REQUESTS[name]
    images, state = _observation(server.predictor)
    with connect(server.url) as raw:
        unpack(raw.recv(timeout=10))  # the metadata
        raw.send(make())
        error = unpack(raw.recv(timeout=10))["error"]
        assert expected in error and "\n" not in error
        raw.send(pack({"images": images, "state": state, "instruction": INSTRUCTION}))
        assert unpack(raw.recv(timeout=30))["actions"].shape[0] == server.predictor.chunk_size


def test_requests_that_do_not_fit_the_policy_are_refused_by_name(server):
    images, state = _observation(server.predictor)
    wrong_camera = {"elsewhere": next(iter(images.values()))}
    with PolicyClient(server.url) as client:
        with pytest.raises(PolicyServerError, match="expected"):
            client.infer(wrong_camera, state, INSTRUCTION)
        with pytest.raises(PolicyServerError, match=r"state must be a float array of shape"):
            client.infer(images, state[:-1], INSTRUCTION)
        with pytest.raises(PolicyServerError, match="NaN"):
            client.infer(images, np.full_like(state, np.nan), INSTRUCTION)
        gray = {name: image[..., 0] for name, image in images.items()}
        with pytest.raises(PolicyServerError, match="uint8 HxWx3"):
            client.infer(gray, state, INSTRUCTION)
        with pytest.raises(PolicyServerError, match="prompt tokens"):
            client.infer(images, state, "pick " * 200)
        assert client.infer(images, state, INSTRUCTION)["actions"].ndim == 2


def test_an_oversized_message_is_refused_and_the_server_keeps_serving(server):
    images, state = _observation(server.predictor)
    huge = {name: np.zeros((512, 512, 3), np.uint8) for name in images}  # 1.5 MiB > 256 KiB
    with PolicyClient(server.url) as client:
        with pytest.raises(PolicyServerError, match="1009"):
            client.infer(huge, state, INSTRUCTION)
    with PolicyClient(server.url) as fresh:
        assert fresh.infer(images, state, INSTRUCTION)["actions"].shape[0] == server.predictor.chunk_size


def test_the_wire_refuses_object_arrays_before_sending():
    with pytest.raises(ValueError, match="not allowed"):
        pack({"x": np.array([object()], dtype=object)})


def test_serve_refuses_a_missing_bundle_in_one_line(tmp_path, capsys):
    code = main(["serve", str(tmp_path / "missing"), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: bundle not found") and err.count("\n") == 1


def test_the_serve_command_answers_the_bundled_client_until_interrupted(tiny_output, predictor):
    """`tinyvla-edge serve` as a user starts it: its own process, any free port, Ctrl-C stops it."""
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo))
    process = subprocess.Popen([sys.executable, "-m", "edge.cli", "serve", str(tiny_output), "--port", "0"],
                               cwd=repo, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = _served_url(process)
        images, state = _observation(predictor)
        with PolicyClient(url) as client:
            assert client.metadata["camera_names"] == list(predictor.camera_names)
            assert client.infer(images, state, INSTRUCTION)["actions"].shape[0] == predictor.chunk_size
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
    finally:
        process.kill()
        process.wait()


def _served_url(process: subprocess.Popen) -> str:
    """The URL from the banner `serve` prints once it listens (stderr lines before it are kept
    for the failure message)."""
    seen = []
    for line in process.stderr:
        found = re.search(r"ws://127\.0\.0\.1:\d+", line)
        if found:
            return found.group(0)
        seen.append(line)
    raise AssertionError("serve exited without listening:\n" + "".join(seen))
