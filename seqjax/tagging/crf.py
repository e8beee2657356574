"""A linear-chain conditional random field (Lafferty, McCallum & Pereira 2001) as pure functions.

For emission scores ``E`` ``[t, K]`` (a tagger's per-token logits) and tags ``y_1..y_n``
(``n`` the valid length), the score of a tag sequence and its probability are

    s(y) = start[y_1] + sum_{i=1..n} E[i, y_i] + sum_{i=2..n} T[y_{i-1}, y_i] + end[y_n]

    p(y | E) = exp s(y) / Z,      log Z = logsumexp over all K^n sequences of s(y)

``log Z`` comes from the forward algorithm, ``alpha_1 = start + E_1``,
``alpha_i[k] = logsumexp_j (alpha_{i-1}[j] + T[j, k]) + E[i, k]``, ``log Z = logsumexp(alpha_n + end)``;
the best sequence from Viterbi, the same recursion with ``max`` and back-pointers (Lample et al.
2016 put this layer on a BiLSTM for named-entity recognition). Steps past a sequence's length
leave the recursion unchanged, so padding never matters. Functions here take one sequence;
``jax.vmap`` them over a batch (``seq_lengths`` ``[b]``).

Parameters: ``{"transitions": [K, K] (from, to), "start": [K], "end": [K]}``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> params = crf_init(jax.random.key(0), 3)
    >>> emissions = jnp.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [9.0, 9.0, 9.0]])
    >>> tags, score = crf_decode(params, emissions, 3)        # the last row is padding
    >>> tags.tolist()
    [0, 1, 2, 0]
    >>> bool(crf_log_likelihood(params, emissions, tags, 3) < 0)
    True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax import _checks

__all__ = ["crf_decode", "crf_init", "crf_log_likelihood", "crf_log_partition", "crf_score"]


def crf_init(key: jax.Array, num_tags: int, *, scale: float = 0.01) -> dict:
    """Transitions ``[K, K]`` ~ U(-scale, scale), start and end scores zero."""
    _checks.positive_int("num_tags", num_tags)
    return {"transitions": jax.random.uniform(key, (num_tags, num_tags), minval=-scale, maxval=scale),
            "start": jnp.zeros((num_tags,)), "end": jnp.zeros((num_tags,))}


def _check(params: dict, emissions, length):
    emissions = jnp.asarray(emissions)
    if emissions.ndim != 2:
        raise ValueError(f"emissions must be [t, num_tags] for one sequence (vmap for a batch); got shape "
                         f"{emissions.shape}.")
    k = emissions.shape[1]
    for name, shape in (("transitions", (k, k)), ("start", (k,)), ("end", (k,))):
        if name not in params or tuple(params[name].shape) != shape:
            got = None if name not in params else tuple(params[name].shape)
            raise ValueError(f"params[{name!r}] must have shape {shape} for {k} tags; got {got}.")
    t = emissions.shape[0]
    length = jnp.asarray(t if length is None else length)
    if length.ndim != 0 or not jnp.issubdtype(length.dtype, jnp.integer):
        raise ValueError(f"length must be one integer (vmap over seq_lengths for a batch); got {length}.")
    return emissions.astype(jnp.float32), length, t


def crf_log_partition(params: dict, emissions, length=None) -> jax.Array:
    """``log Z`` of one sequence: emissions ``[t, K]``, ``length`` valid steps (default ``t``,
    at least 1)."""
    e, length, t = _check(params, emissions, length)

    def step(alpha, inputs):
        e_i, i = inputs
        new = jax.nn.logsumexp(alpha[:, None] + params["transitions"], axis=0) + e_i
        return jnp.where(i < length, new, alpha), None

    alpha, _ = jax.lax.scan(step, params["start"] + e[0], (e[1:], jnp.arange(1, t)))
    return jax.nn.logsumexp(alpha + params["end"])


def crf_score(params: dict, emissions, tags, length=None) -> jax.Array:
    """``s(y)`` of tags ``[t]`` (entries past ``length`` are ignored)."""
    e, length, t = _check(params, emissions, length)
    tags = jnp.asarray(tags)
    if tags.shape != (t,):
        raise ValueError(f"tags must have shape ({t},) like the emissions' time axis; got {tags.shape}.")
    valid = jnp.arange(t) < length
    emit = jnp.sum(jnp.where(valid, e[jnp.arange(t), tags], 0.0))
    trans = jnp.sum(jnp.where(valid[1:], params["transitions"][tags[:-1], tags[1:]], 0.0))
    last = tags[length - 1]
    return params["start"][tags[0]] + emit + trans + params["end"][last]


def crf_log_likelihood(params: dict, emissions, tags, length=None) -> jax.Array:
    """``log p(y | E) = s(y) - log Z`` (maximise it; its negative is the training loss)."""
    return crf_score(params, emissions, tags, length) - crf_log_partition(params, emissions, length)


def crf_decode(params: dict, emissions, length=None, *, pad_tag: int = 0) -> tuple[jax.Array, jax.Array]:
    """Viterbi: the highest-scoring tags ``[t]`` (``pad_tag`` past ``length``) and their score."""
    e, length, t = _check(params, emissions, length)

    def forward(delta, inputs):
        e_i, i = inputs
        cand = delta[:, None] + params["transitions"]            # [from, to]
        best_from = jnp.argmax(cand, axis=0)
        new = jnp.max(cand, axis=0) + e_i
        inside = i < length
        # Past the end the state is carried and the back-pointer is the identity.
        return jnp.where(inside, new, delta), jnp.where(inside, best_from, jnp.arange(e.shape[1]))

    delta, pointers = jax.lax.scan(forward, params["start"] + e[0], (e[1:], jnp.arange(1, t)))
    final = delta + params["end"]
    last = jnp.argmax(final)

    def backward(tag, ptr):
        prev = ptr[tag]
        return prev, tag

    first, rest = jax.lax.scan(backward, last, pointers, reverse=True)
    tags = jnp.concatenate([first[None], rest])
    tags = jnp.where(jnp.arange(t) < length, tags, pad_tag)
    return tags, jnp.max(final)
