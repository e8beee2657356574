"""Tiny models and inputs shared by the export tests (three shapes per model)."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seqjax.nn import LSTM, BertConfig, BertForSequenceClassification, GPT2Config, GPTLanguageModel

VOCAB = 23
BERT = BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=24, max_position_embeddings=12)
GPT = GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=8, n_layer=2, n_head=2)
CACHE_LEN = 16


def lstm_classifier(seed=0):
    k = jax.random.split(jax.random.key(seed), 3)
    layer = LSTM(6, 8, rngs=nnx.Rngs(seed))
    embedding = jax.random.normal(k[0], (VOCAB, 6))
    head = {"w": jax.random.normal(k[1], (8, 3)), "b": jax.random.normal(k[2], (3,))}
    return layer, head, embedding


def bert_classifier(seed=0):
    return BertForSequenceClassification(BERT, 3, rngs=nnx.Rngs(seed))


def gpt(seed=0):
    return GPTLanguageModel(GPT, rngs=nnx.Rngs(seed))


def token_inputs(shape, seed):
    """ids [b, t] and lengths [b] (right padding, at least 1 valid token)."""
    rng = np.random.default_rng(seed)
    b, t = shape
    ids = rng.integers(1, VOCAB, size=(b, t)).astype(np.int32)
    lengths = rng.integers(1, t + 1, size=b).astype(np.int32)
    lengths[0] = t
    ids[np.arange(t)[None, :] >= lengths[:, None]] = 0
    return ids, lengths


def lstm_reference(layer, head, embedding, ids, lengths):
    """The classifier through the NNX module: outputs at each sequence's last valid step (jitted:
    eager dispatch of the scan is slow on a loaded CPU)."""
    @jax.jit
    def ref(ids, lengths):
        ys = layer(jnp.take(embedding, ids, axis=0), seq_lengths=lengths)
        last = jnp.take_along_axis(ys, (lengths - 1)[:, None, None], axis=1)[:, 0]
        return last @ head["w"] + head["b"]

    return ref(jnp.asarray(ids), jnp.asarray(lengths))


def gpt_cache(model, batch, seed):
    """A cache prefilled with right-padded prompts of different lengths, and the next tokens."""
    ids, lengths = token_inputs((batch, 5), seed)
    prefill = jax.jit(lambda ids, lengths: model.prefill(model.init_cache(batch, CACHE_LEN), ids, seq_lengths=lengths)[0])
    cache = prefill(jnp.asarray(ids), jnp.asarray(lengths))
    tokens = np.random.default_rng(seed + 1).integers(0, VOCAB, size=batch).astype(np.int32)
    return cache, tokens
