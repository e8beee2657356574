"""The layers' two uses agree: the pure encoder and decoder stacks run with a KV cache (a prefill,
then one position at a time) equal the full forward pass, for looped and scanned layers, absolute
and rotary positions, grouped-query attention, post-LN and pre-LN; a cache is refused where it
cannot be right (non-causal spec, another stack's cache, memory given twice, no room left)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.transformer import (
    TransformerSpec,
    decoder_stack,
    decoder_stack_init,
    encoder_stack,
    encoder_stack_init,
    init_stack_cache,
)

ATOL = 1e-5
B, T, S, E, H, F = 2, 7, 5, 16, 4, 32
X = jax.random.normal(jax.random.key(0), (B, T, E))
MEMORY = jax.random.normal(jax.random.key(1), (B, S, E))


def incremental(run, cache, x, prompt_len):
    """``run(cache, x_part) -> (cache, y)`` on a prompt of ``prompt_len`` positions, then one
    position at a time (a scan): the outputs for all positions and the final cache."""
    cache, first = run(cache, x[:, :prompt_len])

    def body(cache, x_t):
        cache, y = run(cache, x_t[:, None])
        return cache, y[:, 0]

    cache, rest = jax.lax.scan(body, cache, x[:, prompt_len:].transpose(1, 0, 2))
    return jnp.concatenate([first, rest.transpose(1, 0, 2)], axis=1), cache


ENCODER_CASES = {
    "loop-absolute-postLN": dict(scan=False, spec=dict(norm_first=False)),
    "scan-rope-gqa-preLN": dict(scan=True, spec=dict(norm_first=True, positional="rope", num_kv_heads=2)),
    "loop-rope-gelu": dict(scan=False, spec=dict(norm_first=True, positional="rope", activation="gelu")),
}


@pytest.mark.parametrize("case", list(ENCODER_CASES))
def test_encoder_stack_cached_equals_full_forward(case):
    scan, options = ENCODER_CASES[case]["scan"], ENCODER_CASES[case]["spec"]
    spec = TransformerSpec(num_heads=H, causal=True, **options)
    params = encoder_stack_init(jax.random.key(2), 2, E, H, F, num_kv_heads=options.get("num_kv_heads"),
                                final_norm=spec.norm_first, stacked=scan)

    @jax.jit
    def run(params, x):
        full = encoder_stack(spec, params, x)
        cache = init_stack_cache(spec, params, B, 9)
        cached, cache = incremental(lambda c, part: encoder_stack(spec, params, part, cache=c), cache, x, 3)
        return full, cached, cache["index"]

    full, cached, index = run(params, X)
    np.testing.assert_allclose(np.asarray(cached), np.asarray(full), atol=ATOL, rtol=0)
    assert index.tolist() == [T, T]


def test_rope_is_applied_inside_the_layers():
    spec = TransformerSpec(num_heads=H, causal=True, positional="rope")
    params = encoder_stack_init(jax.random.key(3), 1, E, H, F)
    absolute = encoder_stack(spec.replace(positional="absolute"), params, X)
    rotary = encoder_stack(spec, params, X)
    assert not np.allclose(absolute, rotary, atol=1e-3)
    np.testing.assert_allclose(rotary[:, 0], absolute[:, 0], atol=ATOL)  # position 0: no rotation


@pytest.mark.parametrize("scan, positional", [(True, "absolute"), (False, "rope")])
def test_decoder_stack_cached_equals_full_forward_with_source_padding(scan, positional):
    spec = TransformerSpec(num_heads=H, causal=True, positional=positional)  # post-LN
    params = decoder_stack_init(jax.random.key(4), 2, E, H, F, stacked=scan)
    src_lengths = jnp.array([5, 2])
    valid = jnp.arange(S)[None] < src_lengths[:, None]

    @jax.jit
    def run(params, x, memory):
        full = decoder_stack(spec, params, x, memory, src_lengths=src_lengths)
        cache = init_stack_cache(spec, params, B, 8, memory=memory, memory_valid=valid)
        cached, _ = incremental(lambda c, part: decoder_stack(spec, params, part, cache=c), cache, x, 2)
        # a cache without the precomputed cross entries projects the memory at every call
        self_only = init_stack_cache(spec, params, B, 8)
        memory_mask = valid[:, None, None, :]
        projected, _ = incremental(lambda c, part: decoder_stack(spec, params, part, memory, cache=c,
                                                                 memory_mask=memory_mask), self_only, x, 2)
        return full, cached, projected

    full, cached, projected = run(params, X, MEMORY)
    np.testing.assert_allclose(np.asarray(cached), np.asarray(full), atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(projected), np.asarray(full), atol=ATOL, rtol=0)
    # the padded source positions are really masked
    other = MEMORY.at[1, 2:].set(9.0)
    np.testing.assert_allclose(np.asarray(decoder_stack(spec, params, X, other, src_lengths=src_lengths)),
                               np.asarray(full), atol=ATOL, rtol=0)


def test_a_cache_is_refused_where_it_cannot_be_right():
    spec = TransformerSpec(num_heads=H, causal=True)
    params = encoder_stack_init(jax.random.key(5), 2, E, H, F)
    cache = init_stack_cache(spec, params, B, 4)
    with pytest.raises(ValueError, match="causal=True"):
        encoder_stack(spec.replace(causal=False), params, X[:, :2], cache=cache)
    with pytest.raises(ValueError, match="causal=True"):
        init_stack_cache(spec.replace(causal=False), params, B, 4)
    with pytest.raises(ValueError, match=r"5 new positions do not fit in max_len = 4"):
        encoder_stack(spec, params, X[:, :5], cache=cache)
    cache, _ = encoder_stack(spec, params, X[:, :3], cache=cache)
    with pytest.raises(ValueError, match=r"cache\['index'\] = 3 need 5 positions, but the cache holds max_len = 4"):
        encoder_stack(spec, params, X[:, :2], cache=cache)
    other = encoder_stack_init(jax.random.key(6), 2, E, 2, F)  # 2 heads of width 8
    with pytest.raises(ValueError, match="4 key/value heads of width 4.*2 heads of width 8"):
        encoder_stack(TransformerSpec(num_heads=2, causal=True), other, X[:, :1], cache=cache)
    dec = decoder_stack_init(jax.random.key(7), 1, E, H, F)
    dec_cache = init_stack_cache(spec, dec, B, 4, memory=MEMORY)
    with pytest.raises(ValueError, match="memory was given"):
        decoder_stack(spec, dec, X[:, :1], MEMORY, cache=dec_cache)
    with pytest.raises(ValueError, match="memory .* is required"):
        decoder_stack(spec, dec, X[:, :1], cache=init_stack_cache(spec, dec, B, 4))
    with pytest.raises(ValueError, match="memory_valid"):
        decoder_stack(spec, dec, X[:, :1], cache=dec_cache, src_lengths=jnp.array([5, 2]))


def test_bfloat16_cache_takes_the_spec_dtype_and_matches_the_full_forward():
    spec = TransformerSpec(num_heads=H, causal=True, norm_first=True, dtype=jnp.bfloat16)
    params = encoder_stack_init(jax.random.key(8), 2, E, H, F, final_norm=True)
    cache = init_stack_cache(spec, params, B, 8)
    assert cache["k"].dtype == jnp.bfloat16
    full = encoder_stack(spec, params, X)
    cache, first = encoder_stack(spec, params, X[:, :4], cache=cache)
    cache, rest = encoder_stack(spec, params, X[:, 4:], cache=cache)
    assert first.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(jnp.concatenate([first, rest], 1), np.float32),
                               np.asarray(full, np.float32), atol=1e-2)
