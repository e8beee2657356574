"""A ``[b, s]`` padding mask where ``[b, 1, 1, s]`` is meant must be refused, also when
``b == t`` (broadcasting from the right would read it as a ``[t, s]`` mask: wrong outputs, no
error). Before the explicit-rank rule, every call below returned an answer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.attention import (chunked_attention, dot_product_attention, multi_head_init, padding_mask,
                              self_attention, sequence_mask)

B = T = S = 4  # batch == q_len: the shape coincidence that hid the mistake
H, D = 2, 8


def _qkv():
    ks = jax.random.split(jax.random.key(0), 3)
    return [jax.random.normal(k, (B, T, H, D)) for k in ks]


LENGTHS = jnp.array([4, 3, 2, 1])


@pytest.mark.parametrize("attend", [dot_product_attention, chunked_attention])
def test_bare_padding_mask_refused_when_batch_equals_time(attend):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="must have rank 4"):
        attend(q, k, v, mask=sequence_mask(LENGTHS, S))
    # The explicit form is accepted and differs from the misread [t, s] interpretation.
    right = attend(q, k, v, mask=padding_mask(LENGTHS, S))
    misread = attend(q, k, v, mask=sequence_mask(LENGTHS, S)[None, None])
    assert not np.allclose(right, misread)


def test_multi_head_refuses_bare_mask():
    params = multi_head_init(jax.random.key(1), 16, H)
    x = jax.random.normal(jax.random.key(2), (B, T, 16))
    with pytest.raises(ValueError, match="must have rank 4"):
        self_attention(params, x, num_heads=H, mask=sequence_mask(LENGTHS, S))


def test_unbatched_takes_rank_three():
    q, k, v = (a[0] for a in _qkv())
    out = dot_product_attention(q, k, v, mask=jnp.tril(jnp.ones((T, S), bool))[None])
    assert out.shape == (T, H, D)
    with pytest.raises(ValueError, match="must have rank 3"):
        dot_product_attention(q, k, v, mask=jnp.tril(jnp.ones((T, S), bool)))


def test_bias_needs_explicit_rank():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="bias must have rank 4"):
        dot_product_attention(q, k, v, bias=jnp.zeros((T, S)))
    dot_product_attention(q, k, v, bias=jnp.zeros((1, H, T, S)))
