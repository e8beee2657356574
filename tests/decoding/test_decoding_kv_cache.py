"""KV-cached incremental decoding equals the full forward pass (to 1e-5): GPT (loop and scan
stacks, with a prompt prefill, with right-padded prompts of different lengths, several steps) and
the encoder-decoder Transformer (cross-attention keys and values computed once, source padding);
greedy decoding through the cache agrees with the full model; the cached path runs with the
model's own spec; decoding past the cache or past the model's position table is refused with
both lengths named. The step contract is ``step_fn(cache, tokens) -> (cache, logits)``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqjax.decoding import beam_search, greedy, sample
from seqjax.nn.transformer import EncoderDecoder, GPT2Config, GPTLanguageModel
from seqjax.transformer import init_stack_cache

ATOL = 1e-5
GPT_TINY = GPT2Config(vocab_size=17, n_positions=12, n_embd=16, n_layer=2, n_head=2)


@pytest.fixture(scope="module")
def gpt():
    """One tiny GPT (2 layers, Python loop) shared by the tests that only read it."""
    return GPTLanguageModel(GPT_TINY, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def gpt_scan():
    """The same GPT with its layers stacked and scanned."""
    return GPTLanguageModel(GPT2Config(**{**GPT_TINY.__dict__, "scan_layers": True}), rngs=nnx.Rngs(0))


def tiny_seq2seq(**kw):
    return EncoderDecoder(11, 13, d_model=16, num_heads=2, num_layers=2, d_ff=32, max_len=20,
                          rngs=nnx.Rngs(0), **kw)


def ids(vocab, b, t, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(1, vocab, (b, t)), jnp.int32)


def stepwise(step_fn, cache, tokens):
    """Feed ``tokens`` ``[b, t]`` one step at a time: ``(cache, logits [b, t, V])``."""
    cache, logits = jax.lax.scan(step_fn, cache, tokens.T)
    return cache, logits.transpose(1, 0, 2)


@pytest.mark.parametrize("scan_layers, prompt_len", [(False, 4), (True, 1)])
def test_gpt_cached_decoding_equals_full_forward(gpt, gpt_scan, scan_layers, prompt_len):
    model = gpt_scan if scan_layers else gpt
    tokens = ids(GPT_TINY.vocab_size, 2, 9)
    step_fn = model.step_fn()

    @jax.jit
    def run(tokens):
        full = model(tokens)
        cache = model.init_cache(2, 10)
        cache, prefill = model.prefill(cache, tokens[:, :prompt_len])
        cache, steps = stepwise(step_fn, cache, tokens[:, prompt_len:])
        return full, jnp.concatenate([prefill, steps], axis=1), cache["index"]

    full, cached, index = run(tokens)
    np.testing.assert_allclose(np.asarray(cached), np.asarray(full), atol=ATOL, rtol=0)
    assert index.tolist() == [9, 9]


@pytest.mark.parametrize("scan_layers", [False, True])
def test_gpt_right_padded_prompts_prefill(gpt, gpt_scan, scan_layers):
    model = gpt_scan if scan_layers else gpt
    prompt, lengths = ids(GPT_TINY.vocab_size, 2, 5, seed=1), jnp.array([5, 3])
    nxt = ids(GPT_TINY.vocab_size, 2, 3, seed=2)
    # the full sequences: row 1 is its 3 prompt tokens, then the next 3 tokens, then junk
    full_tokens = jnp.concatenate([prompt, nxt], axis=1).at[1, 3:6].set(nxt[1])

    @jax.jit
    def run(prompt, lengths, nxt, full_tokens):
        cache, pre = model.prefill(model.init_cache(2, 8), prompt, seq_lengths=lengths)
        cache, steps = stepwise(model.step_fn(), cache, nxt)
        return pre, steps, cache["index"], model(full_tokens)

    pre, steps, index, full = run(prompt, lengths, nxt, full_tokens)
    assert index.tolist() == [8, 6]
    np.testing.assert_allclose(np.asarray(pre[0]), np.asarray(full[0, :5]), atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(pre[1, :3]), np.asarray(full[1, :3]), atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(steps[0]), np.asarray(full[0, 5:8]), atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(steps[1]), np.asarray(full[1, 3:6]), atol=ATOL, rtol=0)


def test_encoder_decoder_cached_decoding_equals_full_forward():
    # post-LN (the textbook model), layers scanned: the GPT tests cover pre-LN and the layer loop
    model = tiny_seq2seq(scan=True)
    src, src_lengths = ids(11, 2, 7, seed=3), jnp.array([7, 4])
    tgt = ids(13, 2, 6, seed=4)
    step_fn = model.step_fn()

    @jax.jit
    def run(src, src_lengths, tgt):
        full = model(src, tgt, src_lengths=src_lengths)
        cache = model.init_decode_state(src, 8, src_lengths=src_lengths)
        cache, prefill = model.prefill(cache, tgt[:, :2])
        cache, steps = stepwise(step_fn, cache, tgt[:, 2:])
        return full, jnp.concatenate([prefill, steps], axis=1)

    full, cached = run(src, src_lengths, tgt)
    np.testing.assert_allclose(np.asarray(cached), np.asarray(full), atol=ATOL, rtol=0)


def test_gpt_greedy_through_the_cache_agrees_with_the_full_model(gpt):
    model = gpt
    prompt = ids(GPT_TINY.vocab_size, 2, 3, seed=5)

    @jax.jit
    def run(prompt):
        cache, logits = model.prefill(model.init_cache(2, 8), prompt)
        step = model.step_fn()

        def body(carry, _):
            cache, logits = carry
            token = jnp.argmax(logits, -1)
            cache, logits = step(cache, token)
            return (cache, logits), token

        (cache, _), tokens = jax.lax.scan(body, (cache, logits[:, -1]), None, length=5)
        tokens = tokens.T
        return tokens, cache["index"], model(jnp.concatenate([prompt, tokens], axis=1))

    tokens, index, full = run(prompt)
    np.testing.assert_array_equal(np.asarray(jnp.argmax(full[:, 2:-1], -1)), np.asarray(tokens))
    assert index.tolist() == [8, 8]  # 3 prefilled + 5 fed


def test_the_cached_path_runs_with_the_models_spec(gpt):
    model = tiny_seq2seq(activation="gelu", norm_first=True, eps=1e-3)
    step = model.step_fn()
    assert step.args[0] is model.decoder.spec
    assert (step.args[0].activation, step.args[0].norm_first, step.args[0].eps, step.args[0].causal) == (
        "gelu", True, 1e-3, True)
    assert gpt.step_fn().args[0] is gpt.spec is gpt.blocks.spec
    # and it still equals the full forward with those options
    src, tgt = ids(11, 2, 5, seed=6), ids(13, 2, 4, seed=7)
    cache = model.init_decode_state(src, 6)
    cache, cached = model.prefill(cache, tgt)
    np.testing.assert_allclose(np.asarray(cached), np.asarray(model(src, tgt)), atol=ATOL, rtol=0)


def test_full_cache_and_bad_tokens_are_refused(gpt):
    model = gpt
    cache = model.init_cache(1, 4)
    with pytest.raises(ValueError, match="5 new positions do not fit in max_len = 4"):
        model.prefill(cache, jnp.ones((1, 5), jnp.int32))
    with pytest.raises(ValueError, match="max_len = 13 exceeds the model's n_positions = 12"):
        model.init_cache(1, 13)
    with pytest.raises(ValueError, match="tokens"):
        model.decode_step(cache, jnp.ones((1, 1), jnp.int32))
    with pytest.raises(ValueError, match=r"\[0, 17\)"):
        model.decode_step(cache, jnp.array([17]))
    # another model's cache (4 heads of width 4) is refused by name, not by an XLA shape error
    other = GPTLanguageModel(GPT2Config(**{**GPT_TINY.__dict__, "n_head": 4}), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="4 key/value heads of width 4.*2 heads of width 8"):
        model.decode_step(other.init_cache(1, 4), jnp.array([1]))


# --- decoding past the cache or past the position table (regression tests) ------------------------


def test_gpt_decoding_past_the_cache_names_both_lengths(gpt):
    cache, _ = gpt.prefill(gpt.init_cache(2, 4), jnp.ones((2, 3), jnp.int32))
    cache, _ = gpt.decode_step(cache, jnp.array([1, 2]))  # position 3: the last one
    with pytest.raises(ValueError, match=r"cache\['index'\] = 4 need 5 positions, but the cache holds max_len = 4"):
        gpt.decode_step(cache, jnp.array([1, 2]))
    with pytest.raises(ValueError, match="max_len = 4"):
        gpt.step_fn()(cache, jnp.array([1, 2]))


def test_gpt_cache_longer_than_n_positions_is_refused(gpt):
    long_cache = init_stack_cache(gpt.spec, gpt.blocks.pure_params(), 2, 16)  # built around init_cache
    message = r"the cache holds max_len = 16 positions but the model has n_positions = 12"
    with pytest.raises(ValueError, match=message):
        gpt.prefill(long_cache, jnp.ones((2, 3), jnp.int32))
    with pytest.raises(ValueError, match=message):
        gpt.decode_step(long_cache, jnp.array([1, 2]))


def test_encoder_decoder_cache_longer_than_the_position_table_is_refused():
    # Regression: the encoder-decoder checked its max_len only in init_cache; a cache built
    # another way decoded past the model's position table without a word.
    model = tiny_seq2seq()
    memory, valid = model.encode(ids(11, 2, 5, seed=8))
    long_cache = init_stack_cache(model.decoder.spec, model.decoder.pure_params(), 2, 24, memory=memory)
    message = r"the cache holds max_len = 24 positions but the model has max_len \(the position table size\) = 20"
    with pytest.raises(ValueError, match=message):
        model.prefill(long_cache, jnp.ones((2, 1), jnp.int32))
    with pytest.raises(ValueError, match=message):
        model.decode_step(long_cache, jnp.array([1, 2]))
    with pytest.raises(ValueError, match=message):
        model.step_fn()(long_cache, jnp.array([1, 2]))
    with pytest.raises(ValueError, match="max_len = 21 exceeds the model's max_len = 20"):
        model.init_cache(memory, 21)
    cache, _ = model.prefill(model.init_cache(memory, 2, src_valid=valid), jnp.ones((2, 2), jnp.int32))
    with pytest.raises(ValueError, match=r"cache\['index'\] = 2 need 3 positions, but the cache holds max_len = 2"):
        model.decode_step(cache, jnp.array([1, 2]))


def test_decoding_past_the_cache_is_refused(gpt):
    """Regression: ``greedy(..., max_len=40)`` on a 12-position cache returned 40 tokens without
    an error, the writes past the cache's end silently clamped to its last position. Each step
    writes one position (the first at ``index``), so a cache at index 4 of 12 has room for 8."""
    model = gpt
    prompt = ids(GPT_TINY.vocab_size, 2, 5, seed=6)
    cache, _ = model.prefill(model.init_cache(2, 12), prompt[:, :-1])
    assert cache["index"].tolist() == [4, 4]
    step_fn, first = model.step_fn(), prompt[:, -1]
    with pytest.raises(ValueError, match=r"max_len = 40 .*holds 12 positions \(8 left"):
        greedy(step_fn, cache, first, 40)
    with pytest.raises(ValueError, match=r"max_len = 9 .*holds 12 positions \(8 left"):
        greedy(step_fn, cache, first, 9)
    with pytest.raises(ValueError, match="max_len = 9"):
        sample(step_fn, cache, first, 9, jax.random.key(0, impl="unsafe_rbg"))
    with pytest.raises(ValueError, match="max_len = 9"):
        beam_search(step_fn, cache, first, 9, beam_size=2)

    def with_extra(state, tokens):  # a state that holds the cache at its top level
        cache, extra = state
        cache, logits = step_fn(cache, tokens)
        return (cache, extra), logits

    with pytest.raises(ValueError, match="max_len = 9"):
        greedy(with_extra, (cache, first), first, 9)
    out = greedy(step_fn, cache, first, 8)  # exactly the room left: every position written once
    assert out.sequences.shape == (2, 8) and out.state["index"].tolist() == [12, 12]
