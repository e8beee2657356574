"""Attention weights out of the transformer stacks (``return_attention=True``): the pure layers
and stacks (looped and scanned, encoder and decoder, with a KV cache) and the NNX models.

References: Hugging Face ``transformers`` ``GPT2LMHeadModel`` and ``BertModel`` with
``output_attentions=True`` (eager attention), on weights copied from models built locally
from tiny configs (nothing downloaded); a numpy softmax(QK^T/sqrt(d)) of the first layer; and
the invariants (rows sum to 1, zero above the diagonal for causal models, zero on padded keys).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402

from seqjax.nn import BertConfig, BertForMaskedLM, BertModel, GPTLanguageModel, load_pure_params  # noqa: E402
from seqjax.nn.transformer import TransformerDecoder, TransformerEncoder  # noqa: E402
from seqjax.transformer import (  # noqa: E402
    TransformerSpec,
    decoder_layer,
    decoder_stack,
    decoder_stack_init,
    encoder_layer,
    encoder_stack,
    encoder_stack_init,
    init_stack_cache,
)


def _x(b=2, t=6, d=16, seed=1):
    return jax.random.normal(jax.random.key(seed), (b, t, d))


@pytest.mark.parametrize("norm_first", [False, True])
def test_stack_weights_scan_equals_loop_and_invariants(norm_first):
    spec = TransformerSpec(num_heads=4, norm_first=norm_first)
    looped = encoder_stack_init(jax.random.key(0), 3, 16, 4, 32, final_norm=norm_first)
    stacked = encoder_stack_init(jax.random.key(0), 3, 16, 4, 32, final_norm=norm_first, stacked=True)
    x, lengths = _x(), jnp.array([6, 4])
    y0 = encoder_stack(spec, looped, x, seq_lengths=lengths)
    y1, a1 = encoder_stack(spec, looped, x, seq_lengths=lengths, return_attention=True)
    y2, a2 = encoder_stack(spec, stacked, x, seq_lengths=lengths, return_attention=True)
    y3, a3 = jax.jit(lambda p, x: encoder_stack(spec, p, x, seq_lengths=lengths, return_attention=True))(stacked, x)
    assert set(a1) == {"self"}
    w = np.asarray(a1["self"])
    assert w.shape == (3, 2, 4, 6, 6)
    np.testing.assert_array_equal(np.asarray(y0), np.asarray(y1))  # the option changes nothing else
    np.testing.assert_allclose(np.asarray(a2["self"]), w, atol=1e-6)
    np.testing.assert_allclose(np.asarray(a3["self"]), w, atol=1e-6)
    np.testing.assert_allclose(np.asarray(y2), np.asarray(y1), atol=1e-5)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    assert np.all(w[:, 1, :, :, 4:] == 0.0)  # padded keys of the second sequence
    assert np.all(w[:, 1, :, :, :4].sum(-1) > 0.999)
    assert np.all(w >= 0.0)


def test_first_layer_equals_numpy_softmax():
    spec = TransformerSpec(num_heads=4)  # post-LN: layer 0 attends over the raw input
    params = encoder_stack_init(jax.random.key(3), 2, 16, 4, 32)
    x = np.asarray(_x())
    _, att = encoder_stack(spec, params, jnp.asarray(x), return_attention=True)
    p = {k: np.asarray(v) for k, v in params["layers"][0]["self_attn"].items()}
    q = (x @ p["w_q"] + p["b_q"]).reshape(2, 6, 4, 4)
    k = (x @ p["w_k"] + p["b_k"]).reshape(2, 6, 4, 4)
    logits = np.einsum("bthd,bshd->bhts", q, k) / 2.0
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(att["self"][0]), expected, atol=1e-5)
    # the second layer's weights are those of encoder_layer on the first layer's output
    h = encoder_layer(spec, params["layers"][0], jnp.asarray(x))
    _, one = encoder_layer(spec, params["layers"][1], h, return_attention=True)
    np.testing.assert_allclose(np.asarray(att["self"][1]), np.asarray(one["self"]), atol=1e-6)


def test_causal_weights_zero_above_diagonal_and_dropout_does_not_touch_them():
    spec = TransformerSpec(num_heads=2, norm_first=True, causal=True, dropout_rate=0.5)
    params = encoder_stack_init(jax.random.key(0), 2, 16, 2, 32, final_norm=True, stacked=True)
    x = _x()
    _, clean = encoder_stack(spec, params, x, return_attention=True)
    w = np.asarray(clean["self"])
    assert np.all(np.triu(np.ones((6, 6)), 1)[None, None, None] * w == 0.0)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    # with dropout the returned weights are the softmax (pre-dropout): rows still sum to 1
    _, dropped = encoder_stack(spec, params, x, dropout_key=jax.random.key(5), return_attention=True)
    np.testing.assert_allclose(np.asarray(dropped["self"][0]), w[0], atol=1e-6)  # layer 0 sees the same input
    np.testing.assert_allclose(np.asarray(dropped["self"]).sum(-1), 1.0, atol=1e-6)


def test_cached_prefill_weights_equal_full_forward():
    spec = TransformerSpec(num_heads=4, norm_first=True, causal=True)
    params = encoder_stack_init(jax.random.key(0), 2, 16, 4, 32, final_norm=True)
    x = _x()
    _, full = encoder_stack(spec, params, x, return_attention=True)
    cache = init_stack_cache(spec, params, batch=2, max_len=9)
    cache, _, first = encoder_stack(spec, params, x[:, :4], cache=cache, return_attention=True)
    cache, _, rest = encoder_stack(spec, params, x[:, 4:], cache=cache, return_attention=True)
    assert first["self"].shape == (2, 2, 4, 4, 9)  # over the cache capacity
    both = np.concatenate([np.asarray(first["self"]), np.asarray(rest["self"])], axis=3)
    np.testing.assert_allclose(both[..., :6], np.asarray(full["self"]), atol=1e-5)
    assert np.all(both[..., 6:] == 0.0)


@pytest.mark.parametrize("stacked", [False, True])
def test_decoder_stack_self_and_cross(stacked):
    spec = TransformerSpec(num_heads=2, causal=True)
    params = decoder_stack_init(jax.random.key(0), 2, 16, 2, 32, stacked=stacked)
    x, memory = _x(t=5), _x(t=7, seed=2)
    src_lengths = jnp.array([7, 3])
    y, att = decoder_stack(spec, params, x, memory, src_lengths=src_lengths, return_attention=True)
    np.testing.assert_allclose(np.asarray(y), np.asarray(decoder_stack(spec, params, x, memory, src_lengths=src_lengths)),
                               atol=1e-6)
    assert att["self"].shape == (2, 2, 2, 5, 5) and att["cross"].shape == (2, 2, 2, 5, 7)
    for w in att.values():
        np.testing.assert_allclose(np.asarray(w).sum(-1), 1.0, atol=1e-6)
    assert np.all(np.asarray(att["cross"])[:, 1, :, :, 3:] == 0.0)
    assert np.all(np.triu(np.ones((5, 5)), 1) * np.asarray(att["self"]) == 0.0)
    # layer 0 as decoder_layer alone
    layer0 = params["layers"][0] if not stacked else jax.tree.map(lambda a: a[0], params["layers"])
    from seqjax.attention import padding_mask
    _, one = decoder_layer(spec, layer0, x, memory, memory_mask=padding_mask(src_lengths, 7), return_attention=True)
    np.testing.assert_allclose(np.asarray(att["cross"][0]), np.asarray(one["cross"]), atol=1e-6)


def test_nnx_stacks_pass_the_option_through():
    enc = TransformerEncoder(2, 16, 4, 32, rngs=nnx.Rngs(0), scan=True)
    dec = TransformerDecoder(2, 16, 4, 32, rngs=nnx.Rngs(1))
    x = _x()
    y, att = enc(x, seq_lengths=jnp.array([6, 2]), return_attention=True)
    assert att["self"].shape == (2, 2, 4, 6, 6) and np.all(np.asarray(att["self"])[:, 1, :, :, 2:] == 0)
    _, att = dec(x, y, return_attention=True)
    assert att["cross"].shape == (2, 2, 4, 6, 6)


def test_bad_input_still_refused_with_the_option():
    spec = TransformerSpec(num_heads=4)
    params = encoder_stack_init(jax.random.key(0), 1, 16, 4, 32)
    with pytest.raises(ValueError, match="mask"):
        encoder_stack(spec, params, _x(), mask=jnp.ones((2, 6), bool), return_attention=True)


# --- Hugging Face references -------------------------------------------------------------------------

torch = pytest.importorskip("torch", reason="the Hugging Face parity tests need torch: pip install 'seqjax[test]'")
transformers = pytest.importorskip("transformers", reason="needs transformers: pip install 'seqjax[test]'")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomise(model, scale=0.3):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("ln" in name or "LayerNorm" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(scale * torch.randn_like(p))
    return model


@pytest.mark.parametrize("scan_layers", [False, True])
def test_gpt2_attention_equals_hugging_face(scan_layers):
    config = transformers.GPT2Config(vocab_size=40, n_positions=16, n_embd=32, n_layer=3, n_head=4,
                                     attn_implementation="eager")
    hf = _randomise(transformers.GPT2LMHeadModel(config).eval())
    ours = GPTLanguageModel.from_hf({k: v.numpy() for k, v in hf.state_dict().items()}, hf.config,
                                    scan_layers=scan_layers)
    ids = np.array([[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]])
    with torch.no_grad():
        out = hf(torch.from_numpy(ids), output_attentions=True)
    expected = np.stack([a.numpy() for a in out.attentions])  # [L, b, h, t, t]
    logits, att = ours(jnp.asarray(ids), return_attention=True)
    np.testing.assert_allclose(np.asarray(logits), out.logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(np.asarray(att["self"]), expected, atol=1e-5)
    assert np.all(np.triu(np.ones((8, 8)), 1) * np.asarray(att["self"]) == 0.0)


def _bert_state_to_pure(state: dict, n_layers: int) -> dict:
    """Hugging Face ``BertModel`` names -> ``BertModel.pure_params()`` (torch Linear ``[out, in]``
    transposed to our ``[in, out]``)."""
    s = {k.removeprefix("bert."): v for k, v in state.items()}
    lin = lambda name: (s[f"{name}.weight"].T, s[f"{name}.bias"])  # noqa: E731
    norm = lambda name: {"scale": s[f"{name}.weight"], "bias": s[f"{name}.bias"]}  # noqa: E731
    layers = []
    for i in range(n_layers):
        p = f"encoder.layer.{i}"
        att = {}
        for ours_name, hf_name in (("q", "query"), ("k", "key"), ("v", "value")):
            att[f"w_{ours_name}"], att[f"b_{ours_name}"] = lin(f"{p}.attention.self.{hf_name}")
        att["w_o"], att["b_o"] = lin(f"{p}.attention.output.dense")
        w1, b1 = lin(f"{p}.intermediate.dense")
        w2, b2 = lin(f"{p}.output.dense")
        layers.append({"self_attn": att, "norm_1": norm(f"{p}.attention.output.LayerNorm"),
                       "ffn": {"w_1": w1, "b_1": b1, "w_2": w2, "b_2": b2}, "norm_2": norm(f"{p}.output.LayerNorm")})
    return {
        "embeddings": {"token": s["embeddings.word_embeddings.weight"],
                       "position": s["embeddings.position_embeddings.weight"],
                       "token_type": s["embeddings.token_type_embeddings.weight"],
                       "norm": norm("embeddings.LayerNorm")},
        "encoder": {"layers": layers},
        "pooler": {"w": s["pooler.dense.weight"].T, "b": s["pooler.dense.bias"]},
    }


def test_bert_attention_equals_hugging_face_with_padding():
    hf_config = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=64, max_position_embeddings=16,
                                        attn_implementation="eager")
    hf = _randomise(transformers.BertModel(hf_config).eval(), scale=0.2)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=16)
    ours = BertModel(config, rngs=nnx.Rngs(0))
    load_pure_params(ours, _bert_state_to_pure({k: v.numpy() for k, v in hf.state_dict().items()}, 2))
    ids = np.array([[2, 11, 12, 13, 14, 3, 0], [2, 21, 22, 3, 0, 0, 0]])
    valid = (np.arange(7)[None] < np.array([[6], [4]])).astype(np.int64)
    with torch.no_grad():
        out = hf(torch.from_numpy(ids), attention_mask=torch.from_numpy(valid), output_attentions=True)
    expected = np.stack([a.numpy() for a in out.attentions])
    h, pooled, att = ours(jnp.asarray(ids), token_mask=jnp.asarray(valid), return_attention=True)
    np.testing.assert_allclose(np.asarray(h), out.last_hidden_state.numpy(), atol=1e-4)
    np.testing.assert_allclose(np.asarray(att["self"]), expected, atol=1e-5)
    assert np.all(np.asarray(att["self"])[:, 1, :, :, 4:] == 0.0)  # HF's padded keys are ~1e-40, ours exactly 0

    mlm = BertForMaskedLM(config, rngs=nnx.Rngs(1))
    logits, att_mlm = mlm(jnp.asarray(ids), token_mask=jnp.asarray(valid), return_attention=True)
    assert logits.shape == (2, 7, 50) and att_mlm["self"].shape == (2, 2, 4, 7, 7)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(mlm(jnp.asarray(ids), token_mask=jnp.asarray(valid))),
                               atol=1e-6)
