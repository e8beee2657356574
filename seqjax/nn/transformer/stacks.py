"""NNX transformer stacks on embeddings: :class:`TransformerEncoder` and :class:`TransformerDecoder`.

Each holds its parameters (``nnx.Param`` leaves in the layout of
:mod:`seqjax.transformer.layout`) and one :class:`~seqjax.transformer.TransformerSpec`,
``module.spec``, built from its constructor options; every call (training, or decoding with a
KV cache) runs :func:`seqjax.transformer.encoder_stack` / :func:`~seqjax.transformer.decoder_stack`
with that spec, so the cached path cannot use other options than the model.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from seqjax.nn.transformer import TransformerEncoder
    >>> gpt_body = TransformerEncoder(2, 16, 4, 32, rngs=nnx.Rngs(0), norm_first=True, causal=True)
    >>> x = jax.random.normal(jax.random.key(1), (2, 5, 16))
    >>> full = gpt_body(x)
    >>> cache, y = gpt_body(x, cache=gpt_body.init_cache(2, 8))      # prefill with the same layers
    >>> cache["index"].tolist(), bool(jnp.allclose(y, full, atol=1e-5))
    ([5, 5], True)
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from flax import nnx

from seqjax.nn.params import as_params, values
from seqjax.transformer import (
    TransformerSpec,
    decoder_stack,
    decoder_stack_init,
    encoder_stack,
    encoder_stack_init,
    init_stack_cache,
)
from seqjax.transformer.position_bias import relative_bias_init


class _LayerStack(nnx.Module):
    """What both stacks share: the spec built from the options, the parameters, ``pure_params``."""

    def __init__(
        self, num_layers: int, d_model: int, num_heads: int, d_ff: int, *, rngs: nnx.Rngs,
        num_kv_heads: int | None = None, activation: str = "relu", norm_first: bool = False,
        final_norm: bool | None = None, causal: bool = False, positional: str = "absolute",
        rope_base: float = 10000.0, eps: float = 1e-5, dropout_rate: float = 0.1,
        attention_dropout_rate: float | None = None, activation_dropout_rate: float | None = None,
        scan: bool = False, use_bias: bool = True, weight_init: Callable | float | None = None,
        output_init_scale: float = 1.0, dtype: Any = None, relative_buckets: int = 32,
        relative_max_distance: int = 128,
    ):
        self.spec = TransformerSpec(
            num_heads=num_heads, num_kv_heads=num_kv_heads, activation=activation, norm_first=norm_first,
            causal=causal, eps=eps, positional=positional, rope_base=rope_base, dtype=dtype,
            dropout_rate=dropout_rate, attention_dropout_rate=attention_dropout_rate,
            activation_dropout_rate=activation_dropout_rate, relative_buckets=relative_buckets,
            relative_max_distance=relative_max_distance,
        )
        self.num_layers, self.d_model, self.num_heads, self.d_ff = num_layers, d_model, num_heads, d_ff
        self.scan = bool(scan)
        stack = self._init_stack(
            rngs.params(), num_layers, d_model, num_heads, d_ff, num_kv_heads=num_kv_heads,
            final_norm=norm_first if final_norm is None else final_norm, stacked=scan, use_bias=use_bias,
            weight_init=weight_init, output_scale=output_init_scale,
        )
        if self.spec.positional == "relative":  # T5: one table for the whole stack
            stack["relative_bias"] = relative_bias_init(rngs.params(), self.spec)
        self.stack = as_params(stack)

    def _init_stack(self, *args: Any, **kwargs: Any) -> dict:
        raise NotImplementedError

    def pure_params(self) -> dict:
        """The parameters as the plain pytree the pure stack function takes."""
        return values(self.stack)


class TransformerEncoder(_LayerStack):
    """A stack of encoder layers (:func:`seqjax.transformer.encoder_stack`) on embeddings
    ``[b, t, d]``; ``causal=True`` makes it the body of a decoder-only (GPT) model, which can
    also decode with a KV cache (:meth:`init_cache`, ``cache=``).

    Args:
      num_layers, d_model, num_heads, d_ff: sizes (``num_heads`` divides ``d_model``).
      rngs: ``nnx.Rngs`` for the init.
      num_kv_heads: key/value heads (grouped-query attention; default ``num_heads``).
      activation: ``"relu"``, ``"gelu"`` (exact) or ``"gelu_tanh"``.
      norm_first: False = post-LN, True = pre-LN.
      final_norm: final LayerNorm after the last layer; default ``norm_first``.
      causal: always apply the causal mask.
      positional: ``"absolute"`` (positions added to the embeddings by the caller), ``"rope"``
        (rotary embeddings inside the self-attention, with ``rope_base``), ``"alibi"`` (linear
        logit biases) or ``"relative"`` (T5's learned bucketed bias, a ``relative_bias`` table
        ``[relative_buckets, num_heads]`` in ``stack``, with ``relative_max_distance``).
      eps: LayerNorm epsilon (PyTorch 1e-5).
      dropout_rate: residual dropout (PyTorch's default 0.1, active only with a ``dropout_key``);
        ``attention_dropout_rate`` / ``activation_dropout_rate`` default to it.
      scan: store the layers stacked and run them with ``jax.lax.scan`` (False: a list and a
        Python loop).
      use_bias: biases in projections and norms.
      weight_init: the weight matrices' init: None = Xavier uniform, a float = normal with that
        std (BERT, GPT-2: 0.02), or ``init(key, shape, dtype)``.
      output_init_scale: multiplies the initial ``w_o`` and ``w_2`` (GPT-2: ``1 / sqrt(2 L)``).
      dtype: computation dtype (parameters stay float32).

    All options but the sizes and the init end up in ``self.spec``; :meth:`pure_params` gives the
    parameters as :func:`seqjax.transformer.encoder_stack` takes them.
    """

    def _init_stack(self, *args: Any, **kwargs: Any) -> dict:
        return encoder_stack_init(*args, **kwargs)

    def init_cache(self, batch: int, max_len: int, *, dtype: Any = None) -> dict:
        """An empty KV cache of ``max_len`` positions (:func:`seqjax.transformer.init_stack_cache`);
        the stack must be ``causal``."""
        return init_stack_cache(self.spec, self.pure_params(), batch, max_len, dtype=dtype)

    def __call__(
        self, x: jax.Array, *, mask: jax.Array | None = None, seq_lengths: jax.Array | None = None,
        cache: dict | None = None, dropout_key: jax.Array | None = None, return_attention: bool = False,
    ):
        """``x`` ``[b, t, d]`` -> ``[b, t, d]``; with ``cache``, ``(cache, y)``.

        ``mask`` (True = may attend, rank 4 broadcastable to ``[b, h, t, t]``) is combined with
        the padding mask of ``seq_lengths`` ``[b]`` and, with ``causal``, the causal mask; with a
        cache, ``seq_lengths`` is how far the index advances (right-padded prompts).
        ``return_attention``: append ``{"self": [L, b, h, t, s]}`` (pre-dropout weights,
        :func:`seqjax.transformer.encoder_stack`).
        """
        return encoder_stack(self.spec, self.pure_params(), x, mask=mask, seq_lengths=seq_lengths, cache=cache,
                             dropout_key=dropout_key, return_attention=return_attention)


class TransformerDecoder(_LayerStack):
    """A stack of decoder layers (:func:`seqjax.transformer.decoder_stack`): masked
    self-attention (causal unless ``causal=False``), cross-attention to ``memory``, FFN.

    Arguments as :class:`TransformerEncoder`, plus ``memory_features`` (the encoder width,
    default ``d_model``); ``causal`` defaults to True.
    """

    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_ff: int, *, rngs: nnx.Rngs,
                 memory_features: int | None = None, causal: bool = True, **options: Any):
        self.memory_features = memory_features
        super().__init__(num_layers, d_model, num_heads, d_ff, rngs=rngs, causal=causal, **options)

    def _init_stack(self, *args: Any, **kwargs: Any) -> dict:
        return decoder_stack_init(*args, memory_features=self.memory_features, **kwargs)

    def init_cache(self, batch: int, max_len: int, *, memory: jax.Array | None = None,
                   memory_valid: jax.Array | None = None, dtype: Any = None) -> dict:
        """An empty KV cache of ``max_len`` target positions; with ``memory`` ``[b, s, d_mem]``
        (and ``memory_valid`` ``[b, s]``) also the cross-attention keys and values of every layer
        (:func:`seqjax.transformer.init_stack_cache`)."""
        return init_stack_cache(self.spec, self.pure_params(), batch, max_len, memory=memory,
                                memory_valid=memory_valid, dtype=dtype)

    def __call__(
        self, x: jax.Array, memory: jax.Array | None = None, *, mask: jax.Array | None = None,
        memory_mask: jax.Array | None = None, tgt_lengths: jax.Array | None = None,
        src_lengths: jax.Array | None = None, cache: dict | None = None, dropout_key: jax.Array | None = None,
        return_attention: bool = False,
    ):
        """``x`` ``[b, t, d]``, ``memory`` ``[b, s, d_mem]`` -> ``[b, t, d]``; with ``cache``,
        ``(cache, y)`` (``memory`` None when the cache holds the cross-attention keys and values).

        The self-attention mask is ``mask & causal & padding(tgt_lengths)``; the cross-attention
        mask ``memory_mask & padding(src_lengths)`` (source padding). ``return_attention``: append
        ``{"self": [L, b, h, t, t_kv], "cross": [L, b, h, t, s]}`` (pre-dropout weights).
        """
        return decoder_stack(self.spec, self.pure_params(), x, memory, mask=mask, memory_mask=memory_mask,
                             tgt_lengths=tgt_lengths, src_lengths=src_lengths, cache=cache, dropout_key=dropout_key,
                             return_attention=return_attention)
