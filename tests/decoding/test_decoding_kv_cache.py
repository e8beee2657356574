"""KV-cached incremental decoding equals the full forward pass (to 1e-5): GPT (loop and scan
stacks, with a prompt prefill, with right-padded prompts of different lengths) and the
encoder-decoder Transformer (cross-attention keys and values computed once, source padding);
greedy decoding through the cache agrees with the full model; a full cache is refused, and so is
decoding more tokens than the cache has room for."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqjax.decoding import beam_search, greedy, sample
from seqjax.nn.transformer import EncoderDecoder, GPT2Config, GPTLanguageModel

ATOL = 1e-5
GPT_TINY = GPT2Config(vocab_size=17, n_positions=12, n_embd=16, n_layer=2, n_head=2)


@pytest.fixture(scope="module")
def gpt():
    """One tiny GPT (2 layers, Python loop) shared by the tests that only read it."""
    return GPTLanguageModel(GPT_TINY, rngs=nnx.Rngs(0))


def ids(vocab, b, t, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(1, vocab, (b, t)), jnp.int32)


def stepwise(step_fn, cache, tokens):
    """Feed ``tokens`` ``[b, t]`` one step at a time: logits ``[b, t, V]``. The step function has
    the order of a ``jax.lax.scan`` body, ``(state, x) -> (state, y)``, so it is one."""
    cache, logits = jax.lax.scan(step_fn, cache, tokens.T)
    return logits.transpose(1, 0, 2), cache


@pytest.mark.parametrize("scan_layers, prompt_len", [(False, 4), (True, 1)])
def test_gpt_cached_decoding_equals_full_forward(gpt, scan_layers, prompt_len):
    model = GPTLanguageModel(GPT2Config(**{**GPT_TINY.__dict__, "scan_layers": True}), rngs=nnx.Rngs(0)) \
        if scan_layers else gpt
    tokens = ids(GPT_TINY.vocab_size, 2, 9)
    step_fn = model.step_fn()

    @jax.jit
    def run(tokens):
        full = model(tokens)
        cache = model.init_cache(2, 10)
        cache, prefill = model.prefill(cache, tokens[:, :prompt_len])
        steps, cache = stepwise(step_fn, cache, tokens[:, prompt_len:])
        return full, jnp.concatenate([prefill, steps], axis=1), cache["index"]

    full, cached, index = run(tokens)
    np.testing.assert_allclose(np.asarray(cached), np.asarray(full), atol=ATOL, rtol=0)
    assert index.tolist() == [9, 9]


def test_gpt_right_padded_prompts_prefill(gpt):
    model = gpt
    prompt, lengths = ids(GPT_TINY.vocab_size, 2, 5, seed=1), jnp.array([5, 3])
    nxt = ids(GPT_TINY.vocab_size, 2, 1, seed=2)
    # the full sequences: row 1 is its 3 prompt tokens, the next token, then junk
    full_tokens = jnp.concatenate([prompt, nxt], axis=1).at[1, 3].set(nxt[1, 0])

    @jax.jit
    def run(prompt, lengths, nxt, full_tokens):
        cache, pre = model.prefill(model.init_cache(2, 8), prompt, seq_lengths=lengths)
        cache, step = model.decode_step(cache, nxt[:, 0])
        return pre, step, cache["index"], model(full_tokens)

    pre, step, index, full = run(prompt, lengths, nxt, full_tokens)
    assert index.tolist() == [6, 4]
    np.testing.assert_allclose(np.asarray(pre[0]), np.asarray(full[0, :5]), atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(pre[1, :3]), np.asarray(full[1, :3]), atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(step[0]), np.asarray(full[0, 5]), atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(step[1]), np.asarray(full[1, 3]), atol=ATOL, rtol=0)


def test_encoder_decoder_cached_decoding_equals_full_forward():
    # post-LN (the seeds' model), layers scanned: the GPT tests cover pre-LN and the layer loop
    model = EncoderDecoder(11, 13, d_model=16, num_heads=2, num_layers=2, d_ff=32, max_len=20,
                           scan=True, rngs=nnx.Rngs(0))
    src, src_lengths = ids(11, 2, 7, seed=3), jnp.array([7, 4])
    tgt = ids(13, 2, 6, seed=4)
    step_fn = model.step_fn()

    @jax.jit
    def run(src, src_lengths, tgt):
        full = model(src, tgt, src_lengths=src_lengths)
        cache = model.init_decode_state(src, 8, src_lengths=src_lengths)
        cache, prefill = model.prefill(cache, tgt[:, :2])
        steps, cache = stepwise(step_fn, cache, tgt[:, 2:])
        return full, jnp.concatenate([prefill, steps], axis=1)

    full, cached = run(src, src_lengths, tgt)
    np.testing.assert_allclose(np.asarray(cached), np.asarray(full), atol=ATOL, rtol=0)


def test_gpt_greedy_through_the_cache_agrees_with_the_full_model(gpt):
    model = gpt
    prompt = ids(GPT_TINY.vocab_size, 2, 3, seed=5)

    @jax.jit
    def run(prompt):
        cache, _ = model.prefill(model.init_cache(2, 8), prompt[:, :-1])
        out = greedy(model.step_fn(), cache, prompt[:, -1], 5)
        return out, model(jnp.concatenate([prompt, out.sequences], axis=1))

    out, full = run(prompt)
    predicted = full[:, 2:-1]  # the logits that chose each generated token
    np.testing.assert_array_equal(np.asarray(jnp.argmax(predicted, -1)), np.asarray(out.sequences))
    log_p = np.take_along_axis(np.asarray(jax.nn.log_softmax(predicted)), np.asarray(out.sequences)[..., None], -1)
    np.testing.assert_allclose(np.asarray(out.scores), log_p[..., 0].sum(-1), atol=1e-4, rtol=0)
    assert out.state["index"].tolist() == [7, 7]  # 2 prefilled + 5 fed (the last token is not fed)


def test_full_cache_and_bad_tokens_are_refused(gpt):
    model = gpt
    cache = model.init_cache(1, 4)
    with pytest.raises(ValueError, match="cache is full"):
        model.prefill(cache, jnp.ones((1, 5), jnp.int32))
    with pytest.raises(ValueError, match="n_positions"):
        model.init_cache(1, 13)
    with pytest.raises(ValueError, match="tokens"):
        model.decode_step(cache, jnp.ones((1, 1), jnp.int32))


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
