"""NNX transformer models: exact parameter counts (BERT-base/large, GPT-2 small) by eval_shape;
the sinusoidal table is a constant, not a parameter (the source text's Transformer stored it as
a parameter, so its Xavier init overwrote it); causality of the GPT model and the decoders;
source and target padding really masked; thin modules equal the pure stacks with their spec;
pure_params() is the whole parameter pytree; scan == loop models; jit/grad through
nnx.split/merge with explicit dropout keys."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqjax.attention import causal_mask, padding_mask, sinusoidal_table
from seqjax.nn.transformer import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    EncoderDecoder,
    GPT2Config,
    GPTLanguageModel,
    TransformerDecoder,
    TransformerEncoder,
    count_params,
)
from seqjax.nn.transformer.encoder_decoder import embed
from seqjax.nn.params import values
from seqjax.primitives import layer_norm
from seqjax.transformer import TransformerSpec, decoder_stack, encoder_stack, mlm_loss, selected_positions

ATOL = 1e-5
RNG = np.random.default_rng(0)
GPT_TINY = GPT2Config(vocab_size=40, n_positions=12, n_embd=16, n_layer=2, n_head=2)
BERT_TINY = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=12)


def ids(vocab, b, t, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(1, vocab, (b, t)), jnp.int32)


def rbg_key(seed):
    """Dropout keys on XLA's RngBitGenerator: same code path, much faster to compile on CPU."""
    return jax.random.key(seed, impl="unsafe_rbg")


def jitted(model):
    """``model(*args, **kwargs)`` compiled once per input shape (split/merge around jax.jit)."""
    graphdef, state = nnx.split(model)
    call = jax.jit(lambda state, *args, **kwargs: nnx.merge(graphdef, state)(*args, **kwargs))
    return lambda *args, **kwargs: call(state, *args, **kwargs)


def tiny_seq2seq(**kw):
    return EncoderDecoder(11, 13, d_model=16, num_heads=2, num_layers=1, d_ff=32, max_len=20,
                          rngs=nnx.Rngs(0), **kw)


# --- exact parameter counts (abstract shapes only) --------------------------------------------------


def test_parameter_counts_are_exact():
    assert count_params(lambda: BertModel(BertConfig.base(), rngs=nnx.Rngs(0))) == 109_482_240
    assert count_params(lambda: BertModel(BertConfig.large(), rngs=nnx.Rngs(0))) == 335_141_888
    assert count_params(lambda: GPTLanguageModel(GPT2Config.small(), rngs=nnx.Rngs(0))) == 124_439_808
    # stacked (scan) layers hold the same parameters
    assert count_params(lambda: GPTLanguageModel(GPT2Config.small(scan_layers=True), rngs=nnx.Rngs(0))) == 124_439_808


def test_tiny_counts_follow_the_formulas():
    d, f, v, p = 16, 32, 30, 12
    layer = 4 * (d * d + d) + 2 * d + (d * f + f + f * d + d) + 2 * d
    embeddings = (v + p + 2) * d + 2 * d
    bert = count_params(lambda: BertModel(BERT_TINY, rngs=nnx.Rngs(0)))
    assert bert == embeddings + layer + (d * d + d)
    mlm = count_params(lambda: BertForMaskedLM(BERT_TINY, rngs=nnx.Rngs(0)))
    assert mlm == embeddings + layer + (d * d + d) + 2 * d + v  # tied decoder: only its bias
    gpt_untied = count_params(lambda: GPTLanguageModel(GPT_TINY.__class__(**{**GPT_TINY.__dict__, "tie_word_embeddings": False}), rngs=nnx.Rngs(0)))
    gpt = count_params(lambda: GPTLanguageModel(GPT_TINY, rngs=nnx.Rngs(0)))
    assert gpt_untied - gpt == 16 * 40


# --- positional table: a constant ------------------------------------------------------------------


def test_positional_encoding_is_a_constant_not_a_parameter():
    model = tiny_seq2seq()
    table = sinusoidal_table(20, 16)
    np.testing.assert_array_equal(model.positional_encoding(), table)
    params = nnx.state(model, nnx.Param)
    everything = nnx.state(model)
    assert len(jax.tree.leaves(params)) == len(jax.tree.leaves(everything))  # no hidden state either
    for leaf in jax.tree.leaves(everything):
        assert not (leaf.shape == table.shape and np.allclose(leaf, table)), "the PE table is stored"
    # the embedding really adds it: a zero token embedding leaves exactly PE[:t]
    zero = jnp.zeros((11, 16))
    np.testing.assert_allclose(embed(zero, jnp.zeros((1, 7), jnp.int32), jnp.arange(7), table_len=7)[0], table[:7],
                               atol=1e-7)


# --- causality and padding -------------------------------------------------------------------------


def changed_positions(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max(axis=(0, 2)) > 1e-6


def test_gpt_is_causal():
    model = jitted(GPTLanguageModel(GPT_TINY, rngs=nnx.Rngs(0)))
    x = ids(40, 2, 8)
    j = 5
    y = x.at[:, j].set((x[:, j] + 7) % 40)
    changed = changed_positions(model(x), model(y))
    assert not changed[:j].any() and changed[j:].all()


def test_decoders_are_causal():
    model = jitted(tiny_seq2seq())
    src, tgt = ids(11, 2, 7, 1), ids(13, 2, 6, 2)
    j = 3
    changed = changed_positions(model(src, tgt), model(src, tgt.at[:, j].set((tgt[:, j] + 5) % 13)))
    assert not changed[:j].any() and changed[j:].all()
    # the standalone decoder stack, on embeddings
    dec = jitted(TransformerDecoder(2, 16, 2, 32, rngs=nnx.Rngs(1), norm_first=True))
    x = jnp.asarray(RNG.normal(size=(2, 6, 16)), jnp.float32)
    mem = jnp.asarray(RNG.normal(size=(2, 4, 16)), jnp.float32)
    bump = jnp.asarray(RNG.normal(size=(16,)), jnp.float32)  # not a constant shift: LayerNorm removes those
    changed = changed_positions(dec(x, mem), dec(x.at[:, j].add(bump), mem))
    assert not changed[:j].any() and changed[j:].all()


def test_source_padding_is_masked():
    model = jitted(tiny_seq2seq())
    lengths = jnp.array([7, 3])
    src = np.array(ids(11, 2, 7, 3))
    src[1, 3:] = 0
    other = src.copy()
    other[1, 3:] = 9  # arbitrary tokens at the padded positions
    src, other, tgt = jnp.asarray(src), jnp.asarray(other), ids(13, 2, 5, 4)
    a = model(src, tgt, src_lengths=lengths)
    np.testing.assert_allclose(model(other, tgt, src_lengths=lengths), a, atol=ATOL)
    # the mask matters: with every position valid the changed tokens reach the output
    full = jnp.array([7, 7])
    assert not np.allclose(model(src, tgt, src_lengths=full), model(other, tgt, src_lengths=full), atol=ATOL)
    # also in training mode: the same key gives the same dropout, padding is still invisible
    key = rbg_key(0)
    train = model(src, tgt, src_lengths=lengths, dropout_key=key)
    np.testing.assert_allclose(model(other, tgt, src_lengths=lengths, dropout_key=key), train, atol=ATOL)
    assert not np.allclose(train, a, atol=ATOL)
    # pad_id: the same padding read from the tokens (same init: same parameters)
    np.testing.assert_allclose(jitted(tiny_seq2seq(pad_id=0))(src, tgt), a, atol=ATOL)


def test_target_padding_and_bert_padding():
    model = jitted(tiny_seq2seq())
    src, tgt = ids(11, 2, 7, 5), np.array(ids(13, 2, 6, 6))
    other = tgt.copy()
    other[0, 4:] = 1
    lengths = jnp.array([4, 6])
    a = model(src, jnp.asarray(tgt), tgt_lengths=lengths)
    b = model(src, jnp.asarray(other), tgt_lengths=lengths)
    np.testing.assert_allclose(a[0, :4], b[0, :4], atol=ATOL)
    bert = jitted(BertModel(BERT_TINY, rngs=nnx.Rngs(0)))
    x = np.array(ids(30, 2, 8, 7))
    y = x.copy()
    y[1, 5:] = 3
    lengths = jnp.array([8, 5])
    (ha, pa), (hb, pb) = bert(jnp.asarray(x), seq_lengths=lengths), bert(jnp.asarray(y), seq_lengths=lengths)
    np.testing.assert_allclose(ha[1, :5], hb[1, :5], atol=ATOL)
    np.testing.assert_allclose(pa, pb, atol=ATOL)
    h_mask, _ = bert(jnp.asarray(x), token_mask=jnp.asarray(np.arange(8)[None] < np.asarray(lengths)[:, None]))
    np.testing.assert_allclose(h_mask, ha, atol=ATOL)


# --- thin modules --------------------------------------------------------------------------------


def test_modules_equal_the_pure_stacks():
    enc = TransformerEncoder(2, 16, 2, 32, rngs=nnx.Rngs(0), activation="gelu", norm_first=True, causal=True)
    assert enc.spec == TransformerSpec(num_heads=2, activation="gelu", norm_first=True, causal=True, dropout_rate=0.1)
    x = jnp.asarray(RNG.normal(size=(2, 6, 16)), jnp.float32)
    lengths = jnp.array([6, 4])
    mask = causal_mask(6) & padding_mask(lengths, 6)
    plain = TransformerSpec(num_heads=2, activation="gelu", norm_first=True)
    expected = encoder_stack(plain, enc.pure_params(), x, mask=mask)
    chex.assert_trees_all_close(enc(x, seq_lengths=lengths), expected, atol=ATOL)
    assert "final_norm" in enc.pure_params()
    dec = TransformerDecoder(1, 16, 2, 32, rngs=nnx.Rngs(1))
    mem = jnp.asarray(RNG.normal(size=(2, 5, 16)), jnp.float32)
    expected = decoder_stack(TransformerSpec(num_heads=2), dec.pure_params(), x, mem, mask=causal_mask(6),
                             memory_mask=padding_mask(jnp.array([5, 2]), 5))
    chex.assert_trees_all_close(dec(x, mem, src_lengths=jnp.array([5, 2])), expected, atol=ATOL)
    tgt = dec(x, mem, tgt_lengths=jnp.array([6, 3]))
    chex.assert_trees_all_close(tgt[1, :3], dec(x.at[1, 3:].set(5.0), mem, tgt_lengths=jnp.array([6, 3]))[1, :3],
                                atol=ATOL)


@pytest.mark.parametrize("make", [
    lambda: GPTLanguageModel(GPT2Config(**{**GPT_TINY.__dict__, "tie_word_embeddings": False}), rngs=nnx.Rngs(0)),
    lambda: BertForMaskedLM(BERT_TINY, rngs=nnx.Rngs(0)),
    lambda: BertForSequenceClassification(BERT_TINY, 3, rngs=nnx.Rngs(0)),
    lambda: tiny_seq2seq(),
    lambda: TransformerDecoder(1, 16, 2, 32, rngs=nnx.Rngs(1), scan=True),
], ids=["gpt", "bert-mlm", "bert-classifier", "encoder-decoder", "decoder"])
def test_pure_params_is_the_whole_parameter_pytree(make):
    model = make()
    pure = model.pure_params()
    state = jax.tree.leaves(values(nnx.state(model, nnx.Param)))
    assert sum(leaf.size for leaf in jax.tree.leaves(pure)) == sum(leaf.size for leaf in state)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(pure))


def test_gpt_parameter_layout():
    model = GPTLanguageModel(GPT2Config(**{**GPT_TINY.__dict__, "tie_word_embeddings": False}), rngs=nnx.Rngs(0))
    pure = model.pure_params()
    assert sorted(pure) == ["blocks", "lm_head", "position_embedding", "token_embedding"]
    assert pure["token_embedding"].shape == (40, 16) and pure["position_embedding"].shape == (12, 16)
    assert sorted(pure["blocks"]) == ["final_norm", "layers"]
    layer = pure["blocks"]["layers"][0]
    assert sorted(layer) == ["ffn", "norm_1", "norm_2", "self_attn"]
    assert sorted(layer["self_attn"]) == ["b_k", "b_o", "b_q", "b_v", "w_k", "w_o", "w_q", "w_v"]
    assert sorted(layer["ffn"]) == ["b_1", "b_2", "w_1", "w_2"]
    # the NNX state nests the same arrays under the module attributes
    state = nnx.state(model, nnx.Param)
    assert sorted(state["blocks"]["stack"]) == ["final_norm", "layers"]


def test_scan_and_loop_models_agree():
    x = ids(40, 2, 8)
    loop = GPTLanguageModel(GPT_TINY, rngs=nnx.Rngs(3))
    scan = GPTLanguageModel(GPT2Config(**{**GPT_TINY.__dict__, "scan_layers": True}), rngs=nnx.Rngs(3))
    chex.assert_trees_all_close(jitted(loop)(x), jitted(scan)(x), atol=ATOL)


def test_bert_heads():
    mlm = BertForMaskedLM(BERT_TINY, rngs=nnx.Rngs(0))
    x = ids(30, 2, 6)
    logits = mlm(x)
    assert logits.shape == (2, 6, 30)
    h, pooled = mlm.bert(x)
    assert pooled is None
    head = mlm.mlm_head
    z = layer_norm({"scale": head["norm"]["scale"][...], "bias": head["norm"]["bias"][...]},
                   jax.nn.gelu(h @ head["transform"]["w"][...] + head["transform"]["b"][...], approximate=False),
                   eps=1e-12)
    expected = z @ mlm.bert.embeddings["token"][...].T + head["bias"][...]
    chex.assert_trees_all_close(logits, expected, atol=ATOL)
    clf = BertForSequenceClassification(BERT_TINY, 3, rngs=nnx.Rngs(0))
    out = clf(x, token_type_ids=jnp.ones_like(x))
    _, pooled = clf.bert(x, token_type_ids=jnp.ones_like(x))
    expected = pooled @ clf.classifier["w"][...] + clf.classifier["b"][...]
    chex.assert_trees_all_close(out, expected, atol=ATOL)
    np.testing.assert_array_equal(mlm.bert.embeddings["token"][...][BERT_TINY.pad_token_id], 0.0)


def test_bert_mlm_logits_at_selected_positions_equal_the_full_logits():
    mlm = BertForMaskedLM(BERT_TINY, rngs=nnx.Rngs(0))
    x = ids(30, 3, 6)
    weights = np.zeros((3, 6), np.float32)
    weights[0, 2] = weights[1, 0] = weights[1, 5] = weights[2, 3] = 1.0
    positions, valid = selected_positions(weights, multiple=4)
    np.testing.assert_array_equal(positions, [[2, 0, 0, 0], [0, 5, 0, 0], [3, 0, 0, 0]])
    np.testing.assert_array_equal(valid, [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0]])
    full = np.asarray(mlm(x))
    gathered = np.asarray(mlm(x, positions=positions))
    assert gathered.shape == (3, 4, 30)
    for row in range(3):
        np.testing.assert_array_equal(gathered[row], full[row, positions[row]])
    # The weighted loss over the gathered positions is the loss over the whole batch.
    labels = np.asarray(x)
    chex.assert_trees_all_close(mlm_loss(gathered, np.take_along_axis(labels, positions, 1), valid),
                                mlm_loss(full, labels, weights), atol=1e-6)
    # Under jit (traced positions) the same logits.
    jitted = nnx.jit(lambda m, x, p: m(x, positions=p))(mlm, x, jnp.asarray(positions))
    chex.assert_trees_all_close(jitted, gathered, atol=ATOL)
    with pytest.raises(ValueError, match=r"positions must lie in \[0, 6\)"):
        mlm(x, positions=np.full((3, 1), 6))
    with pytest.raises(ValueError, match="positions must have shape"):
        mlm(x, positions=np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match="weights must have shape"):
        selected_positions(np.ones(5))


# --- functional use: split / merge under jit and grad ---------------------------------------------


def test_split_merge_jit_grad_with_dropout_keys():
    model = GPTLanguageModel(GPT_TINY, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)  # exhaustive: the model holds only parameters
    x = ids(40, 2, 8)

    def loss(params, key):
        logits = nnx.merge(graphdef, params)(x[:, :-1], dropout_key=key)
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, x[:, 1:, None], axis=-1))

    step = jax.jit(jax.value_and_grad(loss))
    (l1, g1), (l2, g2), (l3, _) = step(params, rbg_key(1)), step(params, rbg_key(1)), step(params, rbg_key(2))
    chex.assert_trees_all_equal(g1, g2)  # same key, same dropout
    assert float(l1) == float(l2) and float(l1) != float(l3)
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(g1))
    # the tied token table gets gradient from the output projection as well as the inputs
    rows_used = np.zeros(40, bool)
    rows_used[np.asarray(x[:, :-1]).ravel()] = True
    g_token = np.abs(np.asarray(g1["token_embedding"][...])).sum(axis=1)
    assert (g_token[~rows_used] > 0).all()


def test_model_errors():
    model = GPTLanguageModel(GPT_TINY, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="n_positions"):
        model(jnp.zeros((1, 13), jnp.int32))
    with pytest.raises(ValueError, match=r"\[0, 40\)"):
        model(jnp.full((1, 3), 40, jnp.int32))
    with pytest.raises(ValueError, match="integers"):
        model(jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="even"):
        EncoderDecoder(5, 5, d_model=15, num_heads=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="activation"):
        TransformerEncoder(1, 16, 2, 32, rngs=nnx.Rngs(0), activation="tanh")
    with pytest.raises(ValueError, match="dropout_rate"):
        TransformerEncoder(1, 16, 2, 32, rngs=nnx.Rngs(0), dropout_rate=1.5)
    # Regression: the module combined a bare [b, s] padding mask with its causal mask before any
    # check, so with b == t it was read as a [t, s] mask without a word.
    causal = TransformerEncoder(1, 16, 2, 32, rngs=nnx.Rngs(0), causal=True)
    with pytest.raises(ValueError, match="rank 4"):
        causal(jnp.ones((4, 4, 16)), mask=jnp.ones((4, 4), bool))
    with pytest.raises(TypeError):  # the old spelling is gone
        TransformerEncoder(1, 16, 2, 32, rngs=nnx.Rngs(0), dropout=0.1)
