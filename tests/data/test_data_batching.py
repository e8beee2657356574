"""seqjax.data.batching: padding, length bucketing, and stream windows for stateful training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.cells import elman
from seqjax.data import bucket_by_length, bucketed_batches, pad_sequences, stream_batches
from seqjax.recurrence import rnn


def test_pad_sequences_tokens_and_features():
    padded, lengths = pad_sequences([[1, 2, 3], [4], []], pad_value=-1)
    assert padded.tolist() == [[1, 2, 3], [4, -1, -1], [-1, -1, -1]]
    assert lengths.tolist() == [3, 1, 0] and lengths.dtype == np.int32
    assert np.issubdtype(padded.dtype, np.integer)  # the empty list does not make it float

    feats = [np.ones((2, 4), np.float32), np.full((5, 4), 2.0, np.float32)]
    padded, lengths = pad_sequences(feats, pad_value=0.5, max_length=6)
    assert padded.shape == (2, 6, 4) and padded.dtype == np.float32
    assert (padded[0, 2:] == 0.5).all() and (padded[1, :5] == 2.0).all() and (padded[1, 5:] == 0.5).all()
    assert lengths.tolist() == [2, 5]
    padded, lengths = pad_sequences([np.ones((2, 4), np.float32), []])
    assert padded.shape == (2, 2, 4) and lengths.tolist() == [2, 0]


def test_pad_sequences_truncation_and_errors():
    padded, lengths = pad_sequences([[1, 2, 3, 4], [5]], max_length=2, truncate=True)
    assert padded.tolist() == [[1, 2], [5, 0]] and lengths.tolist() == [2, 1]
    with pytest.raises(ValueError, match="truncate=True"):
        pad_sequences([[1, 2, 3]], max_length=2)
    with pytest.raises(ValueError, match="non-empty"):
        pad_sequences([])
    with pytest.raises(ValueError, match="ranks"):
        pad_sequences([[1, 2], np.ones((2, 3))])
    with pytest.raises(ValueError, match="feature size"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 4))])


def elman_params(seed, d, h):
    """Elman parameters in the cell's documented layout, drawn with NumPy (no compilation)."""
    rng = np.random.default_rng(seed)
    return {"w_i": rng.normal(0, 0.5, (d, h)).astype(np.float32),
            "w_h": rng.normal(0, 0.5, (h, h)).astype(np.float32),
            "b": rng.normal(0, 0.1, (h,)).astype(np.float32)}


def numpy_elman(params, xs, h=None):
    """The Elman recurrence in NumPy (reference): returns (last h, all h)."""
    w_i, w_h, b = (np.asarray(params[k], np.float64) for k in ("w_i", "w_h", "b"))
    h = np.zeros(w_h.shape[0]) if h is None else h
    hs = []
    for x in xs:
        h = np.tanh(x @ w_i + h @ w_h + b)
        hs.append(h)
    return h, np.array(hs).reshape(len(xs), -1)


def test_padded_batch_runs_through_rnn_with_seq_lengths():
    """Padding then `seq_lengths` gives each sequence the carry it has on its own, whatever the
    pad value."""
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(n, 3)).astype(np.float32) for n in (5, 2, 4)]
    cell = elman()
    params = elman_params(0, 3, 4)
    run = jax.jit(lambda xs, lengths: rnn(cell, params, xs, seq_lengths=lengths, return_carry=True)[0])
    for pad_value in (9.0, -3.0):
        padded, lengths = pad_sequences(seqs, pad_value=pad_value)
        carry = run(jnp.asarray(padded), jnp.asarray(lengths))
        for i, s in enumerate(seqs):
            np.testing.assert_allclose(carry[i], numpy_elman(params, s)[0], rtol=1e-5, atol=1e-5)


def test_bucket_by_length_covers_every_index_once_and_is_reproducible():
    lengths = np.random.default_rng(1).integers(1, 100, size=103)
    for kwargs in ({}, {"window": 20}, {"boundaries": (10, 30, 60)}):
        batches = bucket_by_length(lengths, 8, rng=7, **kwargs)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(103)), kwargs
        assert all(1 <= b.size <= 8 for b in batches)
        again = bucket_by_length(lengths, 8, rng=np.random.default_rng(7), **kwargs)
        assert all(np.array_equal(a, b) for a, b in zip(batches, again)) and len(batches) == len(again)
        other = bucket_by_length(lengths, 8, rng=8, **kwargs)
        assert any(not np.array_equal(a, b) for a, b in zip(batches, other))


def test_bucket_by_length_groups_similar_lengths():
    lengths = np.random.default_rng(2).integers(1, 200, size=400)
    bounds = (20, 50, 100)
    for batch in bucket_by_length(lengths, 16, boundaries=bounds, rng=0):
        assert len(set(np.searchsorted(bounds, lengths[batch], side="right"))) == 1
    # Sorted windows waste far less padding than random batches.
    def waste(batches):
        return sum(int(lengths[b].max()) * b.size - int(lengths[b].sum()) for b in batches)

    random_batches = np.array_split(np.random.default_rng(0).permutation(400), 25)
    assert waste(bucket_by_length(lengths, 16, window=400, rng=0)) < 0.1 * waste(random_batches)
    # No rng: deterministic, sorted by length.
    batches = bucket_by_length(lengths, 16, window=400)
    flat = np.concatenate(batches)
    assert (np.diff(lengths[flat]) >= 0).all()


def test_bucket_by_length_drop_last_and_errors():
    batches = bucket_by_length([3] * 10, 4, drop_last=True)
    assert [b.size for b in batches] == [4, 4]
    with pytest.raises(ValueError, match="strictly increasing"):
        bucket_by_length([1, 2], 2, boundaries=(5, 5))
    with pytest.raises(ValueError, match="batch_size"):
        bucket_by_length([1, 2], 0)
    with pytest.raises(ValueError, match="rng"):
        bucket_by_length([1, 2], 1, rng="seed")


def test_bucketed_batches_pads_each_batch_to_its_own_length():
    seqs = [list(range(n)) for n in (1, 7, 3, 8, 2, 6)]
    seen = []
    for idx, padded, lengths in bucketed_batches(seqs, 2, window=6, pad_value=-1, pad_to_multiple=4):
        assert padded.shape[1] % 4 == 0 and padded.shape[1] < max(len(seqs[i]) for i in idx) + 4
        for row, i, n in zip(padded, idx, lengths):
            assert n == len(seqs[i]) and row[:n].tolist() == seqs[i] and (row[n:] == -1).all()
        seen += idx.tolist()
    assert sorted(seen) == list(range(6))


def test_stream_batches_layout():
    tokens = np.arange(23)
    windows = stream_batches(tokens, batch=3, window=3)
    # L = (23 - 1) // 3 = 7 inputs per stream; 2 full windows, the 7th column dropped.
    assert windows.stream_length == 7 and len(windows) == 2 and windows.num_tokens == 18
    np.testing.assert_array_equal(windows.inputs, np.arange(21).reshape(3, 7))
    np.testing.assert_array_equal(windows.targets, np.arange(1, 22).reshape(3, 7))
    x0, y0 = windows[0]
    x1, y1 = windows[1]
    assert x0.tolist() == [[0, 1, 2], [7, 8, 9], [14, 15, 16]]
    assert x1.tolist() == [[3, 4, 5], [10, 11, 12], [17, 18, 19]]
    np.testing.assert_array_equal(y0, x0 + 1)
    # Row r of window i+1 starts where row r of window i ended.
    np.testing.assert_array_equal(x1[:, 0], y0[:, -1])

    last = stream_batches(tokens, batch=3, window=3, drop_last=False)
    assert len(last) == 3 and last[2][0].shape == (3, 1) and last.num_tokens == 21
    shifted = stream_batches(tokens, batch=3, window=3, offset=2)
    assert shifted[0][0][0, 0] == 2
    with pytest.raises(ValueError, match="too short"):
        stream_batches(np.arange(3), batch=3, window=1)
    with pytest.raises(ValueError, match="1-D"):
        stream_batches(np.zeros((2, 5), np.int32), batch=1, window=1)


def test_stream_windows_with_carried_state_equal_one_long_scan():
    """The point of the stream layout: carrying the state window to window reproduces the
    forward pass over each whole stream."""
    tokens = np.random.default_rng(0).integers(0, 5, size=61)
    windows = stream_batches(tokens, batch=4, window=5)
    params = elman_params(1, 5, 6)
    one_hot = np.eye(5)
    full = [numpy_elman(params, one_hot[row[: len(windows) * 5]])[1] for row in windows.inputs]
    carry, outs = [None] * 4, [[] for _ in range(4)]
    for x, _ in windows:
        for r in range(4):
            carry[r], hs = numpy_elman(params, one_hot[x[r]], carry[r])
            outs[r].append(hs)
    for r in range(4):
        np.testing.assert_allclose(np.concatenate(outs[r]), full[r], rtol=1e-12)
