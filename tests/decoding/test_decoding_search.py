"""Generic decoders against brute force and hand computations: exhaustive beam search equals
enumeration of every sequence (with and without EOS and length penalty), a pruning beam search
equals a NumPy reference, greedy equals beam size 1 and top-k 1 sampling, small temperatures
approach greedy, top-p never leaves the nucleus, the processors match their formulas, and the
same key gives the same samples."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.decoding import (
    MASKED,
    beam_search,
    greedy,
    length_penalty,
    repetition_penalty,
    sample,
    seen_tokens,
    temperature_scale,
    top_k_filter,
    top_p_filter,
)

V, D = 4, 6


def rbg_key(seed):
    """Sampling keys on XLA's RngBitGenerator: compiles much faster on CPU than threefry."""
    return jax.random.key(seed, impl="unsafe_rbg")


def make_params(seed=0, vocab=V, scale=2.0):
    rng = np.random.default_rng(seed)
    return {
        "w": rng.normal(size=(D, D)) / np.sqrt(D),
        "e": rng.normal(size=(vocab, D)),
        "u": scale * rng.normal(size=(D, vocab)),
    }


def rnn_step(params, state, tokens):
    """A fixed random Elman "language model": the logits depend on the whole history."""
    h = jnp.tanh(state @ params["w"] + params["e"][tokens])
    return h @ params["u"], h


def np_step(params, h, token):
    h = np.tanh(h @ params["w"] + params["e"][token])
    logits = h @ params["u"]
    logits = logits - logits.max()
    return logits - np.log(np.exp(logits).sum()), h


def jnp_params(params):
    return {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}


def initial_state(b, seed=1):
    return np.random.default_rng(seed).normal(size=(b, D)).astype(np.float32)


def gnmt(length, alpha):
    return ((5.0 + length) / 6.0) ** alpha


def brute_force(params, h0, first, max_len, eos_id, alpha, pad_id=0):
    """Best (sequence, score, length) over every token sequence, by enumeration (float64)."""
    best = {}
    for seq in itertools.product(range(params["u"].shape[1]), repeat=max_len):
        h, log_p, out = h0.astype(np.float64), 0.0, []
        token = first
        for y in seq:
            lp, h = np_step(params, h, token)
            log_p += lp[y]
            out.append(y)
            token = y
            if eos_id is not None and y == eos_id:
                break
        key = tuple(out)
        best[key] = (log_p / gnmt(len(out), alpha), log_p)
    seq, (score, log_p) = max(best.items(), key=lambda kv: kv[1][0])
    padded = list(seq) + [pad_id] * (max_len - len(seq))
    return padded, score, log_p, len(seq)


def np_beam_search(params, h0, first, max_len, k, eos_id, alpha, pad_id=0):
    """Reference beam search with the library's semantics (finished beams extend with pad at
    zero cost; candidates ranked by log p / lp(length); ties by flat index)."""
    vocab = params["u"].shape[1]
    beams = [dict(seq=[], log_p=0.0 if j == 0 else -np.inf, h=h0.astype(np.float64), token=first,
                  done=False, length=0) for j in range(k)]
    for t in range(max_len):
        if not any(not b["done"] and b["log_p"] > -np.inf for b in beams):
            break
        cands = []
        for j, b in enumerate(beams):
            lp, h = np_step(params, b["h"], b["token"])
            for v in range(vocab):
                if b["done"]:
                    log_p, length = (b["log_p"] if v == pad_id else -np.inf), b["length"]
                else:
                    log_p, length = b["log_p"] + lp[v], t + 1
                rank = log_p / gnmt(length, alpha)
                cands.append((-rank, j * vocab + v, j, v, log_p, h))
        cands.sort(key=lambda c: (c[0], c[1]))
        new = []
        for _, _, j, v, log_p, h in cands[:k]:
            parent = beams[j]
            new.append(dict(seq=parent["seq"] + [v], log_p=log_p, h=h, token=v,
                            done=parent["done"] or (eos_id is not None and v == eos_id),
                            length=parent["length"] if parent["done"] else t + 1))
        beams = new
    seqs = [b["seq"] + [pad_id] * (max_len - len(b["seq"])) for b in beams]
    scores = [b["log_p"] / gnmt(b["length"], alpha) for b in beams]
    return np.array(seqs), np.array(scores), np.array([b["length"] for b in beams])


# --- beam search --------------------------------------------------------------------------------


@pytest.mark.parametrize("eos_id, alpha", [(None, 0.0), (3, 0.0), (3, 0.8)])
def test_exhaustive_beam_search_equals_brute_force(eos_id, alpha):
    params, max_len, b = make_params(0), 3, 2
    h0, first = initial_state(b), np.array([0, 2])
    # beam_size >= V^(max_len - 1): nothing is ever pruned, so the search must be exact.
    out = beam_search(functools.partial(rnn_step, jnp_params(params)), jnp.asarray(h0), first, max_len,
                      beam_size=V ** (max_len - 1), length_penalty=alpha, eos_id=eos_id)
    for i in range(b):
        seq, score, log_p, length = brute_force(params, h0[i], first[i], max_len, eos_id, alpha)
        assert out.sequences[i, 0].tolist() == seq
        np.testing.assert_allclose(out.scores[i, 0], score, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out.log_probs[i, 0], log_p, rtol=1e-5, atol=1e-5)
        assert int(out.lengths[i, 0]) == length
        assert np.all(np.diff(np.asarray(out.scores[i])) <= 1e-6)  # best first
    if eos_id is not None:  # some hypotheses ended early: padded after EOS
        seqs, lengths = np.asarray(out.sequences), np.asarray(out.lengths)
        assert (lengths < max_len).any()
        for row, n in zip(seqs.reshape(-1, max_len), lengths.reshape(-1)):
            assert (row[n:] == 0).all()
            if n < max_len:
                assert row[n - 1] == eos_id


def test_beam_search_with_pruning_equals_reference():
    params, max_len, b, k = make_params(2), 4, 2, V
    h0, first = initial_state(b, seed=3), np.array([1, 3])
    out = beam_search(functools.partial(rnn_step, jnp_params(params)), jnp.asarray(h0), first, max_len,
                      beam_size=k, length_penalty=0.7, eos_id=2)
    for i in range(b):
        seqs, scores, lengths = np_beam_search(params, h0[i], first[i], max_len, k, 2, 0.7)
        np.testing.assert_array_equal(np.asarray(out.sequences[i]), seqs)
        np.testing.assert_allclose(np.asarray(out.scores[i]), scores, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(np.asarray(out.lengths[i]), lengths)


def test_greedy_equals_beam_size_one():
    params, b = jnp_params(make_params(4)), 3
    step_fn = functools.partial(rnn_step, params)
    h0, first = jnp.asarray(initial_state(b, 5)), jnp.array([0, 1, 2])
    g = greedy(step_fn, h0, first, 6, eos_id=3)
    beam = beam_search(step_fn, h0, first, 6, beam_size=1, eos_id=3)
    np.testing.assert_array_equal(np.asarray(g.sequences), np.asarray(beam.sequences[:, 0]))
    np.testing.assert_array_equal(np.asarray(g.lengths), np.asarray(beam.lengths[:, 0]))
    np.testing.assert_allclose(np.asarray(g.scores), np.asarray(beam.log_probs[:, 0]), rtol=1e-6, atol=1e-6)
    # greedy by hand, in NumPy
    p = make_params(4)
    for i in range(b):
        h, token, seq = initial_state(b, 5)[i].astype(np.float64), int(first[i]), []
        for _ in range(6):
            lp, h = np_step(p, h, token)
            token = int(np.argmax(lp))
            seq.append(token)
            if token == 3:
                break
        assert np.asarray(g.sequences[i, : len(seq)]).tolist() == seq
        assert int(g.lengths[i]) == len(seq)


# --- sampling -----------------------------------------------------------------------------------


def test_top_k_one_and_small_temperature_equal_greedy():
    step_fn = functools.partial(rnn_step, jnp_params(make_params(6, scale=1.0)))
    h0, first = jnp.asarray(initial_state(4, 7)), jnp.array([0, 1, 2, 3])
    g = greedy(step_fn, h0, first, 6, eos_id=3)
    top1 = sample(step_fn, h0, first, 6, rbg_key(0), top_k=1, eos_id=3)
    cold = sample(step_fn, h0, first, 6, rbg_key(1), temperature=1e-3, eos_id=3)
    for out in (top1, cold):
        np.testing.assert_array_equal(np.asarray(out.sequences), np.asarray(g.sequences))
        np.testing.assert_array_equal(np.asarray(out.lengths), np.asarray(g.lengths))
        np.testing.assert_allclose(np.asarray(out.scores), np.asarray(g.scores), rtol=1e-6, atol=1e-6)


def constant_step(logits, state, tokens):
    return jnp.broadcast_to(logits, (tokens.shape[0], logits.shape[0])), state


def test_top_p_never_samples_outside_the_nucleus():
    probs = np.array([0.32, 0.22, 0.16, 0.11, 0.08, 0.06, 0.03, 0.02])
    perm = np.random.default_rng(0).permutation(8)  # the nucleus is not simply the first ids
    logits = np.log(probs[perm])
    p = 0.75  # cumulative 0.32, 0.54, 0.70, 0.81: the nucleus is the 4 most probable tokens
    nucleus = {int(np.where(perm == i)[0][0]) for i in range(4)}  # the ids of probs[0..3]
    step_fn = functools.partial(constant_step, jnp.asarray(logits, jnp.float32))
    out = sample(step_fn, jnp.zeros((64, 1)), jnp.zeros((64,), jnp.int32), 32, rbg_key(0), top_p=p)
    drawn = set(np.unique(np.asarray(out.sequences)).tolist())
    assert drawn <= nucleus
    assert drawn == nucleus  # 2048 draws: every nucleus token shows up


def test_same_key_same_samples():
    step_fn = functools.partial(rnn_step, jnp_params(make_params(8, scale=1.0)))
    h0, first = jnp.asarray(initial_state(8, 9)), jnp.zeros((8,), jnp.int32)
    a = sample(step_fn, h0, first, 10, rbg_key(3))
    b = sample(step_fn, h0, first, 10, rbg_key(3))
    c = sample(step_fn, h0, first, 10, rbg_key(4))
    np.testing.assert_array_equal(np.asarray(a.sequences), np.asarray(b.sequences))
    assert not np.array_equal(np.asarray(a.sequences), np.asarray(c.sequences))


def test_repetition_penalty_in_the_loop_avoids_repeats():
    logits = jnp.array([5.0, 4.0, 3.0, 2.0, 1.0])
    step_fn = functools.partial(constant_step, logits)
    out = sample(step_fn, jnp.zeros((1, 1)), jnp.array([0]), 5, rbg_key(0), top_k=1, repetition_penalty=1e4)
    # seen {0}: 1, 2, 3, 4 in turn; then all are seen and 0 (5 / 1e4) is again the largest
    assert out.sequences[0].tolist() == [1, 2, 3, 4, 0]


# --- processors ---------------------------------------------------------------------------------


def test_repetition_penalty_by_hand():
    logits = jnp.array([[2.0, -1.0, 0.5, -3.0, 0.0]])
    seen = jnp.array([[True, True, False, True, True]])
    out = jax.jit(repetition_penalty)(logits, seen, 1.5)
    np.testing.assert_allclose(np.asarray(out), [[2.0 / 1.5, -1.5, 0.5, -4.5, 0.0]], rtol=1e-6)
    seen = jax.jit(seen_tokens, static_argnums=1)(jnp.array([[1, 3], [0, 0]]), 4)
    assert seen.tolist() == [[False, True, False, True], [True, False, False, False]]


def test_top_k_and_top_p_filters_match_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 10)).astype(np.float32) * 2
    top_k, top_p = jax.jit(top_k_filter, static_argnums=1), jax.jit(top_p_filter)
    for k in (1, 3, 10):
        kept = np.asarray(top_k(logits, k)) > MASKED
        assert (kept.sum(-1) == k).all()
        expected = np.argsort(-logits, axis=-1, kind="stable")[:, :k]
        assert all(set(np.where(row)[0]) == set(e) for row, e in zip(kept, expected))
    ties = jnp.array([[1.0, 3.0, 3.0, 0.0]] * 50)  # exactly k kept: the lower id wins a tie
    assert (np.asarray(top_k(ties, 1)) > MASKED)[0].tolist() == [False, True, False, False]
    for p in (0.05, 0.5, 0.9, 1.0):
        kept = np.asarray(top_p(logits, p)) > MASKED
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        for row, pr, kp in zip(logits, probs, kept):
            order = np.argsort(-row, kind="stable")
            n = int(np.searchsorted(np.cumsum(pr[order]), p - 1e-6) + 1)  # smallest set with mass >= p
            assert set(np.where(kp)[0]) == set(order[: min(n, len(row))])
    np.testing.assert_allclose(np.asarray(temperature_scale(np.array([1.0, -2.0]), 0.5)), [2.0, -4.0])
    np.testing.assert_allclose(float(length_penalty(3, 0.6)), (8 / 6) ** 0.6, rtol=1e-6)


def test_bad_arguments_raise_value_errors():
    step_fn = functools.partial(rnn_step, jnp_params(make_params(0)))
    h0, first = jnp.asarray(initial_state(2)), jnp.array([0, 1])
    with pytest.raises(ValueError, match="top_p"):
        sample(step_fn, h0, first, 3, rbg_key(0), top_p=1.5)
    with pytest.raises(ValueError, match="temperature"):
        sample(step_fn, h0, first, 3, rbg_key(0), temperature=0.0)
    with pytest.raises(ValueError, match="leading axis"):
        beam_search(step_fn, {"h": h0, "scalar": jnp.zeros(())}, first, 3, 2)
    with pytest.raises(ValueError, match="logits"):
        greedy(lambda s, t: (jnp.zeros((3, V)), s), h0, first, 3)
    with pytest.raises(ValueError, match="shapes and dtypes"):
        greedy(lambda s, t: (jnp.zeros((2, V)), s[:, :2]), h0, first, 3)
    with pytest.raises(ValueError, match="eos_id"):
        greedy(step_fn, h0, first, 3, eos_id=V)
    with pytest.raises(ValueError, match="first_tokens"):
        greedy(step_fn, h0, jnp.array([0.0, 1.0]), 3)


def test_bound_arrays_are_traced_not_recompiled():
    from seqjax.decoding import search

    h0, first = jnp.asarray(initial_state(2)), jnp.array([0, 1])
    a = greedy(functools.partial(rnn_step, jnp_params(make_params(10))), h0, first, 4)
    size = search._greedy._cache_size()
    b = greedy(functools.partial(rnn_step, jnp_params(make_params(11))), h0, first, 4)
    assert search._greedy._cache_size() == size  # new parameter values, same program
    assert not np.array_equal(np.asarray(a.scores), np.asarray(b.scores))
