"""The options of a transformer layer, frozen in one value: :class:`TransformerSpec`.

Everything a layer needs besides its parameters and inputs (heads, activation, norm placement,
epsilon, causality, positional scheme, computation dtype, dropout rates) lives in one frozen,
hashable dataclass, validated once when it is built. The pure layers and stacks
(:mod:`seqjax.transformer.layers`, :mod:`seqjax.transformer.stacks`), their cached (decoding)
use, the NNX models (:mod:`seqjax.nn.transformer`) and the PyTorch converters
(:mod:`seqjax.interop.torch_transformer`) all take the same spec, so the options a model was
trained with are the options it decodes with: there is no second list of keyword options to
retype. A spec is static under ``jax.jit`` (hashable) and may be bound into a
``functools.partial`` decoding step.

Example::

    >>> from seqjax.transformer import TransformerSpec
    >>> spec = TransformerSpec(num_heads=4, activation="gelu", norm_first=True, causal=True,
    ...                        dropout_rate=0.1, activation_dropout_rate=0.0)
    >>> spec.kv_heads, spec.dropout_rates()
    (4, (0.1, 0.1, 0.0))
    >>> TransformerSpec(num_heads=4, num_kv_heads=3)
    Traceback (most recent call last):
    ...
    ValueError: num_kv_heads = 3 must divide num_heads = 4; got remainder 1.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True),
}
"""The FFN activations by name: ``relu`` (Vaswani et al. 2017), ``gelu`` (the exact
``x Phi(x)`` of BERT and PyTorch's ``'gelu'``), ``gelu_tanh`` (the tanh approximation of GPT-2,
Hugging Face's ``gelu_new``)."""

POSITIONAL = ("absolute", "rope", "alibi", "relative")
"""Positional schemes: ``absolute`` (a learned or sinusoidal table added to the embeddings
outside the layers; the layers themselves see no positions), ``rope`` (rotary embeddings of
the self-attention queries and keys inside every layer, Su et al. 2021, at the absolute
positions, so a KV cache stays valid), ``alibi`` (a fixed per-head linear bias on the
self-attention logits, Press et al. 2022) or ``relative`` (T5's learned, bucketed relative
position bias, Raffel et al. 2020, one table per stack). The two biases are added by the stacks
(:mod:`seqjax.transformer.position_bias`)."""


@dataclasses.dataclass(frozen=True)
class TransformerSpec:
    """The options of an encoder or decoder layer (and of a stack of them).

    Attributes:
      num_heads: query heads ``h``; the parameters' ``w_q`` columns are ``h * d_k``.
      num_kv_heads: key/value heads ``h_kv`` (grouped-query attention when below ``h``); None
        means ``num_heads``. The parameters must agree (checked at call time).
      activation: the FFN activation, a key of :data:`ACTIVATIONS`.
      norm_first: False = post-LN ``x <- LN(x + Sublayer(x))`` (Vaswani, BERT); True = pre-LN
        ``x <- x + Sublayer(LN(x))`` (GPT-2; a stack then usually ends with a final norm).
      causal: the self-attention adds the causal mask itself (decoder-only models, the decoder of
        an encoder-decoder). Decoding with a KV cache requires it.
      eps: LayerNorm epsilon (PyTorch 1e-5, BERT 1e-12).
      positional: ``"absolute"`` or ``"rope"`` (:data:`POSITIONAL`).
      rope_base: the RoPE frequency base (10000 in the paper).
      relative_buckets, relative_max_distance: T5's bucket count (32) and the distance from
        which on all positions share the last bucket (128), for ``positional="relative"``.
      dtype: computation dtype (None: the input's); parameters stay float32, softmax and
        normalisation statistics float32.
      dropout_rate: dropout on every residual branch.
      attention_dropout_rate: dropout on the attention weights; None = ``dropout_rate``.
      activation_dropout_rate: dropout after the FFN activation; None = ``dropout_rate``.

    Dropout is active only when a ``dropout_key`` is passed; the rates sit where
    ``torch.nn.TransformerEncoderLayer`` puts them.
    """

    num_heads: int
    num_kv_heads: int | None = None
    activation: str = "relu"
    norm_first: bool = False
    causal: bool = False
    eps: float = 1e-5
    positional: str = "absolute"
    rope_base: float = 10000.0
    dtype: Any = None
    dropout_rate: float = 0.0
    attention_dropout_rate: float | None = None
    activation_dropout_rate: float | None = None
    relative_buckets: int = 32
    relative_max_distance: int = 128

    def __post_init__(self) -> None:
        _checks.positive_int("num_heads", self.num_heads)
        if self.num_kv_heads is not None:
            _checks.positive_int("num_kv_heads", self.num_kv_heads)
            _checks.divides("num_kv_heads", self.num_kv_heads, "num_heads", self.num_heads)
        _checks.choice("activation", self.activation, tuple(ACTIVATIONS))
        for name in ("norm_first", "causal"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name} must be a bool; got {value!r}.")
            object.__setattr__(self, name, bool(value))
        _checks.positive_float("eps", self.eps)
        _checks.choice("positional", self.positional, POSITIONAL)
        _checks.positive_float("rope_base", self.rope_base)
        _checks.positive_int("relative_buckets", self.relative_buckets)
        _checks.positive_int("relative_max_distance", self.relative_max_distance)
        if self.positional == "relative":
            half = self.relative_buckets if self.causal else self.relative_buckets // 2
            if half < 2 or self.relative_max_distance <= half // 2:
                raise ValueError(
                    f"relative_buckets = {self.relative_buckets} and relative_max_distance = "
                    f"{self.relative_max_distance} leave no logarithmic buckets: need at least 2 buckets per "
                    "direction and relative_max_distance above half of them (T5: 32 and 128)."
                )
        if self.dtype is not None:
            try:
                dtype = jnp.dtype(self.dtype)
            except TypeError:
                dtype = None
            if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
                raise ValueError(f"dtype must be None or a floating-point dtype (float32, bfloat16, ...); got {self.dtype!r}.")
            object.__setattr__(self, "dtype", dtype)
        for name in ("dropout_rate", "attention_dropout_rate", "activation_dropout_rate"):
            value = getattr(self, name)
            if value is None and name != "dropout_rate":
                continue
            if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name} must be a number in [0, 1); got {value!r}.")
            _checks.probability(name, value)
            object.__setattr__(self, name, float(value))

    @property
    def kv_heads(self) -> int:
        """``h_kv``: ``num_kv_heads``, or ``num_heads`` when it is None."""
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    def dropout_rates(self) -> tuple[float, float, float]:
        """``(residual, attention, activation)`` dropout rates, the defaults resolved."""
        attention = self.dropout_rate if self.attention_dropout_rate is None else self.attention_dropout_rate
        activation = self.dropout_rate if self.activation_dropout_rate is None else self.activation_dropout_rate
        return self.dropout_rate, attention, activation

    def replace(self, **changes: Any) -> "TransformerSpec":
        """A copy with ``changes`` applied (validated again), as :func:`dataclasses.replace`."""
        return dataclasses.replace(self, **changes)


def check_spec(spec: Any) -> TransformerSpec:
    """Return ``spec`` after checking that it is a :class:`TransformerSpec` (not, say, a dict
    of options or a head count)."""
    if not isinstance(spec, TransformerSpec):
        raise ValueError(
            "spec must be a seqjax.transformer.TransformerSpec (e.g. TransformerSpec(num_heads=4)); "
            f"got {type(spec).__name__}."
        )
    return spec
