"""Sentence sentiment on 200 movie-review sentences: BiLSTM poolings, bag-of-words baselines, pretrained initialisations.

Pretrained initialisations (skip-gram word vectors, a pretrained BERT) are compared with training
the same models from scratch.

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

    **Pretrained initialisations**, each against its from-scratch counterpart on the same folds
    (``initialisation_effects``: mean and spread of the per-fold accuracy difference, folds won /
    tied / lost):

    * ``mean_embedding_w2v``, ``bilstm_attention_w2v`` (fine-tuned) and ``*_w2v_frozen`` (the
      table never updated, no weight decay on it): the embedding table initialised from word
      vectors of :mod:`experiments.embeddings` (``--vectors``: its ``skipgram_vectors.txt`` or any
      word2vec text file; without it, skip-gram is trained inside the run on that experiment's
      corpus, Wikipedia excerpt + Lee, and saved in ``vectors/``). A sentence word takes its
      vector, or the mean of the vectors of the words the embeddings' own preprocessing makes of
      it (``it's`` -> ``it``, ``is``); words without one, and ``[UNK]``, are drawn at the vectors'
      scale (Kim 2014). The coverage (word types and tokens of the 200 sentences with a vector) is
      reported. Their width is the vectors' (100 by default), as is ``embed``'s default, so the
      from-scratch models have the same shape.
    * ``bert_pretrained``: a BERT encoder pretrained with masked-language modelling by
      :mod:`experiments.pretrain_tiny` (``--pretrained RUN_DIR``; without it one is pretrained
      inside the run with ``pretrain_steps`` steps, as :mod:`experiments.fine_tuning` does, whose
      loading and pretraining code this reuses), fully fine-tuned with the mean of its last hidden
      states over ``[CLS] sentence [SEP]`` (BPE tokens of the pretraining's vocabulary) and a linear
      head (:class:`experiments.fine_tuning.PassageClassifier`), AdamW with warmup and cosine decay
      for ``bert_steps`` steps; ``bert_scratch``: the same model and training from a random
      initialisation.

Result (``--vectors`` the embeddings experiment's skip-gram, Wikipedia excerpt + Lee, d = 100;
``--pretrained`` the 600-step ``pretrain_tiny --model bert`` run; 5-fold x 3; loaded 2-core machine,
72 min for the nine models below; numbers in ``metrics.json``)
    Mean test accuracy (std over the 15 folds): BERT pretrained 0.593 (0.071), mean embedding
    0.578 (0.082), BiLSTM-attention + skip-gram fine-tuned 0.562 (0.076), BERT from scratch 0.560
    (0.066), mean embedding + skip-gram fine-tuned 0.553 (0.069), bag-of-words 0.550 (0.053),
    BiLSTM-attention 0.540 (0.066), mean embedding + frozen skip-gram 0.508 (0.066),
    BiLSTM-attention + frozen skip-gram 0.502 (0.090). Per-fold difference to the same model from
    scratch: BERT pretraining +0.033 (s.e. 0.017; 9 folds won, 3 tied, 3 lost), the only
    initialisation that helps with some consistency; fine-tuned skip-gram in the BiLSTM +0.022
    (0.025; 8/2/5) and in the mean-embedding model -0.025 (0.018; 4/3/8), within noise; frozen
    skip-gram hurts both, -0.070 (0.024; 2/2/11) and -0.038 (0.028; 5/1/9). The vectors cover 71%
    of the sentences' tokens (1020 of 1693 word types; ``funny`` and ``compelling`` are among the
    missing: encyclopedic and news text is a poor source of sentiment words), and skip-gram's
    neighbourhoods are topical, not polar. The standard errors treat overlapping folds as
    independent and so understate the uncertainty; everything stays within ~0.1 of chance.
    With the default 3000-step ``pretrain_tiny`` BERT (ALiBi, 8 heads; ``--models
    bert_scratch,bert_pretrained``, the same 15 folds, 17 min loaded): pretrained 0.627 (0.066)
    against 0.578 (0.075) from scratch, +0.048 per fold (s.e. 0.021; 10 won, 1 tied, 4 lost).

Run::

    python -m experiments.sentiment            # default (minutes on 2 CPU cores)
    python -m experiments.sentiment --quick    # seconds; used by the tests
    python -m experiments.sentiment --resume RUN_DIR
    python -m experiments.sentiment --vectors runs/embeddings/<stamp> --pretrained runs/pretrain_tiny/<stamp>

Outputs (``runs/sentiment/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl`` (test accuracy per model and fold), ``metrics.json``, ``sentiment.png``
(accuracy per model over folds; attention weights of example sentences), ``checkpoints/``,
``vectors/`` and ``pretrain/`` (when trained inside the run).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections import Counter
from pathlib import Path
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
MODELS = ("bow_logreg", "mean_embedding", "bilstm_last", "bilstm_mean", "bilstm_attention",
          "mean_embedding_w2v_frozen", "mean_embedding_w2v", "bilstm_attention_w2v_frozen", "bilstm_attention_w2v",
          "bert_scratch", "bert_pretrained")
PAD, UNK = 0, 1
BERT_MODELS = ("bert_scratch", "bert_pretrained")


def base_model(model: str) -> str:
    """The architecture of ``model``: ``"bilstm_attention_w2v_frozen"`` -> ``"bilstm_attention"``."""
    return model.removesuffix("_frozen").removesuffix("_w2v")


def uses_vectors(model: str) -> bool:
    return "_w2v" in model


@dataclasses.dataclass(frozen=True)
class Config:
    """Sentiment of 200 sentences: BiLSTM last/mean/attention pooling vs bag-of-words baselines."""

    # --quick: 2 folds, 30 steps; skip-gram vectors trained inside the run on 60 Lee lines
    # (d = 16). With --models bert_*, a BERT pretrained for 6 steps at pretrain_tiny's --quick
    # sizes, fine-tuned for 4 steps (the slow tests).
    QUICK: ClassVar[dict[str, Any]] = {"folds": 2, "repeats": 1, "steps": 30, "bert_steps": 4, "pretrain_steps": 6,
                                       "pretrain_quick": True, "vectors_quick": True,
                                       "models": ("bow_logreg", "bilstm_attention", "mean_embedding_w2v_frozen")}

    models: tuple[str, ...] = option(MODELS, "models: " + ", ".join(MODELS))
    folds: int = option(5, "k of the stratified k-fold cross-validation")
    repeats: int = option(3, "repetitions of the k-fold split with new shuffles")
    vectors: str | None = option(None, "word vectors (word2vec text format, or an experiments.embeddings run holding "
                                       "skipgram_vectors.txt) for the *_w2v models; none: train skip-gram in the run")
    vectors_quick: bool = option(False, "train the in-run skip-gram with experiments.embeddings' --quick sizes (tests)")
    pretrained: str | None = option(None, "a pretrain_tiny --model bert run (or its pretrained/ directory) for "
                                          "bert_pretrained; none: pretrain one inside the run")
    pretrain_steps: int = option(300, "steps of the BERT pretrained inside the run when --pretrained is not given")
    pretrain_quick: bool = option(False, "pretrain with pretrain_tiny's --quick sizes (for the tests)")
    bert_steps: int = option(100, "AdamW steps of the BERT models per fold")
    bert_learning_rate: float = option(3e-4, "peak learning rate of the BERT models (warmup, cosine decay)")
    embed: int = option(100, "word embedding width of the models trained from scratch (*_w2v: the vectors' width)")
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
        for name in ("folds", "repeats", "embed", "hidden", "steps", "batch_size", "checkpoint_every", "bert_steps",
                     "pretrain_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2; got {self.folds}.")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must lie in [0, 1); got {self.dropout_rate}.")
        for name in ("learning_rate", "bert_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}.")


# --- data -------------------------------------------------------------------------------------


class Data:
    """The sentences as word lists, labels (1 = positive) and the table size every fold shares;
    with :meth:`add_bert`, the sentences also as ``[CLS] tokens [SEP]`` in a BERT's vocabulary."""

    def __init__(self):
        pairs = pang_lee_polarity()
        self.texts = [s for _, s in pairs]
        self.sentences = [s.split() for s in self.texts]
        self.labels = np.array([1 if label == "pos" else 0 for label, _ in pairs], np.int32)
        # Every fold's vocabulary fits a table of this size (ids beyond a fold's words stay
        # unused), so the shapes, and the compiled steps, are the same on every fold.
        self.table = 2 + len({w for s in self.sentences for w in s})
        self.bert: dict[str, np.ndarray] | None = None

    def add_bert(self, tokenizer: Any, max_positions: int) -> dict[str, int]:
        """Encode every sentence for a BERT (fine_tuning's encoding), cut at ``max_positions``
        (or the longest sentence's length, if shorter); returns its sizes."""
        from experiments.fine_tuning import encode_passages

        longest = max(len(tokenizer.encode(t)) for t in self.texts) + 2
        seq_len = min(max_positions, longest)
        ids, lengths, cut = encode_passages(tokenizer, self.texts, seq_len)
        self.bert = {"bert_ids": ids, "bert_lengths": lengths}
        return {"seq_len": seq_len, "sentences_cut": cut, "mean_tokens": float(np.mean(lengths))}

    def fold(self, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
        """Ids from the training part's vocabulary (test-only words: ``[UNK]``), padded to the
        longest sentence of the corpus; ``"vocab"``: the words of ids 2, 3, ..."""
        counts = Counter(w for i in train for w in self.sentences[i])
        vocab = sorted(counts)
        index = {w: 2 + j for j, w in enumerate(vocab)}
        width = max(len(s) for s in self.sentences)
        out: dict[str, Any] = {"vocab": vocab}
        for name, rows in (("train", train), ("test", test)):
            ids = [[index.get(w, UNK) for w in self.sentences[i]] for i in rows]
            padded, lengths = pad_sequences(ids, pad_value=PAD, max_length=width)
            out[name] = {"tokens": jnp.asarray(padded, jnp.int32), "lengths": jnp.asarray(lengths, jnp.int32),
                         "labels": jnp.asarray(self.labels[rows])}
            if self.bert is not None:
                out[name] |= {k: jnp.asarray(v[rows]) for k, v in self.bert.items()}
        return out


# --- pretrained initialisations ---------------------------------------------------------------


def load_vectors(config: Config, run_dir: RunDir) -> tuple[Any, dict[str, Any]]:
    """``(WordVectors, description)``: ``--vectors`` (a word2vec text file, or an
    :mod:`experiments.embeddings` run directory holding ``skipgram_vectors.txt``), or skip-gram
    vectors trained inside the run by :mod:`experiments.embeddings` on its corpus and settings
    (written to ``<run dir>/vectors/skipgram_vectors.txt`` and read back, so a resumed run uses
    the same numbers)."""
    from seqjax.text.embeddings.vectors import WordVectors

    if config.vectors is not None:
        path = Path(config.vectors)
        if path.is_dir():
            path = path / "skipgram_vectors.txt"
        if not path.is_file():
            raise ValueError(f"vectors must be a word2vec text file or a directory holding skipgram_vectors.txt; "
                             f"got {config.vectors!r} (no {path}).")
        return WordVectors.load_word2vec_format(path), {"path": str(path), "trained_in_run": False}
    from experiments import embeddings

    settings = dict(embeddings.Config.QUICK) if config.vectors_quick else {}
    ecfg = embeddings.Config(**(settings | {"models": ("skipgram",), "seed": config.seed}))
    path = run_dir.path / "vectors" / "skipgram_vectors.txt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        vectors = embeddings.train("skipgram", embeddings.corpus(ecfg), ecfg)
        partial = vectors.save_word2vec_format(path.with_suffix(".tmp"))
        os.replace(partial, path)  # whole or absent after a kill
        (path.parent / "train_s.json").write_text(json.dumps({"train_s": round(time.perf_counter() - start, 1)}))
    return WordVectors.load_word2vec_format(path), {"path": "vectors/skipgram_vectors.txt", "trained_in_run": True,
                                                    "config": dataclasses.asdict(ecfg)}


def vector_of(vectors: Any, word: str) -> np.ndarray | None:
    """``word``'s vector; else, if the embeddings' own preprocessing
    (:func:`seqjax.text.pipeline.embedding_pipeline`: contractions expanded, words split) turns
    it into words that all have vectors, their mean (``"it's"`` -> mean of ``it``, ``is``); else None."""
    from seqjax.text.pipeline import embedding_pipeline

    if word in vectors:
        return vectors.vector(word)
    parts = embedding_pipeline()(word)
    if parts and all(p in vectors for p in parts):
        return np.mean([vectors.vector(p) for p in parts], axis=0)
    return None


def vector_coverage(vectors: Any, sentences: Sequence[Sequence[str]]) -> dict[str, Any]:
    """How many word types and tokens of ``sentences`` :func:`vector_of` finds a vector for."""
    counts = Counter(w for s in sentences for w in s)
    found = {w for w in counts if vector_of(vectors, w) is not None}
    tokens = sum(counts.values())
    return {"types": len(counts), "types_found": len(found), "tokens": tokens,
            "tokens_found": sum(counts[w] for w in found), "token_coverage": sum(counts[w] for w in found) / tokens,
            "missing_examples": sorted((w for w in counts if w not in found), key=lambda w: -counts[w])[:12]}


def pretrained_table(vocab: Sequence[str], vectors: Any, key: jax.Array, table: int) -> jax.Array:
    """``[table, d]``: row ``2 + j`` the vector of ``vocab[j]`` (:func:`vector_of`); words without
    one and ``[UNK]`` drawn from ``N(0, s^2)``, ``s`` the vectors' standard deviation (Kim 2014's
    scheme: unknown words at the pretrained vectors' scale); ``[PAD]`` and unused rows zero."""
    if 2 + len(vocab) > table:
        raise ValueError(f"table must hold 2 + {len(vocab)} rows; got {table}.")
    scale = float(np.std(vectors.vectors))
    rows = np.zeros((table, vectors.dim), np.float32)
    rows[1: 2 + len(vocab)] = np.asarray(jax.random.normal(key, (1 + len(vocab), vectors.dim))) * scale
    for j, word in enumerate(vocab):
        v = vector_of(vectors, word)
        if v is not None:
            rows[2 + j] = v
    return jnp.asarray(rows)


class BertClassifier:
    """:class:`experiments.fine_tuning.PassageClassifier` (BERT, mean of the last hidden states
    over the valid tokens, dropout, linear) over ``[CLS] sentence [SEP]``, as pure pieces: its
    ``params`` and ``logits(params, batch, key)``. ``pretrained``: the encoder's weights copied
    from ``pre``; else the same architecture randomly initialised."""

    def __init__(self, pre: Any, pretrained: bool, key: jax.Array):
        from flax import nnx

        from experiments.fine_tuning import PassageClassifier
        from seqjax.nn.params import load_pure_params
        from seqjax.train.step import split_params

        model = PassageClassifier(pre.config, 2, rngs=nnx.Rngs(key))
        if pretrained:
            load_pure_params(model.bert, pre.model.bert.pure_params())
        graphdef, params, rest = split_params(model)
        # copies: the training step donates its inputs, and these arrays are shared with ``pre``
        self.params = jax.tree.map(jnp.copy, params)
        self._merge = lambda p: nnx.merge(graphdef, p, rest)

    def logits(self, params: Any, batch: dict, key: jax.Array | None = None) -> jax.Array:
        return self._merge(params)(batch["bert_ids"], batch["bert_lengths"], dropout_key=key)


# --- models -----------------------------------------------------------------------------------


def init_model(model: str, key: jax.Array, table: int, config: Config, embed: jax.Array | None = None) -> dict:
    """Parameters of ``model`` (not a BERT); ``embed``: the initial ``[table, d]`` table (the
    ``*_w2v`` models), else ``N(0, 0.1^2)`` of width ``config.embed``."""
    k_e, k_f, k_b, k_a, k_v, k_o = jax.random.split(key, 6)
    model = base_model(model)
    if model == "bow_logreg":
        return {"w": jnp.zeros((table, 2)), "b": jnp.zeros((2,))}
    params = {"embed": embed if embed is not None else jax.random.normal(k_e, (table, config.embed)) * 0.1}
    width = d = params["embed"].shape[1]
    if model.startswith("bilstm"):
        params["encoder"] = {"forward": lstm().init(k_f, d, config.hidden),
                             "backward": lstm().init(k_b, d, config.hidden)}
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
    model = base_model(model)
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
    if base_model(model) == "bow_logreg":
        tokens = batch["tokens"]
        present = jax.nn.one_hot(tokens, params["w"].shape[0]).max(axis=1).at[:, PAD].set(0.0)
        return present @ params["w"] + params["b"]
    pooled, _ = sentence_vector(model, params, batch["tokens"], batch["lengths"], hidden)
    pooled = dropout(pooled, rate, key)
    return pooled @ params["out"]["w"] + params["out"]["b"]


def make_loss(model: str, config: Config, bert: BertClassifier | None = None):
    if bert is not None:
        return lambda params, batch, key: cross_entropy(bert.logits(params, batch, key), batch["labels"])

    def loss_fn(params, batch, key):
        logits = logits_of(model, params, batch, config.hidden, config.dropout_rate, key)
        return cross_entropy(logits, batch["labels"])

    return loss_fn


def make_optimizer(model: str, config: Config) -> optax.GradientTransformation:
    """bow_logreg: Adam on the L2-penalised loss; BERTs: fine_tuning's AdamW (warmup, cosine,
    clipping); the others AdamW, with the embedding table left untouched (no update, no weight
    decay) in the ``*_frozen`` models."""
    if model == "bow_logreg":  # L2-penalised logistic regression: plain Adam on the penalised loss
        return optax.chain(optax.add_decayed_weights(config.weight_decay), optax.adam(config.learning_rate * 10))
    if model in BERT_MODELS:
        from experiments.fine_tuning import optimizer_for

        return optimizer_for(config.bert_learning_rate, config.bert_steps, config.weight_decay)
    adamw = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)
    if not model.endswith("_frozen"):
        return adamw
    labels = lambda params: {k: jax.tree.map(lambda _: "frozen" if k == "embed" else "train", v)
                             for k, v in params.items()}
    return optax.multi_transform({"train": adamw, "frozen": optax.set_to_zero()}, labels)


# --- runs -------------------------------------------------------------------------------------


def steps_of(model: str, config: Config) -> int:
    return config.bert_steps if model in BERT_MODELS else config.steps


def plan(config: Config) -> list[tuple[str, int]]:
    return [(m, f) for m in config.models for f in range(config.folds * config.repeats)]


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    data = Data()
    splits = list(stratified_k_fold(data.labels, config.folds, repeats=config.repeats, seed=config.seed))
    runs = plan(config)
    offsets = np.concatenate([[0], np.cumsum([steps_of(m, config) for m, _ in runs])]).tolist()
    pre = vectors = None
    described: dict[str, Any] = {}
    if any(uses_vectors(m) for m in config.models):
        vectors, described["vectors"] = load_vectors(config, run_dir)
        described["vectors"] |= {"words": len(vectors), "dim": vectors.dim,
                                 "coverage": vector_coverage(vectors, data.sentences)}
    if any(m in BERT_MODELS for m in config.models):
        from experiments.fine_tuning import encoder

        pre, described["bert"] = encoder(config, run_dir, inside=NAME)
        described["bert"]["sentences"] = data.add_bert(pre.tokenizer, pre.config.max_position_embeddings)
    folds: dict[int, dict] = {}
    cache: dict[str, tuple] = {}
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        bar = progress(desc="sentiment", total=offsets[-1], initial=resumed.step if resumed else 0)
        for index in range(len(sweep["finished"]), len(runs)):
            model, f = runs[index]
            if f not in folds:
                folds = {f: data.fold(*splits[f])}  # one fold's arrays at a time
            train_one(index, runs, folds[f], data.table, config, run_dir, bar, ckpt, sweep, offsets[index],
                      cache, vectors=vectors, pre=pre)
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
        "initialisation_effects": initialisation_effects(table),
        "protocol": f"repeated stratified {config.folds}-fold cross-validation, {config.repeats} repeats "
                    f"({config.folds * config.repeats} test folds of ~{len(data.labels) // config.folds} sentences)",
        "data": {"sentences": len(data.labels), "positive": int(data.labels.sum()),
                 "mean_words": float(np.mean([len(s) for s in data.sentences]))},
        "pretrained": described,
        "attention_examples": examples,
        "environment": environment(),
        "timings": {"runtime_s": round(runtime_s, 1), "sessions": sessions, "wall_s": timings},
    }
    run_dir.save_figure(plot(table, examples), "sentiment")
    return summary


# Each pretrained initialisation and the model it should improve on (same architecture, same splits).
PAIRS = (("mean_embedding_w2v_frozen", "mean_embedding"), ("mean_embedding_w2v", "mean_embedding"),
         ("bilstm_attention_w2v_frozen", "bilstm_attention"), ("bilstm_attention_w2v", "bilstm_attention"),
         ("bert_pretrained", "bert_scratch"))


def initialisation_effects(table: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Per pretrained model whose from-scratch counterpart also ran: the mean over test folds of
    the per-fold accuracy difference, its standard deviation, its standard error
    (``std / sqrt(n)``; the folds are not independent, so this understates the uncertainty,
    Bouckaert & Frank 2004) and the folds won / tied / lost."""
    out = {}
    for model, baseline in PAIRS:
        if model in table and baseline in table:
            d = np.asarray(table[model]["per_fold"]) - np.asarray(table[baseline]["per_fold"])
            out[model] = {"against": baseline, "mean_difference": float(d.mean()), "std_difference": float(d.std()),
                          "standard_error": float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan"),
                          "wins": int((d > 0).sum()), "ties": int((d == 0).sum()), "losses": int((d < 0).sum())}
    return out


def train_one(index: int, runs: list, fold: dict, table: int, config: Config, run_dir: RunDir, bar,
              ckpt: RunCheckpoints, sweep: dict, offset: int, cache: dict, *, vectors: Any = None,
              pre: Any = None) -> None:
    """Train run ``index`` (a model on a fold) from its start or its checkpoint, test it, append
    its record to ``sweep["finished"]``. ``cache`` keeps each model's optimiser, compiled step and
    evaluation (the BERTs' merge the first fold's module graph; only parameters differ by fold)."""
    model, f = runs[index]
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), MODELS.index(model)), f)
    bert = None
    if model in BERT_MODELS:
        bert = BertClassifier(pre, model == "bert_pretrained", jax.random.fold_in(key, 0))
        params = bert.params
    else:
        embed = pretrained_table(fold["vocab"], vectors, jax.random.fold_in(key, 2), table) if uses_vectors(model) else None
        params = init_model(model, jax.random.fold_in(key, 0), table, config, embed)
    if model not in cache:  # one compiled step and evaluation per model, reused on every fold
        optimizer = make_optimizer(model, config)
        evaluate = bert.logits if bert is not None else (lambda p, b: logits_of(model, p, b, config.hidden))
        cache[model] = (optimizer, make_train_step(make_loss(model, config, bert), optimizer), jax.jit(evaluate))
    optimizer, step, evaluate = cache[model]
    current, state = ckpt.sweep_run(sweep, index, {"params": params, "opt_state": optimizer.init(params)},
                                    lambda: {"run": index, "step": 0, "wall_s": 0.0})
    params, opt_state = state["params"], state["opt_state"]
    started, wall_before = time.perf_counter(), current["wall_s"]
    train = fold["train"]
    n = train["labels"].shape[0]
    steps = steps_of(model, config)
    last_run = index == len(runs) - 1
    for k in range(current["step"], steps):
        step_key = jax.random.fold_in(jax.random.fold_in(key, 1), k)
        idx = jax.random.randint(step_key, (config.batch_size,), 0, n)
        params, opt_state, _ = step(params, opt_state, {name: v[idx] for name, v in train.items()},
                                    jax.random.fold_in(step_key, 1))
        done = k + 1
        current["step"] = done
        bar.update(1)
        sweep_step = offset + done
        final = last_run and done == steps
        if final or ckpt.due(sweep_step):
            current["wall_s"] = wall_before + time.perf_counter() - started
            ckpt.save(sweep_step, {"params": params, "opt_state": opt_state}, sweep, force=final)
    test = fold["test"]
    logits = evaluate(params, test)
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
    lines = [f"{'model':<28} {'accuracy':>9} {'std':>6} {'min':>6} {'max':>6}", "-" * 60]
    for model, r in sorted(summary["results"].items(), key=lambda kv: -kv[1]["mean_accuracy"]):
        lines.append(f"{model:<28} {r['mean_accuracy']:>9.3f} {r['std_accuracy']:>6.3f} {r['min_accuracy']:>6.3f} "
                     f"{r['max_accuracy']:>6.3f}")
    lines.append(summary["protocol"])
    effects = summary.get("initialisation_effects") or {}
    if effects:
        lines.append(f"{'initialisation':<28} {'against':<18} {'mean diff':>9} {'s.e.':>6} {'won/tied/lost':>14}")
        for model, e in effects.items():
            lines.append(f"{model:<28} {e['against']:<18} {e['mean_difference']:>+9.3f} {e['standard_error']:>6.3f} "
                         f"{e['wins']:>6}/{e['ties']}/{e['losses']}")
    vec = (summary.get("pretrained") or {}).get("vectors")
    if vec:
        c = vec["coverage"]
        lines.append(f"vectors: {vec['path']} ({vec['words']} words, d = {vec['dim']}); sentence words with a vector: "
                     f"{c['types_found']}/{c['types']} types, {c['token_coverage']:.3f} of tokens")
    bert = (summary.get("pretrained") or {}).get("bert")
    if bert:
        mlm = bert.get("held_out_mlm") or {}
        lines.append(f"bert: {bert['path']}; held-out MLM accuracy {mlm.get('accuracy', float('nan')):.3f}; "
                     f"sentences as {bert['sentences']['mean_tokens']:.1f} tokens on average, "
                     f"{bert['sentences']['sentences_cut']} cut at {bert['sentences']['seq_len']}")
    return "\n".join(lines)


def plot(table: dict, examples: list[dict]) -> Figure:
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax, ax_att = fig.subplots(1, 2, width_ratios=[1, 1.4])
    models = list(table)
    ax.boxplot([table[m]["per_fold"] for m in models], tick_labels=models)
    ax.axhline(0.5, color="k", ls=":", lw=1, label="chance")
    ax.set_ylabel("test accuracy per fold")
    ax.set_title("Cross-validated accuracy (200 sentences)")
    ax.tick_params(axis="x", rotation=35, labelsize=7)
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
