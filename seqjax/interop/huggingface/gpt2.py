"""Convert Hugging Face GPT-2 checkpoints to the parameter pytree of seqjax's GPT-2.

Pure conversion, with no model code: a state dict of numpy arrays in, the plain pytree of
``GPTLanguageModel.pure_params()`` out. The NNX side lives with the model: ``GPT2Config.from_hf``
(a Hugging Face config -> seqjax's, refusing what the model does not compute with
:func:`check_hf_gpt2_config`) and ``GPTLanguageModel.from_hf`` (a ready model, its parameters
written with ``load_pure_params`` of the ``nn`` package's ``params`` module).

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

* :func:`from_hf_gpt2`: the state dict -> the plain parameter pytree
  (``{"token_embedding", "position_embedding", "blocks": {"layers", "final_norm"}[, "lm_head"]}``,
  the layers a list, or one stacked dict with ``scan_layers=True``).
* :func:`check_hf_gpt2_config`: the GPT-2 fields of a Hugging Face config, refusing the options
  seqjax's GPT-2 does not compute.
* :func:`to_hf_gpt2`: the inverse, the pytree -> a ``GPT2LMHeadModel`` state dict with the names
  ``save_pretrained`` writes; :func:`to_hf_gpt2_config` the config for it.
* :data:`ACTIVATIONS`: Hugging Face's activation names -> seqjax's.

Example::

    >>> import numpy as np
    >>> from seqjax.interop.huggingface import from_hf_gpt2
    >>> config = {"vocab_size": 11, "n_positions": 8, "n_embd": 4, "n_layer": 1, "n_head": 2}
    >>> rng = np.random.default_rng(0)
    >>> shapes = {"wte.weight": (11, 4), "wpe.weight": (8, 4), "ln_f.weight": (4,), "ln_f.bias": (4,),
    ...           "h.0.ln_1.weight": (4,), "h.0.ln_1.bias": (4,), "h.0.ln_2.weight": (4,),
    ...           "h.0.ln_2.bias": (4,), "h.0.attn.c_attn.weight": (4, 12), "h.0.attn.c_attn.bias": (12,),
    ...           "h.0.attn.c_proj.weight": (4, 4), "h.0.attn.c_proj.bias": (4,),
    ...           "h.0.mlp.c_fc.weight": (4, 16), "h.0.mlp.c_fc.bias": (16,),
    ...           "h.0.mlp.c_proj.weight": (16, 4), "h.0.mlp.c_proj.bias": (4,)}
    >>> state_dict = {k: rng.normal(size=s) for k, s in shapes.items()}
    >>> params = from_hf_gpt2(state_dict, config)
    >>> sorted(params["blocks"]), sorted(params["blocks"]["layers"][0]["self_attn"])
    (['final_norm', 'layers'], ['b_k', 'b_o', 'b_q', 'b_v', 'w_k', 'w_o', 'w_q', 'w_v'])
    >>> from_hf_gpt2(state_dict, config | {"scan_layers": True})["blocks"]["layers"]["ffn"]["w_1"].shape
    (1, 4, 16)
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks
from seqjax.transformer.layout import stack_layers, unstack_layers

ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
"""Hugging Face's ``activation_function`` names -> seqjax's (``gelu`` is the exact erf form in both)."""

SIZE_FIELDS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
"""The fields every GPT-2 config must have (Hugging Face's names, which seqjax's config keeps)."""

HF_DEFAULTS = {
    "n_inner": None, "activation_function": "gelu_new", "resid_pdrop": 0.1, "embd_pdrop": 0.1,
    "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-5, "initializer_range": 0.02, "tie_word_embeddings": True,
}
"""Hugging Face ``GPT2Config``'s defaults for the other fields seqjax's GPT-2 reads."""

_UNSUPPORTED = (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False), ("add_cross_attention", False))
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


def _require_sizes(name: str, config: Any) -> None:
    missing = [k for k in SIZE_FIELDS if _field(config, k) is None]
    if missing:
        raise ValueError(f"{name} must be a GPT-2 config (an object or a mapping) with the fields {list(SIZE_FIELDS)}; "
                         f"got a {type(config).__name__} without {missing}.")
    for k in SIZE_FIELDS:
        _checks.positive_int(f"{name}.{k}", _field(config, k))
    n_inner = _field(config, "n_inner")
    if n_inner is not None:
        _checks.positive_int(f"{name}.n_inner", n_inner)


def check_hf_gpt2_config(hf_config: Any) -> dict:
    """The GPT-2 fields of a Hugging Face ``GPT2Config`` (the object or its ``to_dict()``) as a
    dict with Hugging Face's names, :data:`HF_DEFAULTS` filling those absent; a ``ValueError``
    for what seqjax's GPT-2 does not compute.

    Refused: a missing or non-positive size (:data:`SIZE_FIELDS`, ``n_inner``), an
    ``activation_function`` outside :data:`ACTIVATIONS`, ``scale_attn_weights=False``,
    ``scale_attn_by_inverse_layer_idx=True``, ``add_cross_attention=True``, a ``model_type``
    other than ``"gpt2"`` (GPT-Neo, GPT-J ... differ in their layers). Accepted:
    ``reorder_and_upcast_attn`` (the same function: it scales before the product and takes the
    softmax in float32, as seqjax does), ``n_ctx`` (older configs; unused), ``summary_*`` (the
    double-heads model's), token ids.

    Example::

        >>> from seqjax.interop.huggingface import check_hf_gpt2_config
        >>> fields = check_hf_gpt2_config({"vocab_size": 11, "n_positions": 8, "n_embd": 4,
        ...                                "n_layer": 1, "n_head": 2})
        >>> fields["activation_function"], fields["tie_word_embeddings"]
        ('gelu_new', True)
        >>> check_hf_gpt2_config(fields | {"activation_function": "silu"})
        Traceback (most recent call last):
        ...
        ValueError: hf_config.activation_function must be one of ('gelu_new', 'gelu_pytorch_tanh', 'gelu', 'relu'); got 'silu'.
    """
    model_type = _field(hf_config, "model_type")
    if model_type is not None and model_type != "gpt2":
        raise ValueError(f"hf_config.model_type must be 'gpt2' for seqjax's GPT-2; got {model_type!r} "
                         "(another architecture: its layers differ).")
    _require_sizes("hf_config", hf_config)
    fields = {k: _field(hf_config, k) for k in SIZE_FIELDS}
    fields |= {k: _field(hf_config, k, default) for k, default in HF_DEFAULTS.items()}
    if fields["activation_function"] not in ACTIVATIONS:
        raise ValueError(f"hf_config.activation_function must be one of {tuple(ACTIVATIONS)}; "
                         f"got {fields['activation_function']!r}.")
    for name, supported in _UNSUPPORTED:
        value = _field(hf_config, name, supported)
        if bool(value) != supported:
            raise ValueError(f"hf_config.{name}={value!r} is not supported by seqjax's GPT-2 (expected {supported}).")
    return fields


def _expect(state: dict, key: str, shape: tuple[int, ...]) -> np.ndarray:
    value = state[key]
    if value.shape != shape:
        raise ValueError(f"state_dict[{key!r}] must have shape {shape} for this config; got {value.shape}.")
    return value


def from_hf_gpt2(state_dict: Mapping[str, Any], config: Any) -> dict:
    """The parameter pytree of seqjax's GPT-2 (``GPTLanguageModel.pure_params()``) from a Hugging
    Face GPT-2 state dict (module docstring for the name map).

    Args:
      state_dict: ``{name: numpy array}`` of ``GPT2LMHeadModel`` (``transformer.`` prefix) or
        ``GPT2Model`` (none).
      config: any object or mapping with the GPT-2 fields ``vocab_size``, ``n_positions``,
        ``n_embd``, ``n_layer``, ``n_head``, optional ``n_inner`` (default ``4 * n_embd``),
        ``tie_word_embeddings`` (default True) and ``scan_layers`` (default False: a list of
        layers; True: one stacked dict for scan): seqjax's ``GPT2Config``, a Hugging Face config
        or its ``to_dict()``. Only the sizes are read; the options that change the computation
        are checked where the model is built (:func:`check_hf_gpt2_config`).

    Returns:
      ``{"token_embedding": [V, d], "position_embedding": [P, d], "blocks": {"layers": ...,
      "final_norm": ...}}``, plus ``"lm_head": [d, V]`` when the config unties the head; float32.
    """
    _require_sizes("config", config)
    c = SimpleNamespace(**{k: int(_field(config, k)) for k in SIZE_FIELDS},
                        n_inner=_field(config, "n_inner"),
                        tie_word_embeddings=bool(_field(config, "tie_word_embeddings", True)),
                        scan_layers=bool(_field(config, "scan_layers", False)))
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of names to numpy arrays; got {type(state_dict).__name__}.")
    state = {}
    for key, value in state_dict.items():
        name = key[len("transformer."):] if key.startswith("transformer.") else key
        layer = _LAYER.fullmatch(name)
        if layer and layer.group(2) in _SKIPPED:
            continue
        state[name] = np.asarray(value, np.float32)
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


def _absolute_only(config: Any) -> None:
    positional = _field(config, "positional", "absolute")
    if positional != "absolute":
        raise ValueError(f"config.positional={positional!r} has no Hugging Face GPT-2 counterpart (GPT2LMHeadModel "
                         "learns absolute positions); only positional='absolute' models convert.")


def to_hf_gpt2(params: Mapping[str, Any], config: Any) -> dict[str, np.ndarray]:
    """The ``GPT2LMHeadModel`` state dict (numpy float32, contiguous, ``transformer.`` prefix) of
    the seqjax pytree ``params`` (``GPTLanguageModel.pure_params()``): the inverse of
    :func:`from_hf_gpt2`, with the names ``save_pretrained`` writes (a tied head is not stored;
    an untied one is ``lm_head.weight [V, d]``). Looped or stacked layers alike.

    Example::

        >>> import jax, numpy as np
        >>> from flax import nnx
        >>> from seqjax.nn import GPT2Config, GPTLanguageModel
        >>> from seqjax.interop.huggingface import to_hf_gpt2
        >>> config = GPT2Config(vocab_size=11, n_positions=8, n_embd=4, n_layer=1, n_head=2)
        >>> params = GPTLanguageModel(config, rngs=nnx.Rngs(0)).pure_params()
        >>> state = to_hf_gpt2(params, config)
        >>> state["transformer.h.0.attn.c_attn.weight"].shape
        (4, 12)
        >>> back = from_hf_gpt2(state, config)
        >>> all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)))
        True
    """
    _require_sizes("config", config)
    _absolute_only(config)
    if not isinstance(params, Mapping) or not {"token_embedding", "position_embedding", "blocks"} <= set(params):
        raise ValueError("params must be GPTLanguageModel.pure_params() (token_embedding, position_embedding, blocks); "
                         f"got {sorted(params) if isinstance(params, Mapping) else type(params).__name__}.")
    out: dict[str, np.ndarray] = {}

    def put(name, value):
        out[name] = np.ascontiguousarray(np.asarray(value, np.float32))

    def norm(name, p):
        put(f"{name}.weight", p["scale"])
        put(f"{name}.bias", p["bias"])

    put("transformer.wte.weight", params["token_embedding"])
    put("transformer.wpe.weight", params["position_embedding"])
    layers = params["blocks"]["layers"]
    for i, layer in enumerate(unstack_layers(layers) if isinstance(layers, Mapping) else layers):
        h, a, ffn = f"transformer.h.{i}", layer["self_attn"], layer["ffn"]
        norm(f"{h}.ln_1", layer["norm_1"])
        norm(f"{h}.ln_2", layer["norm_2"])
        put(f"{h}.attn.c_attn.weight", np.concatenate([np.asarray(a[k]) for k in ("w_q", "w_k", "w_v")], axis=1))
        put(f"{h}.attn.c_attn.bias", np.concatenate([np.asarray(a[k]) for k in ("b_q", "b_k", "b_v")]))
        put(f"{h}.attn.c_proj.weight", a["w_o"])
        put(f"{h}.attn.c_proj.bias", a["b_o"])
        put(f"{h}.mlp.c_fc.weight", ffn["w_1"])
        put(f"{h}.mlp.c_fc.bias", ffn["b_1"])
        put(f"{h}.mlp.c_proj.weight", ffn["w_2"])
        put(f"{h}.mlp.c_proj.bias", ffn["b_2"])
    norm("transformer.ln_f", params["blocks"]["final_norm"])
    tied = bool(_field(config, "tie_word_embeddings", True))
    if tied and "lm_head" in params:
        raise ValueError("params has an lm_head but the config ties the head (tie_word_embeddings=True).")
    if not tied:
        if "lm_head" not in params:
            raise ValueError("params lacks the lm_head that an untied config (tie_word_embeddings=False) has.")
        put("lm_head.weight", np.asarray(params["lm_head"]).T)
    from_hf_gpt2(out, config)  # the shapes against the config, by the reader itself
    return out


def to_hf_gpt2_config(config: Any) -> dict:
    """A Hugging Face ``config.json`` dict (``GPT2LMHeadModel``) for seqjax's ``GPT2Config``
    ``config`` (any object or mapping with its fields); ``GPT2Config.from_dict`` of
    ``transformers`` reads it. No BOS/EOS ids are set (seqjax's config has none)."""
    _require_sizes("config", config)
    _absolute_only(config)
    reverse = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
    act = _field(config, "activation", "gelu_tanh")
    if act not in reverse:
        raise ValueError(f"config.activation must be one of {tuple(reverse)}; got {act!r}.")
    out = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], **{k: _field(config, k) for k in SIZE_FIELDS},
           "activation_function": reverse[act], "bos_token_id": None, "eos_token_id": None}
    for k, default in HF_DEFAULTS.items():
        if k != "activation_function":
            out[k] = _field(config, k, default)
    out |= {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
            "add_cross_attention": False}
    check_hf_gpt2_config(out)
    return out
