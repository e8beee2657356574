"""GPT-2 (Radford et al. 2019) as an NNX module: :class:`GPT2Config` and :class:`GPTLanguageModel`,
with KV-cached decoding through the same layers as training.

The forward pass is one pure function of ``(spec, params, input_ids)`` with an optional cache:
training and scoring call it without one, :meth:`GPTLanguageModel.prefill` and
:meth:`~GPTLanguageModel.decode_step` with one, and :meth:`~GPTLanguageModel.step_fn` binds the
model's spec and current parameter values into the decoding step
``step_fn(cache, tokens [b]) -> (cache, logits [b, V])``. Hugging Face GPT-2 checkpoints load
with :meth:`GPTLanguageModel.from_hf` (:meth:`GPT2Config.from_hf` for the config alone).

Example::

    >>> import jax.numpy as jnp
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
from flax import nnx

from seqjax import _checks
from seqjax.decoding import BeamSearchResult, Generation
from seqjax.interop.huggingface import ACTIVATIONS, check_hf_gpt2_config, from_hf_gpt2, to_hf_gpt2, to_hf_gpt2_config
from seqjax.nn.params import load_pure_params
from seqjax.nn.transformer.inputs import check_decoding_cache, check_length
from seqjax.nn.transformer.generation import METHODS, run_decoding
from seqjax.nn.transformer.pretrained import HFPretrained
from seqjax.nn.transformer.stacks import TransformerEncoder
from seqjax.primitives import dropout, split_key
from seqjax.transformer import TransformerSpec, encoder_stack, init_weights
from seqjax.transformer.cache import capacity, query_positions
from seqjax.transformer.layers import with_attention


@dataclasses.dataclass(frozen=True)
class GPT2Config:
    """GPT-2 hyper-parameters (Radford et al. 2019), named as Hugging Face's ``GPT2Config``
    (``resid_pdrop``, ``attn_pdrop``, ``embd_pdrop`` are its dropout rates).

    ``activation`` defaults to GPT-2's tanh-approximated GELU (HF ``gelu_new``); ``"gelu"`` is the
    exact form. ``n_inner`` defaults to ``4 * n_embd``. ``scan_layers`` stores the layers stacked
    and scans over them.

    ``positional``: ``"absolute"`` (GPT-2's learned table ``E_pos``), or one of the schemes inside
    the attention, with no position table: ``"rope"`` (Su et al. 2021; ``rope_base``),
    ``"alibi"`` (Press et al. 2022) or ``"relative"`` (T5's bucketed bias, Raffel et al. 2020;
    ``relative_buckets``, ``relative_max_distance``). ``n_positions`` still bounds the context
    and the cache. Hugging Face GPT-2 checkpoints are ``"absolute"``.
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
    positional: str = "absolute"
    rope_base: float = 10000.0
    relative_buckets: int = 32
    relative_max_distance: int = 128

    @classmethod
    def from_hf(cls, hf_config: Any, *, scan_layers: bool = False) -> "GPT2Config":
        """The config of a Hugging Face ``GPT2Config`` (the object or its ``to_dict()``): the same
        field names, ``activation_function`` mapped to ``activation`` by
        :data:`seqjax.interop.huggingface.ACTIVATIONS`, Hugging Face's defaults for absent fields.
        ``scan_layers``: stack the layers and scan over them.

        Refuses (:func:`seqjax.interop.huggingface.check_hf_gpt2_config`) what the model does not
        compute: another ``activation_function``, ``scale_attn_weights=False``,
        ``scale_attn_by_inverse_layer_idx=True``, ``add_cross_attention=True``.

        Example::

            >>> from seqjax.nn import GPT2Config
            >>> config = GPT2Config.from_hf({"vocab_size": 11, "n_positions": 8, "n_embd": 4,
            ...                              "n_layer": 1, "n_head": 2, "activation_function": "gelu"})
            >>> config.activation, config.n_inner, config.tie_word_embeddings
            ('gelu', None, True)
        """
        f = check_hf_gpt2_config(hf_config)
        return cls(
            vocab_size=int(f["vocab_size"]), n_positions=int(f["n_positions"]), n_embd=int(f["n_embd"]),
            n_layer=int(f["n_layer"]), n_head=int(f["n_head"]),
            n_inner=None if f["n_inner"] is None else int(f["n_inner"]),
            activation=ACTIVATIONS[f["activation_function"]],
            resid_pdrop=float(f["resid_pdrop"]), embd_pdrop=float(f["embd_pdrop"]), attn_pdrop=float(f["attn_pdrop"]),
            layer_norm_epsilon=float(f["layer_norm_epsilon"]), initializer_range=float(f["initializer_range"]),
            tie_word_embeddings=bool(f["tie_word_embeddings"]), scan_layers=bool(scan_layers),
        )

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


def gpt_forward(
    spec: TransformerSpec,
    params: dict,
    input_ids: jax.Array,
    *,
    seq_lengths: jax.Array | None = None,
    cache: dict | None = None,
    embedding_dropout_rate: float = 0.0,
    dropout_key: jax.Array | None = None,
    return_attention: bool = False,
):
    """The GPT forward pass on ``input_ids`` ``[b, t]``: next-token logits ``[b, t, V]``; with a
    ``cache``, the ``t`` new positions start at ``cache["index"]`` and the result is
    ``(cache, logits)``.

    Args:
      spec: the blocks' spec (``GPTLanguageModel.spec``).
      params: ``GPTLanguageModel.pure_params()``: ``token_embedding [V, d]``,
        ``position_embedding [P, d]`` (``"absolute"`` specs only), ``blocks`` (a stack), optional
        ``lm_head [d, V]``.
      input_ids: ``[b, t]`` ids in ``[0, V)``.
      seq_lengths: ``[b]`` right padding (with a cache: how far the index advances).
      cache: None, or a KV cache of capacity ``<= P`` (``GPTLanguageModel.init_cache``).
      embedding_dropout_rate, dropout_key: dropout (GPT-2's ``embd_pdrop`` on the embeddings,
        the spec's rates inside the blocks), active only with a key.
      return_attention: append ``{"self": [L, b, h, t, s]}``, every block's causal attention
        weights before dropout (``s = t``, or the cache capacity).
    """
    token, position = params["token_embedding"], params.get("position_embedding")
    input_ids = _checks.token_ids("input_ids", input_ids, token.shape[0])
    t = input_ids.shape[1]
    x = token[input_ids]
    if position is None:  # positions inside the attention (spec.positional: rope, alibi, relative)
        if cache is not None:
            check_decoding_cache(cache, capacity(cache), "the cache capacity")
    elif cache is None:
        check_length(t, position.shape[0], "n_positions")
        x = x + position[:t]
    else:
        check_decoding_cache(cache, position.shape[0], "n_positions")
        x = x + jnp.take(position, query_positions(cache, t), axis=0)
    k_emb, k_blocks = split_key(dropout_key, 2)
    x = dropout(x, embedding_dropout_rate, k_emb)
    out = encoder_stack(spec, params["blocks"], x, seq_lengths=seq_lengths, cache=cache, dropout_key=k_blocks,
                        return_attention=return_attention)
    attention = out[-1] if return_attention else None
    if return_attention:
        out = out[0] if cache is None else out[:2]
    cache, h = (None, out) if cache is None else out
    w = params["lm_head"] if "lm_head" in params else token.T
    logits = h @ w.astype(h.dtype)
    return with_attention(logits if cache is None else (cache, logits), attention)


def gpt_step(spec: TransformerSpec, params: dict, cache: dict, tokens: jax.Array) -> tuple[dict, jax.Array]:
    """One decoding step: ``tokens`` ``[b]`` (the latest token of each sequence) ->
    ``(cache, next-token logits [b, V])``, the contract of :mod:`seqjax.decoding`."""
    tokens = _checks.token_ids("tokens", tokens, params["token_embedding"].shape[0], ndim=1, layout="[batch]")
    cache, logits = gpt_forward(spec, params, tokens[:, None], cache=cache)
    return cache, logits[:, 0]


GPT2_ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")
"""Hugging Face GPT-2 classes :class:`GPTLanguageModel` loads (a ``GPT2Model`` checkpoint: the
tied head needs no extra weights)."""


class GPTLanguageModel(HFPretrained, nnx.Module):
    """GPT-style decoder-only language model (GPT-2)::

        h_0    = Dropout(E_tok[ids] + E_pos[0..t-1])
        h_L    = causal pre-LN stack (x + Attn(LN(x)), x + FFN(LN(x))) then a final LN
        logits = h_L E_tok^T            (output projection tied to the token embedding)

    Init as GPT-2: N(0, 0.02^2) embeddings and matrices, the residual output projections (``w_o``,
    ``w_2``) scaled by ``1 / sqrt(2 n_layer)``, zero biases. Dropout: embeddings, attention
    weights, residual branches. With ``tie_word_embeddings=False`` an ``lm_head`` ``[d, V]`` is
    added.

    Parameters (``nnx.Param``): ``token_embedding [V, d]``, ``position_embedding [P, d]``,
    ``blocks`` (a :class:`~seqjax.nn.transformer.TransformerEncoder` with ``causal=True``,
    ``norm_first=True``, ``final_norm``; its ``stack`` holds ``{"layers", "final_norm"}``),
    optional ``lm_head``. :meth:`pure_params` gives them as
    ``{"token_embedding", "position_embedding", "blocks": {"layers", "final_norm"}, "lm_head"}``.

    Decoding: ``cache = model.init_cache(b, max_len)``, ``cache, logits = model.prefill(cache,
    prompt)``, ``cache, logits = model.decode_step(cache, tokens)``; all run with ``model.spec``.

    Hugging Face ``GPT2LMHeadModel`` checkpoint directories: ``GPTLanguageModel.from_pretrained(dir)``,
    ``model.save_pretrained(dir)`` (:mod:`seqjax.nn.transformer.pretrained`).
    """

    hf_architecture = "GPT2LMHeadModel"

    def __init__(self, config: GPT2Config, *, rngs: nnx.Rngs):
        c = config
        _checks.positive_int("vocab_size", c.vocab_size)
        _checks.positive_int("n_positions", c.n_positions)
        _checks.positive_int("n_layer", c.n_layer)
        _checks.probability("embd_pdrop", c.embd_pdrop)
        self.config = config
        absolute = c.positional == "absolute"
        shapes = [(c.vocab_size, c.n_embd)] + [(c.n_positions, c.n_embd)] * absolute
        if not c.tie_word_embeddings:
            shapes.append((c.n_embd, c.vocab_size))
        token, *rest = init_weights(rngs.params(), shapes, c.initializer_range)
        position, head = (rest[0], rest[1:]) if absolute else (None, rest)
        self.token_embedding = nnx.Param(token)
        self.position_embedding = nnx.Param(position) if absolute else None
        self.blocks = TransformerEncoder(
            c.n_layer, c.n_embd, c.n_head, c.n_inner or 4 * c.n_embd, rngs=rngs,
            activation=c.activation, norm_first=True, final_norm=True, causal=True,
            dropout_rate=c.resid_pdrop, attention_dropout_rate=c.attn_pdrop, activation_dropout_rate=0.0,
            eps=c.layer_norm_epsilon, scan=c.scan_layers, weight_init=c.initializer_range,
            output_init_scale=1.0 / math.sqrt(2 * c.n_layer), positional=c.positional, rope_base=c.rope_base,
            relative_buckets=c.relative_buckets, relative_max_distance=c.relative_max_distance,
        )
        self.lm_head = nnx.Param(head[0]) if head else None

    def hf_config(self) -> dict:
        return to_hf_gpt2_config(self.config)

    def hf_state_dict(self) -> dict:
        return to_hf_gpt2(self.pure_params(), self.config)

    @classmethod
    def from_hf(
        cls, state_dict: Any, hf_config: Any, *, scan_layers: bool = False, rngs: nnx.Rngs | None = None,
    ) -> "GPTLanguageModel":
        """A model with the weights of a Hugging Face GPT-2: :meth:`GPT2Config.from_hf`, then
        :func:`seqjax.interop.huggingface.from_hf_gpt2` (the name map), then
        :func:`seqjax.nn.params.load_pure_params`.

        Args:
          state_dict: ``{name: numpy array}`` of a ``GPT2LMHeadModel`` or ``GPT2Model``, e.g.
            ``{k: v.numpy() for k, v in hf_model.state_dict().items()}``.
          hf_config: its ``GPT2Config`` (the object or its ``to_dict()``).
          scan_layers: stack the layers and scan over them.
          rngs: draws only the initial weights that the checkpoint replaces (default ``nnx.Rngs(0)``).

        Example::

            >>> import numpy as np
            >>> from seqjax.nn import GPTLanguageModel
            >>> hf_config = {"vocab_size": 11, "n_positions": 8, "n_embd": 4, "n_layer": 1, "n_head": 2}
            >>> donor = GPTLanguageModel(GPT2Config.from_hf(hf_config), rngs=nnx.Rngs(3)).pure_params()
            >>> layer = donor["blocks"]["layers"][0]
            >>> a, ffn = layer["self_attn"], layer["ffn"]
            >>> state_dict = {  # the donor's weights under Hugging Face's names
            ...     "wte.weight": donor["token_embedding"], "wpe.weight": donor["position_embedding"],
            ...     "ln_f.weight": donor["blocks"]["final_norm"]["scale"],
            ...     "ln_f.bias": donor["blocks"]["final_norm"]["bias"],
            ...     "h.0.ln_1.weight": layer["norm_1"]["scale"], "h.0.ln_1.bias": layer["norm_1"]["bias"],
            ...     "h.0.ln_2.weight": layer["norm_2"]["scale"], "h.0.ln_2.bias": layer["norm_2"]["bias"],
            ...     "h.0.attn.c_attn.weight": np.concatenate([a["w_q"], a["w_k"], a["w_v"]], 1),
            ...     "h.0.attn.c_attn.bias": np.concatenate([a["b_q"], a["b_k"], a["b_v"]]),
            ...     "h.0.attn.c_proj.weight": a["w_o"], "h.0.attn.c_proj.bias": a["b_o"],
            ...     "h.0.mlp.c_fc.weight": ffn["w_1"], "h.0.mlp.c_fc.bias": ffn["b_1"],
            ...     "h.0.mlp.c_proj.weight": ffn["w_2"], "h.0.mlp.c_proj.bias": ffn["b_2"]}
            >>> model = GPTLanguageModel.from_hf(state_dict, hf_config, scan_layers=True)
            >>> bool(np.array_equal(model.pure_params()["blocks"]["layers"]["ffn"]["w_1"][0], ffn["w_1"]))
            True
        """
        config = GPT2Config.from_hf(hf_config, scan_layers=scan_layers)
        params = from_hf_gpt2(state_dict, config)
        model = cls(config, rngs=nnx.Rngs(0) if rngs is None else rngs)
        load_pure_params(model, params)
        return model

    @property
    def spec(self) -> TransformerSpec:
        """The blocks' :class:`~seqjax.transformer.TransformerSpec`, used by every call."""
        return self.blocks.spec

    def pure_params(self) -> dict:
        """The whole model as the plain pytree :func:`gpt_forward` takes (class docstring)."""
        params = {"token_embedding": self.token_embedding[...], "blocks": self.blocks.pure_params()}
        if self.position_embedding is not None:
            params["position_embedding"] = self.position_embedding[...]
        if self.lm_head is not None:
            params["lm_head"] = self.lm_head[...]
        return params

    def __call__(
        self, input_ids: jax.Array, *, seq_lengths: jax.Array | None = None,
        dropout_key: jax.Array | None = None, return_attention: bool = False,
    ) -> jax.Array:
        """``input_ids`` ``[b, t]`` -> next-token logits ``[b, t, V]`` (position ``i`` sees tokens
        ``0..i``). ``seq_lengths`` masks right padding (only the padded positions' own outputs
        change: with the causal mask a valid query never reads a later, padded key).
        ``return_attention``: ``(logits, {"self": [n_layer, b, n_head, t, t]})``, the weights
        before dropout (zero above the diagonal), as Hugging Face's ``output_attentions=True``."""
        return gpt_forward(self.spec, self.pure_params(), input_ids, seq_lengths=seq_lengths,
                           embedding_dropout_rate=self.config.embd_pdrop, dropout_key=dropout_key,
                           return_attention=return_attention)

    # --- incremental decoding (KV cache) ---

    def init_cache(self, batch: int, max_len: int | None = None, *, dtype: Any = None) -> dict:
        """An empty KV cache for ``batch`` sequences of up to ``max_len`` positions (default and
        at most ``n_positions``): ``{"k", "v": [b, n_layer, max_len, n_head, d_head], "index": [b]}``,
        the layout of :mod:`seqjax.transformer.cache`. ``dtype``: storage dtype (default the
        model's computation dtype, or float32)."""
        n_positions = self.config.n_positions
        max_len = n_positions if max_len is None else max_len
        _checks.positive_int("max_len", max_len)
        if max_len > n_positions:
            raise ValueError(
                f"max_len = {max_len} exceeds the model's n_positions = {n_positions}: positions past "
                f"{n_positions} have no position embedding."
            )
        return self.blocks.init_cache(batch, max_len, dtype=dtype)

    def prefill(
        self, cache: dict, input_ids: jax.Array, *, seq_lengths: jax.Array | None = None,
    ) -> tuple[dict, jax.Array]:
        """Run ``input_ids`` ``[b, t]`` (a prompt, at positions ``cache["index"]`` on) through the
        model with the cache: ``(cache, logits [b, t, V])``, equal to the full forward pass on
        the whole prefix. ``seq_lengths`` ``[b]``: right-padded prompts (the index advances by
        them, and the next step overwrites the padding). No dropout (inference)."""
        return gpt_forward(self.spec, self.pure_params(), input_ids, seq_lengths=seq_lengths, cache=cache)

    def decode_step(self, cache: dict, tokens: jax.Array) -> tuple[dict, jax.Array]:
        """One decoding step: ``tokens`` ``[b]`` (the latest token of each sequence) ->
        ``(cache, next-token logits [b, V])``."""
        return gpt_step(self.spec, self.pure_params(), cache, tokens)

    def step_fn(self) -> Callable:
        """A pure ``step_fn(cache, tokens) -> (cache, logits)`` with ``self.spec`` and the current
        parameter values bound (a ``functools.partial`` of :func:`gpt_step`: :mod:`seqjax.decoding`
        traces the arrays as arguments, so new parameter values never recompile).

        Example::

            >>> import jax.numpy as jnp
            >>> from flax import nnx
            >>> from seqjax.nn.transformer import GPT2Config, GPTLanguageModel
            >>> model = GPTLanguageModel(GPT2Config(vocab_size=20, n_positions=16, n_embd=8,
            ...                          n_layer=1, n_head=2), rngs=nnx.Rngs(0))
            >>> cache, logits = model.prefill(model.init_cache(2, 16), jnp.ones((2, 3), jnp.int32))
            >>> step = model.step_fn()
            >>> cache, logits = step(cache, jnp.argmax(logits[:, -1], -1))
            >>> logits.shape, cache["index"].tolist()
            ((2, 20), [4, 4])
        """
        return functools.partial(gpt_step, self.spec, self.pure_params())

    def generate(
        self, prompt: jax.Array, max_new_tokens: int, *, prompt_lengths: jax.Array | None = None,
        method: str = "greedy", key: jax.Array | None = None, beam_size: int = 4, eos_id: int | None = None,
        pad_id: int = 0, **options: Any,
    ) -> Generation | BeamSearchResult:
        """Continue ``prompt`` ``[b, p]`` by ``max_new_tokens`` tokens with the KV cache: prefill
        all but each prompt's last token, then :func:`seqjax.decoding.greedy`,
        :func:`~seqjax.decoding.sample` or :func:`~seqjax.decoding.beam_search` over
        :meth:`step_fn`, fed that last token first
        (:func:`seqjax.nn.transformer.generation.run_decoding`; no decoding logic of its own).

        Args:
          prompt: ``[b, p]`` ids, ``p >= 1``; right-padded when ``prompt_lengths`` is given.
          max_new_tokens: tokens to generate; ``p + max_new_tokens - 1 <= n_positions``.
          prompt_lengths: ``[b]`` valid lengths (``>= 1``) of a right-padded ``prompt``.
          method: ``"greedy"``, ``"sample"`` (needs ``key``) or ``"beam"`` (``beam_size`` beams).
          eos_id, pad_id: as the decoding functions.
          options: passed on (``temperature``, ``top_k``, ``top_p``, ``repetition_penalty`` for
            sampling; ``length_penalty``, ``early_stopping``, ``num_return_sequences`` for beams).

        Returns:
          the decoding function's result: :class:`~seqjax.decoding.Generation` (``sequences``
          ``[b, max_new_tokens]``) or :class:`~seqjax.decoding.BeamSearchResult`
          (``[b, n, max_new_tokens]``), the new tokens only.

        Example::

            >>> import jax.numpy as jnp
            >>> from flax import nnx
            >>> from seqjax.nn.transformer import GPT2Config, GPTLanguageModel
            >>> model = GPTLanguageModel(GPT2Config(vocab_size=20, n_positions=16, n_embd=8, n_layer=1,
            ...                                     n_head=2), rngs=nnx.Rngs(0))
            >>> model.generate(jnp.ones((2, 3), jnp.int32), 5).sequences.shape
            (2, 5)
            >>> model.generate(jnp.ones((2, 3), jnp.int32), 5, method="beam", beam_size=3).sequences.shape
            (2, 3, 5)
        """
        _checks.choice("method", method, METHODS)
        _checks.positive_int("max_new_tokens", max_new_tokens)
        prompt = _checks.token_ids("prompt", prompt, self.config.vocab_size)
        b, p = prompt.shape
        if p < 1:
            raise ValueError("prompt must hold at least one token per sequence; got shape (b, 0).")
        if prompt_lengths is None:
            lengths = jnp.full((b,), p, jnp.int32)
        else:
            lengths = _checks.seq_lengths("prompt_lengths", prompt_lengths, batch=b, time=p)
            if not isinstance(lengths, jax.core.Tracer) and int(jnp.min(lengths)) < 1:
                raise ValueError(f"prompt_lengths must be >= 1 (the last prompt token is fed first); got {lengths}.")
        total = p - 1 + max_new_tokens
        if total > self.config.n_positions:
            raise ValueError(f"prompt length {p} + max_new_tokens {max_new_tokens} - 1 = {total} exceeds "
                             f"n_positions = {self.config.n_positions}.")
        cache = self.init_cache(b, total)
        if p > 1:
            cache, _ = self.prefill(cache, prompt[:, :-1], seq_lengths=lengths - 1)
        first = jnp.take_along_axis(prompt, (lengths - 1)[:, None], axis=1)[:, 0]
        return run_decoding(self.step_fn(), cache, first, max_new_tokens, method=method, key=key,
                            beam_size=beam_size, eos_id=eos_id, pad_id=pad_id, **options)
