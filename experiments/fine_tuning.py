"""Fine-tuning a small pretrained BERT: linear probe, full fine-tuning, LoRA, adapters and BitFit
on one task, then distillation of the fine-tuned encoder into a BiLSTM and a smaller transformer.

What it measures
    **The encoder.** A BERT-style encoder pretrained with masked-language modelling on gensim's
    Wikipedia excerpt and Lee corpus by :mod:`experiments.pretrain_tiny` (``--pretrained RUN_DIR``
    loads one that run saved; otherwise this run pretrains its own first, into
    ``<run dir>/pretrain/``, with ``pretrain_steps`` steps). Its held-out MLM accuracy is reported
    beside the unigram model's, so a reader knows how much language the fine-tuned encoder knows.

    **The task.** Which of K Wikipedia articles a passage of ``words_per_passage`` words comes from
    (:mod:`seqjax.data.article_passages`). The articles are the Wikipedia documents that the
    pretraining *held out* (index ``i`` with ``i % held_out_every == held_out_every - 1``) with at
    least ``min_article_words`` words, so no passage, training or test, was seen in pretraining.
    Each article's last ``test_fraction`` of passages are its test passages, one passage is
    dropped between them and its training passages (no neighbouring text on both sides). Inputs:
    ``[CLS] tokens [SEP]`` in the pretraining's BPE vocabulary, cut at ``seq_len``. Baselines:
    the majority class, and logistic regression on binary bag-of-words features (scikit-learn).

    **The methods** (:func:`seqjax.train.finetune.methods.prepare`), all on the same classifier:
    the encoder's last hidden states averaged over the valid tokens, dropout, a linear layer (the
    head, new, trained by every method):

    * ``scratch``: the same encoder randomly initialised, everything trained (what pretraining is
      worth);
    * ``probe``: the pretrained encoder frozen, only the linear head trained;
    * ``full``: everything trained;
    * ``lora_r1``, ``lora_r4``, ``lora_r16``: LoRA (Hu et al. 2021) of rank r on the query and value
      projections of every layer (``alpha = r``), the base frozen;
    * ``adapters``: Houlsby et al. 2019 bottleneck adapters (``adapter_size`` units) after the
      attention and feed-forward sublayers of every layer, trained with the LayerNorms;
    * ``bitfit``: only the biases (Ben Zaken et al. 2022).

    Per method: test accuracy, trainable parameters, step time (the median over the steps after
    the first, which compiles; wall clock, in ``timings``) and the peak memory of the compiled
    training step as XLA plans it (``jax.jit(step).lower(...).compile().memory_analysis()``:
    argument bytes, i.e. parameters, optimiser state and batch, plus temporary bytes, i.e.
    activations, gradients and scratch; donated outputs alias the arguments). That is the
    accelerator-memory plan of one step, not a measured process RSS.

    **Distillation.** The ``teacher`` method's fine-tuned model labels the training passages with
    its logits; two students learn from them (:mod:`seqjax.train.finetune.distillation`):
    a BiLSTM (Tang et al. 2019: embeddings, a bidirectional LSTM, the two directions' last
    states, a ReLU layer, a linear layer) with logit regression ``alpha ||v - z||^2 + (1 - alpha)
    CE``, and a smaller transformer of the same kind as the teacher with soft targets at
    temperature ``T`` (Hinton et al. 2015). Each student is also trained on the labels alone
    (``*_labels``), so the teacher's contribution is measured. Tang et al.'s data augmentation
    is not done. Per model: accuracy, parameters, inference time per example at batch 1 and 64.

Result (``--pretrained`` the default 3000-step ``pretrain_tiny --model bert`` run: ALiBi, 8 heads,
1.34M parameters; 2 CPU cores, 11.2 min beside the long_range paper run at nice 19; numbers in
``metrics.json``)
    The encoder: held-out MLM accuracy 0.068 at the ``[MASK]`` positions against the unigram
    model's 0.027. Task: 9 articles, 1146 training / 289 test passages of 30 words; majority
    0.208, bag-of-words logistic regression **0.824**. Test accuracy, 200 steps each: scratch
    (the same ALiBi encoder, randomly initialised) 0.616, **full 0.623**, probe 0.460, LoRA
    r=1/4/16 0.436/0.540/0.529, adapters 0.443, BitFit 0.453. Against the 600-step encoder with a
    learned position table, whose ``[MASK]`` accuracy was exactly the unigram's (scratch 0.585,
    full 0.647, probe 0.332, LoRA 0.336/0.422/0.512, adapters 0.405, BitFit 0.370), the features
    of an encoder that learnt some context carry more of the task: every frozen-base method
    gains 2-13 points, the probe most. Full fine-tuning is no longer better than training from
    scratch (0.623 against 0.616, one seed, 289 test passages: a standard error of ~0.03), and
    the frozen-base methods still stay well below both (the textbook's "LoRA/adapters nearly
    match full fine-tuning" needs a base whose features already carry the task). XLA's memory
    plan of one step: 225 MiB full, 171-191 MiB for BitFit/LoRA/adapters (the activations kept
    for the backward pass dominate), 42 MiB for the probe (no backward pass through the
    encoder). Distillation: both students trained on the labels alone beat the teacher (BiLSTM
    0.709, 2-layer d=64 transformer 0.799, 337k/330k parameters, 4x fewer) and distilling from it
    made them worse (0.651, 0.747): a student copies its teacher's errors (agreement with it
    rises from 0.56/0.63 to 0.75/0.69). The students also trained longer (400 steps) at a higher
    learning rate than the teacher, which is part of why they beat it.

Training: AdamW (optax) with linear warmup over a tenth of the steps and cosine decay, global-norm
clipping at 1; batches drawn by ``(seed, run, step)``, so a resumed run draws the same data.

Outputs (``runs/fine_tuning/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl`` (training loss per logged step, each run's result), ``metrics.json``,
``methods.png`` (accuracy vs trainable parameters, log x), ``distillation.png`` (accuracy vs
parameters and vs inference time), ``pretrain/`` (when it pretrains its own encoder),
``checkpoints/``.

Run::

    python -m experiments.fine_tuning --pretrained runs/pretrain_tiny/<stamp>   # a saved encoder
    python -m experiments.fine_tuning              # pretrains its own encoder first
    python -m experiments.fine_tuning --quick      # seconds; used by the tests
    python -m experiments.fine_tuning --resume RUN_DIR
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from matplotlib.figure import Figure

from seqjax.cells import lstm
from seqjax.data.article_passages import ArticlePassages, article_passages
from seqjax.data.corpora import wikipedia_excerpt
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.experiment.pretrained import load_pretrained, resolve
from seqjax.nn import BertConfig, BertModel
from seqjax.nn.params import as_params, load_pure_params
from seqjax.primitives import dense, dropout, split_key
from seqjax.recurrence import bidirectional
from seqjax.train import cross_entropy, make_train_step, warmup_cosine_decay
from seqjax.train.finetune.adapters import insert_adapters
from seqjax.train.finetune.distillation import distillation_loss, logit_distillation_loss
from seqjax.train.finetune.methods import prepare
from seqjax.train.step import split_params
from seqjax.transformer import init_weights

NAME = "fine_tuning"
METHODS = ("scratch", "probe", "full", "lora_r1", "lora_r4", "lora_r16", "adapters", "bitfit")
STUDENTS = ("bilstm", "transformer")
PAD, CLS, SEP = 0, 2, 3  # pretrain_tiny's special tokens ([PAD], [UNK], [CLS], [SEP], [MASK])
HEAD = "classifier/*"
COLORS = {"scratch": "0.4", "probe": "tab:brown", "full": "tab:red", "lora_r1": "#9ecae1", "lora_r4": "#4292c6",
          "lora_r16": "#08519c", "adapters": "tab:green", "bitfit": "tab:purple"}


@dataclasses.dataclass(frozen=True)
class Config:
    """Probe, full fine-tuning, LoRA, adapters and BitFit of a small BERT; distillation into a BiLSTM."""

    # --quick: a 2-layer encoder pretrained for 6 steps on 40 Lee documents, 3 articles cut to
    # 600 words, three methods and the BiLSTM student, 4 steps each (seconds, for the tests).
    QUICK: ClassVar[dict[str, Any]] = {
        "pretrain_quick": True, "pretrain_steps": 6, "max_articles": 3, "max_article_words": 600,
        "methods": ("full", "lora_r4", "adapters"), "steps": 4, "batch_size": 8, "students": ("bilstm",),
        "label_baselines": False, "student_steps": 4, "student_embed": 16, "student_hidden": 16, "student_d_model": 16,
        "inference_repeats": 2, "checkpoint_every": 10, "log_every": 2,
    }

    pretrained: str | None = option(None, "a pretrain_tiny run (or its pretrained/ directory) to load; none: pretrain one")
    pretrain_steps: int = option(300, "steps of the encoder pretrained when --pretrained is not given")
    pretrain_quick: bool = option(False, "pretrain with pretrain_tiny's --quick sizes (for the tests)")
    min_article_words: int = option(1500, "use the held-out Wikipedia articles with at least this many words")
    max_articles: int | None = option(None, "use at most this many of them (none: all)")
    max_article_words: int | None = option(None, "cut each article to its first N words (none: whole)")
    words_per_passage: int = option(30, "words per passage")
    test_fraction: float = option(0.2, "the fraction of each article's passages (its end) held out for testing")
    methods: tuple[str, ...] = option(METHODS, "fine-tuning methods: " + ", ".join(METHODS))
    steps: int = option(200, "optimiser steps per method")
    batch_size: int = option(32, "passages per step")
    learning_rate: float = option(3e-4, "peak learning rate of full and scratch")
    peft_learning_rate: float = option(3e-3, "peak learning rate of probe, LoRA, adapters, BitFit")
    weight_decay: float = option(0.01, "AdamW weight decay")
    adapter_size: int = option(16, "adapter bottleneck units")
    teacher: str = option("full", "the method whose fine-tuned model teaches the students")
    students: tuple[str, ...] = option(STUDENTS, "students: " + ", ".join(STUDENTS) + " (none: no distillation)")
    label_baselines: bool = option(True, "also train every student on the labels alone")
    student_steps: int = option(400, "optimiser steps per student")
    student_learning_rate: float = option(2e-3, "peak learning rate of the students")
    student_embed: int = option(64, "BiLSTM student: embedding width")
    student_hidden: int = option(64, "BiLSTM student: LSTM width per direction (and of its ReLU layer)")
    student_d_model: int = option(64, "transformer student: width (2 layers, 2 heads, FFN 2x)")
    temperature: float = option(2.0, "soft-target temperature T (transformer student)")
    distill_alpha: float = option(0.5, "weight of the distillation term (the rest: cross-entropy on labels)")
    inference_repeats: int = option(20, "timed forward passes per model and batch size (median)")
    log_every: int = option(25, "log the training loss every this many steps")
    seed: int = option(0, "random seed (initialisation, batches, dropout)")
    checkpoint_every: int = option(100, "save a checkpoint every this many steps (all runs counted)")

    def __post_init__(self):
        if not self.methods or any(m not in METHODS for m in self.methods) or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must be distinct values of {METHODS}; got {self.methods}.")
        if any(s not in STUDENTS for s in self.students) or len(set(self.students)) != len(self.students):
            raise ValueError(f"students must be distinct values of {STUDENTS}; got {self.students}.")
        if self.students and self.teacher not in self.methods:
            raise ValueError(f"teacher must be one of the methods run {self.methods} (students need one); "
                             f"got {self.teacher!r}.")
        for name in ("pretrain_steps", "min_article_words", "words_per_passage", "steps", "batch_size", "adapter_size",
                     "student_steps", "student_embed", "student_hidden", "student_d_model", "inference_repeats",
                     "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.student_d_model % 2:
            raise ValueError(f"student_d_model must be even (2 heads); got {self.student_d_model}.")
        for name in ("max_articles", "max_article_words"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (or none); got {getattr(self, name)}.")
        if self.max_articles is not None and self.max_articles < 2:
            raise ValueError(f"max_articles must be at least 2 (a classification); got {self.max_articles}.")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1); got {self.test_fraction}.")
        for name in ("learning_rate", "peft_learning_rate", "student_learning_rate", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay}.")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise ValueError(f"distill_alpha must lie in [0, 1]; got {self.distill_alpha}.")


# --- the pretrained encoder -------------------------------------------------------------------


def pretrain_config(config: Any):
    """The :mod:`experiments.pretrain_tiny` config of the encoder this run pretrains itself."""
    from experiments import pretrain_tiny

    steps = config.pretrain_steps
    base = dict(pretrain_tiny.Config.QUICK) if config.pretrain_quick else {}
    base |= {"model": "bert", "train_steps": steps, "warmup_steps": max(0, min(steps // 10, steps - 1)),
             "eval_every": steps, "checkpoint_every": min(50, steps)}
    return pretrain_tiny.Config(**base)


def encoder(config: Any, run_dir: RunDir, *, inside: str = NAME) -> tuple[Any, dict[str, Any]]:
    """``(Pretrained, description)``: the encoder loaded from ``--pretrained``, or pretrained
    into ``<run dir>/pretrain/`` (resumed from its checkpoints after a kill).

    ``config`` needs the fields ``pretrained``, ``pretrain_steps`` and ``pretrain_quick`` (this
    module's :class:`Config`, or another experiment's that fine-tunes the same encoder, e.g.
    :mod:`experiments.sentiment`); ``inside`` names the experiment in the nested run's ``run.json``."""
    if config.pretrained is not None:
        directory = resolve(config.pretrained)
        run_path = directory.parent
    else:
        from experiments import pretrain_tiny

        run_path = run_dir.path / "pretrain"
        if not (run_path / "metrics.json").is_file():
            run_path.mkdir(parents=True, exist_ok=True)
            sub = RunDir(run_path)
            pcfg = pretrain_config(config)
            sub.write_config(pcfg)
            sub.write_run_info(experiment=pretrain_tiny.NAME, quick=config.pretrain_quick, inside=inside)
            sub.write_summary(pretrain_tiny.run(pcfg, sub))
        directory = resolve(run_path)
    loaded = load_pretrained(directory)
    if loaded.kind != "bert_mlm":
        raise ValueError(f"pretrained must be a BERT (kind bert_mlm) saved by pretrain_tiny --model bert; "
                         f"{directory} holds kind {loaded.kind!r}.")
    inside = directory.is_relative_to(run_dir.path)
    described: dict[str, Any] = {"path": str(directory.relative_to(run_dir.path)) if inside else str(directory), "config": dataclasses.asdict(loaded.config),
                                 "held_out_mlm": loaded.info.get("held_out_scores")}
    metrics = run_path / "metrics.json"
    saved_config = run_path / "config.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text())
        described |= {"steps": m.get("steps"), "held_out_mlm": m.get("held_out"),
                      "unigram": m.get("baselines", {}).get("unigram"), "corpora": m.get("corpus", {}).get("split")}
    if saved_config.is_file():
        c = json.loads(saved_config.read_text())
        described["held_out_every"] = int(c["held_out_every"])
        described["pretrained_on"] = c.get("corpora")
    else:
        described["held_out_every"] = 10
        described["note"] = "no config.json beside the pretrained model: assumed pretrain_tiny's held_out_every = 10"
    return loaded, described


# --- data -------------------------------------------------------------------------------------


def task_articles(config: Config, held_out_every: int) -> list[tuple[str, str]]:
    """The held-out Wikipedia articles (``i % held_out_every == held_out_every - 1``) with at least
    ``min_article_words`` words, in corpus order (cut as ``max_articles`` / ``max_article_words``)."""
    chosen = []
    for i, (title, text) in enumerate(wikipedia_excerpt()):
        words = text.split()
        if i % held_out_every == held_out_every - 1 and len(words) >= config.min_article_words:
            if config.max_article_words is not None:
                text = " ".join(words[: config.max_article_words])
            chosen.append((title, text))
    chosen = chosen[: config.max_articles]
    if len(chosen) < 2:
        raise ValueError(f"only {len(chosen)} held-out article(s) have >= {config.min_article_words} words; "
                         "lower min_article_words.")
    return chosen


def encode_passages(tokenizer: Any, texts: Sequence[str], seq_len: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(ids [n, seq_len], lengths [n], how many were cut)``: ``[CLS] tokens [SEP]`` right-padded."""
    ids = np.full((len(texts), seq_len), PAD, np.int32)
    lengths = np.zeros(len(texts), np.int32)
    cut = 0
    for i, text in enumerate(texts):
        tokens = np.asarray(tokenizer.encode(text), np.int32)
        cut += len(tokens) > seq_len - 2
        row = np.concatenate([[CLS], tokens[: seq_len - 2], [SEP]])
        ids[i, : len(row)] = row
        lengths[i] = len(row)
    return ids, lengths, cut


class Task:
    """The passages as padded token ids, with labels."""

    def __init__(self, passages: ArticlePassages, tokenizer: Any, seq_len: int):
        self.passages = passages
        tr_ids, tr_len, tr_cut = encode_passages(tokenizer, passages.train_texts, seq_len)
        te_ids, te_len, te_cut = encode_passages(tokenizer, passages.test_texts, seq_len)
        self.train = {"ids": tr_ids, "lengths": tr_len, "labels": passages.train_labels}
        self.test = {"ids": te_ids, "lengths": te_len, "labels": passages.test_labels}
        self.cut = tr_cut + te_cut
        self.num_classes = passages.num_classes

    def batch(self, rng: np.random.Generator, size: int, extra: dict | None = None) -> dict[str, jax.Array]:
        idx = rng.integers(0, len(self.train["labels"]), size)
        rows = {k: v[idx] for k, v in self.train.items()} | {k: v[idx] for k, v in (extra or {}).items()}
        return {k: jnp.asarray(v) for k, v in rows.items()}


def bag_of_words_baseline(passages: ArticlePassages) -> float:
    """Test accuracy of L2-regularised logistic regression on binary bag-of-words features."""
    try:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:  # pragma: no cover
        from seqjax.data.corpora import MissingOptionalDependency

        raise MissingOptionalDependency("the bag-of-words baseline needs scikit-learn: pip install scikit-learn") from None
    vectorizer = CountVectorizer(binary=True, lowercase=True)
    x_train = vectorizer.fit_transform(passages.train_texts)
    model = LogisticRegression(max_iter=2000).fit(x_train, passages.train_labels)
    return float(np.mean(model.predict(vectorizer.transform(passages.test_texts)) == passages.test_labels))


# --- models -----------------------------------------------------------------------------------


class PassageClassifier(nnx.Module):
    """A BERT encoder (:class:`seqjax.nn.BertModel`, no pooler), the mean of its last hidden states
    over the valid tokens, dropout, a linear head::

        h = BERT(ids) [b, t, d],   m = sum_{i < len} h_i / len,   logits = Dropout(m) W_c + b_c
    """

    def __init__(self, config: BertConfig, num_labels: int, *, rngs: nnx.Rngs):
        self.config = config
        self.bert = BertModel(config, rngs=rngs, add_pooler=False)
        (w,) = init_weights(rngs.params(), [(config.hidden_size, num_labels)], config.initializer_range)
        self.classifier = as_params({"w": w, "b": jnp.zeros((num_labels,))})

    def __call__(self, ids: jax.Array, lengths: jax.Array, *, dropout_key: jax.Array | None = None) -> jax.Array:
        k_bert, k_head = split_key(dropout_key, 2)
        h, _ = self.bert(ids, seq_lengths=lengths, dropout_key=k_bert)
        valid = (jnp.arange(ids.shape[1])[None, :] < lengths[:, None])[..., None]
        pooled = jnp.sum(h * valid, axis=1) / jnp.maximum(lengths, 1)[:, None]
        pooled = dropout(pooled, self.config.classifier_dropout_rate(), k_head)
        return dense(pooled, self.classifier["w"][...], self.classifier["b"][...])


def bilstm_init(key: jax.Array, vocab: int, num_labels: int, embed: int, hidden: int) -> dict:
    """Tang et al. 2019's BiLSTM student: embeddings, a BiLSTM, a ReLU layer, a linear layer."""
    k_e, k_f, k_b, k_h, k_o = jax.random.split(key, 5)
    glorot = jax.nn.initializers.glorot_uniform()
    return {"embed": jax.random.normal(k_e, (vocab, embed)) * 0.1,
            "encoder": {"forward": lstm().init(k_f, embed, hidden), "backward": lstm().init(k_b, embed, hidden)},
            "hidden": {"w": glorot(k_h, (2 * hidden, hidden)), "b": jnp.zeros((hidden,))},
            "out": {"w": glorot(k_o, (hidden, num_labels)), "b": jnp.zeros((num_labels,))}}


def bilstm_logits(params: dict, ids: jax.Array, lengths: jax.Array, *, dropout_rate: float = 0.1,
                  dropout_key: jax.Array | None = None) -> jax.Array:
    """``[b, K]``: the forward state after the last valid token and the backward state after the
    first, concatenated, then ``ReLU`` layer and linear layer (dropout before each)."""
    hidden = params["hidden"]["w"].shape[1]
    h = bidirectional(lstm(), params["encoder"], params["embed"][ids], seq_lengths=lengths)
    last = jnp.take_along_axis(h[..., :hidden], jnp.maximum(lengths - 1, 0)[:, None, None], axis=1)[:, 0]
    z = jnp.concatenate([last, h[:, 0, hidden:]], axis=-1)
    k1, k2 = split_key(dropout_key, 2)
    z = jax.nn.relu(dense(dropout(z, dropout_rate, k1), params["hidden"]["w"], params["hidden"]["b"]))
    return dense(dropout(z, dropout_rate, k2), params["out"]["w"], params["out"]["b"])


def student_bert_config(config: Config, teacher: BertConfig) -> BertConfig:
    d = config.student_d_model
    return dataclasses.replace(teacher, hidden_size=d, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=2 * d)


# --- runs -------------------------------------------------------------------------------------


def plan(config: Config) -> list[dict[str, Any]]:
    """The sweep, in order: every method, then every student (distilled, then on labels)."""
    runs = [{"kind": "method", "name": m, "steps": config.steps} for m in config.methods]
    for s in config.students:
        runs.append({"kind": "student", "name": f"{s}_distilled", "student": s, "distilled": True,
                     "steps": config.student_steps})
        if config.label_baselines:
            runs.append({"kind": "student", "name": f"{s}_labels", "student": s, "distilled": False,
                         "steps": config.student_steps})
    return runs


def optimizer_for(peak: float, steps: int, weight_decay: float) -> optax.GradientTransformation:
    schedule = warmup_cosine_decay(peak, max(1, steps // 10), steps)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=weight_decay))


def _count(tree: Any) -> int:
    return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(tree)))


class Setup:
    """One run's pure pieces: the trained pytree, optimiser, loss, forward of the effective
    parameters, trainable and total parameter counts."""

    def __init__(self, spec: dict, config: Config, pre: Any, num_classes: int, key: jax.Array):
        self.spec = spec
        if spec["kind"] == "method":
            self._method(spec["name"], config, pre, num_classes, key)
        elif spec["student"] == "bilstm":
            params = bilstm_init(key, pre.config.vocab_size, num_classes, config.student_embed, config.student_hidden)
            self.forward = lambda p, ids, lengths, key=None: bilstm_logits(p, ids, lengths, dropout_key=key)
            self._student(params, config)
        else:
            model = PassageClassifier(student_bert_config(config, pre.config), num_classes, rngs=nnx.Rngs(key))
            graphdef, params, rest = split_params(model)
            self.forward = lambda p, ids, lengths, key=None: nnx.merge(graphdef, p, rest)(ids, lengths, dropout_key=key)
            self._student(params, config)

    def _method(self, method: str, config: Config, pre: Any, num_classes: int, key: jax.Array):
        k_model, k_adapter, k_lora = jax.random.split(key, 3)
        model = PassageClassifier(pre.config, num_classes, rngs=nnx.Rngs(k_model))
        if method != "scratch":
            load_pure_params(model.bert, pre.model.bert.pure_params())
        if method == "adapters":
            model.bert.encoder.stack = as_params(
                insert_adapters(k_adapter, model.bert.encoder.pure_params(), config.adapter_size))
        graphdef, params, rest = split_params(model)
        base = {"scratch": "full", "full": "full", "probe": "probe", "adapters": "adapters", "bitfit": "bitfit"}
        name = base.get(method, "lora")
        peak = config.learning_rate if name == "full" else config.peft_learning_rate
        r = int(method.split("_r")[1]) if name == "lora" else 8
        self.plan = prepare(name, params, optimizer_for(peak, config.steps, config.weight_decay), head=HEAD,
                            key=k_lora, r=r, alpha=float(r))
        self.forward = lambda p, ids, lengths, key=None: nnx.merge(graphdef, p, rest)(ids, lengths, dropout_key=key)
        self.params, self.optimizer = self.plan.train_params, self.plan.optimizer
        self.loss_fn = self.plan.wrap_loss(
            lambda p, batch, key: cross_entropy(self.forward(p, batch["ids"], batch["lengths"], key), batch["labels"]))
        self.effective = self.plan.effective
        self.num_trainable, self.num_params = self.plan.num_trainable, _count(self.plan.effective(self.params))

    def _student(self, params: Any, config: Config):
        self.params = params
        self.optimizer = optimizer_for(config.student_learning_rate, config.student_steps, config.weight_decay)
        self.effective = lambda p: p
        self.num_trainable = self.num_params = _count(params)
        forward, alpha = self.forward, config.distill_alpha
        if not self.spec["distilled"]:
            self.loss_fn = lambda p, b, key: cross_entropy(forward(p, b["ids"], b["lengths"], key), b["labels"])
        elif self.spec["student"] == "bilstm":  # Tang et al.: logit regression
            self.loss_fn = lambda p, b, key: logit_distillation_loss(forward(p, b["ids"], b["lengths"], key),
                                                                     b["teacher"], b["labels"], alpha=alpha)
        else:  # Hinton et al.: soft targets at temperature T
            self.loss_fn = lambda p, b, key: distillation_loss(forward(p, b["ids"], b["lengths"], key), b["teacher"],
                                                               b["labels"], temperature=config.temperature, alpha=alpha)


def compile_step(step, params, opt_state, batch, key) -> tuple[Any, dict[str, int] | None]:
    """``(the compiled training step, XLA's memory plan of it)`` (module docstring; None if the
    backend gives no plan). The run trains with this executable, so it is compiled once."""
    compiled = step.jitted.lower(params, opt_state, batch, key).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        return compiled, None
    out = {"argument_bytes": int(analysis.argument_size_in_bytes), "temp_bytes": int(analysis.temp_size_in_bytes),
           "output_bytes": int(analysis.output_size_in_bytes), "alias_bytes": int(analysis.alias_size_in_bytes)}
    out["peak_bytes"] = out["argument_bytes"] + out["temp_bytes"]
    return compiled, out


def predict(fn, params, data: dict, batch: int = 64) -> np.ndarray:
    """Logits ``[n, K]`` of ``data`` by ``fn(params, ids, lengths)`` (jitted, evaluation mode), in
    batches of ``batch`` (the last one padded, so one shape is compiled)."""
    n, out = len(data["labels"]), []
    for i in range(0, n, batch):
        ids, lengths = data["ids"][i: i + batch], data["lengths"][i: i + batch]
        pad = batch - len(ids)
        if pad:
            ids = np.concatenate([ids, np.repeat(ids[:1], pad, 0)])
            lengths = np.concatenate([lengths, np.repeat(lengths[:1], pad, 0)])
        out.append(np.asarray(fn(params, jnp.asarray(ids), jnp.asarray(lengths)))[: batch - pad])
    return np.concatenate(out)


def inference_seconds(fn, params, data: dict, repeats: int) -> dict[str, float]:
    """Median wall seconds per example of ``fn(params, ids, lengths)`` (jitted) at batch 1 and
    batch 64 (rows of ``data`` repeated if it has fewer), after a first call that compiles."""
    out = {}
    for b in (1, 64):
        rows = np.arange(b) % len(data["labels"])
        ids, lengths = jnp.asarray(data["ids"][rows]), jnp.asarray(data["lengths"][rows])
        jax.block_until_ready(fn(params, ids, lengths))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(params, ids, lengths))
            times.append(time.perf_counter() - t0)
        out[f"batch_{b}_s_per_example"] = float(np.median(times)) / b
    return out


def train_run(index: int, runs: list, setup: Setup, task: Task, config: Config, run_dir: RunDir, bar,
              ckpt: RunCheckpoints, sweep: dict, offset: int, teacher: dict | None) -> None:
    spec = runs[index]
    steps = spec["steps"]
    step = make_train_step(setup.loss_fn, setup.optimizer)
    template = {"params": setup.params, "opt_state": setup.optimizer.init(setup.params)}
    current, state = ckpt.sweep_run(sweep, index, template,
                                    lambda: {"run": index, "step": 0, "step_times": [], "losses": []})
    # copies: the step donates its inputs, and a fresh state shares arrays with the pretrained model
    params, opt_state = jax.tree.map(jnp.copy, (state["params"], state["opt_state"]))
    extra = {"teacher": teacher["train_logits"]} if spec.get("distilled") else None
    probe_batch = task.batch(np.random.default_rng([config.seed, index, 0]), config.batch_size, extra)
    step, memory = compile_step(step, params, opt_state, probe_batch, jax.random.key(0))
    key = jax.random.fold_in(jax.random.key(config.seed), index)
    last_run = index == len(runs) - 1
    for k in range(current["step"], steps):
        batch = task.batch(np.random.default_rng([config.seed, index, k]), config.batch_size, extra)
        t0 = time.perf_counter()
        params, opt_state, metrics = step(params, opt_state, batch, jax.random.fold_in(key, k))
        loss = float(jax.block_until_ready(metrics["loss"]))
        current["step_times"].append(time.perf_counter() - t0)
        current["step"] = k + 1
        if (k + 1) % config.log_every == 0 or k + 1 == steps:
            current["losses"].append(loss)
            run_dir.log(kind="train", run=spec["name"], step=k + 1, loss=loss)
        bar.update(1)
        final = last_run and k + 1 == steps
        if final or ckpt.due(offset + k + 1):
            ckpt.save(offset + k + 1, {"params": params, "opt_state": opt_state}, sweep, force=final)
    effective = setup.effective(params)
    forward = jax.jit(lambda p, ids, lengths: setup.forward(p, ids, lengths))
    test_logits = predict(forward, effective, task.test)
    accuracy = float(np.mean(np.argmax(test_logits, -1) == task.test["labels"]))
    times = current["step_times"][1:] or current["step_times"]
    record = {"name": spec["name"], "accuracy": accuracy, "trainable_params": setup.num_trainable,
              "params": setup.num_params, "memory": memory,
              "final_train_loss": current["losses"][-1] if current["losses"] else None,
              "step_s_median": float(np.median(times)), "timed_steps": len(times)}
    if spec["kind"] == "student" or spec["name"] == config.teacher:
        record["inference"] = inference_seconds(forward, effective, task.test, config.inference_repeats)
    if spec["name"] == config.teacher and config.students:
        record["train_logits"] = predict(forward, effective, task.train).astype(np.float32)
        record["test_predictions"] = np.argmax(test_logits, -1).astype(np.int32)
    if teacher is not None and spec["kind"] == "student":
        record["agreement_with_teacher"] = float(np.mean(np.argmax(test_logits, -1) == teacher["test_predictions"]))
    run_dir.log(kind="result", run=spec["name"], test_accuracy=accuracy, trainable_params=setup.num_trainable)
    bar.set_postfix_str(f"{spec['name']}: {accuracy:.3f}")
    sweep["finished"].append(record)
    sweep["current"] = None


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    pre, described = encoder(config, run_dir)
    articles = task_articles(config, described["held_out_every"])
    passages = article_passages(articles, words_per_passage=config.words_per_passage,
                                test_fraction=config.test_fraction, gap=1)
    task = Task(passages, pre.tokenizer, pre.config.max_position_embeddings)
    runs = plan(config)
    offsets = np.concatenate([[0], np.cumsum([r["steps"] for r in runs])]).tolist()
    root = jax.random.key(config.seed)
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        bar = progress(desc=NAME, total=offsets[-1], initial=resumed.step if resumed else 0)
        for index in range(len(sweep["finished"]), len(runs)):
            teacher = next((r for r in sweep["finished"] if r["name"] == config.teacher), None)
            setup = Setup(runs[index], config, pre, task.num_classes, jax.random.fold_in(root, 1000 + index))
            train_run(index, runs, setup, task, config, run_dir, bar, ckpt, sweep, offsets[index], teacher)
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions
    results = {r["name"]: r for r in sweep["finished"]}
    methods = {m: {k: results[m][k] for k in ("accuracy", "trainable_params", "params", "memory", "final_train_loss")}
               for m in config.methods}
    for m in methods.values():
        m["trainable_fraction"] = m["trainable_params"] / m["params"]
    students = {r["name"]: {k: r[k] for k in ("accuracy", "params", "agreement_with_teacher", "final_train_loss")}
                for r in sweep["finished"] if r["name"] not in methods}
    teacher = results.get(config.teacher)
    counts = dict(zip(passages.titles, passages.counts))
    summary = {
        "encoder": described,
        "task": {"articles": {t: {"train": c[0], "test": c[1]} for t, c in counts.items()},
                 "classes": passages.num_classes, "train_passages": len(passages.train_texts),
                 "test_passages": len(passages.test_texts), "words_per_passage": config.words_per_passage,
                 "seq_len": pre.config.max_position_embeddings, "passages_cut_to_seq_len": task.cut,
                 "split": "each article's last passages are test passages, one passage dropped before them"},
        "baselines": {"majority": passages.majority_test_accuracy(), "bow_logreg": bag_of_words_baseline(passages)},
        "methods": methods,
        "teacher": config.teacher if config.students else None,
        "teacher_accuracy": teacher["accuracy"] if teacher and config.students else None,
        "students": students,
        "memory_note": "XLA memory_analysis of the compiled train step: peak_bytes = argument_bytes (parameters, "
                       "optimiser state, batch) + temp_bytes (activations, gradients, scratch)",
        "environment": environment(),
        "timings": {
            "runtime_s": round(runtime_s, 1), "sessions": sessions,
            "step_s_median": {r["name"]: round(r["step_s_median"], 5) for r in sweep["finished"]},
            "inference_s_per_example": {r["name"]: r["inference"] for r in sweep["finished"] if "inference" in r},
            "note": "wall clock on a CPU shared with other jobs",
        },
    }
    run_dir.save_figure(plot_methods(summary), "methods")
    if students:
        run_dir.save_figure(plot_distillation(summary), "distillation")
    return summary


# --- report -----------------------------------------------------------------------------------


def format_report(summary: dict[str, Any]) -> str:
    e, b, t = summary["encoder"], summary["baselines"], summary["timings"]
    lines = []
    mlm, uni = e.get("held_out_mlm") or {}, e.get("unigram") or {}
    if mlm:
        lines.append(f"encoder: held-out MLM accuracy {mlm.get('accuracy', float('nan')):.3f} "
                     f"([MASK] {mlm.get('mask_accuracy', float('nan')):.3f}); unigram "
                     f"{uni.get('accuracy', float('nan')):.3f} ([MASK] {uni.get('mask_accuracy', float('nan')):.3f})")
    task = summary["task"]
    lines.append(f"task: {task['classes']} articles, {task['train_passages']} training / {task['test_passages']} test "
                 f"passages; majority {b['majority']:.3f}, bag-of-words logistic regression {b['bow_logreg']:.3f}")
    lines.append(f"{'method':<10} {'accuracy':>8} {'trainable':>10} {'fraction':>9} {'step ms':>8} {'peak MiB':>9}")
    for name, m in summary["methods"].items():
        peak = m["memory"]["peak_bytes"] / 2**20 if m["memory"] else float("nan")
        lines.append(f"{name:<10} {m['accuracy']:>8.3f} {m['trainable_params']:>10,} {m['trainable_fraction']:>9.4f} "
                     f"{1e3 * t['step_s_median'][name]:>8.1f} {peak:>9.1f}")
    if summary["students"]:
        lines.append(f"{'model':<22} {'accuracy':>8} {'params':>10} {'agree':>6} {'us/ex b1':>9} {'us/ex b64':>9}")
        rows = [(f"teacher ({summary['teacher']})", summary["teacher_accuracy"], summary["methods"][summary["teacher"]]["params"],
                 None, t["inference_s_per_example"].get(summary["teacher"], {}))]
        rows += [(n, s["accuracy"], s["params"], s["agreement_with_teacher"], t["inference_s_per_example"].get(n, {}))
                 for n, s in summary["students"].items()]
        for name, acc, n, agree, inf in rows:
            lines.append(f"{name:<22} {acc:>8.3f} {n:>10,} {'' if agree is None else f'{agree:.3f}':>6} "
                         f"{1e6 * inf.get('batch_1_s_per_example', float('nan')):>9.0f} "
                         f"{1e6 * inf.get('batch_64_s_per_example', float('nan')):>9.0f}")
    return "\n".join(lines)


def plot_methods(summary: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    for name, m in summary["methods"].items():
        ax.scatter(m["trainable_params"], m["accuracy"], s=45, color=COLORS[name], zorder=3,
                   marker="s" if name == "scratch" else "o")
        ax.annotate(name, (m["trainable_params"], m["accuracy"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    b = summary["baselines"]
    ax.axhline(b["majority"], color="k", ls=":", lw=1, label=f"majority class {b['majority']:.3f}")
    ax.axhline(b["bow_logreg"], color="0.5", ls="--", lw=1, label=f"bag-of-words logistic regression {b['bow_logreg']:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Fine-tuning a small BERT: which of {summary['task']['classes']} articles a passage is from")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_distillation(summary: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    ax_size, ax_time = fig.subplots(1, 2)
    inference = summary["timings"]["inference_s_per_example"]
    teacher = summary["teacher"]
    points = [(f"teacher ({teacher})", summary["methods"][teacher]["params"], summary["teacher_accuracy"],
               inference.get(teacher, {}), "*", "tab:red")]
    for name, s in summary["students"].items():
        color = "tab:blue" if name.startswith("bilstm") else "tab:green"
        points.append((name, s["params"], s["accuracy"], inference.get(name, {}),
                       "o" if name.endswith("distilled") else "x", color))
    for name, n, acc, inf, marker, color in points:
        ax_size.scatter(n, acc, marker=marker, s=70, color=color, zorder=3)
        ax_size.annotate(name, (n, acc), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if "batch_1_s_per_example" in inf:
            x = 1e6 * inf["batch_1_s_per_example"]
            ax_time.scatter(x, acc, marker=marker, s=70, color=color, zorder=3)
            ax_time.annotate(name, (x, acc), textcoords="offset points", xytext=(5, 4), fontsize=8)
    for ax in (ax_size, ax_time):
        ax.axhline(summary["baselines"]["majority"], color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_ylabel("test accuracy")
    ax_size.set_xlabel("parameters (log scale)")
    ax_size.set_title("Distillation: accuracy against size (o distilled, x labels only)")
    ax_time.set_xlabel("inference time per example at batch 1, us (log; CPU)")
    ax_time.set_title("accuracy against inference time")
    return fig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_report)


if __name__ == "__main__":
    main()
