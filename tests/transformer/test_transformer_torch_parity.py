"""Encoder and decoder layers (and stacks) against ``torch.nn.TransformerEncoderLayer`` /
``TransformerDecoderLayer`` / ``TransformerEncoder`` / ``TransformerDecoder`` (batch_first, eval
mode), options read into a TransformerSpec and weights copied through
:mod:`seqjax.interop.torch_transformer`: post-LN and pre-LN, ReLU and exact GELU, with and without
src_key_padding_mask, a causal tgt_mask (or a causal spec), tgt_key_padding_mask and
memory_key_padding_mask. Float32, tolerance 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

from seqjax.attention import combine_masks, from_torch_attn_mask, from_torch_key_padding_mask
from seqjax.transformer import decoder_layer, decoder_stack, encoder_layer, encoder_stack

torch = pytest.importorskip("torch")

from seqjax.interop.torch_transformer import (  # noqa: E402
    from_torch_decoder,
    from_torch_decoder_layer,
    from_torch_encoder,
    from_torch_encoder_layer,
    spec_from_torch,
)

ATOL = RTOL = 1e-5
B, T, S, E, H, F = 2, 5, 7, 16, 4, 32

RNG = np.random.default_rng(0)
X = RNG.normal(size=(B, T, E)).astype(np.float32)
MEMORY = RNG.normal(size=(B, S, E)).astype(np.float32)
SRC_PAD = np.zeros((B, T), bool)  # PyTorch: True = ignore this key
SRC_PAD[1, 3:] = True
MEM_PAD = np.zeros((B, S), bool)
MEM_PAD[0, 4:] = True
CAUSAL = np.triu(np.ones((T, T), bool), k=1)  # PyTorch bool attn_mask: True = not allowed


def perturbed(module, seed):
    """Eval-mode module whose biases and LayerNorm affine parameters are not at their defaults."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return module.eval()


def state(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def tensors(**arrays):
    return {k: (None if v is None else torch.from_numpy(v)) for k, v in arrays.items()}


# Gradients stay enabled on purpose: under no_grad PyTorch takes its fused "fast path", which
# zeroes padded positions (nested tensors); the reference is the plain math.

CASES = [(nf, act) for nf in (False, True) for act in ("relu", "gelu")]


@pytest.mark.parametrize("norm_first, activation", CASES)
@pytest.mark.parametrize("padded", [False, True], ids=["nomask", "padmask"])
def test_encoder_layer_matches_torch(norm_first, activation, padded):
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(
        E, H, F, dropout=0.1, activation=activation, batch_first=True, norm_first=norm_first
    )
    layer = perturbed(layer, 1)
    pad = SRC_PAD if padded else None
    expected = layer(torch.from_numpy(X), **tensors(src_key_padding_mask=pad)).detach().numpy()
    spec = spec_from_torch(layer)
    assert (spec.num_heads, spec.activation, spec.norm_first, spec.dropout_rates()) == (H, activation, norm_first,
                                                                                        (0.1, 0.1, 0.1))
    params = from_torch_encoder_layer(state(layer), spec)
    mask = None if pad is None else from_torch_key_padding_mask(pad)
    out = encoder_layer(spec, params, X, mask=mask)
    np.testing.assert_allclose(np.asarray(out), expected, atol=ATOL, rtol=RTOL)


DECODER_MASKS = {
    "nomask": dict(),
    "causal": dict(tgt_mask=CAUSAL),
    "causal+padding": dict(tgt_mask=CAUSAL, tgt_key_padding_mask=SRC_PAD, memory_key_padding_mask=MEM_PAD),
}


@pytest.mark.parametrize("norm_first, activation", CASES)
@pytest.mark.parametrize("masks", list(DECODER_MASKS))
def test_decoder_layer_matches_torch(norm_first, activation, masks):
    torch.manual_seed(0)
    layer = torch.nn.TransformerDecoderLayer(
        E, H, F, dropout=0.1, activation=activation, batch_first=True, norm_first=norm_first
    )
    layer = perturbed(layer, 2)
    m = DECODER_MASKS[masks]
    expected = layer(torch.from_numpy(X), torch.from_numpy(MEMORY), **tensors(**m)).detach().numpy()
    spec = spec_from_torch(layer)
    params = from_torch_decoder_layer(state(layer), spec)
    self_mask = combine_masks(
        from_torch_attn_mask(m["tgt_mask"]) if "tgt_mask" in m else None,
        from_torch_key_padding_mask(m["tgt_key_padding_mask"]) if "tgt_key_padding_mask" in m else None,
    )
    memory_mask = from_torch_key_padding_mask(m["memory_key_padding_mask"]) if "memory_key_padding_mask" in m else None
    out = decoder_layer(spec, params, X, MEMORY, mask=self_mask, memory_mask=memory_mask)
    np.testing.assert_allclose(np.asarray(out), expected, atol=ATOL, rtol=RTOL)
    if "tgt_mask" in m:  # the causal spec adds the same causal mask itself
        causal = decoder_layer(spec_from_torch(layer, causal=True), params, X, MEMORY, memory_mask=memory_mask,
                               mask=from_torch_key_padding_mask(m["tgt_key_padding_mask"])
                               if "tgt_key_padding_mask" in m else None)
        np.testing.assert_allclose(np.asarray(causal), expected, atol=ATOL, rtol=RTOL)


def test_pre_ln_stacks_with_final_norm_match_torch():
    torch.manual_seed(0)
    enc_layer = torch.nn.TransformerEncoderLayer(E, H, F, activation="gelu", batch_first=True, norm_first=True)
    encoder = perturbed(torch.nn.TransformerEncoder(enc_layer, 2, norm=torch.nn.LayerNorm(E), enable_nested_tensor=False), 3)
    dec_layer = torch.nn.TransformerDecoderLayer(E, H, F, activation="gelu", batch_first=True, norm_first=True)
    decoder = perturbed(torch.nn.TransformerDecoder(dec_layer, 2, norm=torch.nn.LayerNorm(E)), 4)

    memory_t = encoder(torch.from_numpy(X), src_key_padding_mask=torch.from_numpy(SRC_PAD))
    out_t = decoder(torch.from_numpy(X), memory_t, tgt_mask=torch.from_numpy(CAUSAL),
                    memory_key_padding_mask=torch.from_numpy(SRC_PAD))

    enc_spec, dec_spec = spec_from_torch(encoder), spec_from_torch(decoder)
    enc_params = from_torch_encoder(state(encoder), enc_spec)
    dec_params = from_torch_decoder(state(decoder), dec_spec, stacked=True)  # scan == loop: test_transformer_blocks
    assert "final_norm" in enc_params and "final_norm" in dec_params
    pad = from_torch_key_padding_mask(SRC_PAD)
    memory = encoder_stack(enc_spec, enc_params, X, mask=pad)
    out = decoder_stack(dec_spec, dec_params, X, memory, mask=from_torch_attn_mask(CAUSAL), memory_mask=pad, scan=False)
    np.testing.assert_allclose(np.asarray(memory), memory_t.detach().numpy(), atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(np.asarray(out), out_t.detach().numpy(), atol=ATOL, rtol=RTOL)


def test_bias_free_layer_matches_torch():
    torch.manual_seed(0)
    layer = perturbed(torch.nn.TransformerEncoderLayer(E, H, F, batch_first=True, bias=False), 5)
    spec = spec_from_torch(layer)
    params = from_torch_encoder_layer(state(layer), spec)
    assert "bias" not in params["norm_1"] and "b_1" not in params["ffn"]
    expected = layer(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(np.asarray(encoder_layer(spec, params, X)), expected, atol=ATOL, rtol=RTOL)


def test_converter_rejects_foreign_state_dicts():
    layer = torch.nn.TransformerEncoderLayer(E, H, F, batch_first=True)
    st, spec = state(layer), spec_from_torch(layer)
    with pytest.raises(ValueError, match="does not have"):
        from_torch_encoder_layer(st | {"extra.weight": np.zeros(3, np.float32)}, spec)
    with pytest.raises(ValueError, match="no entries"):
        from_torch_decoder_layer(st, spec)
    with pytest.raises(ValueError, match="layers.0"):
        from_torch_encoder({f"layers.1.{k}": v for k, v in st.items()}, spec)
    with pytest.raises(ValueError, match="TransformerSpec"):
        from_torch_encoder_layer(st, H)  # a head count is not a spec
    with pytest.raises(ValueError, match="grouped-query"):
        from_torch_encoder_layer(st, spec.replace(num_kv_heads=2))
    with pytest.raises(ValueError, match="rope"):
        from_torch_encoder_layer(st, spec.replace(positional="rope"))


def test_spec_from_torch_reads_the_options():
    layer = torch.nn.TransformerDecoderLayer(E, H, F, dropout=0.2, activation=torch.nn.GELU(approximate="tanh"),
                                             layer_norm_eps=1e-6, batch_first=True, norm_first=True)
    spec = spec_from_torch(layer, causal=True)
    assert (spec.activation, spec.eps, spec.norm_first, spec.causal, spec.dropout_rates()) == (
        "gelu_tanh", 1e-6, True, True, (0.2, 0.2, 0.2))
    layer = torch.nn.TransformerDecoderLayer(E, H, F, dropout=0.2, activation="gelu", layer_norm_eps=1e-6,
                                             batch_first=True, norm_first=True)
    stack = torch.nn.TransformerDecoder(layer, 2, norm=torch.nn.LayerNorm(E, eps=1e-6))
    assert spec_from_torch(stack, causal=True) == spec.replace(activation="gelu")
    with pytest.raises(ValueError, match="final norm"):
        spec_from_torch(torch.nn.TransformerDecoder(layer, 2, norm=torch.nn.LayerNorm(E)))
    with pytest.raises(ValueError, match="activation"):
        spec_from_torch(torch.nn.TransformerEncoderLayer(E, H, F, activation=torch.tanh, batch_first=True))
    with pytest.raises(ValueError, match="TransformerEncoderLayer"):
        spec_from_torch(torch.nn.Linear(E, E))
