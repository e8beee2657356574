"""Recurrent encoder-decoder (seq2seq) models as pure functions: the bottleneck baseline and the
attention decoders of Bahdanau et al. (2015) and Luong et al. (2015).

Encoder (every variant): source embeddings ``x_j = E_src[src_j]`` read by a bidirectional LSTM or
GRU (:func:`seqjax.recurrence.bidirectional`, padding respected through ``src_lengths``); the
encoder states ``h_j = [->h_j; <-h_j]`` (``[b, s, 2h]``, zero at padded steps) are the attention
*memory*. The *bridge* turns the final states (the forward state after the last valid step, the
backward state after reading ``x_0``) into the decoder's initial state, one learned linear map and
``tanh`` per carry component (``h``, and ``c`` for the LSTM)::

    s_0 = tanh(W_b [->h_last; <-h_first] + b_b)          (LSTM: also c_0 = tanh(W_bc [->c; <-c] + b_bc))

Decoder, one step per target position, with ``e_i = E_tgt[y_{i-1}]`` the embedding of the previous
(teacher-forced or decoded) token and ``mask`` the source padding (``a_ij = 0`` where padded):

* ``attention="none"`` (the bottleneck baseline, Sutskever et al. 2014 / Cho et al. 2014 without
  the per-step context): the source reaches the decoder *only* through ``s_0``::

      s_i = f(s_{i-1}, e_i);        logits_i = W_o s_i + b_o

* ``attention="bahdanau"`` (Bahdanau et al. 2015): attention is computed from
  the *previous* state ``s_{i-1}`` and the context is part of the cell input::

      e_ij = score(s_{i-1}, h_j)              (default: additive, v^T tanh(W_1 s_{i-1} + W_2 h_j))
      a_ij = exp(e_ij) / sum_{k valid} exp(e_ik)
      c_i  = sum_j a_ij h_j
      s_i  = f(s_{i-1}, [e_i; c_i])
      logits_i = W_o [s_i; c_i; e_i] + b_o

  The paper's readout is a maxout layer on ``U_o s + V_o E y_{i-1} + C_o c_i``; here it is one
  linear layer on the same three inputs (a deep output is left to the user).

* ``attention="luong"`` (Luong et al. 2015, global attention): attention is computed from the
  *current* state ``h_t`` and feeds the output through the attentional hidden state ``h~_t``::

      h_t  = f(h_{t-1}, [e_t; h~_{t-1}])      (input feeding; without it f(h_{t-1}, e_t))
      e_tj = score(h_t, h_j)                  dot: h_t^T h_j; general: h_t^T W_a h_j;
                                              concat: v^T tanh(W_a [h_t; h_j])  (= additive)
      a_tj = exp(e_tj) / sum_{k valid} exp(e_tk);     c_t = sum_j a_tj h_j
      h~_t = tanh(W_c [c_t; h_t])             (no bias, as in the paper)
      logits_t = W_s h~_t + b_s

  ``h~_0 = 0``. The dot score needs ``decoder_features == 2 * hidden_features`` (the default).

For the LSTM, ``s`` in a score or a readout is the hidden state ``h`` of the carry ``(h, c)``.
The score functions are :mod:`seqjax.attention.scores` (``prepare`` runs once per source, outside
the scan) and the softmax is :func:`seqjax.attention.attend` (float32, masked entries exactly 0).

Teacher forcing (:func:`decode`) is one :func:`jax.lax.scan` over target steps (vmapped over the
batch); the target embeddings before it and the output projection after it are single batched
products. Inference uses the *same* step (:func:`decode_step`) on a :class:`DecodeState`, a pytree
whose every leaf has a leading batch axis, so a beam search can reorder hypotheses with
``jax.tree.map(lambda x: x[idx], state)``; it has the order of the decoding contract of
:mod:`seqjax.decoding` (and of the recurrent cell step, state first)::

    step_fn(state, tokens [b]) -> (state, logits [b, V])

Parameter layout (``V_s``/``V_t`` vocabularies, ``e`` embedding, ``h`` encoder hidden per
direction, ``d`` decoder hidden, ``r`` readout width)::

    src_embedding: [V_s, e]          tgt_embedding: [V_t, e]
    encoder:   {"forward": cell params (e -> h), "backward": cell params (e -> h)}
    bridge:    {"h": {"w": [2h, d], "b": [d]}, ("c": {...} for the LSTM)}
    decoder:   cell params, input e (none), e + 2h (bahdanau), e [+ d] (luong [+ input feeding])
    attention: score params (query d, key 2h): additive {w_query, w_key, v}, general {w}, dot {}
    combine:   {"w": [2h + d, d]}    (luong only: W_c)
    output:    {"w": [r, V_t], "b": [V_t]}   r = d (none, luong), d + 2h + e (bahdanau)

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.seq2seq import Seq2SeqSpec, seq2seq_init, forward, init_decode_state, decode_step
    >>> spec = Seq2SeqSpec(10, 12, embed_features=8, hidden_features=8, attention="luong")
    >>> params = seq2seq_init(jax.random.key(0), spec)
    >>> src, tgt = jnp.ones((2, 5), jnp.int32), jnp.ones((2, 4), jnp.int32)
    >>> logits, weights = forward(spec, params, src, jnp.array([5, 3]), tgt)
    >>> logits.shape, weights.shape
    ((2, 4, 12), (2, 4, 5))
    >>> state = init_decode_state(spec, params, src, jnp.array([5, 3]))
    >>> state, step_logits = decode_step(spec, params, state, tgt[:, 0])
    >>> step_logits.shape
    (2, 12)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.primitives import init_weights
from seqjax.primitives import dense, dropout, split_key
from seqjax.attention.masks import sequence_mask
from seqjax.attention.scores import Score, additive, attend, dot, general, scaled_dot
from seqjax.cells import Cell, LSTMState, gru, gru_cho, lstm
from seqjax.recurrence import bidirectional

Params = dict[str, Any]

CELLS: dict[str, Callable[[], Cell]] = {"lstm": lstm, "gru": gru, "gru_cho": gru_cho}
ATTENTIONS = ("bahdanau", "luong", "none")
SCORES: dict[str, Callable[[], Score]] = {
    "additive": additive,
    "concat": additive,  # Luong's name for the same function, v^T tanh(W [q; k])
    "dot": dot,
    "scaled_dot": scaled_dot,
    "general": general,
}
DEFAULT_SCORE = {"bahdanau": "additive", "luong": "general"}


@dataclasses.dataclass(frozen=True)
class Seq2SeqSpec:
    """The static description of a recurrent seq2seq model (hashable: pass it as a static argument).

    Attributes:
      src_vocab_size, tgt_vocab_size: vocabulary sizes.
      embed_features: ``e``, the width of both embeddings.
      hidden_features: ``h``, the encoder's hidden size *per direction* (memory width ``2h``).
      decoder_features: ``d``, the decoder's hidden size; default ``2h`` (so the dot score fits).
      cell: ``"lstm"``, ``"gru"`` (reset-after) or ``"gru_cho"`` (reset-before), for both sides.
      attention: ``"bahdanau"``, ``"luong"`` or ``"none"`` (the bottleneck baseline).
      score: ``"additive"`` (= ``"concat"``), ``"dot"``, ``"scaled_dot"`` or ``"general"``;
        default ``"additive"`` for Bahdanau, ``"general"`` for Luong; must be None without attention.
      input_feeding: Luong only: feed ``h~_{t-1}`` into the next step's input.
      attention_features: width ``a`` of the additive score's hidden layer (default ``2h``).
      dropout_rate: dropout on the embeddings and on the readout features (before the output
        layer), applied only when a ``dropout_key`` is passed to :func:`forward`.
      dtype: computation dtype (parameters stay float32; the attention softmax runs in float32).
      unroll: passed to every :func:`jax.lax.scan`.
    """

    src_vocab_size: int
    tgt_vocab_size: int
    embed_features: int = 32
    hidden_features: int = 32
    decoder_features: int | None = None
    cell: str = "lstm"
    attention: str = "bahdanau"
    score: str | None = None
    input_feeding: bool = True
    attention_features: int | None = None
    dropout_rate: float = 0.0
    dtype: Any = None
    unroll: int = 1

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size", "embed_features", "hidden_features", "unroll"):
            _checks.positive_int(name, getattr(self, name))
        if self.decoder_features is not None:
            _checks.positive_int("decoder_features", self.decoder_features)
        if self.attention_features is not None:
            _checks.positive_int("attention_features", self.attention_features)
        _checks.choice("cell", self.cell, tuple(CELLS))
        _checks.choice("attention", self.attention, ATTENTIONS)
        _checks.probability("dropout_rate", self.dropout_rate)
        if self.dtype is not None:
            object.__setattr__(self, "dtype", jnp.dtype(self.dtype))
        if self.attention == "none":
            if self.score is not None:
                raise ValueError(f"score must be None when attention='none'; got {self.score!r}.")
        else:
            _checks.choice("score", self.score_name, tuple(SCORES))
            if self.score_name in ("dot", "scaled_dot") and self.decoder_hidden != self.memory_features:
                raise ValueError(
                    f"score={self.score_name!r} compares the decoder state (decoder_features = "
                    f"{self.decoder_hidden}) with the encoder states (2 * hidden_features = "
                    f"{self.memory_features}), so they must be equal; use score='general' or "
                    "'additive' for different sizes."
                )

    @property
    def decoder_hidden(self) -> int:
        """``d``: the decoder's hidden size."""
        return 2 * self.hidden_features if self.decoder_features is None else self.decoder_features

    @property
    def memory_features(self) -> int:
        """``2h``: the width of the encoder states (the attention keys and values)."""
        return 2 * self.hidden_features

    @property
    def score_name(self) -> str | None:
        if self.attention == "none":
            return None
        return DEFAULT_SCORE[self.attention] if self.score is None else self.score

    @property
    def feeds_attentional(self) -> bool:
        """Whether ``h~_{t-1}`` is part of the decoder input (Luong input feeding)."""
        return self.attention == "luong" and self.input_feeding

    @property
    def decoder_input_features(self) -> int:
        extra = {
            "none": 0,
            "bahdanau": self.memory_features,  # the context c_i
            "luong": self.decoder_hidden if self.input_feeding else 0,  # h~_{t-1}
        }
        return self.embed_features + extra[self.attention]

    @property
    def readout_features(self) -> int:
        """``r``: the width of the features the output layer reads."""
        if self.attention == "bahdanau":
            return self.decoder_hidden + self.memory_features + self.embed_features
        return self.decoder_hidden

    @property
    def carry_names(self) -> tuple[str, ...]:
        return ("h", "c") if self.cell == "lstm" else ("h",)

    def cell_fn(self) -> Cell:
        return CELLS[self.cell]()

    def score_fn(self) -> Score | None:
        return None if self.attention == "none" else SCORES[self.score_name]()


class DecodeState(NamedTuple):
    """Everything one decoder step needs; every array leaf has the batch as its leading axis.

    Attributes:
      carry: the decoder cell's carry (``LSTMState(h, c)`` or ``h``), each ``[b, d]``.
      attentional: ``h~_{t-1}`` ``[b, d]`` for Luong with input feeding, else None.
      memory: the encoder states ``[b, s, 2h]`` (attention values); None without attention.
      keys: the memory prepared for the score (``Score.prepare``), ``[b, s, .]``; None without
        attention.
      mask: ``[b, s]`` boolean, True at valid source positions; None without attention.
      weights: the attention weights of the last step ``[b, s]`` (zeros before the first step);
        None without attention.
    """

    carry: Any
    attentional: Any = None
    memory: Any = None
    keys: Any = None
    mask: Any = None
    weights: Any = None


# --- parameters ----------------------------------------------------------------------------------


def seq2seq_init(key: jax.Array, spec: Seq2SeqSpec) -> Params:
    """Parameters in the layout of the module docstring.

    The cells use their own init (U(+-1/sqrt(h)), LSTM forget bias 1); the attention score its own
    (Xavier uniform); embeddings, bridge, ``W_c`` and the output layer are Xavier uniform, biases 0.
    Runs as one compiled program (a dozen eager random kernels compile slowly on CPU).
    """
    if not isinstance(spec, Seq2SeqSpec):
        raise ValueError(f"spec must be a Seq2SeqSpec; got {type(spec).__name__}.")
    # Options that do not change the parameters share one compiled init.
    return _init(key, dataclasses.replace(spec, dropout_rate=0.0, dtype=None, unroll=1))


@functools.partial(jax.jit, static_argnums=1)
def _init(key: jax.Array, spec: Seq2SeqSpec) -> Params:
    k_enc, k_dec, k_att, k_dense = jax.random.split(key, 4)
    cell = spec.cell_fn()
    e, h, d, m = spec.embed_features, spec.hidden_features, spec.decoder_hidden, spec.memory_features
    names = ["src_embedding", "tgt_embedding"]
    shapes = [(spec.src_vocab_size, e), (spec.tgt_vocab_size, e)]
    for name in spec.carry_names:
        names.append(("bridge", name))
        shapes.append((m, d))
    if spec.attention == "luong":
        names.append("combine")
        shapes.append((m + d, d))
    names.append("output")
    shapes.append((spec.readout_features, spec.tgt_vocab_size))
    mats = dict(zip(names, init_weights(k_dense, shapes)))
    # Both directions in one vmapped init: half the random kernels to compile.
    encoder = jax.vmap(lambda k: cell.init(k, e, h))(jax.random.split(k_enc))

    params: Params = {
        "src_embedding": mats["src_embedding"],
        "tgt_embedding": mats["tgt_embedding"],
        "encoder": {
            "forward": jax.tree.map(lambda x: x[0], encoder),
            "backward": jax.tree.map(lambda x: x[1], encoder),
        },
        "bridge": {
            n: {"w": mats[("bridge", n)], "b": jnp.zeros((d,), jnp.float32)} for n in spec.carry_names
        },
        "decoder": cell.init(k_dec, spec.decoder_input_features, d),
    }
    if spec.attention != "none":
        score = spec.score_fn()
        if spec.score_name in ("additive", "concat"):
            a = m if spec.attention_features is None else spec.attention_features
            params["attention"] = score.init(k_att, d, m, attention_features=a)
        else:
            params["attention"] = score.init(k_att, d, m)
    if spec.attention == "luong":
        params["combine"] = {"w": mats["combine"]}
    params["output"] = {"w": mats["output"], "b": jnp.zeros((spec.tgt_vocab_size,), jnp.float32)}
    return params


# --- helpers -------------------------------------------------------------------------------------


def _cast(params: Params, dtype) -> Params:
    if dtype is None:
        return params
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)


def _hidden(carry: Any) -> jax.Array:
    """The state ``s`` a score or a readout reads: ``h`` of an LSTM carry, the GRU state itself."""
    return carry.h if isinstance(carry, LSTMState) else carry


def _carry_parts(spec: Seq2SeqSpec, carry: Any) -> dict[str, jax.Array]:
    return {"h": carry.h, "c": carry.c} if spec.cell == "lstm" else {"h": carry}


def _carry_from_parts(spec: Seq2SeqSpec, parts: dict[str, jax.Array]) -> Any:
    return LSTMState(parts["h"], parts["c"]) if spec.cell == "lstm" else parts["h"]


def _compute_dtype(spec: Seq2SeqSpec):
    return jnp.float32 if spec.dtype is None else spec.dtype


# --- encoder and bridge --------------------------------------------------------------------------


def encode(
    spec: Seq2SeqSpec,
    params: Params,
    src_tokens: jax.Array,
    src_lengths: jax.Array | None = None,
    *,
    dropout_key: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, tuple[Any, Any]]:
    """Run the bidirectional encoder.

    Args:
      src_tokens: ``[b, s]`` integer ids.
      src_lengths: ``[b]`` valid lengths (right padding); None: all ``s`` valid.
      dropout_key: enables dropout (``spec.dropout_rate``) on the source embeddings.

    Returns ``(memory [b, s, 2h], mask [b, s], (forward_carry, backward_carry))``: the encoder
    states (zero at padded steps), True at valid positions, and the final carries (forward after
    the last valid step, backward after ``x_0``), each with leading axis ``b``.
    """
    src_tokens = _checks.token_ids("src_tokens", src_tokens, spec.src_vocab_size, layout="[batch, source_time]")
    b, s = src_tokens.shape
    if src_lengths is not None:
        src_lengths = _checks.seq_lengths("src_lengths", src_lengths, batch=b, time=s)
        mask = sequence_mask(src_lengths, s)
    else:
        mask = jnp.ones((b, s), bool)
    dtype = _compute_dtype(spec)
    params = _cast(params, dtype)
    x = jnp.take(params["src_embedding"], src_tokens, axis=0)
    x = dropout(x, spec.dropout_rate, dropout_key)
    final, memory = bidirectional(
        spec.cell_fn(), params["encoder"], x, seq_lengths=src_lengths, return_carry=True,
        unroll=spec.unroll, dtype=dtype,
    )
    return memory, mask, final


def bridge(spec: Seq2SeqSpec, params: Params, final_carry: tuple[Any, Any]) -> Any:
    """The decoder's initial carry from the encoder's final carries, per component ``k``
    (``h``; and ``c`` for the LSTM): ``s0_k = tanh([->k; <-k] W_k + b_k)``."""
    forward, backward = (_carry_parts(spec, c) for c in final_carry)
    p = _cast(params["bridge"], _compute_dtype(spec))
    parts = {
        k: jnp.tanh(dense(jnp.concatenate([forward[k], backward[k]], -1), p[k]["w"], p[k]["b"]))
        for k in spec.carry_names
    }
    return _carry_from_parts(spec, parts)


def decoder_state(
    spec: Seq2SeqSpec, params: Params, memory: jax.Array, mask: jax.Array, final_carry: tuple[Any, Any]
) -> DecodeState:
    """The initial :class:`DecodeState` from :func:`encode`'s results.

    The score's query-independent part (``W_2 h_j`` for additive, ``W_a h_j`` for general) is
    computed here, once per source. Without attention the state holds only the bridged carry:
    ``memory`` is dropped, so the decoder cannot read it.
    """
    carry = bridge(spec, params, final_carry)
    if spec.attention == "none":
        return DecodeState(carry)
    b, s, _ = memory.shape
    d = spec.decoder_hidden
    dtype = _compute_dtype(spec)
    memory = memory.astype(dtype)
    att = _cast(params["attention"], dtype)
    keys = jax.vmap(spec.score_fn().prepare, in_axes=(None, 0))(att, memory)
    attentional = jnp.zeros((b, d), dtype) if spec.feeds_attentional else None
    return DecodeState(carry, attentional, memory, keys, mask, jnp.zeros((b, s), dtype))


def init_decode_state(
    spec: Seq2SeqSpec, params: Params, src_tokens: jax.Array, src_lengths: jax.Array | None = None
) -> DecodeState:
    """:func:`encode` then :func:`decoder_state`: the state before the first target token."""
    memory, mask, final = encode(spec, params, src_tokens, src_lengths)
    return decoder_state(spec, params, memory, mask, final)


# --- decoder -------------------------------------------------------------------------------------


def _step(spec: Seq2SeqSpec, params: Params, state: DecodeState, emb: jax.Array):
    """One decoder step for one sequence (unbatched state, ``emb`` ``[e]``): ``(state, features)``
    with ``features`` ``[r]`` the input of the output layer (see the module docstring)."""
    cell = spec.cell_fn()
    if spec.attention == "none":
        carry, _ = cell.step(params["decoder"], state.carry, emb)
        return state._replace(carry=carry), _hidden(carry)

    score = spec.score_fn().score
    if spec.attention == "bahdanau":
        context, weights = attend(
            score, params["attention"], _hidden(state.carry), state.keys, state.memory, state.mask
        )
        carry, _ = cell.step(params["decoder"], state.carry, jnp.concatenate([emb, context]))
        features = jnp.concatenate([_hidden(carry), context, emb])
        return state._replace(carry=carry, weights=weights), features

    x = jnp.concatenate([emb, state.attentional]) if spec.feeds_attentional else emb
    carry, _ = cell.step(params["decoder"], state.carry, x)
    h = _hidden(carry)
    context, weights = attend(score, params["attention"], h, state.keys, state.memory, state.mask)
    attentional = jnp.tanh(dense(jnp.concatenate([context, h]), params["combine"]["w"]))
    state = state._replace(
        carry=carry, weights=weights, attentional=attentional if spec.feeds_attentional else None
    )
    return state, attentional


def _readout(params: Params, features: jax.Array) -> jax.Array:
    return dense(features, params["output"]["w"], params["output"]["b"])


def _check_state(spec: Seq2SeqSpec, state: Any) -> int:
    if not isinstance(state, DecodeState):
        raise ValueError(f"state must be a DecodeState (from init_decode_state); got {type(state).__name__}.")
    h = _hidden(state.carry)
    if h.ndim != 2 or h.shape[1] != spec.decoder_hidden:
        raise ValueError(
            f"state.carry must be batched [batch, {spec.decoder_hidden}]; got shape {tuple(h.shape)}."
        )
    return h.shape[0]


def decode(
    spec: Seq2SeqSpec,
    params: Params,
    state: DecodeState,
    tgt_in_tokens: jax.Array,
    *,
    dropout_key: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array | None]:
    """Teacher-forced decoding: ``(logits [b, t, V_t], weights [b, t, s] or None)``.

    ``tgt_in_tokens`` ``[b, t]`` is the shifted target (BOS first). One :func:`jax.lax.scan` of the
    decoder step over ``t`` (vmapped over ``b``); the output layer runs once on all steps.
    ``weights`` (None without attention) are the attention weights of every step, for plotting.
    """
    batch = _check_state(spec, state)
    tgt_in_tokens = _checks.token_ids("tgt_in_tokens", tgt_in_tokens, spec.tgt_vocab_size, layout="[batch, target_time]")
    if tgt_in_tokens.shape[0] != batch:
        raise ValueError(
            f"tgt_in_tokens has batch {tgt_in_tokens.shape[0]} but the decoder state has batch {batch}."
        )
    params = _cast(params, _compute_dtype(spec))
    k_emb, k_out = split_key(dropout_key, 2)
    emb = dropout(jnp.take(params["tgt_embedding"], tgt_in_tokens, axis=0), spec.dropout_rate, k_emb)

    def body(state, e):
        state, features = _step(spec, params, state, e)
        return state, (features, state.weights)

    def one(state, embs):
        return jax.lax.scan(body, state, embs, unroll=spec.unroll)[1]

    features, weights = jax.vmap(one)(state, emb)
    features = dropout(features, spec.dropout_rate, k_out)
    return _readout(params, features), weights


def decode_step(
    spec: Seq2SeqSpec, params: Params, state: DecodeState, tokens: jax.Array
) -> tuple[DecodeState, jax.Array]:
    """One inference step: ``tokens`` ``[b]`` (the previous output, BOS first) ->
    ``(state, logits [b, V_t])``. Equals :func:`decode` step by step (no dropout)."""
    batch = _check_state(spec, state)
    tokens = _checks.token_ids("tokens", tokens, spec.tgt_vocab_size, ndim=1, layout="[batch]")
    if tokens.shape[0] != batch:
        raise ValueError(f"tokens has batch {tokens.shape[0]} but the decoder state has batch {batch}.")
    params = _cast(params, _compute_dtype(spec))
    emb = jnp.take(params["tgt_embedding"], tokens, axis=0)
    state, features = jax.vmap(functools.partial(_step, spec, params))(state, emb)
    return state, _readout(params, features)


StepFn = Callable[[DecodeState, jax.Array], tuple[DecodeState, jax.Array]]


def make_step_fn(spec: Seq2SeqSpec, params: Params) -> StepFn:
    """``step_fn(state, tokens [b]) -> (state, logits [b, V_t])`` with ``spec`` and ``params`` bound:
    the contract of the generic decoders (greedy, sampling, beam search)."""
    return functools.partial(decode_step, spec, params)


def forward(
    spec: Seq2SeqSpec,
    params: Params,
    src_tokens: jax.Array,
    src_lengths: jax.Array | None,
    tgt_in_tokens: jax.Array,
    *,
    dropout_key: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array | None]:
    """Teacher-forced training forward pass: ``(logits [b, t, V_t], weights [b, t, s] or None)``."""
    k_enc, k_dec = split_key(dropout_key, 2)
    memory, mask, final = encode(spec, params, src_tokens, src_lengths, dropout_key=k_enc)
    state = decoder_state(spec, params, memory, mask, final)
    return decode(spec, params, state, tgt_in_tokens, dropout_key=k_dec)
