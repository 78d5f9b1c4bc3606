"""Inference in a child process, so model compute never holds the control process's GIL.

On a 2-core machine a torch or onnxruntime predictor in a thread of the control process takes
the GIL for its Python-level work (module calls, tensor bookkeeping) in slices of up to the
switch interval, and every tick that wakes during one starts late. In its own process the model
shares nothing with the tick but the CPU, where the control process wins by priority: the child
runs `NICENESS_STEP` nicer than its parent.

`ProcessPredictor` is a `ChunkPredictor`: the inference worker calls `predict` as before and
waits on a pipe (no GIL held); the normalized chunk comes back as numpy. The child reports its
`ActionDecoder` at start-up, and the tick decodes with it here. If the child dies, `predict`
raises and the loop ESTOPs.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edge.errors import EdgeError
from edge.policy.contract import ChunkPredictor, Prediction
from edge.runtime.shared_frames import FrameReader, FrameWriter

NICENESS_STEP = 10  # the control process always outranks its model
# Imported once by the fork server: each model process forks from it with torch and the model
# code loaded (5-6 s of imports on a 2-core x86, more on an Orin's cores) instead of importing
# them again. Importing initialises no CUDA (checked: torch.cuda.is_initialized() stays False);
# it does start two idle OS threads (torch, transformers), which a fork does not copy, the
# situation of PyTorch's own DataLoader workers forked after `import torch`.
PRELOAD = ["torch", "edge.policy.network", "edge.bundle.predictor"]
START_TIMEOUT_S = 600.0  # loading a large bundle (hashing, engine builds) can take minutes
STOP_TIMEOUT_S = 2.0
FACTS = ("camera_names", "chunk_size", "action_dim", "state_dim", "head_steps", "max_prompt_tokens", "decoder")


class InferenceProcessError(EdgeError):
    """The inference process could not start, or stopped answering."""


class ProcessPredictor:
    """A `ChunkPredictor` whose `predict` runs in a child process (forked from a fork server).

    `load` is a picklable callable (a module-level function or a `functools.partial` of one)
    that builds the real predictor in the child. An `EdgeError` raised there (a bundle that
    fails verification, say) is raised again here with the same type and message.
    """

    def __init__(self, load: Callable[[], ChunkPredictor], torch_threads: int | None = None,
                 cpus: set[int] | None = None, start_timeout_s: float = START_TIMEOUT_S):
        """`cpus`: the CPUs the child may run on (default: any); keep one out of it for the tick."""
        self._frames = FrameWriter()
        context = _model_context()
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=serve, args=(child_conn, load, torch_threads, _Inherited.here(cpus)),
                                         name="tinyvla-inference", daemon=True)
        self._process.start()
        child_conn.close()
        try:
            facts = self._receive(start_timeout_s, "start")
        except BaseException:  # a refusal, or a signal during a long load: leave no child behind
            self.close()
            raise
        self.camera_names: tuple[str, ...] = facts["camera_names"]
        self.chunk_size: int = facts["chunk_size"]
        self.action_dim: int = facts["action_dim"]
        self.state_dim: int = facts["state_dim"]
        self.head_steps: int = facts["head_steps"]
        self.max_prompt_tokens: int = facts["max_prompt_tokens"]
        self.decoder = facts["decoder"]  # ActionDecoder: numpy, used in this process
        self.profile: str = facts["profile"]
        self.pid = self._process.pid

    def predict(self, images: list[np.ndarray], state: np.ndarray, instruction: str, noise=None) -> Prediction:
        """One inference in the child; blocks (without the GIL) until its chunk arrives. Adds a
        `transfer` stage: the round trip's time outside the child's own stages (frames through
        shared memory, the rest pickled through the pipe)."""
        start = time.perf_counter()
        frames = self._frames.write(images)
        prediction = self._call("predict", frames, np.asarray(state), instruction,
                                None if noise is None else np.asarray(noise, np.float32))
        round_trip_ms = (time.perf_counter() - start) * 1e3
        transfer_ms = max(0.0, round_trip_ms - sum(prediction.timings_ms.values()))
        return Prediction(prediction.normalized, {**prediction.timings_ms, "transfer": transfer_ms})

    def prompt_tokens(self, instruction: str) -> int:
        return self._call("prompt_tokens", instruction)

    def close(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the child: ask (it finishes the inference in hand), then kill (it ignores
        SIGTERM). Safe to call twice."""
        if self._process.is_alive():
            try:
                self._conn.send(("stop",))
            except OSError:
                pass
            self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()
        self._frames.close()

    def __enter__(self) -> "ProcessPredictor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, *args):
        try:
            self._conn.send((method, *args))
        except OSError as e:
            raise self._died() from e
        return self._receive(None, method)

    def _receive(self, timeout_s: float | None, what: str):
        try:
            if timeout_s is not None and not self._conn.poll(timeout_s):
                raise InferenceProcessError(f"the inference process did not {what} within {timeout_s:g} s")
            kind, value = self._conn.recv()
        except (EOFError, OSError) as e:
            raise self._died() from e
        if kind == "error":
            raise value
        return value

    def _died(self) -> InferenceProcessError:
        self._process.join(1.0)
        code = self._process.exitcode
        how = "is still running but its pipe closed" if code is None else (
            f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}")
        return InferenceProcessError(f"the inference process {how}")


def _model_context():
    """Model processes fork from a fork server with `PRELOAD` imported; a plain fork of the control
    process would copy its threads (cameras, serial) and any CUDA state."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


@dataclass(frozen=True)
class _Inherited:
    """What a spawned child would inherit from its parent at the time of the call. The fork server
    was started earlier, possibly from another niceness, CPU set, directory or environment, so the
    child takes these from the parent explicitly."""

    niceness: int
    cpus: frozenset[int]
    cwd: str
    environ: dict[str, str]

    @classmethod
    def here(cls, cpus: set[int] | None) -> "_Inherited":
        return cls(os.getpriority(os.PRIO_PROCESS, 0), frozenset(cpus or os.sched_getaffinity(0)), os.getcwd(),
                   dict(os.environ))

    def apply(self) -> None:
        os.environ.clear()
        os.environ.update(self.environ)
        os.chdir(self.cwd)
        try:
            os.setpriority(os.PRIO_PROCESS, 0, min(self.niceness + NICENESS_STEP, 19))
            os.sched_setaffinity(0, self.cpus)
        except OSError:
            pass


def serve(conn, load: Callable[[], ChunkPredictor], torch_threads: int | None, inherited: _Inherited) -> None:
    """The child: build the predictor, report its facts, then answer calls until told to stop."""
    # The control process handles SIGINT/SIGTERM (ESTOP) and then stops this one; a terminal's
    # Ctrl-C reaches the whole process group and must not kill the model under a running loop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    inherited.apply()
    try:
        if torch_threads:
            import torch

            torch.set_num_threads(torch_threads)
        predictor = load()
        facts = {name: getattr(predictor, name) for name in FACTS}
        facts["profile"] = getattr(getattr(predictor, "manifest", None), "profile", "") or ""
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", _portable(e)))
        return
    conn.send(("ready", facts))
    _answer(conn, predictor)


def _answer(conn, predictor) -> None:
    frames = FrameReader()
    while True:
        try:
            method, *args = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if method == "stop":
            frames.close()
            return
        try:
            if method == "predict":
                frame_ref, state, instruction, noise = args
                value = predictor.predict(frames.read(frame_ref), state, instruction, noise)
            else:
                value = predictor.prompt_tokens(*args)
        except BaseException as e:  # noqa: BLE001 - the parent decides (the loop ESTOPs)
            conn.send(("error", _portable(e)))
            continue
        conn.send(("ok", value))


def _portable(error: BaseException) -> BaseException:
    """The error itself where it survives pickling, else a plain EdgeError with its message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any pickling failure
        last = traceback.format_exception_only(type(error), error)[-1].strip()
        return InferenceProcessError(last)
