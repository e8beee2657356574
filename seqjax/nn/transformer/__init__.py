"""Flax NNX transformer models: thin modules that own parameters and call the pure layers of
:mod:`seqjax.transformer` with one :class:`~seqjax.transformer.TransformerSpec` each.

* :mod:`~seqjax.nn.transformer.stacks`: :class:`TransformerEncoder`, :class:`TransformerDecoder`,
  stacks on embeddings ``[b, t, d]`` (post-LN or pre-LN, Python loop or ``jax.lax.scan``).
* :mod:`~seqjax.nn.transformer.encoder_decoder`: :class:`EncoderDecoder`, the Transformer of
  Vaswani et al. 2017.
* :mod:`~seqjax.nn.transformer.bert`: :class:`BertConfig`, :class:`BertModel`,
  :class:`BertForMaskedLM`, :class:`BertForSequenceClassification`, :class:`BertForTokenClassification`,
  :class:`BertForNextSentencePrediction`.
* :mod:`~seqjax.nn.transformer.gpt`: :class:`GPT2Config`, :class:`GPTLanguageModel`; Hugging Face
  GPT-2 checkpoints load with :meth:`GPTLanguageModel.from_hf` (the name map is the pure
  :func:`seqjax.interop.huggingface.from_hf_gpt2`).
* :mod:`~seqjax.nn.transformer.pretrained`: Hugging Face checkpoint directories:
  ``Cls.from_pretrained(dir)``, ``model.save_pretrained(dir)`` (BERT and its heads, GPT-2);
  :mod:`~seqjax.nn.transformer.auto`: :func:`load_pretrained`, the class read from ``config.json``.
* :mod:`~seqjax.nn.transformer.inputs`: the input checks they share.
* :func:`count_params`: exact parameter counts with :func:`flax.nnx.eval_shape` (nothing allocated).

Every parameter is an ``nnx.Param`` in nested ``nnx.data`` dicts laid out as the pure functions
expect, so ``nnx.split(model, nnx.Param)`` is exhaustive and yields exactly the trainable pytree;
``model.pure_params()`` gives the same values as plain arrays, and
:func:`seqjax.nn.params.load_pure_params` writes such a pytree back. The forward pass mutates nothing;
dropout runs only when a ``dropout_key`` is passed::

    graphdef, params = nnx.split(model, nnx.Param)
    loss = lambda p, key: loss_of(nnx.merge(graphdef, p)(tokens, dropout_key=key))
    grads = jax.jit(jax.grad(loss))(params, jax.random.key(0))

Incremental decoding (:class:`GPTLanguageModel`, :class:`EncoderDecoder`) runs the same layers
with a KV cache (:mod:`seqjax.transformer.cache`): ``cache = model.init_cache(...)``,
``cache, logits = model.prefill(cache, prompt)``, ``cache, logits = model.decode_step(cache,
tokens)``; ``model.step_fn()`` is that step with the spec and parameters bound,
``step_fn(cache, tokens [b]) -> (cache, logits [b, V])``.

Token inputs are integer ids ``[b, t]``; padding is given as ``seq_lengths`` (right padding, as
everywhere in seqjax; ``src_lengths`` / ``tgt_lengths`` where a source and a target meet) or, for
BERT, a ``token_mask`` ``[b, t]`` (True at real tokens: HF's ``attention_mask``), or for
:class:`EncoderDecoder` derived from ``pad_id``.

Example::

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from seqjax.nn.transformer import GPT2Config, GPTLanguageModel
    >>> model = GPTLanguageModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2,
    ...                                     n_head=4), rngs=nnx.Rngs(0))
    >>> model(jnp.zeros((2, 8), jnp.int32)).shape
    (2, 8, 50)
"""

from seqjax.nn.params import count_params
from seqjax.nn.transformer.bert import BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel
from seqjax.nn.transformer.bert import BertForNextSentencePrediction, BertForTokenClassification
from seqjax.nn.transformer.auto import load_pretrained
from seqjax.nn.transformer.pretrained import HFPretrained
from seqjax.nn.transformer.encoder_decoder import EncoderDecoder
from seqjax.nn.transformer.gpt import GPT2Config, GPTLanguageModel
from seqjax.nn.transformer.stacks import TransformerDecoder, TransformerEncoder

__all__ = [
    "BertConfig",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForTokenClassification",
    "HFPretrained",
    "load_pretrained",
    "BertForSequenceClassification",
    "BertModel",
    "EncoderDecoder",
    "GPT2Config",
    "GPTLanguageModel",
    "TransformerDecoder",
    "TransformerEncoder",
    "count_params",
]
