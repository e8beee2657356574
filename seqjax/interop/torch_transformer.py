"""Convert ``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer`` (and the
``nn.TransformerEncoder`` / ``nn.TransformerDecoder`` stacks) to seqjax: their options to a
:class:`~seqjax.transformer.TransformerSpec` (:func:`spec_from_torch`) and their state dicts to the
parameter layout of :mod:`seqjax.transformer.layout` (numpy arrays in; this module never imports
torch).

Name map (weights ``[out, in]`` are transposed to ``[in, out]``)::

    self_attn.*                  -> "self_attn"   (via from_torch_mha: in_proj split into q, k, v)
    multihead_attn.*             -> "cross_attn"  (decoder)
    linear1.weight / .bias       -> "ffn": w_1 (transposed) / b_1
    linear2.weight / .bias       -> "ffn": w_2 (transposed) / b_2
    norm1 / norm2 / norm3 .weight, .bias -> "norm_1" / "norm_2" / "norm_3": scale, bias

``norm_first``, ``activation``, the heads, ``layer_norm_eps`` and the dropout rates are not in a
state dict: :func:`spec_from_torch` reads them from the module, and the converters take that
spec, so the converted layer runs with the options of the PyTorch one (PyTorch's ``'gelu'`` is
the exact erf form, seqjax's ``"gelu"``). ``bias=False`` modules (no bias keys) convert to
bias-free parameters. Masks convert with :func:`seqjax.attention.from_torch_key_padding_mask` and
:func:`seqjax.attention.from_torch_attn_mask`.

Example::

    >>> import numpy as np
    >>> from seqjax.interop.torch_transformer import from_torch_encoder_layer
    >>> from seqjax.transformer import TransformerSpec
    >>> E, F = 8, 16
    >>> z = lambda *s: np.zeros(s, np.float32)
    >>> state = {"self_attn.in_proj_weight": z(3 * E, E), "self_attn.in_proj_bias": z(3 * E),
    ...          "self_attn.out_proj.weight": z(E, E), "self_attn.out_proj.bias": z(E),
    ...          "linear1.weight": z(F, E), "linear1.bias": z(F), "linear2.weight": z(E, F),
    ...          "linear2.bias": z(E), "norm1.weight": z(E), "norm1.bias": z(E),
    ...          "norm2.weight": z(E), "norm2.bias": z(E)}
    >>> params = from_torch_encoder_layer(state, TransformerSpec(num_heads=2))
    >>> sorted(params), params["ffn"]["w_1"].shape
    (['ffn', 'norm_1', 'norm_2', 'self_attn'], (8, 16))
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from seqjax.interop.torch_attention import from_torch_mha
from seqjax.transformer import TransformerSpec, stack_layers
from seqjax.transformer.spec import check_spec

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


def from_torch_encoder_layer(state_dict: Mapping[str, np.ndarray], spec: TransformerSpec) -> dict:
    """Parameters for :func:`seqjax.transformer.encoder_layer` from a
    ``torch.nn.TransformerEncoderLayer`` state dict ``{name: numpy array}`` (any ``norm_first``,
    ``activation``, ``batch_first``), for the layer's ``spec`` (:func:`spec_from_torch`)."""
    num_heads = _torch_heads(spec)
    groups = _group(_numpy(state_dict), _ENCODER_MODULES, "TransformerEncoderLayer")
    return {
        "self_attn": from_torch_mha(groups["self_attn"], num_heads),
        "ffn": _ffn(groups),
        "norm_1": _norm(groups["norm1"], "norm1"),
        "norm_2": _norm(groups["norm2"], "norm2"),
    }


def from_torch_decoder_layer(state_dict: Mapping[str, np.ndarray], spec: TransformerSpec) -> dict:
    """Parameters for :func:`seqjax.transformer.decoder_layer` from a
    ``torch.nn.TransformerDecoderLayer`` state dict (``self_attn``, ``multihead_attn``,
    ``linear1/2``, ``norm1..3``), for the layer's ``spec``."""
    num_heads = _torch_heads(spec)
    groups = _group(_numpy(state_dict), _DECODER_MODULES, "TransformerDecoderLayer")
    return {
        "self_attn": from_torch_mha(groups["self_attn"], num_heads),
        "cross_attn": from_torch_mha(groups["multihead_attn"], num_heads),
        "ffn": _ffn(groups),
        "norm_1": _norm(groups["norm1"], "norm1"),
        "norm_2": _norm(groups["norm2"], "norm2"),
        "norm_3": _norm(groups["norm3"], "norm3"),
    }


def _from_torch_stack(state_dict: Mapping, spec: TransformerSpec, layer_fn, what: str, stacked: bool) -> dict:
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
    layers = [layer_fn(per_layer[i], spec) for i in range(len(per_layer))]
    params: dict = {"layers": stack_layers(layers) if stacked else layers}
    if final:
        params["final_norm"] = _norm(final, "norm")
    return params


def from_torch_encoder(state_dict: Mapping[str, np.ndarray], spec: TransformerSpec, *, stacked: bool = False) -> dict:
    """Stack parameters for :func:`seqjax.transformer.encoder_stack` from a
    ``torch.nn.TransformerEncoder`` state dict (``layers.{i}.*`` and the optional final ``norm.*``,
    which becomes ``"final_norm"``); ``stacked=True`` stacks the layers for ``jax.lax.scan``."""
    return _from_torch_stack(state_dict, spec, from_torch_encoder_layer, "TransformerEncoder", stacked)


def from_torch_decoder(state_dict: Mapping[str, np.ndarray], spec: TransformerSpec, *, stacked: bool = False) -> dict:
    """As :func:`from_torch_encoder`, for ``torch.nn.TransformerDecoder``."""
    return _from_torch_stack(state_dict, spec, from_torch_decoder_layer, "TransformerDecoder", stacked)


# --- options -------------------------------------------------------------------------------------


def _torch_heads(spec: Any) -> int:
    """``spec.num_heads`` after checking that PyTorch's layers can have these options."""
    spec = check_spec(spec)
    if spec.kv_heads != spec.num_heads:
        raise ValueError(
            f"torch.nn.MultiheadAttention has no grouped-query attention; got num_kv_heads = {spec.num_kv_heads} "
            f"for num_heads = {spec.num_heads}."
        )
    if spec.positional != "absolute":
        raise ValueError(f"PyTorch's transformer layers have no {spec.positional!r} positions; use positional='absolute'.")
    return spec.num_heads


def _activation_name(activation: Any) -> str:
    kind = type(activation).__name__
    if kind == "ReLU" or getattr(activation, "__name__", None) == "relu":
        return "relu"
    if kind == "GELU":
        return "gelu_tanh" if getattr(activation, "approximate", "none") == "tanh" else "gelu"
    if getattr(activation, "__name__", None) == "gelu":
        return "gelu"
    raise ValueError(f"the module's activation {activation!r} has no seqjax equivalent (relu, gelu, gelu_tanh).")


def _layer_spec(layer: Any, causal: bool, dtype: Any) -> TransformerSpec:
    try:
        return TransformerSpec(
            num_heads=int(layer.self_attn.num_heads), activation=_activation_name(layer.activation),
            norm_first=bool(layer.norm_first), causal=causal, eps=float(layer.norm1.eps), dtype=dtype,
            dropout_rate=float(layer.dropout1.p), attention_dropout_rate=float(layer.self_attn.dropout),
            activation_dropout_rate=float(layer.dropout.p),
        )
    except AttributeError as error:
        raise ValueError(
            "module must be a torch.nn.TransformerEncoderLayer / TransformerDecoderLayer or a "
            f"TransformerEncoder / TransformerDecoder stack of them; {error}."
        ) from None


def spec_from_torch(module: Any, *, causal: bool = False, dtype: Any = None) -> TransformerSpec:
    """The :class:`~seqjax.transformer.TransformerSpec` of a PyTorch transformer layer or stack
    (``TransformerEncoderLayer``, ``TransformerDecoderLayer``, ``TransformerEncoder``,
    ``TransformerDecoder``): its heads, activation, ``norm_first``, ``layer_norm_eps`` and dropout
    rates (residual ``dropout1``, attention ``self_attn.dropout``, activation ``dropout``).

    PyTorch's layers add no causal mask by themselves (the caller passes ``tgt_mask``):
    ``causal=True`` builds a spec that adds it (then pass no causal mask; decoding with a KV cache
    needs it). ``dtype``: the computation dtype of the spec. The layers of a stack must agree.
    """
    layers = list(module.layers) if hasattr(module, "layers") else [module]
    if not layers:
        raise ValueError("module has no layers.")
    specs = [_layer_spec(layer, causal, dtype) for layer in layers]
    if any(s != specs[0] for s in specs[1:]):
        raise ValueError(f"the layers of the stack have different options: {sorted(set(map(repr, specs)))}.")
    final = getattr(module, "norm", None)
    if final is not None and float(final.eps) != specs[0].eps:
        raise ValueError(
            f"the stack's final norm has eps = {final.eps} but its layers {specs[0].eps}; a spec has one eps."
        )
    return specs[0]
