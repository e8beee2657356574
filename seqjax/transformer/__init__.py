"""Transformer blocks as pure functions: LayerNorm, position-wise FFN, residual connections in
post-LN and pre-LN placement, encoder and decoder layers and their stacks (Python loop or
``jax.lax.scan`` over stacked parameters), their incremental (KV-cached) forms for decoding
(:mod:`seqjax.transformer.cache`), and the BERT masked-language-model rule.

The NNX models (encoder-decoder, BERT, GPT) live in :mod:`seqjax.nn.transformer`; PyTorch
``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer`` weights convert with
:mod:`seqjax.interop.torch_transformer`. See :mod:`seqjax.transformer.blocks` for the equations
and the parameter layout.
"""

from seqjax.transformer.blocks import (
    ACTIVATIONS,
    decoder_layer,
    decoder_layer_init,
    decoder_stack,
    decoder_stack_init,
    dropout,
    encoder_layer,
    encoder_layer_init,
    encoder_stack,
    encoder_stack_init,
    feed_forward,
    feed_forward_init,
    init_weights,
    layer_norm,
    layer_norm_init,
    num_layers,
    residual,
    stack_layers,
    unstack_layers,
)
from seqjax.transformer.cache import (
    cross_attention_cache,
    decoder_layer_cached,
    decoder_stack_cached,
    encoder_layer_cached,
    encoder_stack_cached,
    init_kv_cache,
    init_stack_cache,
)
from seqjax.transformer.mlm import mlm_loss, mlm_masking

__all__ = [
    "ACTIVATIONS",
    "cross_attention_cache",
    "decoder_layer",
    "decoder_layer_cached",
    "decoder_layer_init",
    "decoder_stack",
    "decoder_stack_cached",
    "decoder_stack_init",
    "dropout",
    "encoder_layer",
    "encoder_layer_cached",
    "encoder_layer_init",
    "encoder_stack",
    "encoder_stack_cached",
    "encoder_stack_init",
    "feed_forward",
    "feed_forward_init",
    "init_kv_cache",
    "init_stack_cache",
    "init_weights",
    "layer_norm",
    "layer_norm_init",
    "mlm_loss",
    "mlm_masking",
    "num_layers",
    "residual",
    "stack_layers",
    "unstack_layers",
]
