"""`tinyvla-edge serve`: a policy behind a websocket, for processes that are not the control loop.

The shape follows openpi's policy server: on connect the server sends the policy's metadata;
then each binary message is one request (`{"images": {camera: uint8 HxWx3}, "state": float[S],
"instruction": str}`) answered by one response (`{"actions", "normalized", "timings_ms",
"server_timing"}`). A bad request is answered with `{"error": "one line"}` and the connection
stays open; a message over `max_message_bytes` is refused by the transport (close code 1009).
It listens on 127.0.0.1 unless another host is named explicitly. Protocol: docs/python-api.md.
"""

from __future__ import annotations

import http
import logging
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from edge import __version__
from edge.errors import EdgeError
from edge.runtime.provenance import manifest_sha256
from edge.runtime.startup import load_run_predictor
from edge.serve.wire import WireError, WireLimits, pack, unpack

PROTOCOL_VERSION = 1
LOCALHOST = "127.0.0.1"
LOCAL_HOSTS = (LOCALHOST, "localhost", "::1")
DEFAULT_PORT = 8000
MAX_IMAGE_SIDE = 4096
HEALTH_PATH = "/healthz"

log = logging.getLogger(__name__)


class BadRequest(ValueError):
    """A request the policy cannot take; its text goes back to the client as one line."""


def policy_metadata(predictor, bundle: Path | None, limits: WireLimits) -> dict:
    """What a client learns on connect: what to send, what comes back, which bundle answers."""
    manifest = getattr(predictor, "manifest", None)
    return {
        "protocol_version": PROTOCOL_VERSION,
        "toolkit_version": __version__,
        "bundle": Path(bundle).name if bundle else None,  # the name only: paths stay on the server
        "bundle_sha256": manifest_sha256(bundle),
        "profile": getattr(manifest, "profile", None),
        "camera_names": list(predictor.camera_names),
        "state_dim": predictor.state_dim,
        "action_dim": predictor.action_dim,
        "chunk_size": predictor.chunk_size,
        "head_steps": predictor.head_steps,
        "max_prompt_tokens": predictor.max_prompt_tokens,
        "max_image_side": MAX_IMAGE_SIDE,
        "limits": limits.as_dict(),
    }


def check_request(request: dict, predictor) -> tuple[list[np.ndarray], np.ndarray, str]:
    """The request's images (in the policy's camera order), state and instruction; BadRequest
    naming the first thing wrong."""
    unknown = sorted(set(request) - {"images", "state", "instruction"})
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r} (a request has images, state, instruction)")
    images = request.get("images")
    names = list(predictor.camera_names)
    if not isinstance(images, dict) or sorted(images) != sorted(names):
        given = sorted(images) if isinstance(images, dict) else type(images).__name__
        raise BadRequest(f"images must map each camera of the policy to a frame: expected {names}, got {given}")
    ordered = [_check_image(name, images[name]) for name in names]
    state = request.get("state")
    if not isinstance(state, np.ndarray) or state.shape != (predictor.state_dim,) or state.dtype.kind != "f":
        shape = getattr(state, "shape", type(state).__name__)
        raise BadRequest(f"state must be a float array of shape ({predictor.state_dim},), got {shape}")
    if not np.all(np.isfinite(state)):
        raise BadRequest("state has NaN or infinite values")
    instruction = request.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise BadRequest("instruction must be a non-empty string")
    tokens = predictor.prompt_tokens(instruction)
    if tokens > predictor.max_prompt_tokens:
        raise BadRequest(f"instruction takes {tokens} prompt tokens; the policy's budget is {predictor.max_prompt_tokens}")
    return ordered, state.astype(np.float32), instruction


def _check_image(name: str, image) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        described = f"{image.dtype} {list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
        raise BadRequest(f"image {name!r} must be uint8 HxWx3 RGB, got {described}")
    if not (0 < image.shape[0] <= MAX_IMAGE_SIDE and 0 < image.shape[1] <= MAX_IMAGE_SIDE):
        raise BadRequest(f"image {name!r} is {image.shape[1]}x{image.shape[0]}; sides must be 1..{MAX_IMAGE_SIDE}")
    return image


class PolicyServer:
    """Serves `predictor` (a `ChunkPredictor`) over a websocket; one inference at a time."""

    def __init__(self, predictor, host: str = LOCALHOST, port: int = DEFAULT_PORT,
                 bundle: Path | None = None, limits: WireLimits = WireLimits()):
        self.predictor, self.host, self.limits = predictor, host, limits
        self.metadata = policy_metadata(predictor, bundle, limits)
        self._lock = threading.Lock()  # the predictor is not re-entrant
        self._server: Server = serve(
            self._handle, host, port, compression=None, max_size=limits.max_message_bytes,
            process_request=_health_check, logger=log,
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0: the OS picks a free one)."""
        return self._server.socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until `shutdown()` (or KeyboardInterrupt in the calling thread)."""
        self._server.serve_forever()

    def start(self) -> "PolicyServer":
        """Serve from a background thread (notebooks, tests); `shutdown()` stops it."""
        self._thread = threading.Thread(target=self.serve_forever, name="policy-server", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop accepting, close every connection, join the background thread. Idempotent."""
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> "PolicyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def answer(self, data: bytes | str) -> dict:
        """One request's response: the chunk, or `{"error": ...}` for a bad request."""
        started = time.perf_counter()
        try:
            images, state, instruction = check_request(unpack(data, self.limits), self.predictor)
            with self._lock:
                prediction = self.predictor.predict(images, state, instruction)
        except (WireError, BadRequest, EdgeError) as e:
            return {"error": str(e)}
        return {
            "actions": self.predictor.decoder.robot_actions(prediction.normalized),
            "normalized": np.asarray(prediction.normalized, np.float32),
            "timings_ms": {k: float(v) for k, v in prediction.timings_ms.items()},
            "server_timing": {"infer_ms": (time.perf_counter() - started) * 1e3},
        }

    def _handle(self, connection: ServerConnection) -> None:
        log.info("client %s connected", connection.remote_address)
        try:
            connection.send(pack(self.metadata))
            for message in connection:
                connection.send(pack(self.answer(message)))
        except ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001 - an inference bug ends this client, not the server
            log.exception("request from %s failed", connection.remote_address)
            connection.close(1011, "internal error; see the server log")


def _health_check(connection: ServerConnection, request):
    """`GET /healthz` answers 200 without a websocket handshake (load balancers, systemd checks)."""
    if request.path == HEALTH_PATH:
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return None


def serve_bundle(bundle: Path, host: str = LOCALHOST, port: int = DEFAULT_PORT,
                 say: Callable[[str], None] = lambda line: None) -> None:
    """Verify and load `bundle` (or a training output, torch fp32), then serve it until interrupted."""
    if not 0 <= port <= 65535:
        raise EdgeError(f"--port must be 0..65535, got {port}")
    predictor, _ = load_run_predictor(Path(bundle))
    try:
        server = PolicyServer(predictor, host, port, bundle=Path(bundle))
    except OSError as e:
        raise EdgeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    exposed = "" if host in LOCAL_HOSTS else "; reachable from the network, without authentication"
    say(f"serving {bundle} on {server.url} (cameras: {', '.join(predictor.camera_names)}{exposed}); Ctrl-C stops")
    try:
        server.serve_forever()
    finally:
        server.shutdown()
