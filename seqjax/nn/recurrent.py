"""Flax NNX modules around the recurrent core: they own parameters and call the pure functions.

Each layer stores its cell's parameters as ``nnx.Param`` attributes named as in the cell's
documented layout (``w_i``, ``w_h``, ``b``, ...), so ``nnx.split(model, nnx.Param)`` yields exactly
the pytree that :func:`seqjax.recurrence.rnn` takes. The forward pass mutates nothing; dropout
keys are passed in explicitly, so a module works under plain ``jax.jit`` / ``jax.grad`` after
``nnx.split`` / ``nnx.merge``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from seqjax.nn import LSTM, Bidirectional
    >>> layer = Bidirectional(LSTM(4, 8, rngs=nnx.Rngs(0)), LSTM(4, 8, rngs=nnx.Rngs(1)))
    >>> layer(jnp.ones((2, 5, 4)), seq_lengths=jnp.array([5, 2])).shape
    (2, 5, 16)
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
from flax import nnx

from seqjax import _checks
from seqjax.cells import Cell, elman, gru, gru_cho, lstm, min_gru, min_lstm
from seqjax.recurrence import bidirectional, rnn, stacked


class RecurrentLayer(nnx.Module):
    """One recurrent layer: any :class:`seqjax.cells.Cell` scanned by :func:`seqjax.recurrence.rnn`.

    Options fixed at construction (Flax's vocabulary): ``reverse``, ``keep_order``,
    ``return_carry``, ``unroll``, ``parallel`` (linear cells), ``dtype`` (computation dtype;
    parameters stay float32) and ``recurrent_dropout`` (active only when a ``dropout_key`` is given).
    """

    def __init__(
        self,
        cell: Cell,
        in_features: int,
        hidden_features: int,
        *,
        rngs: nnx.Rngs,
        reverse: bool = False,
        keep_order: bool = False,
        return_carry: bool = False,
        unroll: int = 1,
        parallel: bool = False,
        dtype: Any = None,
        recurrent_dropout: float = 0.0,
    ):
        _checks.positive_int("in_features", in_features)
        _checks.positive_int("hidden_features", hidden_features)
        _checks.probability("recurrent_dropout", recurrent_dropout)
        self.cell = cell
        self.in_features, self.hidden_features = in_features, hidden_features
        self.options = dict(
            reverse=reverse, keep_order=keep_order, unroll=unroll, parallel=parallel, dtype=dtype,
            recurrent_dropout=recurrent_dropout,
        )
        self.return_carry = return_carry
        params = cell.init(rngs.params(), in_features, hidden_features)
        self.param_names = tuple(params)
        for name, value in params.items():
            setattr(self, name, nnx.Param(value))

    def cell_params(self) -> dict[str, jax.Array]:
        """The parameters as the plain dict the pure functions take."""
        return {name: getattr(self, name)[...] for name in self.param_names}

    def __call__(
        self,
        xs: jax.Array,
        *,
        seq_lengths: jax.Array | None = None,
        initial_carry: Any = None,
        dropout_key: jax.Array | None = None,
    ):
        """``xs`` ``[b, t, d]`` -> ``ys`` ``[b, t, h]`` (or ``(carry, ys)`` with ``return_carry``)."""
        return rnn(
            self.cell, self.cell_params(), xs, seq_lengths=seq_lengths,
            initial_carry=initial_carry, return_carry=self.return_carry, dropout_key=dropout_key,
            **self.options,
        )


class RNN(RecurrentLayer):
    """Elman RNN layer, ``h_t = phi(x_t W_i + h_{t-1} W_h + b)``; ``activation`` "tanh" or "relu"."""

    def __init__(self, in_features, hidden_features, *, rngs, activation: str = "tanh", **options):
        super().__init__(elman(activation), in_features, hidden_features, rngs=rngs, **options)


class LSTM(RecurrentLayer):
    """LSTM layer with fused gates; ``forget_bias``, ``peephole`` and ``layer_norm`` as in
    :func:`seqjax.cells.lstm`."""

    def __init__(
        self, in_features, hidden_features, *, rngs, forget_bias: float = 1.0,
        peephole: bool = False, layer_norm: bool = False, **options,
    ):
        cell = lstm(forget_bias=forget_bias, peephole=peephole, layer_norm=layer_norm)
        super().__init__(cell, in_features, hidden_features, rngs=rngs, **options)


GRU_CONVENTIONS = {"reset_after": gru, "reset_before": gru_cho}


class GRU(RecurrentLayer):
    """GRU layer; ``convention`` "reset_after" (PyTorch/Flax) or "reset_before" (Cho et al. 2014)."""

    def __init__(self, in_features, hidden_features, *, rngs, convention: str = "reset_after", **options):
        _checks.choice("convention", convention, tuple(GRU_CONVENTIONS))
        cell = GRU_CONVENTIONS[convention]()
        super().__init__(cell, in_features, hidden_features, rngs=rngs, **options)


class MinGRU(RecurrentLayer):
    """minGRU layer (Feng et al. 2024); ``parallel=True`` uses the associative scan."""

    def __init__(self, in_features, hidden_features, *, rngs, **options):
        super().__init__(min_gru(), in_features, hidden_features, rngs=rngs, **options)


class MinLSTM(RecurrentLayer):
    """minLSTM layer (Feng et al. 2024); ``parallel=True`` uses the associative scan."""

    def __init__(self, in_features, hidden_features, *, rngs, **options):
        super().__init__(min_lstm(), in_features, hidden_features, rngs=rngs, **options)


class Bidirectional(nnx.Module):
    """Two layers of the same cell, one reading forwards and one backwards, merged per step
    (``"concat"``: ``[b, t, 2h]``, forward first; ``"sum"``: ``[b, t, h]``), as Flax's
    ``Bidirectional``. The carry is ``(forward_carry, backward_carry)``."""

    def __init__(
        self, forward: RecurrentLayer, backward: RecurrentLayer, *, merge: str = "concat",
        return_carry: bool = False,
    ):
        _checks.choice("merge", merge, ("concat", "sum"))
        if forward.cell.name != backward.cell.name:
            raise ValueError(
                f"forward and backward must use the same cell; got {forward.cell.name!r} and "
                f"{backward.cell.name!r}."
            )
        self.forward, self.backward = forward, backward
        self.merge, self.return_carry = merge, return_carry
        self.cell = forward.cell
        self.hidden_features = forward.hidden_features * (2 if merge == "concat" else 1)

    def cell_params(self) -> dict[str, dict[str, jax.Array]]:
        return {"forward": self.forward.cell_params(), "backward": self.backward.cell_params()}

    def __call__(self, xs, *, seq_lengths=None, initial_carry=None, dropout_key=None):
        options = {k: v for k, v in self.forward.options.items() if k not in ("reverse", "keep_order")}
        return bidirectional(
            self.cell, self.cell_params(), xs, seq_lengths=seq_lengths,
            initial_carry=initial_carry, return_carry=self.return_carry, merge=self.merge,
            dropout_key=dropout_key, **options,
        )


class Stacked(nnx.Module):
    """Layers of one cell type run in sequence (:func:`seqjax.recurrence.stacked`): ``dropout``
    between layers (needs ``dropout_key`` at call time), optional ``residual`` connections.
    The carry (with ``return_carry``) is a list, one per layer."""

    def __init__(
        self, layers: Sequence[RecurrentLayer | Bidirectional], *, dropout: float = 0.0,
        residual: bool = False, return_carry: bool = False,
    ):
        if not layers:
            raise ValueError("layers must hold at least one layer; got an empty sequence.")
        names = {layer.cell.name for layer in layers}
        if len(names) != 1:
            raise ValueError(f"all layers must use the same cell; got {sorted(names)}.")
        merges = {layer.merge for layer in layers if isinstance(layer, Bidirectional)}
        if len(merges) > 1:
            raise ValueError(f"bidirectional layers must share one merge mode; got {sorted(merges)}.")
        _checks.probability("dropout", dropout)
        self.layers = nnx.List(layers)
        self.merge = merges.pop() if merges else "concat"
        self.dropout, self.residual, self.return_carry = dropout, residual, return_carry

    def __call__(self, xs, *, seq_lengths=None, initial_carry=None, dropout_key=None):
        first = self.layers[0]
        base = first.forward if isinstance(first, Bidirectional) else first
        options = {k: v for k, v in base.options.items() if k not in ("reverse", "keep_order")}
        return stacked(
            base.cell, [layer.cell_params() for layer in self.layers], xs,
            seq_lengths=seq_lengths, initial_carry=initial_carry, return_carry=self.return_carry,
            dropout=self.dropout, dropout_key=dropout_key, residual=self.residual,
            merge=self.merge, **options,
        )
