"""Convert ``torch.nn.MultiheadAttention`` state dicts to :mod:`seqjax.attention.multi_head`
parameters and back (numpy arrays in and out; this module never imports torch).

PyTorch keeps ``W x + b`` with weights ``[out, in]``; seqjax keeps ``x W + b`` with ``[in, out]``,
so every weight is transposed. The packed ``in_proj_weight`` ``[3E, E]`` holds the query, key and
value rows in that order (``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight`` instead when
``kdim``/``vdim`` differ from ``E``); ``in_proj_bias`` ``[3E]`` likewise. Both frameworks give head
``n`` the features ``n*d_k : (n+1)*d_k`` and scale by ``1/sqrt(d_k)``, so nothing else moves.

Masks convert separately: :func:`seqjax.attention.from_torch_key_padding_mask` and
:func:`seqjax.attention.from_torch_attn_mask`. ``add_bias_kv=True`` (``bias_k``, ``bias_v``) has no
equivalent here and is refused.

Example::

    >>> import numpy as np
    >>> from seqjax.interop.torch_attention import from_torch_mha
    >>> E = 8
    >>> state = {"in_proj_weight": np.zeros((3 * E, E), np.float32),
    ...          "in_proj_bias": np.zeros(3 * E, np.float32),
    ...          "out_proj.weight": np.zeros((E, E), np.float32),
    ...          "out_proj.bias": np.zeros(E, np.float32)}
    >>> params = from_torch_mha(state, num_heads=2)
    >>> params["w_q"].shape, params["w_o"].shape
    ((8, 8), (8, 8))
"""

from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp
import numpy as np

from seqjax.attention.multi_head import head_dims

_KNOWN = {
    "in_proj_weight", "in_proj_bias", "q_proj_weight", "k_proj_weight", "v_proj_weight",
    "out_proj.weight", "out_proj.bias", "bias_k", "bias_v",
}


def from_torch_mha(state_dict: Mapping[str, np.ndarray], num_heads: int) -> dict:
    """Parameters for :func:`seqjax.attention.multi_head_attention` from a
    ``torch.nn.MultiheadAttention`` state dict ``{name: numpy array}``.

    Call the result with the same ``num_heads``. Works for any ``batch_first`` (the weights do
    not depend on it), ``bias=False`` (no ``b_*`` keys) and ``kdim``/``vdim``.
    """
    state = {k: np.asarray(v, np.float32) for k, v in state_dict.items()}
    unknown = set(state) - _KNOWN
    if unknown:
        raise ValueError(
            f"state_dict has keys {sorted(unknown)} that torch.nn.MultiheadAttention does not have "
            f"(expected some of {sorted(_KNOWN)})."
        )
    if "bias_k" in state or "bias_v" in state:
        raise ValueError("add_bias_kv=True (bias_k, bias_v) is not supported; build the module without it.")
    if "out_proj.weight" not in state:
        raise ValueError("state_dict has no 'out_proj.weight'; expected a torch.nn.MultiheadAttention state dict.")
    embed = state["out_proj.weight"].shape[0]
    if "in_proj_weight" in state:
        w = state["in_proj_weight"]
        if w.shape != (3 * embed, embed):
            raise ValueError(
                f"in_proj_weight must have shape [3 * embed_dim, embed_dim] = {(3 * embed, embed)}; "
                f"got {w.shape}."
            )
        w_q, w_k, w_v = np.split(w, 3, axis=0)
    else:
        try:
            w_q, w_k, w_v = (state[f"{n}_proj_weight"] for n in "qkv")
        except KeyError:
            raise ValueError(
                "state_dict needs either 'in_proj_weight' or all of 'q_proj_weight', "
                "'k_proj_weight', 'v_proj_weight'."
            ) from None
    params = {
        "w_q": w_q.T, "w_k": w_k.T, "w_v": w_v.T, "w_o": state["out_proj.weight"].T,
    }
    if "in_proj_bias" in state:
        b_q, b_k, b_v = np.split(state["in_proj_bias"], 3)
        params |= {"b_q": b_q, "b_k": b_k, "b_v": b_v}
    if "out_proj.bias" in state:
        params["b_o"] = state["out_proj.bias"]
    params = {k: jnp.asarray(np.ascontiguousarray(v)) for k, v in params.items()}
    head_dims(params, num_heads)
    return params


def to_torch_mha(params: Mapping[str, np.ndarray], num_heads: int) -> dict[str, np.ndarray]:
    """The inverse of :func:`from_torch_mha`: a state dict (numpy arrays) for
    ``torch.nn.MultiheadAttention(embed_dim, num_heads, ...)``.

    Only layouts PyTorch can hold convert: ``h_kv = h``, ``d_v = d_k``, ``d_out = h * d_k``, and
    biases on all four projections or none. Packed ``in_proj_weight`` is written when the key and
    value inputs have ``embed_dim`` features; otherwise the separate ``*_proj_weight`` (``kdim``,
    ``vdim``).
    """
    d_k, h_kv, d_v = head_dims(dict(params), num_heads)
    embed = num_heads * d_k
    w = {k: np.asarray(v, np.float32) for k, v in params.items()}
    if h_kv != num_heads or d_v != d_k or w["w_o"].shape[1] != embed or w["w_q"].shape[0] != embed:
        raise ValueError(
            "torch.nn.MultiheadAttention needs num_kv_heads == num_heads, value_head_dim == "
            "head_dim and query/output features == num_heads * head_dim; got "
            f"h_kv = {h_kv}, d_v = {d_v}, d_k = {d_k}, w_q {w['w_q'].shape}, w_o {w['w_o'].shape}."
        )
    biases = [f"b_{n}" in w for n in "qkvo"]
    if any(biases) and not all(biases):
        raise ValueError(f"params must have all of b_q, b_k, b_v, b_o or none; got {sorted(k for k in w if k.startswith('b_'))}.")
    state = {"out_proj.weight": w["w_o"].T.copy()}
    if w["w_k"].shape[0] == embed and w["w_v"].shape[0] == embed:
        state["in_proj_weight"] = np.concatenate([w["w_q"].T, w["w_k"].T, w["w_v"].T], axis=0)
    else:
        state |= {f"{n}_proj_weight": w[f"w_{n}"].T.copy() for n in "qkv"}
    if all(biases):
        state["in_proj_bias"] = np.concatenate([w["b_q"], w["b_k"], w["b_v"]])
        state["out_proj.bias"] = w["b_o"].copy()
    return state
