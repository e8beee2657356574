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
    parameters stay float32) and ``recurrent_dropout_rate`` (active only when a ``dropout_key``
    is given). :class:`Bidirectional` and :class:`Stacked` run their layers with these options
    and refuse layers whose options disagree, so no option is dropped silently.
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
        recurrent_dropout_rate: float = 0.0,
    ):
        _checks.positive_int("in_features", in_features)
        _checks.positive_int("hidden_features", hidden_features)
        _checks.probability("recurrent_dropout_rate", recurrent_dropout_rate)
        self.cell = cell
        self.in_features, self.hidden_features = in_features, hidden_features
        self.options = dict(
            reverse=reverse, keep_order=keep_order, unroll=unroll, parallel=parallel, dtype=dtype,
            recurrent_dropout_rate=recurrent_dropout_rate,
        )
        self.return_carry = return_carry
        params = cell.init(rngs.params(), in_features, hidden_features)
        self.param_names = tuple(params)
        for name, value in params.items():
            setattr(self, name, nnx.Param(value))

    def pure_params(self) -> dict[str, jax.Array]:
        """The parameters as the plain dict the pure functions take (the cell's layout)."""
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
            self.cell, self.pure_params(), xs, seq_lengths=seq_lengths,
            initial_carry=initial_carry, return_carry=self.return_carry, dropout_key=dropout_key,
            **self.options,
        )


class RNN(RecurrentLayer):
    """Elman RNN layer, ``h_t = phi(x_t W_i + h_{t-1} W_h + b)``; ``activation`` "tanh" or "relu"."""

    def __init__(self, in_features, hidden_features, *, rngs, activation: str = "tanh", **options):
        super().__init__(elman(activation), in_features, hidden_features, rngs=rngs, **options)


class LSTM(RecurrentLayer):
    """LSTM layer with fused gates; ``forget_bias``, ``peephole``, ``layer_norm``,
    ``recurrent_scale`` (orthogonal recurrent blocks) and ``chrono`` (Tallec & Ollivier 2018's
    initialisation) as in :func:`seqjax.cells.lstm`."""

    def __init__(
        self, in_features, hidden_features, *, rngs, forget_bias: float = 1.0,
        peephole: bool = False, layer_norm: bool = False, recurrent_scale: float | None = None,
        chrono: float | None = None, **options,
    ):
        cell = lstm(forget_bias=forget_bias, peephole=peephole, layer_norm=layer_norm,
                    recurrent_scale=recurrent_scale, chrono=chrono)
        super().__init__(cell, in_features, hidden_features, rngs=rngs, **options)


GRU_CONVENTIONS = {"reset_after": gru, "reset_before": gru_cho}


class GRU(RecurrentLayer):
    """GRU layer; ``convention`` "reset_after" (PyTorch/Flax) or "reset_before" (Cho et al. 2014);
    ``recurrent_scale`` and ``chrono`` as in :func:`seqjax.cells.gru`."""

    def __init__(self, in_features, hidden_features, *, rngs, convention: str = "reset_after",
                 recurrent_scale: float | None = None, chrono: float | None = None, **options):
        _checks.choice("convention", convention, tuple(GRU_CONVENTIONS))
        cell = GRU_CONVENTIONS[convention](recurrent_scale=recurrent_scale, chrono=chrono)
        super().__init__(cell, in_features, hidden_features, rngs=rngs, **options)


class MinGRU(RecurrentLayer):
    """minGRU layer (Feng et al. 2024); ``parallel=True`` uses the associative scan."""

    def __init__(self, in_features, hidden_features, *, rngs, **options):
        super().__init__(min_gru(), in_features, hidden_features, rngs=rngs, **options)


class MinLSTM(RecurrentLayer):
    """minLSTM layer (Feng et al. 2024); ``parallel=True`` uses the associative scan."""

    def __init__(self, in_features, hidden_features, *, rngs, **options):
        super().__init__(min_lstm(), in_features, hidden_features, rngs=rngs, **options)


# Options a composite runs all its layers with (the direction options are the composite's own).
SHARED_OPTIONS = ("unroll", "parallel", "dtype", "recurrent_dropout_rate")


def _shared_options(layers: Sequence[RecurrentLayer], names: Sequence[str], composite: str) -> dict[str, Any]:
    """The options every layer agrees on; a ValueError naming the option and the layers that
    disagree otherwise, and for layer options the composite would ignore."""
    for name, layer in zip(names, layers):
        if not isinstance(layer, RecurrentLayer):
            raise ValueError(f"{composite}: {name} must be a seqjax.nn recurrent layer (LSTM, GRU, ...); got {type(layer).__name__}.")
        ignored = {k: layer.options[k] for k in ("reverse", "keep_order") if layer.options[k]}
        if layer.return_carry:
            ignored["return_carry"] = True
        if ignored:
            raise ValueError(
                f"{composite}: {name} was built with {ignored}, which {composite} would ignore: it "
                f"decides the direction and what is returned itself (pass return_carry to {composite}; "
                "Bidirectional reverses its backward layer)."
            )
    first = layers[0].options
    for option in SHARED_OPTIONS:
        values = [layer.options[option] for layer in layers]
        if any(v != first[option] for v in values):
            got = ", ".join(f"{n}: {v!r}" for n, v in zip(names, values))
            raise ValueError(
                f"{composite} runs all its layers with one {option}; its layers disagree ({got}). "
                "Build them with the same value."
            )
    return {k: first[k] for k in SHARED_OPTIONS}


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
        self.options = _shared_options([forward, backward], ["forward", "backward"], "Bidirectional")
        self.forward, self.backward = forward, backward
        self.merge, self.return_carry = merge, return_carry
        self.cell = forward.cell
        self.hidden_features = forward.hidden_features * (2 if merge == "concat" else 1)

    def pure_params(self) -> dict[str, dict[str, jax.Array]]:
        """``{"forward": ..., "backward": ...}``, each the cell's parameter dict."""
        return {"forward": self.forward.pure_params(), "backward": self.backward.pure_params()}

    def __call__(self, xs, *, seq_lengths=None, initial_carry=None, dropout_key=None):
        return bidirectional(
            self.cell, self.pure_params(), xs, seq_lengths=seq_lengths,
            initial_carry=initial_carry, return_carry=self.return_carry, merge=self.merge,
            dropout_key=dropout_key, **self.options,
        )


class Stacked(nnx.Module):
    """Layers of one cell type run in sequence (:func:`seqjax.recurrence.stacked`):
    ``dropout_rate`` between layers (needs ``dropout_key`` at call time), optional ``residual``
    connections. The carry (with ``return_carry``) is a list, one per layer. All layers run with
    one set of options (``unroll``, ``parallel``, ``dtype``, ``recurrent_dropout_rate``); layers
    built with different ones are refused."""

    def __init__(
        self, layers: Sequence[RecurrentLayer | Bidirectional], *, dropout_rate: float = 0.0,
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
        _checks.probability("dropout_rate", dropout_rate)
        directions = {isinstance(layer, Bidirectional) for layer in layers}
        if len(directions) > 1:
            raise ValueError("Stacked layers must be all Bidirectional or all unidirectional; got a mix.")
        inner, names = [], []
        for i, layer in enumerate(layers):
            if isinstance(layer, Bidirectional):
                if layer.return_carry:
                    raise ValueError(f"Stacked: layers[{i}] was built with return_carry=True, which Stacked "
                                     "would ignore; pass return_carry to Stacked.")
                inner += [layer.forward, layer.backward]
                names += [f"layers[{i}].forward", f"layers[{i}].backward"]
            else:
                inner.append(layer)
                names.append(f"layers[{i}]")
        self.options = _shared_options(inner, names, "Stacked")
        self.layers = nnx.List(layers)
        self.cell = inner[0].cell
        self.merge = merges.pop() if merges else "concat"
        self.dropout_rate, self.residual, self.return_carry = dropout_rate, residual, return_carry

    def pure_params(self) -> list:
        """One parameter dict per layer (``{"forward", "backward"}`` for bidirectional layers)."""
        return [layer.pure_params() for layer in self.layers]

    def __call__(self, xs, *, seq_lengths=None, initial_carry=None, dropout_key=None):
        return stacked(
            self.cell, self.pure_params(), xs,
            seq_lengths=seq_lengths, initial_carry=initial_carry, return_carry=self.return_carry,
            dropout_rate=self.dropout_rate, dropout_key=dropout_key, residual=self.residual,
            merge=self.merge, **self.options,
        )
