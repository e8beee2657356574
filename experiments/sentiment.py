"""Sentence sentiment on 200 movie-review sentences: BiLSTM poolings against bag-of-words baselines.

What it measures
    The 200 sentences of Pang & Lee's sentence-polarity data that gensim ships (100 negative,
    100 positive; :func:`seqjax.data.corpora.pang_lee_polarity`). So few examples make one split's
    accuracy noisy, so every model is scored by **repeated stratified k-fold cross-validation**
    (:func:`seqjax.data.cross_validation.stratified_k_fold`: ``folds`` x ``repeats`` test folds,
    each model on the same splits); tables give the mean test accuracy and its spread (standard
    deviation over folds). Per fold the vocabulary is the training part's words (the rest
    ``[UNK]``), so nothing is learnt from test sentences. Models:

    * ``bow_logreg``: logistic regression on binary bag-of-words features with an L2 penalty
      (the classic baseline for short-text sentiment);
    * ``mean_embedding``: trainable word embeddings averaged over the sentence, then a linear
      layer (a fastText-style classifier, Joulin et al. 2017);
    * ``bilstm_last``, ``bilstm_mean``, ``bilstm_attention``: a bidirectional LSTM over the same
      embeddings, read out from its last states (the forward state after the last word with the
      backward state after the first), from the mean of its outputs over the valid steps, or from
      an additive-attention pooling ``a = softmax_t(v . tanh(W h_t))``, ``c = sum_t a_t h_t``
      (Yang et al. 2016's attention pooling without the hierarchy), each then linear.

    All neural models train with AdamW for ``steps`` steps on mini-batches, dropout on the pooled
    vector, the same hyper-parameters on every fold (no tuning on test folds).

Run::

    python -m experiments.sentiment            # default (minutes on 2 CPU cores)
    python -m experiments.sentiment --quick    # seconds; used by the tests
    python -m experiments.sentiment --resume RUN_DIR

Outputs (``runs/sentiment/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl`` (test accuracy per model and fold), ``metrics.json``, ``sentiment.png``
(accuracy per model over folds; attention weights of example sentences) and ``checkpoints/``.
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

from seqjax.cells import lstm
from seqjax.data import pad_sequences
from seqjax.data.corpora import pang_lee_polarity
from seqjax.data.cross_validation import stratified_k_fold
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.primitives import dropout
from seqjax.recurrence import bidirectional
from seqjax.train import cross_entropy, make_train_step

NAME = "sentiment"
MODELS = ("bow_logreg", "mean_embedding", "bilstm_last", "bilstm_mean", "bilstm_attention")
PAD, UNK = 0, 1
COLORS = {"bow_logreg": "0.45", "mean_embedding": "tab:olive", "bilstm_last": "tab:blue",
          "bilstm_mean": "tab:orange", "bilstm_attention": "tab:red"}


@dataclasses.dataclass(frozen=True)
class Config:
    """Sentiment of 200 sentences: BiLSTM last/mean/attention pooling vs bag-of-words baselines."""

    QUICK: ClassVar[dict[str, Any]] = {"folds": 2, "repeats": 1, "steps": 30,
                                       "models": ("bow_logreg", "bilstm_attention")}

    models: tuple[str, ...] = option(MODELS, "models: " + ", ".join(MODELS))
    folds: int = option(5, "k of the stratified k-fold cross-validation")
    repeats: int = option(3, "repetitions of the k-fold split with new shuffles")
    embed: int = option(64, "word embedding width")
    hidden: int = option(64, "LSTM width per direction")
    steps: int = option(300, "AdamW steps per model and fold")
    batch_size: int = option(32, "sentences per step")
    learning_rate: float = option(3e-3, "AdamW learning rate")
    weight_decay: float = option(1e-2, "AdamW weight decay (bow_logreg: its L2 penalty)")
    dropout_rate: float = option(0.3, "dropout on the pooled sentence vector")
    seed: int = option(0, "random seed (splits and models)")
    checkpoint_every: int = option(1000, "save a checkpoint every this many steps (all runs counted)")

    def __post_init__(self):
        if not self.models or any(m not in MODELS for m in self.models) or len(set(self.models)) != len(self.models):
            raise ValueError(f"models must be distinct values of {MODELS}; got {self.models}.")
        for name in ("folds", "repeats", "embed", "hidden", "steps", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2; got {self.folds}.")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must lie in [0, 1); got {self.dropout_rate}.")
        for name in ("learning_rate",):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}.")


# --- data -------------------------------------------------------------------------------------


class Data:
    """The sentences as word lists, labels (1 = positive) and the table size every fold shares."""

    def __init__(self):
        pairs = pang_lee_polarity()
        self.sentences = [s.split() for _, s in pairs]
        self.labels = np.array([1 if label == "pos" else 0 for label, _ in pairs], np.int32)
        # Every fold's vocabulary fits a table of this size (ids beyond a fold's words stay
        # unused), so the shapes, and the compiled steps, are the same on every fold.
        self.table = 2 + len({w for s in self.sentences for w in s})

    def fold(self, train: np.ndarray, test: np.ndarray) -> dict[str, dict[str, jnp.ndarray]]:
        """Ids from the training part's vocabulary (test-only words: ``[UNK]``), padded to the
        longest sentence of the corpus."""
        counts = Counter(w for i in train for w in self.sentences[i])
        index = {w: 2 + j for j, w in enumerate(sorted(counts))}
        width = max(len(s) for s in self.sentences)
        out = {}
        for name, rows in (("train", train), ("test", test)):
            ids = [[index.get(w, UNK) for w in self.sentences[i]] for i in rows]
            padded, lengths = pad_sequences(ids, pad_value=PAD, max_length=width)
            out[name] = {"tokens": jnp.asarray(padded, jnp.int32), "lengths": jnp.asarray(lengths, jnp.int32),
                         "labels": jnp.asarray(self.labels[rows])}
        return out


# --- models -----------------------------------------------------------------------------------


def init_model(model: str, key: jax.Array, table: int, config: Config) -> dict:
    k_e, k_f, k_b, k_a, k_v, k_o = jax.random.split(key, 6)
    if model == "bow_logreg":
        return {"w": jnp.zeros((table, 2)), "b": jnp.zeros((2,))}
    params = {"embed": jax.random.normal(k_e, (table, config.embed)) * 0.1}
    width = config.embed
    if model.startswith("bilstm"):
        params["encoder"] = {"forward": lstm().init(k_f, config.embed, config.hidden),
                             "backward": lstm().init(k_b, config.embed, config.hidden)}
        width = 2 * config.hidden
    if model == "bilstm_attention":
        params["attention"] = {"w": jax.random.normal(k_a, (width, width)) / math.sqrt(width),
                               "b": jnp.zeros((width,)), "v": jax.random.normal(k_v, (width,)) / math.sqrt(width)}
    params["out"] = {"w": jax.random.normal(k_o, (width, 2)) / math.sqrt(width), "b": jnp.zeros((2,))}
    return params


def attention_pool(params: dict, h: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(sum_t a_t h_t [b, d], a [b, t])`` with ``a = softmax over valid t of v . tanh(W h_t + b)``."""
    scores = jnp.tanh(h @ params["w"] + params["b"]) @ params["v"]
    scores = jnp.where(valid, scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1) * valid
    return jnp.einsum("bt,btd->bd", weights, h), weights


def sentence_vector(model: str, params: dict, tokens: jax.Array, lengths: jax.Array, hidden: int):
    """``(pooled [b, d], attention weights [b, t] or None)``."""
    valid = jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]
    x = params["embed"][tokens]
    if model == "mean_embedding":
        return jnp.sum(x * valid[..., None], 1) / jnp.maximum(lengths, 1)[:, None], None
    h = bidirectional(lstm(), params["encoder"], x, seq_lengths=lengths)
    if model == "bilstm_last":
        last = jnp.take_along_axis(h[..., :hidden], jnp.maximum(lengths - 1, 0)[:, None, None], axis=1)[:, 0]
        return jnp.concatenate([last, h[:, 0, hidden:]], axis=-1), None  # backward: its state after word 1
    if model == "bilstm_mean":
        return jnp.sum(h * valid[..., None], 1) / jnp.maximum(lengths, 1)[:, None], None
    return attention_pool(params["attention"], h, valid)


def logits_of(model: str, params: dict, batch: dict, hidden: int, rate: float = 0.0, key=None) -> jax.Array:
    if model == "bow_logreg":
        tokens = batch["tokens"]
        present = jax.nn.one_hot(tokens, params["w"].shape[0]).max(axis=1).at[:, PAD].set(0.0)
        return present @ params["w"] + params["b"]
    pooled, _ = sentence_vector(model, params, batch["tokens"], batch["lengths"], hidden)
    pooled = dropout(pooled, rate, key)
    return pooled @ params["out"]["w"] + params["out"]["b"]


def make_loss(model: str, config: Config):
    def loss_fn(params, batch, key):
        logits = logits_of(model, params, batch, config.hidden, config.dropout_rate, key)
        return cross_entropy(logits, batch["labels"])

    return loss_fn


def make_optimizer(model: str, config: Config) -> optax.GradientTransformation:
    if model == "bow_logreg":  # L2-penalised logistic regression: plain Adam on the penalised loss
        return optax.chain(optax.add_decayed_weights(config.weight_decay), optax.adam(config.learning_rate * 10))
    return optax.adamw(config.learning_rate, weight_decay=config.weight_decay)


# --- runs -------------------------------------------------------------------------------------


def plan(config: Config) -> list[tuple[str, int]]:
    return [(m, f) for m in config.models for f in range(config.folds * config.repeats)]


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    data = Data()
    splits = list(stratified_k_fold(data.labels, config.folds, repeats=config.repeats, seed=config.seed))
    runs = plan(config)
    folds: dict[int, dict] = {}
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        bar = progress(desc="sentiment", total=len(runs) * config.steps, initial=resumed.step if resumed else 0)
        for index in range(len(sweep["finished"]), len(runs)):
            model, f = runs[index]
            if f not in folds:
                folds = {f: data.fold(*splits[f])}  # one fold's arrays at a time
            train_one(index, runs, folds[f], data.table, config, run_dir, bar, ckpt, sweep)
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions

    results, timings = {}, {}
    for (model, f), done in zip(runs, sweep["finished"]):
        results.setdefault(model, []).append(done["accuracy"])
        timings.setdefault(model, []).append(done["wall_s"])
    table = {m: {"mean_accuracy": float(np.mean(a)), "std_accuracy": float(np.std(a)),
                 "min_accuracy": float(np.min(a)), "max_accuracy": float(np.max(a)), "folds": len(a),
                 "per_fold": [float(v) for v in a]} for m, a in results.items()}
    examples = attention_examples(sweep, runs, data, splits, config)
    summary = {
        "results": table,
        "protocol": f"repeated stratified {config.folds}-fold cross-validation, {config.repeats} repeats "
                    f"({config.folds * config.repeats} test folds of ~{len(data.labels) // config.folds} sentences)",
        "data": {"sentences": len(data.labels), "positive": int(data.labels.sum()),
                 "mean_words": float(np.mean([len(s) for s in data.sentences]))},
        "attention_examples": examples,
        "environment": environment(),
        "timings": {"runtime_s": round(runtime_s, 1), "sessions": sessions, "wall_s": timings},
    }
    run_dir.save_figure(plot(table, examples), "sentiment")
    return summary


def train_one(index: int, runs: list, fold: dict, table: int, config: Config, run_dir: RunDir, bar,
              ckpt: RunCheckpoints, sweep: dict) -> None:
    model, f = runs[index]
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), MODELS.index(model)), f)
    params = init_model(model, jax.random.fold_in(key, 0), table, config)
    optimizer = make_optimizer(model, config)
    step = make_train_step(make_loss(model, config), optimizer)
    current, state = ckpt.sweep_run(sweep, index, {"params": params, "opt_state": optimizer.init(params)},
                                    lambda: {"run": index, "step": 0, "wall_s": 0.0})
    params, opt_state = state["params"], state["opt_state"]
    started, wall_before = time.perf_counter(), current["wall_s"]
    train = fold["train"]
    n = train["labels"].shape[0]
    last_run = index == len(runs) - 1
    for k in range(current["step"], config.steps):
        step_key = jax.random.fold_in(jax.random.fold_in(key, 1), k)
        idx = jax.random.randint(step_key, (config.batch_size,), 0, n)
        params, opt_state, _ = step(params, opt_state, {name: v[idx] for name, v in train.items()},
                                    jax.random.fold_in(step_key, 1))
        done = k + 1
        current["step"] = done
        bar.update(1)
        sweep_step = index * config.steps + done
        final = last_run and done == config.steps
        if final or ckpt.due(sweep_step):
            current["wall_s"] = wall_before + time.perf_counter() - started
            ckpt.save(sweep_step, {"params": params, "opt_state": opt_state}, sweep, force=final)
    test = fold["test"]
    logits = jax.jit(lambda p, b: logits_of(model, p, b, config.hidden))(params, test)
    accuracy = float(jnp.mean(jnp.argmax(logits, -1) == test["labels"]))
    run_dir.log(kind="fold", model=model, fold=f, test_accuracy=accuracy)
    bar.set_postfix_str(f"{model} fold {f}: {accuracy:.3f}")
    record = {"accuracy": accuracy, "wall_s": round(wall_before + time.perf_counter() - started, 2)}
    if model == "bilstm_attention" and f == 0:
        record["params"] = jax.device_get(params)  # the first fold's model, for the attention figure
    sweep["finished"].append(record)
    sweep["current"] = None


def attention_examples(sweep: dict, runs: list, data: Data, splits: list, config: Config) -> list[dict]:
    """The first fold's attention model's weights over four of its test sentences."""
    for (model, f), done in zip(runs, sweep["finished"]):
        if "params" in done:
            fold = data.fold(*splits[0])
            test_rows = splits[0][1][:4]
            batch = {k: v[:4] for k, v in fold["test"].items()}
            _, weights = sentence_vector("bilstm_attention", done["params"], batch["tokens"], batch["lengths"],
                                         config.hidden)
            return [{"words": data.sentences[i], "label": int(data.labels[i]),
                     "weights": [float(w) for w in np.asarray(weights[j, :len(data.sentences[i])])]}
                    for j, i in enumerate(test_rows)]
    return []


def format_table(summary: dict[str, Any]) -> str:
    lines = [f"{'model':<18} {'accuracy':>9} {'std':>6} {'min':>6} {'max':>6}", "-" * 50]
    for model, r in sorted(summary["results"].items(), key=lambda kv: -kv[1]["mean_accuracy"]):
        lines.append(f"{model:<18} {r['mean_accuracy']:>9.3f} {r['std_accuracy']:>6.3f} {r['min_accuracy']:>6.3f} "
                     f"{r['max_accuracy']:>6.3f}")
    lines.append(summary["protocol"])
    return "\n".join(lines)


def plot(table: dict, examples: list[dict]) -> Figure:
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax, ax_att = fig.subplots(1, 2, width_ratios=[1, 1.4])
    models = list(table)
    ax.boxplot([table[m]["per_fold"] for m in models], tick_labels=models)
    ax.axhline(0.5, color="k", ls=":", lw=1, label="chance")
    ax.set_ylabel("test accuracy per fold")
    ax.set_title("Cross-validated accuracy (200 sentences)")
    ax.tick_params(axis="x", rotation=25, labelsize=8)
    ax.legend(fontsize=8)
    for row, ex in enumerate(examples):
        words = ex["words"][:20]
        w = np.asarray(ex["weights"][:20])
        ax_att.imshow(w[None, :], extent=(0, len(words), row + 0.1, row + 0.9), aspect="auto", cmap="Reds",
                      vmin=0, vmax=max(w.max(), 1e-6))
        for i, word in enumerate(words):
            ax_att.text(i + 0.5, row + 0.5, word, ha="center", va="center", fontsize=7, rotation=30)
        ax_att.text(-0.3, row + 0.5, "pos" if ex["label"] else "neg", ha="right", va="center", fontsize=8)
    ax_att.set_xlim(-2, 20)
    ax_att.set_ylim(len(examples), 0)
    ax_att.axis("off")
    ax_att.set_title("BiLSTM attention pooling: weights over held-out sentences (fold 1)")
    return fig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
