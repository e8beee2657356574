"""Greedy decoding, sampling and beam search over any step function, under ``jax.jit`` with
``jax.lax.while_loop`` (static ``max_len``; the loop stops early once every sequence has ended).

**The contract.** A model decodes through one function::

    step_fn(state, tokens [b]) -> (logits [b, V], state)

``tokens`` holds each sequence's latest token (first call: ``first_tokens``, e.g. BOS or the last
prompt token), ``logits`` the scores of the next one. ``state`` is any pytree whose leaves all have
the batch as leading axis (an RNN carry, a transformer KV cache); it must keep its structure,
shapes and dtypes from step to step. Beam search reorders it with one gather per leaf
(:func:`gather_beams`). The transformer models provide it as ``model.step_fn()`` (with the state
from ``model.init_cache`` / ``model.prefill``), the recurrent seq2seq models likewise.

**Compilation.** Each decoder is one ``jax.jit`` program. Arrays bound into ``step_fn`` with
``functools.partial`` (or ``jax.tree_util.Partial``) are traced arguments, so new parameter values
reuse the compiled program; the function and any non-array bound values (configs, ints) are
static, so the same function recompiles nothing. Arrays a closure (``lambda``) or a bound method
captures become constants of the program: fine for one call, stale if the model changes later.
The decoders also work inside an enclosing ``jax.jit``.

**Outputs.** Generated tokens only (not ``first_tokens``), ``max_len`` of them; after ``eos_id``
a sequence is padded with ``pad_id`` (and ``pad_id`` is what a finished sequence feeds to
``step_fn``, so it must be a valid id). ``lengths`` counts the generated tokens up to and
including the first EOS (``max_len`` without one). Scores are sums of the model's log-softmax
log-probabilities (of the raw logits, before any logits processor) over those tokens.

**Beam search** keeps ``beam_size`` hypotheses per batch element. Each step a live hypothesis
extends with every token (``log p`` added), a finished one (it produced ``eos_id``) only with
``pad_id`` at zero cost, and the best ``beam_size`` of all candidates survive, ranked by
``log p(Y) / lp(|Y|)`` with GNMT's ``lp(n) = ((5 + n) / 6)^alpha`` (``length_penalty = alpha``;
0 ranks by ``log p``). A hypothesis that reaches ``max_len`` without EOS counts as complete.
At the start only beam 0 is live (the others have ``log p = -inf``), so no hypothesis is
duplicated. With ``beam_size >= V^(max_len - 1)`` nothing is ever pruned and the search is
exact (the tests compare it with brute-force enumeration).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.decoding import greedy, sample, beam_search
    >>> table = jax.random.normal(jax.random.key(0), (5, 5))   # a bigram "model" over 5 tokens
    >>> def step_fn(state, tokens):
    ...     return table[tokens] + state, state
    >>> state = jnp.zeros((2, 5))
    >>> greedy(step_fn, state, jnp.array([0, 1]), 4, eos_id=4).sequences.shape
    (2, 4)
    >>> sample(step_fn, state, jnp.array([0, 1]), 4, jax.random.key(1), top_p=0.9).sequences.shape
    (2, 4)
    >>> out = beam_search(step_fn, state, jnp.array([0, 1]), 4, beam_size=3, length_penalty=0.6, eos_id=4)
    >>> out.sequences.shape, out.scores.shape
    ((2, 3, 4), (2, 3))
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks
from seqjax.decoding.processors import (
    length_penalty as _length_penalty,
    repetition_penalty as _repetition_penalty,
    seen_tokens,
    temperature_scale,
    top_k_filter,
    top_p_filter,
)

StepFn = Callable[[Any, jax.Array], tuple[jax.Array, Any]]


class Generation(NamedTuple):
    """The result of :func:`greedy` and :func:`sample`.

    Attributes:
      sequences: ``[b, max_len]`` int32 generated tokens, ``pad_id`` after EOS.
      lengths: ``[b]`` int32, tokens up to and including the first EOS (``max_len`` without one).
      scores: ``[b]`` float32, the sum of the model's log-probabilities of those tokens.
      state: the state after the last ``step_fn`` call (the last generated token not yet fed).
    """

    sequences: jax.Array
    lengths: jax.Array
    scores: jax.Array
    state: Any


class BeamSearchResult(NamedTuple):
    """The result of :func:`beam_search`, best hypothesis first.

    Attributes:
      sequences: ``[b, beam_size, max_len]`` int32 tokens, ``pad_id`` after EOS.
      scores: ``[b, beam_size]`` float32 ranking scores ``log_probs / lp(lengths)``, descending.
      lengths: ``[b, beam_size]`` int32, tokens up to and including EOS.
      log_probs: ``[b, beam_size]`` float32, the sum of the model's log-probabilities.
    """

    sequences: jax.Array
    scores: jax.Array
    lengths: jax.Array
    log_probs: jax.Array


# --- step functions as static + dynamic parts ---------------------------------------------------------


class _Dynamic:
    """Marks the places of the traced arrays among a step function's leaves."""

    def __repr__(self) -> str:
        return "<dynamic>"


_DYNAMIC = _Dynamic()


class _ByIdentity:
    """A step function that cannot be split or hashed by value: static by identity."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __hash__(self) -> int:
        return id(self.fn)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _ByIdentity) and other.fn is self.fn


def _is_array(leaf: Any) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, np.generic))


def _split_step_fn(step_fn: Any) -> tuple[Any, list]:
    """``step_fn`` -> (a hashable static spec, its array leaves): a ``functools.partial``'s
    bound arrays become traced arguments of the jitted decoder, not baked-in constants."""
    if not callable(step_fn):
        raise ValueError(
            f"step_fn must be callable as step_fn(state, tokens) -> (logits, state); got {type(step_fn).__name__}."
        )
    if type(step_fn) is functools.partial:
        step_fn = jax.tree_util.Partial(step_fn.func, *step_fn.args, **step_fn.keywords)
    leaves, treedef = jax.tree.flatten(step_fn)
    dynamic = [leaf if _is_array(leaf) else None for leaf in leaves]
    spec = (treedef, tuple(_DYNAMIC if _is_array(leaf) else leaf for leaf in leaves))
    try:
        hash(spec)
    except TypeError:
        return _ByIdentity(step_fn), []
    return spec, dynamic


def _join_step_fn(spec: Any, dynamic: list) -> StepFn:
    if isinstance(spec, _ByIdentity):
        return spec.fn
    treedef, static = spec
    return jax.tree.unflatten(treedef, [d if s is _DYNAMIC else s for s, d in zip(static, dynamic)])


# --- checks -------------------------------------------------------------------------------------------


def _first_tokens(first_tokens: Any) -> jax.Array:
    first_tokens = _checks.integer_array("first_tokens", first_tokens)
    if first_tokens.ndim != 1 or first_tokens.shape[0] == 0:
        raise ValueError(f"first_tokens must have shape [batch] (batch >= 1); got {tuple(first_tokens.shape)}.")
    return first_tokens.astype(jnp.int32)


def _token_option(name: str, value: Any, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer token id{' or None' if allow_none else ''}; got {value!r}.")


def _float_option(name: str, value: Any, low: float, high: float, *, low_open: bool) -> jax.Array:
    if isinstance(value, jax.core.Tracer):
        return jnp.asarray(value, jnp.float32)
    v = np.asarray(value)
    if v.shape != () or not np.issubdtype(v.dtype, np.number):
        raise ValueError(f"{name} must be a number; got {value!r}.")
    f = float(v)
    ok = np.isfinite(f) and (f > low if low_open else f >= low) and f <= high
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must lie in {interval}; got {f}.")
    return jnp.asarray(f, jnp.float32)


def _check_step(step_fn: StepFn, state: Any, tokens: jax.Array, *, eos_id, pad_id) -> int:
    """Trace ``step_fn`` once on shapes; check the contract; return the vocabulary size."""
    b = tokens.shape[0]
    try:
        logits, new_state = jax.eval_shape(step_fn, state, tokens)
    except (TypeError, ValueError) as error:
        if "too many values to unpack" in str(error) or "not enough values" in str(error):
            raise ValueError("step_fn must return a pair (logits [b, V], state).") from error
        raise
    if not hasattr(logits, "shape") or len(logits.shape) != 2 or logits.shape[0] != b \
            or not jnp.issubdtype(logits.dtype, jnp.floating):
        raise ValueError(
            f"step_fn must return floating logits [batch, vocab] with batch {b}; got "
            f"{getattr(logits, 'dtype', type(logits).__name__)} {tuple(getattr(logits, 'shape', ()))}."
        )
    before, after = jax.tree.structure(state), jax.tree.structure(new_state)
    if before != after:
        raise ValueError(f"step_fn must return a state with the structure of its input; got {after}, expected {before}.")
    for old, new in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
        if tuple(old.shape) != tuple(new.shape) or jnp.dtype(old.dtype) != jnp.dtype(new.dtype):
            raise ValueError(
                "step_fn must keep the state's shapes and dtypes (a loop carry); a leaf went from "
                f"{jnp.dtype(old.dtype)} {tuple(old.shape)} to {jnp.dtype(new.dtype)} {tuple(new.shape)}."
            )
    vocab = logits.shape[1]
    for name, value in (("eos_id", eos_id), ("pad_id", pad_id)):
        if value is not None and value >= vocab:
            raise ValueError(f"{name} must be a token id below the vocabulary size {vocab}; got {value}.")
    return vocab


def _check_batched_state(state: Any, batch: int) -> None:
    for leaf in jax.tree.leaves(state):
        shape = tuple(np.shape(leaf))
        if not shape or shape[0] != batch:
            raise ValueError(
                f"every leaf of state must have the batch ({batch}) as leading axis (beams are "
                f"reordered along it); got a leaf of shape {shape}."
            )


# --- greedy and sampling ------------------------------------------------------------------------------


def _generate(step_fn, state, first_tokens, pick, *, max_len, eos_id, pad_id, seen) -> Generation:
    b = first_tokens.shape[0]
    carry = (jnp.zeros((), jnp.int32), state, first_tokens, jnp.zeros((b,), bool),
             jnp.full((b, max_len), pad_id, jnp.int32), jnp.zeros((b,), jnp.int32), jnp.zeros((b,), jnp.float32), seen)

    def cond(c):
        return (c[0] < max_len) & ~jnp.all(c[3])

    def body(c):
        t, state, tokens, finished, seqs, lengths, scores, seen = c
        logits, state = step_fn(state, tokens)
        logits = logits.astype(jnp.float32)
        chosen = jnp.where(finished, pad_id, pick(logits, t, seen).astype(jnp.int32))
        log_p = jnp.take_along_axis(jax.nn.log_softmax(logits), chosen[:, None], axis=-1)[:, 0]
        scores = scores + jnp.where(finished, 0.0, log_p)
        lengths = lengths + (~finished).astype(jnp.int32)
        seqs = jax.lax.dynamic_update_slice(seqs, chosen[:, None], (jnp.zeros((), jnp.int32), t))
        if seen is not None:
            seen = seen.at[jnp.arange(b), chosen].set(True)
        if eos_id is not None:
            finished = finished | (chosen == eos_id)
        return t + 1, state, chosen, finished, seqs, lengths, scores, seen

    _, state, _, _, seqs, lengths, scores, _ = jax.lax.while_loop(cond, body, carry)
    return Generation(seqs, lengths, scores, state)


@functools.partial(jax.jit, static_argnames=("spec", "max_len", "eos_id", "pad_id"))
def _greedy(spec, dynamic, state, first_tokens, *, max_len, eos_id, pad_id):
    step_fn = _join_step_fn(spec, dynamic)
    _check_step(step_fn, state, first_tokens, eos_id=eos_id, pad_id=pad_id)
    pick = lambda logits, t, seen: jnp.argmax(logits, axis=-1)  # noqa: E731
    return _generate(step_fn, state, first_tokens, pick, max_len=max_len, eos_id=eos_id, pad_id=pad_id, seen=None)


def greedy(
    step_fn: StepFn,
    state: Any,
    first_tokens: jax.Array,
    max_len: int,
    *,
    eos_id: int | None = None,
    pad_id: int = 0,
) -> Generation:
    """Greedy decoding: ``y_n = argmax_v logits_n[v]`` (ties: the lowest id), ``max_len`` steps or
    until every sequence has produced ``eos_id``.

    Args:
      step_fn: ``step_fn(state, tokens [b]) -> (logits [b, V], state)`` (module docstring).
      state: the initial state (a pytree).
      first_tokens: ``[b]`` integer ids fed first (BOS, or the last prompt token).
      max_len: number of tokens to generate (static).
      eos_id: the end-of-sequence id, or None (always ``max_len`` tokens).
      pad_id: fills the sequences after EOS and is fed to ``step_fn`` for finished ones.

    Returns:
      :class:`Generation` ``(sequences [b, max_len], lengths [b], scores [b], state)``.
    """
    _checks.positive_int("max_len", max_len)
    _token_option("eos_id", eos_id, True)
    _token_option("pad_id", pad_id, False)
    spec, dynamic = _split_step_fn(step_fn)
    return _greedy(spec, dynamic, state, _first_tokens(first_tokens), max_len=int(max_len),
                   eos_id=None if eos_id is None else int(eos_id), pad_id=int(pad_id))


@functools.partial(jax.jit, static_argnames=("spec", "max_len", "eos_id", "pad_id", "top_k", "use_top_p", "use_penalty"))
def _sample(spec, dynamic, state, first_tokens, key, temperature, top_p, penalty, context, *,
            max_len, eos_id, pad_id, top_k, use_top_p, use_penalty):
    step_fn = _join_step_fn(spec, dynamic)
    vocab = _check_step(step_fn, state, first_tokens, eos_id=eos_id, pad_id=pad_id)
    if top_k is not None and top_k > vocab:
        raise ValueError(f"top_k must be at most the vocabulary size {vocab}; got {top_k}.")
    seen = None
    if use_penalty:
        seen = seen_tokens(first_tokens, vocab)
        if context is not None:
            seen = seen | seen_tokens(context, vocab)

    def pick(logits, t, seen):
        if use_penalty:
            logits = _repetition_penalty(logits, seen, penalty)
        logits = temperature_scale(logits, temperature)
        if top_k is not None:
            logits = top_k_filter(logits, top_k)
        if use_top_p:
            logits = top_p_filter(logits, top_p)
        return jax.random.categorical(jax.random.fold_in(key, t), logits, axis=-1)

    return _generate(step_fn, state, first_tokens, pick, max_len=max_len, eos_id=eos_id, pad_id=pad_id, seen=seen)


def sample(
    step_fn: StepFn,
    state: Any,
    first_tokens: jax.Array,
    max_len: int,
    key: jax.Array,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    context_tokens: jax.Array | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
) -> Generation:
    """Ancestral sampling ``y_n ~ softmax(process(logits_n))`` with the logits processors of
    :mod:`seqjax.decoding.processors`, in the order repetition penalty, temperature, top-k, top-p.

    Args:
      step_fn, state, first_tokens, max_len, eos_id, pad_id: as :func:`greedy`.
      key: a ``jax.random`` key (any implementation); step ``n`` draws with
        ``jax.random.fold_in(key, n)``, so the same key gives the same samples.
      temperature: ``> 0``; small values approach greedy decoding.
      top_k: keep the ``k`` most probable tokens (None: all).
      top_p: nucleus sampling, ``0 < p <= 1`` (None: off).
      repetition_penalty: CTRL's penalty ``> 0`` (None or 1: off) on the tokens already in the
        sequence: ``first_tokens``, ``context_tokens`` and everything generated.
      context_tokens: ``[b, t]`` ids that count as seen for the penalty (the prompt).

    Returns:
      :class:`Generation`; ``scores`` are the model's (unprocessed) log-probabilities.
    """
    _checks.positive_int("max_len", max_len)
    _token_option("eos_id", eos_id, True)
    _token_option("pad_id", pad_id, False)
    first_tokens = _first_tokens(first_tokens)
    if key is None:
        raise ValueError("key must be a jax.random key; got None.")
    temperature = _float_option("temperature", temperature, 0.0, np.inf, low_open=True)
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None; got {top_k!r}.")
    use_top_p = top_p is not None
    top_p = _float_option("top_p", top_p, 0.0, 1.0, low_open=True) if use_top_p else jnp.ones((), jnp.float32)
    use_penalty = repetition_penalty is not None
    penalty = (_float_option("repetition_penalty", repetition_penalty, 0.0, np.inf, low_open=True)
               if use_penalty else jnp.ones((), jnp.float32))
    if context_tokens is not None:
        context_tokens = _checks.integer_array("context_tokens", context_tokens)
        if context_tokens.ndim != 2 or context_tokens.shape[0] != first_tokens.shape[0]:
            raise ValueError(
                f"context_tokens must have shape [batch, time] with batch {first_tokens.shape[0]}; "
                f"got {tuple(context_tokens.shape)}."
            )
        if not use_penalty:
            context_tokens = None
    spec, dynamic = _split_step_fn(step_fn)
    return _sample(spec, dynamic, state, first_tokens, key, temperature, top_p, penalty, context_tokens,
                   max_len=int(max_len), eos_id=None if eos_id is None else int(eos_id), pad_id=int(pad_id),
                   top_k=None if top_k is None else int(top_k), use_top_p=use_top_p, use_penalty=use_penalty)


# --- beam search --------------------------------------------------------------------------------------


def tile_beams(state: Any, beam_size: int) -> Any:
    """Repeat every leaf of ``state`` ``beam_size`` times along the batch axis: row ``i * k + j``
    is beam ``j`` of batch element ``i``."""
    return jax.tree.map(lambda x: jnp.repeat(x, beam_size, axis=0), state)


def gather_beams(state: Any, indices: jax.Array) -> Any:
    """Reorder the flat ``[b * k, ...]`` leaves of ``state`` by ``indices`` ``[b * k]`` (the
    surviving hypotheses' parents): one gather per leaf."""
    return jax.tree.map(lambda x: jnp.take(x, indices, axis=0), state)


@functools.partial(jax.jit, static_argnames=("spec", "max_len", "beam_size", "eos_id", "pad_id"))
def _beam_search(spec, dynamic, state, first_tokens, alpha, *, max_len, beam_size, eos_id, pad_id):
    step_fn = _join_step_fn(spec, dynamic)
    b, k = first_tokens.shape[0], beam_size
    state = tile_beams(state, k)
    tokens = jnp.repeat(first_tokens, k)
    vocab = _check_step(step_fn, state, tokens, eos_id=eos_id, pad_id=pad_id)
    log_probs = jnp.broadcast_to(jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf), (b, k)).astype(jnp.float32)
    carry = (jnp.zeros((), jnp.int32), state, tokens, log_probs, jnp.zeros((b, k), bool),
             jnp.zeros((b, k), jnp.int32), jnp.full((b, k, max_len), pad_id, jnp.int32), log_probs)
    is_pad = jnp.arange(vocab) == pad_id
    rows = jnp.arange(b)[:, None] * k

    def cond(c):
        t, _, _, log_probs, finished = c[:5]
        return (t < max_len) & jnp.any(~finished & (log_probs > -jnp.inf))

    def body(c):
        t, state, tokens, log_probs, finished, lengths, seqs, _ = c
        logits, state = step_fn(state, tokens)
        step_lp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1).reshape(b, k, vocab)
        extend = log_probs[..., None] + step_lp
        stay = jnp.where(is_pad, log_probs[..., None], -jnp.inf)  # finished: pad only, at zero cost
        candidates = jnp.where(finished[..., None], stay, extend).reshape(b, k * vocab)
        cand_lengths = jnp.where(finished, lengths, t + 1)
        rank = candidates / jnp.repeat(_length_penalty(cand_lengths, alpha), vocab, axis=1)
        scores, flat = jax.lax.top_k(rank, k)
        parent, token = flat // vocab, (flat % vocab).astype(jnp.int32)
        parent_finished = jnp.take_along_axis(finished, parent, axis=1)
        lengths = jnp.where(parent_finished, jnp.take_along_axis(lengths, parent, axis=1), t + 1)
        finished = parent_finished if eos_id is None else parent_finished | (token == eos_id)
        log_probs = jnp.take_along_axis(candidates, flat, axis=1)
        seqs = jnp.take_along_axis(seqs, parent[..., None], axis=1)
        seqs = jax.lax.dynamic_update_slice(seqs, token[..., None], (jnp.zeros((), jnp.int32),) * 2 + (t,))
        state = gather_beams(state, (rows + parent).reshape(-1))
        return t + 1, state, token.reshape(-1), log_probs, finished, lengths, seqs, scores

    _, _, _, log_probs, _, lengths, seqs, scores = jax.lax.while_loop(cond, body, carry)
    return BeamSearchResult(seqs, scores, lengths, log_probs)


def beam_search(
    step_fn: StepFn,
    state: Any,
    first_tokens: jax.Array,
    max_len: int,
    beam_size: int,
    *,
    length_penalty: float = 0.0,
    eos_id: int | None = None,
    pad_id: int = 0,
) -> BeamSearchResult:
    """Batched beam search (module docstring): the ``beam_size`` best hypotheses of each batch
    element by ``log p(Y) / ((5 + |Y|) / 6)^length_penalty``.

    Args:
      step_fn, first_tokens, max_len, eos_id, pad_id: as :func:`greedy`.
      state: the initial state; every leaf must have the batch ``b`` as leading axis (it is
        tiled to ``b * beam_size`` rows, beam ``j`` of element ``i`` in row ``i * beam_size + j``).
      beam_size: hypotheses kept per batch element (static).
      length_penalty: GNMT's ``alpha`` (0: rank by log-probability; 0.6 - 1 favours longer output).

    Returns:
      :class:`BeamSearchResult` ``(sequences [b, k, max_len], scores [b, k], lengths [b, k],
      log_probs [b, k])``, best first. With ``beam_size = 1`` it is greedy decoding.
    """
    _checks.positive_int("max_len", max_len)
    _checks.positive_int("beam_size", beam_size)
    _token_option("eos_id", eos_id, True)
    _token_option("pad_id", pad_id, False)
    first_tokens = _first_tokens(first_tokens)
    _check_batched_state(state, first_tokens.shape[0])
    alpha = _float_option("length_penalty", length_penalty, -np.inf, np.inf, low_open=True)
    spec, dynamic = _split_step_fn(step_fn)
    return _beam_search(spec, dynamic, state, first_tokens, alpha, max_len=int(max_len), beam_size=int(beam_size),
                        eos_id=None if eos_id is None else int(eos_id), pad_id=int(pad_id))
