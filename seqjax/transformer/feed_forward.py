"""The position-wise feed-forward network and the residual connection around every sublayer.

For ``x`` ``[..., d]``::

    FFN(x)   = Dropout_act(act(x W_1 + b_1)) W_2 + b_2      act: relu | gelu | gelu_tanh
    post-LN:   x <- LN(x + Dropout(Sublayer(x)))            (Vaswani et al. 2017, BERT; norm_first=False)
    pre-LN:    x <- x + Dropout(Sublayer(LN(x)))            (GPT-2; norm_first=True)

``LN`` is :func:`seqjax.primitives.layer_norm` (statistics in float32).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.transformer import feed_forward, feed_forward_init, residual
    >>> from seqjax.primitives import layer_norm_init
    >>> params = feed_forward_init(jax.random.key(0), 8, 32)
    >>> x = jnp.ones((2, 3, 8))
    >>> ffn = lambda h: feed_forward(params, h, activation="gelu")
    >>> residual(x, ffn, layer_norm_init(8), norm_first=True).shape
    (2, 3, 8)
"""

from __future__ import annotations

from typing import Any, Callable

import jax

from seqjax import _checks
from seqjax.primitives import dense, dropout, layer_norm
from seqjax.transformer.layout import require_keys
from seqjax.transformer.spec import ACTIVATIONS

Params = dict[str, Any]


def feed_forward(
    params: Params,
    x: jax.Array,
    *,
    activation: str = "relu",
    dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
) -> jax.Array:
    """``FFN(x) = Dropout(act(x W_1 + b_1)) W_2 + b_2`` on ``x`` ``[..., d]`` (each position alike).

    ``activation``: ``"relu"`` (Vaswani), ``"gelu"`` (exact erf form: BERT, PyTorch ``'gelu'``) or
    ``"gelu_tanh"`` (GPT-2). The dropout after the activation is active only with ``dropout_key``.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from seqjax.transformer import feed_forward, feed_forward_init
        >>> params = feed_forward_init(jax.random.key(0), 8, 32)
        >>> feed_forward(params, jnp.ones((2, 3, 8)), activation="gelu").shape
        (2, 3, 8)
    """
    require_keys("params", params, ("w_1", "w_2"), "feed_forward_init")
    _checks.choice("activation", activation, tuple(ACTIVATIONS))
    x = _checks.floating_array("x", x, ndim=tuple(range(1, 6)), layout="[..., features]")
    _checks.feature_size("x", x, params["w_1"].shape[0])
    if params["w_2"].shape[0] != params["w_1"].shape[1]:
        raise ValueError(
            f"params['w_1'] {tuple(params['w_1'].shape)} and params['w_2'] {tuple(params['w_2'].shape)} "
            "must be [d, d_ff] and [d_ff, d_out]."
        )
    h = ACTIVATIONS[activation](dense(x, params["w_1"], params.get("b_1")))
    h = dropout(h, dropout_rate, dropout_key)
    return dense(h, params["w_2"], params.get("b_2"))


def residual(
    x: jax.Array,
    sublayer: Callable[[jax.Array], Any],
    norm: Params,
    *,
    norm_first: bool = False,
    eps: float = 1e-5,
    dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
    has_aux: bool = False,
) -> Any:
    """Residual connection with LayerNorm ``norm`` in either placement::

        norm_first=False (post-LN):  LN(x + Dropout(sublayer(x)))
        norm_first=True  (pre-LN):   x + Dropout(sublayer(LN(x)))

    With ``has_aux`` (as in :func:`jax.grad`), ``sublayer`` returns ``(y, aux)`` and the result
    is ``(x, aux)``: the self-attention returns its updated KV cache that way.
    """
    out = sublayer(layer_norm(norm, x, eps=eps) if norm_first else x)
    y, aux = out if has_aux else (out, None)
    y = dropout(y, dropout_rate, dropout_key)
    x = x + y if norm_first else layer_norm(norm, x + y, eps=eps)
    return (x, aux) if has_aux else x
