"""BERT (Devlin et al. 2019) as NNX modules: :class:`BertConfig`, :class:`BertModel` and its
heads :class:`BertForMaskedLM`, :class:`BertForSequenceClassification`,
:class:`BertForTokenClassification` and :class:`BertForNextSentencePrediction`. Each loads and
saves Hugging Face checkpoint directories: ``BertForMaskedLM.from_pretrained(dir)``,
``model.save_pretrained(dir)`` (:mod:`seqjax.nn.transformer.pretrained`).

Example::

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from seqjax.nn.transformer import BertConfig, BertModel, count_params
    >>> config = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1,
    ...                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=12)
    >>> h, pooled = BertModel(config, rngs=nnx.Rngs(0))(jnp.ones((2, 6), jnp.int32),
    ...                                                  seq_lengths=jnp.array([6, 4]))
    >>> h.shape, pooled.shape
    ((2, 6, 16), (2, 16))
    >>> count_params(lambda: BertModel(BertConfig.base(), rngs=nnx.Rngs(0)))
    109482240
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from seqjax import _checks
from seqjax.nn.params import as_params, values
from seqjax.nn.transformer.pretrained import HFPretrained, load_converted
from seqjax.nn.transformer.inputs import check_length, key_padding, token_validity
from seqjax.nn.transformer.stacks import TransformerEncoder
from seqjax.primitives import dense, dropout, layer_norm, layer_norm_init, split_key
from seqjax.interop.huggingface.bert import SIZE_FIELDS as HF_SIZE_FIELDS
from seqjax.interop.huggingface.bert import HIDDEN_ACTIVATIONS, check_hf_bert_config, num_labels
from seqjax.interop.huggingface import from_hf_bert, to_hf_bert, to_hf_bert_config
from seqjax.transformer import ACTIVATIONS, init_weights
from seqjax.transformer.init import zero_bias


POSITIONAL = ("absolute", "alibi", "relative")
"""The values of :attr:`BertConfig.positional`."""


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """BERT hyper-parameters (Devlin et al. 2019), named as Hugging Face's ``BertConfig``
    (``hidden_dropout_prob``, ``attention_probs_dropout_prob`` are its dropout rates).

    ``hidden_act`` is the exact GELU; ``layer_norm_eps`` 1e-12; post-LN. ``positional``: how
    the model knows positions: ``"absolute"`` (BERT's learned table ``E_pos`` added to the
    embeddings; the only one a Hugging Face checkpoint holds), ``"alibi"`` (no table: head ``n``
    adds ``-m_n |i - j|`` to the attention logits, Press et al. 2022, as MosaicBERT does, Portes et
    al. 2023) or ``"relative"`` (no table: T5's learned bucketed bias, Raffel et al. 2020;
    :mod:`seqjax.transformer.position_bias`). ``scan_layers`` stores
    the layers stacked and scans over them. ``classifier_dropout``: the dropout rate before the
    classification heads (None: ``hidden_dropout_prob``, as Hugging Face). ``pad_token_id``: the
    token-embedding row initialised to zero (None: none).
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    scan_layers: bool = False
    classifier_dropout: float | None = None
    positional: str = "absolute"

    @classmethod
    def from_hf(cls, hf_config: Any, *, scan_layers: bool = False) -> "BertConfig":
        """The config of a Hugging Face ``BertConfig`` (the object, its ``to_dict()`` or a parsed
        ``config.json``): the same field names, ``hidden_act`` mapped by
        :data:`seqjax.interop.huggingface.HIDDEN_ACTIVATIONS`, Hugging Face's defaults for absent
        fields; refuses what the model does not compute
        (:func:`seqjax.interop.huggingface.check_hf_bert_config`).

        Example::

            >>> from seqjax.nn import BertConfig
            >>> BertConfig.from_hf({"vocab_size": 11, "hidden_size": 4, "num_hidden_layers": 1,
            ...                     "num_attention_heads": 2, "intermediate_size": 8,
            ...                     "max_position_embeddings": 6, "hidden_act": "gelu_new"}).hidden_act
            'gelu_tanh'
        """
        f = check_hf_bert_config(hf_config)
        return cls(**{k: f[k] for k in (*HF_SIZE_FIELDS, "type_vocab_size", "pad_token_id")},
                   hidden_act=HIDDEN_ACTIVATIONS[f["hidden_act"]], hidden_dropout_prob=float(f["hidden_dropout_prob"]),
                   attention_probs_dropout_prob=float(f["attention_probs_dropout_prob"]),
                   initializer_range=float(f["initializer_range"]), layer_norm_eps=float(f["layer_norm_eps"]),
                   classifier_dropout=None if f["classifier_dropout"] is None else float(f["classifier_dropout"]),
                   scan_layers=bool(scan_layers))

    def classifier_dropout_rate(self) -> float:
        """The dropout rate before a classification head: ``classifier_dropout``, or
        ``hidden_dropout_prob`` when it is None."""
        return self.hidden_dropout_prob if self.classifier_dropout is None else self.classifier_dropout

    @classmethod
    def base(cls, **overrides: Any) -> "BertConfig":
        """BERT-base: L12, H768, A12, intermediate 3072 (109,482,240 parameters with the pooler)."""
        return cls(**overrides)

    @classmethod
    def large(cls, **overrides: Any) -> "BertConfig":
        """BERT-large: L24, H1024, A16, intermediate 4096 (335,141,888 parameters with the pooler)."""
        return cls(**({"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                       "intermediate_size": 4096} | overrides))


def _dense_params(w: jax.Array) -> dict:
    return {"w": w, "b": zero_bias(w.shape[1])}


def _apply(params: dict, x: jax.Array) -> jax.Array:
    return dense(x, params["w"], params["b"])


class _BertPretrained(HFPretrained):
    """The Hugging Face conversions shared by the BERT classes (:mod:`seqjax.nn.transformer.pretrained`)."""

    @classmethod
    def from_hf(cls, state_dict: Any, hf_config: Any, *, scan_layers: bool = False, rngs: nnx.Rngs | None = None):
        config = BertConfig.from_hf(hf_config, scan_layers=scan_layers)
        rngs = nnx.Rngs(0) if rngs is None else rngs
        labelled = cls.hf_architecture in ("BertForSequenceClassification", "BertForTokenClassification")
        model = cls(config, num_labels(hf_config), rngs=rngs) if labelled else cls(config, rngs=rngs)
        return load_converted(model, from_hf_bert(state_dict, hf_config, cls.hf_architecture, scan_layers=scan_layers))

    def hf_config(self) -> dict:
        return to_hf_bert_config(self.config, self.hf_architecture, labels=getattr(self, "num_labels", None))

    def hf_state_dict(self) -> dict:
        return to_hf_bert(self.pure_params(), self.hf_config(), self.hf_architecture)


class BertModel(_BertPretrained, nnx.Module):
    """BERT encoder: token + segment + learned position embeddings, LayerNorm, dropout, a post-LN
    GELU encoder stack and the pooler ``tanh(W h_[CLS] + b)``::

        e = LN(E_tok[ids] + E_pos[0..t-1] + E_seg[token_type_ids]);  h = Encoder(Dropout(e))
        (E_pos only with positional="absolute"; "alibi" / "relative" bias the attention logits)
        pooled = tanh(h[:, 0] W_pool + b_pool)

    Init as BERT: N(0, initializer_range^2) for embeddings and matrices (the ``pad_token_id`` row
    zero), zero biases, unit LayerNorm scales. Dropout as HF BERT: embeddings, attention weights,
    residual branches (not after the FFN activation). Parameter layout: ``embeddings``
    (``token``, ``position`` with absolute positions, ``token_type``, ``norm``), ``encoder``
    (:class:`~seqjax.nn.transformer.TransformerEncoder`), ``pooler`` (``w``, ``b``).
    """

    hf_architecture = "BertModel"

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs, add_pooler: bool = True):
        c = config
        _checks.positive_int("vocab_size", c.vocab_size)
        _checks.positive_int("max_position_embeddings", c.max_position_embeddings)
        _checks.positive_int("type_vocab_size", c.type_vocab_size)
        _checks.probability("hidden_dropout_prob", c.hidden_dropout_prob)
        if c.positional not in POSITIONAL:
            raise ValueError(f"positional must be one of {POSITIONAL}; got {c.positional!r}.")
        self.config = config
        h = c.hidden_size
        token, position, token_type, pool = init_weights(
            rngs.params(), [(c.vocab_size, h), (c.max_position_embeddings, h), (c.type_vocab_size, h), (h, h)],
            c.initializer_range,
        )
        if c.pad_token_id is not None and 0 <= c.pad_token_id < c.vocab_size:
            token = token.at[c.pad_token_id].set(0.0)
        embeddings = {"token": token, "position": position, "token_type": token_type, "norm": layer_norm_init(h)}
        if c.positional != "absolute":  # positions enter the attention logits instead
            del embeddings["position"]
        self.embeddings = as_params(embeddings)
        self.encoder = TransformerEncoder(
            c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size,
            rngs=rngs, activation=c.hidden_act, norm_first=False, positional=c.positional,
            dropout_rate=c.hidden_dropout_prob,
            attention_dropout_rate=c.attention_probs_dropout_prob, activation_dropout_rate=0.0,
            eps=c.layer_norm_eps, scan=c.scan_layers, weight_init=c.initializer_range,
        )
        self.pooler = as_params(_dense_params(pool)) if add_pooler else None

    def pure_params(self) -> dict:
        """``{"embeddings", "encoder", "pooler"}`` as plain arrays (no ``"pooler"`` without one)."""
        params = {"embeddings": values(self.embeddings), "encoder": self.encoder.pure_params()}
        if self.pooler is not None:
            params["pooler"] = values(self.pooler)
        return params

    def __call__(
        self, input_ids: jax.Array, *, token_type_ids: jax.Array | None = None,
        seq_lengths: jax.Array | None = None, token_mask: jax.Array | None = None,
        dropout_key: jax.Array | None = None, return_attention: bool = False,
    ) -> tuple[jax.Array, jax.Array | None]:
        """Encode ``input_ids`` ``[b, t]``.

        Args:
          input_ids: ``[b, t]`` ids, ``t <= max_position_embeddings``.
          token_type_ids: ``[b, t]`` segment ids (default all 0).
          seq_lengths: ``[b]`` valid lengths (right padding), or
          token_mask: ``[b, t]`` True (or 1) at real tokens (HF ``attention_mask``).
          dropout_key: enables dropout.
          return_attention: also return ``{"self": [L, b, heads, t, t]}``, every layer's
            attention weights before dropout (padded keys 0), as Hugging Face's
            ``output_attentions=True``.

        Returns:
          ``(sequence_output [b, t, H], pooled_output [b, H])`` (pooled is None without pooler);
          with ``return_attention``, ``(sequence_output, pooled_output, attention)``.
        """
        c = self.config
        input_ids = _checks.token_ids("input_ids", input_ids, c.vocab_size)
        b, t = input_ids.shape
        check_length(t, c.max_position_embeddings, "max_position_embeddings")
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        token_type_ids = _checks.token_ids("token_type_ids", token_type_ids, c.type_vocab_size)
        if token_type_ids.shape != input_ids.shape:
            raise ValueError(
                f"token_type_ids must have the shape of input_ids {(b, t)}; got {tuple(token_type_ids.shape)}."
            )
        if seq_lengths is not None and token_mask is not None:
            raise ValueError("pass seq_lengths or token_mask, not both.")
        valid = token_validity(input_ids, seq_lengths, None, "seq_lengths")
        if token_mask is not None:
            token_mask = jnp.asarray(token_mask)
            if token_mask.shape != (b, t):
                raise ValueError(f"token_mask must have shape [batch, time] = {(b, t)}; got {tuple(token_mask.shape)}.")
            valid = token_mask.astype(bool)
        emb = values(self.embeddings)
        x = emb["token"][input_ids] + emb["token_type"][token_type_ids]
        if "position" in emb:
            x = x + emb["position"][:t][None]
        x = layer_norm(emb["norm"], x, eps=c.layer_norm_eps)
        k_emb, k_enc = split_key(dropout_key, 2)
        x = dropout(x, c.hidden_dropout_prob, k_emb)
        h = self.encoder(x, mask=key_padding(valid), dropout_key=k_enc, return_attention=return_attention)
        h, attention = h if return_attention else (h, None)
        pooled = None if self.pooler is None else jnp.tanh(_apply(values(self.pooler), h[:, 0]))
        return (h, pooled) if attention is None else (h, pooled, attention)


class BertForMaskedLM(_BertPretrained, nnx.Module):
    """BERT with the MLM head: ``logits = LN(gelu(h W_t + b_t)) E_tok^T + b_out`` (decoder tied to
    the token embedding, plus an output bias ``[V]``); no pooler. Train with
    :func:`seqjax.transformer.mlm_masking` and :func:`seqjax.transformer.mlm_loss`."""

    hf_architecture = "BertForMaskedLM"

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.bert = BertModel(config, rngs=rngs, add_pooler=False)
        (w,) = init_weights(rngs.params(), [(config.hidden_size, config.hidden_size)], config.initializer_range)
        self.mlm_head = as_params({
            "transform": _dense_params(w),
            "norm": layer_norm_init(config.hidden_size),
            "bias": zero_bias(config.vocab_size),
        })

    def pure_params(self) -> dict:
        """``{"bert": BertModel.pure_params(), "mlm_head": {"transform", "norm", "bias"}}``."""
        return {"bert": self.bert.pure_params(), "mlm_head": values(self.mlm_head)}

    def __call__(self, input_ids: jax.Array, *, positions: jax.Array | None = None, return_attention: bool = False,
                 **options: Any) -> jax.Array:
        """``input_ids`` ``[b, t]`` -> MLM logits ``[b, t, V]``; ``options`` as :class:`BertModel`.
        ``positions``: ``[b, k]`` time indices (:func:`seqjax.transformer.selected_positions`): the
        head runs there only and the logits are ``[b, k, V]``, equal to the full logits at those
        positions. ``return_attention``: ``(logits, {"self": [L, b, heads, t, t]})``."""
        h, _, *attention = self.bert(input_ids, return_attention=return_attention, **options)
        if positions is not None:
            positions = _checks.integer_array("positions", positions)
            b, t = h.shape[:2]
            if positions.ndim != 2 or positions.shape[0] != b:
                raise ValueError(f"positions must have shape [batch, k] = [{b}, k] (time indices per row); "
                                 f"got shape {tuple(positions.shape)}.")
            # Out-of-range indices would be clipped by the gather, silently scoring another token.
            if not isinstance(positions, jax.core.Tracer) and positions.size and (
                    int(positions.min()) < 0 or int(positions.max()) >= t):
                raise ValueError(f"positions must lie in [0, {t}) (time); "
                                 f"got values in [{int(positions.min())}, {int(positions.max())}].")
            h = jnp.take_along_axis(h, positions[..., None].astype(jnp.int32), axis=1)
        head = values(self.mlm_head)
        act = ACTIVATIONS[self.config.hidden_act]
        z = layer_norm(head["norm"], act(_apply(head["transform"], h)), eps=self.config.layer_norm_eps)
        logits = dense(z, self.bert.embeddings["token"][...].T, head["bias"])
        return (logits, *attention) if return_attention else logits


class BertForSequenceClassification(_BertPretrained, nnx.Module):
    """BERT with a [CLS] classification head: ``logits = Dropout(pooled) W_c + b_c``, where
    ``pooled = tanh(W_pool h_[CLS] + b_pool)`` (HF ``BertForSequenceClassification``)."""

    hf_architecture = "BertForSequenceClassification"

    def __init__(self, config: BertConfig, num_labels: int, *, rngs: nnx.Rngs):
        _checks.positive_int("num_labels", num_labels)
        self.config, self.num_labels = config, num_labels
        self.bert = BertModel(config, rngs=rngs, add_pooler=True)
        (w,) = init_weights(rngs.params(), [(config.hidden_size, num_labels)], config.initializer_range)
        self.classifier = as_params(_dense_params(w))

    def pure_params(self) -> dict:
        """``{"bert": BertModel.pure_params(), "classifier": {"w", "b"}}``."""
        return {"bert": self.bert.pure_params(), "classifier": values(self.classifier)}

    def __call__(self, input_ids: jax.Array, *, dropout_key: jax.Array | None = None, **options: Any) -> jax.Array:
        """``input_ids`` ``[b, t]`` -> class logits ``[b, num_labels]``."""
        k_bert, k_head = split_key(dropout_key, 2)
        _, pooled = self.bert(input_ids, dropout_key=k_bert, **options)
        pooled = dropout(pooled, self.config.classifier_dropout_rate(), k_head)
        return _apply(values(self.classifier), pooled)


class BertForTokenClassification(_BertPretrained, nnx.Module):
    """BERT with a per-token classification head (tagging: NER, POS):
    ``logits[:, i] = Dropout(h_i) W_c + b_c`` on every position's last hidden state ``h_i``; no
    pooler (HF ``BertForTokenClassification``). Padded positions get logits too: mask them in the
    loss (``seq_lengths`` / ``token_mask``)."""

    hf_architecture = "BertForTokenClassification"

    def __init__(self, config: BertConfig, num_labels: int, *, rngs: nnx.Rngs):
        _checks.positive_int("num_labels", num_labels)
        self.config, self.num_labels = config, num_labels
        self.bert = BertModel(config, rngs=rngs, add_pooler=False)
        (w,) = init_weights(rngs.params(), [(config.hidden_size, num_labels)], config.initializer_range)
        self.classifier = as_params(_dense_params(w))

    def pure_params(self) -> dict:
        """``{"bert": BertModel.pure_params() (no pooler), "classifier": {"w", "b"}}``."""
        return {"bert": self.bert.pure_params(), "classifier": values(self.classifier)}

    def __call__(self, input_ids: jax.Array, *, dropout_key: jax.Array | None = None, **options: Any) -> jax.Array:
        """``input_ids`` ``[b, t]`` -> per-token logits ``[b, t, num_labels]``; ``options`` as
        :class:`BertModel`."""
        k_bert, k_head = split_key(dropout_key, 2)
        h, _ = self.bert(input_ids, dropout_key=k_bert, **options)
        h = dropout(h, self.config.classifier_dropout_rate(), k_head)
        return _apply(values(self.classifier), h)


class BertForNextSentencePrediction(_BertPretrained, nnx.Module):
    """BERT with the next-sentence-prediction head of its pretraining (Devlin et al. 2019,
    section 3.1): ``logits = pooled W_nsp + b_nsp`` ``[b, 2]``, class 0 = segment B follows
    segment A, class 1 = B is a random sentence (HF ``BertForNextSentencePrediction``; no dropout
    before the head, as there). Segments are told apart by ``token_type_ids``."""

    hf_architecture = "BertForNextSentencePrediction"

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.bert = BertModel(config, rngs=rngs, add_pooler=True)
        (w,) = init_weights(rngs.params(), [(config.hidden_size, 2)], config.initializer_range)
        self.nsp_head = as_params(_dense_params(w))

    def pure_params(self) -> dict:
        """``{"bert": BertModel.pure_params(), "nsp_head": {"w", "b"}}``."""
        return {"bert": self.bert.pure_params(), "nsp_head": values(self.nsp_head)}

    def __call__(self, input_ids: jax.Array, **options: Any) -> jax.Array:
        """``input_ids`` ``[b, t]`` (``[CLS] A [SEP] B [SEP]``) -> ``[b, 2]`` logits (is next,
        is random); ``options`` as :class:`BertModel`."""
        _, pooled = self.bert(input_ids, **options)
        return _apply(values(self.nsp_head), pooled)
