"""Bottleneck adapters (Houlsby et al. 2019, "Parameter-Efficient Transfer Learning for NLP") as
pure functions: the adapter itself, the transformation of a sublayer that inserts it, and the
insertion of adapter parameters into a transformer's pure parameter tree.

An adapter maps ``h`` ``[..., d]`` through a bottleneck of ``m << d`` units, with its own skip::

    Adapter(h) = h + act(h W_down + b_down) W_up + b_up,     W_down [d, m],  W_up [m, d]

Houlsby et al. place one after the attention block's output projection and one after the FFN,
in both cases *before* the sublayer's residual addition and LayerNorm::

    post-LN:  x = LN(x + Adapter(Sublayer(x)))

Their init is near-identity: every adapter weight ``~ N(0, 1e-2^2)`` truncated at two standard
deviations, biases zero, so ``Adapter(h) ~ h`` and the pretrained network is barely changed at
step 0 (``zero_up=True`` makes the up-projection exactly zero, so the model is unchanged). During
fine-tuning the adapters, the LayerNorm parameters and the task head train; the rest is frozen
(:func:`adapter_trainable_mask`). Per adapter ``2 d m + d + m`` parameters.

The hook in the transformer layers
    An adapter changes the layer's forward pass, so unlike LoRA it cannot be a transformation of
    the weights. :func:`with_adapter` (in :mod:`seqjax.transformer.adapter`, re-exported here) is
    the transformation of a sublayer function (``h -> y`` or ``h -> (y, aux)``) that the layer's
    residual wraps; the encoder layer (``encoder_layer_body``: BERT, GPT and the encoder stacks,
    loop and scan) applies it when a layer's parameters hold the keys that
    :func:`insert_adapters` adds (``"adapter_attn"``, ``"adapter_ffn"``). An NNX model takes
    them by replacing its stack's parameters: ``model.bert.encoder.stack =
    as_params(insert_adapters(key, model.bert.encoder.pure_params(), m))``. The decoder layer
    does not apply adapters yet.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.train.finetune.adapters import adapter, adapter_init, with_adapter
    >>> p = adapter_init(jax.random.key(0), 8, 2, zero_up=True)
    >>> h = jnp.ones((2, 3, 8))
    >>> bool(jnp.array_equal(adapter(p, h), h))              # identity at init with zero_up
    True
    >>> sublayer = with_adapter(lambda h: 2.0 * h, p)
    >>> sublayer(h).shape
    (2, 3, 8)
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.train.finetune.patterns import match_mask
from seqjax.train.optim import path_str
from seqjax.transformer.adapter import ADAPTER_KEYS, SLOTS, adapter, with_adapter  # noqa: F401 (re-exported)



def adapter_init(key: jax.Array, d_model: int, bottleneck: int, *, init_std: float = 1e-2,
                 zero_up: bool = False, num_layers: int | None = None, dtype: Any = jnp.float32) -> dict:
    """Adapter parameters ``{"w_down" [d, m], "b_down" [m], "w_up" [m, d], "b_up" [d]}``: weights
    ``N(0, init_std^2)`` truncated at ``2 init_std`` (Houlsby et al.), biases zero; ``zero_up``
    sets ``w_up = 0`` (an exact identity at init). ``num_layers``: a leading ``[L]`` axis for a
    scanned stack."""
    _checks.positive_int("d_model", d_model)
    _checks.positive_int("bottleneck", bottleneck)
    if not (isinstance(init_std, (int, float)) and init_std >= 0):
        raise ValueError(f"init_std must be a number >= 0; got {init_std!r}.")
    lead = () if num_layers is None else (num_layers,)
    k_down, k_up = jax.random.split(key)
    normal = lambda k, shape: init_std * jax.random.truncated_normal(k, -2.0, 2.0, (*lead, *shape), dtype)
    return {
        "w_down": normal(k_down, (d_model, bottleneck)),
        "b_down": jnp.zeros((*lead, bottleneck), dtype),
        "w_up": jnp.zeros((*lead, bottleneck, d_model), dtype) if zero_up else normal(k_up, (bottleneck, d_model)),
        "b_up": jnp.zeros((*lead, d_model), dtype),
    }


def insert_adapters(key: jax.Array, stack: dict, bottleneck: int, *, slots: tuple[str, ...] = SLOTS,
                    zero_up: bool = False, init_std: float = 1e-2) -> dict:
    """A copy of a transformer stack's pure parameters (``{"layers": [...] or {...}, ...}``, as
    :func:`seqjax.transformer.encoder_stack_init`) with adapter parameters under ``slots`` in
    every layer (a leading ``[L]`` axis for a stacked, scanned ``layers`` dict). The layers must
    apply them (module docstring: the hook)."""
    if not isinstance(stack, Mapping) or "layers" not in stack:
        raise ValueError(f"stack must be a stack's parameter dict with 'layers'; got keys "
                         f"{sorted(stack) if isinstance(stack, Mapping) else type(stack).__name__}.")
    layers = stack["layers"]
    stacked = isinstance(layers, Mapping)
    first = layers if stacked else layers[0]
    d_model = first["norm_1"]["scale"].shape[-1]
    n = first["norm_1"]["scale"].shape[0] if stacked else len(layers)
    keys = jax.random.split(key, (n, len(slots)))
    if stacked:
        new = dict(layers)
        for j, slot in enumerate(slots):
            ps = [adapter_init(keys[i, j], d_model, bottleneck, zero_up=zero_up, init_std=init_std) for i in range(n)]
            new[slot] = jax.tree.map(lambda *xs: jnp.stack(xs), *ps)
    else:
        new = [dict(layer, **{slot: adapter_init(keys[i, j], d_model, bottleneck, zero_up=zero_up, init_std=init_std)
                              for j, slot in enumerate(slots)}) for i, layer in enumerate(layers)]
    return {**stack, "layers": new}


def adapter_trainable_mask(params: Any, *, also: Any = ()) -> Any:
    """Houlsby et al.'s trainable set: the adapters (any path through an ``adapter*`` key), the
    LayerNorm parameters (a ``*norm*`` group) and the leaves matching ``also`` (the task head)."""
    extra = match_mask(params, also, name="also") if also else jax.tree.map(lambda _: False, params)

    def trainable(path, _):
        parts = path_str(path).split("/")
        return any(p.startswith("adapter") for p in parts) or any("norm" in p for p in parts[:-1])

    return jax.tree.map(lambda a, b: a or b, jax.tree_util.tree_map_with_path(trainable, params), extra)


def adapter_param_count(d_model: int, bottleneck: int) -> int:
    """``2 d m + d + m``: the parameters of one adapter."""
    return 2 * d_model * bottleneck + d_model + bottleneck
