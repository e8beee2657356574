"""Truncated backpropagation through time.

A long sequence is run in chunks of ``k`` steps; the carry passes from one chunk to the next by
value, with :func:`jax.lax.stop_gradient`, so the forward pass equals one long scan while the
backward pass never crosses a chunk boundary: a loss at step ``t`` sends gradient only to steps of
its own chunk. With ``k >= T`` it is full BPTT.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.cells.base import Cell, Params
from seqjax.recurrence.scan import rnn


def truncated_bptt(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    chunk_length: int,
    *,
    seq_lengths: jax.Array | None = None,
    initial_carry: Any = None,
    return_carry: bool = False,
    **rnn_kwargs,
):
    """Run ``cell`` over ``xs`` ``[b, t, d]`` in chunks of ``chunk_length`` steps.

    Same arguments and result as :func:`seqjax.recurrence.rnn` (without ``reverse``). The time
    axis is padded up to a multiple of ``chunk_length`` internally; outputs are cut back to ``t``.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from seqjax.cells import gru
        >>> from seqjax.recurrence import truncated_bptt
        >>> cell = gru()
        >>> params = cell.init(jax.random.key(0), 2, 4)
        >>> truncated_bptt(cell, params, jnp.ones((3, 10, 2)), 4).shape
        (3, 10, 4)
    """
    _checks.positive_int("chunk_length", chunk_length)
    if rnn_kwargs.get("reverse"):
        raise ValueError("truncated_bptt runs forwards in time; got reverse=True.")
    xs = _checks.floating_array("xs", xs, ndim=3, layout="[batch, time, features]")
    batch, time, features = xs.shape
    chunks = -(-time // chunk_length)
    padded = chunks * chunk_length
    if seq_lengths is None and padded != time:
        seq_lengths = jnp.full((batch,), time, jnp.int32)
    if seq_lengths is not None:
        seq_lengths = _checks.seq_lengths("seq_lengths", seq_lengths, batch=batch, time=time)
        starts = jnp.arange(chunks) * chunk_length
        chunk_lengths = jnp.clip(seq_lengths[None, :] - starts[:, None], 0, chunk_length)
    else:
        chunk_lengths = None

    xs = jnp.pad(xs, ((0, 0), (0, padded - time), (0, 0)))
    xs = xs.reshape(batch, chunks, chunk_length, features).swapaxes(0, 1)  # [n, b, k, d]

    # The scan needs one carry dtype throughout: the computation dtype, as rnn uses.
    dtype = jnp.dtype(rnn_kwargs.get("dtype") or xs.dtype)
    if initial_carry is None:
        zero = cell.zero_carry(params, dtype)
        initial_carry = jax.tree.map(lambda z: jnp.broadcast_to(z, (batch, *z.shape)), zero)
    else:
        initial_carry = jax.tree.map(lambda c: jnp.asarray(c).astype(dtype), initial_carry)

    def chunk(carry, inputs):
        index, x, lengths = inputs
        # Cut the gradient at every boundary but the first, so the initial carry keeps its own.
        cut = jax.tree.map(lambda c: jnp.where(index == 0, c, jax.lax.stop_gradient(c)), carry)
        new, ys = rnn(
            cell, params, x, seq_lengths=lengths, initial_carry=cut, return_carry=True,
            **rnn_kwargs,
        )
        if lengths is not None:
            # A sequence that ended in an earlier chunk passes its carry through untouched, so a
            # loss on the final carry still reaches the chunk where it was last updated.
            active = lengths > 0
            new = jax.tree.map(
                lambda n, c: jnp.where(active.reshape(-1, *(1,) * (n.ndim - 1)), n, c), new, carry
            )
        return new, ys

    carry, ys = jax.lax.scan(chunk, initial_carry, (jnp.arange(chunks), xs, chunk_lengths))
    ys = ys.swapaxes(0, 1).reshape(batch, padded, -1)[:, :time]
    return (carry, ys) if return_carry else ys
