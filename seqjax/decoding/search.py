"""Greedy decoding, sampling and beam search over any step function, under ``jax.jit`` with
``jax.lax.while_loop`` (static ``max_len``; the loop stops early once every sequence has ended).

**The contract.** A model decodes through one function, in the argument and result order of the
recurrent cell step ``step(params, carry, x) -> (carry, y)``::

    step_fn(state, tokens [b]) -> (state, logits [b, V])

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
a sequence is padded with ``pad_id``. ``lengths`` counts the generated tokens up to and including
the first EOS (``max_len`` without one). Scores are sums of the model's log-softmax
log-probabilities (of the raw logits, before any logits processor) over those tokens. In
:func:`greedy` and :func:`sample` a finished sequence feeds ``pad_id`` to ``step_fn`` (so it
must be a valid id) until every sequence has finished.

**KV caches.** ``step_fn`` is called at most ``max_len`` times: with ``first_tokens``, then with
every generated token but the last. When ``state`` is, or holds at its top level (a dict value,
a tuple element), a KV cache of :mod:`seqjax.transformer.cache` (a dict with ``"k"``
``[b, L, T, ...]`` and ``"index"`` ``[b]``), those calls write the positions ``index .. index +
max_len - 1``, so the decoders require ``max(index) + max_len <= T`` (the capacity) and raise a
``ValueError`` naming both otherwise, instead of letting the writes past the end be clamped.
The check needs a concrete ``index``: inside an enclosing ``jax.jit`` it is the caller's.

**Beam search** follows Hugging Face ``generate(num_beams=k)`` (the vectorized beam search of
``transformers`` 4.53 and later; the parity tests run a converted GPT-2 against 5.24). It keeps
``k`` *live* beams and, apart from them, a set of at most ``k`` *finished* hypotheses. Each step:

1. every live beam extends with every token: ``log p(beam) + log p(token | beam)``; the ``2k``
   best of the ``k V`` candidates are kept (``2k``: even if ``k`` of them end, ``k`` remain);
2. a candidate *ends* if its token is ``eos_id`` or it reaches ``max_len`` tokens; the best
   ``k`` candidates that do not end become the next live beams (the state is reordered to their
   parents with one gather of the batch axis);
3. an ending candidate among the best ``k`` of the ``2k`` joins the finished set with the score
   ``log p(Y) / |Y| ** length_penalty``, and the set keeps its ``k`` best. ``|Y|`` is the number
   of generated tokens, EOS included, the prompt *not* counted (Hugging Face subtracts the prompt
   length, ``decoder_prompt_len``, for decoder-only models too); ``length_penalty > 0`` favours
   longer, ``< 0`` shorter hypotheses, ``0`` ranks by ``log p``.

``early_stopping`` decides when a batch element is done (the loop ends when all are, or after
``max_len`` steps): ``True``: as soon as ``k`` hypotheses have finished; ``False`` (Hugging
Face's default): when ``k`` have finished and the best live beam, scored at its *current* length,
``log p(best) / n ** length_penalty``, does not beat the worst finished one (a heuristic: with
``length_penalty > 0`` a longer continuation could still win); ``"never"``: the same test with
the bound a live beam can reach, its length taken as ``max_len`` when ``length_penalty > 0``
(log-probabilities only fall, so this is exact: no hypothesis that could enter the finished set
is pruned by it). A done element adds no more hypotheses. A hypothesis that reaches ``max_len``
without EOS finishes there. At the start only beam 0 is live, so no hypothesis is duplicated.

The results are the finished hypotheses, best first: ``num_return_sequences`` (default ``k``) of
them, with their scores, lengths and log-probabilities; a slot never filled (possible only when
fewer than ``k`` hypotheses can exist) has score ``-inf``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.decoding import greedy, sample, beam_search
    >>> table = jax.random.normal(jax.random.key(0), (5, 5))   # a bigram "model" over 5 tokens
    >>> def step_fn(state, tokens):
    ...     return state, table[tokens] + state
    >>> state = jnp.zeros((2, 5))
    >>> greedy(step_fn, state, jnp.array([0, 1]), 4, eos_id=4).sequences.shape
    (2, 4)
    >>> sample(step_fn, state, jnp.array([0, 1]), 4, jax.random.key(1), top_p=0.9).sequences.shape
    (2, 4)
    >>> out = beam_search(step_fn, state, jnp.array([0, 1]), 4, beam_size=3, length_penalty=1.0, eos_id=4)
    >>> out.sequences.shape, out.scores.shape
    ((2, 3, 4), (2, 3))
    >>> bool((out.scores[:, :-1] >= out.scores[:, 1:]).all())   # best first
    True
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks
from seqjax.decoding.processors import (
    repetition_penalty as _repetition_penalty,
    seen_tokens,
    temperature_scale,
    top_k_filter,
    top_p_filter,
)

StepFn = Callable[[Any, jax.Array], tuple[Any, jax.Array]]


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
    """The result of :func:`beam_search`: the finished hypotheses, best first (``n`` of them,
    ``num_return_sequences``).

    Attributes:
      sequences: ``[b, n, max_len]`` int32 generated tokens, ``pad_id`` after EOS.
      scores: ``[b, n]`` float32 ``log_probs / lengths ** length_penalty``, descending (Hugging
        Face's ``sequences_scores``); ``-inf`` in a slot never filled.
      lengths: ``[b, n]`` int32 generated tokens, EOS included (0 in a slot never filled).
      log_probs: ``[b, n]`` float32, the sum of the model's log-probabilities of those tokens.
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
            f"step_fn must be callable as step_fn(state, tokens) -> (state, logits); got {type(step_fn).__name__}."
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


def _is_array_like(leaf: Any) -> bool:
    return hasattr(leaf, "shape") and hasattr(leaf, "dtype")


def _matches_state(state: Any, other: Any) -> bool:
    """Whether ``other`` has the structure, shapes and dtypes of ``state``."""
    if jax.tree.structure(state) != jax.tree.structure(other):
        return False
    return all(_is_array_like(new) and tuple(np.shape(old)) == tuple(new.shape)
               and jnp.result_type(old) == jnp.dtype(new.dtype)
               for old, new in zip(jax.tree.leaves(state), jax.tree.leaves(other)))


def _check_step(step_fn: StepFn, state: Any, tokens: jax.Array, *, eos_id, pad_id) -> int:
    """Trace ``step_fn`` once on shapes; check the contract; return the vocabulary size."""
    b = tokens.shape[0]
    contract = "step_fn(state, tokens [b]) -> (state, logits [b, V])"
    try:
        out = jax.eval_shape(step_fn, state, tokens)
    except (TypeError, ValueError) as error:
        if "too many values to unpack" in str(error) or "not enough values" in str(error):
            raise ValueError(f"step_fn must return a pair (state, logits [b, V]): {contract}.") from error
        raise
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError(f"step_fn must return a pair (state, logits [b, V]): {contract}; got {type(out).__name__}.")
    new_state, logits = out
    if not _matches_state(state, new_state) and _matches_state(state, logits):
        raise ValueError(
            f"step_fn returned (logits, state); the contract is {contract}: the state first, as in "
            "the recurrent cell step (carry, y)."
        )
    if not _is_array_like(logits) or len(logits.shape) != 2 or logits.shape[0] != b \
            or not jnp.issubdtype(logits.dtype, jnp.floating):
        raise ValueError(
            f"step_fn must return floating logits [batch, vocab] with batch {b} ({contract}); got "
            f"{getattr(logits, 'dtype', type(logits).__name__)} {tuple(getattr(logits, 'shape', ()))}."
        )
    before, after = jax.tree.structure(state), jax.tree.structure(new_state)
    if before != after:
        raise ValueError(f"step_fn must return a state with the structure of its input; got {after}, expected {before}.")
    for old, new in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
        if tuple(np.shape(old)) != tuple(new.shape) or jnp.result_type(old) != jnp.dtype(new.dtype):
            raise ValueError(
                "step_fn must keep the state's shapes and dtypes (a loop carry); a leaf went from "
                f"{jnp.result_type(old)} {tuple(np.shape(old))} to {jnp.dtype(new.dtype)} {tuple(new.shape)}."
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


def _is_kv_cache(node: Any) -> bool:
    """A cache of :mod:`seqjax.transformer.cache`: ``"k"`` ``[b, L, T, ...]``, ``"index"`` ``[b]``."""
    if not isinstance(node, Mapping) or "k" not in node or "index" not in node:
        return False
    k, index = node["k"], node["index"]
    return _is_array_like(k) and _is_array_like(index) and len(k.shape) >= 3 and len(index.shape) == 1


def _kv_caches(state: Any) -> list:
    """The KV caches ``state`` is or holds at its top level (dict values, tuple or list elements)."""
    if _is_kv_cache(state):
        return [state]
    if isinstance(state, Mapping):
        children = list(state.values())
    elif isinstance(state, (tuple, list)):
        children = list(state)
    else:
        return []
    return [child for child in children if _is_kv_cache(child)]


def _check_cache_room(state: Any, max_len: int) -> None:
    """``step_fn`` runs at most ``max_len`` times, writing cache positions ``index .. index +
    max_len - 1``: refuse a cache without room for them (a write past the end would be clamped)."""
    for cache in _kv_caches(state):
        index = cache["index"]
        if isinstance(index, jax.core.Tracer) or not np.size(index):
            continue
        capacity = int(cache["k"].shape[2])
        start = int(np.max(np.asarray(index)))
        if start + max_len > capacity:
            raise ValueError(
                f"max_len = {max_len} tokens do not fit in the KV cache: decoding feeds {max_len} "
                f"tokens, at positions {start} .. {start + max_len - 1}, but the cache holds "
                f"{capacity} positions ({max(capacity - start, 0)} left after index {start}). Build the "
                f"cache with max_len >= {start + max_len} (init_cache) or decode at most "
                f"{max(capacity - start, 0)} tokens."
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
        state, logits = step_fn(state, tokens)
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
      step_fn: ``step_fn(state, tokens [b]) -> (state, logits [b, V])`` (module docstring).
      state: the initial state (a pytree); a KV cache in it must have room for ``max_len`` more
        positions (module docstring).
      first_tokens: ``[b]`` integer ids fed first (BOS, or the last prompt token).
      max_len: number of tokens to generate (static).
      eos_id: the end-of-sequence id, or None (always ``max_len`` tokens).
      pad_id: fills the sequences after EOS and is fed to ``step_fn`` for finished ones.

    Returns:
      :class:`Generation` ``(sequences [b, max_len], lengths [b], scores [b], state)``.

    Example::

        >>> import jax.numpy as jnp
        >>> from seqjax.decoding import greedy
        >>> step_fn = lambda state, tokens: (state, jnp.eye(3)[(tokens + 1) % 3])   # 0 -> 1 -> 2 -> 0
        >>> greedy(step_fn, jnp.zeros((1,)), jnp.array([0]), 4).sequences.tolist()
        [[1, 2, 0, 1]]
    """
    _checks.positive_int("max_len", max_len)
    _token_option("eos_id", eos_id, True)
    _token_option("pad_id", pad_id, False)
    first_tokens = _first_tokens(first_tokens)
    _check_cache_room(state, int(max_len))
    spec, dynamic = _split_step_fn(step_fn)
    return _greedy(spec, dynamic, state, first_tokens, max_len=int(max_len),
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
      top_p: nucleus sampling, ``0 < p <= 1`` (None or 1: off).
      repetition_penalty: CTRL's penalty ``> 0`` (None or 1: off) on the tokens already in the
        sequence: ``first_tokens``, ``context_tokens`` and everything generated.
      context_tokens: ``[b, t]`` ids that count as seen for the penalty (the prompt).

    Returns:
      :class:`Generation`; ``scores`` are the model's (unprocessed) log-probabilities.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from seqjax.decoding import sample
        >>> step_fn = lambda state, tokens: (state, jnp.log(jnp.array([[0.7, 0.2, 0.1]] * 2)))
        >>> out = sample(step_fn, jnp.zeros((2,)), jnp.array([0, 0]), 5, jax.random.key(0), top_k=1)
        >>> out.sequences.tolist()    # top_k = 1: the argmax every time
        [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
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
    if use_top_p and not isinstance(top_p, jax.core.Tracer) and float(top_p) >= 1.0:
        use_top_p = False  # the nucleus of p = 1 is the whole vocabulary
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
    _check_cache_room(state, int(max_len))
    spec, dynamic = _split_step_fn(step_fn)
    return _sample(spec, dynamic, state, first_tokens, key, temperature, top_p, penalty, context_tokens,
                   max_len=int(max_len), eos_id=None if eos_id is None else int(eos_id), pad_id=int(pad_id),
                   top_k=None if top_k is None else int(top_k), use_top_p=use_top_p, use_penalty=use_penalty)


# --- beam search --------------------------------------------------------------------------------------

EARLY_STOPPING = (True, False, "never")
"""The values of ``beam_search(early_stopping=...)``, as Hugging Face ``generate``."""


def tile_beams(state: Any, beam_size: int) -> Any:
    """Repeat every leaf of ``state`` ``beam_size`` times along the batch axis: row ``i * k + j``
    is beam ``j`` of batch element ``i``."""
    return jax.tree.map(lambda x: jnp.repeat(x, beam_size, axis=0), state)


def gather_beams(state: Any, indices: jax.Array) -> Any:
    """Reorder the flat ``[b * k, ...]`` leaves of ``state`` by ``indices`` ``[b * k]`` (the
    surviving hypotheses' parents): one gather per leaf."""
    return jax.tree.map(lambda x: jnp.take(x, indices, axis=0), state)


def _take(x: jax.Array, indices: jax.Array) -> jax.Array:
    """``x`` ``[b, m, ...]`` at ``indices`` ``[b, n]`` along axis 1: ``[b, n, ...]``."""
    return jnp.take_along_axis(x, indices.reshape(indices.shape + (1,) * (x.ndim - 2)), axis=1)


@functools.partial(jax.jit, static_argnames=("spec", "max_len", "beam_size", "eos_id", "pad_id",
                                             "num_return_sequences"))
def _beam_search(spec, dynamic, state, first_tokens, alpha, stop_when_full, exact_bound, *, max_len, beam_size,
                 eos_id, pad_id, num_return_sequences):
    step_fn = _join_step_fn(spec, dynamic)
    b, k = first_tokens.shape[0], beam_size
    state = tile_beams(state, k)
    tokens = jnp.repeat(first_tokens, k)
    vocab = _check_step(step_fn, state, tokens, eos_id=eos_id, pad_id=pad_id)
    n_cand = min(2 * k, k * vocab)  # 2k candidates: k may end, k stay live
    parent_rows = jnp.arange(b)[:, None] * k
    in_top_k = jnp.arange(n_cand) < k
    none = jnp.full((b, k), -jnp.inf, jnp.float32)
    carry = dict(
        t=jnp.zeros((), jnp.int32), state=state, tokens=tokens,
        live_log_probs=none.at[:, 0].set(0.0),  # only beam 0 is live at the start: no duplicates
        live_seqs=jnp.full((b, k, max_len), pad_id, jnp.int32),
        seqs=jnp.full((b, k, max_len), pad_id, jnp.int32), scores=none,
        lengths=jnp.zeros((b, k), jnp.int32), log_probs=none, filled=jnp.zeros((b, k), bool),
        open=jnp.ones((b,), bool),  # False once a batch element is done (early stopping)
        any_live=jnp.ones((), bool),  # False when every candidate of a step ended
    )

    def cond(c):
        go = (c["t"] < max_len) & jnp.any(c["open"]) & c["any_live"]
        return go & ~(stop_when_full & jnp.all(c["filled"]))  # early_stopping=True: k finished everywhere

    def body(c):
        t = c["t"]
        n = t + 1  # the candidates' length
        state, logits = step_fn(c["state"], c["tokens"])
        step_lp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1).reshape(b, k, vocab)
        extended = (c["live_log_probs"][..., None] + step_lp).reshape(b, k * vocab)
        cand_lp, flat = jax.lax.top_k(extended, n_cand)  # best first; ties: the lower index
        parent, token = flat // vocab, (flat % vocab).astype(jnp.int32)
        ends = jnp.broadcast_to(n >= max_len, token.shape)
        if eos_id is not None:
            ends = ends | (token == eos_id)
        cand_seqs = jax.lax.dynamic_update_slice(
            _take(c["live_seqs"], parent), token[..., None], (jnp.zeros((), jnp.int32),) * 2 + (t,))

        # the k best candidates that go on are the next live beams; the state follows their parents
        live_lp, pick = jax.lax.top_k(jnp.where(ends, -jnp.inf, cand_lp), k)
        state = gather_beams(state, (parent_rows + _take(parent, pick)).reshape(-1))

        # an ending candidate among the best k joins the finished set, which keeps its k best
        length = n.astype(jnp.float32)
        accept = c["open"][:, None] & ~(stop_when_full & jnp.all(c["filled"], axis=1, keepdims=True))
        new = ends & in_top_k & accept & (cand_lp > -jnp.inf)
        merged = jnp.concatenate([c["scores"], jnp.where(new, cand_lp / length ** alpha, -jnp.inf)], axis=1)
        scores, keep = jax.lax.top_k(merged, k)
        seqs = _take(jnp.concatenate([c["seqs"], cand_seqs], axis=1), keep)
        lengths = _take(jnp.concatenate([c["lengths"], jnp.full(token.shape, n, jnp.int32)], axis=1), keep)
        log_probs = _take(jnp.concatenate([c["log_probs"], cand_lp], axis=1), keep)
        filled = _take(jnp.concatenate([c["filled"], new], axis=1), keep)

        # done: k finished and the best live beam cannot beat the worst of them (early_stopping)
        horizon = jnp.where(exact_bound & (alpha > 0), jnp.float32(max_len), length)
        best_live = live_lp[:, 0] / horizon ** alpha
        worst = jnp.where(jnp.all(filled, axis=1), jnp.min(scores, axis=1), -jnp.inf)
        return dict(
            t=n, state=state, tokens=_take(token, pick).reshape(-1), live_log_probs=live_lp,
            live_seqs=_take(cand_seqs, pick), seqs=seqs, scores=scores, lengths=lengths,
            log_probs=log_probs, filled=filled, open=c["open"] & (best_live > worst),
            any_live=~jnp.all(ends),
        )

    c = jax.lax.while_loop(cond, body, carry)
    filled = c["filled"][:, :num_return_sequences]
    return BeamSearchResult(
        jnp.where(filled[..., None], c["seqs"][:, :num_return_sequences], pad_id),
        jnp.where(filled, c["scores"][:, :num_return_sequences], -jnp.inf),
        jnp.where(filled, c["lengths"][:, :num_return_sequences], 0),
        jnp.where(filled, c["log_probs"][:, :num_return_sequences], -jnp.inf),
    )


def beam_search(
    step_fn: StepFn,
    state: Any,
    first_tokens: jax.Array,
    max_len: int,
    beam_size: int,
    *,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    num_return_sequences: int | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
) -> BeamSearchResult:
    """Batched beam search with Hugging Face's semantics (module docstring): ``beam_size`` live
    beams, a separate set of finished hypotheses scored ``log p(Y) / |Y| ** length_penalty``.

    Equals ``model.generate(input_ids, num_beams=beam_size, do_sample=False,
    max_new_tokens=max_len, length_penalty=..., early_stopping=..., eos_token_id=eos_id,
    num_return_sequences=..., output_scores=True, return_dict_in_generate=True)``: the same
    generated tokens and ``sequences_scores`` (the tests check it on a converted GPT-2).

    Args:
      step_fn, first_tokens, eos_id, pad_id: as :func:`greedy` (``pad_id`` only pads the output:
        a finished hypothesis leaves the beam, so nothing is fed after EOS).
      state: the initial state; every leaf must have the batch ``b`` as leading axis (it is
        tiled to ``b * beam_size`` rows, beam ``j`` of element ``i`` in row ``i * beam_size + j``).
      max_len: the most tokens a hypothesis generates (Hugging Face's ``max_new_tokens``; static).
      beam_size: ``k``, the live beams per batch element (static).
      length_penalty: the exponent of ``|Y|``, the number of generated tokens with EOS (Hugging
        Face's default 1.0; 0 ranks by log-probability; > 0 favours longer output).
      early_stopping: ``True``, ``False`` or ``"never"`` (module docstring; a switch reuses the
        compiled program).
      num_return_sequences: how many finished hypotheses to return, ``<= beam_size`` (default all).

    Returns:
      :class:`BeamSearchResult` ``(sequences [b, n, max_len], scores [b, n], lengths [b, n],
      log_probs [b, n])``, best first. With ``beam_size = 1`` (and ``early_stopping`` True or
      False) it is greedy decoding.

    Example::

        >>> import jax.numpy as jnp
        >>> from seqjax.decoding import beam_search
        >>> logp = jnp.log(jnp.array([[0.1, 0.5, 0.4], [0.0, 0.1, 0.9], [1 / 3, 1 / 3, 1 / 3]]))
        >>> step_fn = lambda state, tokens: (state, logp[tokens])   # a bigram model, token 2 = EOS
        >>> out = beam_search(step_fn, jnp.zeros((1,)), jnp.array([0]), 3, beam_size=2,
        ...                   length_penalty=0.0, eos_id=2)
        >>> out.sequences.tolist(), out.lengths.tolist()   # 1 then 2 (0.45) beats 2 alone (0.4)
        ([[[1, 2, 0], [2, 0, 0]]], [[2, 1]])
    """
    _checks.positive_int("max_len", max_len)
    _checks.positive_int("beam_size", beam_size)
    _token_option("eos_id", eos_id, True)
    _token_option("pad_id", pad_id, False)
    if not (isinstance(early_stopping, bool) or (isinstance(early_stopping, str) and early_stopping == "never")):
        raise ValueError(f"early_stopping must be True, False or 'never' (as Hugging Face generate); got {early_stopping!r}.")
    if num_return_sequences is None:
        num_return_sequences = beam_size
    _checks.positive_int("num_return_sequences", num_return_sequences)
    if num_return_sequences > beam_size:
        raise ValueError(
            f"num_return_sequences must be at most beam_size = {beam_size}; got {num_return_sequences}."
        )
    first_tokens = _first_tokens(first_tokens)
    _check_batched_state(state, first_tokens.shape[0])
    _check_cache_room(state, int(max_len))
    alpha = _float_option("length_penalty", length_penalty, -np.inf, np.inf, low_open=True)
    spec, dynamic = _split_step_fn(step_fn)
    # traced flags: switching early_stopping reuses the compiled program
    stop_when_full, exact_bound = jnp.asarray(early_stopping is True), jnp.asarray(early_stopping == "never")
    return _beam_search(spec, dynamic, state, first_tokens, alpha, stop_when_full, exact_bound, max_len=int(max_len),
                        beam_size=int(beam_size), eos_id=None if eos_id is None else int(eos_id), pad_id=int(pad_id),
                        num_return_sequences=int(num_return_sequences))
