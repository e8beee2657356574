"""Bidirectional and stacked recurrent layers built on :func:`seqjax.recurrence.rnn`.

A layer's parameters are either one cell's params (unidirectional) or
``{"forward": params, "backward": params}`` (bidirectional); a stack is a list of layers. This is
the layout :mod:`seqjax.interop.torch` produces for multi-layer, bidirectional PyTorch modules.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.cells.base import Cell, Params
from seqjax.primitives import dropout
from seqjax.recurrence.scan import rnn, zero_padding
from seqjax.recurrence.wavefront import WAVEFRONT_OPTIONS, bidirectional_one_loop, same_shapes, wavefront_stack

MERGES = ("concat", "sum")
SCHEDULES = ("auto", "layered", "wavefront")


def is_bidirectional(layer_params) -> bool:
    return isinstance(layer_params, dict) and set(layer_params) == {"forward", "backward"}


def bidirectional(
    cell: Cell,
    params: dict[str, Params],
    xs: jax.Array,
    *,
    seq_lengths: jax.Array | None = None,
    initial_carry: tuple[Any, Any] | None = None,
    return_carry: bool = False,
    merge: str = "concat",
    schedule: str = "auto",
    **rnn_kwargs,
):
    """Run ``params["forward"]`` forwards and ``params["backward"]`` backwards over ``xs``.

    Outputs are aligned in time and merged: ``"concat"`` gives ``[b, t, 2h]`` (forward features
    first, as PyTorch and Flax's ``Bidirectional``), ``"sum"`` gives ``[b, t, h]``. The carry is
    the pair ``(forward_carry, backward_carry)``; the backward carry is the state after reading
    ``x_0``. ``rnn_kwargs`` (``unroll``, ``dtype``, ``parallel``, recurrent dropout...) go to both
    directions; a ``dropout_key`` is split between them.

    ``schedule``: ``"layered"`` runs the two directions as two loops (the reference);
    ``"wavefront"`` runs them in one loop with batched products
    (:func:`seqjax.recurrence.wavefront.bidirectional_one_loop`: same values and derivatives);
    ``"auto"`` (default) takes the one loop where :func:`stacked` would (see there).
    """
    _checks.choice("merge", merge, MERGES)
    _checks.choice("schedule", schedule, SCHEDULES)
    if not is_bidirectional(params):
        raise ValueError(
            "params for a bidirectional layer must be {'forward': ..., 'backward': ...}; "
            f"got keys {sorted(params) if isinstance(params, dict) else type(params).__name__}."
        )
    if _one_loop(schedule, params, rnn_kwargs):
        return bidirectional_one_loop(
            cell, params, xs, seq_lengths=seq_lengths, initial_carry=initial_carry,
            return_carry=return_carry, merge=merge, **rnn_kwargs,
        )
    carry_f, carry_b = (None, None) if initial_carry is None else initial_carry
    key = rnn_kwargs.pop("dropout_key", None)
    key_f, key_b = (None, None) if key is None else jax.random.split(key)
    common = dict(seq_lengths=seq_lengths, return_carry=True, **rnn_kwargs)
    carry_f, ys_f = rnn(cell, params["forward"], xs, initial_carry=carry_f, dropout_key=key_f, **common)
    carry_b, ys_b = rnn(
        cell, params["backward"], xs, initial_carry=carry_b, dropout_key=key_b,
        reverse=True, keep_order=True, **common,
    )
    ys = jnp.concatenate([ys_f, ys_b], axis=-1) if merge == "concat" else ys_f + ys_b
    return ((carry_f, carry_b), ys) if return_carry else ys


def stacked_init(
    cell: Cell,
    key: jax.Array,
    in_features: int,
    hidden_features: int,
    num_layers: int,
    *,
    bidirectional: bool = False,
    merge: str = "concat",
) -> list:
    """Parameters for ``num_layers`` layers; layer ``l > 0`` reads the previous layer's output."""
    _checks.positive_int("num_layers", num_layers)
    _checks.choice("merge", merge, MERGES)
    width = 2 * hidden_features if bidirectional and merge == "concat" else hidden_features
    layers = []
    for layer, layer_key in enumerate(jax.random.split(key, num_layers)):
        d = in_features if layer == 0 else width
        if bidirectional:
            k_f, k_b = jax.random.split(layer_key)
            layers.append({"forward": cell.init(k_f, d, hidden_features),
                           "backward": cell.init(k_b, d, hidden_features)})
        else:
            layers.append(cell.init(layer_key, d, hidden_features))
    return layers


def stacked(
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
    merge: str = "concat",
    schedule: str = "auto",
    **rnn_kwargs,
):
    """Run a stack of (optionally bidirectional) layers.

    ``dropout_rate`` is applied to every layer's output except the last (PyTorch's ``dropout=``),
    with a fresh mask per element; ``recurrent_dropout_rate`` inside each layer (one mask per
    sequence). Both need ``dropout_key``; without a key (evaluation) there is no dropout.
    ``residual=True`` adds each layer's input to its output where their widths match
    (``x_{l+1} = layer_l(x_l) + x_l``); a width mismatch raises. The carry is a list, one per
    layer.

    ``schedule`` says how the loops are ordered; values, carries, random masks and derivatives
    are the same for every choice (:mod:`seqjax.recurrence.wavefront`):

    * ``"layered"``: one loop per layer and direction, layer after layer (the reference path).
    * ``"wavefront"``: a unidirectional stack runs as one scan of ``T + L - 1`` diagonal steps
      (layer ``l`` at time ``s - l``, equal-shaped layers in one batched product); a
      bidirectional layer runs its two directions in one scan (a wavefront *across*
      bidirectional layers is impossible: the backward direction of layer ``l + 1`` needs all of
      layer ``l``'s outputs). Options the wavefront cannot take (``parallel=True``, ``reverse``)
      raise.
    * ``"auto"`` (default): the schedule :data:`AUTO_SCHEDULE` names for the default backend
      (``"layered"`` where it names none), and ``"layered"`` wherever the wavefront cannot run.
      On CPU it is ``"layered"``: on the 2-core development machine (under heavy load from
      other jobs, load average 7-15, so only large differences count), forward+backward at
      B32 T128 I64 H256 gave wavefront/layered ratios of the minimum of 7 alternating calls of
      1.58 and 0.89 in two runs (2-layer bidirectional LSTM), 0.88 (bidirectional GRU), 0.73 and
      0.96 (2- and 3-layer LSTM), 1.11 (2-layer GRU): no reliable gain (a step's products keep
      both cores busy; only the loop overhead, microseconds per step, is saved), while the
      wavefront's forward+backward compiled 2-3x slower (4.8-7.8 s against 2.0-3.9 s, any T). Other backends (GPU, TPU),
      where small per-step products leave the device idle and cutting the sequential steps
      from ``L T`` to ``T + L - 1`` is cuDNN's reason for the wavefront, have not been measured,
      so they too get ``"layered"`` until an entry in :data:`AUTO_SCHEDULE` says otherwise.
    """
    _checks.probability("dropout_rate", dropout_rate)
    _checks.choice("schedule", schedule, SCHEDULES)
    if not len(layers):
        raise ValueError("layers must hold at least one layer's parameters; got an empty list.")
    if initial_carry is not None and len(initial_carry) != len(layers):
        raise ValueError(
            f"initial_carry must hold one carry per layer ({len(layers)}); got {len(initial_carry)}."
        )
    if _wavefront(schedule, layers, rnn_kwargs):
        return wavefront_stack(
            cell, layers, xs, seq_lengths=seq_lengths, initial_carry=initial_carry,
            return_carry=return_carry, dropout_rate=dropout_rate, dropout_key=dropout_key,
            recurrent_dropout_rate=recurrent_dropout_rate, residual=residual, **rnn_kwargs,
        )
    keys = (
        [None] * len(layers) if dropout_key is None else list(jax.random.split(dropout_key, len(layers)))
    )
    carries = []
    for index, (layer, key) in enumerate(zip(layers, keys)):
        drop_key, rec_key = (None, None) if key is None else jax.random.split(key)
        kwargs = dict(
            seq_lengths=seq_lengths,
            initial_carry=None if initial_carry is None else initial_carry[index],
            return_carry=True,
            recurrent_dropout_rate=recurrent_dropout_rate,
            dropout_key=rec_key,
            **rnn_kwargs,
        )
        if is_bidirectional(layer):
            carry, ys = bidirectional(cell, layer, xs, merge=merge, schedule=schedule, **kwargs)
        else:
            carry, ys = rnn(cell, layer, xs, **kwargs)
        if residual:
            if ys.shape[-1] != xs.shape[-1]:
                raise ValueError(
                    f"residual=True needs layer {index}'s output width ({ys.shape[-1]}) to equal "
                    f"its input width ({xs.shape[-1]})."
                )
            ys = ys + zero_padding(xs, seq_lengths)
        if dropout_rate and drop_key is not None and index < len(layers) - 1:
            ys = dropout(ys, dropout_rate, drop_key)
        carries.append(carry)
        xs = ys
    return (carries, xs) if return_carry else xs


# --- choosing the schedule ----------------------------------------------------------------------

# What ``schedule="auto"`` means per backend (``jax.default_backend()``); see :func:`stacked`.
# Only measured choices go here; a backend without an entry gets "layered".
AUTO_SCHEDULE = {"cpu": "layered"}


def _auto() -> bool:
    return AUTO_SCHEDULE.get(jax.default_backend(), "layered") == "wavefront"


def _one_loop(schedule: str, params: dict, rnn_kwargs: dict) -> bool:
    """Whether a bidirectional layer runs its two directions in one loop."""
    if schedule == "layered":
        return False
    able = same_shapes(params["forward"], params["backward"])
    if schedule == "wavefront":
        if not able:
            raise ValueError(
                "schedule='wavefront' needs a bidirectional layer's two directions to have parameters "
                "of equal shapes; got different ones. Use schedule='layered'."
            )
        return True
    return able and _auto()


def _wavefront(schedule: str, layers: Sequence, rnn_kwargs: dict) -> bool:
    """Whether a stack runs as one wavefront scan (unidirectional layers only)."""
    if schedule == "layered" or any(is_bidirectional(p) for p in layers):
        return False
    unsupported = sorted(set(rnn_kwargs) - WAVEFRONT_OPTIONS) + (["parallel"] if rnn_kwargs.get("parallel") else [])
    if schedule == "wavefront":
        if unsupported:
            raise ValueError(
                f"schedule='wavefront' cannot take {unsupported} (options the per-layer loops need); "
                "use schedule='layered'."
            )
        return True
    return not unsupported and len(layers) > 1 and _auto()
