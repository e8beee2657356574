"""The linear-chain CRF against brute-force enumeration of every tag sequence."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.tagging import crf_decode, crf_init, crf_log_likelihood, crf_log_partition, crf_score


def _random(key, t, k):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    params = {"transitions": jax.random.normal(k1, (k, k)), "start": jax.random.normal(k2, (k,)),
              "end": jax.random.normal(k3, (k,))}
    return params, jax.random.normal(k4, (t, k)) * 2


def _brute_score(params, e, tags):
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    e = np.asarray(e, np.float64)
    s = p["start"][tags[0]] + p["end"][tags[-1]] + sum(e[i, y] for i, y in enumerate(tags))
    return s + sum(p["transitions"][a, b] for a, b in zip(tags[:-1], tags[1:]))


@pytest.mark.parametrize("t, k, length", [(1, 3, 1), (5, 3, 5), pytest.param(6, 3, 4, marks=pytest.mark.slow)])
def test_partition_likelihood_and_viterbi_equal_brute_force(t, k, length):
    params, e = _random(jax.random.key(t * 10 + k), t, k)
    e = e.at[length:].set(1e3)   # padding must not matter, however large
    every = list(itertools.product(range(k), repeat=length))
    scores = np.array([_brute_score(params, e[:length], y) for y in every])
    log_z = np.log(np.sum(np.exp(scores - scores.max()))) + scores.max()
    np.testing.assert_allclose(crf_log_partition(params, e, length), log_z, rtol=1e-5)
    best = every[int(np.argmax(scores))]
    tags, score = crf_decode(params, e, length, pad_tag=0)
    assert tags.tolist() == list(best) + [0] * (t - length)
    np.testing.assert_allclose(score, scores.max(), rtol=1e-5)
    padded = jnp.array([list(y) + [k - 1] * (t - length) for y in every])
    np.testing.assert_allclose(jax.vmap(lambda y: crf_score(params, e, y, length))(padded), scores, rtol=1e-5)
    np.testing.assert_allclose(jax.vmap(lambda y: crf_log_likelihood(params, e, y, length))(padded),
                               scores - log_z, rtol=1e-4, atol=1e-4)


def test_probabilities_sum_to_one_and_vmap_over_lengths():
    params, e = _random(jax.random.key(7), 4, 3)
    every = jnp.array(list(itertools.product(range(3), repeat=4)))
    ll = jax.vmap(lambda y: crf_log_likelihood(params, e, y))(every)
    np.testing.assert_allclose(jnp.sum(jnp.exp(ll)), 1.0, rtol=1e-5)
    batch = jnp.stack([e, e * 0.5, -e])
    lengths = jnp.array([4, 2, 3])
    batched = jax.vmap(crf_log_partition, in_axes=(None, 0, 0))(params, batch, lengths)
    for i in range(3):
        np.testing.assert_allclose(batched[i], crf_log_partition(params, batch[i, :lengths[i]]), rtol=1e-6)


def test_gradient_of_log_partition_is_the_expected_counts():
    """d log Z / d E[i, k] is the marginal p(y_i = k): checked against brute-force marginals."""
    params, e = _random(jax.random.key(11), 4, 3)
    grad = jax.grad(lambda em: crf_log_partition(params, em))(e)
    every = list(itertools.product(range(3), repeat=4))
    probs = np.exp([_brute_score(params, e, y) for y in every])
    probs /= probs.sum()
    marginals = np.zeros((4, 3))
    for p, y in zip(probs, every):
        for i, tag in enumerate(y):
            marginals[i, tag] += p
    np.testing.assert_allclose(grad, marginals, atol=1e-5)


def test_bad_input_is_named():
    params = crf_init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match=r"emissions must be \[t, num_tags\]"):
        crf_log_partition(params, jnp.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"params\['transitions'\] must have shape \(4, 4\)"):
        crf_log_partition(params, jnp.zeros((4, 4)))
    with pytest.raises(ValueError, match="tags must have shape"):
        crf_score(params, jnp.zeros((4, 3)), jnp.zeros((3,), int))
    with pytest.raises(ValueError, match="length must be one integer"):
        crf_decode(params, jnp.zeros((4, 3)), jnp.array([2, 3]))
