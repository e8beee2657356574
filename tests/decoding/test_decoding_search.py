"""Generic decoders against brute force, a NumPy reference and hand computations: exhaustive beam
search equals enumeration of every sequence (with and without EOS and length penalty), a pruning
beam search equals a NumPy reference written hypothesis by hypothesis with Hugging Face's rules
(k live beams from 2k candidates, a finished set, the three early-stopping settings), greedy
equals beam size 1 and top-k 1 sampling, small temperatures approach greedy, top-p never leaves
the nucleus (and p = 1 removes nothing), the processors match their formulas, the same key gives
the same samples, and bad arguments (a step function in the old order among them) are refused.
The parity with Hugging Face ``generate`` itself is tests/interop/test_huggingface_gpt2.py."""

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
    return h, h @ params["u"]


def np_step(params, h, token):
    h = np.tanh(h @ params["w"] + params["e"][token])
    logits = h @ params["u"]
    logits = logits - logits.max()
    return logits - np.log(np.exp(logits).sum()), h


def jnp_params(params):
    return {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}


def initial_state(b, seed=1):
    return np.random.default_rng(seed).normal(size=(b, D)).astype(np.float32)


def all_hypotheses(params, h0, first, max_len, eos_id, alpha):
    """Every distinct hypothesis (cut after its EOS) with its score ``log p / len ** alpha``,
    best first, by enumeration in float64."""
    found = {}
    for seq in itertools.product(range(params["u"].shape[1]), repeat=max_len):
        h, log_p, out, token = h0.astype(np.float64), 0.0, [], first
        for y in seq:
            lp, h = np_step(params, h, token)
            log_p += lp[y]
            out.append(y)
            token = y
            if eos_id is not None and y == eos_id:
                break
        found[tuple(out)] = (log_p / len(out) ** alpha, log_p)
    return sorted(((score, log_p, list(seq)) for seq, (score, log_p) in found.items()), key=lambda h: -h[0])


def np_beam_search(params, h0, first, max_len, k, eos_id, alpha, early_stopping):
    """Beam search for one sequence, hypothesis by hypothesis, with Hugging Face's rules: the 2k
    best extensions of the live beams by log p (ties: the lower beam, then token); one that ends
    (EOS or max_len) joins the finished set if it ranks among the best k and the set is open; the
    best k that go on are the next live beams; the set closes by the early-stopping rule.
    Returns the finished set ``[(score, log_p, seq)]``, best first."""
    vocab = params["u"].shape[1]
    live = [dict(seq=[], log_p=0.0, h=h0.astype(np.float64), token=first)]
    finished, is_open = [], True
    for t in range(max_len):
        n = t + 1
        cands = []
        for j, beam in enumerate(live):
            lp, h = np_step(params, beam["h"], beam["token"])
            cands += [(beam["log_p"] + lp[v], j * vocab + v, beam, v, h) for v in range(vocab)]
        cands = sorted(cands, key=lambda c: (-c[0], c[1]))[: 2 * k]
        full = len(finished) == k
        live = []
        for rank, (log_p, _, beam, v, h) in enumerate(cands):
            seq = beam["seq"] + [v]
            if v == eos_id or n == max_len:
                if rank < k and is_open and not (early_stopping is True and full):
                    finished = sorted(finished + [(log_p / n ** alpha, log_p, seq)], key=lambda f: -f[0])[:k]
            elif len(live) < k:
                live.append(dict(seq=seq, log_p=log_p, h=h, token=v))
        if len(finished) == k:  # can the best live beam still beat the worst finished one?
            horizon = max_len if early_stopping == "never" and alpha > 0 else n
            is_open = is_open and bool(live) and live[0]["log_p"] / horizon ** alpha > finished[-1][0]
        if not is_open or (early_stopping is True and len(finished) == k):
            break
    return finished


def check_against(out, i, expected, max_len, pad_id=0):
    """Row ``i`` of a BeamSearchResult equals the hypotheses ``[(score, log_p, seq)]``."""
    for j, (score, log_p, seq) in enumerate(expected):
        assert np.asarray(out.sequences[i, j]).tolist() == seq + [pad_id] * (max_len - len(seq)), (i, j)
        assert int(out.lengths[i, j]) == len(seq)
        np.testing.assert_allclose(float(out.scores[i, j]), score, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(out.log_probs[i, j]), log_p, rtol=1e-5, atol=1e-5)


# --- beam search --------------------------------------------------------------------------------


@pytest.mark.parametrize("eos_id, alpha", [(None, 0.0), (3, 0.0), (3, 1.0), (3, 2.0)])
def test_exhaustive_beam_search_equals_brute_force(eos_id, alpha):
    params, max_len, b = make_params(0), 3, 2
    h0, first = initial_state(b), np.array([0, 2])
    k = V ** (max_len - 1)
    # k >= V^(max_len - 1) live beams prune nothing before the last step, where the best k by log p
    # are also the best k by score (one length); "never" closes a set only when nothing can enter.
    out = beam_search(functools.partial(rnn_step, jnp_params(params)), jnp.asarray(h0), first, max_len,
                      beam_size=k, length_penalty=alpha, early_stopping="never", eos_id=eos_id)
    for i in range(b):
        expected = all_hypotheses(params, h0[i], first[i], max_len, eos_id, alpha)[:k]
        check_against(out, i, expected[:1], max_len)  # the best hypothesis exactly
        np.testing.assert_allclose(np.asarray(out.scores[i]), [e[0] for e in expected], rtol=1e-5, atol=1e-5)
    if eos_id is not None:  # some hypotheses ended early: padded after EOS
        seqs, lengths = np.asarray(out.sequences), np.asarray(out.lengths)
        assert (lengths < max_len).any()
        for row, n in zip(seqs.reshape(-1, max_len), lengths.reshape(-1)):
            assert (row[n:] == 0).all()
            if n < max_len:
                assert row[n - 1] == eos_id


@pytest.mark.parametrize("k", [2, 3])
def test_beam_search_with_pruning_equals_reference(k):
    params, max_len, b, eos_id = make_params(1), 6, 3, 2
    h0, first = initial_state(b, seed=3), np.array([1, 3, 0])
    step_fn = functools.partial(rnn_step, jnp_params(params))
    results, ended_early = {}, False
    for early_stopping in (True, False, "never"):
        for alpha in (0.0, 1.0, 2.0, -0.5):
            out = beam_search(step_fn, jnp.asarray(h0), first, max_len, beam_size=k, length_penalty=alpha,
                              early_stopping=early_stopping, eos_id=eos_id)
            for i in range(b):
                expected = np_beam_search(params, h0[i], first[i], max_len, k, eos_id, alpha, early_stopping)
                assert len(expected) == k
                check_against(out, i, expected, max_len)
                ended_early |= any(len(seq) < max_len for _, _, seq in expected)
                results[early_stopping, alpha, i] = expected
    assert ended_early  # EOS was exercised
    # the three settings were exercised: each gives other hypotheses somewhere
    keys = [(alpha, i) for alpha in (0.0, 1.0, 2.0, -0.5) for i in range(b)]
    assert any(results[True, a, i] != results[False, a, i] for a, i in keys)
    assert any(results[False, a, i] != results["never", a, i] for a, i in keys)


def test_greedy_equals_beam_size_one():
    params, b = jnp_params(make_params(4)), 3
    step_fn = functools.partial(rnn_step, params)
    h0, first = jnp.asarray(initial_state(b, 5)), jnp.array([0, 1, 2])
    g = greedy(step_fn, h0, first, 6, eos_id=3)
    assert (np.asarray(g.lengths) < 6).any()  # some sequences end with EOS
    for early_stopping, alpha in ((False, 1.0), (False, 0.0), (True, 2.0)):
        beam = beam_search(step_fn, h0, first, 6, beam_size=1, eos_id=3, length_penalty=alpha,
                           early_stopping=early_stopping)
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


def test_beam_search_returns_the_requested_number_of_hypotheses():
    step_fn = functools.partial(rnn_step, jnp_params(make_params(5)))
    h0, first = jnp.asarray(initial_state(2, 6)), jnp.array([0, 1])
    full = beam_search(step_fn, h0, first, 4, beam_size=3, eos_id=1)
    top = beam_search(step_fn, h0, first, 4, beam_size=3, eos_id=1, num_return_sequences=2)
    assert top.sequences.shape == (2, 2, 4) and top.scores.shape == (2, 2)
    for a, b in zip(top, full):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[:, :2])


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
    return state, jnp.broadcast_to(logits, (tokens.shape[0], logits.shape[0]))


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


def test_top_p_of_one_removes_nothing_and_the_argmax_always_survives():
    """Regression: ``top_p_filter(logits, 1.0)`` removed tokens. The float32 cumulative sum of the
    sorted probabilities reaches 1.0 before the last token when the tail is small (here p(1) =
    e^-30), so ``mass before < 1`` failed for the tail. ``p >= 1`` now returns the logits as they
    are, traced or concrete, and the most probable token is kept for any ``p``."""
    tail = jnp.array([[0.0, -30.0], [5.0, -20.0]])
    rng = np.random.default_rng(1)
    wide = jnp.asarray(rng.normal(size=(64, 50)) * 8.0, jnp.float32)  # peaked rows, long small tails
    for logits in (tail, wide):
        np.testing.assert_array_equal(np.asarray(top_p_filter(logits, 1.0)), np.asarray(logits))
        np.testing.assert_array_equal(np.asarray(jax.jit(top_p_filter)(logits, 1.0)), np.asarray(logits))
    for p in (1e-30, 1e-6, 0.5):
        kept = np.asarray(jax.jit(top_p_filter)(wide, p)) > MASKED
        assert kept[np.arange(64), np.argmax(np.asarray(wide), -1)].all()
    # in the sampler: top_p = 1 draws exactly what no top_p draws
    step_fn = functools.partial(constant_step, tail[0])
    args = (jnp.zeros((256, 1)), jnp.zeros((256,), jnp.int32), 1, rbg_key(0))
    np.testing.assert_array_equal(np.asarray(sample(step_fn, *args, top_p=1.0).sequences),
                                  np.asarray(sample(step_fn, *args).sequences))


def test_bad_arguments_raise_value_errors():
    step_fn = functools.partial(rnn_step, jnp_params(make_params(0)))
    h0, first = jnp.asarray(initial_state(2)), jnp.array([0, 1])
    with pytest.raises(ValueError, match="top_p"):
        sample(step_fn, h0, first, 3, rbg_key(0), top_p=1.5)
    with pytest.raises(ValueError, match="temperature"):
        sample(step_fn, h0, first, 3, rbg_key(0), temperature=0.0)
    with pytest.raises(ValueError, match="leading axis"):
        beam_search(step_fn, {"h": h0, "scalar": jnp.zeros(())}, first, 3, 2)
    with pytest.raises(ValueError, match="early_stopping must be True, False or 'never'"):
        beam_search(step_fn, h0, first, 3, 2, early_stopping="always")
    with pytest.raises(ValueError, match="early_stopping"):
        beam_search(step_fn, h0, first, 3, 2, early_stopping=1)
    with pytest.raises(ValueError, match="num_return_sequences must be at most beam_size = 2"):
        beam_search(step_fn, h0, first, 3, 2, num_return_sequences=3)
    with pytest.raises(ValueError, match="logits"):
        greedy(lambda s, t: (s, jnp.zeros((3, V))), h0, first, 3)
    with pytest.raises(ValueError, match="shapes and dtypes"):
        greedy(lambda s, t: (s[:, :2], jnp.zeros((2, V))), h0, first, 3)
    with pytest.raises(ValueError, match=r"returned \(logits, state\); the contract is step_fn\(state, tokens"):
        greedy(lambda s, t: step_fn(s, t)[::-1], h0, first, 3)  # the order before the contract changed
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
    # beam search: length penalty and early stopping are traced too
    step_fn = functools.partial(rnn_step, jnp_params(make_params(10)))
    beam_search(step_fn, h0, first, 4, 2, eos_id=3)
    size = search._beam_search._cache_size()
    for early_stopping, alpha in ((True, 0.0), ("never", 2.0), (False, -1.0)):
        beam_search(step_fn, h0, first, 4, 2, eos_id=3, early_stopping=early_stopping, length_penalty=alpha)
    assert search._beam_search._cache_size() == size
