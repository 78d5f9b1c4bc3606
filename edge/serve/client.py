"""A client for `tinyvla-edge serve`: needs websockets, msgpack and numpy (no torch).

    from edge.serve.client import PolicyClient

    with PolicyClient("ws://127.0.0.1:8000") as policy:
        print(policy.metadata["camera_names"])
        result = policy.infer({"left": rgb_left, "right": rgb_right}, state, "pick up the red cube")
        actions = result["actions"]  # [chunk, robot values]: the policy's commands, before safety

Actions are the policy's raw commands: whoever sends them to an arm must apply its limits (the
control loop's safety layer does this for `tinyvla-edge run`).
"""

from __future__ import annotations

import contextlib

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidURI, WebSocketException
from websockets.sync.client import ClientConnection, connect

from edge.serve.wire import WireLimits, pack, unpack

CONNECT_TIMEOUT_S = 10.0


class PolicyServerError(RuntimeError):
    """The server refused a request, or the connection failed; the text is one line."""


class PolicyClient:
    """One connection to a policy server. `metadata` holds what the server sent on connect."""

    def __init__(self, url: str, timeout_s: float = CONNECT_TIMEOUT_S, limits: WireLimits = WireLimits()):
        self.url, self.timeout_s, self.limits = url, timeout_s, limits
        self._stack = contextlib.ExitStack()  # websockets wants its connection used as a context
        try:
            # The client's frame limit bounds the server's responses (a chunk is small).
            self._connection: ClientConnection = self._stack.enter_context(
                connect(url, open_timeout=timeout_s, compression=None, max_size=limits.max_message_bytes))
        except (OSError, InvalidURI, WebSocketException, TimeoutError) as e:
            raise PolicyServerError(f"cannot connect to {url}: {e}") from e
        try:
            self.metadata: dict = self._receive()
        except PolicyServerError:
            self.close()
            raise

    def infer(self, images: dict[str, np.ndarray], state: np.ndarray, instruction: str) -> dict:
        """One chunk for one observation: images {camera: uint8 HxWx3 RGB}, the arm's state, the
        instruction. Returns `actions` [chunk, values], `normalized`, `timings_ms`, `server_timing`."""
        request = {"images": dict(images), "state": np.asarray(state, np.float32), "instruction": instruction}
        return self.send(request)

    def send(self, request: dict) -> dict:
        """Send any request message and return the response (for protocol-level use and tests)."""
        try:
            self._connection.send(pack(request))
        except ConnectionClosed as e:
            raise PolicyServerError(_closed(e)) from e
        response = self._receive()
        if "error" in response:
            raise PolicyServerError(response["error"])
        return response

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _receive(self) -> dict:
        try:
            return unpack(self._connection.recv(timeout=self.timeout_s), self.limits)
        except ConnectionClosed as e:
            raise PolicyServerError(_closed(e)) from e
        except TimeoutError as e:
            raise PolicyServerError(f"no answer from {self.url} within {self.timeout_s:g} s") from e


def _closed(error: ConnectionClosed) -> str:
    frame = error.rcvd
    reason = f" ({frame.code}: {frame.reason})" if frame and frame.reason else (f" (code {frame.code})" if frame else "")
    return f"the server closed the connection{reason}"
