"""The attention_explorer CLI: --demo, --attention-npz, its synthetic weights, the model seam."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import attention_explorer as ae
from seqjax.viz import read_explorer_data

ROOT = Path(__file__).resolve().parents[2]


def test_demo_as_a_user_runs_it(tmp_path):
    out = tmp_path / "demo.html"
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.attention_explorer", "--demo", "--layers", "2",
         "--heads", "3", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stderr
    data = read_explorer_data(out.read_text(encoding="utf-8"))
    assert set(data["attention"]) == {"encoder self (synthetic)", "decoder self (synthetic)",
                                      "cross (synthetic)"}
    enc = data["attention"]["encoder self (synthetic)"]
    assert enc["weights"].shape[:2] == (2, 3) and enc["segment_ids"][0] == 0
    assert data["attention"]["decoder self (synthetic)"]["kind"] == "causal"
    assert data["activations"]["activations"]["gate_names"] == ["input", "forget", "output"]


def test_attention_npz_single_and_named_sets(tmp_path):
    w = ae.synthetic_attention(2, 2, 5, seed=3)
    single = tmp_path / "one.npz"
    np.savez(single, attention=w, tokens=np.array(list("abcde")), kind="encoder",
             segment_ids=np.array([0, 0, 0, 1, 1]))
    out = ae.main(["--attention-npz", str(single), "--out", str(tmp_path / "one.html")])
    data = read_explorer_data(out.read_text(encoding="utf-8"))
    got = data["attention"]["attention"]
    assert got["tokens"] == list("abcde") and got["segment_ids"] == [0, 0, 0, 1, 1]
    assert np.abs(got["weights"] - w).max() <= w.max() / 510 + 1e-7

    cross = ae.synthetic_attention(1, 2, 3, 4, seed=4)
    causal = ae.synthetic_attention(1, 2, 3, causal=True, seed=5)
    named = tmp_path / "named.npz"
    np.savez(named, **{"dec/attention": causal, "dec/tokens": np.array(list("xyz")),
                       "dec/kind": "causal", "cross/attention": cross,
                       "cross/tokens": np.array(list("xyz")), "cross/kind": "cross",
                       "cross/source_tokens": np.array(list("abcd")),
                       "activations": np.tanh(np.arange(6.0).reshape(3, 2)),
                       "activation_tokens": np.array(list("xyz"))})
    out = ae.main(["--attention-npz", str(named), "--out", str(tmp_path / "named.html")])
    data = read_explorer_data(out.read_text(encoding="utf-8"))
    assert data["attention"]["dec"]["kind"] == "causal"
    assert data["attention"]["cross"]["source_tokens"] == list("abcd")
    assert data["activations"]["activations"]["activations"].shape == (3, 2)


def test_bad_npz_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, weights=np.ones((1, 1, 2, 2)))
    with pytest.raises(SystemExit):
        ae.main(["--attention-npz", str(bad), "--out", str(tmp_path / "x.html")])
    assert "no 'attention' array" in capsys.readouterr().err
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, attention=np.ones((1, 1, 2, 2)) / 2, tokens=np.array(list("abc")))
    with pytest.raises(SystemExit):
        ae.main(["--attention-npz", str(wrong), "--out", str(tmp_path / "y.html")])
    assert "3 tokens but the attention has t (queries) = 2" in capsys.readouterr().err


def test_synthetic_attention_is_softmax_with_its_patterns():
    w = ae.synthetic_attention(1, 5, 30, seed=0)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-12)
    i = np.arange(1, 29)
    # Heads 0..4 of layer 0: previous, next, self, special (key 0), none.
    assert w[0, 0, i, i - 1].mean() > 0.3 and w[0, 1, i, i + 1].mean() > 0.3
    assert w[0, 2, i, i].mean() > 0.3 and w[0, 3, :, 0].mean() > 0.3
    assert w[0, 4, i, i].mean() < 0.1 and w[0, 4, i, i - 1].mean() < 0.1
    c = ae.synthetic_attention(2, 2, 6, causal=True)
    assert np.triu(c, k=1).max() == 0.0
    np.testing.assert_allclose(c.sum(-1), 1.0, atol=1e-12)
    plain = ae.synthetic_attention(1, 1, 4, bias=0.0, seed=1)
    z = np.random.default_rng(1).standard_normal((1, 1, 4, 4))
    np.testing.assert_allclose(plain, np.exp(z) / np.exp(z).sum(-1, keepdims=True))


def test_attention_for_text_builds_sets_from_a_capture():
    def tokenizer(text):
        toks = text.split()
        return list(range(len(toks))), toks

    def capture(model, ids):
        assert model == "model" and ids == [0, 1, 2]
        return {"self": (ae.synthetic_attention(1, 2, 3, causal=True), "causal")}

    sets = ae.attention_for_text("model", tokenizer, "a b c", capture=capture)
    assert sets["self"].kind == "causal" and sets["self"].tokens == ["a", "b", "c"]
    with pytest.raises(ValueError, match="capture is required"):
        ae.attention_for_text("model", tokenizer, "a b c")


def test_run_path_draws_the_models_own_attention(tmp_path):
    """--run: a saved (untrained) GPT's self-attention, as the model computes it for the text."""
    import jax.numpy as jnp
    from flax import nnx

    from experiments import attention_explorer
    from seqjax.data import CharTokenizer
    from seqjax.experiment.pretrained import save_pretrained
    from seqjax.nn import GPT2Config, GPTLanguageModel

    tokenizer = CharTokenizer.fit("hello world", special_tokens=("[PAD]", "[UNK]", "[CLS]", "[SEP]"))
    model = GPTLanguageModel(GPT2Config(vocab_size=len(tokenizer), n_positions=16, n_embd=8, n_layer=2, n_head=2),
                             rngs=nnx.Rngs(0))
    save_pretrained(tmp_path / "pretrained", model, tokenizer)
    sets = attention_explorer.sets_from_run(tmp_path / "pretrained", "hello")
    (name, att), = sets.items()
    w = np.asarray(att.weights)
    assert w.shape == (2, 2, 6, 6) and att.kind == "causal"        # [SEP] h e l l o
    ids = jnp.asarray([[tokenizer.vocab.token_to_id("[SEP]"), *tokenizer.encode("hello").tolist()]])
    _, direct = model(ids, return_attention=True)
    np.testing.assert_allclose(w, np.asarray(direct["self"])[:, 0], rtol=1e-6, atol=1e-7)
    out = attention_explorer.main(["--run", str(tmp_path / "pretrained"), "--text", "hello",
                                   "--out", str(tmp_path / "x.html")])
    assert out.stat().st_size > 1000
