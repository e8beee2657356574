"""Sequence labelling: BiLSTM(-CRF) taggers against a per-token majority baseline, uni vs bi.

What it measures
    Named-entity tagging (PER, LOC, ORG in IOB2) on a **synthetic** corpus generated offline from
    templates and gazetteers (:mod:`seqjax.data.entity_sentences`: exact labels, ambiguous names
    such as "Jordan" the person and the country, multi-token entities, and a test split whose
    names never occur in training). Scored with span-level F1 in strict IOB2 mode
    (:func:`seqjax.tagging.span_f1`, equal to ``seqeval``'s ``mode="strict", scheme=IOB2``; the run
    also records seqeval's own number when it is installed), on two test sets: sentences with the
    training names (``test_seen``) and with unseen names (``test_unseen``). Contenders:

    * ``majority``: each word gets the tag it had most often in training, ``O`` if unseen;
    * ``lstm`` / ``bilstm``: a unidirectional / bidirectional LSTM over word and shape embeddings,
      a softmax per token (the lecture notes' claim: labelling a token needs the words after it
      too, so the bidirectional encoder should win, most of all at sentence-initial entities);
    * ``lstm_crf`` / ``bilstm_crf``: the same encoders with a linear-chain CRF output layer
      (Lample et al. 2016; :mod:`seqjax.tagging.crf`), trained by its log-likelihood and decoded
      by Viterbi, so tag sequences such as ``O I-PER`` are never predicted.

    The unidirectional LSTM is wider (``uni_hidden``) so that both encoders have about the same
    number of parameters (``metrics.json`` lists them). Words are lower-cased and looked up in
    the training vocabulary; a second embedding of the word's shape (capitalised, lower case,
    punctuation, other) carries the case. During training each word is replaced by ``<unk>``
    with probability ``word_dropout``, so the taggers learn what to do with unknown names. Every
    tagger is trained with ``seeds`` seeds; tables give the mean and the spread over seeds.

Run::

    python -m experiments.tagging            # default (minutes on 2 CPU cores)
    python -m experiments.tagging --quick    # seconds; used by the tests
    python -m experiments.tagging --resume RUN_DIR

Outputs (``runs/tagging/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl`` (training loss), ``metrics.json``, ``tagging.png`` (F1 per model and test
set; F1 per entity type), ``examples.txt`` (test sentences with each model's tags) and
``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from seqjax.primitives import count_scalars
from seqjax.cells import lstm
from seqjax.data import pad_sequences
from seqjax.data.entity_sentences import TAGS, entity_sentences
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.recurrence import bidirectional, rnn
from seqjax.tagging import crf_decode, crf_init, crf_log_likelihood, span_f1
from seqjax.train import clip_by_global_norm, cross_entropy, make_train_step

NAME = "tagging"
MODELS = ("lstm", "bilstm", "lstm_crf", "bilstm_crf")
TEST_SPLITS = ("test_seen", "test_unseen")
PAD, UNK = "<pad>", "<unk>"
SHAPES = ("pad", "capitalised", "lower", "punctuation", "other")
COLORS = {"majority": "0.5", "lstm": "tab:blue", "bilstm": "tab:orange", "lstm_crf": "tab:cyan",
          "bilstm_crf": "tab:red"}


@dataclasses.dataclass(frozen=True)
class Config:
    """Tag entities with (Bi)LSTM(-CRF) taggers against a per-token majority baseline."""

    QUICK: ClassVar[dict[str, Any]] = {"train_sentences": 300, "test_sentences": 100, "steps": 40,
                                       "seeds": 1, "models": ("bilstm_crf",)}

    models: tuple[str, ...] = option(MODELS, "taggers: lstm, bilstm, lstm_crf, bilstm_crf")
    train_sentences: int = option(3000, "training sentences")
    test_sentences: int = option(1000, "sentences per test set")
    word_dim: int = option(48, "word embedding width")
    shape_dim: int = option(8, "shape embedding width")
    hidden: int = option(64, "LSTM width per direction of the bidirectional encoders")
    uni_hidden: int = option(96, "LSTM width of the unidirectional encoders (about the same parameters)")
    word_dropout: float = option(0.15, "probability of replacing a training word by <unk>")
    steps: int = option(1200, "Adam steps per tagger")
    batch_size: int = option(32, "sentences per step")
    learning_rate: float = option(5e-3, "Adam learning rate (cosine decay to 0)")
    clip_norm: float = option(5.0, "gradient clipping by global norm")
    seeds: int = option(3, "training seeds per tagger")
    seed: int = option(0, "base random seed (data and models)")
    checkpoint_every: int = option(400, "save a checkpoint every this many steps (all taggers counted)")

    def __post_init__(self):
        if not self.models or any(m not in MODELS for m in self.models) or len(set(self.models)) != len(self.models):
            raise ValueError(f"models must be distinct values of {MODELS}; got {self.models}.")
        for name in ("train_sentences", "test_sentences", "word_dim", "shape_dim", "hidden", "uni_hidden",
                     "steps", "batch_size", "seeds", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if not 0.0 <= self.word_dropout < 1.0:
            raise ValueError(f"word_dropout must lie in [0, 1); got {self.word_dropout}.")
        for name in ("learning_rate", "clip_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}.")


# --- data -------------------------------------------------------------------------------------


def shape(word: str) -> int:
    if word[:1].isupper() and word[1:].islower():
        return SHAPES.index("capitalised")
    if word.islower():
        return SHAPES.index("lower")
    if all(not c.isalnum() for c in word):
        return SHAPES.index("punctuation")
    return SHAPES.index("other")


class Corpus:
    """The three splits as padded arrays: ``words``, ``shapes``, ``tags`` ``[n, t]``, ``lengths``."""

    def __init__(self, config: Config):
        self.sentences = {"train": entity_sentences(config.train_sentences, split="train", seed=config.seed)}
        for split in TEST_SPLITS:
            self.sentences[split] = entity_sentences(config.test_sentences, split=split, seed=config.seed)
        counts = Counter(w.lower() for words, _ in self.sentences["train"] for w in words)
        self.vocab = [PAD, UNK] + sorted(counts)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.arrays = {split: self.encode(sents) for split, sents in self.sentences.items()}

    def encode(self, sentences) -> dict[str, np.ndarray]:
        unk = self.index[UNK]
        words = [[self.index.get(w.lower(), unk) for w in ws] for ws, _ in sentences]
        shapes = [[shape(w) for w in ws] for ws, _ in sentences]
        tags = [[TAGS.index(t) for t in ts] for _, ts in sentences]
        padded_words, lengths = pad_sequences(words, pad_value=0)
        padded_shapes, _ = pad_sequences(shapes, pad_value=0)
        padded_tags, _ = pad_sequences(tags, pad_value=0)
        return {"words": np.asarray(padded_words, np.int32), "shapes": np.asarray(padded_shapes, np.int32),
                "tags": np.asarray(padded_tags, np.int32), "lengths": np.asarray(lengths, np.int32)}


def majority_tagger(corpus: Corpus):
    """Each word's most frequent training tag (ties: the first in :data:`TAGS` order); ``O`` if unseen."""
    by_word: dict[str, Counter] = {}
    for words, tags in corpus.sentences["train"]:
        for w, t in zip(words, tags):
            by_word.setdefault(w.lower(), Counter())[t] += 1
    best = {w: min(c, key=lambda t: (-c[t], TAGS.index(t))) for w, c in by_word.items()}
    return lambda words: [best.get(w.lower(), "O") for w in words]


# --- taggers ----------------------------------------------------------------------------------


def bidirectional_model(model: str) -> bool:
    return model.startswith("bi")


def uses_crf(model: str) -> bool:
    return model.endswith("_crf")


def init_model(model: str, key: jax.Array, vocab: int, config: Config) -> dict:
    k_w, k_s, k_f, k_b, k_o, k_c = jax.random.split(key, 6)
    features = config.word_dim + config.shape_dim
    cell = lstm()
    if bidirectional_model(model):
        encoder = {"forward": cell.init(k_f, features, config.hidden),
                   "backward": cell.init(k_b, features, config.hidden)}
        width = 2 * config.hidden
    else:
        encoder = cell.init(k_f, features, config.uni_hidden)
        width = config.uni_hidden
    params = {
        "words": jax.random.normal(k_w, (vocab, config.word_dim)) * 0.1,
        "shapes": jax.random.normal(k_s, (len(SHAPES), config.shape_dim)) * 0.1,
        "encoder": encoder,
        "readout": {"w": jax.random.normal(k_o, (width, len(TAGS))) / math.sqrt(width),
                    "b": jnp.zeros((len(TAGS),))},
    }
    if uses_crf(model):
        params["crf"] = crf_init(k_c, len(TAGS))
    return params


def emissions(model: str, params: dict, words, shapes, lengths) -> jax.Array:
    """Per-token tag scores ``[b, t, K]``."""
    x = jnp.concatenate([params["words"][words], params["shapes"][shapes]], axis=-1)
    if bidirectional_model(model):
        h = bidirectional(lstm(), params["encoder"], x, seq_lengths=lengths)
    else:
        h = rnn(lstm(), params["encoder"], x, seq_lengths=lengths)
    return h @ params["readout"]["w"] + params["readout"]["b"]


def make_loss(model: str, config: Config):
    def loss_fn(params, batch, key):
        words = batch["words"]
        if config.word_dropout > 0:  # <unk> (id 1) in place of real words (not padding)
            drop = jax.random.bernoulli(key, config.word_dropout, words.shape) & (words > 0)
            words = jnp.where(drop, 1, words)
        scores = emissions(model, params, words, batch["shapes"], batch["lengths"])
        valid = jnp.arange(words.shape[1])[None, :] < batch["lengths"][:, None]
        if uses_crf(model):
            ll = jax.vmap(crf_log_likelihood, in_axes=(None, 0, 0, 0))(params["crf"], scores, batch["tags"],
                                                                      batch["lengths"])
            return -jnp.sum(ll) / jnp.sum(valid)  # per token, like the softmax loss
        return cross_entropy(scores, batch["tags"], mask=valid)

    return loss_fn


def make_predict(model: str):
    @jax.jit
    def predict(params, words, shapes, lengths):
        scores = emissions(model, params, words, shapes, lengths)
        if uses_crf(model):
            return jax.vmap(crf_decode, in_axes=(None, 0, 0))(params["crf"], scores, lengths)[0]
        return jnp.argmax(scores, axis=-1)

    return predict


def tag_strings(ids: np.ndarray, lengths: np.ndarray) -> list[list[str]]:
    return [[TAGS[int(i)] for i in row[:n]] for row, n in zip(ids, lengths)]


def invalid_continuations(predicted: list[list[str]]) -> float:
    """The fraction of predicted ``I-X`` tags that continue no ``B-X``/``I-X`` (invalid IOB2: a
    per-token softmax can produce them, a CRF trained on valid sequences learns not to)."""
    inside = invalid = 0
    for tags in predicted:
        for i, tag in enumerate(tags):
            if tag.startswith("I-"):
                inside += 1
                invalid += i == 0 or tags[i - 1] not in (f"B-{tag[2:]}", tag)
    return invalid / inside if inside else 0.0


def scores_for(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, Any]:
    """Strict span F1 (ours, and seqeval's when installed) and token accuracy."""
    out = span_f1(gold, predicted)
    tokens = [(g, p) for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps)]
    out["token_accuracy"] = sum(g == p for g, p in tokens) / len(tokens)
    # Sentence-initial entities: the first token is B-X in gold, was it tagged B-X?
    first = [(gs[0], ps[0]) for gs, ps in zip(gold, predicted) if gs[0] != "O"]
    out["initial_entity_accuracy"] = sum(g == p for g, p in first) / len(first) if first else None
    out["invalid_continuations"] = invalid_continuations(predicted)
    try:
        from seqeval.metrics import f1_score
        from seqeval.scheme import IOB2
    except ImportError:
        out["seqeval_f1"] = None
    else:
        out["seqeval_f1"] = float(f1_score(gold, predicted, mode="strict", scheme=IOB2, zero_division=0))
    return out


# --- training ---------------------------------------------------------------------------------


def plan(config: Config) -> list[tuple[str, int]]:
    return [(m, s) for m in config.models for s in range(config.seeds)]


def train_one(index: int, runs: list, corpus: Corpus, config: Config, run_dir: RunDir, bar,
              ckpt: RunCheckpoints, sweep: dict) -> None:
    model, seed = runs[index]
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), MODELS.index(model)), seed)
    params = init_model(model, jax.random.fold_in(key, 0), len(corpus.vocab), config)
    optimizer = optax.chain(clip_by_global_norm(config.clip_norm),
                            optax.adam(optax.cosine_decay_schedule(config.learning_rate, config.steps)))
    step = make_train_step(make_loss(model, config), optimizer)
    current, state = ckpt.sweep_run(sweep, index, {"params": params, "opt_state": optimizer.init(params)},
                                    lambda: {"run": index, "step": 0, "losses": [], "wall_s": 0.0})
    params, opt_state = state["params"], state["opt_state"]
    started, wall_before = time.perf_counter(), current["wall_s"]
    train = {k: jnp.asarray(v) for k, v in corpus.arrays["train"].items()}
    n = train["words"].shape[0]
    last_run = index == len(runs) - 1
    for k in range(current["step"], config.steps):
        step_key = jax.random.fold_in(jax.random.fold_in(key, 1), k)
        idx = jax.random.randint(step_key, (config.batch_size,), 0, n)
        params, opt_state, metrics = step(params, opt_state, {name: v[idx] for name, v in train.items()},
                                          jax.random.fold_in(step_key, 1))
        done = k + 1
        if done % 20 == 0 or done == config.steps:
            loss = float(metrics["loss"])
            current["losses"].append(loss)
            run_dir.log(kind="train", model=model, seed=seed, step=done, loss=loss)
            bar.set_postfix_str(f"{model} s{seed}: loss {loss:.4f}")
        bar.update(1)
        current["step"] = done
        sweep_step = index * config.steps + done
        final = last_run and done == config.steps
        if final or ckpt.due(sweep_step):
            current["wall_s"] = wall_before + time.perf_counter() - started
            ckpt.save(sweep_step, {"params": params, "opt_state": opt_state}, sweep, force=final)

    predict = make_predict(model)
    predictions = {}
    for split in TEST_SPLITS:
        a = corpus.arrays[split]
        ids = np.asarray(predict(params, a["words"], a["shapes"], a["lengths"]))
        predictions[split] = ids
    sweep["finished"].append({"predictions": predictions, "params": count_scalars(params),
                              "final_loss": current["losses"][-1],
                              "wall_s": round(wall_before + time.perf_counter() - started, 2)})
    sweep["current"] = None


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    corpus = Corpus(config)
    runs = plan(config)
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        bar = progress(desc="tagging", total=len(runs) * config.steps, initial=resumed.step if resumed else 0)
        for index in range(len(sweep["finished"]), len(runs)):
            train_one(index, runs, corpus, config, run_dir, bar, ckpt, sweep)
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions

    gold = {s: [tags for _, tags in corpus.sentences[s]] for s in TEST_SPLITS}
    majority = majority_tagger(corpus)
    # Deterministic: one "seed"; the same summary fields as the taggers.
    results = {"majority": {s: mean_over_seeds([scores_for(gold[s], [majority(w) for w, _ in corpus.sentences[s]])])
                            for s in TEST_SPLITS}}
    per_seed, examples, params_count, timings = {}, {}, {}, {}
    for (model, seed), done in zip(runs, sweep["finished"]):
        for s in TEST_SPLITS:
            predicted = tag_strings(done["predictions"][s], corpus.arrays[s]["lengths"])
            per_seed.setdefault(model, {}).setdefault(s, []).append(scores_for(gold[s], predicted))
            if seed == 0:
                examples.setdefault(s, {})[model] = predicted[:8]
        params_count[model] = done["params"]
        timings.setdefault(model, []).append(done["wall_s"])
    for model, by_split in per_seed.items():
        results[model] = {s: mean_over_seeds(rows) for s, rows in by_split.items()}
    write_examples(run_dir, corpus, examples, majority)
    summary = {
        "results": results,
        "parameters": params_count,
        "corpus": {"train_sentences": config.train_sentences, "test_sentences": config.test_sentences,
                   "vocabulary": len(corpus.vocab),
                   "test_unseen_oov_token_rate": oov_rate(corpus, "test_unseen"),
                   "test_seen_oov_token_rate": oov_rate(corpus, "test_seen"), "synthetic": True},
        "scoring": "strict IOB2 span F1, micro-averaged (seqjax.tagging.span_f1; seqeval_f1 is seqeval's own)",
        "environment": environment(),
        "timings": {"runtime_s": round(runtime_s, 1), "sessions": sessions, "wall_s": timings},
    }
    run_dir.save_figure(plot(results, config), "tagging")
    return summary


def oov_rate(corpus: Corpus, split: str) -> float:
    a = corpus.arrays[split]
    valid = np.arange(a["words"].shape[1])[None, :] < a["lengths"][:, None]
    return float(np.mean(a["words"][valid] == 1))


def mean_over_seeds(rows: list[dict]) -> dict[str, Any]:
    out = {}
    for key in ("f1", "precision", "recall", "token_accuracy", "initial_entity_accuracy", "invalid_continuations",
                "seqeval_f1"):
        values = [r[key] for r in rows if r[key] is not None]
        out[key] = float(np.mean(values)) if values else None
        if key == "f1":
            out["f1_std"], out["f1_per_seed"] = float(np.std(values)), [float(v) for v in values]
    out["per_type"] = {k: float(np.mean([r["per_type"][k]["f1"] if k in r["per_type"] else 0.0 for r in rows]))
                       for k in ("PER", "LOC", "ORG")}
    out["seeds"] = len(rows)
    return out


def write_examples(run_dir: RunDir, corpus: Corpus, examples: dict, majority) -> None:
    lines = []
    for split, by_model in examples.items():
        lines.append(f"== {split}")
        for i, (words, tags) in enumerate(corpus.sentences[split][:8]):
            lines.append(" ".join(words))
            lines.append(f"  {'gold':<11} " + " ".join(tags))
            lines.append(f"  {'majority':<11} " + " ".join(majority(words)))
            for model, predicted in by_model.items():
                lines.append(f"  {model:<11} " + " ".join(predicted[i]))
        lines.append("")
    (run_dir.path / "examples.txt").write_text("\n".join(lines) + "\n")


def format_table(summary: dict[str, Any]) -> str:
    header = (f"{'model':<11} {'params':>8} | " + " | ".join(f"{s + ' F1':>18} {'tok acc':>7} {'init':>5}"
                                                           for s in TEST_SPLITS))
    lines = [header, "-" * len(header)]
    for model, by_split in summary["results"].items():
        cells = []
        for s in TEST_SPLITS:
            r = by_split[s]
            spread = f"±{r['f1_std']:.3f}" if "f1_std" in r else ""
            init = f"{r['initial_entity_accuracy']:.2f}" if r["initial_entity_accuracy"] is not None else "-"
            cells.append(f"{r['f1']:>11.3f}{spread:>7} {r['token_accuracy']:>7.3f} {init:>5}")
        lines.append(f"{model:<11} {summary['parameters'].get(model, 0):>8} | " + " | ".join(cells))
    return "\n".join(lines)


def plot(results: dict, config: Config) -> Figure:
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax, ax_types = fig.subplots(1, 2)
    models = list(results)
    x = np.arange(len(TEST_SPLITS))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        f1 = [results[model][s]["f1"] for s in TEST_SPLITS]
        err = [results[model][s].get("f1_std", 0.0) for s in TEST_SPLITS]
        ax.bar(x + i * width, f1, width, yerr=err, color=COLORS[model], label=model)
        types = ["PER", "LOC", "ORG"]
        ax_types.bar(np.arange(3) + i * width,
                     [results[model]["test_unseen"]["per_type"].get(k, 0.0) for k in types], width,
                     color=COLORS[model], label=model)
    ax.set_xticks(x + 0.4 - width / 2, TEST_SPLITS)
    ax.set_ylabel("strict span F1")
    ax.set_ylim(0, 1.02)
    ax.set_title("Entity F1 (mean over seeds, bars: std)")
    ax_types.set_xticks(np.arange(3) + 0.4 - width / 2, ["PER", "LOC", "ORG"])
    ax_types.set_ylim(0, 1.02)
    ax_types.set_title("F1 per type, unseen names")
    ax_types.legend(fontsize=8, loc="lower right")
    for a in (ax, ax_types):
        a.grid(True, axis="y", alpha=0.3)
    return fig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
