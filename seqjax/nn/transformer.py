"""Flax NNX transformer models: thin modules that own parameters and call the pure blocks of
:mod:`seqjax.transformer`.

* :class:`TransformerEncoder`, :class:`TransformerDecoder`: stacks on embeddings ``[b, t, d]``
  (post-LN or pre-LN, Python loop or ``jax.lax.scan`` over stacked layers).
* :class:`EncoderDecoder`: the seeds' full Transformer (seed 000 M9-M13), with its bugs fixed:
  ``d_model`` is stored (B8); the sinusoidal table is a constant computed on the fly, never a
  parameter or state, so no init can overwrite it (B9); source padding, target padding and the
  causal mask are all applied (B11, B14).
* :class:`BertModel` (+ :class:`BertForMaskedLM`, :class:`BertForSequenceClassification`) and
  :class:`GPTLanguageModel` (GPT-2), with :class:`BertConfig` / :class:`GPT2Config`.
* Incremental decoding with a KV cache (:mod:`seqjax.transformer.cache`) on
  :class:`GPTLanguageModel` and :class:`EncoderDecoder`: ``cache = model.init_cache(...)``,
  ``logits, cache = model.prefill(cache, prompt)``, ``logits, cache = model.decode_step(cache,
  tokens)``; ``model.step_fn()`` is that step with the parameters bound, the contract
  ``step_fn(state, tokens [b]) -> (logits [b, V], state)`` of :mod:`seqjax.decoding`.
* :func:`count_params`: exact parameter counts with :func:`flax.nnx.eval_shape` (nothing allocated).

Every parameter is an ``nnx.Param`` in nested ``nnx.data`` dicts laid out as the pure functions
expect, so ``nnx.split(model, nnx.Param)`` is exhaustive and yields exactly the trainable pytree.
The forward pass mutates nothing; dropout runs only when a ``dropout_key`` is passed::

    graphdef, params = nnx.split(model, nnx.Param)
    loss = lambda p, key: loss_of(nnx.merge(graphdef, p)(tokens, dropout_key=key))
    grads = jax.jit(jax.grad(loss))(params, jax.random.key(0))

Token inputs are integer ids ``[b, t]``; padding is given as ``seq_lengths`` (right padding, as
everywhere in seqjax) or, for BERT, a ``token_mask`` ``[b, t]`` (True at real tokens: HF's
``attention_mask``), or for :class:`EncoderDecoder` derived from ``pad_id``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from seqjax.nn.transformer import GPT2Config, GPTLanguageModel, count_params
    >>> config = GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4)
    >>> model = GPTLanguageModel(config, rngs=nnx.Rngs(0))
    >>> model(jnp.zeros((2, 8), jnp.int32)).shape
    (2, 8, 50)
    >>> count_params(lambda: GPTLanguageModel(GPT2Config.small(), rngs=nnx.Rngs(0)))
    124439808
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seqjax import _checks
from seqjax.attention.masks import causal_mask, combine_masks, sequence_mask
from seqjax.attention.positional import sinusoidal_table
from seqjax.nn.params import as_params as _as_params, count_params, values as _values
from seqjax.transformer import blocks
from seqjax.transformer.blocks import (
    decoder_stack,
    decoder_stack_init,
    dropout,
    encoder_stack,
    encoder_stack_init,
    init_weights,
    layer_norm,
    layer_norm_init,
)
from seqjax.transformer.cache import decoder_stack_cached, encoder_stack_cached, init_stack_cache

# --- helpers ---------------------------------------------------------------------------------------


def _tokens(name: str, ids: Any, vocab_size: int) -> jax.Array:
    ids = _checks.integer_array(name, ids)
    if ids.ndim != 2:
        raise ValueError(f"{name} must have shape [batch, time] (integer ids); got {tuple(ids.shape)}.")
    if not isinstance(ids, jax.core.Tracer) and ids.size:
        values = np.asarray(ids)
        if values.min() < 0 or values.max() >= vocab_size:
            raise ValueError(
                f"{name} must hold ids in [0, {vocab_size}); got values in [{values.min()}, {values.max()}]."
            )
    return ids


def _valid(tokens: jax.Array, lengths: Any, pad_id: int | None, name: str) -> jax.Array | None:
    """``[b, t]`` True at real tokens: from ``lengths`` (right padding), else ``tokens != pad_id``."""
    b, t = tokens.shape
    if lengths is not None:
        lengths = _checks.seq_lengths(name, lengths, batch=b, time=t)
        return sequence_mask(lengths, t)
    if pad_id is not None:
        return tokens != pad_id
    return None


def _key_mask(valid: jax.Array | None) -> jax.Array | None:
    return None if valid is None else valid[:, None, None, :]


def _split(key: jax.Array | None, n: int) -> list:
    return [None] * n if key is None else list(jax.random.split(key, n))


def _check_length(t: int, max_len: int, what: str) -> None:
    if t > max_len:
        raise ValueError(f"sequence length {t} exceeds {what} = {max_len}; build the model with a longer one.")


def _step_tokens(tokens: Any) -> jax.Array:
    tokens = _checks.integer_array("tokens", tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must have shape [batch] (one id per sequence); got {tuple(tokens.shape)}.")
    return tokens


def _cache_options(options: dict) -> dict:
    """The stack options the cached (inference) path uses: no dropout."""
    return {k: options[k] for k in ("activation", "norm_first", "eps", "dtype")}


def _cache_positions(cache: Any, t: int) -> jax.Array:
    if not isinstance(cache, dict) or "index" not in cache or "k" not in cache:
        raise ValueError(f"cache must be the dict of init_cache; got {type(cache).__name__}.")
    return cache["index"][:, None] + jnp.arange(t, dtype=cache["index"].dtype)


def _stack_options(activation, norm_first, dropout_rate, attention_dropout, activation_dropout, eps, dtype):
    blocks._check_options(activation, norm_first, eps, ("dropout", dropout_rate),
                          ("attention_dropout", attention_dropout), ("activation_dropout", activation_dropout))
    return dict(
        activation=activation, norm_first=bool(norm_first), dropout_rate=float(dropout_rate),
        attention_dropout_rate=attention_dropout, activation_dropout_rate=activation_dropout,
        eps=float(eps), dtype=dtype,
    )


# --- stacks ----------------------------------------------------------------------------------------


class TransformerEncoder(nnx.Module):
    """A stack of encoder layers (:func:`seqjax.transformer.encoder_stack`) on embeddings
    ``[b, t, d]``; ``causal=True`` makes it the body of a decoder-only (GPT) model.

    Args:
      num_layers, d_model, num_heads, d_ff: sizes (``num_heads`` divides ``d_model``).
      rngs: ``nnx.Rngs`` for the init.
      activation: ``"relu"``, ``"gelu"`` (exact) or ``"gelu_tanh"``.
      norm_first: False = post-LN, True = pre-LN.
      final_norm: final LayerNorm after the last layer; default ``norm_first``.
      causal: always apply the causal mask.
      dropout: residual dropout (PyTorch's default 0.1, active only with a ``dropout_key``);
        ``attention_dropout`` / ``activation_dropout`` default to it.
      eps: LayerNorm epsilon (PyTorch 1e-5).
      scan: store the layers stacked and run them with ``jax.lax.scan`` (False: a list and a
        Python loop).
      use_bias: biases in projections and norms.
      weight_init: the weight matrices' init: None = Xavier uniform, a float = normal with that
        std (BERT, GPT-2: 0.02), or ``init(key, shape, dtype)``.
      output_init_scale: multiplies the initial ``w_o`` and ``w_2`` (GPT-2: ``1 / sqrt(2 L)``).
      dtype: computation dtype (parameters stay float32).
    """

    def __init__(
        self, num_layers: int, d_model: int, num_heads: int, d_ff: int, *, rngs: nnx.Rngs,
        activation: str = "relu", norm_first: bool = False, final_norm: bool | None = None,
        causal: bool = False, dropout: float = 0.1, attention_dropout: float | None = None,
        activation_dropout: float | None = None, eps: float = 1e-5, scan: bool = False,
        use_bias: bool = True, weight_init: Callable | float | None = None, output_init_scale: float = 1.0,
        dtype: Any = None,
    ):
        self.options = _stack_options(activation, norm_first, dropout, attention_dropout, activation_dropout, eps, dtype)
        self.num_layers, self.d_model, self.num_heads, self.d_ff = num_layers, d_model, num_heads, d_ff
        self.causal, self.scan = bool(causal), bool(scan)
        final_norm = norm_first if final_norm is None else final_norm
        stack = encoder_stack_init(
            rngs.params(), num_layers, d_model, num_heads, d_ff, final_norm=final_norm,
            stacked=scan, use_bias=use_bias, weight_init=weight_init, output_scale=output_init_scale,
        )
        self.stack = _as_params(stack)

    def stack_params(self) -> dict:
        """The parameters as the plain pytree :func:`seqjax.transformer.encoder_stack` takes."""
        return _values(self.stack)

    def __call__(
        self, x: jax.Array, *, mask: jax.Array | None = None, seq_lengths: jax.Array | None = None,
        dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """``x`` ``[b, t, d]`` -> ``[b, t, d]``. ``mask`` (True = may attend, broadcastable to
        ``[b, h, t, t]``) is combined with the padding mask of ``seq_lengths`` ``[b]`` and, with
        ``causal``, the causal mask."""
        x = _checks.floating_array("x", x, ndim=3, layout="[batch, time, features]")
        b, t, _ = x.shape
        pad = None if seq_lengths is None else _key_mask(
            sequence_mask(_checks.seq_lengths("seq_lengths", seq_lengths, batch=b, time=t), t))
        mask = combine_masks(mask, pad, causal_mask(t) if self.causal else None)
        return encoder_stack(self.stack_params(), x, num_heads=self.num_heads, mask=mask,
                             dropout_key=dropout_key, **self.options)


class TransformerDecoder(nnx.Module):
    """A stack of decoder layers (:func:`seqjax.transformer.decoder_stack`): masked
    self-attention (causal unless ``causal=False``), cross-attention to ``memory``, FFN.

    Arguments as :class:`TransformerEncoder`, plus ``memory_features`` (the encoder width,
    default ``d_model``).
    """

    def __init__(
        self, num_layers: int, d_model: int, num_heads: int, d_ff: int, *, rngs: nnx.Rngs,
        memory_features: int | None = None, activation: str = "relu", norm_first: bool = False,
        final_norm: bool | None = None, causal: bool = True, dropout: float = 0.1,
        attention_dropout: float | None = None, activation_dropout: float | None = None,
        eps: float = 1e-5, scan: bool = False, use_bias: bool = True,
        weight_init: Callable | float | None = None, output_init_scale: float = 1.0, dtype: Any = None,
    ):
        self.options = _stack_options(activation, norm_first, dropout, attention_dropout, activation_dropout, eps, dtype)
        self.num_layers, self.d_model, self.num_heads, self.d_ff = num_layers, d_model, num_heads, d_ff
        self.causal, self.scan = bool(causal), bool(scan)
        final_norm = norm_first if final_norm is None else final_norm
        stack = decoder_stack_init(
            rngs.params(), num_layers, d_model, num_heads, d_ff, memory_features=memory_features,
            final_norm=final_norm, stacked=scan, use_bias=use_bias, weight_init=weight_init,
            output_scale=output_init_scale,
        )
        self.stack = _as_params(stack)

    def stack_params(self) -> dict:
        """The parameters as the plain pytree :func:`seqjax.transformer.decoder_stack` takes."""
        return _values(self.stack)

    def __call__(
        self, x: jax.Array, memory: jax.Array, *, mask: jax.Array | None = None,
        memory_mask: jax.Array | None = None, seq_lengths: jax.Array | None = None,
        memory_lengths: jax.Array | None = None, dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """``x`` ``[b, t, d]``, ``memory`` ``[b, s, d_mem]`` -> ``[b, t, d]``.

        The self-attention mask is ``mask & causal & padding(seq_lengths)``; the cross-attention
        mask ``memory_mask & padding(memory_lengths)`` (source padding).
        """
        x = _checks.floating_array("x", x, ndim=3, layout="[batch, time, features]")
        memory = _checks.floating_array("memory", memory, ndim=3, layout="[batch, source_time, features]")
        b, t, _ = x.shape
        s = memory.shape[1]
        pad = None if seq_lengths is None else _key_mask(
            sequence_mask(_checks.seq_lengths("seq_lengths", seq_lengths, batch=b, time=t), t))
        mem_pad = None if memory_lengths is None else _key_mask(
            sequence_mask(_checks.seq_lengths("memory_lengths", memory_lengths, batch=b, time=s), s))
        mask = combine_masks(mask, pad, causal_mask(t) if self.causal else None)
        memory_mask = combine_masks(memory_mask, mem_pad)
        return decoder_stack(self.stack_params(), x, memory, num_heads=self.num_heads, mask=mask,
                             memory_mask=memory_mask, dropout_key=dropout_key, **self.options)


# --- the seeds' encoder-decoder ------------------------------------------------------------------


class EncoderDecoder(nnx.Module):
    """The full encoder-decoder Transformer (Vaswani et al. 2017; seed 000 M9)::

        src_e  = Dropout(E_src[src] * sqrt(d_model) + PE[:s])
        tgt_e  = Dropout(E_tgt[tgt] * sqrt(d_model) + PE[:t])
        memory = Encoder(src_e, source padding)
        logits = Decoder(tgt_e, memory, causal & target padding, source padding) W_out + b_out

    ``PE`` is the fixed sinusoidal table (:func:`seqjax.attention.sinusoidal_table`), a constant
    recomputed for the length at hand: it is neither a parameter nor state (seed bug B9).
    Xavier-uniform init of every matrix (embeddings, projections, FFN, output), zero biases, unit
    LayerNorm scales; dropout 0.1 on the embeddings and inside the layers (PyTorch placement),
    active only with a ``dropout_key``. Post-LN by default, as the seeds (no final norms);
    ``norm_first=True`` adds final norms to both stacks.

    Padding: ``src_lengths`` / ``tgt_lengths`` (right padding), or, when absent and ``pad_id`` is
    set, ``tokens != pad_id``. The source padding masks the keys of the encoder self-attention and
    of the decoder cross-attention; the target padding and the causal mask the decoder
    self-attention (seed bug B11 fixed).

    Example::

        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from seqjax.nn.transformer import EncoderDecoder
        >>> model = EncoderDecoder(11, 13, d_model=16, num_heads=2, num_layers=1, d_ff=32,
        ...                        max_len=20, rngs=nnx.Rngs(0))
        >>> src, tgt = jnp.ones((2, 7), jnp.int32), jnp.ones((2, 5), jnp.int32)
        >>> model(src, tgt, src_lengths=jnp.array([7, 3])).shape
        (2, 5, 13)
    """

    def __init__(
        self, src_vocab_size: int, tgt_vocab_size: int, *, rngs: nnx.Rngs, d_model: int = 512,
        num_heads: int = 8, num_layers: int = 6, num_decoder_layers: int | None = None,
        d_ff: int = 2048, max_len: int = 5000, dropout: float = 0.1, activation: str = "relu",
        norm_first: bool = False, eps: float = 1e-5, pad_id: int | None = None, scan: bool = False,
        dtype: Any = None,
    ):
        _checks.positive_int("src_vocab_size", src_vocab_size)
        _checks.positive_int("tgt_vocab_size", tgt_vocab_size)
        _checks.positive_int("max_len", max_len)
        _checks.probability("dropout", dropout)
        if d_model % 2:
            raise ValueError(f"d_model must be even for the sinusoidal encoding; got {d_model}.")
        num_decoder_layers = num_layers if num_decoder_layers is None else num_decoder_layers
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.d_model, self.max_len, self.dropout, self.pad_id = d_model, max_len, float(dropout), pad_id
        self.dtype = dtype
        e_src, e_tgt, w_out = init_weights(
            rngs.params(), [(src_vocab_size, d_model), (tgt_vocab_size, d_model), (d_model, tgt_vocab_size)]
        )
        self.src_embedding = nnx.Param(e_src)
        self.tgt_embedding = nnx.Param(e_tgt)
        common = dict(rngs=rngs, activation=activation, norm_first=norm_first, dropout=dropout,
                      eps=eps, scan=scan, dtype=dtype)
        self.encoder = TransformerEncoder(num_layers, d_model, num_heads, d_ff, **common)
        self.decoder = TransformerDecoder(num_decoder_layers, d_model, num_heads, d_ff, causal=True, **common)
        self.output = _as_params({"w": w_out, "b": blocks._zeros(tgt_vocab_size)})

    def positional_encoding(self, length: int | None = None) -> jax.Array:
        """The sinusoidal table ``[length, d_model]`` (default ``max_len``): a constant."""
        length = self.max_len if length is None else length
        _check_length(length, self.max_len, "max_len")
        return sinusoidal_table(length, self.d_model)

    def _embed(self, tokens: jax.Array, table: jax.Array, key: jax.Array | None) -> jax.Array:
        t = tokens.shape[1]
        _check_length(t, self.max_len, "max_len")
        x = jnp.take(table, tokens, axis=0) * math.sqrt(self.d_model) + self.positional_encoding(t)
        if self.dtype is not None:
            x = x.astype(self.dtype)
        return dropout(x, self.dropout, key)

    def encode(
        self, src: jax.Array, *, src_lengths: jax.Array | None = None, dropout_key: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array | None]:
        """``src`` ``[b, s]`` ids -> ``(memory [b, s, d], src_valid [b, s] or None)``."""
        src = _tokens("src", src, self.src_vocab_size)
        valid = _valid(src, src_lengths, self.pad_id, "src_lengths")
        k_emb, k_enc = _split(dropout_key, 2)
        x = self._embed(src, self.src_embedding[...], k_emb)
        return self.encoder(x, mask=_key_mask(valid), dropout_key=k_enc), valid

    def decode(
        self, tgt: jax.Array, memory: jax.Array, *, src_valid: jax.Array | None = None,
        tgt_lengths: jax.Array | None = None, dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """``tgt`` ``[b, t]`` ids and ``memory`` ``[b, s, d]`` -> logits ``[b, t, V_tgt]``;
        ``src_valid`` ``[b, s]`` (from :meth:`encode`) masks the padded source keys."""
        tgt = _tokens("tgt", tgt, self.tgt_vocab_size)
        valid = _valid(tgt, tgt_lengths, self.pad_id, "tgt_lengths")
        if src_valid is not None and (src_valid.ndim != 2 or src_valid.shape[0] != tgt.shape[0]):
            raise ValueError(f"src_valid must have shape [batch, source_time]; got {tuple(src_valid.shape)}.")
        k_emb, k_dec = _split(dropout_key, 2)
        y = self._embed(tgt, self.tgt_embedding[...], k_emb)
        y = self.decoder(y, memory, mask=_key_mask(valid), memory_mask=_key_mask(src_valid), dropout_key=k_dec)
        out = _values(self.output)
        return y @ out["w"].astype(y.dtype) + out["b"].astype(y.dtype)

    def __call__(
        self, src: jax.Array, tgt: jax.Array, *, src_lengths: jax.Array | None = None,
        tgt_lengths: jax.Array | None = None, dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """``src`` ``[b, s]``, ``tgt`` ``[b, t]`` (teacher forcing: the shifted target) -> logits
        ``[b, t, V_tgt]``."""
        k_enc, k_dec = _split(dropout_key, 2)
        memory, src_valid = self.encode(src, src_lengths=src_lengths, dropout_key=k_enc)
        return self.decode(tgt, memory, src_valid=src_valid, tgt_lengths=tgt_lengths, dropout_key=k_dec)

    # --- incremental decoding (KV cache) ---

    def init_cache(
        self, memory: jax.Array, max_len: int, *, src_valid: jax.Array | None = None, dtype: Any = None,
    ) -> dict:
        """An empty decoding cache for ``max_len`` target positions (``<= self.max_len``) with the
        cross-attention keys and values of every decoder layer computed once from ``memory``
        ``[b, s, d]`` (and ``src_valid`` ``[b, s]``, from :meth:`encode`); the layout of
        :mod:`seqjax.transformer.cache`. ``dtype``: storage dtype (default the model's, or float32)."""
        _checks.positive_int("max_len", max_len)
        _check_length(max_len, self.max_len, "max_len")
        dtype = dtype or self.dtype or jnp.float32
        return init_stack_cache(self.decoder.stack_params(), memory.shape[0], max_len,
                                num_heads=self.decoder.num_heads, memory=memory, memory_valid=src_valid, dtype=dtype)

    def init_decode_state(
        self, src: jax.Array, max_len: int, *, src_lengths: jax.Array | None = None, dtype: Any = None,
    ) -> dict:
        """:meth:`encode` then :meth:`init_cache`: the decoding state before the first target token."""
        memory, src_valid = self.encode(src, src_lengths=src_lengths)
        return self.init_cache(memory, max_len, src_valid=src_valid, dtype=dtype)

    def _decode_params(self) -> dict:
        return {"tgt_embedding": self.tgt_embedding[...], "decoder": self.decoder.stack_params(),
                "output": _values(self.output)}

    def _decode_options(self) -> dict:
        return dict(d_model=self.d_model, num_heads=self.decoder.num_heads, **_cache_options(self.decoder.options))

    def prefill(
        self, cache: dict, tgt: jax.Array, *, tgt_lengths: jax.Array | None = None,
    ) -> tuple[jax.Array, dict]:
        """Run the decoder on ``tgt`` ``[b, t]`` (positions ``cache["index"]`` on) against the
        cache: ``(logits [b, t, V_tgt], cache)``, equal to :meth:`decode` on the whole prefix.
        ``tgt_lengths`` ``[b]``: right padding (the index advances by them). Unlike
        :meth:`decode`, ``pad_id`` tokens are not masked as keys: pass right padding as
        ``tgt_lengths``."""
        tgt = _tokens("tgt", tgt, self.tgt_vocab_size)
        return _encoder_decoder_cached(self._decode_params(), cache, tgt, tgt_lengths, **self._decode_options())

    def decode_step(self, cache: dict, tokens: jax.Array) -> tuple[jax.Array, dict]:
        """One decoding step, the :mod:`seqjax.decoding` contract: ``tokens`` ``[b]`` (the
        previous outputs, BOS first) -> ``(logits [b, V_tgt], cache)``."""
        tokens = _tokens("tokens", _step_tokens(tokens)[:, None], self.tgt_vocab_size)[:, 0]
        return _encoder_decoder_step(self._decode_params(), cache, tokens, **self._decode_options())

    def step_fn(self) -> Callable:
        """A pure ``step_fn(cache, tokens) -> (logits, cache)`` with the current parameter
        values bound as arrays (a ``functools.partial``: :mod:`seqjax.decoding` traces them as
        arguments, so new parameter values never recompile)."""
        return functools.partial(_encoder_decoder_step, self._decode_params(), **self._decode_options())


def _encoder_decoder_cached(params, cache, tgt, tgt_lengths=None, *, d_model, num_heads, **options):
    positions = _cache_positions(cache, tgt.shape[1])
    table = sinusoidal_table(cache["k"].shape[2], d_model)
    x = jnp.take(params["tgt_embedding"], tgt, axis=0) * math.sqrt(d_model) + jnp.take(table, positions, axis=0, mode="clip")
    if options["dtype"] is not None:
        x = x.astype(options["dtype"])
    y, cache = decoder_stack_cached(params["decoder"], x, cache, num_heads=num_heads, seq_lengths=tgt_lengths, **options)
    out = params["output"]
    return cache, y @ out["w"].astype(y.dtype) + out["b"].astype(y.dtype)


def _encoder_decoder_step(params, cache, tokens, **options):
    cache, logits = _encoder_decoder_cached(params, cache, tokens[:, None], **options)
    return cache, logits[:, 0]


# --- BERT ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """BERT hyper-parameters (Devlin et al. 2019), named as HF ``BertConfig``.

    ``hidden_act`` is the exact GELU; ``layer_norm_eps`` 1e-12; post-LN. ``scan_layers`` stores
    the layers stacked and scans over them.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    scan_layers: bool = False

    @classmethod
    def base(cls, **overrides: Any) -> "BertConfig":
        """BERT-base: L12, H768, A12, intermediate 3072 (109,482,240 parameters with the pooler)."""
        return cls(**overrides)

    @classmethod
    def large(cls, **overrides: Any) -> "BertConfig":
        """BERT-large: L24, H1024, A16, intermediate 4096 (335,141,888 parameters with the pooler)."""
        return cls(**({"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                       "intermediate_size": 4096} | overrides))


def _dense_params(w: jax.Array) -> dict:
    return {"w": w, "b": blocks._zeros(w.shape[1])}


def _dense(params: dict, x: jax.Array) -> jax.Array:
    return x @ params["w"].astype(x.dtype) + params["b"].astype(x.dtype)


class BertModel(nnx.Module):
    """BERT encoder: token + segment + learned position embeddings, LayerNorm, dropout, a post-LN
    GELU encoder stack and the pooler ``tanh(W h_[CLS] + b)``::

        e = LN(E_tok[ids] + E_pos[0..t-1] + E_seg[token_type_ids]);  h = Encoder(Dropout(e))
        pooled = tanh(h[:, 0] W_pool + b_pool)

    Init as BERT: N(0, initializer_range^2) for embeddings and matrices (the ``pad_token_id`` row
    zero), zero biases, unit LayerNorm scales. Dropout as HF BERT: embeddings, attention weights,
    residual branches (not after the FFN activation). Parameter layout: ``embeddings``
    (``token``, ``position``, ``token_type``, ``norm``), ``encoder`` (:class:`TransformerEncoder`),
    ``pooler`` (``w``, ``b``).
    """

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs, add_pooler: bool = True):
        c = config
        _checks.positive_int("vocab_size", c.vocab_size)
        _checks.positive_int("max_position_embeddings", c.max_position_embeddings)
        _checks.positive_int("type_vocab_size", c.type_vocab_size)
        _checks.probability("hidden_dropout_prob", c.hidden_dropout_prob)
        self.config = config
        h = c.hidden_size
        token, position, token_type, pool = init_weights(
            rngs.params(), [(c.vocab_size, h), (c.max_position_embeddings, h), (c.type_vocab_size, h), (h, h)],
            c.initializer_range,
        )
        if 0 <= c.pad_token_id < c.vocab_size:
            token = token.at[c.pad_token_id].set(0.0)
        self.embeddings = _as_params({
            "token": token, "position": position, "token_type": token_type, "norm": layer_norm_init(h),
        })
        self.encoder = TransformerEncoder(
            c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size,
            rngs=rngs, activation=c.hidden_act, norm_first=False, dropout=c.hidden_dropout_prob,
            attention_dropout=c.attention_probs_dropout_prob, activation_dropout=0.0,
            eps=c.layer_norm_eps, scan=c.scan_layers, weight_init=c.initializer_range,
        )
        self.pooler = _as_params(_dense_params(pool)) if add_pooler else None

    def __call__(
        self, input_ids: jax.Array, *, token_type_ids: jax.Array | None = None,
        seq_lengths: jax.Array | None = None, token_mask: jax.Array | None = None,
        dropout_key: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array | None]:
        """Encode ``input_ids`` ``[b, t]``.

        Args:
          input_ids: ``[b, t]`` ids, ``t <= max_position_embeddings``.
          token_type_ids: ``[b, t]`` segment ids (default all 0).
          seq_lengths: ``[b]`` valid lengths (right padding), or
          token_mask: ``[b, t]`` True (or 1) at real tokens (HF ``attention_mask``).
          dropout_key: enables dropout.

        Returns:
          ``(sequence_output [b, t, H], pooled_output [b, H])`` (pooled is None without pooler).
        """
        c = self.config
        input_ids = _tokens("input_ids", input_ids, c.vocab_size)
        b, t = input_ids.shape
        _check_length(t, c.max_position_embeddings, "max_position_embeddings")
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        token_type_ids = _tokens("token_type_ids", token_type_ids, c.type_vocab_size)
        if token_type_ids.shape != input_ids.shape:
            raise ValueError(
                f"token_type_ids must have the shape of input_ids {(b, t)}; got {tuple(token_type_ids.shape)}."
            )
        if seq_lengths is not None and token_mask is not None:
            raise ValueError("pass seq_lengths or token_mask, not both.")
        valid = _valid(input_ids, seq_lengths, None, "seq_lengths")
        if token_mask is not None:
            token_mask = jnp.asarray(token_mask)
            if token_mask.shape != (b, t):
                raise ValueError(f"token_mask must have shape [batch, time] = {(b, t)}; got {tuple(token_mask.shape)}.")
            valid = token_mask.astype(bool)
        emb = _values(self.embeddings)
        x = emb["token"][input_ids] + emb["position"][:t][None] + emb["token_type"][token_type_ids]
        x = layer_norm(emb["norm"], x, eps=c.layer_norm_eps)
        k_emb, k_enc = _split(dropout_key, 2)
        x = dropout(x, c.hidden_dropout_prob, k_emb)
        h = self.encoder(x, mask=_key_mask(valid), dropout_key=k_enc)
        pooled = None if self.pooler is None else jnp.tanh(_dense(_values(self.pooler), h[:, 0]))
        return h, pooled


class BertForMaskedLM(nnx.Module):
    """BERT with the MLM head: ``logits = LN(gelu(h W_t + b_t)) E_tok^T + b_out`` (decoder tied to
    the token embedding, plus an output bias ``[V]``); no pooler. Train with
    :func:`seqjax.transformer.mlm_masking` and :func:`seqjax.transformer.mlm_loss`."""

    def __init__(self, config: BertConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.bert = BertModel(config, rngs=rngs, add_pooler=False)
        (w,) = init_weights(rngs.params(), [(config.hidden_size, config.hidden_size)], config.initializer_range)
        self.mlm_head = _as_params({
            "transform": _dense_params(w),
            "norm": layer_norm_init(config.hidden_size),
            "bias": blocks._zeros(config.vocab_size),
        })

    def __call__(self, input_ids: jax.Array, **options: Any) -> jax.Array:
        """``input_ids`` ``[b, t]`` -> MLM logits ``[b, t, V]``; ``options`` as :class:`BertModel`."""
        h, _ = self.bert(input_ids, **options)
        head = _values(self.mlm_head)
        act = blocks.ACTIVATIONS[self.config.hidden_act]
        z = layer_norm(head["norm"], act(_dense(head["transform"], h)), eps=self.config.layer_norm_eps)
        token = self.bert.embeddings["token"][...]
        return z @ token.T.astype(z.dtype) + head["bias"].astype(z.dtype)


class BertForSequenceClassification(nnx.Module):
    """BERT with a [CLS] classification head: ``logits = Dropout(pooled) W_c + b_c``, where
    ``pooled = tanh(W_pool h_[CLS] + b_pool)`` (HF ``BertForSequenceClassification``)."""

    def __init__(self, config: BertConfig, num_labels: int, *, rngs: nnx.Rngs):
        _checks.positive_int("num_labels", num_labels)
        self.config, self.num_labels = config, num_labels
        self.bert = BertModel(config, rngs=rngs, add_pooler=True)
        (w,) = init_weights(rngs.params(), [(config.hidden_size, num_labels)], config.initializer_range)
        self.classifier = _as_params(_dense_params(w))

    def __call__(self, input_ids: jax.Array, *, dropout_key: jax.Array | None = None, **options: Any) -> jax.Array:
        """``input_ids`` ``[b, t]`` -> class logits ``[b, num_labels]``."""
        k_bert, k_head = _split(dropout_key, 2)
        _, pooled = self.bert(input_ids, dropout_key=k_bert, **options)
        pooled = dropout(pooled, self.config.hidden_dropout_prob, k_head)
        return _dense(_values(self.classifier), pooled)


# --- GPT ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GPT2Config:
    """GPT-2 hyper-parameters (Radford et al. 2019), named as HF ``GPT2Config``.

    ``activation`` defaults to GPT-2's tanh-approximated GELU (HF ``gelu_new``); ``"gelu"`` is the
    exact form. ``n_inner`` defaults to ``4 * n_embd``.
    """

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None
    activation: str = "gelu_tanh"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True
    scan_layers: bool = False

    @classmethod
    def small(cls, **overrides: Any) -> "GPT2Config":
        """GPT-2 small: L12, d768, A12, 1024 positions (124,439,808 parameters, tied)."""
        return cls(**overrides)

    @classmethod
    def medium(cls, **overrides: Any) -> "GPT2Config":
        """GPT-2 medium: L24, d1024, A16."""
        return cls(**({"n_embd": 1024, "n_layer": 24, "n_head": 16} | overrides))

    @classmethod
    def large(cls, **overrides: Any) -> "GPT2Config":
        """GPT-2 large: L36, d1280, A20."""
        return cls(**({"n_embd": 1280, "n_layer": 36, "n_head": 20} | overrides))

    @classmethod
    def xl(cls, **overrides: Any) -> "GPT2Config":
        """GPT-2 XL: L48, d1600, A25."""
        return cls(**({"n_embd": 1600, "n_layer": 48, "n_head": 25} | overrides))


class GPTLanguageModel(nnx.Module):
    """GPT-style decoder-only language model (GPT-2)::

        h_0    = Dropout(E_tok[ids] + E_pos[0..t-1])
        h_L    = causal pre-LN stack (x + Attn(LN(x)), x + FFN(LN(x))) then a final LN
        logits = h_L E_tok^T            (output projection tied to the token embedding)

    Init as GPT-2: N(0, 0.02^2) embeddings and matrices, the residual output projections (``w_o``,
    ``w_2``) scaled by ``1 / sqrt(2 n_layer)``, zero biases. Dropout: embeddings, attention
    weights, residual branches. With ``tie_word_embeddings=False`` an ``lm_head`` ``[d, V]`` is
    added. Parameter layout: ``token_embedding``, ``position_embedding``, ``blocks``
    (:class:`TransformerEncoder` with ``causal=True``, ``norm_first=True``, ``final_norm``).
    """

    def __init__(self, config: GPT2Config, *, rngs: nnx.Rngs):
        c = config
        _checks.positive_int("vocab_size", c.vocab_size)
        _checks.positive_int("n_positions", c.n_positions)
        _checks.positive_int("n_layer", c.n_layer)
        _checks.probability("embd_pdrop", c.embd_pdrop)
        self.config = config
        shapes = [(c.vocab_size, c.n_embd), (c.n_positions, c.n_embd)]
        if not c.tie_word_embeddings:
            shapes.append((c.n_embd, c.vocab_size))
        token, position, *head = init_weights(rngs.params(), shapes, c.initializer_range)
        self.token_embedding = nnx.Param(token)
        self.position_embedding = nnx.Param(position)
        self.blocks = TransformerEncoder(
            c.n_layer, c.n_embd, c.n_head, c.n_inner or 4 * c.n_embd, rngs=rngs,
            activation=c.activation, norm_first=True, final_norm=True, causal=True,
            dropout=c.resid_pdrop, attention_dropout=c.attn_pdrop, activation_dropout=0.0,
            eps=c.layer_norm_epsilon, scan=c.scan_layers, weight_init=c.initializer_range,
            output_init_scale=1.0 / math.sqrt(2 * c.n_layer),
        )
        self.lm_head = nnx.Param(head[0]) if head else None

    def __call__(
        self, input_ids: jax.Array, *, seq_lengths: jax.Array | None = None,
        dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """``input_ids`` ``[b, t]`` -> next-token logits ``[b, t, V]`` (position ``i`` sees tokens
        ``0..i``). ``seq_lengths`` masks right padding (only the padded positions' own outputs
        change: with the causal mask a valid query never reads a later, padded key)."""
        c = self.config
        input_ids = _tokens("input_ids", input_ids, c.vocab_size)
        t = input_ids.shape[1]
        _check_length(t, c.n_positions, "n_positions")
        token = self.token_embedding[...]
        x = token[input_ids] + self.position_embedding[...][:t][None]
        k_emb, k_blocks = _split(dropout_key, 2)
        x = dropout(x, c.embd_pdrop, k_emb)
        h = self.blocks(x, seq_lengths=seq_lengths, dropout_key=k_blocks)
        w = token.T if self.lm_head is None else self.lm_head[...]
        return h @ w.astype(h.dtype)

    # --- incremental decoding (KV cache) ---

    def init_cache(self, batch: int, max_len: int | None = None, *, dtype: Any = None) -> dict:
        """An empty KV cache for ``batch`` sequences of up to ``max_len`` positions (default and
        at most ``n_positions``): ``{"k", "v": [b, n_layer, max_len, n_head, d_head], "index": [b]}``,
        the layout of :mod:`seqjax.transformer.cache`. ``dtype``: storage dtype (default the
        model's computation dtype, or float32)."""
        c = self.config
        max_len = c.n_positions if max_len is None else max_len
        _checks.positive_int("max_len", max_len)
        _check_length(max_len, c.n_positions, "n_positions")
        dtype = dtype or self.blocks.options["dtype"] or jnp.float32
        return init_stack_cache(self.blocks.stack_params(), batch, max_len, num_heads=c.n_head, dtype=dtype)

    def _decode_params(self) -> dict:
        params = {"token_embedding": self.token_embedding[...], "position_embedding": self.position_embedding[...],
                  "blocks": self.blocks.stack_params()}
        if self.lm_head is not None:
            params["lm_head"] = self.lm_head[...]
        return params

    def _decode_options(self) -> dict:
        return dict(num_heads=self.config.n_head, **_cache_options(self.blocks.options))

    def prefill(
        self, cache: dict, input_ids: jax.Array, *, seq_lengths: jax.Array | None = None,
    ) -> tuple[jax.Array, dict]:
        """Run ``input_ids`` ``[b, t]`` (a prompt, at positions ``cache["index"]`` on) through the
        model with the cache: ``(logits [b, t, V], cache)``, equal to the full forward pass on
        the whole prefix. ``seq_lengths`` ``[b]``: right-padded prompts (the index advances by
        them, and the next step overwrites the padding). No dropout (inference)."""
        c = self.config
        input_ids = _tokens("input_ids", input_ids, c.vocab_size)
        _check_length(input_ids.shape[1], c.n_positions, "n_positions")
        if isinstance(cache, dict) and "k" in cache:
            _check_length(cache["k"].shape[2], c.n_positions, "n_positions (the cache's max_len)")
        return _gpt_cached(self._decode_params(), cache, input_ids, seq_lengths, **self._decode_options())

    def decode_step(self, cache: dict, tokens: jax.Array) -> tuple[jax.Array, dict]:
        """One decoding step, the :mod:`seqjax.decoding` contract: ``tokens`` ``[b]`` (the
        latest token of each sequence) -> ``(next-token logits [b, V], cache)``."""
        tokens = _tokens("tokens", _step_tokens(tokens)[:, None], self.config.vocab_size)[:, 0]
        if isinstance(cache, dict) and "k" in cache:
            _check_length(cache["k"].shape[2], self.config.n_positions, "n_positions (the cache's max_len)")
        return _gpt_step(self._decode_params(), cache, tokens, **self._decode_options())

    def step_fn(self) -> Callable:
        """A pure ``step_fn(cache, tokens) -> (logits, cache)`` with the current parameter
        values bound as arrays (a ``functools.partial``: :mod:`seqjax.decoding` traces them as
        arguments, so new parameter values never recompile).

        Example::

            >>> import jax.numpy as jnp
            >>> from flax import nnx
            >>> from seqjax.decoding import greedy
            >>> from seqjax.nn.transformer import GPT2Config, GPTLanguageModel
            >>> model = GPTLanguageModel(GPT2Config(vocab_size=20, n_positions=16, n_embd=8,
            ...                          n_layer=1, n_head=2), rngs=nnx.Rngs(0))
            >>> prompt = jnp.ones((2, 4), jnp.int32)
            >>> cache, _ = model.prefill(model.init_cache(2, 16), prompt[:, :-1])
            >>> out = greedy(model.step_fn(), cache, prompt[:, -1], 8)
            >>> out.sequences.shape
            (2, 8)
        """
        return functools.partial(_gpt_step, self._decode_params(), **self._decode_options())


def _gpt_cached(params, cache, input_ids, seq_lengths=None, *, num_heads, **options):
    positions = _cache_positions(cache, input_ids.shape[1])
    token = params["token_embedding"]
    x = token[input_ids] + jnp.take(params["position_embedding"], positions, axis=0, mode="clip")
    h, cache = encoder_stack_cached(params["blocks"], x, cache, num_heads=num_heads, seq_lengths=seq_lengths, **options)
    w = params["lm_head"] if "lm_head" in params else token.T
    return cache, h @ w.astype(h.dtype)


def _gpt_step(params, cache, tokens, **options):
    cache, logits = _gpt_cached(params, cache, tokens[:, None], **options)
    return cache, logits[:, 0]
