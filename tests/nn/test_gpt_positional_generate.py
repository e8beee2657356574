"""GPTLanguageModel with the positional schemes inside the attention (RoPE, ALiBi, T5's relative
bias): no position table, the KV-cached prefill and decoding steps equal the full forward pass
(looped and scanned layers), and ``generate()`` equals an independent argmax loop over full
forward passes (prompts of different lengths, right-padded, included), its beam search with one
beam equals greedy, and sampling is reproducible with a key."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqjax.nn.transformer import GPT2Config, GPTLanguageModel
from seqjax.nn.transformer.gpt import gpt_forward

ATOL = 1e-5
V, B = 23, 2


def model_for(positional, scan=False, seed=0):
    config = GPT2Config(vocab_size=V, n_positions=16, n_embd=24, n_layer=2, n_head=3, n_inner=40,
                        positional=positional, relative_buckets=8, relative_max_distance=6, scan_layers=scan,
                        initializer_range=0.3)  # wider than GPT-2's 0.02: decisive logits
    model = GPTLanguageModel(config, rngs=nnx.Rngs(seed))
    if positional == "relative":  # a table far from its small init, so that the bias matters
        table = model.blocks.stack["relative_bias"]
        table[...] = jax.random.normal(jax.random.key(seed + 1), table.shape)
    return model


@pytest.fixture(scope="module")
def models():
    return {(p, s): model_for(p, s) for p, s in (("rope", False), ("alibi", True), ("relative", False),
                                                   ("relative", True))}


# The value comparisons run the model's methods under nnx.jit: one compiled program per call
# signature instead of each op of the (eager) prefill and forward pass compiled on its own. The
# eager generate() path is still run by test_generate_with_right_padded_prompts.
_forward = nnx.jit(lambda model, ids: model(ids))
_prefill = nnx.jit(lambda model, cache, ids: model.prefill(cache, ids))
_decode_step = nnx.jit(lambda model, cache, tokens: model.decode_step(cache, tokens))


@functools.lru_cache(maxsize=None)
def _jitted_generate(max_new_tokens, options):
    kwargs = dict(options)
    return nnx.jit(lambda model, prompt, key: model.generate(prompt, max_new_tokens, key=key, **kwargs))


def generate(model, prompt, max_new_tokens, key=None, **options):
    """``model.generate(prompt, max_new_tokens, key=key, **options)`` under nnx.jit (compiled once
    per model, shapes and options)."""
    return _jitted_generate(max_new_tokens, tuple(sorted(options.items())))(model, prompt, key)


@pytest.mark.parametrize("positional, scan", [("rope", False), ("alibi", True), ("relative", False),
                                              ("relative", True)])
def test_cached_decoding_equals_full_forward(models, positional, scan):
    model = models[positional, scan]
    params = model.pure_params()
    assert "position_embedding" not in params and model.position_embedding is None
    ids = jnp.asarray(np.random.default_rng(0).integers(0, V, (B, 9)))
    full = _forward(model, ids)
    cache, first = _prefill(model, model.init_cache(B, 12), ids[:, :4])
    steps = [first]
    for i in range(4, 9):
        cache, logits = _decode_step(model, cache, ids[:, i])
        steps.append(logits[:, None])
    np.testing.assert_allclose(np.asarray(jnp.concatenate(steps, 1)), np.asarray(full), atol=ATOL, rtol=0)
    assert cache["index"].tolist() == [9, 9]
    # the scheme matters: the same weights without it (no positions at all) give other logits
    blind = jax.jit(gpt_forward, static_argnums=0)(model.spec.replace(positional="absolute"), params, ids)
    assert not np.allclose(np.asarray(full), np.asarray(blind), atol=1e-2)


_FORWARDS = {}  # id(model) -> its jitted full forward pass, shared by every reference_greedy call


def reference_greedy(model, prompt, n):
    """Argmax decoding by full forward passes (no cache) over the growing sequence, right-padded to
    ``n_positions`` so that a single compiled forward per model and batch size serves every step
    and every call (causal: the padding after position i does not change its logits)."""
    if id(model) not in _FORWARDS:
        _FORWARDS[id(model)] = (model, jax.jit(lambda params, ids: gpt_forward(model.spec, params, ids)))
    forward = functools.partial(_FORWARDS[id(model)][1], model.pure_params())
    seq = np.asarray(prompt)
    p = seq.shape[1]
    padded = np.zeros((seq.shape[0], model.config.n_positions), np.int32)
    padded[:, :p] = seq
    for i in range(n):
        padded[:, p + i] = np.asarray(jnp.argmax(forward(jnp.asarray(padded))[:, p + i - 1], -1))
    return padded[:, p:p + n]


@pytest.mark.parametrize("positional, scan", [("rope", False), ("relative", True)])
def test_generate_greedy_equals_full_forward_argmax(models, positional, scan):
    model = models[positional, scan]
    prompt = jnp.asarray(np.random.default_rng(2).integers(0, V, (B, 4)))
    out = generate(model, prompt, 6)
    np.testing.assert_array_equal(np.asarray(out.sequences), reference_greedy(model, prompt, 6))
    one_beam = generate(model, prompt, 6, method="beam", beam_size=1)
    np.testing.assert_array_equal(np.asarray(one_beam.sequences[:, 0]), np.asarray(out.sequences))
    np.testing.assert_allclose(np.asarray(one_beam.log_probs[:, 0]), np.asarray(out.scores), atol=1e-4)


def test_generate_with_right_padded_prompts(models):
    model = models["alibi", True]
    rng = np.random.default_rng(3)
    short, long = rng.integers(0, V, (1, 2)), rng.integers(0, V, (1, 5))
    prompt = jnp.asarray(np.concatenate([np.pad(short, ((0, 0), (0, 3)), constant_values=7), long]))
    out = model.generate(prompt, 4, prompt_lengths=jnp.array([2, 5]))
    np.testing.assert_array_equal(np.asarray(out.sequences[0]), reference_greedy(model, short, 4)[0])
    np.testing.assert_array_equal(np.asarray(out.sequences[1]), reference_greedy(model, long, 4)[0])
    single = model.generate(jnp.asarray(short[:, :1]), 3)  # a one-token prompt: nothing to prefill
    np.testing.assert_array_equal(np.asarray(single.sequences), reference_greedy(model, short[:, :1], 3))


def test_generate_sample_and_beam(models):
    model = models["relative", False]
    prompt = jnp.asarray(np.random.default_rng(4).integers(0, V, (B, 3)))
    a = generate(model, prompt, 5, method="sample", key=jax.random.key(0), temperature=0.8, top_k=5)
    b = generate(model, prompt, 5, method="sample", key=jax.random.key(0), temperature=0.8, top_k=5)
    c = generate(model, prompt, 5, method="sample", key=jax.random.key(1), temperature=0.8, top_k=5)
    np.testing.assert_array_equal(np.asarray(a.sequences), np.asarray(b.sequences))
    assert not np.array_equal(np.asarray(a.sequences), np.asarray(c.sequences))
    beams = generate(model, prompt, 5, method="beam", beam_size=3, length_penalty=0.0)
    assert beams.sequences.shape == (B, 3, 5)
    assert (np.diff(np.asarray(beams.scores), axis=1) <= 0).all()  # best first
    # the best beam's log-probability is at least the greedy one's
    assert (np.asarray(beams.log_probs[:, 0]) >= np.asarray(generate(model, prompt, 5).scores) - 1e-4).all()


def test_generate_refuses_bad_input(models):
    model = models["rope", False]
    prompt = jnp.ones((B, 3), jnp.int32)
    with pytest.raises(ValueError, match="method must be one of"):
        model.generate(prompt, 2, method="nucleus")
    with pytest.raises(ValueError, match="needs a jax.random key"):
        model.generate(prompt, 2, method="sample")
    with pytest.raises(ValueError, match="exceeds n_positions = 16"):
        model.generate(prompt, 15)
    with pytest.raises(ValueError, match="prompt_lengths must be >= 1"):
        model.generate(prompt, 2, prompt_lengths=jnp.array([0, 3]))
    with pytest.raises(ValueError, match="takes no options"):
        model.generate(prompt, 2, temperature=0.5)


def test_non_absolute_models_do_not_convert_to_hugging_face(models, tmp_path):
    with pytest.raises(ValueError, match="positional='rope' has no Hugging Face GPT-2 counterpart"):
        models["rope", False].save_pretrained(tmp_path)


def test_encoder_decoder_generate_equals_full_forward_argmax():
    from seqjax.nn.transformer import EncoderDecoder

    model = EncoderDecoder(11, 13, rngs=nnx.Rngs(2), d_model=16, num_heads=2, num_layers=1, d_ff=24, max_len=12,
                           dropout_rate=0.0)
    src = jnp.asarray(np.random.default_rng(5).integers(0, 11, (B, 6)))
    src_lengths = jnp.array([6, 3])
    # greedy and one-beam search, in one nnx.jit program (the encoder otherwise runs op by op)
    out, beams = nnx.jit(lambda m, src, lengths: (
        m.generate(src, 5, bos_id=1, src_lengths=lengths),
        m.generate(src, 5, bos_id=1, src_lengths=lengths, method="beam", beam_size=1),
    ))(model, src, src_lengths)
    forward = jax.jit(lambda tgt: model(src, tgt, src_lengths=src_lengths))
    tgt = np.ones((B, 6), np.int32)  # BOS, then the tokens chosen so far (later ones: causal, unseen)
    for i in range(5):
        tgt[:, i + 1] = np.asarray(jnp.argmax(forward(jnp.asarray(tgt))[:, i], -1))
    np.testing.assert_array_equal(np.asarray(out.sequences), tgt[:, 1:])
    np.testing.assert_array_equal(np.asarray(beams.sequences[:, 0]), tgt[:, 1:])
    with pytest.raises(ValueError, match="bos_id must be an id"):
        model.generate(src, 2, bos_id=13)
