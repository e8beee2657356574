"""Independent references for the sequence-engine tests.

The references never call the engine: each sequence is run alone, unpadded, by a plain Python
loop over ``cell.step`` (the cell contract), and the padded batch result is assembled by hand.
Engine calls go through module-level ``jax.jit`` wrappers so that tests with the same shapes and
options share one compilation (eager ``rnn`` re-traces its scan on every call).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.cells import elman, gru, gru_cho, lstm, min_gru, min_lstm
from seqjax.recurrence import bidirectional, rnn, stacked, truncated_bptt

# Shape alphabet used throughout: B batch, T time, D input features, H hidden features.
B, T, D, H = 4, 8, 3, 5
LENGTHS = np.array([8, 5, 1, 0], np.int32)  # full, partial, one step, empty

CELLS = {
    "elman": elman(),
    "lstm": lstm(),
    "gru": gru(),
    "gru_cho": gru_cho(),
    "min_gru": min_gru(),
    "min_lstm": min_lstm(),
}
ALL = list(CELLS)
CORE = ["elman", "lstm", "gru", "min_gru"]
LINEAR = ["min_gru", "min_lstm"]
RECURRENT = ["elman", "lstm", "gru", "gru_cho"]  # cells with a recurrent matrix w_h



def _concrete(fn):
    """Return numpy results outside of tracing, so that the tests' indexing and arithmetic on
    them do not compile one small XLA program per eager operation."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        out = fn(*args, **kwargs)
        if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(out)):
            return out
        return jax.tree.map(np.asarray, out)

    return wrapped


RNN_STATIC = ("return_carry", "reverse", "keep_order", "unroll", "parallel", "dtype",
              "recurrent_dropout_rate")
jrnn = _concrete(jax.jit(rnn, static_argnums=0, static_argnames=RNN_STATIC))
jbidirectional = _concrete(jax.jit(
    bidirectional, static_argnums=0,
    static_argnames=("return_carry", "merge", "unroll", "parallel", "recurrent_dropout_rate"),
))
jstacked = _concrete(jax.jit(
    stacked, static_argnums=0,
    static_argnames=("return_carry", "dropout_rate", "recurrent_dropout_rate", "residual", "merge",
                     "unroll", "parallel"),
))
jtbptt = _concrete(jax.jit(
    truncated_bptt, static_argnums=(0, 3),
    static_argnames=("return_carry", "unroll", "parallel", "dtype", "recurrent_dropout_rate"),
))


@functools.cache
def setup(name: str, d: int = D, h: int = H, seed: int = 0):
    """``(cell, params)`` as numpy arrays; LSTM biases (zero but for the forget gate at init)
    are perturbed so that no gate sits at a symmetric point."""
    cell = CELLS[name]
    # One jitted init instead of a dozen eagerly compiled random ops.
    params = jax.jit(cell.init, static_argnums=(1, 2))(jax.random.key(seed), d, h)
    params = {k: np.asarray(v) for k, v in params.items()}
    if name == "lstm":
        rng = np.random.default_rng(seed + 99)
        noise = 0.3 * rng.standard_normal(params["b"].shape)
        params["b"] = (params["b"] + noise).astype(np.float32)
    return cell, params


def hidden_size(cell, params) -> int:
    return jax.tree.leaves(cell.zero_carry(params, jnp.float32))[0].shape[-1]


def inputs(seed: int = 1, b: int = B, t: int = T, d: int = D) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((b, t, d)).astype(np.float32)


def with_garbage(xs, lengths, seed: int = 7, scale: float = 50.0):
    """``xs`` with every step at or beyond its sequence's length replaced by large random values."""
    xs = np.array(xs, np.float32)
    noise = scale * np.random.default_rng(seed).standard_normal(xs.shape) + 3.0
    for i, n in enumerate(np.asarray(lengths)):
        xs[i, n:] = noise[i, n:]
    return xs


def random_carry(cell, params, b: int = B, seed: int = 3, scale: float = 0.8):
    leaves, tree = jax.tree.flatten(cell.zero_carry(params, jnp.float32))
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(
        tree, [(scale * rng.standard_normal((b, *z.shape))).astype(np.float32) for z in leaves]
    )


@functools.cache
def _jit_step(cell):
    return jax.jit(cell.step)


def loop(cell, params, xs, carry):
    """A plain Python loop of ``cell.step`` over one unbatched sequence ``xs`` ``[t, d]``."""
    step = _jit_step(cell)
    ys = []
    for x in np.asarray(xs):
        carry, y = step(params, carry, x)
        ys.append(np.asarray(y))
    h = hidden_size(cell, {k: v for k, v in params.items() if k != "recurrent_dropout_mask"})
    return jax.tree.map(np.asarray, carry), (np.stack(ys) if ys else np.zeros((0, h), np.float32))


def carry_at(carry, i):
    return jax.tree.map(lambda c: c[i], carry)


def stack_trees(trees):
    return jax.tree.map(lambda *xs: np.stack(xs), *trees)


def reference(cell, params, xs, lengths=None, *, initial_carry=None, reverse=False,
              keep_order=False, masks=None):
    """Engine-free ``rnn``: every sequence alone, only its valid prefix, by :func:`loop`.

    ``reverse`` reads the prefix backwards; outputs are placed in processing order unless
    ``keep_order``; padded outputs are zero. ``masks`` ``[b, h]`` are recurrent-dropout masks
    handed to the cell through its documented ``recurrent_dropout_mask`` parameter.
    """
    xs = np.asarray(xs)
    b, t, _ = xs.shape
    h = hidden_size(cell, params)
    carries, outs = [], []
    for i in range(b):
        n = t if lengths is None else int(lengths[i])
        c0 = (cell.zero_carry(params, jnp.float32) if initial_carry is None
              else jax.tree.map(lambda c: np.asarray(c)[i], initial_carry))
        p = params if masks is None else params | {"recurrent_dropout_mask": masks[i]}
        x = xs[i, :n]
        if reverse:
            x = x[::-1]
        c, y = loop(cell, p, x, c0)
        if reverse and keep_order:
            y = y[::-1]
        out = np.zeros((t, h), np.float32)
        out[:n] = y
        outs.append(out)
        carries.append(c)
    return stack_trees(carries), np.stack(outs)


def assert_padding_zero(ys, lengths):
    """Outputs at padded steps are exactly zero (not merely close)."""
    ys = np.asarray(ys)
    for i, n in enumerate(np.asarray(lengths)):
        assert np.all(ys[i, n:] == 0.0), f"sequence {i}: nonzero output in padding after step {n}"


def zero_carry(cell, params, b: int = B):
    return jax.tree.map(lambda z: np.zeros((b, *z.shape), np.float32),
                        cell.zero_carry(params, jnp.float32))


def run(cell, params, xs, lengths=None, init=None, **static):
    """``jrnn`` with ``seq_lengths``, ``initial_carry`` and ``return_carry=True`` always given, so
    that tests differing only in their values share one compilation. Returns ``(carry, ys)``."""
    b, t = xs.shape[:2]
    lengths = np.full(b, t, np.int32) if lengths is None else np.asarray(lengths, np.int32)
    init = zero_carry(cell, params, b) if init is None else init
    return jrnn(cell, params, xs, seq_lengths=lengths, initial_carry=init, return_carry=True,
                **static)
