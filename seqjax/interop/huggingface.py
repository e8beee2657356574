"""Convert Hugging Face GPT-2 checkpoints to :class:`seqjax.nn.GPTLanguageModel`.

The input is a ``GPT2LMHeadModel`` (or ``GPT2Model``) state dict as numpy arrays, e.g.
``{k: v.numpy() for k, v in hf_model.state_dict().items()}``, or the arrays of a
``model.safetensors`` file: this module imports neither torch nor ``transformers``. Name map
(``h.{i}`` is layer ``i``; the ``transformer.`` prefix of ``GPT2LMHeadModel`` is optional)::

    wte.weight [V, d]                        -> token_embedding [V, d]
    wpe.weight [P, d]                        -> position_embedding [P, d]
    h.{i}.ln_1.weight / .bias                -> blocks.layers[i].norm_1.scale / .bias
    h.{i}.attn.c_attn.weight [d, 3d] / .bias -> blocks.layers[i].self_attn.w_q, w_k, w_v [d, d] / b_q, b_k, b_v
                                                (thirds of the last axis, in the order q, k, v)
    h.{i}.attn.c_proj.weight / .bias         -> blocks.layers[i].self_attn.w_o / b_o
    h.{i}.ln_2.weight / .bias                -> blocks.layers[i].norm_2.scale / .bias
    h.{i}.mlp.c_fc.weight / .bias            -> blocks.layers[i].ffn.w_1 / b_1
    h.{i}.mlp.c_proj.weight / .bias          -> blocks.layers[i].ffn.w_2 / b_2
    ln_f.weight / .bias                      -> blocks.final_norm.scale / .bias
    lm_head.weight [V, d]                    -> lm_head [d, V] (untied heads only; a tied one is wte)
    h.{i}.attn.bias, h.{i}.attn.masked_bias  -> skipped (causal-mask buffers of older versions)

GPT-2's ``Conv1D`` already stores its weights ``[in, out]``, the row-vector layout of seqjax
(``y = x W + b``), so nothing is transposed but the ``nn.Linear`` head. Both split the heads of
``d`` features the same way (contiguous ``d / h`` slices), and both run the pre-LN block
``x + Attn(LN_1(x))``, ``x + FFN(LN_2(x))`` with GPT-2's tanh GELU (HF ``gelu_new``, seqjax
``gelu_tanh``), a final LayerNorm and the head tied to ``wte``; the tests compare the logits with
``GPT2LMHeadModel`` to 1e-5, looped and scanned.

* :func:`gpt2_config_from_hf`: a HF ``GPT2Config`` (or its ``to_dict()``) -> seqjax ``GPT2Config``.
* :func:`from_hf_gpt2`: the state dict -> the plain parameter pytree of ``GPTLanguageModel``
  (``{"token_embedding", "position_embedding", "blocks": {"layers", "final_norm"}[, "lm_head"]}``,
  the layers a list, or one stacked dict with ``scan_layers=True``).
* :func:`load_gpt2_params`: write that pytree into a model (``nnx.update``).
* :func:`gpt2_from_hf`: all three: a ready ``GPTLanguageModel``.

Example::

    >>> import numpy as np
    >>> from seqjax.interop.huggingface import from_hf_gpt2, gpt2_config_from_hf
    >>> config = gpt2_config_from_hf({"vocab_size": 11, "n_positions": 8, "n_embd": 4,
    ...                               "n_layer": 1, "n_head": 2})
    >>> rng = np.random.default_rng(0)
    >>> shapes = {"wte.weight": (11, 4), "wpe.weight": (8, 4), "ln_f.weight": (4,), "ln_f.bias": (4,),
    ...           "h.0.ln_1.weight": (4,), "h.0.ln_1.bias": (4,), "h.0.ln_2.weight": (4,),
    ...           "h.0.ln_2.bias": (4,), "h.0.attn.c_attn.weight": (4, 12), "h.0.attn.c_attn.bias": (12,),
    ...           "h.0.attn.c_proj.weight": (4, 4), "h.0.attn.c_proj.bias": (4,),
    ...           "h.0.mlp.c_fc.weight": (4, 16), "h.0.mlp.c_fc.bias": (16,),
    ...           "h.0.mlp.c_proj.weight": (16, 4), "h.0.mlp.c_proj.bias": (4,)}
    >>> params = from_hf_gpt2({k: rng.normal(size=s) for k, s in shapes.items()}, config)
    >>> sorted(params["blocks"]), sorted(params["blocks"]["layers"][0]["self_attn"])
    (['final_norm', 'layers'], ['b_k', 'b_o', 'b_q', 'b_v', 'w_k', 'w_o', 'w_q', 'w_v'])
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.transformer.layout import stack_layers

ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
"""Hugging Face's ``activation_function`` names -> seqjax's (``gelu`` is the exact erf form in both)."""

_LAYER_KEYS = (
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
    "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias",
)
_SKIPPED = ("attn.bias", "attn.masked_bias")
_LAYER = re.compile(r"h\.(\d+)\.(.+)")


def _field(config: Any, name: str, default: Any = None) -> Any:
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


def gpt2_config_from_hf(hf_config: Any, *, scan_layers: bool = False):
    """The seqjax :class:`seqjax.nn.GPT2Config` of a Hugging Face ``GPT2Config`` (the object or
    its ``to_dict()``; the field names are the same, ``activation_function`` becomes
    ``activation``). ``scan_layers``: stack the layers and scan over them.

    Refuses what ``GPTLanguageModel`` does not compute: an ``activation_function`` outside
    :data:`ACTIVATIONS`, ``scale_attn_weights=False``, ``scale_attn_by_inverse_layer_idx=True``,
    ``add_cross_attention=True``.
    """
    from seqjax.nn.transformer import GPT2Config  # the model's config; this module stays model-free otherwise

    missing = [k for k in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head") if _field(hf_config, k) is None]
    if missing:
        raise ValueError(f"hf_config must be a GPT-2 config with {missing}; got {type(hf_config).__name__}.")
    activation = _field(hf_config, "activation_function", "gelu_new")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation_function must be one of {tuple(ACTIVATIONS)}; got {activation!r}.")
    for name, supported in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                            ("add_cross_attention", False)):
        value = _field(hf_config, name, supported)
        if bool(value) != supported:
            raise ValueError(f"{name}={value!r} is not supported by GPTLanguageModel (expected {supported}).")
    return GPT2Config(
        vocab_size=int(_field(hf_config, "vocab_size")),
        n_positions=int(_field(hf_config, "n_positions")),
        n_embd=int(_field(hf_config, "n_embd")),
        n_layer=int(_field(hf_config, "n_layer")),
        n_head=int(_field(hf_config, "n_head")),
        n_inner=_field(hf_config, "n_inner"),
        activation=ACTIVATIONS[activation],
        resid_pdrop=float(_field(hf_config, "resid_pdrop", 0.1)),
        embd_pdrop=float(_field(hf_config, "embd_pdrop", 0.1)),
        attn_pdrop=float(_field(hf_config, "attn_pdrop", 0.1)),
        layer_norm_epsilon=float(_field(hf_config, "layer_norm_epsilon", 1e-5)),
        initializer_range=float(_field(hf_config, "initializer_range", 0.02)),
        tie_word_embeddings=bool(_field(hf_config, "tie_word_embeddings", True)),
        scan_layers=bool(scan_layers),
    )


def _expect(state: dict, key: str, shape: tuple[int, ...]) -> np.ndarray:
    value = state[key]
    if value.shape != shape:
        raise ValueError(f"state_dict[{key!r}] must have shape {shape} for this config; got {value.shape}.")
    return value


def from_hf_gpt2(state_dict: Mapping[str, Any], config: Any) -> dict:
    """The parameter pytree of :class:`seqjax.nn.GPTLanguageModel` from a Hugging Face GPT-2
    state dict (module docstring for the name map).

    Args:
      state_dict: ``{name: numpy array}`` of ``GPT2LMHeadModel`` (``transformer.`` prefix) or
        ``GPT2Model`` (none).
      config: the seqjax ``GPT2Config`` (its ``scan_layers`` picks a list of layers or one
        stacked dict), or a Hugging Face config, converted by :func:`gpt2_config_from_hf`.

    Returns:
      ``{"token_embedding": [V, d], "position_embedding": [P, d], "blocks": {"layers": ...,
      "final_norm": ...}}``, plus ``"lm_head": [d, V]`` when the config unties the head; float32.
    """
    from seqjax.nn.transformer import GPT2Config

    if not isinstance(config, GPT2Config):
        config = gpt2_config_from_hf(config)
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of names to numpy arrays; got {type(state_dict).__name__}.")
    state = {}
    for key, value in state_dict.items():
        name = key[len("transformer."):] if key.startswith("transformer.") else key
        layer = _LAYER.fullmatch(name)
        if layer and layer.group(2) in _SKIPPED:
            continue
        state[name] = np.asarray(value, np.float32)
    c = config
    d, v, p, f = c.n_embd, c.vocab_size, c.n_positions, c.n_inner or 4 * c.n_embd
    expected = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"}
    expected |= {f"h.{i}.{k}" for i in range(c.n_layer) for k in _LAYER_KEYS}
    missing = sorted(expected - set(state))
    if missing:
        raise ValueError(f"state_dict lacks {missing[:6]}{' ...' if len(missing) > 6 else ''} for a GPT-2 of "
                         f"{c.n_layer} layers; expected the keys of a GPT2LMHeadModel / GPT2Model state dict.")
    unknown = sorted(set(state) - expected - {"lm_head.weight"})
    if unknown:
        raise ValueError(f"state_dict has keys {unknown[:6]} that this GPT-2 ({c.n_layer} layers, no cross-attention) "
                         "does not have.")

    def norm(prefix):
        return {"scale": _expect(state, f"{prefix}.weight", (d,)), "bias": _expect(state, f"{prefix}.bias", (d,))}

    layers = []
    for i in range(c.n_layer):
        h = f"h.{i}"
        w_q, w_k, w_v = np.split(_expect(state, f"{h}.attn.c_attn.weight", (d, 3 * d)), 3, axis=1)
        b_q, b_k, b_v = np.split(_expect(state, f"{h}.attn.c_attn.bias", (3 * d,)), 3)
        layers.append({
            "self_attn": {
                "w_q": w_q, "b_q": b_q, "w_k": w_k, "b_k": b_k, "w_v": w_v, "b_v": b_v,
                "w_o": _expect(state, f"{h}.attn.c_proj.weight", (d, d)),
                "b_o": _expect(state, f"{h}.attn.c_proj.bias", (d,)),
            },
            "ffn": {
                "w_1": _expect(state, f"{h}.mlp.c_fc.weight", (d, f)), "b_1": _expect(state, f"{h}.mlp.c_fc.bias", (f,)),
                "w_2": _expect(state, f"{h}.mlp.c_proj.weight", (f, d)), "b_2": _expect(state, f"{h}.mlp.c_proj.bias", (d,)),
            },
            "norm_1": norm(f"{h}.ln_1"),
            "norm_2": norm(f"{h}.ln_2"),
        })
    token = _expect(state, "wte.weight", (v, d))
    params = {
        "token_embedding": token,
        "position_embedding": _expect(state, "wpe.weight", (p, d)),
        "blocks": {"layers": layers, "final_norm": norm("ln_f")},
    }
    head = state.get("lm_head.weight")
    if c.tie_word_embeddings:
        if head is not None and not np.array_equal(_expect(state, "lm_head.weight", (v, d)), token):
            raise ValueError("lm_head.weight differs from wte.weight but the config ties them "
                             "(tie_word_embeddings=True); convert with tie_word_embeddings=False.")
    else:
        if head is None:
            raise ValueError("state_dict lacks 'lm_head.weight' but the config unties the head (tie_word_embeddings=False).")
        params["lm_head"] = _expect(state, "lm_head.weight", (v, d)).T
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    if c.scan_layers:
        params["blocks"]["layers"] = stack_layers(params["blocks"]["layers"])
    return params


def _path_part(key: Any) -> Any:
    for attr in ("key", "idx", "name"):  # DictKey, SequenceKey, GetAttrKey
        if hasattr(key, attr):
            return getattr(key, attr)
    return key


def _is_subsequence(short: tuple, long: tuple) -> bool:
    it = iter(long)
    return all(any(part == other for other in it) for part in short)


def load_gpt2_params(model: Any, params: dict) -> None:
    """Write ``params`` (from :func:`from_hf_gpt2`) into ``model``, a ``GPTLanguageModel`` of the
    same config, in place (``nnx.update``).

    Each ``nnx.Param`` of the model takes the array whose path in ``params`` is its own path with
    the module attributes in between left out (``blocks.layers[0].ffn.w_1`` for
    ``blocks.stack.layers[0].ffn.w_1``); every parameter must be matched exactly once, with its
    shape.
    """
    from flax import nnx

    state = nnx.state(model, nnx.Param)
    pure = nnx.to_pure_dict(state)
    flat_params = {tuple(map(_path_part, path)): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    used = set()
    for path, variable in nnx.to_flat_state(state):
        matches = [q for q in flat_params if q[-1] == path[-1] and _is_subsequence(q, path)]
        if len(matches) != 1:
            raise ValueError(f"the model parameter {'/'.join(map(str, path))} matches {len(matches)} entries of params "
                             f"({['/'.join(map(str, m)) for m in matches][:4]}); expected exactly one.")
        value = flat_params[matches[0]]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"params {'/'.join(map(str, matches[0]))} has shape {tuple(value.shape)} but the model "
                             f"parameter {'/'.join(map(str, path))} has {tuple(variable.shape)}: build the model "
                             "with the converted config (gpt2_config_from_hf).")
        node = pure
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = jnp.asarray(value, variable.dtype)
        used.add(matches[0])
    unused = sorted('/'.join(map(str, q)) for q in set(flat_params) - used)
    if unused:
        raise ValueError(f"params has entries the model does not: {unused[:6]}.")
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)


def gpt2_from_hf(state_dict: Mapping[str, Any], hf_config: Any, *, scan_layers: bool = False, rngs: Any = None):
    """A :class:`seqjax.nn.GPTLanguageModel` with the weights of a Hugging Face GPT-2:
    :func:`gpt2_config_from_hf`, :func:`from_hf_gpt2`, :func:`load_gpt2_params`. ``rngs``
    (default ``nnx.Rngs(0)``) only draws the initial weights that the checkpoint replaces."""
    from flax import nnx

    from seqjax.nn.transformer import GPTLanguageModel

    config = gpt2_config_from_hf(hf_config, scan_layers=scan_layers)
    params = from_hf_gpt2(state_dict, config)
    model = GPTLanguageModel(config, rngs=nnx.Rngs(0) if rngs is None else rngs)
    load_gpt2_params(model, params)
    return model
