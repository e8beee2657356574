"""seqjax.data.corpora: text shipped by installed packages; gensim optional, never downloaded."""

import importlib.util
import subprocess
import sys

import pytest

from seqjax.data import corpora
from seqjax.data.corpora import MissingOptionalDependency, load_text, split_held_out


def test_python_docs_is_always_available():
    text = load_text("python_docs")
    assert len(text) > 100_000 and "The \"if\" statement" in text
    assert "python_docs" in corpora.available_corpora()
    assert load_text("python_docs") == text  # deterministic order


def test_split_held_out_is_the_last_fraction():
    text = "".join(chr(97 + i % 26) for i in range(1000))
    train, held = split_held_out(text, 0.1)
    assert train + held == text and len(held) == 100
    with pytest.raises(ValueError, match="fraction"):
        split_held_out(text, 1.5)
    with pytest.raises(ValueError, match="too short"):
        split_held_out("abc", 0.1)


def test_unknown_corpus_is_a_clear_error():
    with pytest.raises(ValueError, match="python_docs"):
        load_text("wikitext")


def test_missing_gensim_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gensim" else real(name, *a))
    assert not corpora.gensim_available()
    assert corpora.available_corpora() == ["python_docs"]
    with pytest.raises(MissingOptionalDependency, match=r"pip install 'seqjax\[corpora\]'") as err:
        corpora.lee_corpus()
    assert isinstance(err.value, ImportError)
    with pytest.raises(MissingOptionalDependency, match="gensim"):
        load_text("lee_background")


def test_core_imports_without_gensim():
    """`import seqjax` and `seqjax.data` never import gensim (it is an optional extra)."""
    code = (
        "import sys; sys.modules['gensim'] = None\n"  # any import of gensim now fails
        "import seqjax, seqjax.data, seqjax.data.corpora\n"
        "assert 'python_docs' in seqjax.data.corpora.CORPORA\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- with gensim installed ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gensim_data():
    pytest.importorskip("gensim")
    return corpora.gensim_test_data()


def test_gensim_corpora_contents(gensim_data):
    assert gensim_data.is_dir()
    background = corpora.lee_corpus("background")
    assert len(background) == 300 and background[0].startswith("Hundreds of people have been forced")
    assert len(corpora.lee_corpus("test")) == 50
    assert any("£" in doc for doc in corpora.lee_corpus("test"))  # Latin-1 decoded
    polarity = corpora.pang_lee_polarity()
    assert len(polarity) == 200 and {label for label, _ in polarity} == {"neg", "pos"}
    assert polarity[0] == ("neg", "simplistic , silly and tedious .")
    assert corpora.text8_excerpt()[0].startswith("anarch greek rule")
    ws = corpora.wordsim353()
    assert len(ws) == 353 and ws[0] == ("love", "sex", 6.77)
    assert len(corpora.simlex999()) == 999 and all(0 <= s <= 10 for *_, s in corpora.simlex999())
    analogies = corpora.analogy_questions()
    assert len(analogies) == 14 and sum(map(len, analogies.values())) == 19544
    assert analogies["capital-common-countries"][0] == ("Athens", "Greece", "Baghdad", "Iraq")


def test_gensim_plain_text_corpora(gensim_data):
    text = load_text("lee_background")
    assert 350_000 < len(text) < 370_000 and text.count("\n") == 300
    for name in ("lee_test", "pang_lee", "text8_excerpt"):
        assert len(load_text(name)) > 10_000, name
    assert set(corpora.available_corpora()) == set(corpora.CORPORA)
    with pytest.raises(FileNotFoundError, match="does not ship"):
        corpora.gensim_test_data("no-such-file.txt")


def test_wikipedia_excerpt_is_plain_text(gensim_data):
    articles = corpora.wikipedia_excerpt()
    assert len(articles) == 106
    titles = [title for title, _ in articles]
    assert titles[0] == "Anarchism" and len(set(titles)) == len(titles)
    text = "\n".join(body for _, body in articles)
    assert 450_000 < len(text.split()) < 500_000
    # No markup left: no templates, links, bold quotes, headings' equals signs or XML entities.
    for marker in ("{{", "[[", "'''", "==", "&amp;", "&quot;", "<ref"):
        assert marker not in text, marker
    assert articles[0][1].startswith("Anarchism is a political philosophy")
    assert corpora.load_text("wikipedia").count("\n\n") == len(articles) - 1
