"""Temporal ensembling against a direct implementation of the TinyVLA reference formula."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from edge.runtime.chunks import ChunkBuffer, TimedChunk, ensemble_weights

T, A = 16, 10


def reference_aggregation(chunks_by_step: dict[int, np.ndarray], steps: int, k: float) -> dict[int, np.ndarray]:
    """eval_real_franka.py (tinyvla-format.md §4.4), literally: all_time_actions[t, t:t+T] = chunk;
    at step t take the populated rows of column t, weights exp(-k·i) with i = 0 the oldest,
    normalized, weighted sum."""
    all_time = np.zeros((steps, steps + T, A))
    out = {}
    for t in range(steps):
        if t in chunks_by_step:
            all_time[t, t:t + T] = chunks_by_step[t]
        column = all_time[:, t]
        populated = column[np.all(column != 0, axis=1)]
        if len(populated) == 0:
            continue
        w = np.exp(-k * np.arange(len(populated)))
        w = w / w.sum()
        out[t] = (populated * w[:, None]).sum(axis=0)
    return out


def _chunk(i: int, values: np.ndarray, obs_time: float = 0.0) -> TimedChunk:
    return TimedChunk(chunk_id=i, obs_time=obs_time, normalized=values, published_at=obs_time)


def _run_buffer(chunks_by_step: dict[int, np.ndarray], steps: int, k: float) -> dict[int, np.ndarray]:
    buffer = ChunkBuffer(T, A, ensemble_k=k)
    out = {}
    for t in range(steps):
        if t in chunks_by_step:
            assert buffer.add(_chunk(t, chunks_by_step[t]), start_tick=t, current_tick=t).accepted
        blend = buffer.blend(t)
        if blend is not None:
            out[t] = blend.normalized
    return out


@pytest.mark.parametrize("k", [0.01, 0.1, 1.0])
@pytest.mark.parametrize("query_every", [1, 3, 8])
def test_blend_matches_the_reference_formula(k, query_every):
    rng = np.random.default_rng(query_every)
    steps = 40
    # Nonzero values: the reference treats exact zeros as "not populated".
    chunks = {t: rng.uniform(0.1, 1.0, (T, A)) * rng.choice([-1, 1], (T, A)) for t in range(0, steps, query_every)}
    ours, ref = _run_buffer(chunks, steps, k), reference_aggregation(chunks, steps, k)
    assert ours.keys() == ref.keys()
    for t in ref:
        np.testing.assert_allclose(ours[t], ref[t], rtol=1e-12, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    k=st.floats(0.001, 2.0),
    starts=st.lists(st.integers(0, 30), min_size=1, max_size=12, unique=True),
    tick=st.integers(0, 45),
)
def test_blend_is_the_weighted_mean_of_covering_rows_oldest_weighted_most(k, starts, tick):
    rng = np.random.default_rng(len(starts))
    starts = sorted(starts)
    buffer = ChunkBuffer(T, A, capacity=32, ensemble_k=k)
    values = {}
    for i, s in enumerate(starts):
        values[s] = rng.uniform(-1, 1, (T, A))
        buffer.add(_chunk(i, values[s]), start_tick=s, current_tick=0)
    covering = [s for s in starts if s <= tick < s + T]
    blend = buffer.blend(tick)
    if not covering:
        assert blend is None
        return
    w = np.exp(-k * np.arange(len(covering)))
    expected = sum(wi * values[s][tick - s] for wi, s in zip(w / w.sum(), covering))
    np.testing.assert_allclose(blend.normalized, expected, atol=1e-12)
    assert list(blend.weights) == sorted(blend.weights, reverse=True)  # oldest first, largest weight


def test_k_zero_uses_the_newest_chunk_only():
    buffer = ChunkBuffer(T, A, ensemble_k=0.0)
    old, new = np.full((T, A), 0.2), np.full((T, A), -0.4)
    buffer.add(_chunk(0, old), 0, 0)
    buffer.add(_chunk(1, new, obs_time=1.0), 2, 2)
    blend = buffer.blend(5)
    np.testing.assert_array_equal(blend.normalized, new[3])
    assert blend.chunk_ids == (0, 1) and blend.weights == (0.0, 1.0)
    assert ensemble_weights(1, 0.0).tolist() == [1.0]


def test_actions_already_past_are_dropped_and_counted():
    buffer = ChunkBuffer(T, A)
    values = np.arange(T * A, dtype=float).reshape(T, A) / (T * A)
    admission = buffer.add(_chunk(0, values), start_tick=10, current_tick=13)
    assert admission.accepted and admission.stale_actions == 3
    np.testing.assert_array_equal(buffer.blend(13).normalized, values[3])  # never rows 0..2 (past)
    assert buffer.blend(9) is None and buffer.blend(10 + T) is None


def test_a_chunk_entirely_in_the_past_is_not_kept():
    buffer = ChunkBuffer(T, A)
    admission = buffer.add(_chunk(0, np.zeros((T, A))), start_tick=0, current_tick=T)
    assert not admission.accepted and admission.stale_actions == T
    assert len(buffer) == 0


def test_non_finite_chunks_are_rejected():
    buffer = ChunkBuffer(T, A)
    bad = np.zeros((T, A))
    bad[4, 2] = np.nan
    admission = buffer.add(_chunk(0, bad), 0, 0)
    assert admission.rejected_non_finite and not admission.accepted
    bad[4, 2] = np.inf
    assert buffer.add(_chunk(1, bad), 0, 0).rejected_non_finite
    assert buffer.blend(0) is None


def test_the_ring_stays_bounded_however_long_the_run():
    buffer = ChunkBuffer(T, A, capacity=T)
    for t in range(10_000):
        buffer.add(_chunk(t, np.full((T, A), 0.5)), start_tick=t, current_tick=t)
    assert len(buffer) == T
    assert buffer._actions.nbytes == T * T * A * 8  # fixed at construction
    blend = buffer.blend(9_999)
    assert len(blend.chunk_ids) == T  # exactly the chunks that can still cover a tick


def test_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        ChunkBuffer(T, A).add(_chunk(0, np.zeros((T, 7))), 0, 0)
