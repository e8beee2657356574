"""The cell contract shared by every recurrent cell.

A cell is three pure functions bundled in a :class:`Cell`:

* ``init(key, in_features, hidden_features) -> params``: a dict of float32 arrays whose layout
  each cell module documents;
* ``step(params, carry, x) -> (carry, y)``: one time step on an *unbatched* input ``x`` of shape
  ``[d]``, in the argument order of :func:`jax.lax.scan` so it can be scanned directly;
* ``zero_carry(params, dtype) -> carry``: the all-zero initial state for one sequence.

Gated cells (LSTM, GRU) also provide ``gates(params, carry, x) -> (carry, gates)``: the same step
returning its gate activations (a NamedTuple of ``[h]`` arrays) instead of ``y``; their ``step``
calls it, so ``jax.lax.scan(functools.partial(cell.gates, params), carry, xs)`` gives the gates a
trained model really computes.

Cells whose recurrence is linear in the state (minGRU, minLSTM) also provide
``linear_coefficients(params, xs) -> (a, b)`` with ``h_t = a_t * h_{t-1} + b_t``, which lets the
sequence engine use a parallel :func:`jax.lax.associative_scan` instead of a sequential scan.

Recurrent dropout: if ``params`` contains the key ``"recurrent_dropout_mask"`` (shape ``[h]``,
added by the sequence engine, never trained), cells multiply the hidden state by it *only where
it enters a recurrent matrix product*, so one mask per sequence drops the same units at every
step (Gal & Ghahramani 2016) while the state itself is carried intact.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from seqjax import _checks

Params = dict[str, jax.Array]
Carry = Any

RECURRENT_DROPOUT_MASK = "recurrent_dropout_mask"


class Cell(NamedTuple):
    """A recurrent cell as pure functions (see the module docstring for the contract)."""

    init: Callable[..., Params]
    step: Callable[[Params, Carry, jax.Array], tuple[Carry, jax.Array]]
    zero_carry: Callable[[Params, Any], Carry]
    linear_coefficients: Optional[Callable[[Params, jax.Array], tuple[jax.Array, jax.Array]]] = None
    name: str = "cell"
    # The size of the step's input ``x`` when it is not the rows of ``w_i`` (a cell that reads an
    # extra per-step stream, such as the rate cell's recurrent-noise samples); ``None``: rows of ``w_i``.
    step_input_features: Optional[Callable[[Params], int]] = None
    # Gated cells: ``gates(params, carry, x) -> (carry, gates)``, the step itself with its gate
    # activations as the output (a NamedTuple of ``[h]`` arrays); ``step`` is this function with
    # the gates dropped, so the values are the ones the model computes.
    gates: Optional[Callable[[Params, Carry, jax.Array], tuple[Carry, Any]]] = None


def check_sizes(in_features: Any, hidden_features: Any, recurrent_scale: Any = None) -> None:
    """The checks every cell ``init`` runs first: positive integer sizes (and a positive
    ``recurrent_scale`` when given), so a zero or negative size is a clear error rather than a
    ``ZeroDivisionError`` or an XLA shape error."""
    _checks.positive_int("in_features", in_features)
    _checks.positive_int("hidden_features", hidden_features)
    if recurrent_scale is not None:
        _checks.positive_float("recurrent_scale", recurrent_scale)


def recurrent_weights(key: jax.Array, hidden: int, blocks: int, recurrent_scale: float | None) -> jax.Array:
    """``w_h`` ``[hidden, blocks * hidden]``: PyTorch's U(+-1/sqrt(h)) by default, or with
    ``recurrent_scale`` one orthogonal block per gate times it (spectral radius exactly
    ``recurrent_scale``: the knob of gradient-flow studies)."""
    if recurrent_scale is None:
        return uniform(key, (hidden, blocks * hidden), 1.0 / math.sqrt(hidden))
    return orthogonal_blocks(key, hidden, blocks, recurrent_scale)


def chrono_bias(key: jax.Array, hidden: int, t_max: float) -> jax.Array:
    """Chrono initialisation of a gate bias (Tallec & Ollivier 2018, "Can recurrent neural
    networks warp time?"): ``b ~ log(U[1, t_max - 1])``, shape ``[hidden]``, float32.

    A gate ``sigmoid(b)`` that multiplies the old state then starts near ``1 - 1/e^b``, so a unit
    forgets over about ``e^b`` steps: the draw spreads the units' characteristic times uniformly
    over ``[1, t_max - 1]`` (``t_max``: the longest dependency the model should hold). Each cell
    decides which bias gets it (and the sign) for its gate convention; see
    :func:`seqjax.cells.lstm.lstm_init` and :func:`seqjax.cells.gru.gru_init`.

    Example::

        >>> import jax
        >>> b = chrono_bias(jax.random.key(0), 4, 100)
        >>> b.shape, bool((b >= 0).all() and (b <= jnp.log(99.0)).all())
        ((4,), True)
    """
    _checks.positive_int("hidden", hidden)
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float)) or not t_max > 2:
        raise ValueError(f"chrono (t_max) must be a number > 2 (so that U[1, t_max - 1] is a range); got {t_max!r}.")
    return jnp.log(jax.random.uniform(key, (hidden,), jnp.float32, 1.0, float(t_max) - 1.0))


# ``chrono_bias`` draws from this key (``fold_in(key, CHRONO_KEY)``), so turning chrono on leaves
# every other parameter of the cell as the default init draws it.
CHRONO_KEY = 0xC4


def recurrent_input(params: Params, h: jax.Array) -> jax.Array:
    """The hidden state as it enters a recurrent product, with the recurrent-dropout mask applied."""
    mask = params.get(RECURRENT_DROPOUT_MASK)
    return h if mask is None else h * mask.astype(h.dtype)


def trainable(params: Params) -> Params:
    """``params`` without the engine-supplied recurrent-dropout mask."""
    return {k: v for k, v in params.items() if k != RECURRENT_DROPOUT_MASK}


def uniform(key: jax.Array, shape: tuple[int, ...], bound: float) -> jax.Array:
    """U(-bound, bound) in float32: PyTorch's default for RNN weights with bound 1/sqrt(hidden)."""
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def orthogonal_blocks(key: jax.Array, hidden: int, blocks: int, scale: float = 1.0) -> jax.Array:
    """``[hidden, blocks * hidden]``: ``blocks`` independent orthogonal matrices side by side.

    Each block has every singular value equal to ``scale``, so its spectral radius is ``scale``.
    """
    keys = jax.random.split(key, blocks)
    ortho = jax.nn.initializers.orthogonal(scale)
    return jnp.concatenate([ortho(k, (hidden, hidden), jnp.float32) for k in keys], axis=1)


def cast(params: Params, dtype: Any) -> Params:
    """Parameters cast to the computation dtype (parameters are stored in float32)."""
    return {k: v.astype(dtype) for k, v in params.items()}


def input_features(params: Params) -> int:
    """The input size ``d`` a cell's parameters expect (rows of ``w_i``, or ``w`` for min-cells)."""
    return params["w_i" if "w_i" in params else "w"].shape[0]
