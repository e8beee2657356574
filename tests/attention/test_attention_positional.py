"""Positional encodings: the sinusoidal table's values and shift-linearity, learned tables, RoPE's
relative-position property against a complex-number reference, ALiBi slopes and bias."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.attention import (
    add_positions,
    alibi_bias,
    alibi_slopes,
    apply_rope,
    causal_mask,
    dot_product_attention,
    learned_positional_init,
    sinusoidal_table,
)


def test_sinusoidal_known_values():
    table = sinusoidal_table(8, 128)
    chex.assert_shape(table, (8, 128))
    np.testing.assert_array_equal(table[0], np.tile([0.0, 1.0], 64))  # P0 = [0, 1, 0, 1, ...]
    np.testing.assert_allclose(table[2, :4], [0.909, -0.416, 0.987, -0.160], atol=1e-3)  # seed 002
    # Seed 001's d=6 example table, with its wrong dims 4-5 corrected (seed notes 001 §1.5).
    np.testing.assert_allclose(
        sinusoidal_table(4, 6)[1:],
        [[0.8415, 0.5403, 0.0464, 0.9989, 0.0022, 1.0000],
         [0.9093, -0.4161, 0.0927, 0.9957, 0.0043, 1.0000],
         [0.1411, -0.9900, 0.1388, 0.9903, 0.0065, 1.0000]],
        atol=1e-4,
    )
    assert float(jnp.abs(table).max()) <= 1.0


@pytest.mark.parametrize("k", [1, 5, 17])
def test_sinusoidal_shift_is_linear(k):
    """PE(pos + k) = PE(pos) M_k for one matrix M_k (a rotation per frequency pair) and all pos."""
    d, max_len = 16, 64
    table = np.asarray(sinusoidal_table(max_len, d), np.float64)
    m = np.zeros((d, d))
    for i in range(d // 2):
        angle = k / 10000 ** (2 * i / d)
        c, s = np.cos(angle), np.sin(angle)
        # [sin(a), cos(a)] -> [sin(a + b), cos(a + b)] = [sin a cos b + cos a sin b, cos a cos b - sin a sin b]
        m[2 * i: 2 * i + 2, 2 * i: 2 * i + 2] = [[c, -s], [s, c]]
    np.testing.assert_allclose(table[:-k] @ m, table[k:], atol=1e-5)
    np.testing.assert_allclose(m @ m.T, np.eye(d), atol=1e-12)  # a rotation


def test_sinusoidal_is_a_constant_and_odd_d_is_refused():
    np.testing.assert_array_equal(jax.jit(lambda: sinusoidal_table(5, 8))(), sinusoidal_table(5, 8))
    assert sinusoidal_table(5, 8, dtype=jnp.bfloat16).dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="d_model must be even.*got 7"):
        sinusoidal_table(10, 7)


def test_add_positions_and_learned_table():
    params = learned_positional_init(jax.random.key(0), 32, 8)
    chex.assert_shape(params["table"], (32, 8))
    assert 0.01 < float(params["table"].std()) < 0.03
    x = jnp.ones((2, 5, 8))
    np.testing.assert_allclose(add_positions(x, params["table"], offset=3), 1 + np.broadcast_to(params["table"][3:8], x.shape))
    table = sinusoidal_table(16, 8)
    np.testing.assert_allclose(add_positions(x[0], table), 1 + table[:5])
    out = jax.jit(lambda x, o: add_positions(x, table, offset=o))(x, 2)  # traced offset
    np.testing.assert_allclose(out, 1 + np.broadcast_to(table[2:7], x.shape))
    with pytest.raises(ValueError, match=r"must lie in the table's \[0, 16\]"):
        add_positions(x, table, offset=12)
    with pytest.raises(ValueError, match="x has 4 features"):
        add_positions(jnp.ones((2, 5, 4)), table)


def complex_rope(x, positions, base=10000.0):
    """Reference: pair (x_2i, x_2i+1) as x_2i + i x_2i+1, multiplied by e^{i p theta_i}."""
    x = np.asarray(x, np.float64)
    d = x.shape[-1]
    theta = base ** (-np.arange(0, d, 2) / d)
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * np.exp(1j * np.asarray(positions)[:, None, None] * theta)
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = z.real, z.imag
    return out


T, H, D = 6, 2, 8


def test_rope_matches_complex_rotation():
    x = np.random.default_rng(0).normal(size=(3, T, H, D)).astype(np.float32)
    positions = np.array([0, 1, 2, 7, 30, 100])
    np.testing.assert_allclose(apply_rope(x, positions), complex_rope(x, positions), atol=1e-5)
    np.testing.assert_allclose(apply_rope(x)[:, 0], x[:, 0], atol=1e-7)  # position 0: identity
    np.testing.assert_allclose(  # norms preserved
        np.linalg.norm(apply_rope(x, positions), axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5
    )
    # "Rotate half" pairs (i, i + d/2) are the same rotation after a fixed feature permutation.
    perm = np.concatenate([np.arange(0, D, 2), np.arange(1, D, 2)])
    np.testing.assert_allclose(
        apply_rope(x[..., perm], positions, interleaved=False), np.asarray(apply_rope(x, positions))[..., perm], atol=1e-5
    )


@pytest.mark.parametrize("interleaved", [True, False])
def test_rope_scores_depend_only_on_relative_position(interleaved):
    rng = np.random.default_rng(1)
    q = rng.normal(size=(1, 1, H, D)).astype(np.float32)
    k = rng.normal(size=(1, 1, H, D)).astype(np.float32)

    def score(m, n):
        qm = apply_rope(q, jnp.array([m]), interleaved=interleaved)
        kn = apply_rope(k, jnp.array([n]), interleaved=interleaved)
        return np.einsum("bthd,bthd->h", qm, kn)

    for m, n in [(3, 1), (0, 5), (7, 7)]:
        base = score(m, n)
        for shift in (1, 10, 250):
            np.testing.assert_allclose(score(m + shift, n + shift), base, atol=1e-4, rtol=1e-4)
    assert not np.allclose(score(3, 1), score(3, 2), atol=1e-3)  # it does depend on m - n


def test_rope_batched_positions_and_dtype():
    x = jnp.ones((2, T, H, D), jnp.bfloat16)
    positions = jnp.stack([jnp.arange(T), jnp.arange(T) + 4])
    out = apply_rope(x, positions)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out[1, 0], np.float32), np.asarray(out[0, 4], np.float32))


def test_alibi_slopes():
    np.testing.assert_allclose(alibi_slopes(8), 2.0 ** -np.arange(1, 9), rtol=1e-7)
    np.testing.assert_allclose(alibi_slopes(4), 2.0 ** -np.array([2, 4, 6, 8]), rtol=1e-7)
    # Not a power of two: the 4-head slopes, then every other 8-head slope (the authors' code).
    np.testing.assert_allclose(alibi_slopes(6), 2.0 ** -np.array([2, 4, 6, 8, 1, 3]), rtol=1e-7)


def test_alibi_bias_values_and_use():
    bias = alibi_bias(4, 3)[0]
    chex.assert_shape(bias, (4, 3, 3))
    m = np.asarray(alibi_slopes(4))
    i, j = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
    for h in range(4):
        np.testing.assert_allclose(np.where(j <= i, bias[h], 0), np.where(j <= i, -m[h] * (i - j), 0))
    chex.assert_shape(alibi_bias(2, 2, 5, offset=3), (1, 2, 2, 5))
    np.testing.assert_allclose(alibi_bias(2, 2, 5, offset=3)[0, 0, 1], -(2.0 ** -4) * np.array([4, 3, 2, 1, 0]))  # 2 heads: slopes 2^-4, 2^-8
    # With a causal mask the bias shifts each row by a constant on the allowed keys only.
    q = k = v = jnp.asarray(np.random.default_rng(2).normal(size=(1, 3, 4, 8)), jnp.float32)
    out = dot_product_attention(q, k, v, mask=causal_mask(3), bias=bias[None])
    np.testing.assert_allclose(out, jax.nn.dot_product_attention(q, k, v, bias=bias[None], is_causal=True), atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="head_dim .* must be even"):
        apply_rope(jnp.ones((1, T, H, 5)))
    with pytest.raises(ValueError, match=r"positions must have shape \[time\]"):
        apply_rope(jnp.ones((1, T, H, D)), jnp.arange(T + 1))
    with pytest.raises(ValueError, match="rank 3 or 4 or 5"):
        apply_rope(jnp.ones((T, D)))
    with pytest.raises(ValueError, match="num_heads must be a positive integer"):
        alibi_slopes(0)
    with pytest.raises(ValueError, match="max_len must be a positive integer"):
        learned_positional_init(jax.random.key(0), 0, 4)
