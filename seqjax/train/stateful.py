"""Stateful truncated BPTT for recurrent language models: the carry crosses windows, gradients do not.

The token stream is cut into ``batch`` contiguous streams and windows of ``k`` tokens
(:func:`seqjax.data.stream_batches`); the recurrent state at the end of window ``i`` starts
window ``i + 1`` through :func:`jax.lax.stop_gradient`. The forward pass so sees each stream
unbroken while each gradient stays inside one window (Williams & Peng 1990's truncated BPTT;
the "stateful" training of Keras and of Merity et al. 2018's AWD-LSTM).

Every function takes the model as ``forward(params, tokens [b, k], carry) -> (carry, logits
[b, k, V])``, so any recurrent language model fits (embedding, cell, readout: tied or not).

Example::

    >>> import jax, jax.numpy as jnp, numpy as np, optax
    >>> from seqjax.data import stream_batches
    >>> def forward(params, tokens, carry):            # a toy "RNN": a running sum of embeddings
    ...     xs = params["embed"][tokens]
    ...     def step(c, x):
    ...         c = 0.5 * c + x
    ...         return c, c @ params["out"]
    ...     carry, logits = jax.lax.scan(step, carry, jnp.swapaxes(xs, 0, 1))
    ...     return carry, jnp.swapaxes(logits, 0, 1)
    >>> params = {"embed": jnp.eye(5), "out": jnp.zeros((5, 5))}
    >>> train = make_stateful_trainer(forward, optax.sgd(0.5))
    >>> windows = stream_batches(np.arange(200) % 5, batch=2, window=10)
    >>> xs, ys = (np.stack(a) for a in zip(*windows))
    >>> params, _, losses, carry = train(params, optax.sgd(0.5).init(params), xs, ys, jnp.zeros((2, 5)))
    >>> bool(losses[-1] < losses[0])
    True
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqjax.train.losses import cross_entropy
from seqjax.train.step import make_train_step

__all__ = ["evaluate_stream", "make_stateful_trainer", "window_loss"]

Forward = Callable[[Any, jax.Array, Any], tuple[Any, jax.Array]]


def window_loss(forward: Forward, reduction: str = "mean"):
    """``loss_fn(params, batch, key) -> (loss, {"carry": carry after the window})`` for
    ``make_train_step``/``make_eval_step``, with ``batch = {"x", "y", "carry"}`` and optionally a
    boolean ``"mask"`` (False: a padded position, not scored). The incoming carry is cut from the
    previous window's graph (:func:`jax.lax.stop_gradient`), the outgoing one returned as aux."""

    def loss_fn(params, batch, key):
        del key
        carry = jax.lax.stop_gradient(batch["carry"])
        carry, logits = forward(params, batch["x"], carry)
        loss = cross_entropy(logits, batch["y"], mask=batch.get("mask"), reduction=reduction)
        return loss, {"carry": jax.lax.stop_gradient(carry)}

    return loss_fn


def make_stateful_trainer(forward: Forward, optimizer: optax.GradientTransformation):
    """``train(params, opt_state, xs, ys, carry) -> (params, opt_state, losses, carry)``: one
    update per window of ``xs``/``ys`` ``[n, b, k]``, the carry passed from each window to the
    next, all ``n`` steps in one jitted :func:`jax.lax.scan` (one dispatch per call, not per
    window: for small models the per-call overhead dominates).

    Each update is :func:`seqjax.train.make_train_step`'s step. ``accumulate`` stays 1 because the
    carry rides in ``aux``, which accumulation would average over micro-batches.
    """
    train_step = make_train_step(window_loss(forward), optimizer, has_aux=True)

    def one(state, window):
        params, opt_state, carry = state
        x, y = window
        params, opt_state, metrics = train_step.jitted(params, opt_state, {"x": x, "y": y, "carry": carry}, None)
        return (params, opt_state, metrics["carry"]), metrics["loss"]

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train(params, opt_state, xs, ys, carry):
        (params, opt_state, carry), losses = jax.lax.scan(one, (params, opt_state, carry), (xs, ys))
        return params, opt_state, losses, carry

    return train


def evaluate_stream(eval_step, params: Any, windows, carry: Any) -> float:
    """Mean cross-entropy (nats per scored token) over every window of ``windows`` (a
    :class:`seqjax.data.StreamBatches`), the state carried through each stream from ``carry``.

    ``eval_step`` is ``make_eval_step(window_loss(forward, reduction="sum"), has_aux=True)``. A
    shorter last window is padded to the full width and masked, so it compiles for one shape.
    """
    total = 0.0
    for x, y in windows:
        valid = x.shape[1]
        pad = ((0, 0), (0, windows.window - valid))
        batch = {
            "x": jnp.asarray(np.pad(x, pad)),
            "y": jnp.asarray(np.pad(y, pad)),
            "mask": jnp.asarray(np.arange(windows.window) < valid)[None, :].repeat(windows.batch, 0),
            "carry": carry,
        }
        out = eval_step(params, batch)
        total += float(out["loss"])
        carry = out["carry"]
    return total / windows.num_tokens
