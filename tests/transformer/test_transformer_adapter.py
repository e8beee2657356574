"""The adapter hook of the encoder layer (Houlsby et al. 2019) against PyTorch: a
``torch.nn.TransformerEncoderLayer`` with forward hooks that apply the same adapters to the
attention and FFN outputs, before the residual and LayerNorm."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.interop.torch_transformer import from_torch_encoder_layer, spec_from_torch
from seqjax.train.finetune.adapters import adapter_init, insert_adapters
from seqjax.transformer import encoder_layer, encoder_stack, encoder_stack_init, TransformerSpec
from seqjax.transformer.adapter import adapter

torch = pytest.importorskip("torch")
B, T, E, H, F, M = 2, 5, 16, 4, 32, 3


def _torch_adapter(p, h):
    t = {k: torch.from_numpy(np.array(v)) for k, v in p.items()}
    return h + torch.nn.functional.gelu(h @ t["w_down"] + t["b_down"]) @ t["w_up"] + t["b_up"]


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_with_adapters_matches_torch_hooks(norm_first):
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(E, H, F, batch_first=True, norm_first=norm_first).eval()
    spec = spec_from_torch(layer)
    params = from_torch_encoder_layer({k: v.detach().numpy() for k, v in layer.state_dict().items()}, spec)
    k1, k2 = jax.random.split(jax.random.key(0))
    a_attn, a_ffn = adapter_init(k1, E, M, init_std=0.3), adapter_init(k2, E, M, init_std=0.3)
    layer.self_attn.register_forward_hook(lambda m, i, out: (_torch_adapter(a_attn, out[0]), *out[1:]))
    layer.linear2.register_forward_hook(lambda m, i, out: _torch_adapter(a_ffn, out))
    x = np.random.default_rng(1).normal(size=(B, T, E)).astype(np.float32)
    with torch.no_grad():
        expected = layer(torch.from_numpy(x)).numpy()
    got = encoder_layer(spec, dict(params, adapter_attn=a_attn, adapter_ffn=a_ffn), jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(got), expected, atol=2e-5, rtol=2e-5)
    plain = encoder_layer(spec, params, jnp.asarray(x))
    assert float(jnp.max(jnp.abs(plain - got))) > 1e-2  # the adapters did change the layer


def test_stacked_and_listed_layers_apply_the_same_adapters_and_zero_up_is_identity():
    spec = TransformerSpec(num_heads=2, activation="gelu")
    x = jax.random.normal(jax.random.key(1), (B, T, 8))
    listed = encoder_stack_init(jax.random.key(0), 2, 8, 2, 16, stacked=False)
    stacked = encoder_stack_init(jax.random.key(0), 2, 8, 2, 16, stacked=True)
    with_l = insert_adapters(jax.random.key(2), listed, 4, init_std=0.2)
    with_s = insert_adapters(jax.random.key(2), stacked, 4, init_std=0.2)
    np.testing.assert_allclose(encoder_stack(spec, with_l, x), encoder_stack(spec, with_s, x), atol=1e-5)
    identity = insert_adapters(jax.random.key(2), listed, 4, zero_up=True)
    np.testing.assert_array_equal(encoder_stack(spec, identity, x), encoder_stack(spec, listed, x))
    # the adapters receive gradients through the layers
    grads = jax.grad(lambda p: jnp.sum(encoder_stack(spec, p, x) ** 2))(with_s)
    assert float(jnp.abs(grads["layers"]["adapter_ffn"]["w_up"]).max()) > 0


def test_adapter_refuses_a_wrong_width():
    p = adapter_init(jax.random.key(0), 8, 2)
    with pytest.raises(ValueError, match="h"):
        adapter(p, jnp.ones((2, 7)))
