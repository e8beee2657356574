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

:func:`seqjax.nn.transformer.auto.load_pretrained` picks the class from ``config.json``'s
``architectures``. Weights that the
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

from seqjax.interop.huggingface import read_hf_checkpoint, write_hf_checkpoint
from seqjax.nn.params import load_pure_params


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
    names its Hugging Face counterpart (module docstring).

    A model family defines the three conversions (``from_hf``, ``hf_config``, ``hf_state_dict``;
    BERT's in :mod:`seqjax.nn.transformer.bert`, GPT-2's in :mod:`seqjax.nn.transformer.gpt`);
    the directory reading and writing is here, once.
    """

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
        raise NotImplementedError(f"{cls.__name__} defines no conversion from Hugging Face weights.")

    def hf_config(self) -> dict:
        """The ``config.json`` fields of the Hugging Face counterpart of this model."""
        raise NotImplementedError(f"{type(self).__name__} defines no Hugging Face config.")

    def hf_state_dict(self) -> dict:
        """The weights under Hugging Face's names, as numpy float32 arrays (what
        ``save_pretrained`` writes)."""
        raise NotImplementedError(f"{type(self).__name__} defines no Hugging Face state dict.")

    def save_pretrained(self, path: Any) -> None:
        """Write ``model.safetensors`` and ``config.json`` into the directory ``path``: a
        checkpoint that ``transformers``' ``from_pretrained(path)`` (and :meth:`from_pretrained`)
        loads."""
        write_hf_checkpoint(path, self.hf_state_dict(), self.hf_config())


def load_converted(model: nnx.Module, converted: Any) -> nnx.Module:
    """Put the converted checkpoint weights ``converted`` (a pure-parameter tree, possibly
    partial) into ``model``; the weights the checkpoint lacks keep their initial values, with a
    warning naming them (as ``transformers`` does)."""
    initial = model.pure_params()
    missing = _missing(initial, converted)
    if missing:
        warnings.warn(f"the checkpoint has no weights for {missing} of {type(model).__name__}: they keep their "
                      "initial values (train them before use).", stacklevel=4)
    load_pure_params(model, _merge(initial, converted))
    return model
