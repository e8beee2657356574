"""Word embeddings trained in JAX (skip-gram, CBOW, GloVe, FastText, CharNgram) against gensim's
Word2Vec and FastText on the same tokens: WordSim-353 / SimLex-999 Spearman rho, Google analogies
(3CosAdd, 3CosMul), each with its coverage, and training words per second.

    python -m experiments.embeddings             # the whole corpus (~547k tokens)
    python -m experiments.embeddings --quick     # 60 Lee documents, 1 epoch, d = 16 (the tests)
    python -m experiments.embeddings --resume runs/embeddings/<timestamp>

Corpus: the 106 Wikipedia articles gensim ships (:func:`seqjax.data.corpora.wikipedia_excerpt`,
one sentence per paragraph line) plus the Lee background corpus (one per document), through
:func:`seqjax.text.pipeline.embedding_pipeline` (NFKC, lower case, contractions expanded, BERT's
word splitting, punctuation tokens dropped). Every model sees the same token lists with the same
``dim``, ``window``, ``negative``, ``min_count``, ``epochs``, ``sample`` and learning-rate
schedule (GloVe: its paper's window 10, x_max 100, alpha 3/4, AdaGrad 0.05, ``glove_epochs``).
gensim runs with ``workers`` threads (2 by default; 1 in ``--quick``, which makes it
deterministic). Evaluation follows gensim's ``evaluate_word_pairs`` / ``evaluate_word_analogies``
(vocabulary restricted to the 300k most frequent words, i.e. all of it here; OOV pairs and
questions counted, never hidden). The subword models (ours FastText and CharNgram, gensim's
FastText) are also scored with **out-of-vocabulary words composed from their n-grams**
(``evaluate_word_pairs(..., oov="subword")``): the rho over all pairs they can then score, its
coverage, and the rho over the composed pairs alone (the pairs the word-level models cannot
score). The analogy accuracy is broken down by section (the 5 semantic and 9 syntactic sections
of Mikolov et al. 2013), each with its coverage. Words per second: corpus tokens x epochs / wall time of vocabulary
building plus training (ours: host-side batch generation included; compile time included).

One checkpoint per finished model (``--resume`` retrains only the model a killed run was in).
Every model's vectors are saved as ``<model>_vectors.txt`` (word2vec text format; subword tables
are not saved, so composing unseen words needs the model retrained).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar, Sequence

import numpy as np

from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, run_experiment

NAME = "embeddings"
SOURCES = ("wikipedia", "lee")
MODELS = ("skipgram", "cbow", "glove", "fasttext", "charngram", "gensim_skipgram", "gensim_cbow", "gensim_fasttext")
PROBES = ("king", "war", "music", "france", "science", "water", "president", "january")
GROUPS = {
    "countries": ("france", "germany", "italy", "spain", "russia", "japan", "china", "england", "greece", "egypt"),
    "capitals": ("paris", "berlin", "rome", "madrid", "moscow", "tokyo", "beijing", "london", "athens", "cairo"),
    "numbers": ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    "months": ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october"),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Train every model on the same tokens and evaluate them alike."""

    QUICK: ClassVar[dict[str, Any]] = {"sources": ("lee",), "max_lines": 60, "epochs": 1, "glove_epochs": 1, "dim": 16,
                                       "min_count": 3, "bucket": 20000, "gensim_workers": 1}

    models: tuple[str, ...] = option(MODELS, "models to train, in order")
    sources: tuple[str, ...] = option(SOURCES, "corpora, in order: wikipedia (106 articles), lee (background)")
    max_lines: int = option(0, "use only the first this many corpus lines (0: all)")
    dim: int = option(100, "vector dimension")
    window: int = option(5, "context window (word2vec-style models)")
    negative: int = option(5, "negative samples per target")
    min_count: int = option(5, "ignore words seen fewer times")
    epochs: int = option(5, "epochs of the word2vec-style models")
    sample: float = option(1e-3, "frequent-word subsampling threshold")
    alpha: float = option(0.025, "initial learning rate (decays linearly to 1e-4)")
    bucket: int = option(200_000, "FastText hash buckets (ours and gensim's)")
    glove_window: int = option(10, "GloVe co-occurrence window")
    glove_epochs: int = option(50, "GloVe AdaGrad epochs (the paper: 50 for d < 300)")
    gensim_workers: int = option(2, "gensim worker threads")
    seed: int = option(0, "random seed (ours and gensim's)")
    checkpoint_every: int = option(1, "save a checkpoint every this many finished models")

    def __post_init__(self):
        bad = [m for m in self.models if m not in MODELS]
        if not self.models or bad or len(set(self.models)) != len(self.models):
            raise ValueError(f"models must be distinct names from {MODELS}; got {self.models}.")
        for name in ("dim", "window", "negative", "min_count", "epochs", "bucket", "glove_window",
                     "glove_epochs", "gensim_workers", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if not self.sources or any(x not in SOURCES for x in self.sources) or len(set(self.sources)) != len(self.sources):
            raise ValueError(f"sources must be distinct names from {SOURCES}; got {self.sources}.")
        if self.max_lines < 0:
            raise ValueError(f"max_lines must be >= 0; got {self.max_lines}.")


def corpus(config: Config) -> list[list[str]]:
    """The token lists every model trains on (see the module docstring)."""
    from seqjax.data.corpora import lee_corpus, wikipedia_excerpt
    from seqjax.text.pipeline import embedding_pipeline

    lines = []
    for source in config.sources:
        if source == "wikipedia":
            lines += [line for _, text in wikipedia_excerpt() for line in text.splitlines()]
        else:
            lines += lee_corpus("background")
    if config.max_lines:
        lines = lines[:config.max_lines]
    pipeline = embedding_pipeline()
    return [tokens for tokens in (pipeline(line) for line in lines) if tokens]


def train(model: str, sentences: list[list[str]], config: Config):
    """``WordVectors`` of ``model`` trained on ``sentences``."""
    from seqjax.text.embeddings import charngram, fasttext, glove, word2vec
    from seqjax.text.embeddings.vectors import WordVectors

    common = dict(dim=config.dim, window=config.window, negative=config.negative, min_count=config.min_count,
                  epochs=config.epochs, sample=config.sample, alpha=config.alpha, seed=config.seed)
    if model in ("skipgram", "cbow"):
        return word2vec.train_word2vec(sentences, word2vec.Word2VecConfig(sg=model == "skipgram", **common), desc=model)
    if model == "fasttext":
        return fasttext.train_fasttext(sentences, fasttext.FastTextConfig(bucket=config.bucket, **common), desc=model)
    if model == "charngram":
        return charngram.train_charngram(sentences, charngram.CharNgramConfig(**common), desc=model)
    if model == "glove":
        return glove.train_glove(sentences, glove.GloVeConfig(dim=config.dim, window=config.glove_window,
                                                              min_count=config.min_count, epochs=config.glove_epochs,
                                                              seed=config.seed), desc=model)[0]
    from gensim.models import FastText, Word2Vec

    kwargs = dict(vector_size=config.dim, window=config.window, negative=config.negative, min_count=config.min_count,
                  epochs=config.epochs, sample=config.sample, alpha=config.alpha, min_alpha=1e-4,
                  workers=config.gensim_workers, seed=config.seed, hs=0)
    if model == "gensim_fasttext":
        m = FastText(sentences, sg=1, min_n=3, max_n=6, bucket=config.bucket, **kwargs)
    else:
        m = Word2Vec(sentences, sg=int(model == "gensim_skipgram"), **kwargs)
    oov = (lambda word: np.asarray(m.wv[word])) if model == "gensim_fasttext" else None  # gensim composes n-grams
    return WordVectors(m.wv.index_to_key, m.wv.vectors, oov=oov)


def evaluate(vectors) -> dict[str, Any]:
    """WS-353, SimLex-999 and the analogies (both methods), each with coverage; probe neighbours."""
    from seqjax.data.corpora import analogy_questions, simlex999, wordsim353
    from seqjax.text.evaluation import evaluate_word_analogies, evaluate_word_pairs

    out: dict[str, Any] = {"vocab": len(vectors)}
    for name, pairs in (("wordsim353", wordsim353()), ("simlex999", simlex999())):
        out[name] = evaluate_word_pairs(vectors, pairs)
        if vectors.oov is not None:  # FastText / CharNgram: unseen words from their n-grams
            out[f"{name}_subword"] = evaluate_word_pairs(vectors, pairs, oov="subword")
    sections = analogy_questions()
    for method in ("3cosadd", "3cosmul"):
        r = evaluate_word_analogies(vectors, sections, method=method)
        out[f"analogy_{method}"] = {k: r[k] for k in ("accuracy", "correct", "covered", "questions", "coverage",
                                                      "sections")}
    out["neighbours"] = {w: [n for n, _ in vectors.most_similar(w, topn=8)] for w in PROBES if w in vectors}
    words = [w for group in GROUPS.values() for w in group if w in vectors]
    if len(words) >= 3:
        x = vectors.unit[[vectors.index[w] for w in words]]
        x = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        coords = x @ vt[:2].T
        out["pca"] = {w: [float(c[0]), float(c[1])] for w, c in zip(words, coords)}
    return out


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    import jax.numpy as jnp

    t0 = time.perf_counter()
    sentences = corpus(config)
    tokens = sum(len(s) for s in sentences)
    tokenise_s = time.perf_counter() - t0
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        done = resumed.progress if resumed else {"results": [], "train_s": []}
        for index in range(len(done["results"]), len(config.models)):
            model = config.models[index]
            start = time.perf_counter()
            vectors = train(model, sentences, config)
            seconds = time.perf_counter() - start
            result = {"model": model, **evaluate(vectors)}
            vectors.save_word2vec_format(run_dir.path / f"{model}_vectors.txt")
            done["results"].append(result)
            done["train_s"].append(seconds)
            run_dir.log(model=model, vocab=result["vocab"], wordsim353=result["wordsim353"]["spearman"],
                        simlex999=result["simlex999"]["spearman"], analogy=result["analogy_3cosadd"]["accuracy"])
            ckpt.save(index + 1, {"models_done": jnp.asarray(index + 1)}, done, force=True)
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions
    epochs = {m: (config.glove_epochs if m == "glove" else config.epochs) for m in config.models}
    summary = {
        "corpus": {"sentences": len(sentences), "tokens": tokens},
        "models": {r["model"]: {k: v for k, v in r.items() if k not in ("model", "pca")} for r in done["results"]},
        "gensim_workers": config.gensim_workers,
        "environment": environment(),
        "timings": {
            "runtime_s": round(runtime_s, 1), "sessions": sessions, "tokenise_s": round(tokenise_s, 1),
            "train_s": {m: round(s, 2) for m, s in zip(config.models, done["train_s"])},
            "words_per_s": {m: round(tokens * epochs[m] / s) for m, s in zip(config.models, done["train_s"])},
        },
    }
    run_dir.save_figure(plot_projection(done["results"]), "projection")
    run_dir.save_figure(plot_sections(done["results"]), "analogy_sections")
    (run_dir.path / "neighbours.md").write_text(neighbour_table(done["results"]), encoding="utf-8")
    return summary


def plot_projection(results: Sequence[dict]):
    """One panel per model: the 2-D PCA of the chosen word groups' unit vectors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), squeeze=False)
    colours = dict(zip(GROUPS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for ax, r in zip(axes.flat, results):
        for group, words in GROUPS.items():
            for w in words:
                if w in r.get("pca", {}):
                    x, y = r["pca"][w]
                    ax.scatter(x, y, color=colours[group], s=12)
                    ax.annotate(w, (x, y), fontsize=6, color=colours[group])
        ax.set_title(r["model"], fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=g) for g, c in colours.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(GROUPS), fontsize=8)
    fig.suptitle("PCA of word groups (unit vectors), per model")
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return fig


def plot_sections(results: Sequence[dict]):
    """3CosAdd accuracy per analogy section (bars per model), with each section's coverage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results[0]["analogy_3cosadd"]["sections"]) if results else []
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(names)), 4.5))
    width = 0.8 / max(1, len(results))
    for k, r in enumerate(results):
        sec = r["analogy_3cosadd"]["sections"]
        ax.bar(np.arange(len(names)) + k * width, [sec[n]["accuracy"] if sec[n]["covered"] else 0.0 for n in names],
               width, label=r["model"])
    cover = results[0]["analogy_3cosadd"]["sections"] if results else {}
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    ax.set_xticklabels([f"{n}\n{cover[n]['covered']}/{cover[n]['questions']}" for n in names], rotation=45,
                       ha="right", fontsize=7)
    ax.set_ylabel("3CosAdd accuracy (covered questions)")
    ax.set_title("Google analogies by section (covered / questions under each, first model's vocabulary)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def neighbour_table(results: Sequence[dict]) -> str:
    lines = ["| model | probe | nearest neighbours (cosine) |", "|---|---|---|"]
    for r in results:
        for w, ns in r["neighbours"].items():
            lines.append(f"| {r['model']} | {w} | {', '.join(ns)} |")
    return "\n".join(lines) + "\n"


def format_table(summary: dict[str, Any]) -> str:
    t = summary["timings"]
    lines = [f"corpus: {summary['corpus']['tokens']} tokens, {summary['corpus']['sentences']} sentences; "
             f"gensim workers={summary['gensim_workers']}",
             "| model | vocab | WS-353 rho (pairs) | SimLex-999 rho (pairs) | analogy 3CosAdd | analogy 3CosMul "
             "(covered) | words/s |", "|---|---|---|---|---|---|---|"]
    for m, r in summary["models"].items():
        ws, sl, add, mul = r["wordsim353"], r["simlex999"], r["analogy_3cosadd"], r["analogy_3cosmul"]
        lines.append(f"| {m} | {r['vocab']} | {ws['spearman']:.3f} ({ws['covered']}/{ws['pairs']}) | "
                     f"{sl['spearman']:.3f} ({sl['covered']}/{sl['pairs']}) | {add['accuracy']:.3f} | "
                     f"{mul['accuracy']:.3f} ({mul['covered']}/{mul['questions']}) | {t['words_per_s'].get(m, '')} |")
    subword = {m: r for m, r in summary["models"].items() if "wordsim353_subword" in r}
    if subword:
        lines += ["", "unseen words composed from n-grams:",
                  "| model | WS-353 rho (pairs) | WS-353 composed-only rho (pairs) | SimLex-999 rho (pairs) | "
                  "SimLex composed-only rho (pairs) |", "|---|---|---|---|---|"]
        for m, r in subword.items():
            ws, sl = r["wordsim353_subword"], r["simlex999_subword"]
            lines.append(f"| {m} | {ws['spearman']:.3f} ({ws['covered']}/{ws['pairs']}) | "
                         f"{ws['spearman_composed']:.3f} ({ws['composed']}) | {sl['spearman']:.3f} "
                         f"({sl['covered']}/{sl['pairs']}) | {sl['spearman_composed']:.3f} ({sl['composed']}) |")
    models = [m for m, r in summary["models"].items() if "sections" in r["analogy_3cosadd"]]
    if models:
        first = summary["models"][models[0]]["analogy_3cosadd"]["sections"]
        lines += ["", "3CosAdd accuracy by analogy section (covered/questions in the first model's vocabulary):",
                  "| section | covered | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
        for name, sec in first.items():
            cells = []
            for m in models:
                x = summary["models"][m]["analogy_3cosadd"]["sections"][name]
                cells.append(f"{x['accuracy']:.3f}" if x["covered"] else "-")
            lines.append(f"| {name} | {sec['covered']}/{sec['questions']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, run the experiment, print the table; returns the summary (with ``run_dir``)."""
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
