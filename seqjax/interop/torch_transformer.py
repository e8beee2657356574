"""Convert ``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer`` (and the
``nn.TransformerEncoder`` / ``nn.TransformerDecoder`` stacks) state dicts to the parameter layout
of :mod:`seqjax.transformer.blocks` (numpy arrays in; this module never imports torch).

Name map (weights ``[out, in]`` are transposed to ``[in, out]``)::

    self_attn.*                  -> "self_attn"   (via from_torch_mha: in_proj split into q, k, v)
    multihead_attn.*             -> "cross_attn"  (decoder)
    linear1.weight / .bias       -> "ffn": w_1 (transposed) / b_1
    linear2.weight / .bias       -> "ffn": w_2 (transposed) / b_2
    norm1 / norm2 / norm3 .weight, .bias -> "norm_1" / "norm_2" / "norm_3": scale, bias

``norm_first`` and ``activation`` are not in a state dict: call
:func:`seqjax.transformer.encoder_layer` with the same ``norm_first``, ``activation``
(``"relu"`` or ``"gelu"``: PyTorch's ``'gelu'`` is the exact erf form) and ``eps``
(``layer_norm_eps``, default 1e-5) as the PyTorch module. ``bias=False`` modules (no bias keys)
convert to bias-free parameters. Masks convert with
:func:`seqjax.attention.from_torch_key_padding_mask` and
:func:`seqjax.attention.from_torch_attn_mask`.

Example::

    >>> import numpy as np
    >>> from seqjax.interop.torch_transformer import from_torch_encoder_layer
    >>> E, F = 8, 16
    >>> z = lambda *s: np.zeros(s, np.float32)
    >>> state = {"self_attn.in_proj_weight": z(3 * E, E), "self_attn.in_proj_bias": z(3 * E),
    ...          "self_attn.out_proj.weight": z(E, E), "self_attn.out_proj.bias": z(E),
    ...          "linear1.weight": z(F, E), "linear1.bias": z(F), "linear2.weight": z(E, F),
    ...          "linear2.bias": z(E), "norm1.weight": z(E), "norm1.bias": z(E),
    ...          "norm2.weight": z(E), "norm2.bias": z(E)}
    >>> params = from_torch_encoder_layer(state, num_heads=2)
    >>> sorted(params), params["ffn"]["w_1"].shape
    (['ffn', 'norm_1', 'norm_2', 'self_attn'], (8, 16))
"""

from __future__ import annotations

import re
from typing import Mapping

import jax.numpy as jnp
import numpy as np

from seqjax.interop.torch_attention import from_torch_mha
from seqjax.transformer.blocks import stack_layers

_ENCODER_MODULES = {"self_attn": "self_attn", "linear1": None, "linear2": None, "norm1": "norm_1", "norm2": "norm_2"}
_DECODER_MODULES = _ENCODER_MODULES | {"multihead_attn": "cross_attn", "norm3": "norm_3"}


def _numpy(state_dict: Mapping) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float32) for k, v in state_dict.items()}


def _group(state: dict[str, np.ndarray], modules: Mapping[str, str | None], what: str) -> dict[str, dict[str, np.ndarray]]:
    groups: dict[str, dict[str, np.ndarray]] = {m: {} for m in modules}
    unknown = []
    for name, value in state.items():
        head, _, rest = name.partition(".")
        if head in groups and rest:
            groups[head][rest] = value
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(
            f"state_dict has keys {sorted(unknown)} that torch.nn.{what} does not have (expected "
            f"entries under {sorted(modules)})."
        )
    empty = [m for m, g in groups.items() if not g]
    if empty:
        raise ValueError(f"state_dict has no entries for {empty}; expected a torch.nn.{what} state dict.")
    return groups


def _linear(group: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray | None]:
    if "weight" not in group or set(group) - {"weight", "bias"}:
        raise ValueError(f"{name} must hold 'weight' (and optionally 'bias'); got {sorted(group)}.")
    return group["weight"].T, group.get("bias")


def _norm(group: dict[str, np.ndarray], name: str) -> dict[str, jnp.ndarray]:
    if "weight" not in group or set(group) - {"weight", "bias"}:
        raise ValueError(f"{name} must hold 'weight' (and optionally 'bias'); got {sorted(group)}.")
    out = {"scale": jnp.asarray(group["weight"])}
    if "bias" in group:
        out["bias"] = jnp.asarray(group["bias"])
    return out


def _ffn(groups: dict[str, dict[str, np.ndarray]]) -> dict[str, jnp.ndarray]:
    w_1, b_1 = _linear(groups["linear1"], "linear1")
    w_2, b_2 = _linear(groups["linear2"], "linear2")
    if w_1.shape[1] != w_2.shape[0]:
        raise ValueError(f"linear1 {w_1.T.shape} and linear2 {w_2.T.shape} do not chain (dim_feedforward).")
    ffn = {"w_1": w_1, "w_2": w_2}
    if b_1 is not None:
        ffn["b_1"] = b_1
    if b_2 is not None:
        ffn["b_2"] = b_2
    return {k: jnp.asarray(np.ascontiguousarray(v)) for k, v in ffn.items()}


def from_torch_encoder_layer(state_dict: Mapping[str, np.ndarray], num_heads: int) -> dict:
    """Parameters for :func:`seqjax.transformer.encoder_layer` from a
    ``torch.nn.TransformerEncoderLayer`` state dict ``{name: numpy array}`` (any ``norm_first``,
    ``activation``, ``batch_first``). Call the layer with the same ``num_heads``."""
    groups = _group(_numpy(state_dict), _ENCODER_MODULES, "TransformerEncoderLayer")
    return {
        "self_attn": from_torch_mha(groups["self_attn"], num_heads),
        "ffn": _ffn(groups),
        "norm_1": _norm(groups["norm1"], "norm1"),
        "norm_2": _norm(groups["norm2"], "norm2"),
    }


def from_torch_decoder_layer(state_dict: Mapping[str, np.ndarray], num_heads: int) -> dict:
    """Parameters for :func:`seqjax.transformer.decoder_layer` from a
    ``torch.nn.TransformerDecoderLayer`` state dict (``self_attn``, ``multihead_attn``,
    ``linear1/2``, ``norm1..3``)."""
    groups = _group(_numpy(state_dict), _DECODER_MODULES, "TransformerDecoderLayer")
    return {
        "self_attn": from_torch_mha(groups["self_attn"], num_heads),
        "cross_attn": from_torch_mha(groups["multihead_attn"], num_heads),
        "ffn": _ffn(groups),
        "norm_1": _norm(groups["norm1"], "norm1"),
        "norm_2": _norm(groups["norm2"], "norm2"),
        "norm_3": _norm(groups["norm3"], "norm3"),
    }


def _from_torch_stack(state_dict: Mapping, num_heads: int, layer_fn, what: str, stacked: bool) -> dict:
    state = _numpy(state_dict)
    per_layer: dict[int, dict[str, np.ndarray]] = {}
    final: dict[str, np.ndarray] = {}
    unknown = []
    for name, value in state.items():
        match = re.fullmatch(r"layers\.(\d+)\.(.+)", name)
        if match:
            per_layer.setdefault(int(match.group(1)), {})[match.group(2)] = value
        elif name.startswith("norm."):
            final[name[len("norm."):]] = value
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"state_dict has keys {sorted(unknown)} that torch.nn.{what} does not have.")
    if not per_layer or sorted(per_layer) != list(range(len(per_layer))):
        raise ValueError(
            f"state_dict must hold layers.0 .. layers.(L-1); got layer indices {sorted(per_layer)}."
        )
    layers = [layer_fn(per_layer[i], num_heads) for i in range(len(per_layer))]
    params: dict = {"layers": stack_layers(layers) if stacked else layers}
    if final:
        params["final_norm"] = _norm(final, "norm")
    return params


def from_torch_encoder(state_dict: Mapping[str, np.ndarray], num_heads: int, *, stacked: bool = False) -> dict:
    """Stack parameters for :func:`seqjax.transformer.encoder_stack` from a
    ``torch.nn.TransformerEncoder`` state dict (``layers.{i}.*`` and the optional final ``norm.*``,
    which becomes ``"final_norm"``); ``stacked=True`` stacks the layers for ``jax.lax.scan``."""
    return _from_torch_stack(state_dict, num_heads, from_torch_encoder_layer, "TransformerEncoder", stacked)


def from_torch_decoder(state_dict: Mapping[str, np.ndarray], num_heads: int, *, stacked: bool = False) -> dict:
    """As :func:`from_torch_encoder`, for ``torch.nn.TransformerDecoder``."""
    return _from_torch_stack(state_dict, num_heads, from_torch_decoder_layer, "TransformerDecoder", stacked)
