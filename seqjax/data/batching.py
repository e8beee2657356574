"""Batching on the host (NumPy): padding, length bucketing, and stream windows for stateful training.

Three ways to turn data into fixed-shape batches:

* :func:`pad_sequences`: a list of variable-length sequences ``[t_i]`` or ``[t_i, d]`` into one
  right-padded array ``[b, t]`` or ``[b, t, d]`` and ``seq_lengths`` ``[b]`` (the convention of
  :func:`seqjax.recurrence.rnn` and Flax's RNN: step ``j`` of row ``i`` is real iff
  ``j < seq_lengths[i]``).
* :func:`bucket_by_length` (and :func:`bucketed_batches`): group sequence indices into batches of
  similar length, so little compute is spent on padding, in a shuffled but reproducible order.
* :class:`StreamBatches` (:func:`stream_batches`): split one long token stream into ``batch``
  parallel contiguous streams and cut them into consecutive ``[batch, k]`` windows of inputs and
  next-token targets. Row ``r`` of window ``i + 1`` continues row ``r`` of window ``i``, so the
  carry after window ``i`` is exactly the right initial carry for window ``i + 1`` (stateful /
  truncated-BPTT training (Williams & Peng 1990): carry the state across windows with
  :func:`jax.lax.stop_gradient`).

Everything here is NumPy on the host; randomness is an explicit ``numpy.random.Generator`` or an
integer seed (the same seed gives the same batches), never global state.

Example::

    >>> import numpy as np
    >>> from seqjax.data.batching import pad_sequences, stream_batches
    >>> padded, lengths = pad_sequences([[1, 2, 3], [4]], pad_value=0)
    >>> padded.tolist(), lengths.tolist()
    ([[1, 2, 3], [4, 0, 0]], [3, 1])
    >>> windows = stream_batches(np.arange(13), batch=2, window=3)
    >>> [(x.tolist(), y.tolist()) for x, y in windows]       # streams 0..5 and 6..11
    [([[0, 1, 2], [6, 7, 8]], [[1, 2, 3], [7, 8, 9]]), ([[3, 4, 5], [9, 10, 11]], [[4, 5, 6], [10, 11, 12]])]
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from seqjax import _checks

__all__ = [
    "StreamBatches",
    "as_generator",
    "bucket_by_length",
    "bucketed_batches",
    "pad_sequences",
    "stream_batches",
]


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator | None:
    """``rng`` as a :class:`numpy.random.Generator`: an int is a seed, ``None`` stays ``None``."""
    if rng is None or isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng must be a numpy.random.Generator, an integer seed or None; got {rng!r}.")


def pad_sequences(
    sequences: Sequence[Any],
    *,
    pad_value: Any = 0,
    max_length: int | None = None,
    truncate: bool = False,
    dtype: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad variable-length sequences into one array.

    Args:
      sequences: a non-empty list of array-likes, each ``[t_i]`` or each ``[t_i, d]`` (all the same
        rank and the same trailing ``d``); ``t_i`` may be 0.
      pad_value: the value written into padded positions.
      max_length: the time axis of the result; default ``max(t_i)``. A sequence longer than it is
        an error unless ``truncate=True`` (then it is cut to its first ``max_length`` steps).
      dtype: the result's dtype; default the common dtype of the sequences.

    Returns:
      ``padded`` ``[b, t]`` or ``[b, t, d]`` and ``seq_lengths`` ``[b]`` int32 (lengths after any
      truncation), ready for ``rnn(..., seq_lengths=seq_lengths)``.
    """
    if isinstance(sequences, np.ndarray) and sequences.dtype != object:
        sequences = list(sequences)
    if not isinstance(sequences, (list, tuple)) or len(sequences) == 0:
        raise ValueError(f"sequences must be a non-empty list of arrays; got {type(sequences).__name__} "
                         f"of length {len(sequences) if hasattr(sequences, '__len__') else '?'}.")
    arrays = [np.asarray(s) for s in sequences]
    # np.asarray([]) is float64: an empty sequence takes the others' rank and dtype.
    typed = [a for a in arrays if a.size] or arrays
    arrays = [a.reshape((0, *typed[0].shape[1:])).astype(typed[0].dtype) if a.size == 0 else a for a in arrays]
    ranks = {a.ndim for a in arrays}
    if len(ranks) != 1 or ranks.pop() not in (1, 2):
        raise ValueError(
            "every sequence must be [t] (token ids) or every one [t, d] (features); got ranks "
            f"{sorted({a.ndim for a in arrays})}."
        )
    trailing = {a.shape[1:] for a in arrays}
    if len(trailing) != 1:
        raise ValueError(f"sequences must share their feature size d; got trailing shapes {sorted(trailing)}.")
    lengths = np.array([a.shape[0] for a in arrays], np.int64)
    if max_length is None:
        max_length = int(lengths.max())
    else:
        _checks.nonnegative_int("max_length", max_length)
        too_long = np.flatnonzero(lengths > max_length)
        if too_long.size and not truncate:
            raise ValueError(
                f"max_length={max_length} is shorter than sequences {too_long[:5].tolist()} "
                f"(lengths {lengths[too_long[:5]].tolist()}); pass truncate=True to cut them."
            )
    lengths = np.minimum(lengths, max_length)
    if dtype is None:
        dtype = np.result_type(*typed)
    padded = np.full((len(arrays), max_length, *trailing.pop()), pad_value, dtype=dtype)
    for i, (a, n) in enumerate(zip(arrays, lengths)):
        padded[i, :n] = a[:n]
    return padded, lengths.astype(np.int32)


def bucket_by_length(
    lengths: Sequence[int],
    batch_size: int,
    *,
    boundaries: Sequence[int] | None = None,
    window: int | None = None,
    rng: np.random.Generator | int | None = None,
    drop_last: bool = False,
) -> list[np.ndarray]:
    """Group the indices ``0..n-1`` into batches of sequences of similar length.

    Two ways to group (both put every index in at most one batch; all of them unless
    ``drop_last``):

    * ``boundaries=(b_0 < b_1 < ...)``: buckets ``[0, b_0), [b_0, b_1), ..., [b_last, inf)`` by
      length; each bucket is cut into batches of ``batch_size`` (a bucket's last batch may be
      smaller). Padding within a batch is bounded by the bucket's width.
    * sorted windows (default): take the indices in (shuffled) order, sort each run of ``window``
      of them by length (default ``window = 50 * batch_size``; ``window >= n`` sorts everything),
      and cut the sorted runs into batches. Larger windows, less padding, less randomness.

    ``rng`` (a Generator or an int seed) shuffles the indices before grouping and the order of the
    batches after. With ``rng=None`` nothing is shuffled: buckets in increasing order of length,
    or windows in index order, each sorted by length (sorts are stable: equal lengths keep index
    order).
    ``drop_last`` drops every batch smaller than ``batch_size`` (fixed shapes, fewer compilations).

    Returns a list of int64 index arrays, one per batch.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be a 1-D sequence of integers; got shape {lengths.shape}, dtype {lengths.dtype}.")
    if lengths.size and lengths.min() < 0:
        raise ValueError(f"lengths must be >= 0; got min {lengths.min()}.")
    _checks.positive_int("batch_size", batch_size)
    rng = as_generator(rng)
    n = lengths.size
    order = rng.permutation(n) if rng is not None else np.arange(n)

    groups: list[np.ndarray] = []
    if boundaries is not None:
        bounds = np.asarray(boundaries)
        if bounds.ndim != 1 or bounds.size == 0 or np.any(np.diff(bounds) <= 0):
            raise ValueError(f"boundaries must be a non-empty strictly increasing sequence; got {list(boundaries)}.")
        if window is not None:
            raise ValueError("give boundaries or window, not both.")
        bucket_of = np.searchsorted(bounds, lengths[order], side="right")
        for bucket in range(bounds.size + 1):
            groups.append(order[bucket_of == bucket])
    else:
        if window is None:
            window = 50 * batch_size
        _checks.positive_int("window", window)
        for start in range(0, n, window):
            run = order[start : start + window]
            groups.append(run[np.argsort(lengths[run], kind="stable")])

    batches = []
    for group in groups:
        for start in range(0, group.size, batch_size):
            batch = group[start : start + batch_size]
            if batch.size == batch_size or (batch.size and not drop_last):
                batches.append(batch.astype(np.int64))
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def bucketed_batches(
    sequences: Sequence[Any],
    batch_size: int,
    *,
    pad_value: Any = 0,
    boundaries: Sequence[int] | None = None,
    window: int | None = None,
    rng: np.random.Generator | int | None = None,
    drop_last: bool = False,
    pad_to_multiple: int = 1,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(indices, padded, seq_lengths)`` for the batches of :func:`bucket_by_length`.

    ``pad_to_multiple`` rounds each batch's time axis up to a multiple of it, so that a jitted
    step sees few distinct shapes (one compilation per shape).
    """
    _checks.positive_int("pad_to_multiple", pad_to_multiple)
    lengths = [len(s) for s in sequences]
    for idx in bucket_by_length(lengths, batch_size, boundaries=boundaries, window=window, rng=rng,
                                drop_last=drop_last):
        longest = max(lengths[i] for i in idx)
        t = -(-longest // pad_to_multiple) * pad_to_multiple
        padded, seq_lengths = pad_sequences([sequences[i] for i in idx], pad_value=pad_value, max_length=t)
        yield idx, padded, seq_lengths


class StreamBatches:
    """Consecutive ``[batch, k]`` windows of ``batch`` parallel streams cut from one token stream.

    With ``n`` tokens (after dropping ``offset`` from the front) each stream holds
    ``L = (n - 1) // batch`` inputs: stream ``r`` reads ``tokens[r L : (r + 1) L]`` and predicts
    ``tokens[r L + 1 : (r + 1) L + 1]`` (the next token, so the last target of stream ``r`` is the
    first input of stream ``r + 1``). The ``n - 1 - batch L`` tokens left over at the end are not
    used. Window ``i`` is columns ``[i k, (i + 1) k)`` of every stream: row ``r`` of window
    ``i + 1`` starts where row ``r`` of window ``i`` ended, so a recurrent carry passed from one
    window to the next sees each stream as one unbroken sequence. ``drop_last=False`` keeps a
    final, shorter window (``L mod k`` columns); the default drops it (one shape, one compilation).

    Indexing (``windows[i]``), ``len(windows)`` and iteration are supported; every window is a
    pair ``(inputs, targets)`` of ``[batch, k]`` arrays with the tokens' dtype. ``inputs`` and
    ``targets`` hold the whole ``[batch, L]`` streams.
    """

    def __init__(self, tokens: Any, batch: int, window: int, *, offset: int = 0, drop_last: bool = True):
        tokens = np.asarray(tokens)
        if tokens.ndim != 1:
            raise ValueError(f"tokens must be one 1-D stream [n]; got shape {tokens.shape}.")
        _checks.positive_int("batch", batch)
        _checks.positive_int("window", window)
        _checks.nonnegative_int("offset", offset)
        tokens = tokens[offset:]
        length = (tokens.size - 1) // batch
        if length < 1:
            raise ValueError(
                f"a stream of {tokens.size} tokens (after offset={offset}) is too short for "
                f"batch={batch} streams of at least one input and its target."
            )
        self.batch, self.window, self.drop_last = batch, window, drop_last
        self.stream_length = length
        self.inputs = tokens[: batch * length].reshape(batch, length)
        self.targets = tokens[1 : batch * length + 1].reshape(batch, length)
        full, rest = divmod(length, window)
        self._count = full + (1 if rest and not drop_last else 0)

    @property
    def num_tokens(self) -> int:
        """How many (input, target) pairs the windows cover."""
        covered = self.stream_length if not self.drop_last else (self.stream_length // self.window) * self.window
        return self.batch * covered

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not -self._count <= i < self._count:
            raise IndexError(f"window {i} out of range for {self._count} windows.")
        i %= self._count
        cols = slice(i * self.window, (i + 1) * self.window)
        return self.inputs[:, cols], self.targets[:, cols]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(self._count):
            yield self[i]

    def __repr__(self) -> str:
        return (f"StreamBatches(batch={self.batch}, window={self.window}, windows={self._count}, "
                f"stream_length={self.stream_length})")


def stream_batches(tokens: Any, batch: int, window: int, *, offset: int = 0, drop_last: bool = True) -> StreamBatches:
    """:class:`StreamBatches` for ``tokens`` (see there): ``[batch, window]`` (inputs, targets)."""
    return StreamBatches(tokens, batch, window, offset=offset, drop_last=drop_last)
