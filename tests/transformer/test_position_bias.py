"""ALiBi and T5's relative position bias in the transformer stacks (seqjax.transformer.position_bias):
T5's buckets equal Hugging Face's ``T5Attention._relative_position_bucket`` (copied here as the
reference, and the installed one when transformers is there), the bias tensor equals
``T5Attention.compute_bias`` with the same table, the ALiBi slopes equal the paper's (the authors'
``get_slopes``, copied here) for power-of-two and other head counts, the stacks add exactly that
bias to every layer, and cached decoding (a prefill, then one position at a time) equals the full
forward for encoder and decoder stacks, looped and scanned."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from test_transformer_cache import incremental  # noqa: E402  (the prefill-then-steps driver of the cache tests)

from seqjax.attention import alibi_bias, alibi_slopes
from seqjax.transformer import (
    TransformerSpec,
    decoder_layer,
    decoder_stack,
    decoder_stack_init,
    encoder_layer,
    encoder_stack,
    encoder_stack_init,
    init_stack_cache,
)
from seqjax.transformer.position_bias import (
    alibi_position_bias,
    position_bias,
    relative_bias_init,
    relative_position_bias,
    relative_position_bucket,
)

ATOL = 1e-5
B, T, S, E, H, F = 2, 7, 5, 16, 4, 32
X = jax.random.normal(jax.random.key(0), (B, T, E))
MEMORY = jax.random.normal(jax.random.key(1), (B, S, E))


# --- references ------------------------------------------------------------------------------------


def hf_t5_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    """Hugging Face's ``T5Attention._relative_position_bucket`` (transformers 5.24), in numpy."""
    relative_buckets = 0
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (relative_position > 0).astype(np.int64) * num_buckets
        relative_position = np.abs(relative_position)
    else:
        relative_position = -np.minimum(relative_position, np.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    with np.errstate(divide="ignore", invalid="ignore"):
        relative_position_if_large = max_exact + (
            np.log(relative_position.astype(np.float32) / max_exact)
            / math.log(max_distance / max_exact)
            * (num_buckets - max_exact)
        ).astype(np.int64)
    relative_position_if_large = np.minimum(relative_position_if_large, np.full_like(relative_position_if_large,
                                                                                    num_buckets - 1))
    relative_buckets += np.where(is_small, relative_position, relative_position_if_large)
    return relative_buckets


def press_get_slopes(n):
    """The ALiBi slopes of Press et al.'s code (ofirpress/attention_with_linear_biases)."""
    def get_slopes_power_of_2(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        ratio = start
        return [start * ratio ** i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return get_slopes_power_of_2(closest_power_of_2) + press_get_slopes(2 * closest_power_of_2)[0::2][
        : n - closest_power_of_2]


RELATIVE = np.arange(-300, 301)
BUCKET_CASES = [(True, 32, 128), (False, 32, 128), (True, 8, 16), (False, 6, 20), (True, 10, 7)]


@pytest.mark.parametrize("bidirectional, num_buckets, max_distance", BUCKET_CASES)
def test_buckets_equal_t5(bidirectional, num_buckets, max_distance):
    ours = np.asarray(relative_position_bucket(jnp.asarray(RELATIVE), bidirectional=bidirectional,
                                               num_buckets=num_buckets, max_distance=max_distance))
    expected = hf_t5_bucket(RELATIVE, bidirectional, num_buckets, max_distance)
    np.testing.assert_array_equal(ours, expected)
    assert ours.min() == 0 and ours.max() == num_buckets - 1  # every bucket is reached
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    torch = pytest.importorskip("torch")
    installed = t5.T5Attention._relative_position_bucket(torch.tensor(RELATIVE), bidirectional=bidirectional,
                                                         num_buckets=num_buckets, max_distance=max_distance)
    np.testing.assert_array_equal(ours, installed.numpy())


def test_bucket_properties_by_hand():
    r = jnp.arange(-40, 41)
    both = np.asarray(relative_position_bucket(r, num_buckets=32, max_distance=128))
    causal = np.asarray(relative_position_bucket(r, bidirectional=False, num_buckets=32, max_distance=128))
    np.testing.assert_array_equal(both[40::-1][:8], np.arange(8))  # r = 0, -1, ..., -7: exact buckets
    np.testing.assert_array_equal(both[41:48], 16 + np.arange(1, 8))  # r = 1..7: the other half, exact
    np.testing.assert_array_equal(causal[41:], 0)  # a causal bucket ignores the future
    np.testing.assert_array_equal(causal[40::-1][:16], np.arange(16))  # r = 0, -1, ..., -15: exact
    assert (np.diff(causal[:41][::-1]) >= 0).all()  # monotone in the distance
    with pytest.raises(ValueError, match="too few"):
        relative_position_bucket(r, num_buckets=3)


def test_relative_bias_equals_hf_t5_compute_bias():
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    for causal in (False, True):
        config = transformers.T5Config(d_model=E, d_kv=4, num_heads=H, relative_attention_num_buckets=12,
                                       relative_attention_max_distance=40, is_decoder=causal)
        attention = transformers.models.t5.modeling_t5.T5Attention(config, has_relative_attention_bias=True)
        spec = TransformerSpec(num_heads=H, causal=causal, positional="relative", relative_buckets=12,
                               relative_max_distance=40)
        table = relative_bias_init(jax.random.key(3), spec, stddev=1.0)
        with torch.no_grad():
            attention.relative_attention_bias.weight.copy_(torch.tensor(np.asarray(table)))
            expected = attention.compute_bias(9, 9).numpy()  # [1, h, q, k]
        ours = position_bias(spec, {"relative_bias": table}, jnp.arange(9), 9)
        np.testing.assert_allclose(np.asarray(ours), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("heads", [1, 2, 4, 8, 16, 3, 5, 6, 12, 20])
def test_alibi_slopes_equal_the_papers(heads):
    np.testing.assert_allclose(np.asarray(alibi_slopes(heads)), press_get_slopes(heads), rtol=1e-6)


def test_alibi_slopes_known_values():
    np.testing.assert_allclose(np.asarray(alibi_slopes(8)), [2.0 ** -k for k in range(1, 9)], rtol=1e-6)
    # 6 heads: the 4-head slopes 2^-2, 2^-4, 2^-6, 2^-8, then every other 8-head slope: 2^-1, 2^-3
    np.testing.assert_allclose(np.asarray(alibi_slopes(6)), [2.0 ** -k for k in (2, 4, 6, 8, 1, 3)], rtol=1e-6)


def test_alibi_position_bias_equals_alibi_bias_at_every_offset():
    for offset in (0, 3):
        np.testing.assert_allclose(np.asarray(alibi_position_bias(H, offset + jnp.arange(4), 9)),
                                   np.asarray(alibi_bias(H, 4, 9, offset=offset)), atol=0)
    per_row = alibi_position_bias(H, jnp.array([[0, 1], [5, 6]]), 8)  # a cache at different indices
    np.testing.assert_allclose(np.asarray(per_row[1]), np.asarray(alibi_bias(H, 2, 8, offset=5)[0]))


# --- the stacks add exactly that bias ---------------------------------------------------------------------


def brute_force_relative(table, t, bidirectional, max_distance):
    """``[1, h, t, t]``: table[bucket(j - i)] with the reference buckets, in numpy loops."""
    table = np.asarray(table)
    out = np.zeros((1, table.shape[1], t, t), np.float32)
    for i in range(t):
        for j in range(t):
            out[0, :, i, j] = table[hf_t5_bucket(np.array(j - i), bidirectional, table.shape[0], max_distance)]
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_stack_adds_the_bias_to_every_layer(causal):
    params = encoder_stack_init(jax.random.key(4), 2, E, H, F)
    relative = TransformerSpec(num_heads=H, causal=causal, positional="relative", relative_buckets=8,
                               relative_max_distance=12)
    params_r = {**params, "relative_bias": relative_bias_init(jax.random.key(5), relative, stddev=1.0)}
    plain = relative.replace(positional="absolute")
    bias = brute_force_relative(params_r["relative_bias"], T, not causal, 12)
    np.testing.assert_allclose(np.asarray(encoder_stack(relative, params_r, X)),
                               np.asarray(encoder_stack(plain, params, X, bias=jnp.asarray(bias))), atol=ATOL, rtol=0)
    alibi = relative.replace(positional="alibi")
    np.testing.assert_allclose(np.asarray(encoder_stack(alibi, params, X)),
                               np.asarray(encoder_stack(plain, params, X, bias=alibi_bias(H, T))), atol=ATOL, rtol=0)
    assert not np.allclose(encoder_stack(alibi, params, X), encoder_stack(plain, params, X), atol=1e-3)
    # a caller's bias adds to the scheme's
    extra = jax.random.normal(jax.random.key(6), (1, H, T, T))
    np.testing.assert_allclose(np.asarray(encoder_stack(alibi, params, X, bias=extra)),
                               np.asarray(encoder_stack(plain, params, X, bias=alibi_bias(H, T) + extra)), atol=ATOL)


def test_the_t5_table_is_learned():
    spec = TransformerSpec(num_heads=H, positional="relative", relative_buckets=8, relative_max_distance=12)
    params = {**encoder_stack_init(jax.random.key(7), 2, E, H, F), "relative_bias": relative_bias_init(
        jax.random.key(8), spec)}
    grads = jax.grad(lambda p: jnp.sum(encoder_stack(spec, p, X) ** 3))(params)
    g = np.asarray(grads["relative_bias"])
    # every bucket that T = 7 reaches gets a gradient in every head; bucket 4 (r > 0 at distance 0)
    # exists in T5's layout but no position pair falls in it
    assert g.shape == (8, H) and np.abs(np.delete(g, 4, axis=0)).min() > 0 and (g[4] == 0).all()


# --- cached decoding == full forward ----------------------------------------------------------------------


def with_table(spec, params, key=9):
    if spec.positional == "relative":
        params = {**params, "relative_bias": relative_bias_init(jax.random.key(key), spec, stddev=1.0)}
    return params


CACHE_CASES = [("alibi", False, False), ("alibi", True, True), ("relative", False, True), ("relative", True, False)]


@pytest.mark.parametrize("positional, scan, norm_first", CACHE_CASES)
def test_encoder_stack_cached_equals_full_forward(positional, scan, norm_first):
    spec = TransformerSpec(num_heads=H, causal=True, norm_first=norm_first, positional=positional,
                           relative_buckets=6, relative_max_distance=5)  # small: the log buckets matter at T = 7
    params = with_table(spec, encoder_stack_init(jax.random.key(10), 2, E, H, F, final_norm=norm_first, stacked=scan))

    @jax.jit
    def run(params, x):
        full = encoder_stack(spec, params, x)
        cache = init_stack_cache(spec, params, B, 9)
        cached, cache = incremental(lambda c, part: encoder_stack(spec, params, part, cache=c), cache, x, 3)
        return full, cached, cache["index"]

    full, cached, index = run(params, X)
    np.testing.assert_allclose(np.asarray(cached), np.asarray(full), atol=ATOL, rtol=0)
    assert index.tolist() == [T, T]


@pytest.mark.parametrize("positional, scan", [("alibi", True), ("relative", False)])
def test_decoder_stack_cached_equals_full_forward(positional, scan):
    spec = TransformerSpec(num_heads=H, causal=True, positional=positional, relative_buckets=6,
                           relative_max_distance=5)
    params = with_table(spec, decoder_stack_init(jax.random.key(11), 2, E, H, F, stacked=scan))
    src_lengths = jnp.array([5, 2])
    valid = jnp.arange(S)[None] < src_lengths[:, None]

    @jax.jit
    def run(params, x, memory):
        full = decoder_stack(spec, params, x, memory, src_lengths=src_lengths)
        cache = init_stack_cache(spec, params, B, 8, memory=memory, memory_valid=valid)
        cached, _ = incremental(lambda c, part: decoder_stack(spec, params, part, cache=c), cache, x, 2)
        return full, cached, decoder_stack(spec.replace(positional="absolute"), params, x, memory,
                                           src_lengths=src_lengths)

    full, cached, plain = run(params, X, MEMORY)
    np.testing.assert_allclose(np.asarray(cached), np.asarray(full), atol=ATOL, rtol=0)
    assert not np.allclose(full, plain, atol=1e-3)  # the bias reaches the decoder's self-attention


def test_refusals():
    spec = TransformerSpec(num_heads=H, causal=True, positional="relative", relative_buckets=8, relative_max_distance=12)
    params = encoder_stack_init(jax.random.key(12), 1, E, H, F)
    with pytest.raises(ValueError, match="needs the stack parameter 'relative_bias'"):
        encoder_stack(spec, params, X)
    with pytest.raises(ValueError, match=r"must have shape \[relative_buckets, num_heads\] = \(8, 4\)"):
        encoder_stack(spec, {**params, "relative_bias": jnp.zeros((4, 8))}, X)
    layer = params["layers"][0]
    with pytest.raises(ValueError, match="the position bias is added by the stacks"):
        encoder_layer(spec.replace(positional="alibi"), layer, X)
    assert encoder_layer(spec.replace(positional="alibi"), layer, X, bias=alibi_bias(H, T)).shape == X.shape
    with pytest.raises(ValueError, match="the position bias is added by the stacks"):
        decoder_layer(spec, decoder_stack_init(jax.random.key(13), 1, E, H, F)["layers"][0], X, MEMORY)
    with pytest.raises(ValueError, match="leave no logarithmic buckets"):
        TransformerSpec(num_heads=H, positional="relative", relative_buckets=3)
    with pytest.raises(ValueError, match="positional must be one of"):
        TransformerSpec(num_heads=H, positional="t5")
    with pytest.raises(ValueError, match="bias must have rank"):
        encoder_stack(spec.replace(positional="alibi"), params, X, bias=jnp.zeros((T, T)))
    assert relative_position_bias(jnp.ones((8, H)), jnp.arange(3), 5, bidirectional=True).shape == (1, H, 3, 5)
