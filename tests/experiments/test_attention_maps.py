"""experiments.attention_maps: the --quick run end to end (untrained tiny models): every figure,
attention.npz holding valid weights (rows sum to 1; GPT lower-triangular), metrics.json's
pattern scores equal to those recomputed from the saved arrays, and the batched forward pass
equal to each sentence alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import attention_maps as am
from seqjax.attention.patterns import PATTERNS, average_patterns, head_patterns


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    out = quick_run_dir("attention_maps")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_writes_figures_and_arrays(quick_run):
    out, m = quick_run
    for name in ("bert_layer0.png", "bert_layer1.png", "bert_grid.png", "bert_patterns.png", "gpt_layer0.png",
                 "gpt_grid.png", "gpt_patterns.png", "flow.png", "attention.npz"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "flow.png").read_bytes()[:4] == b"\x89PNG"
    data = np.load(out / "attention.npz")
    sentences = data["sentences"].tolist()
    assert sentences == list(am.SENTENCES)
    for kind in am.MODELS:
        causal = bool(data[f"{kind}/causal"])
        assert causal is (kind == "gpt")
        per = []
        for i in range(len(sentences)):
            w, tokens = data[f"{kind}/{i}/weights"], data[f"{kind}/{i}/tokens"]
            assert w.shape == (m[kind]["layers"], m[kind]["heads"], len(tokens), len(tokens))
            np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
            if causal:
                assert np.all(np.triu(w, 1) == 0.0)
            else:
                assert np.triu(w, 1).sum() > 0  # BERT is bidirectional: nothing hidden
            assert tokens.tolist() == m[kind]["inputs"][i]["tokens"]
            per.append(head_patterns(w, causal=causal))
        avg = average_patterns(per)
        for key in PATTERNS:
            np.testing.assert_allclose(np.asarray(m[kind]["patterns"][key], float), avg[key], atol=1e-9)
    assert data["bert/0/tokens"][0] == "[CLS]" and data["bert/0/tokens"][-1] == "[SEP]"
    assert data["gpt/0/tokens"][0] == "[SEP]"
    for link in m["bert"]["flow_links"]:
        assert link["query"] != link["key"]
    assert all(link["key"] < link["query"] for link in m["gpt"]["flow_links"])  # causal: only earlier keys


def test_batched_forward_equals_each_sentence_alone():
    """Padding never reaches the valid tokens: each padded sentence of a batched forward has the
    weights of its forward alone (the longest one, unpadded, is not run again: one program fewer)."""
    for kind in am.MODELS:
        model, tokenizer, info = am.untrained(kind, 0)
        ids = [am.encode(kind, tokenizer, info, s, 64) for s in am.SENTENCES[:3]]
        together = am.attention_of(kind, model, ids)
        longest = max(len(one) for one in ids)
        padded = [(one, w) for one, w in zip(ids, together) if len(one) < longest]
        assert len(padded) == 2
        for one, w in padded:
            assert w.shape[-1] == len(one)
            np.testing.assert_allclose(am.attention_of(kind, model, [one])[0], w, atol=1e-6)


def test_top_links_skip_self_and_specials():
    w = np.zeros((1, 1, 4, 4))
    w[0, 0] = [[0.1, 0.2, 0.3, 0.4], [0.9, 0.05, 0.05, 0.0], [0.0, 0.6, 0.4, 0.0], [0.0, 0.1, 0.2, 0.7]]
    links = am.top_links(w, 2, exclude=[0])
    assert [(l["query"], l["key"]) for l in links] == [(2, 1), (3, 2)]


def test_config_refuses_missing_runs():
    with pytest.raises(ValueError, match="--bert-run"):
        am.Config()
    with pytest.raises(ValueError, match="heatmap_sentence"):
        am.Config(untrained_if_missing=True, heatmap_sentence=99)
