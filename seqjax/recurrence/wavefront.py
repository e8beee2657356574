"""Fewer loops for deep and bidirectional recurrences: both directions in one scan, and a stack as
a wavefront.

A stack of ``L`` recurrent layers run layer by layer (:func:`seqjax.recurrence.stacked` with
``schedule="layered"``) is ``L`` sequential loops of ``T`` steps, each step a small product
(``[b, h] x [h, k h]``) that cannot fill the machine. Two reorderings keep every value and
derivative exactly as they are and cut the number of sequential steps:

* **Both directions in one loop** (:func:`bidirectional_one_loop`). The backward direction reads
  each sequence's valid prefix reversed (``x_{n-1}, ..., x_0``, padding left in place, as
  ``rnn(reverse=True, keep_order=True)``); after that per-example reversal both directions run
  *forwards* over inputs with the same ``valid`` mask, so their parameters are stacked on a
  leading axis of 2 and one :func:`jax.vmap` of :func:`seqjax.recurrence.rnn` over it runs them
  in a single scan whose products are batched (``[2, b, h] x [2, h, k h]``). For the plain LSTM
  this is a ``vmap`` of :func:`seqjax.recurrence.fused_lstm.fused_lstm`, which keeps its
  derivative rule.
* **A wavefront over layers** (:func:`wavefront_stack`, as cuDNN schedules a stack). At diagonal
  step ``s = 0, ..., T + L - 2`` layer ``l`` processes time ``t = s - l``: its input, layer
  ``l - 1``'s output at time ``s - l``, was produced at step ``s - 1``. One scan of
  ``T + L - 1`` steps replaces ``L`` scans of ``T``; the layers ``l >= 1`` of equal width have
  equal parameter shapes, so their steps are one ``vmap``-batched product (layer 0, which reads
  ``xs``, is its own group unless its shapes match too). Padding is exact: layer ``l``'s step at
  ``s`` is valid iff ``0 <= s - l < length`` (carry kept, output zero otherwise), so each
  layer's final carry is the one after its last valid step.

Randomness matches the layered path draw for draw: the dropout between layers uses the masks
that :func:`seqjax.primitives.dropout` would draw from the same keys for the whole ``[b, t, w]``
output (drawn before the loop, applied to each step's slice), and recurrent dropout uses the same
per-sequence masks. Gradients are JAX's own derivative of the reordered loop (the wavefront does
not use the fused LSTM derivative rule; the one-loop bidirectional path does).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.cells.base import RECURRENT_DROPOUT_MASK, Cell, cast, input_features
from seqjax.recurrence.scan import _check_carry, _recurrent_mask, reverse_prefixes, rnn, zero_padding

MERGES = ("concat", "sum")
# rnn options the wavefront understands; ``fused`` is accepted and has no effect (values and
# derivatives are the same either way).
WAVEFRONT_OPTIONS = frozenset({"unroll", "dtype", "fused", "parallel"})


def same_shapes(a, b) -> bool:
    """Whether two parameter trees have the same structure, shapes and dtypes (so they stack)."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    return ta == tb and all(x.shape == y.shape and x.dtype == y.dtype for x, y in zip(la, lb))


def _stack(trees):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _unstack(tree, n: int):
    return [jax.tree.map(lambda leaf: leaf[i], tree) for i in range(n)]


def bidirectional_one_loop(
    cell: Cell,
    params: dict,
    xs: jax.Array,
    *,
    seq_lengths: jax.Array | None = None,
    initial_carry: tuple[Any, Any] | None = None,
    return_carry: bool = False,
    merge: str = "concat",
    **rnn_kwargs,
):
    """:func:`seqjax.recurrence.bidirectional` with both directions in one scan.

    Same arguments, outputs, carries and derivatives as ``bidirectional`` (see the module
    docstring for how): ``ys`` is ``[b, t, 2h]`` (``"concat"``, forward features first) or
    ``[b, t, h]`` (``"sum"``), the carry ``(forward_carry, backward_carry)``. A ``dropout_key``
    is split into the two directions' keys exactly as ``bidirectional`` splits it, so recurrent
    dropout draws the same masks. The two directions must have parameters of equal shapes (they
    do whenever they read the same input); otherwise this raises and ``bidirectional`` is the way.

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.cells import gru
    >>> from seqjax.recurrence import bidirectional, stacked_init
    >>> cell = gru()
    >>> (layer,) = stacked_init(cell, jax.random.key(0), 3, 4, 1, bidirectional=True)
    >>> xs, lengths = jnp.ones((2, 5, 3)), jnp.array([5, 2])
    >>> ys = bidirectional_one_loop(cell, layer, xs, seq_lengths=lengths)
    >>> ys.shape, bool(jnp.allclose(ys, bidirectional(cell, layer, xs, seq_lengths=lengths), atol=1e-6))
    ((2, 5, 8), True)
    """
    _checks.choice("merge", merge, MERGES)
    if not (isinstance(params, dict) and set(params) == {"forward", "backward"}):
        raise ValueError(
            "params for a bidirectional layer must be {'forward': ..., 'backward': ...}; "
            f"got keys {sorted(params) if isinstance(params, dict) else type(params).__name__}."
        )
    for name in ("reverse", "keep_order"):
        if name in rnn_kwargs:
            raise ValueError(f"{name} cannot be given to a bidirectional layer (it runs both directions); got {name}={rnn_kwargs[name]!r}.")
    if not same_shapes(params["forward"], params["backward"]):
        raise ValueError(
            "bidirectional_one_loop needs the forward and backward parameters to have equal shapes "
            f"(got {jax.tree.map(jnp.shape, params['forward'])} and "
            f"{jax.tree.map(jnp.shape, params['backward'])}); use bidirectional()."
        )
    xs = _checks.floating_array("xs", xs, ndim=3, layout="[batch, time, features]")
    batch, time, _ = xs.shape
    if seq_lengths is not None:
        seq_lengths = _checks.seq_lengths("seq_lengths", seq_lengths, batch=batch, time=time)
    key = rnn_kwargs.pop("dropout_key", None)
    keys = None if key is None else jax.random.split(key)  # (key_f, key_b), as bidirectional()

    carries = None
    if initial_carry is not None:
        carry_f, carry_b = initial_carry
        if carry_f is not None or carry_b is not None:
            dtype = jnp.dtype(rnn_kwargs.get("dtype") or xs.dtype)

            def zeros():
                zero = cell.zero_carry(cast(params["forward"], dtype), dtype)
                return jax.tree.map(lambda z: jnp.broadcast_to(z, (batch, *z.shape)), zero)

            pair = [zeros() if c is None else c for c in (carry_f, carry_b)]
            for c, p in zip(pair, (params["forward"], params["backward"])):
                _check_carry(cell, p, c, batch)
            carries = _stack([jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype), c) for c in pair])

    both = jnp.stack([xs, reverse_prefixes(xs, seq_lengths)])  # [2, b, t, d]

    def one(p, x, c, k):
        return rnn(cell, p, x, seq_lengths=seq_lengths, initial_carry=c, dropout_key=k,
                   return_carry=True, **rnn_kwargs)

    carry, ys = jax.vmap(one, in_axes=(0, 0, None if carries is None else 0, None if keys is None else 0))(
        _stack([params["forward"], params["backward"]]), both, carries, keys
    )
    carry_f, carry_b = _unstack(carry, 2)
    ys_f, ys_b = ys[0], reverse_prefixes(ys[1], seq_lengths)
    ys = jnp.concatenate([ys_f, ys_b], axis=-1) if merge == "concat" else ys_f + ys_b
    return ((carry_f, carry_b), ys) if return_carry else ys


def _groups(layers: Sequence) -> list[list[int]]:
    """Consecutive runs of layers with parameters of equal shapes (one batched product each)."""
    groups = [[0]]
    for index in range(1, len(layers)):
        if same_shapes(layers[groups[-1][-1]], layers[index]):
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def wavefront_stack(
    cell: Cell,
    layers: Sequence,
    xs: jax.Array,
    *,
    seq_lengths: jax.Array | None = None,
    initial_carry: Sequence | None = None,
    return_carry: bool = False,
    dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
    recurrent_dropout_rate: float = 0.0,
    residual: bool = False,
    unroll: int = 1,
    dtype: Any = None,
    fused: bool = True,
    parallel: bool = False,
):
    """A unidirectional stack as one scan of ``T + L - 1`` diagonal steps (see the module docstring).

    Same arguments, outputs (``[b, t, h_last]``), per-layer final carries and derivatives as
    :func:`seqjax.recurrence.stacked` with unidirectional layers:
    ``x_{l+1} = dropout(layer_l(x_l) [+ x_l if residual])`` (no dropout after the last layer),
    the dropout masks and recurrent-dropout masks drawn from ``dropout_key`` exactly as there.
    ``fused`` is accepted for symmetry and changes nothing; ``parallel=True`` is refused (an
    associative scan needs a layer's whole input at once: use ``schedule="layered"``).

    Diagonal step ``s``, layer ``l`` at time ``t = s - l``, ``valid = 0 <= t < length``::

        carry_l, y   = step_l(carry_l, in_l)          # in_0 = x_s, in_l = out_{l-1} from step s-1
        carry_l      = valid ? carry_l : old carry_l
        out_l        = dropout_mask_l[t] * (valid ? y : 0) [+ in_l]

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.cells import lstm
    >>> from seqjax.recurrence import stacked, stacked_init
    >>> cell = lstm()
    >>> layers = stacked_init(cell, jax.random.key(0), 3, 4, 3)
    >>> xs, lengths = jnp.ones((2, 5, 3)), jnp.array([5, 2])
    >>> ys = wavefront_stack(cell, layers, xs, seq_lengths=lengths)
    >>> ys.shape, bool(jnp.allclose(ys, stacked(cell, layers, xs, seq_lengths=lengths, schedule="layered"), atol=1e-6))
    ((2, 5, 4), True)
    """
    _checks.probability("dropout_rate", dropout_rate)
    _checks.probability("recurrent_dropout_rate", recurrent_dropout_rate)
    if not len(layers):
        raise ValueError("layers must hold at least one layer's parameters; got an empty list.")
    if any(isinstance(p, dict) and set(p) == {"forward", "backward"} for p in layers):
        raise ValueError("wavefront_stack runs unidirectional layers only; got a bidirectional layer "
                         "(its backward direction needs the previous layer's whole output).")
    if parallel:
        raise ValueError("wavefront_stack cannot use parallel=True (an associative scan reads a layer's "
                         "whole input at once); use stacked(..., schedule='layered').")
    if initial_carry is not None and len(initial_carry) != len(layers):
        raise ValueError(
            f"initial_carry must hold one carry per layer ({len(layers)}); got {len(initial_carry)}."
        )
    xs = _checks.floating_array("xs", xs, ndim=3, layout="[batch, time, features]")
    batch, time, _ = xs.shape
    num = len(layers)
    if seq_lengths is not None:
        seq_lengths = _checks.seq_lengths("seq_lengths", seq_lengths, batch=batch, time=time)
    dtype = jnp.dtype(dtype or xs.dtype)
    xs = zero_padding(xs.astype(dtype), seq_lengths)
    layers = [cast(p, dtype) for p in layers]

    # Shapes: each layer's input width must be the previous output width (as chaining rnn checks).
    widths = []
    width_in = xs.shape[-1]
    for index, p in enumerate(layers):
        expected = (cell.step_input_features or input_features)(p)
        if expected != width_in:
            name = "xs" if index == 0 else f"layer {index - 1}'s output"
            raise ValueError(
                f"{name} has {width_in} features on its last axis, but layer {index}'s parameters "
                f"expect {expected}."
            )
        zero = cell.zero_carry(p, dtype)
        y = jax.eval_shape(cell.step, p, zero, jax.ShapeDtypeStruct((width_in,), dtype))[1]
        if residual and y.shape[-1] != width_in:
            raise ValueError(
                f"residual=True needs layer {index}'s output width ({y.shape[-1]}) to equal "
                f"its input width ({width_in})."
            )
        widths.append(y.shape[-1])
        width_in = y.shape[-1]

    # Keys exactly as the layered path: one per layer, each split into (between-layer, recurrent).
    keys = [None] * num if dropout_key is None else list(jax.random.split(dropout_key, num))
    sub = [(None, None) if k is None else tuple(jax.random.split(k)) for k in keys]

    carries = []
    for index, p in enumerate(layers):
        if initial_carry is None:
            zero = cell.zero_carry(p, dtype)
            carries.append(jax.tree.map(lambda z: jnp.broadcast_to(z, (batch, *z.shape)), zero))
        else:
            _check_carry(cell, p, initial_carry[index], batch)
            carries.append(jax.tree.map(lambda c: jnp.asarray(c, dtype), initial_carry[index]))

    use_rec = bool(recurrent_dropout_rate) and dropout_key is not None
    param_axes = []
    for index, p in enumerate(layers):
        axes = {k: None for k in p}
        if use_rec:
            layers[index] = p | {RECURRENT_DROPOUT_MASK: _recurrent_mask(cell, p, recurrent_dropout_rate, sub[index][1], batch)}
            axes[RECURRENT_DROPOUT_MASK] = 0
        param_axes.append(axes)

    steps = time + num - 1
    diag = jnp.arange(steps)[:, None]  # [S, 1]
    lengths = jnp.full((batch,), time, jnp.int32) if seq_lengths is None else seq_lengths

    def valid_for(index):  # [S, b]: layer `index` handles time s - index at step s
        t = diag - index
        return (t >= 0) & (t < lengths[None, :])

    # Between-layer dropout: the mask dropout() would draw for the whole [b, t, w] output,
    # time-major and shifted so that step s reads layer l's time s - l; applied as dropout()
    # applies it (where(keep, y / (1 - rate), 0)), with divisor 1 and keep True for the last layer.
    use_drop = bool(dropout_rate) and dropout_key is not None
    keeps, divisors = [], []
    for index in range(num):
        if use_drop and index < num - 1:
            keep = jax.random.bernoulli(sub[index][0], 1.0 - dropout_rate, (batch, time, widths[index]))
            keeps.append(jnp.pad(keep.swapaxes(0, 1), ((index, num - 1 - index), (0, 0), (0, 0))))
            divisors.append(1.0 - dropout_rate)
        else:
            keeps.append(None)
            divisors.append(1.0)

    groups = _groups(layers)
    g_params = [_stack([layers[i] for i in g]) for g in groups]
    g_carries = [_stack([carries[i] for i in g]) for g in groups]
    g_valid = [jnp.stack([valid_for(i) for i in g], axis=1) for g in groups]  # [S, G, b]
    g_keep, g_div = [], []
    for g in groups:
        if all(keeps[i] is None for i in g):
            g_keep.append(None)
            g_div.append(None)
        else:
            ones = jnp.ones((steps, batch, widths[g[0]]), bool)
            g_keep.append(jnp.stack([ones if keeps[i] is None else keeps[i] for i in g], axis=1))
            g_div.append(jnp.asarray([divisors[i] for i in g], dtype)[:, None, None])  # [G, 1, 1]

    def group_step(gi):
        axes = param_axes[groups[gi][0]]
        one_layer = lambda p, c, x: jax.vmap(cell.step, in_axes=(axes, 0, 0))(p, c, x)  # noqa: E731
        return jax.vmap(one_layer)

    g_step = [group_step(gi) for gi in range(len(groups))]

    xs_tm = jnp.pad(xs.swapaxes(0, 1), ((0, num - 1), (0, 0), (0, 0)))  # [S, b, d]
    outs0 = [jnp.zeros((len(g), batch, widths[g[0]]), dtype) for g in groups]

    def body(state, inputs):
        g_carry, g_out = state
        x, valids, keep_s = inputs
        new_carry, new_out = [], []
        for gi, g in enumerate(groups):
            prev = x[None] if g[0] == 0 else g_out[gi - 1][-1:]
            ins = prev if len(g) == 1 else jnp.concatenate([prev, g_out[gi][:-1]], axis=0)  # [G, b, w]
            carry, y = g_step[gi](g_params[gi], g_carry[gi], ins)
            v = valids[gi]  # [G, b]
            carry = jax.tree.map(
                lambda new, old: jnp.where(v.reshape(*v.shape, *(1,) * (new.ndim - 2)), new, old),
                carry, g_carry[gi])
            y = jnp.where(v[..., None], y, jnp.zeros_like(y))
            if residual:
                y = y + ins
            if keep_s[gi] is not None:
                y = jnp.where(keep_s[gi], y / g_div[gi], jnp.zeros_like(y))
            new_carry.append(carry)
            new_out.append(y)
        return (new_carry, new_out), new_out[-1][-1]

    (g_carry, _), ys = jax.lax.scan(body, (g_carries, outs0), (xs_tm, g_valid, g_keep), unroll=unroll)
    ys = ys[num - 1:].swapaxes(0, 1)  # the last layer at times 0..T-1
    if not return_carry:
        return ys
    final = []
    for g, c in zip(groups, g_carry):
        final.extend(_unstack(c, len(g)))
    return final, ys
