"""Transformer layers as pure functions, each written once for training and for KV-cached
decoding, and the options they share.

* :mod:`~seqjax.transformer.spec`: :class:`TransformerSpec`, the frozen options of a layer
  (heads, activation, norm placement, eps, causality, positional scheme, dtype, dropout rates),
  shared by the pure layers, the NNX models (:mod:`seqjax.nn.transformer`) and the PyTorch
  converters (:mod:`seqjax.interop.torch_transformer`).
* :mod:`~seqjax.transformer.layout`: the parameter layout; stacking layers for ``jax.lax.scan``.
* :mod:`~seqjax.transformer.init`: initial parameters of feed-forwards, layers and stacks.
* :mod:`~seqjax.transformer.feed_forward`: the position-wise FFN and the residual connection
  (post-LN or pre-LN).
* :mod:`~seqjax.transformer.layers`: encoder and decoder layers, taking an optional KV cache.
* :mod:`~seqjax.transformer.stacks`: stacks of them (Python loop or ``jax.lax.scan``), the
  cache carried through.
* :mod:`~seqjax.transformer.cache`: creating, checking and writing KV caches; the
  cross-attention keys and values computed once from the encoder output.
* :mod:`~seqjax.transformer.mlm`: the BERT masked-language-model rule and loss.

LayerNorm, dropout and dense projections are the shared primitives of :mod:`seqjax.primitives`.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.transformer import TransformerSpec, encoder_stack, encoder_stack_init
    >>> spec = TransformerSpec(num_heads=4, norm_first=True, causal=True)
    >>> params = encoder_stack_init(jax.random.key(0), 2, 16, 4, 32, final_norm=True)
    >>> encoder_stack(spec, params, jnp.ones((2, 5, 16))).shape
    (2, 5, 16)
"""

from seqjax.transformer.cache import (
    advance,
    capacity,
    check_cache,
    cross_attention_cache,
    decoding_mask,
    init_kv_cache,
    init_stack_cache,
    write_kv,
)
from seqjax.transformer.feed_forward import feed_forward, residual
from seqjax.transformer.init import (
    decoder_layer_init,
    decoder_stack_init,
    encoder_layer_init,
    encoder_stack_init,
    feed_forward_init,
    init_weights,
)
from seqjax.transformer.layers import decoder_layer, encoder_layer
from seqjax.transformer.layout import num_layers, stack_layers, unstack_layers
from seqjax.transformer.mlm import mlm_loss, mlm_masking, selected_positions
from seqjax.transformer.spec import ACTIVATIONS, POSITIONAL, TransformerSpec
from seqjax.transformer.stacks import decoder_stack, encoder_stack

__all__ = [
    "ACTIVATIONS",
    "POSITIONAL",
    "TransformerSpec",
    "advance",
    "capacity",
    "check_cache",
    "cross_attention_cache",
    "decoder_layer",
    "decoder_layer_init",
    "decoder_stack",
    "decoder_stack_init",
    "decoding_mask",
    "encoder_layer",
    "encoder_layer_init",
    "encoder_stack",
    "encoder_stack_init",
    "feed_forward",
    "feed_forward_init",
    "init_kv_cache",
    "init_stack_cache",
    "init_weights",
    "mlm_loss",
    "mlm_masking",
    "selected_positions",
    "num_layers",
    "residual",
    "stack_layers",
    "unstack_layers",
    "write_kv",
]
