"""A tiny model, loss and deterministic data stream shared by the training-core tests.

An Elman RNN (4 hidden units) reads 6 steps of the adding problem; a linear readout of the last
state predicts the sum. Small enough to compile in about a second on a loaded CPU. The loss uses
its key (input noise), so restoring PRNG keys matters in the resume tests, and batch ``i`` is a
pure function of the position ``i`` (the data position a checkpoint records).
"""

from functools import partial

import jax
import jax.numpy as jnp

from seqjax.cells import elman
from seqjax.data import adding_problem
from seqjax.recurrence import rnn
from seqjax.train.losses import mse

CELL = elman("tanh")
LENGTH = 6
HIDDEN = 4


def init(seed: int = 0) -> dict:
    """Fresh parameters (new buffers on every call: the train steps donate them)."""
    return _init(seed)


@jax.jit  # one compiled program instead of dozens of eager dispatches (slow on a loaded CPU)
def _init(seed):
    k_cell, k_out = jax.random.split(jax.random.key(seed))
    return {
        "cell": CELL.init(k_cell, 2, HIDDEN),
        "out": {"w": jax.random.normal(k_out, (HIDDEN,)) * 0.5, "b": jnp.zeros(())},
    }


def loss_fn(params, batch, key):
    xs, ys = batch
    if key is not None:  # input noise: training uses its key, evaluation passes None
        xs = xs + 0.01 * jax.random.normal(key, xs.shape, xs.dtype)
    carry, _ = rnn(CELL, params["cell"], xs, return_carry=True)
    pred = carry @ params["out"]["w"].astype(carry.dtype) + params["out"]["b"].astype(carry.dtype)
    return mse(pred, ys.astype(pred.dtype))


def mlp_init(seed: int = 0) -> dict:
    """A one-hidden-layer MLP on the flattened sequence: compiles in a fraction of the RNN's time,
    for tests of the step machinery rather than of the model."""
    return _mlp_init(seed)


@jax.jit
def _mlp_init(seed):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {
        "hidden": {"w": jax.random.normal(k1, (2 * LENGTH, 16)) / jnp.sqrt(2.0 * LENGTH), "b": jnp.zeros(16)},
        "out": {"w": jax.random.normal(k2, (16,)) / 4.0, "b": jnp.zeros(())},
    }


def mlp_loss(params, batch, key):
    xs, ys = batch
    if key is not None:
        xs = xs + 0.01 * jax.random.normal(key, xs.shape, xs.dtype)
    h = jnp.tanh(xs.reshape(xs.shape[0], -1) @ params["hidden"]["w"] + params["hidden"]["b"])
    pred = h @ params["out"]["w"] + params["out"]["b"]
    return mse(pred, ys.astype(pred.dtype))


@partial(jax.jit, static_argnames=("batch_size",))
def batch_at(position, batch_size: int = 16):
    """Batch number ``position`` of the stream: a pure function of the position."""
    return adding_problem(jax.random.fold_in(jax.random.key(1234), position), batch_size, LENGTH)
