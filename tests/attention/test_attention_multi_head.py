"""Multi-head attention against ``torch.nn.MultiheadAttention`` (batch_first, eval mode) with the
weights copied through ``from_torch_mha``: outputs and per-head / averaged weights, self- and
cross-attention, key_padding_mask and attn_mask (boolean and additive); grouped-query attention
against a numpy reference that repeats the kv heads explicitly."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.attention import (
    causal_mask,
    combine_masks,
    cross_attention,
    cross_attention_mask,
    from_torch_attn_mask,
    from_torch_key_padding_mask,
    merge_heads,
    multi_head_attention,
    multi_head_init,
    self_attention,
    split_heads,
)

torch = pytest.importorskip("torch")

from seqjax.interop.torch_attention import from_torch_mha, to_torch_mha  # noqa: E402

ATOL = RTOL = 1e-5
B, T, S, E, H = 2, 5, 7, 32, 4  # head_dim 8: the shapes of the dot-product tests


def make_torch(seed: int, **kw):
    torch.manual_seed(seed)
    module = torch.nn.MultiheadAttention(E, H, batch_first=True, **kw).eval()
    with torch.no_grad():  # torch zero-initialises the biases; make them count
        for name, p in module.named_parameters():
            if "bias" in name:
                p.normal_()
    return module


def state(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def inputs(seed: int, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype(np.float32) for s in shapes]


def run_torch(module, q, k, v, **masks):
    t = {k_: (torch.from_numpy(np.array(m)) if m is not None else None) for k_, m in masks.items()}
    with torch.no_grad():
        out, w_avg = module(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), need_weights=True, **t)
        _, w_heads = module(
            torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), need_weights=True,
            average_attn_weights=False, **t,
        )
    return out.numpy(), w_avg.numpy(), w_heads.numpy()


def check(ours, theirs):
    (out, w), (t_out, t_avg, t_heads) = ours, theirs
    np.testing.assert_allclose(out, t_out, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(w, t_heads, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(w.mean(axis=1), t_avg, atol=ATOL, rtol=RTOL)


def test_self_attention_with_masks_matches_torch():
    module = make_torch(0)
    params = from_torch_mha(state(module), H)
    (x,) = inputs(0, (B, T, E))
    kpm = np.zeros((B, T), bool)
    kpm[1, 3:] = True  # torch: True = ignore
    causal = np.triu(np.ones((T, T), bool), k=1)  # torch MHA: True = not allowed
    theirs = run_torch(module, x, x, x, key_padding_mask=kpm, attn_mask=causal)
    mask = combine_masks(from_torch_key_padding_mask(kpm), from_torch_attn_mask(causal))
    np.testing.assert_array_equal(mask, combine_masks(from_torch_key_padding_mask(kpm), causal_mask(T)))
    check(self_attention(params, x, num_heads=H, mask=mask, return_weights=True), theirs)


def test_self_attention_additive_float_mask_matches_torch():
    module = make_torch(1)
    params = from_torch_mha(state(module), H)
    (x,) = inputs(1, (B, T, E))
    additive = np.where(np.triu(np.ones((T, T), bool), k=1), -np.inf, 0).astype(np.float32)
    theirs = run_torch(module, x, x, x, attn_mask=additive)
    check(self_attention(params, x, num_heads=H, mask=from_torch_attn_mask(additive), return_weights=True), theirs)


def test_per_head_3d_attn_mask_matches_torch():
    module = make_torch(2)
    params = from_torch_mha(state(module), H)
    (x,) = inputs(2, (B, T, E))
    blocked = np.random.default_rng(2).random((B * H, T, T)) < 0.4
    blocked[..., 0] = False
    theirs = run_torch(module, x, x, x, attn_mask=blocked)
    mask = from_torch_attn_mask(blocked, num_heads=H)
    chex.assert_shape(mask, (B, H, T, T))
    check(multi_head_attention(params, x, num_heads=H, mask=mask, return_weights=True), theirs)


def test_cross_attention_with_key_padding_matches_torch():
    module = make_torch(3)
    params = from_torch_mha(state(module), H)
    x, memory = inputs(3, (B, T, E), (B, S, E))
    kpm = np.zeros((B, S), bool)
    kpm[0, 4:] = True
    theirs = run_torch(module, x, memory, memory, key_padding_mask=kpm)
    ours = cross_attention(params, x, memory, num_heads=H, mask=from_torch_key_padding_mask(kpm), return_weights=True)
    check(ours, theirs)


def test_kdim_vdim_without_bias_matches_torch():
    module = make_torch(4, kdim=6, vdim=3, bias=False)
    sd = state(module)
    assert "q_proj_weight" in sd and "in_proj_bias" not in sd
    params = from_torch_mha(sd, H)
    x, k, v = inputs(4, (B, T, E), (B, S, 6), (B, S, 3))
    theirs = run_torch(module, x, k, v)
    check(multi_head_attention(params, x, k, v, num_heads=H, return_weights=True), theirs)
    for name, value in to_torch_mha(params, H).items():
        np.testing.assert_array_equal(value, sd[name])


def test_to_torch_round_trip():
    sd = state(make_torch(5))
    back = to_torch_mha(from_torch_mha(sd, H), H)
    assert set(back) == set(sd)
    for name, value in back.items():
        np.testing.assert_array_equal(value, sd[name])


def numpy_mha(params, xq, xkv, num_heads, mask):
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    q = xq @ p["w_q"] + p["b_q"]
    k = xkv @ p["w_k"] + p["b_k"]
    v = xkv @ p["w_v"] + p["b_v"]
    d_k = q.shape[-1] // num_heads
    h_kv = k.shape[-1] // d_k
    b, t, s = xq.shape[0], xq.shape[1], xkv.shape[1]
    q = q.reshape(b, t, num_heads, d_k)
    k = np.repeat(k.reshape(b, s, h_kv, d_k), num_heads // h_kv, axis=2)  # explicit repeat
    v = np.repeat(v.reshape(b, s, h_kv, -1), num_heads // h_kv, axis=2)
    logits = np.einsum("bthd,bshd->bhts", q, k) / np.sqrt(d_k)
    logits = np.where(mask, logits, -np.inf)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    heads = np.einsum("bhts,bshd->bthd", w, v).reshape(b, t, -1)
    return heads @ p["w_o"] + p["b_o"], w


@pytest.mark.parametrize("h_kv", [1, 2])
def test_grouped_query_attention_matches_repeated_reference(h_kv):
    params = multi_head_init(jax.random.key(h_kv), E, H, num_kv_heads=h_kv)
    params = {k: v + 0.1 if k.startswith("b_") else v for k, v in params.items()}
    chex.assert_shape(params["w_k"], (E, h_kv * E // H))
    chex.assert_shape(params["w_o"], (E, E))
    x, memory = inputs(6, (B, T, E), (B, S, E))
    mask = np.asarray(cross_attention_mask(jnp.array([T, T]), jnp.array([S, 2]), T, S))
    out, w = cross_attention(params, x, memory, num_heads=H, mask=mask, return_weights=True)
    ref_out, ref_w = numpy_mha(params, x, memory, H, mask)
    np.testing.assert_allclose(out, ref_out, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(w, ref_w, atol=ATOL, rtol=RTOL)


def test_init_layout_and_xavier_bounds():
    params = multi_head_init(jax.random.key(0), 12, 3, num_kv_heads=1, value_head_dim=5, kv_features=7, out_features=9)
    shapes = {k: v.shape for k, v in params.items()}
    assert shapes == {
        "w_q": (12, 12), "w_k": (7, 4), "w_v": (7, 5), "w_o": (15, 9),
        "b_q": (12,), "b_k": (4,), "b_v": (5,), "b_o": (9,),
    }
    for name in ("w_q", "w_k", "w_v", "w_o"):
        fan_in, fan_out = params[name].shape
        assert np.abs(params[name]).max() <= np.sqrt(6 / (fan_in + fan_out))
    for name in ("b_q", "b_k", "b_v", "b_o"):
        np.testing.assert_array_equal(params[name], 0.0)
    assert "b_q" not in multi_head_init(jax.random.key(0), E, H, use_bias=False)
    x = jnp.ones((B, T, 12))
    out = multi_head_attention(params, x, jnp.ones((B, S, 7)), num_heads=3)
    chex.assert_shape(out, (B, T, 9))


def test_split_merge_heads_are_inverse():
    (x,) = inputs(7, (B, T, E))
    heads = split_heads(x, H)
    chex.assert_shape(heads, (B, T, H, E // H))
    np.testing.assert_array_equal(heads[:, :, 1], x[..., 8:16])  # head n owns features n*d:(n+1)*d
    np.testing.assert_array_equal(merge_heads(heads), x)


def test_padded_queries_give_finite_outputs_and_gradients_bfloat16():
    params = multi_head_init(jax.random.key(1), E, H, num_kv_heads=2)
    x, memory = inputs(8, (B, T, E), (B, S, E))
    mask = cross_attention_mask(jnp.array([2, T]), jnp.array([S, 3]), T, S)

    def loss(p, x):
        out = cross_attention(p, x, memory, num_heads=H, mask=mask, dtype=jnp.bfloat16)
        return jnp.sum(out.astype(jnp.float32) ** 2)

    out = cross_attention(params, x, memory, num_heads=H, mask=mask, dtype=jnp.bfloat16)
    assert out.dtype == jnp.bfloat16
    ref = cross_attention(params, x, memory, num_heads=H, mask=mask)
    np.testing.assert_allclose(np.asarray(out, np.float32), ref, atol=0.1, rtol=0.05)
    # Padded query rows attend to nothing: their output is the output bias alone (zero here).
    np.testing.assert_array_equal(np.asarray(out[0, 2:], np.float32), 0.0)
    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)
    for leaf in jax.tree.leaves(grads):
        assert np.all(np.isfinite(np.asarray(leaf, np.float32)))


def test_errors():
    params = multi_head_init(jax.random.key(0), E, H)
    x = jnp.ones((B, T, E))
    with pytest.raises(ValueError, match="num_heads = 3 does not divide"):
        multi_head_attention(params, x, num_heads=3)
    with pytest.raises(ValueError, match="missing"):
        multi_head_attention({"w_q": params["w_q"]}, x, num_heads=H)
    with pytest.raises(ValueError, match="query has 5 features"):
        multi_head_attention(params, jnp.ones((B, T, 5)), num_heads=H)
    with pytest.raises(ValueError, match="rank 3"):
        multi_head_attention(params, jnp.ones((T, E)), num_heads=H)
    with pytest.raises(ValueError, match="same batch"):
        multi_head_attention(params, x, jnp.ones((B, S, E)), jnp.ones((B, S + 1, E)), num_heads=H)
    with pytest.raises(ValueError, match="num_kv_heads = 3 must divide num_heads = 4"):
        multi_head_init(jax.random.key(0), E, H, num_kv_heads=3)
    with pytest.raises(ValueError, match="num_heads = 5 must divide d_model = 32"):
        multi_head_init(jax.random.key(0), E, 5)
    with pytest.raises(ValueError, match="num_heads"):
        split_heads(x, 3)


def test_converter_errors():
    sd = state(make_torch(9))
    with pytest.raises(ValueError, match="add_bias_kv"):
        from_torch_mha(sd | {"bias_k": np.zeros((1, 1, E), np.float32)}, H)
    with pytest.raises(ValueError, match="in_proj_weight must have shape"):
        from_torch_mha(sd | {"in_proj_weight": sd["in_proj_weight"][:E]}, H)
    with pytest.raises(ValueError, match="does not have"):
        from_torch_mha(sd | {"weight": sd["in_proj_weight"]}, H)
    with pytest.raises(ValueError, match="does not divide"):
        from_torch_mha(sd, 3)
    gqa = multi_head_init(jax.random.key(0), E, H, num_kv_heads=2)
    with pytest.raises(ValueError, match="num_kv_heads == num_heads"):
        to_torch_mha(gqa, H)
