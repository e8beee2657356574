"""The parameter layout of transformer layers and stacks, and moving between its two stack forms.

Plain dicts of float32 arrays, row-vector convention ``y = x W + b``::

    layer norm     {"scale": [d], "bias": [d]}                   ("bias" absent: use_bias=False)
    attention MHA  {"w_q": [d, h d_k], "w_k": [d_kv, h_kv d_k], "w_v": [d_kv, h_kv d_v],
                    "w_o": [h d_v, d], "b_q", "b_k", "b_v", "b_o"}   (seqjax.attention.multi_head_init)
    feed-forward   {"w_1": [d, d_ff], "b_1": [d_ff], "w_2": [d_ff, d], "b_2": [d]}
    encoder layer  {"self_attn": MHA, "ffn": FFN, "norm_1": LN, "norm_2": LN}
    decoder layer  {"self_attn": MHA, "cross_attn": MHA, "ffn": FFN, "norm_1": LN, "norm_2": LN, "norm_3": LN}
    stack          {"layers": [layer_0, ..., layer_{L-1}]   (a list: Python loop)
                              or one layer dict whose arrays have a leading [L] axis (stacked: scan),
                    "final_norm": LN}                       (optional: pre-LN stacks)

``norm_i`` is the norm of sublayer ``i`` in either placement, as PyTorch's ``norm1..3``, so
:mod:`seqjax.interop.torch_transformer` converts by renaming and transposing.

Example::

    >>> import jax.numpy as jnp
    >>> from seqjax.transformer import num_layers, stack_layers, unstack_layers
    >>> layers = [{"w": jnp.ones((2, 3))}, {"w": jnp.zeros((2, 3))}]
    >>> stacked = stack_layers(layers)
    >>> stacked["w"].shape, num_layers(stacked), len(unstack_layers(stacked))
    ((2, 2, 3), 2, 2)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

Params = dict[str, Any]

ENCODER_KEYS = ("self_attn", "ffn", "norm_1", "norm_2")
DECODER_KEYS = ("self_attn", "cross_attn", "ffn", "norm_1", "norm_2", "norm_3")


def require_keys(name: str, params: Any, keys: Sequence[str], what: str) -> None:
    """Check that ``params`` is a dict holding ``keys`` (``what``: the function that builds it,
    for the message)."""
    if not isinstance(params, Mapping):
        raise ValueError(f"{name} must be a dict of parameters ({what}); got {type(params).__name__}.")
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"{name} is missing {missing}; expected the keys {list(keys)} ({what}).")


def stack_layers(layers: Sequence[Params]) -> Params:
    """Per-layer parameter dicts -> one dict whose arrays have a leading ``[L]`` axis (for scan)."""
    if isinstance(layers, Mapping) or not len(layers):
        raise ValueError("layers must be a non-empty list of per-layer parameter dicts.")
    structures = {jax.tree.structure(layer) for layer in layers}
    if len(structures) != 1:
        raise ValueError("all layers must have the same parameter structure to be stacked.")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *layers)


def unstack_layers(stacked: Params) -> list[Params]:
    """The inverse of :func:`stack_layers`: a list of ``L`` per-layer dicts."""
    n = num_layers(stacked)
    return [jax.tree.map(lambda a: a[i], stacked) for i in range(n)]


def num_layers(layers: Sequence[Params] | Params) -> int:
    """The number of layers of a per-layer list or a stacked dict."""
    if isinstance(layers, Mapping):
        sizes = {a.shape[0] if a.ndim else None for a in jax.tree.leaves(layers)}
        if len(sizes) != 1 or None in sizes:
            raise ValueError(
                "stacked layer parameters must all share a leading [num_layers] axis; got leading "
                f"sizes {sorted(map(str, sizes))}."
            )
        return sizes.pop()
    return len(layers)


def stack_of(params: Any) -> tuple[Any, int]:
    """``(params["layers"], number of layers)`` of a stack, checked: a non-empty list of layer
    dicts or a stacked dict."""
    require_keys("params", params, ("layers",), "encoder_stack_init / decoder_stack_init")
    layers = params["layers"]
    if not isinstance(layers, (Mapping, list, tuple)):
        raise ValueError(
            f"params['layers'] must be a list of layer dicts or a stacked dict; got {type(layers).__name__}."
        )
    n = num_layers(layers)
    if n == 0:
        raise ValueError("params['layers'] is empty; a stack needs at least one layer.")
    return layers, n


def layer_view(layers: Any) -> Params:
    """The first layer's parameters (stacked layers: their shapes without the leading axis, as
    ``jax.ShapeDtypeStruct``): enough to read the sizes of every layer."""
    if isinstance(layers, Mapping):
        return jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape[1:], v.dtype), dict(layers))
    return layers[0]


def first_layer(layers: Any, sublayer: str) -> Any:
    """The parameters (or shapes, see :func:`layer_view`) of ``sublayer`` of the first layer."""
    view = layer_view(layers)
    if sublayer not in view:
        raise ValueError(f"the stack's layers have no {sublayer!r} parameters.")
    return view[sublayer]
