"""Smoke test: the attention seq2seq model learns to reverse short sequences.

Sources of 4-6 symbols (right-padded to 6), targets the reversed source then EOS. Within 100 Adam
steps of batch 32 the masked cross-entropy falls from about log(V) to a small fraction of it.
"""

import numpy as np
import optax
import jax
from flax import nnx

from seqjax.nn import BahdanauSeq2Seq
from seqjax.train.losses import cross_entropy
from seqjax.train.step import make_train_step, module_loss, split_params

PAD, BOS, EOS, FIRST_SYMBOL, VOCAB = 0, 1, 2, 3, 9
LENGTH = 6


def reversal_batch(rng: np.random.Generator, batch: int):
    lengths = rng.integers(4, LENGTH + 1, batch)
    src = np.full((batch, LENGTH), PAD, np.int32)
    tgt_in = np.full((batch, LENGTH + 1), PAD, np.int32)
    tgt_out = np.full((batch, LENGTH + 1), PAD, np.int32)
    for i, n in enumerate(lengths):
        symbols = rng.integers(FIRST_SYMBOL, VOCAB, n)
        src[i, :n] = symbols
        tgt_in[i, : n + 1] = [BOS, *symbols[::-1]]
        tgt_out[i, : n + 1] = [*symbols[::-1], EOS]
    return src, lengths.astype(np.int32), tgt_in, tgt_out, np.arange(LENGTH + 1) <= lengths[:, None]


def test_attention_model_learns_reversal():
    model = BahdanauSeq2Seq(
        VOCAB, VOCAB, rngs=nnx.Rngs(jax.random.key(0, impl="unsafe_rbg")), embed_features=16,
        hidden_features=24,
    )
    graphdef, params, rest = split_params(model)

    def loss_of_model(model, batch, key):
        src, lengths, tgt_in, tgt_out, mask = batch
        return cross_entropy(model(src, lengths, tgt_in), tgt_out, mask=mask)

    step = make_train_step(module_loss(graphdef, loss_of_model, rest), optax.adam(1e-2))
    opt_state = optax.adam(1e-2).init(params)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(100):
        params, opt_state, metrics = step(params, opt_state, reversal_batch(rng, 32))
        losses.append(float(metrics["loss"]))
    first, last = np.mean(losses[:5]), np.mean(losses[-10:])
    assert np.isfinite(losses).all()
    assert first > 0.8 * np.log(VOCAB - 2), losses[:5]
    assert last < 0.3 * first, (first, last)
