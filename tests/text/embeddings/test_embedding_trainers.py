"""The embedding trainers' pieces against independent references: gensim's vocabulary and
subsampling, brute-force windows and co-occurrence counts, jax.grad for the hand-written SGD
steps, gensim's n-gram hashing, torchtext's CharNGram keys; and that each model learns a planted
structure."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.text.embeddings import charngram, corpus, fasttext, glove, sgns, word2vec

gensim = pytest.importorskip("gensim")


def toy_sentences(seed=0, n=200):
    """Two topics whose words never meet: a planted structure every model should find."""
    rng = np.random.default_rng(seed)
    topics = [[f"a{i}" for i in range(8)], [f"b{i}" for i in range(8)]]
    return [list(rng.choice(topics[k % 2], size=12)) for k in range(n)]


def test_vocab_order_and_subsampling_match_gensim():
    from gensim.models import Word2Vec
    sentences = [s.split() for s in ["the cat sat on the mat", "the dog sat", "a cat and a dog", "mat mat the"]] * 30
    model = Word2Vec(vector_size=4, min_count=2, sample=1e-2)
    model.build_vocab(sentences)
    vocab = corpus.build_vocab(sentences, min_count=2)
    # the same words and counts, most frequent first; gensim orders ties by a reversed argsort,
    # ours by first appearance
    assert {w: model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key} == dict(zip(vocab.words, vocab.counts.tolist()))
    assert [model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key] == vocab.counts.tolist()
    assert vocab.words[:3] == ("the", "mat", "cat")  # 120, 90, then the first of the 60s
    keep = corpus.keep_probabilities(vocab.counts, 1e-2)
    gensim_keep = np.array([model.wv.get_vecattr(w, "sample_int") / 2**32 for w in vocab.words])
    np.testing.assert_allclose(keep, np.minimum(gensim_keep, 1.0), atol=1e-8)
    assert (corpus.keep_probabilities(vocab.counts, 0) == 1).all()
    with pytest.raises(ValueError, match="min_count"):
        corpus.build_vocab(sentences, min_count=0)


def test_noise_table_and_negatives_follow_unigram_075():
    counts = np.array([1000, 100, 10, 1])
    noise = corpus.noise_distribution(counts)
    np.testing.assert_allclose(noise, counts ** 0.75 / (counts ** 0.75).sum())
    table = corpus.noise_table(noise, size=100_000)
    np.testing.assert_allclose(np.bincount(table, minlength=4) / 100_000, noise, atol=1e-5)
    draws = corpus.sample_negatives(table, (200_000,), np.random.default_rng(0))
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 200_000, noise, atol=4e-3)


def test_window_examples_equal_a_brute_force_loop():
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    sentences = [np.arange(7, dtype=np.int32), np.array([20, 21], np.int32), np.array([30], np.int32)]
    centers, contexts, mask = corpus.window_examples(sentences, 3, rng_a)
    reach = 3 - rng_b.integers(0, 3, 10)
    expected, pos = [], 0
    for s in sentences:
        for i in range(len(s)):
            ctx = [int(s[j]) for j in range(len(s)) if j != i and abs(j - i) <= reach[pos + i]]
            if ctx:
                expected.append((int(s[i]), sorted(ctx)))
        pos += len(s)
    got = [(int(c), sorted(int(x) for x, m in zip(row, ms) if m)) for c, row, ms in zip(centers, contexts, mask)]
    assert got == expected
    assert 30 not in centers.tolist()  # a one-word sentence has no context


def test_linear_learning_rate():
    assert corpus.linear_learning_rate(0.025, 1e-4, 0.0) == 0.025
    assert corpus.linear_learning_rate(0.025, 1e-4, 1.0) == pytest.approx(1e-4)
    assert corpus.linear_learning_rate(0.025, 1e-4, 0.5) == pytest.approx((0.025 + 1e-4) / 2)


@pytest.mark.parametrize("input_gradient", ["sum", "mean"])
def test_sgns_step_is_sgd_on_the_loss(input_gradient):
    key = jax.random.key(0)
    params = sgns.init_params(key, num_inputs=12, num_outputs=9, dim=5, scale=0.5)
    params["output"] = jax.random.normal(jax.random.key(1), (9, 5)) * 0.3
    rng = np.random.default_rng(0)
    batch = sgns.Batch(
        inputs=rng.integers(0, 12, (4, 3)).astype(np.int32), input_mask=np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 1]], bool),
        targets=rng.integers(0, 9, (4, 2)).astype(np.int32), target_mask=np.array([[1, 1], [1, 0], [1, 1], [0, 1]], bool),
        negatives=rng.integers(0, 9, (4, 2, 3)).astype(np.int32))
    batch = batch._replace(negatives=batch.negatives.at[0, 0, 0].set(batch.targets[0, 0]) if False else
                           np.where(np.arange(3) == 0, batch.targets[..., None], batch.negatives))  # a negative = its target
    grads = jax.grad(sgns.sgns_loss)(params, batch)
    if input_gradient == "sum":  # each input row gets the full gradient of h: |I_b| times the mean's
        count = batch.input_mask.sum(1, keepdims=True)
        grads_in = jax.grad(lambda t: sgns.sgns_loss({"input": t, "output": params["output"]}, batch._replace(
            input_mask=batch.input_mask)))(params["input"])
        # recompute the sum-rule gradient directly: scale each example's input-row gradient by its count
        per_example = [jax.grad(lambda t, b=b: sgns.sgns_loss({"input": t, "output": params["output"]},
                                                              sgns.Batch(*(x[b:b + 1] for x in batch))))(params["input"]) * count[b, 0]
                       for b in range(4)]
        grads = {"input": sum(per_example), "output": grads["output"]}
        del grads_in
    expected = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    copy = jax.tree.map(jnp.array, params)
    new, loss = sgns.sgns_step(copy, batch, 0.1, input_gradient=input_gradient)
    np.testing.assert_allclose(loss, sgns.sgns_loss(params, batch), rtol=1e-6)
    for name in ("input", "output"):
        np.testing.assert_allclose(new[name], expected[name], atol=1e-6)


def test_fasttext_ngrams_and_hashes_match_gensim_and_the_notes():
    from gensim.models.fasttext import ft_ngram_hashes
    from gensim.models.fasttext_inner import compute_ngrams
    for w in ["apple", "café", "naïve", "a", "日本語", "unhappiest"]:
        assert sorted(fasttext.char_ngrams(w)) == sorted(compute_ngrams(w, 3, 6))
        assert sorted(fasttext.ngram_bucket(g, 2_000_000) for g in fasttext.char_ngrams(w)) == sorted(
            ft_ngram_hashes(w, 3, 6, 2_000_000))
    apple = set(fasttext.char_ngrams("apple"))
    assert apple == {"<ap", "app", "ppl", "ple", "le>", "<app", "appl", "pple", "ple>", "<appl", "apple",
                     "pple>", "<apple", "apple>"}  # the notes' 14
    assert len(apple & set(fasttext.char_ngrams("applw"))) == 6  # "most" n-grams, say the notes: 6 of 14
    assert "happy" not in fasttext.char_ngrams("hyperhappiness") and "hyper" in fasttext.char_ngrams("hyperhappiness")
    rows, mask = fasttext.subword_rows(["ab", "abc"], min_n=3, max_n=4, bucket=10)
    assert rows[0, 0] == 0 and mask[0].sum() == 1 + len(fasttext.char_ngrams("ab", 3, 4))


def test_charngram_keys_are_torchtexts():
    def torchtext_keys(token):  # torchtext.vocab.CharNGram.__getitem__, written out
        chars = ["#BEGIN#"] + list(token) + ["#END#"]
        out = []
        for i in [2, 3, 4]:
            end = len(chars) - i + 1
            out += ["{}gram-{}".format(i, "".join(chars[x:x + i])) for x in range(end)]
        return out
    for w in ["cat", "a", "hyperhappiness"]:
        assert charngram.charngram_keys(w) == torchtext_keys(w)


def test_cooccurrence_equals_a_brute_force_count():
    rng = np.random.default_rng(0)
    sentences = [rng.integers(0, 6, n).astype(np.int32) for n in (9, 1, 4, 12)]
    i, j, x = glove.cooccurrence(sentences, vocab_size=6, window=3)
    expected = collections.defaultdict(float)
    for s in sentences:
        for a in range(len(s)):
            for b in range(len(s)):
                if 0 < abs(a - b) <= 3:
                    expected[(int(s[a]), int(s[b]))] += 1.0 / abs(a - b)
    assert {(int(a), int(b)): float(c) for a, b, c in zip(i, j, x)} == pytest.approx(dict(expected))


def test_glove_step_is_adagrad_on_the_weighted_least_squares():
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(5, 3)), jnp.float32), "w_context": jnp.asarray(rng.normal(size=(5, 3)), jnp.float32),
              "b": jnp.asarray(rng.normal(size=5), jnp.float32), "b_context": jnp.asarray(rng.normal(size=5), jnp.float32)}
    i, j = np.array([0, 1, 2, 4], np.int32), np.array([1, 2, 3, 0], np.int32)
    x = np.array([1.0, 250.0, 3.5, 0.5], np.float32)
    grads = jax.grad(lambda p: glove.glove_loss(p, i, j, x) / 2)(params)
    sq = {k: jnp.full_like(v, 2.0) for k, v in params.items()}
    new, new_sq, cost = glove.glove_step(jax.tree.map(jnp.array, params), jax.tree.map(jnp.array, sq), i, j, x,
                                         np.float32(0.05), np.float32(100.0), np.float32(0.75))
    for k in params:  # rows appear once per batch here, so per-row AdaGrad is the dense one
        np.testing.assert_allclose(new[k], params[k] - 0.05 * grads[k] / np.sqrt(2.0), atol=1e-5)
        np.testing.assert_allclose(new_sq[k], 2.0 + grads[k] ** 2, atol=1e-4)
    assert float(cost) == pytest.approx(float(glove.glove_loss(params, i, j, x)) / 2, rel=1e-5)
    assert float(glove.weighting(jnp.float32(250.0))) == 1.0
    assert float(glove.weighting(jnp.float32(50.0))) == pytest.approx(0.5 ** 0.75)


def _separation(wv):
    a = [wv.index[f"a{i}"] for i in range(8)]
    b = [wv.index[f"b{i}"] for i in range(8)]
    u = wv.unit
    within = (u[a] @ u[a].T)[np.triu_indices(8, 1)].mean() + (u[b] @ u[b].T)[np.triu_indices(8, 1)].mean()
    return within / 2 - (u[a] @ u[b].T).mean()


@pytest.mark.parametrize("model", ["skipgram", "cbow", "fasttext", "charngram", "glove"])
def test_each_model_finds_the_planted_topics(model):
    sentences = toy_sentences()
    common = dict(dim=16, window=3, negative=3, min_count=1, epochs=2, sample=0.0, alpha=0.05)
    if model in ("skipgram", "cbow"):
        wv = word2vec.train_word2vec(sentences, word2vec.Word2VecConfig(sg=model == "skipgram", **common))
    elif model == "fasttext":
        wv = fasttext.train_fasttext(sentences, fasttext.FastTextConfig(bucket=2000, **common))
        assert wv.vector("a1x").shape == (16,)  # an unseen word composed from its n-grams
    elif model == "charngram":
        wv = charngram.train_charngram(sentences, charngram.CharNgramConfig(**common))
    else:
        wv = glove.train_glove(sentences, glove.GloVeConfig(dim=16, window=3, min_count=1, epochs=10))[0]
    assert _separation(wv) > 0.3
