"""The sequence engine: run any cell over a padded batch of sequences.

One sequence is one :func:`jax.lax.scan` of ``cell.step`` (or, for cells with a linear
recurrence, one :func:`jax.lax.associative_scan`); a batch is one :func:`jax.vmap` of that.

Padding (``seq_lengths``, right padding as in Flax): at a padded step the carry is not updated
and the output is zero, so the returned carry is the one after the last *valid* step and outputs
for valid steps do not depend on how much padding follows. ``reverse=True`` reads each sequence's
valid prefix backwards (``x_{L-1}, ..., x_0``) and leaves the padding where it is, as Flax's
``flip_sequences``; with ``keep_order=True`` outputs are put back in input order.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.cells.base import RECURRENT_DROPOUT_MASK, Cell, Params, cast, input_features
from seqjax.cells.lstm import LSTMState, lstm_step
from seqjax.recurrence.fused_lstm import fused_lstm

# The parameter keys of the plain LSTM (no peephole, no layer norm, no dropout mask): the cell
# that :func:`seqjax.recurrence.fused_lstm.fused_lstm` computes.
_PLAIN_LSTM_KEYS = frozenset({"w_i", "w_h", "b"})


def zero_padding(xs: jax.Array, seq_lengths: jax.Array | None) -> jax.Array:
    """``xs`` ``[b, t, ...]`` with the steps at or beyond each sequence's length set to zero."""
    if seq_lengths is None:
        return xs
    # iota rather than arange(t): also traces when t is symbolic (jax.export, jax2onnx)
    valid = jax.lax.broadcasted_iota(seq_lengths.dtype, xs.shape[:2], 1) < seq_lengths[:, None]
    return jnp.where(valid.reshape(*valid.shape, *(1,) * (xs.ndim - 2)), xs, jnp.zeros_like(xs))


def _reverse_permutation(time: int, length) -> jax.Array:
    """Indices that reverse the first ``length`` steps and leave the padding in place.

    The permutation is its own inverse, so it also restores the original order.
    """
    idx = jnp.arange(time)
    if length is None:
        return idx[::-1]
    return jnp.where(idx < length, length - 1 - idx, idx)


def reverse_prefixes(xs: jax.Array, seq_lengths: jax.Array | None) -> jax.Array:
    """``xs`` ``[b, t, ...]`` with each sequence's valid prefix reversed and its padding in place.

    The permutation is its own inverse: applying it twice gives ``xs`` back.

    >>> import jax.numpy as jnp
    >>> reverse_prefixes(jnp.arange(8.0).reshape(2, 4), jnp.array([4, 2]))
    Array([[3., 2., 1., 0.],
           [5., 4., 6., 7.]], dtype=float32)
    """
    if seq_lengths is None:
        return xs[:, ::-1]
    perm = jax.vmap(_reverse_permutation, in_axes=(None, 0))(xs.shape[1], seq_lengths)  # [b, t]
    return jnp.take_along_axis(xs, perm.reshape(*perm.shape, *(1,) * (xs.ndim - 2)), axis=1)


def scan_sequence(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    carry: Any,
    length: jax.Array | None = None,
    *,
    reverse: bool = False,
    keep_order: bool = False,
    unroll: int = 1,
    parallel: bool = False,
):
    """Run ``cell`` over one unbatched sequence ``xs`` ``[t, d]``; no validation (see :func:`rnn`).

    Returns ``(carry, ys)`` with ``ys`` ``[t, h]``; ``length`` (a scalar) marks the valid prefix.
    """
    time = xs.shape[0]
    if reverse:
        perm = _reverse_permutation(time, length)
        xs = xs[perm]
    valid = None if length is None else jnp.arange(time) < length

    if parallel:
        carry, ys = _associative(cell, params, xs, carry, valid)
    elif valid is None:
        carry, ys = jax.lax.scan(lambda c, x: cell.step(params, c, x), carry, xs, unroll=unroll)
    else:

        def body(carry, inputs):
            x, is_valid = inputs
            new_carry, y = cell.step(params, carry, x)
            carry = jax.tree.map(lambda new, old: jnp.where(is_valid, new, old), new_carry, carry)
            return carry, jnp.where(is_valid, y, jnp.zeros_like(y))

        carry, ys = jax.lax.scan(body, carry, (xs, valid), unroll=unroll)

    if reverse and keep_order:
        ys = ys[perm]
    return carry, ys


def _associative(cell: Cell, params: Params, xs, h0, valid):
    """``h_t = a_t h_{t-1} + b_t`` for all t at once; padded steps become the identity (1, 0)."""
    a, b = cell.linear_coefficients(params, xs)
    if valid is not None:
        a = jnp.where(valid[:, None], a, jnp.ones_like(a))
        b = jnp.where(valid[:, None], b, jnp.zeros_like(b))

    def compose(earlier, later):
        a1, b1 = earlier
        a2, b2 = later
        return a1 * a2, a2 * b1 + b2

    a_cum, b_cum = jax.lax.associative_scan(compose, (a, b))
    hs = a_cum * h0 + b_cum
    ys = hs if valid is None else jnp.where(valid[:, None], hs, jnp.zeros_like(hs))
    # An empty time axis leaves the carry as it was (hs[-1] would not exist).
    return (h0 if xs.shape[0] == 0 else hs[-1]), ys


def rnn(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    *,
    seq_lengths: jax.Array | None = None,
    initial_carry: Any = None,
    return_carry: bool = False,
    reverse: bool = False,
    keep_order: bool = False,
    unroll: int = 1,
    parallel: bool = False,
    dtype: Any = None,
    recurrent_dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
    fused: bool = True,
):
    """Run ``cell`` over a batch ``xs`` ``[b, t, d]``; returns ``ys`` ``[b, t, h]``
    (and the final carry first if ``return_carry``).

    Args:
      cell: a :class:`seqjax.cells.Cell`.
      params: the cell's parameters (one set shared by the batch).
      xs: ``[b, t, d]`` floating-point inputs, batch-major.
      seq_lengths: ``[b]`` integers in ``[0, t]``, right padding; ``None`` means all valid.
      initial_carry: the batched carry (leading axis ``b``); zeros by default.
      return_carry: also return the carry after each sequence's last valid step.
      reverse: process each valid prefix backwards (padding respected).
      keep_order: with ``reverse``, return outputs in input order (Flax's ``keep_order``).
      unroll: passed to :func:`jax.lax.scan`.
      parallel: use the associative-scan form (cells with ``linear_coefficients`` only).
      dtype: computation dtype (default: ``xs.dtype``); parameters are cast to it.
      recurrent_dropout_rate: rate of variational dropout on the recurrent input ``h`` (one mask per
        sequence, the same at every step); needs ``dropout_key``. Zero or no key: no dropout.
      dropout_key: PRNG key for ``recurrent_dropout_rate``.
      fused: for the plain LSTM cell (``lstm()`` without peephole, layer norm or recurrent
        dropout), use :func:`seqjax.recurrence.fused_lstm.fused_lstm`: the same values and
        derivatives (forward and reverse mode), with a backward pass that computes the weight
        gradients as single products over all steps instead of accumulating them step by step
        (forward+backward 17-28% faster on a 2-core CPU; see ``benchmarks/recurrent.py``).
        ``False`` always uses the generic per-example scan. Other cells ignore it.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from seqjax.cells import lstm
        >>> from seqjax.recurrence import rnn
        >>> cell = lstm()
        >>> params = cell.init(jax.random.key(0), 4, 8)
        >>> xs = jnp.ones((2, 5, 4))
        >>> carry, ys = rnn(cell, params, xs, seq_lengths=jnp.array([5, 3]), return_carry=True)
        >>> ys.shape, carry.h.shape
        ((2, 5, 8), (2, 8))
    """
    xs = _checks.floating_array("xs", xs, ndim=3, layout="[batch, time, features]")
    _checks.feature_size("xs", xs, (cell.step_input_features or input_features)(params))
    batch, time, _ = xs.shape
    _checks.probability("recurrent_dropout_rate", recurrent_dropout_rate)
    if seq_lengths is not None:
        seq_lengths = _checks.seq_lengths("seq_lengths", seq_lengths, batch=batch, time=time)
    if parallel and cell.linear_coefficients is None:
        raise ValueError(
            f"parallel=True needs a cell with a linear recurrence (min_gru, min_lstm); "
            f"got cell {cell.name!r}."
        )
    dtype = jnp.dtype(dtype or xs.dtype)
    # Padded steps are computed and then discarded; zeroing them first keeps a NaN or inf in the
    # padding out of the gradients (0 * NaN would otherwise poison every parameter's gradient).
    xs = zero_padding(xs.astype(dtype), seq_lengths)
    params = cast(params, dtype)

    if initial_carry is None:
        zero = cell.zero_carry(params, dtype)
        initial_carry = jax.tree.map(lambda z: jnp.broadcast_to(z, (batch, *z.shape)), zero)
    else:
        _check_carry(cell, params, initial_carry, batch)
        initial_carry = jax.tree.map(lambda c: c.astype(dtype), initial_carry)

    if fused and time > 0 and not parallel and cell.step is lstm_step and set(params) == _PLAIN_LSTM_KEYS:
        if not (recurrent_dropout_rate and dropout_key is not None):
            carry, ys = _fused_lstm(
                params, xs, initial_carry, seq_lengths, reverse=reverse, keep_order=keep_order,
                unroll=unroll,
            )
            return (carry, ys) if return_carry else ys

    param_axes = {k: None for k in params}
    if recurrent_dropout_rate and dropout_key is not None:
        params = params | {
            RECURRENT_DROPOUT_MASK: _recurrent_mask(cell, params, recurrent_dropout_rate, dropout_key, batch)
        }
        param_axes[RECURRENT_DROPOUT_MASK] = 0

    def one(p, x, c, length):
        return scan_sequence(
            cell, p, x, c, length, reverse=reverse, keep_order=keep_order, unroll=unroll,
            parallel=parallel,
        )

    carry, ys = jax.vmap(one, in_axes=(param_axes, 0, 0, None if seq_lengths is None else 0))(
        params, xs, initial_carry, seq_lengths
    )
    return (carry, ys) if return_carry else ys


def _fused_lstm(params, xs, carry, seq_lengths, *, reverse, keep_order, unroll):
    """:func:`scan_sequence`'s semantics (padding, reverse, keep_order) for the whole batch at
    once with :func:`fused_lstm`, which is time-major."""
    time = xs.shape[1]
    if reverse:
        xs = reverse_prefixes(xs, seq_lengths)
    valid = None if seq_lengths is None else (
        jax.lax.broadcasted_iota(seq_lengths.dtype, (time, xs.shape[0]), 0) < seq_lengths[None, :])
    (h, c), ys = fused_lstm(
        params["w_i"], params["w_h"], params["b"], xs.swapaxes(0, 1), carry.h, carry.c, valid,
        unroll,
    )
    ys = ys.swapaxes(0, 1)
    if reverse and keep_order:
        ys = reverse_prefixes(ys, seq_lengths)  # the permutation is its own inverse
    return LSTMState(h, c), ys


def _recurrent_mask(cell: Cell, params: Params, rate: float, key, batch: int) -> jax.Array:
    _checks.probability("recurrent_dropout_rate", rate)
    if "w_h" not in params:
        raise ValueError(
            f"recurrent_dropout_rate needs a cell with a recurrent weight matrix; cell {cell.name!r} "
            "has none (its gates read only the input). Use dropout between layers instead."
        )
    hidden = params["w_h"].shape[0]
    keep = jax.random.bernoulli(key, 1.0 - rate, (batch, hidden))
    return keep.astype(params["w_h"].dtype) / (1.0 - rate)


def _check_carry(cell: Cell, params: Params, carry, batch: int) -> None:
    expected = cell.zero_carry(params, jnp.float32)
    exp_leaves, exp_tree = jax.tree.flatten(expected)
    got_leaves, got_tree = jax.tree.flatten(carry)
    shapes = [tuple(leaf.shape) for leaf in got_leaves]
    want = [(batch, *leaf.shape) for leaf in exp_leaves]
    if got_tree != exp_tree or shapes != want:
        raise ValueError(
            f"initial_carry for cell {cell.name!r} must be {exp_tree} with shapes {want} "
            f"([batch, ...]); got {got_tree} with shapes {shapes}."
        )
