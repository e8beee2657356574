"""Convert Hugging Face BERT checkpoints to and from the parameter pytrees of seqjax's BERT.

Pure conversion, with no model code: a state dict of numpy arrays and a config in, the plain
pytree of ``pure_params()`` of :class:`seqjax.nn.transformer.BertModel` or one of its head models
out (:func:`from_hf_bert`), and back (:func:`to_hf_bert`). :func:`check_hf_bert_config` reads a
Hugging Face ``BertConfig`` (the object, its ``to_dict()`` or a ``config.json``) and refuses what
seqjax's BERT does not compute. The NNX side (``BertForMaskedLM.from_pretrained(dir)`` ...) is in
:mod:`seqjax.nn.transformer.pretrained`.

Name map (Hugging Face ``nn.Linear`` stores ``[out, in]``; seqjax ``y = x W + b`` stores
``[in, out]``, so every Linear weight is transposed; ``layer.{i}`` is layer ``i``; the ``bert.``
prefix of the head models is optional on input)::

    embeddings.word_embeddings.weight [V, d]        -> embeddings.token [V, d]
    embeddings.position_embeddings.weight [P, d]    -> embeddings.position [P, d]
    embeddings.token_type_embeddings.weight [S, d]  -> embeddings.token_type [S, d]
    embeddings.LayerNorm.weight / .bias             -> embeddings.norm.scale / .bias
    encoder.layer.{i}.attention.self.query / key / value .weight^T / .bias
                                                    -> encoder.layers[i].self_attn.w_q / w_k / w_v, b_q / b_k / b_v
    encoder.layer.{i}.attention.output.dense        -> encoder.layers[i].self_attn.w_o / b_o
    encoder.layer.{i}.attention.output.LayerNorm    -> encoder.layers[i].norm_1
    encoder.layer.{i}.intermediate.dense            -> encoder.layers[i].ffn.w_1 / b_1
    encoder.layer.{i}.output.dense                  -> encoder.layers[i].ffn.w_2 / b_2
    encoder.layer.{i}.output.LayerNorm              -> encoder.layers[i].norm_2
    pooler.dense                                    -> pooler.w / b
    cls.predictions.transform.dense                 -> mlm_head.transform.w / b        (BertForMaskedLM)
    cls.predictions.transform.LayerNorm             -> mlm_head.norm
    cls.predictions.bias [V]                        -> mlm_head.bias (the decoder is tied to the word embeddings)
    classifier                                      -> classifier.w / b   (BertForSequence/TokenClassification)
    cls.seq_relationship                            -> nsp_head.w / b     (BertForNextSentencePrediction)

Both run the post-LN block ``LN(x + Attn(x))``, ``LN(x + FFN(x))`` with the same head split
(contiguous ``d / h`` slices) and the exact GELU; the tests compare the outputs with
``transformers`` to 1e-5. Skipped on input: ``embeddings.position_ids`` (a buffer of older
versions) and the heads of other architectures (``cls.*`` into a ``BertModel``, the NSP head into
a ``BertForMaskedLM`` ...), as Hugging Face's ``from_pretrained`` does.

Example::

    >>> import numpy as np
    >>> from seqjax.interop.huggingface import check_hf_bert_config, from_hf_bert, to_hf_bert
    >>> config = check_hf_bert_config({"vocab_size": 11, "hidden_size": 4, "num_hidden_layers": 1,
    ...                                "num_attention_heads": 2, "intermediate_size": 8,
    ...                                "max_position_embeddings": 6})
    >>> config["hidden_act"], config["type_vocab_size"]
    ('gelu', 2)
    >>> rng = np.random.default_rng(0)
    >>> from seqjax.interop.huggingface import hf_bert_shapes
    >>> shapes = hf_bert_shapes(config, "BertModel")
    >>> state = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
    >>> params = from_hf_bert(state, config, "BertModel")
    >>> sorted(params), params["encoder"]["layers"][0]["ffn"]["w_1"].shape
    (['embeddings', 'encoder', 'pooler'], (4, 8))
    >>> back = to_hf_bert(params, config, "BertModel")
    >>> all(np.array_equal(back[k], state[k]) for k in state)
    True
    >>> check_hf_bert_config(config | {"is_decoder": True})
    Traceback (most recent call last):
    ...
    ValueError: hf_config.is_decoder=True is not supported by seqjax's BERT (expected False): seqjax's BERT is a bidirectional encoder without a KV cache.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks
from seqjax.transformer.layout import stack_layers, unstack_layers

HIDDEN_ACTIVATIONS = {"gelu": "gelu", "gelu_python": "gelu", "relu": "relu", "gelu_new": "gelu_tanh",
                      "gelu_pytorch_tanh": "gelu_tanh"}
"""Hugging Face's ``hidden_act`` names that seqjax's BERT computes -> seqjax's activation names
(``gelu`` and ``gelu_python`` are the exact erf form; ``gelu_new`` / ``gelu_pytorch_tanh`` the
tanh approximation)."""

ARCHITECTURES = {
    # architecture: (pooler, head name in the pure pytree, Hugging Face head prefix)
    "BertModel": (True, None, None),
    "BertForMaskedLM": (False, "mlm_head", "cls.predictions"),
    "BertForSequenceClassification": (True, "classifier", "classifier"),
    "BertForTokenClassification": (False, "classifier", "classifier"),
    "BertForNextSentencePrediction": (True, "nsp_head", "cls.seq_relationship"),
}
"""The Hugging Face BERT classes converted here: ``(has a pooler, head key of the pytree, head
prefix of the state dict)``. Each is a seqjax class of the same name in :mod:`seqjax.nn.transformer`."""

SIZE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "max_position_embeddings")
"""The fields every BERT config must have (Hugging Face's names, which seqjax's ``BertConfig`` keeps)."""

HF_DEFAULTS = {
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "type_vocab_size": 2,
    "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0, "classifier_dropout": None,
    "tie_word_embeddings": True,
}
"""Hugging Face ``BertConfig``'s defaults for the other fields seqjax's BERT reads."""

_UNSUPPORTED = (
    ("is_decoder", False, "seqjax's BERT is a bidirectional encoder without a KV cache"),
    ("add_cross_attention", False, "seqjax's BERT has no cross-attention"),
    ("position_embedding_type", "absolute",
     "seqjax's BERT adds learned absolute positions (the relative_key variants of Huang et al. 2020 are not computed)"),
)
_MODEL_TYPES = ("bert",)
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)")
_SKIPPED = ("embeddings.position_ids",)


def _field(config: Any, name: str, default: Any = None) -> Any:
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


def num_labels(hf_config: Any) -> int:
    """The number of labels of a Hugging Face config: ``len(id2label)`` (default 2, as Hugging
    Face's ``PreTrainedConfig``), or a ``num_labels`` field."""
    id2label = _field(hf_config, "id2label")
    n = len(id2label) if id2label else _field(hf_config, "num_labels", 2)
    _checks.positive_int("hf_config.num_labels", n)
    return int(n)


def check_hf_bert_config(hf_config: Any) -> dict:
    """The BERT fields of a Hugging Face ``BertConfig`` (the object, its ``to_dict()`` or a
    parsed ``config.json``) as a dict with Hugging Face's names, :data:`HF_DEFAULTS` filling those
    absent and ``hidden_act`` kept as Hugging Face names it; a ``ValueError`` for what seqjax's
    BERT does not compute.

    Refused: a ``model_type`` other than ``"bert"`` (RoBERTa, ALBERT, DistilBERT ... differ in
    their embeddings or layers); a missing or non-positive size (:data:`SIZE_FIELDS`,
    ``type_vocab_size``); a ``hidden_act`` outside :data:`HIDDEN_ACTIVATIONS` or not a string;
    ``is_decoder=True`` (a causal BERT, ``BertLMHeadModel``); ``add_cross_attention=True``;
    ``position_embedding_type`` other than ``"absolute"`` (a field of transformers 4 configs,
    whose ``relative_key`` checkpoints transformers 5 would load silently as absolute ones);
    a ``pad_token_id`` outside ``[0, vocab_size)`` unless None.
    """
    model_type = _field(hf_config, "model_type")
    if model_type is not None and model_type not in _MODEL_TYPES:
        raise ValueError(f"hf_config.model_type must be 'bert' for seqjax's BERT; got {model_type!r} "
                         "(another architecture: its embeddings or layers differ).")
    missing = [k for k in SIZE_FIELDS if _field(hf_config, k) is None]
    if missing:
        raise ValueError(f"hf_config must be a BERT config (an object or a mapping) with the fields {list(SIZE_FIELDS)}; "
                         f"got a {type(hf_config).__name__} without {missing}.")
    fields = {k: _field(hf_config, k) for k in SIZE_FIELDS}
    fields |= {k: _field(hf_config, k, default) for k, default in HF_DEFAULTS.items()}
    for k in (*SIZE_FIELDS, "type_vocab_size"):
        _checks.positive_int(f"hf_config.{k}", fields[k])
    _checks.divides("hf_config.num_attention_heads", fields["num_attention_heads"], "hf_config.hidden_size",
                    fields["hidden_size"])
    act = fields["hidden_act"]
    if not isinstance(act, str) or act not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"hf_config.hidden_act must be one of {tuple(HIDDEN_ACTIVATIONS)}; got {act!r}.")
    for name, supported, why in _UNSUPPORTED:
        value = _field(hf_config, name, supported)
        if value != supported:
            raise ValueError(f"hf_config.{name}={value!r} is not supported by seqjax's BERT (expected {supported!r}): "
                             f"{why}.")
    pad = fields["pad_token_id"]
    if pad is not None and not (isinstance(pad, (int, np.integer)) and 0 <= pad < fields["vocab_size"]):
        raise ValueError(f"hf_config.pad_token_id must be None or an id in [0, {fields['vocab_size']}); got {pad!r}.")
    return fields


def _architecture(architecture: str) -> tuple:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {tuple(ARCHITECTURES)}; got {architecture!r}.")
    return ARCHITECTURES[architecture]


def _linear(prefix: str, n_in: int, n_out: int) -> dict:
    return {f"{prefix}.weight": (n_out, n_in), f"{prefix}.bias": (n_out,)}


def _norm(prefix: str, d: int) -> dict:
    return {f"{prefix}.weight": (d,), f"{prefix}.bias": (d,)}


def hf_bert_shapes(config: Any, architecture: str, *, labels: int | None = None) -> dict[str, tuple]:
    """``{Hugging Face name: shape}`` of every parameter of ``architecture`` (a key of
    :data:`ARCHITECTURES`) for ``config`` (checked by :func:`check_hf_bert_config`), with the
    ``bert.`` prefix for the head models; ``labels`` defaults to :func:`num_labels` of the config."""
    c = check_hf_bert_config(config)
    pooler, head, head_prefix = _architecture(architecture)
    d, f = c["hidden_size"], c["intermediate_size"]
    shapes = {"embeddings.word_embeddings.weight": (c["vocab_size"], d),
              "embeddings.position_embeddings.weight": (c["max_position_embeddings"], d),
              "embeddings.token_type_embeddings.weight": (c["type_vocab_size"], d),
              **_norm("embeddings.LayerNorm", d)}
    for i in range(c["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        for name in ("query", "key", "value"):
            shapes |= _linear(f"{p}.attention.self.{name}", d, d)
        shapes |= _linear(f"{p}.attention.output.dense", d, d) | _norm(f"{p}.attention.output.LayerNorm", d)
        shapes |= _linear(f"{p}.intermediate.dense", d, f) | _linear(f"{p}.output.dense", f, d)
        shapes |= _norm(f"{p}.output.LayerNorm", d)
    if pooler:
        shapes |= _linear("pooler.dense", d, d)
    if head is None:
        return shapes
    shapes = {f"bert.{k}": s for k, s in shapes.items()}
    if head == "mlm_head":
        shapes |= _linear(f"{head_prefix}.transform.dense", d, d) | _norm(f"{head_prefix}.transform.LayerNorm", d)
        shapes[f"{head_prefix}.bias"] = (c["vocab_size"],)
    else:
        n = 2 if head == "nsp_head" else (num_labels(config) if labels is None else labels)
        shapes |= _linear(head_prefix, d, n)
    return shapes


def _strip(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The state dict with numpy float32 values, the ``bert.`` prefix removed, old LayerNorm names
    (``gamma`` / ``beta``) renamed and buffers dropped."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"state_dict must be a mapping of names to numpy arrays; got {type(state_dict).__name__}.")
    state = {}
    for key, value in state_dict.items():
        name = key[len("bert."):] if key.startswith("bert.") else key
        name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name))
        if name in _SKIPPED:
            continue
        state[name] = np.asarray(value, np.float32)
    return state


def from_hf_bert(state_dict: Mapping[str, Any], config: Any, architecture: str = "BertModel", *,
                 scan_layers: bool = False) -> dict:
    """The parameter pytree of the seqjax class ``architecture`` (its ``pure_params()``) from a
    Hugging Face BERT state dict (module docstring for the name map).

    Args:
      state_dict: ``{name: numpy array}`` of a Hugging Face BERT model (a ``model.safetensors``
        file, or ``{k: v.numpy() for k, v in model.state_dict().items()}``); any of the
        :data:`ARCHITECTURES` (a ``BertForPreTraining`` checkpoint too: the heads that
        ``architecture`` lacks are skipped).
      config: the Hugging Face config (object or mapping), checked by :func:`check_hf_bert_config`.
      architecture: a key of :data:`ARCHITECTURES`.
      scan_layers: stack the layers on a leading axis (the layout of a ``scan_layers=True`` model).

    Returns:
      ``{"embeddings", "encoder": {"layers"}, "pooler"}`` for ``BertModel``; ``{"bert": ...,
      head: ...}`` for the head models (``mlm_head``, ``classifier`` or ``nsp_head``), float32.
      A head or pooler absent from the checkpoint (a ``BertModel`` checkpoint loaded for
      classification, a ``BertForMaskedLM`` one, which has no pooler, loaded as ``BertModel``)
      is absent from the result; the NNX loader keeps those parameters' initial values.
    """
    c = check_hf_bert_config(config)
    pooler, head, head_prefix = _architecture(architecture)
    if head == "mlm_head" and not c["tie_word_embeddings"]:
        raise ValueError("hf_config.tie_word_embeddings=False is not supported by seqjax's BertForMaskedLM (expected "
                         "True): its MLM decoder is the word-embedding matrix.")
    state = _strip(state_dict)
    head_state = {k: state.pop(k) for k in list(state) if k.startswith(("cls.", "classifier."))}
    n_layers = c["num_hidden_layers"]
    expected = {k[len("bert."):] if k.startswith("bert.") else k: s
                for k, s in hf_bert_shapes(config, "BertModel").items()}
    if not pooler or not any(k.startswith("pooler.") for k in state):  # unused, or absent (an MLM checkpoint)
        pooler = False
        expected = {k: s for k, s in expected.items() if not k.startswith("pooler.")}
        state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"state_dict lacks {missing[:6]}{' ...' if len(missing) > 6 else ''} for a BERT of "
                         f"{n_layers} layers; expected the keys of a Hugging Face {architecture} state dict.")
    unknown = sorted(set(state) - set(expected))
    if unknown:
        raise ValueError(f"state_dict has keys {unknown[:6]} that this BERT ({n_layers} layers, no cross-attention) "
                         "does not have.")
    for k, shape in expected.items():
        if state[k].shape != shape:
            raise ValueError(f"state_dict[{k!r}] must have shape {shape} for this config; got {state[k].shape}.")

    def linear(prefix):
        return state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]

    def norm(prefix, source=state):
        return {"scale": source[f"{prefix}.weight"], "bias": source[f"{prefix}.bias"]}

    layers = []
    for i in range(n_layers):
        p = f"encoder.layer.{i}"
        attn = {}
        for name, short in (("query", "q"), ("key", "k"), ("value", "v")):
            attn[f"w_{short}"], attn[f"b_{short}"] = linear(f"{p}.attention.self.{name}")
        attn["w_o"], attn["b_o"] = linear(f"{p}.attention.output.dense")
        w_1, b_1 = linear(f"{p}.intermediate.dense")
        w_2, b_2 = linear(f"{p}.output.dense")
        layers.append({"self_attn": attn, "ffn": {"w_1": w_1, "b_1": b_1, "w_2": w_2, "b_2": b_2},
                       "norm_1": norm(f"{p}.attention.output.LayerNorm"), "norm_2": norm(f"{p}.output.LayerNorm")})
    token = state["embeddings.word_embeddings.weight"]
    bert = {
        "embeddings": {"token": token, "position": state["embeddings.position_embeddings.weight"],
                       "token_type": state["embeddings.token_type_embeddings.weight"],
                       "norm": norm("embeddings.LayerNorm")},
        "encoder": {"layers": layers},
    }
    if pooler:
        w, b = linear("pooler.dense")
        bert["pooler"] = {"w": w, "b": b}
    params = bert if head is None else {"bert": bert}
    if head is not None:
        mine = {k: v for k, v in head_state.items() if k.startswith(head_prefix + ".")}
        if mine:
            params[head] = _head_from_hf(mine, head, head_prefix, c, token)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    if scan_layers:
        encoder = params["encoder"] if head is None else params["bert"]["encoder"]
        encoder["layers"] = stack_layers(encoder["layers"])
    return params


def _head_from_hf(state: dict, head: str, prefix: str, c: dict, token: np.ndarray) -> dict:
    d, v = c["hidden_size"], c["vocab_size"]
    if head != "mlm_head":
        w, b = state.get(f"{prefix}.weight"), state.get(f"{prefix}.bias")
        if w is None or b is None or w.ndim != 2 or w.shape[1] != d or b.shape != w.shape[:1]:
            raise ValueError(f"state_dict must hold {prefix}.weight [labels, {d}] and {prefix}.bias [labels]; got "
                             f"{ {k: s.shape for k, s in state.items()} }.")
        if head == "nsp_head" and w.shape[0] != 2:
            raise ValueError(f"state_dict[{prefix + '.weight'!r}] must have 2 rows (is next / is random); got {w.shape}.")
        return {"w": w.T, "b": b}
    expected = {f"{prefix}.transform.dense.weight": (d, d), f"{prefix}.transform.dense.bias": (d,),
                f"{prefix}.transform.LayerNorm.weight": (d,), f"{prefix}.transform.LayerNorm.bias": (d,),
                f"{prefix}.bias": (v,)}
    for k, shape in expected.items():
        if k not in state or state[k].shape != shape:
            got = None if k not in state else state[k].shape
            raise ValueError(f"state_dict[{k!r}] must have shape {shape} for this config; got {got}.")
    decoder = state.get(f"{prefix}.decoder.weight")
    if decoder is not None and not np.array_equal(decoder, token):
        raise ValueError(f"{prefix}.decoder.weight differs from the word embeddings, but seqjax's BertForMaskedLM ties "
                         "its decoder to them (tie_word_embeddings=True).")
    decoder_bias = state.get(f"{prefix}.decoder.bias")
    if decoder_bias is not None and not np.array_equal(decoder_bias, state[f"{prefix}.bias"]):
        raise ValueError(f"{prefix}.decoder.bias differs from {prefix}.bias; expected the tied copy of it.")
    unknown = sorted(set(state) - set(expected) - {f"{prefix}.decoder.weight", f"{prefix}.decoder.bias"})
    if unknown:
        raise ValueError(f"state_dict has MLM-head keys {unknown[:6]} that seqjax's BertForMaskedLM does not have.")
    return {"transform": {"w": state[f"{prefix}.transform.dense.weight"].T,
                          "b": state[f"{prefix}.transform.dense.bias"]},
            "norm": {"scale": state[f"{prefix}.transform.LayerNorm.weight"],
                     "bias": state[f"{prefix}.transform.LayerNorm.bias"]},
            "bias": state[f"{prefix}.bias"]}


def to_hf_bert(params: Mapping[str, Any], config: Any, architecture: str = "BertModel") -> dict[str, np.ndarray]:
    """The Hugging Face state dict (numpy float32, contiguous) of the seqjax pytree ``params`` of
    ``architecture``: the inverse of :func:`from_hf_bert`, with the names ``save_pretrained``
    writes (the ``bert.`` prefix for the head models; the MLM decoder, tied to the word
    embeddings, not stored). Looped or stacked layers alike."""
    check_hf_bert_config(config)
    pooler, head, head_prefix = _architecture(architecture)
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be the pure_params() dict of a seqjax {architecture}; got {type(params).__name__}.")
    bert = params if head is None else params.get("bert")
    if not isinstance(bert, Mapping) or "embeddings" not in bert or "encoder" not in bert:
        raise ValueError(f"params must be the pure_params() of a seqjax {architecture} "
                         f"({'{embeddings, encoder, pooler}' if head is None else '{bert, ' + head + '}'}); got keys "
                         f"{sorted(params)}.")
    out: dict[str, np.ndarray] = {}
    prefix = "" if head is None else "bert."

    def put(name, value):
        out[name] = np.ascontiguousarray(np.asarray(value, np.float32))

    def linear(name, w, b):
        put(f"{name}.weight", np.asarray(w).T)
        put(f"{name}.bias", b)

    def norm(name, p):
        put(f"{name}.weight", p["scale"])
        put(f"{name}.bias", p["bias"])

    emb = bert["embeddings"]
    put(f"{prefix}embeddings.word_embeddings.weight", emb["token"])
    put(f"{prefix}embeddings.position_embeddings.weight", emb["position"])
    put(f"{prefix}embeddings.token_type_embeddings.weight", emb["token_type"])
    norm(f"{prefix}embeddings.LayerNorm", emb["norm"])
    layers = bert["encoder"]["layers"]
    for i, layer in enumerate(unstack_layers(layers) if isinstance(layers, Mapping) else layers):
        p, a, ffn = f"{prefix}encoder.layer.{i}", layer["self_attn"], layer["ffn"]
        for name, short in (("query", "q"), ("key", "k"), ("value", "v")):
            linear(f"{p}.attention.self.{name}", a[f"w_{short}"], a[f"b_{short}"])
        linear(f"{p}.attention.output.dense", a["w_o"], a["b_o"])
        norm(f"{p}.attention.output.LayerNorm", layer["norm_1"])
        linear(f"{p}.intermediate.dense", ffn["w_1"], ffn["b_1"])
        linear(f"{p}.output.dense", ffn["w_2"], ffn["b_2"])
        norm(f"{p}.output.LayerNorm", layer["norm_2"])
    if pooler:
        if "pooler" not in bert:
            raise ValueError(f"params lacks the pooler that a Hugging Face {architecture} has.")
        linear(f"{prefix}pooler.dense", bert["pooler"]["w"], bert["pooler"]["b"])
    if head is not None:
        if head not in params:
            raise ValueError(f"params lacks {head!r}, the head of a {architecture}.")
        h = params[head]
        if head == "mlm_head":
            linear(f"{head_prefix}.transform.dense", h["transform"]["w"], h["transform"]["b"])
            norm(f"{head_prefix}.transform.LayerNorm", h["norm"])
            put(f"{head_prefix}.bias", h["bias"])
        else:
            linear(head_prefix, h["w"], h["b"])
    state = out
    expected = hf_bert_shapes(config, architecture, labels=None if head != "classifier" else
                              np.shape(params[head]["w"])[1])
    wrong = {k: (v.shape, expected.get(k)) for k, v in state.items() if expected.get(k) != v.shape}
    if wrong or set(expected) - set(state):
        raise ValueError(f"params do not fit the config: (shape, expected) {dict(list(wrong.items())[:4])}, missing "
                         f"{sorted(set(expected) - set(state))[:4]}.")
    return state


def to_hf_bert_config(config: Any, architecture: str = "BertModel", *, labels: int | None = None) -> dict:
    """A Hugging Face ``config.json`` dict for seqjax's ``BertConfig`` ``config`` (any object or
    mapping with its fields) and ``architecture``; ``labels`` sets ``id2label`` / ``label2id``
    for the classification heads. ``BertConfig.from_dict`` of ``transformers`` reads it."""
    _architecture(architecture)
    if _field(config, "positional", "absolute") != "absolute":
        raise ValueError(f"config.positional must be 'absolute' for a Hugging Face BERT checkpoint (its "
                         f"position_embedding_type has no ALiBi or T5 bias); got {_field(config, 'positional')!r}.")
    act = _field(config, "hidden_act", "gelu")
    reverse = {"gelu": "gelu", "relu": "relu", "gelu_tanh": "gelu_new"}
    if act not in reverse:
        raise ValueError(f"config.hidden_act must be one of {tuple(reverse)}; got {act!r}.")
    out = {"model_type": "bert", "architectures": [architecture],
           **{k: _field(config, k) for k in SIZE_FIELDS}, "hidden_act": reverse[act]}
    for k, default in HF_DEFAULTS.items():
        if k not in ("hidden_act", "tie_word_embeddings"):
            out[k] = _field(config, k, default)
    out |= {"tie_word_embeddings": True, "is_decoder": False, "add_cross_attention": False}
    if labels is not None:
        _checks.positive_int("labels", labels)
        out["id2label"] = {str(i): f"LABEL_{i}" for i in range(labels)}
        out["label2id"] = {f"LABEL_{i}": i for i in range(labels)}
    check_hf_bert_config(out)
    return out
