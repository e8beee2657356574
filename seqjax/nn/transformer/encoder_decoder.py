"""The encoder-decoder Transformer of Vaswani et al. 2017 as an NNX module, :class:`EncoderDecoder`,
with KV-cached decoding through the same decoder layers as training.

It fixes the bugs of the textbook's hand-written Transformer: ``d_model`` is stored (the source
text scales the embeddings by an attribute it never sets); the sinusoidal table is a constant
computed on the fly, never a parameter or state, so no init can overwrite it (the source text
registers it as a parameter and its Xavier init overwrites it with noise); the target padding
mask is combined with the causal mask (the source text accepts it and never uses it); masks have
explicit ``[b, 1, t, s]`` shapes, so a ``[b, s]`` padding mask cannot broadcast onto the heads.

Example::

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from seqjax.nn.transformer import EncoderDecoder
    >>> model = EncoderDecoder(11, 13, d_model=16, num_heads=2, num_layers=1, d_ff=32,
    ...                        max_len=20, rngs=nnx.Rngs(0))
    >>> src, tgt = jnp.ones((2, 7), jnp.int32), jnp.ones((2, 5), jnp.int32)
    >>> model(src, tgt, src_lengths=jnp.array([7, 3])).shape
    (2, 5, 13)
    >>> cache = model.init_decode_state(src, 8, src_lengths=jnp.array([7, 3]))
    >>> cache, logits = model.prefill(cache, tgt[:, :1])               # BOS
    >>> cache, logits = model.decode_step(cache, jnp.argmax(logits[:, -1], -1))
    >>> logits.shape, cache["index"].tolist()
    ((2, 13), [2, 2])
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import nnx

from seqjax import _checks
from seqjax.attention.positional import sinusoidal_table
from seqjax.nn.transformer.generation import run_decoding
from seqjax.nn.params import as_params, values
from seqjax.nn.transformer.inputs import check_decoding_cache, check_length, key_padding, token_validity
from seqjax.nn.transformer.stacks import TransformerDecoder, TransformerEncoder
from seqjax.primitives import dense, dropout, split_key
from seqjax.transformer import TransformerSpec, decoder_stack, init_weights
from seqjax.transformer.cache import capacity, query_positions
from seqjax.transformer.init import zero_bias


def embed(table: jax.Array, tokens: jax.Array, positions: jax.Array, *, table_len: int, dtype: Any = None) -> jax.Array:
    """``E[tokens] * sqrt(d) + PE[positions]``: token embeddings ``[b, t, d]`` scaled by
    ``sqrt(d_model)`` plus the sinusoidal encoding (a constant of ``table_len`` rows) of
    ``positions`` (``[t]`` or ``[b, t]``)."""
    d_model = table.shape[1]
    x = jnp.take(table, tokens, axis=0) * math.sqrt(d_model)
    x = x + jnp.take(sinusoidal_table(table_len, d_model), positions, axis=0)
    return x if dtype is None else x.astype(dtype)


def decoder_logits(
    spec: TransformerSpec,
    params: dict,
    tgt: jax.Array,
    memory: jax.Array | None = None,
    *,
    max_len: int,
    mask: jax.Array | None = None,
    memory_mask: jax.Array | None = None,
    tgt_lengths: jax.Array | None = None,
    cache: dict | None = None,
    dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
):
    """The decoder half: target ids ``tgt`` ``[b, t]`` -> logits ``[b, t, V_tgt]``; with a
    ``cache`` (holding the cross-attention keys and values, ``memory`` None) the ``t`` new
    positions start at ``cache["index"]`` and the result is ``(cache, logits)``.

    Args:
      spec: the decoder's spec (``EncoderDecoder.decoder.spec``).
      params: ``EncoderDecoder.pure_params()`` (``tgt_embedding``, ``decoder``, ``output`` used).
      max_len: the model's position limit (``EncoderDecoder.max_len``).
      mask, memory_mask, tgt_lengths: as :func:`seqjax.transformer.decoder_stack`.
      dropout_rate, dropout_key: embedding dropout (the spec's rates inside the layers).
    """
    tgt = _checks.token_ids("tgt", tgt, params["tgt_embedding"].shape[0])
    t = tgt.shape[1]
    if cache is None:
        check_length(t, max_len, "max_len")
        positions, table_len = jnp.arange(t), t
    else:
        check_decoding_cache(cache, max_len, "max_len (the position table size)")
        positions, table_len = query_positions(cache, t), capacity(cache)
    k_emb, k_dec = split_key(dropout_key, 2)
    y = dropout(embed(params["tgt_embedding"], tgt, positions, table_len=table_len, dtype=spec.dtype),
                dropout_rate, k_emb)
    out = decoder_stack(spec, params["decoder"], y, memory, mask=mask, memory_mask=memory_mask,
                        tgt_lengths=tgt_lengths, cache=cache, dropout_key=k_dec)
    cache, y = (None, out) if cache is None else out
    logits = dense(y, params["output"]["w"], params["output"]["b"])
    return logits if cache is None else (cache, logits)


def decoder_step(spec: TransformerSpec, params: dict, cache: dict, tokens: jax.Array, *, max_len: int):
    """One decoding step: ``tokens`` ``[b]`` (the previous outputs, BOS first) ->
    ``(cache, logits [b, V_tgt])``, the contract of :mod:`seqjax.decoding`."""
    tokens = _checks.token_ids("tokens", tokens, params["tgt_embedding"].shape[0], ndim=1, layout="[batch]")
    check_decoding_cache(cache, max_len, "max_len (the position table size)")
    cache, logits = decoder_logits(spec, params, tokens[:, None], max_len=max_len, cache=cache)
    return cache, logits[:, 0]


class EncoderDecoder(nnx.Module):
    """The full encoder-decoder Transformer (Vaswani et al. 2017)::

        src_e  = Dropout(E_src[src] * sqrt(d_model) + PE[:s])
        tgt_e  = Dropout(E_tgt[tgt] * sqrt(d_model) + PE[:t])
        memory = Encoder(src_e, source padding)
        logits = Decoder(tgt_e, memory, causal & target padding, source padding) W_out + b_out

    ``PE`` is the fixed sinusoidal table (:func:`seqjax.attention.sinusoidal_table`), a constant
    recomputed for the length at hand: it is neither a parameter nor state. Xavier-uniform init
    of every matrix (embeddings, projections, FFN, output), zero biases, unit LayerNorm scales;
    ``dropout_rate`` (0.1) on the embeddings and inside the layers (PyTorch placement), active
    only with a ``dropout_key``. Post-LN by default (no final norms); ``norm_first=True`` adds
    final norms to both stacks. ``max_len`` bounds the source and target lengths and the
    decoding cache.

    Padding: ``src_lengths`` / ``tgt_lengths`` (right padding), or, when absent and ``pad_id`` is
    set, ``tokens != pad_id``. The source padding masks the keys of the encoder self-attention and
    of the decoder cross-attention; the target padding and the causal mask the decoder
    self-attention.

    Parameters: ``src_embedding``, ``tgt_embedding`` ``[V, d]``, ``encoder``, ``decoder`` (the
    stacks), ``output`` ``{"w": [d, V_tgt], "b"}``; :meth:`pure_params` gives them as one dict.
    Decoding: ``cache = model.init_decode_state(src, max_len)``, ``cache, logits =
    model.prefill(cache, tgt)``, ``cache, logits = model.decode_step(cache, tokens)``, all with the
    decoder's spec.
    """

    def __init__(
        self, src_vocab_size: int, tgt_vocab_size: int, *, rngs: nnx.Rngs, d_model: int = 512,
        num_heads: int = 8, num_layers: int = 6, num_decoder_layers: int | None = None,
        d_ff: int = 2048, max_len: int = 5000, dropout_rate: float = 0.1, activation: str = "relu",
        norm_first: bool = False, eps: float = 1e-5, pad_id: int | None = None, scan: bool = False,
        dtype: Any = None,
    ):
        _checks.positive_int("src_vocab_size", src_vocab_size)
        _checks.positive_int("tgt_vocab_size", tgt_vocab_size)
        _checks.positive_int("max_len", max_len)
        _checks.probability("dropout_rate", dropout_rate)
        if d_model % 2:
            raise ValueError(f"d_model must be even for the sinusoidal encoding; got {d_model}.")
        num_decoder_layers = num_layers if num_decoder_layers is None else num_decoder_layers
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.d_model, self.max_len, self.dropout_rate, self.pad_id = d_model, max_len, float(dropout_rate), pad_id
        e_src, e_tgt, w_out = init_weights(
            rngs.params(), [(src_vocab_size, d_model), (tgt_vocab_size, d_model), (d_model, tgt_vocab_size)]
        )
        self.src_embedding = nnx.Param(e_src)
        self.tgt_embedding = nnx.Param(e_tgt)
        common = dict(rngs=rngs, activation=activation, norm_first=norm_first, dropout_rate=dropout_rate,
                      eps=eps, scan=scan, dtype=dtype)
        self.encoder = TransformerEncoder(num_layers, d_model, num_heads, d_ff, **common)
        self.decoder = TransformerDecoder(num_decoder_layers, d_model, num_heads, d_ff, causal=True, **common)
        self.output = as_params({"w": w_out, "b": zero_bias(tgt_vocab_size)})

    def pure_params(self) -> dict:
        """``{"src_embedding", "tgt_embedding", "encoder", "decoder", "output"}`` as plain arrays."""
        return {"src_embedding": self.src_embedding[...], "tgt_embedding": self.tgt_embedding[...],
                "encoder": self.encoder.pure_params(), "decoder": self.decoder.pure_params(),
                "output": values(self.output)}

    def positional_encoding(self, length: int | None = None) -> jax.Array:
        """The sinusoidal table ``[length, d_model]`` (default ``max_len``): a constant."""
        length = self.max_len if length is None else length
        check_length(length, self.max_len, "max_len")
        return sinusoidal_table(length, self.d_model)

    def encode(
        self, src: jax.Array, *, src_lengths: jax.Array | None = None, dropout_key: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array | None]:
        """``src`` ``[b, s]`` ids -> ``(memory [b, s, d], src_valid [b, s] or None)``."""
        src = _checks.token_ids("src", src, self.src_vocab_size)
        s = src.shape[1]
        check_length(s, self.max_len, "max_len")
        valid = token_validity(src, src_lengths, self.pad_id, "src_lengths")
        k_emb, k_enc = split_key(dropout_key, 2)
        x = embed(self.src_embedding[...], src, jnp.arange(s), table_len=s, dtype=self.encoder.spec.dtype)
        x = dropout(x, self.dropout_rate, k_emb)
        return self.encoder(x, mask=key_padding(valid), dropout_key=k_enc), valid

    def decode(
        self, tgt: jax.Array, memory: jax.Array, *, src_valid: jax.Array | None = None,
        tgt_lengths: jax.Array | None = None, dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """``tgt`` ``[b, t]`` ids and ``memory`` ``[b, s, d]`` -> logits ``[b, t, V_tgt]``;
        ``src_valid`` ``[b, s]`` (from :meth:`encode`) masks the padded source keys."""
        tgt = _checks.token_ids("tgt", tgt, self.tgt_vocab_size)
        valid = None if tgt_lengths is not None else token_validity(tgt, None, self.pad_id, "tgt_lengths")
        if src_valid is not None and (src_valid.ndim != 2 or src_valid.shape[0] != tgt.shape[0]):
            raise ValueError(f"src_valid must have shape [batch, source_time]; got {tuple(src_valid.shape)}.")
        return decoder_logits(self.decoder.spec, self.pure_params(), tgt, memory, max_len=self.max_len,
                              mask=key_padding(valid), memory_mask=key_padding(src_valid), tgt_lengths=tgt_lengths,
                              dropout_rate=self.dropout_rate, dropout_key=dropout_key)

    def __call__(
        self, src: jax.Array, tgt: jax.Array, *, src_lengths: jax.Array | None = None,
        tgt_lengths: jax.Array | None = None, dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """``src`` ``[b, s]``, ``tgt`` ``[b, t]`` (teacher forcing: the shifted target) -> logits
        ``[b, t, V_tgt]``."""
        k_enc, k_dec = split_key(dropout_key, 2)
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
        if max_len > self.max_len:
            raise ValueError(
                f"max_len = {max_len} exceeds the model's max_len = {self.max_len} (its position table size)."
            )
        memory = _checks.floating_array("memory", memory, ndim=3, layout="[batch, source_time, features]")
        return self.decoder.init_cache(memory.shape[0], max_len, memory=memory, memory_valid=src_valid, dtype=dtype)

    def init_decode_state(
        self, src: jax.Array, max_len: int, *, src_lengths: jax.Array | None = None, dtype: Any = None,
    ) -> dict:
        """:meth:`encode` then :meth:`init_cache`: the decoding state before the first target token."""
        memory, src_valid = self.encode(src, src_lengths=src_lengths)
        return self.init_cache(memory, max_len, src_valid=src_valid, dtype=dtype)

    def prefill(
        self, cache: dict, tgt: jax.Array, *, tgt_lengths: jax.Array | None = None,
    ) -> tuple[dict, jax.Array]:
        """Run the decoder on ``tgt`` ``[b, t]`` (positions ``cache["index"]`` on) against the
        cache: ``(cache, logits [b, t, V_tgt])``, equal to :meth:`decode` on the whole prefix.
        ``tgt_lengths`` ``[b]``: right padding (the index advances by them). Unlike
        :meth:`decode`, ``pad_id`` tokens are not masked as keys: pass right padding as
        ``tgt_lengths``."""
        return decoder_logits(self.decoder.spec, self.pure_params(), tgt, max_len=self.max_len,
                              tgt_lengths=tgt_lengths, cache=cache)

    def decode_step(self, cache: dict, tokens: jax.Array) -> tuple[dict, jax.Array]:
        """One decoding step: ``tokens`` ``[b]`` (the previous outputs, BOS first) ->
        ``(cache, logits [b, V_tgt])``."""
        return decoder_step(self.decoder.spec, self.pure_params(), cache, tokens, max_len=self.max_len)

    def step_fn(self) -> Callable:
        """A pure ``step_fn(cache, tokens) -> (cache, logits)`` with the decoder's spec and the
        current parameter values bound (a ``functools.partial`` of :func:`decoder_step`:
        :mod:`seqjax.decoding` traces the arrays as arguments, so new parameter values never
        recompile)."""
        params = self.pure_params()
        params = {k: params[k] for k in ("tgt_embedding", "decoder", "output")}
        return functools.partial(decoder_step, self.decoder.spec, params, max_len=self.max_len)

    def generate(
        self, src: jax.Array, max_new_tokens: int, *, bos_id: int, src_lengths: jax.Array | None = None,
        method: str = "greedy", key: jax.Array | None = None, beam_size: int = 4, eos_id: int | None = None,
        pad_id: int = 0, **options: Any,
    ):
        """Translate ``src`` ``[b, s]``: :meth:`init_decode_state` (encode once, cross-attention
        keys and values cached), then :func:`seqjax.decoding.greedy`,
        :func:`~seqjax.decoding.sample` or :func:`~seqjax.decoding.beam_search` over
        :meth:`step_fn`, fed ``bos_id`` first (``method``, ``key``, ``beam_size``, ``eos_id``,
        ``pad_id``, ``options`` as :meth:`GPTLanguageModel.generate`). Returns the decoding
        function's result, ``max_new_tokens`` target tokens (BOS not included).

        Example::

            >>> import jax.numpy as jnp
            >>> from flax import nnx
            >>> from seqjax.nn.transformer import EncoderDecoder
            >>> model = EncoderDecoder(11, 13, rngs=nnx.Rngs(0), d_model=8, num_heads=2, num_layers=1,
            ...                        d_ff=16, max_len=16)
            >>> model.generate(jnp.ones((2, 5), jnp.int32), 4, bos_id=1).sequences.shape
            (2, 4)
        """
        _checks.positive_int("max_new_tokens", max_new_tokens)
        if not isinstance(bos_id, int) or not 0 <= bos_id < self.tgt_vocab_size:
            raise ValueError(f"bos_id must be an id in [0, {self.tgt_vocab_size}); got {bos_id!r}.")
        state = self.init_decode_state(src, max_new_tokens, src_lengths=src_lengths)
        first = jnp.full((state["index"].shape[0],), bos_id, jnp.int32)
        return run_decoding(self.step_fn(), state, first, max_new_tokens, method=method, key=key,
                            beam_size=beam_size, eos_id=eos_id, pad_id=pad_id, **options)
