"""The bottleneck adapter of Houlsby et al. 2019 ("Parameter-Efficient Transfer Learning for NLP")
as a pure function, and the transformation of a sublayer that applies it: what the transformer
layers run when a layer's parameters hold adapters (keys ``"adapter_attn"``, ``"adapter_ffn"``).
Creating, inserting and training adapters is :mod:`seqjax.train.finetune.adapters`::

    Adapter(h) = h + act(h W_down + b_down) W_up + b_up,     W_down [d, m],  W_up [m, d]
    post-LN layer with adapters:  x = LN(x + Dropout(Adapter(Sublayer(x))))

Example::

    >>> import jax.numpy as jnp
    >>> from seqjax.transformer.adapter import adapter
    >>> p = {"w_down": jnp.ones((4, 2)), "b_down": jnp.zeros(2), "w_up": jnp.zeros((2, 4)), "b_up": jnp.ones(4)}
    >>> adapter(p, jnp.zeros((1, 4))).tolist()          # zero up-projection: h + b_up
    [[1.0, 1.0, 1.0, 1.0]]
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax

from seqjax import _checks
from seqjax.primitives import dense
from seqjax.transformer.spec import ACTIVATIONS

ADAPTER_KEYS = ("w_down", "b_down", "w_up", "b_up")
SLOTS = ("adapter_attn", "adapter_ffn")


def adapter(params: Mapping[str, jax.Array], h: jax.Array, *, activation: str = "gelu") -> jax.Array:
    """``h + act(h W_down + b_down) W_up + b_up`` on ``h`` ``[..., d]`` (computed in ``h``'s dtype)."""
    missing = [k for k in ADAPTER_KEYS if k not in params]
    if missing:
        raise ValueError(f"adapter params lack {missing}; expected the keys {ADAPTER_KEYS} (adapter_init).")
    _checks.choice("activation", activation, tuple(ACTIVATIONS))
    h = _checks.floating_array("h", h, ndim=tuple(range(1, 6)), layout="[..., features]")
    _checks.feature_size("h", h, params["w_down"].shape[-2])
    z = ACTIVATIONS[activation](dense(h, params["w_down"], params["b_down"]))
    return h + dense(z, params["w_up"], params["b_up"])


def with_adapter(sublayer: Callable, params: Mapping[str, jax.Array], *, activation: str = "gelu",
                 has_aux: bool = False) -> Callable:
    """``h -> Adapter(sublayer(h))``: the sublayer with an adapter on its output, to be wrapped by
    the residual (``LN(x + Adapter(Sublayer(x)))``). With ``has_aux`` the sublayer returns
    ``(y, aux)`` (the self-attention's KV cache) and so does the result."""

    def adapted(h):
        out = sublayer(h)
        if has_aux:
            y, aux = out
            return adapter(params, y, activation=activation), aux
        return adapter(params, out, activation=activation)

    return adapted


def adapted(sublayer: Callable, params: Mapping, slot: str, *, has_aux: bool = False) -> Callable:
    """``sublayer`` with the adapter ``params[slot]`` on its output when the layer holds one, else
    ``sublayer`` unchanged (the hook of the encoder layer)."""
    return with_adapter(sublayer, params[slot], has_aux=has_aux) if slot in params else sublayer
