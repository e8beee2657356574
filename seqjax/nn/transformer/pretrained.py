"""Hugging Face checkpoint directories <-> the NNX models: ``from_pretrained`` and
``save_pretrained``.

Every model class with a Hugging Face counterpart of the same name (:class:`BertModel`,
:class:`BertForMaskedLM`, :class:`BertForSequenceClassification`,
:class:`BertForTokenClassification`, :class:`BertForNextSentencePrediction`; and
:class:`GPTLanguageModel` for ``GPT2LMHeadModel``) has, from :class:`HFPretrained`:

* ``Cls.from_pretrained(dir, *, scan_layers=False, rngs=None)``: read ``config.json`` and the
  weights (``model.safetensors``, or ``pytorch_model.bin`` with torch installed) of a local
  directory, refuse what the model does not compute (a ``ValueError`` naming the field), and
  return the model with those weights;
* ``Cls.from_hf(state_dict, hf_config, ...)``: the same from arrays in memory;
* ``model.hf_state_dict()`` / ``model.hf_config()``: the weights under Hugging Face's names
  (numpy) and the ``config.json`` fields;
* ``model.save_pretrained(dir)``: both written as ``model.safetensors`` + ``config.json``, which
  ``transformers``' ``from_pretrained(dir)`` of the class of the same name loads.

:func:`load_pretrained` picks the class from ``config.json``'s ``architectures``. Weights that the
checkpoint lacks but the class has (the classifier of a ``BertModel`` checkpoint loaded for
fine-tuning, the pooler of an MLM checkpoint) keep their initial values, with a warning naming
them, as in ``transformers``; weights of heads the class lacks (the MLM head of a
``BertForPreTraining`` checkpoint loaded as ``BertModel``) are skipped. The tokenizer of the same
directory loads with :func:`seqjax.interop.huggingface.load_hf_tokenizer`.

Example::

    >>> import tempfile, jax.numpy as jnp, numpy as np
    >>> from flax import nnx
    >>> from seqjax.nn.transformer import BertConfig, BertForMaskedLM, load_pretrained
    >>> config = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...                     intermediate_size=16, max_position_embeddings=12)
    >>> model = BertForMaskedLM(config, rngs=nnx.Rngs(0))
    >>> path = tempfile.mkdtemp()
    >>> model.save_pretrained(path)
    >>> again = BertForMaskedLM.from_pretrained(path)
    >>> ids = jnp.array([[2, 5, 7, 3]])
    >>> bool(jnp.allclose(model(ids), again(ids))), type(load_pretrained(path)).__name__
    (True, 'BertForMaskedLM')
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

from flax import nnx

from seqjax.interop.huggingface import (
    BERT_ARCHITECTURES,
    from_hf_bert,
    read_hf_checkpoint,
    read_hf_config,
    to_hf_bert,
    to_hf_bert_config,
    to_hf_gpt2,
    to_hf_gpt2_config,
    write_hf_checkpoint,
)
from seqjax.interop.huggingface.bert import num_labels
from seqjax.nn.params import load_pure_params

GPT2_ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")
"""Hugging Face GPT-2 classes :class:`GPTLanguageModel` loads (a ``GPT2Model`` checkpoint: the
tied head needs no extra weights)."""


def _merge(base: Any, new: Any) -> Any:
    """``new`` over ``base``: nested dicts merged, anything else replaced."""
    if isinstance(base, Mapping) and isinstance(new, Mapping):
        return {k: _merge(base[k], new[k]) if k in base and k in new else new.get(k, base.get(k))
                for k in {**base, **new}}
    return new


def _missing(base: Any, new: Any, path: str = "") -> list[str]:
    """The top paths of ``base`` that ``new`` lacks."""
    if not isinstance(base, Mapping):
        return []
    out = []
    for k, v in base.items():
        if k not in new:
            out.append(f"{path}{k}")
        elif isinstance(v, Mapping) and isinstance(new[k], Mapping):
            out += _missing(v, new[k], f"{path}{k}/")
    return out


class HFPretrained:
    """Loading and saving Hugging Face checkpoints for a model class whose ``hf_architecture``
    names its Hugging Face counterpart (module docstring)."""

    hf_architecture: str = ""

    @classmethod
    def from_pretrained(cls, path: Any, *, scan_layers: bool = False, rngs: nnx.Rngs | None = None):
        """The model with the weights of the Hugging Face checkpoint directory ``path``
        (``config.json`` plus ``model.safetensors`` or ``pytorch_model.bin``).

        Args:
          path: a local directory (nothing is downloaded).
          scan_layers: store the layers stacked and scan over them.
          rngs: draws the initial weights; only those the checkpoint lacks keep them (default
            ``nnx.Rngs(0)``).
        """
        state_dict, hf_config = read_hf_checkpoint(path)
        return cls.from_hf(state_dict, hf_config, scan_layers=scan_layers, rngs=rngs)

    @classmethod
    def from_hf(cls, state_dict: Any, hf_config: Any, *, scan_layers: bool = False, rngs: nnx.Rngs | None = None):
        """The model with the weights of a Hugging Face state dict (``{name: numpy array}``) and
        config (the object, its ``to_dict()`` or a parsed ``config.json``)."""
        arch = cls.hf_architecture
        if arch not in BERT_ARCHITECTURES:  # pragma: no cover - GPTLanguageModel defines its own
            raise ValueError(f"{cls.__name__} has no Hugging Face BERT counterpart.")
        from seqjax.nn.transformer.bert import BertConfig

        config = BertConfig.from_hf(hf_config, scan_layers=scan_layers)
        rngs = nnx.Rngs(0) if rngs is None else rngs
        labelled = arch in ("BertForSequenceClassification", "BertForTokenClassification")
        model = cls(config, num_labels(hf_config), rngs=rngs) if labelled else cls(config, rngs=rngs)
        converted = from_hf_bert(state_dict, hf_config, arch, scan_layers=scan_layers)
        initial = model.pure_params()
        missing = _missing(initial, converted)
        if missing:
            warnings.warn(f"the checkpoint has no weights for {missing} of {cls.__name__}: they keep their initial "
                          "values (train them before use).", stacklevel=3)
        load_pure_params(model, _merge(initial, converted))
        return model

    def hf_config(self) -> dict:
        """The ``config.json`` fields of the Hugging Face counterpart of this model."""
        if self.hf_architecture in GPT2_ARCHITECTURES:
            return to_hf_gpt2_config(self.config)
        return to_hf_bert_config(self.config, self.hf_architecture, labels=getattr(self, "num_labels", None))

    def hf_state_dict(self) -> dict:
        """The weights under Hugging Face's names, as numpy float32 arrays (what
        ``save_pretrained`` writes)."""
        if self.hf_architecture in GPT2_ARCHITECTURES:
            return to_hf_gpt2(self.pure_params(), self.config)
        return to_hf_bert(self.pure_params(), self.hf_config(), self.hf_architecture)

    def save_pretrained(self, path: Any) -> None:
        """Write ``model.safetensors`` and ``config.json`` into the directory ``path``: a
        checkpoint that ``transformers``' ``from_pretrained(path)`` (and :meth:`from_pretrained`)
        loads."""
        write_hf_checkpoint(path, self.hf_state_dict(), self.hf_config())


def load_pretrained(path: Any, *, scan_layers: bool = False, rngs: nnx.Rngs | None = None) -> nnx.Module:
    """The seqjax model for the Hugging Face checkpoint directory ``path``, its class chosen by
    the first of ``config.json``'s ``architectures`` (``BertForPreTraining``, the class of the
    original BERT checkpoints, loads as :class:`BertForMaskedLM`, the NSP head skipped; ``GPT2Model``
    and ``GPT2LMHeadModel`` as :class:`GPTLanguageModel`)."""
    from seqjax.nn.transformer import bert, gpt

    classes = {name: getattr(bert, name) for name in BERT_ARCHITECTURES}
    classes |= {"BertForPreTraining": bert.BertForMaskedLM} | {name: gpt.GPTLanguageModel for name in GPT2_ARCHITECTURES}
    config = read_hf_config(path)
    architectures = config.get("architectures") or []
    if not architectures:
        fallback = {"bert": "BertModel", "gpt2": "GPT2LMHeadModel"}.get(config.get("model_type"))
        architectures = [fallback] if fallback else []
    if not architectures or architectures[0] not in classes:
        raise ValueError(f"config.json's architectures must name one of {sorted(classes)}; got "
                         f"{config.get('architectures')!r} (model_type {config.get('model_type')!r}). Load it with the "
                         "seqjax class that matches instead (e.g. BertModel.from_pretrained(path)).")
    return classes[architectures[0]].from_pretrained(path, scan_layers=scan_layers, rngs=rngs)
