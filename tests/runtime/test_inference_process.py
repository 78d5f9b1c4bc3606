"""The model in its own process: same chunks as in-process, errors carried across, a dead child
turns into an ESTOP, and nothing is left running."""

from __future__ import annotations

import os
import signal
import time
from functools import partial

import numpy as np
import pytest
import torch

from edge.errors import CheckpointError
from edge.runtime.inference_process import InferenceProcessError, ProcessPredictor
from edge.runtime.safety import StopReason
from edge.runtime.startup import load_local_predictor


@pytest.fixture(scope="module")
def remote(tiny_output):
    with ProcessPredictor(partial(load_local_predictor, tiny_output, 0), torch_threads=1) as predictor:
        yield predictor


def _observation(predictor, seed=3):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in predictor.camera_names]
    return images, rng.standard_normal(predictor.state_dim).astype(np.float32)


def test_a_child_process_predicts_what_the_same_predictor_does_here(remote, tiny_output):
    local = load_local_predictor(tiny_output, 0)
    assert (remote.camera_names, remote.chunk_size, remote.action_dim, remote.state_dim, remote.head_steps) == \
        (local.camera_names, local.chunk_size, local.action_dim, local.state_dim, local.head_steps)
    images, state = _observation(local)
    noise = torch.from_numpy(np.random.default_rng(5).standard_normal((1, local.chunk_size, local.action_dim))
                             .astype(np.float32))
    here = local.predict(images, state, "pick up the red cube", noise)
    there = remote.predict(images, state, "pick up the red cube", noise)
    np.testing.assert_allclose(there.normalized, here.normalized, atol=1e-6)
    assert {"preprocess", "vision", "language", "head"} <= there.timings_ms.keys()
    assert 0.0 <= there.timings_ms["transfer"] < 1000.0 and "transfer" not in here.timings_ms
    # decoding runs in this process, with the decoder the child reported
    np.testing.assert_array_equal(remote.decoder.robot_actions(here.normalized), local.decoder.robot_actions(here.normalized))
    assert remote.prompt_tokens("pick up the red cube") == local.prompt_tokens("pick up the red cube")


def test_the_child_runs_nicer_than_its_parent_and_ignores_sigint(remote):
    assert os.getpriority(os.PRIO_PROCESS, remote.pid) > os.getpriority(os.PRIO_PROCESS, 0)
    os.kill(remote.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
    time.sleep(0.2)
    images, state = _observation(remote)
    assert remote.predict(images, state, "pick").normalized.shape == (remote.chunk_size, remote.action_dim)


def test_a_load_error_in_the_child_is_raised_here_with_its_type_and_message(tmp_path):
    broken = tmp_path / "not-a-training-output"
    broken.mkdir()
    with pytest.raises(CheckpointError) as raised:
        ProcessPredictor(partial(load_local_predictor, broken, 0))
    assert str(broken) in str(raised.value) or "config.json" in str(raised.value)


def test_an_error_in_predict_is_raised_here_and_the_child_keeps_serving(remote):
    images, state = _observation(remote)
    with pytest.raises(Exception, match="camera"):
        remote.predict(images[:1], state, "pick")
    assert remote.predict(images, state, "pick").normalized.shape[0] == remote.chunk_size


def test_a_killed_child_is_reported_and_close_leaves_nothing_running(tiny_output):
    predictor = ProcessPredictor(partial(load_local_predictor, tiny_output, 0), torch_threads=1)
    os.kill(predictor.pid, signal.SIGKILL)
    images, state = _observation(predictor)
    with pytest.raises(InferenceProcessError, match="killed by SIGKILL"):
        predictor.predict(images, state, "pick")
    predictor.close()
    predictor.close()
    with pytest.raises(ProcessLookupError):
        os.kill(predictor.pid, 0)


def test_the_loop_estops_when_the_inference_process_dies(rig_factory, tiny_output):
    rig = rig_factory()
    with ProcessPredictor(partial(load_local_predictor, tiny_output, 0), torch_threads=1) as predictor:
        import threading

        threading.Timer(0.8, os.kill, (predictor.pid, signal.SIGKILL)).start()
        result = rig.run(predictor=predictor, duration_s=5.0)
    assert result.stop.reason is StopReason.INFERENCE_FAILED
    assert "inference process was killed by SIGKILL" in result.stop.message
    assert result.report["ticks"] < 5.0 * 25 and result.shutdown.arm_safe
    assert rig.firmware(lambda fw: fw.estop)
    assert rig.audit().ok


def test_the_child_runs_on_the_cpus_it_is_given(tiny_output):
    from edge.runtime.cpus import CpuPlan

    plan = CpuPlan.for_this_process()
    with ProcessPredictor(partial(load_local_predictor, tiny_output, 0), torch_threads=1, cpus=plan.model) as child:
        assert os.sched_getaffinity(child.pid) == set(plan.model)


def test_cpu_plans_keep_control_and_model_apart():
    from edge.runtime.cpus import CpuPlan

    assert CpuPlan.split({0}) == CpuPlan(frozenset({0}), frozenset({0}))
    assert CpuPlan.split({0, 1}) == CpuPlan(frozenset({0}), frozenset({1}))
    six = CpuPlan.split(set(range(6)))  # Orin NX / AGX 8-core class: one for control, the rest for the model
    assert six.control == {0} and six.model == {1, 2, 3, 4, 5}
    twelve = CpuPlan.split(set(range(12)))
    assert twelve.control == {0, 1, 2} and not twelve.control & twelve.model


def test_a_child_stuck_in_predict_is_killed_within_the_stop_timeout(tiny_output):
    import threading

    predictor = ProcessPredictor(partial(_slow_tiny, tiny_output), torch_threads=1)
    images, state = _observation(predictor)
    threading.Thread(target=lambda: _swallow(predictor.predict, images, state, "pick"), daemon=True).start()
    time.sleep(0.5)  # the child is now inside a 30 s inference
    start = time.monotonic()
    predictor.close(timeout_s=0.5)
    assert time.monotonic() - start < 2.0
    with pytest.raises(ProcessLookupError):
        os.kill(predictor.pid, 0)


def _slow_tiny(output):
    """Every inference takes 30 s (module level: the child builds it by reference)."""
    from tests.runtime.predictors import Slow

    return Slow(load_local_predictor(output, 0), seconds=30.0)


def _swallow(call, *args):
    try:
        call(*args)
    except Exception:  # noqa: BLE001 - the child is killed under it
        pass


def test_frames_of_any_size_cross_in_shared_memory_which_close_removes(tiny_output):
    local = load_local_predictor(tiny_output, 0)
    before = set(os.listdir("/dev/shm"))
    with ProcessPredictor(partial(load_local_predictor, tiny_output, 0), torch_threads=1) as remote:
        rng = np.random.default_rng(1)
        for height, width in ((48, 64), (96, 128), (48, 64)):  # the segment grows, then is reused
            images = [rng.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in remote.camera_names]
            state = rng.standard_normal(remote.state_dim).astype(np.float32)
            noise = torch.zeros((1, remote.chunk_size, remote.action_dim))
            np.testing.assert_allclose(remote.predict(images, state, "pick", noise).normalized,
                                       local.predict(images, state, "pick", noise).normalized, atol=1e-6)
        assert set(os.listdir("/dev/shm")) - before  # the frames live in a segment while it runs
    assert set(os.listdir("/dev/shm")) - before == set()


def test_a_frame_reader_sees_what_the_writer_wrote_and_copies_it_out():
    from edge.runtime.shared_frames import FrameReader, FrameWriter

    writer, reader = FrameWriter(), FrameReader()
    try:
        small = [np.arange(12, dtype=np.uint8).reshape(2, 2, 3), np.ones((1, 4), np.float32)]
        copies = reader.read(writer.write(small))
        for got, sent in zip(copies, small):
            np.testing.assert_array_equal(got, sent)
            assert got.dtype == sent.dtype
        big = [np.full((64, 64, 3), 7, np.uint8)]
        ref = writer.write(big)  # a bigger frame: a new, larger segment
        np.testing.assert_array_equal(reader.read(ref)[0], big[0])
        np.testing.assert_array_equal(copies[0], small[0])  # earlier copies are unaffected
    finally:
        reader.close()
        writer.close()
