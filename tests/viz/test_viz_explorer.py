"""The explorer document from Python: input checks, the data round trip, self-containment."""

import html as html_lib
import re

import numpy as np
import pytest

from seqjax.viz import (
    ActivationTrace,
    AttentionSet,
    Explorer,
    activation_html,
    attention_html,
    attention_rollout,
    explorer_html,
    read_explorer_data,
    write_html,
)


def _softmax(z, causal=False):
    if causal:
        t = z.shape[-1]
        z = np.where(np.tril(np.ones((t, t), bool)), z, -np.inf)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _weights(shape, seed=0, causal=False):
    return _softmax(np.random.default_rng(seed).normal(size=shape) * 2, causal)


TOKS = ["[CLS]", "the", "cat", "[SEP]", "sat", "[SEP]"]


def test_round_trip_of_every_set_within_quantisation_error():
    enc = _weights((2, 3, 6, 6), 0)
    dec = _weights((2, 3, 4, 4), 1, causal=True)
    cross = _weights((2, 3, 4, 6), 2)
    acts = np.tanh(np.random.default_rng(3).normal(size=(11, 5)))
    gates = 1 / (1 + np.exp(-np.random.default_rng(4).normal(size=(11, 3, 5))))
    page = explorer_html(
        {"enc": AttentionSet(enc, TOKS, segment_ids=[0, 0, 0, 0, 1, 1]),
         "dec": {"weights": dec, "tokens": list("abcd"), "kind": "causal"},
         "cross": AttentionSet(cross, list("abcd"), source_tokens=TOKS, kind="cross")},
        ActivationTrace(list("hello world"), acts, gates, gate_names=["i", "f", "o"]),
        title="round trip", max_bytes=None)
    data = read_explorer_data(page)
    assert data["levels"] == 255 and data["title"] == "round trip"
    for name, w in [("enc", enc), ("dec", dec), ("cross", cross)]:
        got = data["attention"][name]["weights"]
        # One scale per [t, s] matrix: error <= max / (2 * 255).
        bound = w.max(axis=(-1, -2), keepdims=True) / 510 + 1e-7
        assert (np.abs(got - w) <= bound).all()
        assert np.abs(got - w).max() > 0  # it really is quantised
    np.testing.assert_allclose(data["attention"]["enc"]["rollout"], attention_rollout(enc),
                               atol=1 / 510 + 1e-7)
    assert data["attention"]["cross"]["rollout"] is None
    assert data["attention"]["enc"]["segment_ids"] == [0, 0, 0, 0, 1, 1]
    assert data["attention"]["cross"]["source_tokens"] == TOKS
    tr = data["activations"]["activations"]
    span = acts.max(0) - np.minimum(acts.min(0), 0)
    assert (np.abs(tr["activations"] - acts) <= span / 510 + 1e-6).all()
    assert tr["gates"].shape == gates.shape
    assert np.abs(tr["gates"] - gates).max() <= 1 / 510 + 1e-6
    assert tr["gate_names"] == ["i", "f", "o"] and tr["tokens"] == list("hello world")


def test_document_is_self_contained():
    page = attention_html(_weights((1, 2, 6, 6)), TOKS)
    assert page.startswith("<!DOCTYPE html>")
    # No resource is loaded from anywhere: no src/href attributes, no import, no fetch of a URL.
    assert not re.search(r"\b(src|href)\s*=\s*[\"']?(https?:|//)", page)
    assert "require(" not in page and "import(" not in page and "fetch(" not in page
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace of the export, a name only
    # Each document gets its own root id, so two explorers never share element ids.
    ids = [re.search(r'class="sqx-explorer" id="([^"]+)"', attention_html(_weights((1, 1, 6, 6)),
                                                                           TOKS)).group(1)
           for _ in range(2)]
    assert ids[0] != ids[1]


def test_tokens_with_script_end_tags_are_escaped():
    toks = ["</script>", "<b>", "a", "b", "c", "d"]
    page = attention_html(_weights((1, 1, 6, 6)), toks)
    assert page.count("</script>") == 2  # the data and the code elements only
    assert read_explorer_data(page)["attention"]["attention"]["tokens"] == toks


def test_budget_lowers_the_levels_and_is_reported():
    w = _softmax(np.random.default_rng(0).normal(size=(4, 4, 64, 64)) * 0.3)
    fine = attention_html(w, [str(i) for i in range(64)], max_bytes=None)
    coarse = attention_html(w, [str(i) for i in range(64)], max_bytes=60_000)
    assert read_explorer_data(fine)["levels"] == 255
    assert read_explorer_data(coarse)["levels"] < 255
    assert len(coarse) < len(fine)


def test_explorer_repr_is_an_iframe_holding_the_escaped_document(tmp_path):
    page = attention_html(_weights((1, 1, 6, 6)), TOKS)
    ex = Explorer(page, height=500)
    frame = ex._repr_html_()
    assert frame.startswith("<iframe srcdoc=\"") and "height:500px" in frame
    srcdoc = re.match(r'<iframe srcdoc="([^"]*)"', frame).group(1)
    assert html_lib.unescape(srcdoc) == page
    path = ex.save(tmp_path / "sub" / "x.html")
    assert path.read_text(encoding="utf-8") == page
    assert write_html(tmp_path / "y.html", page).exists()


def test_activation_page_alone():
    page = activation_html(list("abc"), np.ones((3, 2)) * 0.5, unit_names=["u", "v"])
    data = read_explorer_data(page)
    assert data["attention"] == {}
    assert data["activations"]["activations"]["unit_names"] == ["u", "v"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(attention=np.ones((3, 6, 6)) / 6), "rank 4"),
        (dict(attention=np.ones((1, 1, 6, 6)) / 6, tokens=TOKS[:5]), "5 tokens but .* t"),
        (dict(attention=np.full((1, 1, 6, 6), np.nan)), "finite"),
        (dict(attention=np.ones((1, 1, 6, 6)) / 5), "sum to 1"),
        (dict(attention=-np.ones((1, 1, 6, 6)) / 6), "non-negative"),
        (dict(attention=np.ones((1, 1, 6, 6)) / 6, kind="causal"), "above the diagonal"),
        (dict(attention=np.ones((1, 1, 6, 4)) / 4), "source_tokens is required"),
        (dict(attention=np.ones((1, 1, 6, 4)) / 4, source_tokens=["a"] * 3, kind="cross"),
         "3 tokens but .* s"),
        (dict(attention=np.ones((1, 1, 6, 6)) / 6, kind="sideways"), "kind must be one of"),
        (dict(attention=np.ones((1, 1, 6, 6)) / 6, segment_ids=[0, 1]), "segment_ids"),
        (dict(attention=np.ones((1, 1, 6, 6)) / 6, tokens="abcdef"), "sequence of 6 strings"),
        (dict(attention=np.ones((1, 1, 6, 6)) / 6, tokens=None), "tokens is required"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs, match):
    kwargs = {"tokens": TOKS, **kwargs}
    attention = kwargs.pop("attention")
    with pytest.raises(ValueError, match=match):
        attention_html(attention, **kwargs)


def test_zero_rows_of_fully_masked_queries_are_accepted_and_tolerance_is_configurable():
    w = np.ones((1, 1, 6, 6)) / 6
    w[0, 0, 5] = 0.0
    attention_html(w, TOKS)
    off = np.ones((1, 1, 6, 6)) / 6 * 1.01
    with pytest.raises(ValueError, match="row_tolerance"):
        AttentionSet(off, TOKS)
    AttentionSet(off, TOKS, row_tolerance=0.02)


def test_activation_checks():
    with pytest.raises(ValueError, match="activations must have rank 2"):
        activation_html(list("ab"), np.zeros(2))
    with pytest.raises(ValueError, match="gates must have shape"):
        activation_html(list("ab"), np.zeros((2, 3)), gates=np.zeros((2, 1, 4)))
    with pytest.raises(ValueError, match="3 tokens"):
        activation_html(list("abc"), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="neither"):
        explorer_html()
    with pytest.raises(ValueError, match="no seqjax explorer data"):
        read_explorer_data("<html></html>")


def test_write_html_is_atomic(tmp_path, monkeypatch):
    """A write that fails part-way leaves the previous page whole and no temporary file."""
    import pathlib

    from seqjax.viz import write_html

    page = tmp_path / "x.html"
    write_html(page, "<p>old</p>")
    real = pathlib.Path.write_text

    def broken(self, text, *args, **kwargs):
        real(self, text[:3], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_text", broken)
    with pytest.raises(OSError, match="disk full"):
        write_html(page, "<p>new</p>")
    monkeypatch.undo()
    assert page.read_text() == "<p>old</p>" and [p.name for p in tmp_path.iterdir()] == ["x.html"]
