"""Smoke test: the attention seq2seq model learns to reverse short sequences, and decodes them.

Sources of 4-6 symbols (right-padded to 6), targets the reversed source then EOS. Within 100 Adam
steps of batch 32 the masked cross-entropy falls from about log(V) to a small fraction of it, and
greedy decoding and beam search (seqjax.decoding on the model's step function) reverse held-out
sources.
"""

import pytest
import numpy as np
import optax
import jax
from flax import nnx

from seqjax.decoding import beam_search, greedy
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


@pytest.mark.slow  # trains to convergence: ~30 s
def test_attention_model_learns_reversal_and_decodes_it():
    """Training lowers the loss; then the model's step function in the generic decoders: greedy
    decoding and beam search from BOS reverse held-out sources, and one beam equals greedy."""
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

    model = nnx.merge(graphdef, params, rest)
    src, lengths, _, tgt_out, mask = reversal_batch(np.random.default_rng(1), 16)
    state, bos = model.init_decode_state(src, lengths), np.full((16,), BOS, np.int32)
    g = greedy(model.step_fn(), state, bos, LENGTH + 1, eos_id=EOS, pad_id=PAD)
    beams = beam_search(model.step_fn(), state, bos, LENGTH + 1, beam_size=3, eos_id=EOS, pad_id=PAD)
    one = beam_search(model.step_fn(), state, bos, LENGTH + 1, beam_size=1, eos_id=EOS, pad_id=PAD)
    np.testing.assert_array_equal(np.asarray(one.sequences[:, 0]), np.asarray(g.sequences))
    expected = np.where(mask, tgt_out, PAD)  # the reversed source, EOS, then padding
    greedy_right = (np.asarray(g.sequences) == expected).all(-1).mean()
    beam_right = (np.asarray(beams.sequences[:, 0]) == expected).all(-1).mean()
    assert greedy_right >= 0.75 and beam_right >= greedy_right, (greedy_right, beam_right)
