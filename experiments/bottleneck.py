"""The seq2seq information bottleneck, measured: encoder-decoders with and without attention against source length.

What it measures
    Recurrent encoder-decoders (a bidirectional GRU encoder and a GRU decoder, :mod:`seqjax.nn.seq2seq`)
    whose decoder sees the source

    * only through its initial state (``bottleneck``: :class:`seqjax.nn.BottleneckSeq2Seq`,
      Sutskever et al. 2014 / Cho et al. 2014),
    * through additive attention computed from the previous state (``bahdanau``:
      :class:`seqjax.nn.BahdanauSeq2Seq`, Bahdanau et al. 2015),
    * through Luong et al. 2015's global attention with the ``dot``, ``general`` and ``concat``
      scores and input feeding (``luong_dot``, ``luong_general``, ``luong_concat``:
      :class:`seqjax.nn.LuongSeq2Seq`),

    and the Transformer (``transformer``: :class:`seqjax.nn.EncoderDecoder`, Vaswani et al. 2017,
    pre-LN, no dropout), all at about the same parameter count: the budget is the count of the
    Bahdanau model with ``embed_features`` and ``hidden`` (per encoder direction); every other
    recurrent model gets the hidden size, and the Transformer the width, whose count
    (:func:`seqjax.nn.count_params`) is closest to it (the counts are in ``metrics.json``).

    Tasks (sources of every length from ``min_length`` to ``max_length``, uniformly, in
    training; no length is held out: the question is capacity, not extrapolation):

    * ``reversal``: ``reversal_vocab`` random symbols, target the reversed sequence (symbols from
      :func:`seqjax.data.sequence_reversal`); exact-match ceiling 1.0.
    * ``translation``: the synchronous grammar of :mod:`seqjax.data.reorder_translation` (SVO
      with adjectives before the noun -> verb-final, adjectives mirrored behind the noun, a subject
      particle inserted, the indefinite article dropped); the target length differs from the
      source length; exact-match ceiling 1.0 (the mapping is a function of the source).

    After ``steps`` Adam steps (masked cross-entropy, teacher forcing) every model decodes
    ``eval_per_length`` held-out sources of each length in ``eval_lengths`` with greedy search and
    beam search (``beam_size``, :mod:`seqjax.decoding`, on each model's ``step_fn``); per length
    the run reports exact-sequence accuracy (the decoded tokens up to and including EOS equal the
    reference), token accuracy (position-wise, over the reference's tokens and its EOS) and, for
    the translation task, corpus BLEU (:func:`seqjax.train.metrics.corpus_bleu`, sacreBLEU's
    defaults). For the recurrent attention models it also records, from the teacher-forced pass,
    the attention weights of one example per ``heatmap_lengths`` (the alignment figure), the mean
    attention entropy per length (against ``log s`` of uniform attention) and, for reversal, the
    fraction of target steps whose largest weight is on the mirrored source position
    ``s - 1 - i``. The headline compares the bottleneck model with the best attention model per
    length: the first length at which it falls ``headline_gap`` (0.1) or more below.

Why
    The notebook *Introduction to Sequence Modeling* prints an "information bottleneck" as a
    formula (50 units of "information" per word against a capacity of 80) and never trains a
    model; its alignment heatmap is typed in by hand. Here the models are trained and the
    alignments are the learned weights.

Result (default run, seed 0, 2 shared CPU cores, float32; 1130 s; numbers in ``metrics.json``)
    Parameters (budget: Bahdanau, e = 32, h = 32): reversal 58,861 (bottleneck 59,927 with
    h = 43, Luong dot 57,549 / general 58,319 / concat 58,745, Transformer 67,973 with d = 40,
    2 + 2 layers); translation 67,636 (bottleneck 68,236, Luong 69,136 / 66,676 / 67,178,
    Transformer 72,692). Exact-match accuracy, greedy decoding (beam 4 within 0.05 of it except
    where noted), 48 held-out sources per length, after 1000 steps of batch 32:

    ==============  ====  ====  ====  ====  ====  ====  ====
    reversal        5     10    20    30    40    50    60
    ==============  ====  ====  ====  ====  ====  ====  ====
    bottleneck      0.65  0.00  0.00  0.00  0.00  0.00  0.00
    Bahdanau        1.00  0.98  1.00  0.92  0.98  0.83  0.33 (beam 0.44)
    Luong dot       1.00  1.00  1.00  0.98  0.98  0.90  0.90
    Luong general   1.00  1.00  0.98  0.96  1.00  0.92  0.96
    Luong concat    0.96  1.00  1.00  1.00  1.00  1.00  0.90 (beam 0.98)
    Transformer     0.19  0.52  0.23  0.04  0.00  0.00  0.00
    ==============  ====  ====  ====  ====  ====  ====  ====

    ==============  ====  ====  ====  ====  ====  ====  ====  ===========
    translation     5     10    20    30    40    50    60    BLEU 5 / 60
    ==============  ====  ====  ====  ====  ====  ====  ====  ===========
    bottleneck      0.00  0.00  0.00  0.00  0.00  0.00  0.00  1.1 / 2.9
    Bahdanau        0.29  0.19  0.15  0.04  0.04  0.02  0.00  72.1 / 81.4
    Luong dot       1.00  0.98  1.00  1.00  1.00  0.94  0.81  100 / 98.5
    Luong general   1.00  0.98  1.00  1.00  0.98  0.98  0.88  100 / 98.4
    Luong concat    1.00  1.00  0.96  0.92  0.81  0.71  0.25  100 / 83.3
    Transformer     0.96  0.94  0.75  0.54  0.27  0.06  0.00  97.7 / 75.8
    ==============  ====  ====  ====  ====  ====  ====  ====  ===========

    At 1000 steps the bottleneck model is below every recurrent attention model at *every*
    length, 5 included (reversal 0.65 against 1.00; translation 0.00 against 1.00); with 4x the
    steps (``--models bottleneck --steps 4000``, 231 s) it reaches 1.00 / 0.52 / 0.06 / 0.00 at
    reversal lengths 5 / 10 / 15 / 20 and 0.75 / 0.15 / 0.00 on translation at 5 / 10 / 15 (BLEU
    91 / 63 / 15, then about 11 to length 60), while Luong general holds 0.88 or more to length
    60 on both tasks. That is the shape of Bahdanau et al. 2015, Fig. 2 (the fixed-vector model
    falls with length, attention holds), but at this size (an 86-unit decoder state) the fall
    comes by length 10 to 15, not the paper's 20 to 30 words. Not the textbook's picture: the
    Bahdanau (additive) model learns the translation task far more slowly than the Luong models
    (train loss 0.24 against 0.01 at step 1000: BLEU 72 to 90 but few exact sentences), and the
    Transformer at this budget (d = 40, 1000 steps) is the weakest attention model, unconverged
    on reversal (train loss 0.53). Alignments: every recurrent attention model learns the
    anti-diagonal on reversal, Luong general and concat on the exact mirror (argmax on
    ``s - 1 - i`` for 99 to 100% of steps at every length), Bahdanau and Luong dot shifted by one
    (step ``i`` attends ``s - i``, the token just fed in, whose bidirectional state also holds its
    neighbour), so their exact-mirror fraction is 0.02 to 0.25 but the argmax is within one
    position of the mirror for 99 to 100% of steps at every length (measured by rerunning the two
    models, ``--models bahdanau,luong_dot --tasks reversal``: the same accuracies to the last
    digit, as the seeds promise); on translation the heatmaps show
    the verb-final reordering. Attention entropy grows with length for every model but stays far
    below uniform (``log s``, 4.1 nats at 60): reversal at 60 from 0.21 (Luong general) to 1.43
    nats (Luong concat).

Run::

    python -m experiments.bottleneck                    # default: 6 models x 2 tasks (see the timings)
    python -m experiments.bottleneck --quick            # seconds; used by the tests
    python -m experiments.bottleneck --resume RUN_DIR   # continue a stopped or killed run
    python -m experiments.bottleneck --help             # every config field is a flag

Resuming: every ``checkpoint_every`` steps (counted over the sweep of tasks and models) the
current model's parameters and Adam state, the position in the sweep and the finished runs'
results are saved into ``RUN_DIR/checkpoints/``; every batch is a function of the seed, task
and step, so ``--resume`` reaches the same ``metrics.json`` (wall-clock numbers under
``timings``).

Outputs (``runs/bottleneck/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl`` (training loss per step, every evaluation), ``metrics.json`` (parameter counts,
per task, model, decoder and length the accuracies and BLEU, attention entropies, the headline),
``accuracy_vs_length.png``, ``alignments.png``, ``attention_entropy.png``, ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from matplotlib.figure import Figure

from seqjax.data import sequence_reversal
from seqjax.data import reorder_translation as grammar
from seqjax.decoding import beam_search, greedy
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.nn import BahdanauSeq2Seq, BottleneckSeq2Seq, EncoderDecoder, LuongSeq2Seq, count_params
from seqjax.train import clip_by_global_norm, cross_entropy, make_train_step, warmup_cosine_decay
from seqjax.train.metrics import corpus_bleu
from seqjax.train.step import module_loss, split_params

NAME = "bottleneck"
MODELS = ("bottleneck", "bahdanau", "luong_dot", "luong_general", "luong_concat", "transformer")
ATTENTION = ("bahdanau", "luong_dot", "luong_general", "luong_concat")
TASKS = ("reversal", "translation")
TITLES = {"bottleneck": "no attention (bottleneck)", "bahdanau": "Bahdanau (additive)",
          "luong_dot": "Luong dot", "luong_general": "Luong general", "luong_concat": "Luong concat",
          "transformer": "Transformer"}
COLORS = {"bottleneck": "tab:red", "bahdanau": "tab:blue", "luong_dot": "tab:green",
          "luong_general": "tab:purple", "luong_concat": "tab:olive", "transformer": "tab:orange"}
PAD, BOS, EOS, FIRST = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class Config:
    """Train recurrent seq2seq models with and without attention, and a Transformer, on reversal and a reordering translation task; measure accuracy against source length."""

    # --quick: one task (translation: BLEU included), one model of each family, tiny sizes.
    QUICK: ClassVar[dict[str, Any]] = {
        "models": ("bottleneck", "bahdanau", "transformer"), "tasks": ("translation",),
        "min_length": 3, "max_length": 8, "eval_lengths": (4, 8), "heatmap_lengths": (8,),
        "embed_features": 8, "hidden": 8, "transformer_heads": 2, "transformer_layers": 1,
        "steps": 12, "batch_size": 8, "chunk": 6, "warmup_steps": 2, "eval_per_length": 6,
        "beam_size": 2,
    }

    models: tuple[str, ...] = option(MODELS, "models: " + ", ".join(MODELS))
    tasks: tuple[str, ...] = option(TASKS, "tasks: reversal, translation")
    min_length: int = option(5, "shortest training source")
    max_length: int = option(60, "longest training source (sources are padded to it)")
    eval_lengths: tuple[int, ...] = option(tuple(range(5, 61, 5)), "source lengths evaluated")
    heatmap_lengths: tuple[int, ...] = option((10, 30, 60), "source lengths of the alignment heatmaps")
    reversal_vocab: int = option(10, "symbols of the reversal task")
    embed_features: int = option(32, "embedding width of the recurrent models")
    hidden: int = option(32, "Bahdanau model's encoder hidden size per direction (decoder 2x): "
                         "its parameter count is the budget of every model")
    transformer_heads: int = option(4, "Transformer attention heads")
    transformer_layers: int = option(2, "Transformer encoder and decoder layers (d_ff = 2 d_model)")
    steps: int = option(1000, "Adam steps per model and task (the same for all)")
    batch_size: int = option(32, "training batch size")
    learning_rate: float = option(3e-3, "Adam peak learning rate (warmup, then cosine decay to 0)")
    warmup_steps: int = option(100, "linear warmup steps")
    clip_norm: float = option(1.0, "clip gradients to this global norm")
    chunk: int = option(50, "training steps whose batches are generated at once (must divide steps)")
    eval_per_length: int = option(48, "held-out sources per evaluated length")
    beam_size: int = option(4, "beam width (length_penalty 1, as Hugging Face)")
    headline_gap: float = option(0.1, "the bottleneck 'falls below' attention when its exact-match "
                                 "accuracy is at least this much lower than the best attention model's")
    seed: int = option(0, "base random seed (init, training and test data)")
    checkpoint_every: int = option(500, "save a checkpoint (for --resume) every this many steps, "
                                   "counted over the sweep")

    def __post_init__(self):
        for name, allowed in (("models", MODELS), ("tasks", TASKS)):
            values = getattr(self, name)
            if not values or any(v not in allowed for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{name} must be a non-empty subset of {allowed} without repeats; got {values}.")
        if not grammar.MIN_LENGTH <= self.min_length <= self.max_length:
            raise ValueError(f"min_length must lie in [{grammar.MIN_LENGTH}, max_length = {self.max_length}]; "
                             f"got {self.min_length}.")
        for name in ("eval_lengths", "heatmap_lengths"):
            values = getattr(self, name)
            if not values or any(not self.min_length <= v <= self.max_length for v in values):
                raise ValueError(f"{name} must be non-empty and within [min_length, max_length] = "
                                 f"[{self.min_length}, {self.max_length}]; got {values}.")
        for name in ("reversal_vocab", "embed_features", "hidden", "transformer_heads", "transformer_layers",
                     "steps", "batch_size", "chunk", "eval_per_length", "beam_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.steps % self.chunk:
            raise ValueError(f"chunk ({self.chunk}) must divide steps ({self.steps}).")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must lie in [0, steps); got {self.warmup_steps}.")
        if not (self.learning_rate > 0 and self.clip_norm > 0 and 0 < self.headline_gap <= 1):
            raise ValueError("learning_rate and clip_norm must be positive, headline_gap in (0, 1].")


# --- data ------------------------------------------------------------------------------------


def vocab_sizes(task: str, config: Config) -> tuple[int, int]:
    """Source and target vocabulary sizes: PAD, BOS, EOS, then the task's symbols or words."""
    if task == "reversal":
        return FIRST + config.reversal_vocab, FIRST + config.reversal_vocab
    return FIRST + len(grammar.SOURCE_WORDS), FIRST + len(grammar.TARGET_WORDS)


def target_capacity(task: str, config: Config) -> int:
    """Target positions of a padded batch: the longest target plus EOS."""
    longest = config.max_length if task == "reversal" else grammar.target_length_bound(config.max_length)
    return longest + 1


SRC_IDS = {w: FIRST + i for i, w in enumerate(grammar.SOURCE_WORDS)}
TGT_IDS = {w: FIRST + i for i, w in enumerate(grammar.TARGET_WORDS)}


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _symbols(key, n, length, vocab):
    return sequence_reversal(key, n, length, vocab)


def make_batch(task: str, seed_parts: Sequence[int], lengths: np.ndarray, config: Config) -> dict[str, np.ndarray]:
    """Padded arrays for sources of the given ``lengths``: ``src [n, max_length]``,
    ``src_lengths [n]``, ``tgt_in [n, T]`` (BOS, target), ``tgt_out [n, T]`` (target, EOS),
    ``tgt_lengths [n]`` (target + EOS). A function of ``seed_parts`` and ``lengths`` only."""
    n, s, t = len(lengths), config.max_length, target_capacity(task, config)
    src = np.full((n, s), PAD, np.int32)
    tgt_in = np.full((n, t), PAD, np.int32)
    tgt_out = np.full((n, t), PAD, np.int32)
    tgt_lengths = np.zeros(n, np.int32)
    if task == "reversal":
        key = jax.random.key(np.random.SeedSequence(list(seed_parts)).generate_state(1)[0])
        tokens, reversed_ = jax.device_get(_symbols(key, n, s, config.reversal_vocab))
        pairs = []
        for i, length in enumerate(lengths):
            # the last `length` symbols of a row reversed are the first `length` of its reversal
            pairs.append((tokens[i, s - length:] + FIRST, reversed_[i, :length] + FIRST))
    else:
        rng = np.random.default_rng(list(seed_parts))
        pairs = []
        for length in lengths:
            a, b = grammar.sample_pair(rng, int(length))
            pairs.append((np.array([SRC_IDS[w] for w in a]), np.array([TGT_IDS[w] for w in b])))
    for i, (a, b) in enumerate(pairs):
        src[i, :len(a)] = a
        tgt_in[i, 0], tgt_in[i, 1:len(b) + 1] = BOS, b
        tgt_out[i, :len(b)], tgt_out[i, len(b)] = b, EOS
        tgt_lengths[i] = len(b) + 1
    return {"src": src, "src_lengths": np.asarray(lengths, np.int32), "tgt_in": tgt_in,
            "tgt_out": tgt_out, "tgt_lengths": tgt_lengths}


def train_chunk(task: str, c: int, config: Config) -> dict[str, np.ndarray]:
    """The batches of chunk ``c`` (``[chunk, batch, ...]``): a function of the seed, task and
    ``c``, the same for every model."""
    n = config.chunk * config.batch_size
    parts = (config.seed, TASKS.index(task), 0, c)
    lengths = np.random.default_rng(list(parts)).integers(config.min_length, config.max_length + 1, n)
    batch = make_batch(task, (*parts, 1), lengths, config)
    return {k: v.reshape(config.chunk, config.batch_size, *v.shape[1:]) for k, v in batch.items()}


def test_set(task: str, config: Config) -> dict[str, np.ndarray]:
    """``eval_per_length`` held-out sources of each length in ``eval_lengths`` (in that order)."""
    lengths = np.repeat(np.asarray(config.eval_lengths), config.eval_per_length)
    return make_batch(task, (config.seed, TASKS.index(task), 1), lengths, config)


# --- models ----------------------------------------------------------------------------------


def constructor(model: str, task: str, width: int, config: Config, seed: int = 0):
    """A zero-argument constructor of ``model`` with ``width`` (encoder hidden per direction, or
    the Transformer's ``d_model``)."""
    v_src, v_tgt = vocab_sizes(task, config)
    rngs = lambda: nnx.Rngs(seed)  # noqa: E731
    common = dict(embed_features=config.embed_features, hidden_features=width, cell="gru")
    if model == "bottleneck":
        return lambda: BottleneckSeq2Seq(v_src, v_tgt, rngs=rngs(), **common)
    if model == "bahdanau":
        return lambda: BahdanauSeq2Seq(v_src, v_tgt, rngs=rngs(), **common)
    if model.startswith("luong_"):
        return lambda: LuongSeq2Seq(v_src, v_tgt, rngs=rngs(), score=model[len("luong_"):], **common)
    max_len = max(config.max_length, target_capacity(task, config)) + 1
    return lambda: EncoderDecoder(
        v_src, v_tgt, rngs=rngs(), d_model=width, num_heads=config.transformer_heads,
        num_layers=config.transformer_layers, d_ff=2 * width, max_len=max_len, dropout_rate=0.0,
        norm_first=True, activation="gelu")


@functools.lru_cache(maxsize=None)
def sizes(task: str, config: Config) -> dict[str, dict[str, int]]:
    """Per model the width closest to the parameter budget and its exact parameter count."""
    budget = count_params(constructor("bahdanau", task, config.hidden, config))
    out = {}
    for model in config.models:
        step = 2 * config.transformer_heads if model == "transformer" else 1
        widths = list(range(step, 513, step))

        def count(i):
            return count_params(constructor(model, task, widths[i], config))

        lo, hi = 0, len(widths) - 1  # the first width whose count reaches the budget
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if count(mid) < budget else (lo, mid)
        best = min({max(lo - 1, 0), lo}, key=lambda i: (abs(count(i) - budget), i))
        out[model] = {"width": widths[best], "params": count(best)}
    return {"budget": budget, "models": out}


def is_transformer(model: str) -> bool:
    return model == "transformer"


def make_loss(model: str):
    def loss_of_model(m, batch, key):
        if is_transformer(model):
            logits = m(batch["src"], batch["tgt_in"], src_lengths=batch["src_lengths"],
                       tgt_lengths=batch["tgt_lengths"])
        else:
            logits = m(batch["src"], batch["src_lengths"], batch["tgt_in"])
        mask = jnp.arange(batch["tgt_out"].shape[1]) < batch["tgt_lengths"][:, None]
        return cross_entropy(logits, batch["tgt_out"], mask=mask)
    return loss_of_model


def decoders(model: str, graphdef, rest, max_len: int, beam_size: int):
    """Jitted ``greedy(params, src, src_lengths)`` and ``beam(params, src, src_lengths)`` ->
    token sequences ``[n, max_len]`` (the best beam)."""
    def start(params, src, lengths):
        m = nnx.merge(graphdef, params, rest)
        if is_transformer(model):
            state = m.init_decode_state(src, max_len, src_lengths=lengths)
        else:
            state = m.init_decode_state(src, lengths)
        return m.step_fn(), state, jnp.full((src.shape[0],), BOS, jnp.int32)

    @jax.jit
    def greedy_fn(params, src, lengths):
        step_fn, state, bos = start(params, src, lengths)
        return greedy(step_fn, state, bos, max_len, eos_id=EOS, pad_id=PAD).sequences

    @jax.jit
    def beam_fn(params, src, lengths):
        step_fn, state, bos = start(params, src, lengths)
        return beam_search(step_fn, state, bos, max_len, beam_size=beam_size, eos_id=EOS,
                           pad_id=PAD).sequences[:, 0]

    return greedy_fn, beam_fn


# --- metrics ---------------------------------------------------------------------------------


def sequence_scores(hyp: np.ndarray, ref: np.ndarray, ref_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per example exact match (the first ``ref_lengths`` tokens, EOS included, agree and the
    hypothesis has nothing after: the decoders pad with PAD after EOS) and token accuracy (the
    fraction of those ``ref_lengths`` positions that agree)."""
    t = ref.shape[1]
    valid = np.arange(t) < ref_lengths[:, None]
    hyp = hyp[:, :t] if hyp.shape[1] >= t else np.pad(hyp, ((0, 0), (0, t - hyp.shape[1])))
    same = (hyp == ref) & valid
    exact = same.sum(1) == ref_lengths
    return exact, same.sum(1) / ref_lengths


def words_until_eos(row: np.ndarray) -> list[str]:
    out = []
    for tok in row.tolist():
        if tok in (EOS, PAD):
            break
        out.append(str(tok))
    return out


def attention_stats(weights: np.ndarray, src_lengths: np.ndarray,
                    tgt_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per example the mean attention entropy (nats, over the target steps up to EOS), the
    fraction of target steps ``i < s`` whose largest weight is on source position ``s - 1 - i``
    (the reversal alignment), and the fraction whose largest weight is within one position of it
    (a bidirectional encoder state also holds its neighbours' tokens, so an alignment shifted by
    one decodes as well)."""
    n, t, _ = weights.shape
    entropy, mirrored, near = np.zeros(n), np.zeros(n), np.zeros(n)
    for k in range(n):
        a = weights[k, :tgt_lengths[k], :src_lengths[k]].astype(np.float64)
        entropy[k] = float(np.mean(-(a * np.log(np.where(a > 0, a, 1.0))).sum(-1)))
        s = int(src_lengths[k])
        steps = min(s, tgt_lengths[k])
        offset = np.argmax(a[:steps], -1) - (s - 1 - np.arange(steps))
        mirrored[k], near[k] = float(np.mean(offset == 0)), float(np.mean(np.abs(offset) <= 1))
    return entropy, mirrored, near


def evaluate(model: str, task: str, params, graphdef, rest, test: dict, config: Config) -> dict[str, Any]:
    """Greedy and beam decoding of the test set; per length the metrics of the module docstring."""
    t = target_capacity(task, config)
    greedy_fn, beam_fn = decoders(model, graphdef, rest, t, config.beam_size)
    lengths = test["src_lengths"]
    by_decoder = {}
    for name, fn in (("greedy", greedy_fn), ("beam", beam_fn)):
        hyp = np.asarray(fn(params, test["src"], lengths))
        exact, token = sequence_scores(hyp, test["tgt_out"], test["tgt_lengths"])
        per = {}
        for length in config.eval_lengths:
            idx = np.flatnonzero(lengths == length)
            row = {"exact_match": float(exact[idx].mean()), "token_accuracy": float(token[idx].mean())}
            if task == "translation":
                row["bleu"] = corpus_bleu([words_until_eos(hyp[i]) for i in idx],
                                          [words_until_eos(test["tgt_out"][i]) for i in idx])
            per[str(length)] = row
        by_decoder[name] = per
    out: dict[str, Any] = {"decoders": by_decoder}
    if model in ATTENTION:
        m = nnx.merge(graphdef, params, rest)
        _, weights = jax.jit(lambda s, l, y: m(s, l, y, return_attention=True))(
            test["src"], lengths, test["tgt_in"])
        weights = np.asarray(weights)
        entropy, mirrored, near = attention_stats(weights, lengths, test["tgt_lengths"])
        out["attention"] = {}
        for length in config.eval_lengths:
            idx = lengths == length
            row = {"entropy": float(entropy[idx].mean()), "uniform_entropy": math.log(length)}
            if task == "reversal":
                row["mirrored_argmax"] = float(mirrored[idx].mean())
                row["mirrored_argmax_within_1"] = float(near[idx].mean())
            out["attention"][str(length)] = row
        out["heatmaps"] = {}
        for length in config.heatmap_lengths:
            k = int(np.flatnonzero(lengths == length)[0]) if length in config.eval_lengths else None
            if k is None:
                continue
            out["heatmaps"][str(length)] = {
                "weights": weights[k, :test["tgt_lengths"][k], :length].astype(np.float32),
                "src": test["src"][k, :length], "tgt": test["tgt_out"][k, :test["tgt_lengths"][k]]}
    return out


# --- the sweep -------------------------------------------------------------------------------


def plan(config: Config) -> list[tuple[str, str]]:
    return [(task, model) for task in config.tasks for model in config.models]


def train_one(index: int, runs, config: Config, run_dir: RunDir, bar, ckpt: RunCheckpoints, sweep: dict) -> None:
    task, model = runs[index]
    width = sizes(task, config)["models"][model]["width"]
    seed = config.seed * 1000 + MODELS.index(model)
    m = constructor(model, task, width, config, seed)()
    graphdef, init, rest = split_params(m)
    optimizer = optax.chain(clip_by_global_norm(config.clip_norm),
                            optax.adam(warmup_cosine_decay(config.learning_rate, config.warmup_steps, config.steps)))
    step = make_train_step(module_loss(graphdef, make_loss(model), rest), optimizer)
    current, state = ckpt.sweep_run(sweep, index, {"params": init, "opt_state": optimizer.init(init)},
                                    lambda: {"run": index, "step": 0, "losses": [], "wall_s": 0.0})
    params, opt_state = state["params"], state["opt_state"]
    started, wall_before = time.perf_counter(), current["wall_s"]
    batches = None
    for k in range(current["step"], config.steps):
        c, i = divmod(k, config.chunk)
        if batches is None or i == 0:
            batches = train_chunk(task, c, config)
        params, opt_state, metrics = step(params, opt_state, {n: v[i] for n, v in batches.items()})
        loss = float(metrics["loss"])
        current["losses"].append(loss)
        current["step"] = k + 1
        run_dir.log(kind="train", task=task, model=model, step=k + 1, loss=loss,
                    grad_norm=float(metrics["grad_norm"]))
        bar.update(1)
        if i == config.chunk - 1:
            bar.set_postfix_str(f"{task} {model}: loss {np.mean(current['losses'][-config.chunk:]):.3f}")
        sweep_step = index * config.steps + k + 1
        if ckpt.due(sweep_step) or k + 1 == config.steps:
            current["wall_s"] = wall_before + time.perf_counter() - started
            ckpt.save(sweep_step, {"params": params, "opt_state": opt_state}, sweep, force=True)
    train_s = wall_before + time.perf_counter() - started
    t0 = time.perf_counter()
    result = evaluate(model, task, params, graphdef, rest, test_set(task, config), config)
    for decoder, per in result["decoders"].items():
        for length, row in per.items():
            run_dir.log(kind="eval", task=task, model=model, decoder=decoder, length=int(length), **row)
    losses = current["losses"]
    result["final_train_loss"] = float(np.mean(losses[-max(1, config.steps // 20):]))
    result["loss_curve"] = np.asarray(losses, np.float32)
    sweep["finished"].append({"result": result, "timings": {
        "train_s": round(train_s, 1), "eval_s": round(time.perf_counter() - t0, 1)}})
    sweep["current"] = None


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    runs = plan(config)
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        done = len(sweep["finished"]) * config.steps + (sweep["current"] or {"step": 0})["step"]
        bar = progress(desc="bottleneck", total=len(runs) * config.steps, initial=done)
        for index in range(len(sweep["finished"]), len(runs)):
            train_one(index, runs, config, run_dir, bar, ckpt, sweep)
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions
    results = {t: {} for t in config.tasks}
    timings = {t: {} for t in config.tasks}
    for (task, model), finished in zip(runs, sweep["finished"]):
        results[task][model] = finished["result"]
        timings[task][model] = finished["timings"]
    run_dir.save_figure(plot_accuracy(results, config), "accuracy_vs_length")
    if any(m in ATTENTION for m in config.models):
        run_dir.save_figure(plot_alignments(results, config), "alignments")
        run_dir.save_figure(plot_entropy(results, config), "attention_entropy")
    summary = summarise(results, config)
    summary["environment"] = environment()
    summary["timings"] = {"runtime_s": round(runtime_s, 1), "sessions": sessions, "runs": timings}
    return summary


def headline(results: dict, config: Config) -> dict[str, Any]:
    """Per task and decoder: the first evaluated length at which the bottleneck model's exact
    match is ``headline_gap`` or more below the best attention model's, and the gaps."""
    out = {}
    attention = [m for m in config.models if m != "bottleneck"]
    if "bottleneck" not in config.models or not attention:
        return out
    for task, by_model in results.items():
        for decoder in ("greedy", "beam"):
            gaps, first = {}, None
            for length in config.eval_lengths:
                b = by_model["bottleneck"]["decoders"][decoder][str(length)]["exact_match"]
                best_model = max(attention, key=lambda m: by_model[m]["decoders"][decoder][str(length)]["exact_match"])
                best = by_model[best_model]["decoders"][decoder][str(length)]["exact_match"]
                gaps[str(length)] = {"bottleneck": b, "best_attention": best, "best_model": best_model,
                                     "gap": best - b}
                if first is None and best - b >= config.headline_gap:
                    first = length
            out[f"{task}_{decoder}"] = {"first_length_below": first, "by_length": gaps}
    return out


def summarise(results: dict, config: Config) -> dict[str, Any]:
    compact = {}
    for task, by_model in results.items():
        compact[task] = {}
        for model, r in by_model.items():
            entry = {"decoders": r["decoders"], "final_train_loss": r["final_train_loss"]}
            if "attention" in r:
                entry["attention"] = r["attention"]
            compact[task][model] = entry
    return {
        "params": {t: sizes(t, config) for t in config.tasks},
        "results": compact,
        "headline": headline(results, config),
        "exact_match_ceiling": {"reversal": 1.0, "translation": grammar.EXACT_MATCH_CEILING},
        "steps": config.steps,
    }


def format_table(summary: dict[str, Any]) -> str:
    lines = []
    for task, by_model in summary["results"].items():
        lengths = list(next(iter(by_model.values()))["decoders"]["greedy"])
        lines.append(f"{task}: exact-match accuracy, greedy / beam, by source length")
        lines.append(f"{'model':<14} {'params':>7} | " + " ".join(f"{l:>9}" for l in lengths))
        for model, r in by_model.items():
            g, b = r["decoders"]["greedy"], r["decoders"]["beam"]
            cells = " ".join(f"{g[l]['exact_match']:.2f}/{b[l]['exact_match']:.2f}" for l in lengths)
            lines.append(f"{model:<14} {summary['params'][task]['models'][model]['params']:>7} | {cells}")
        if task == "translation":
            lines.append("translation BLEU (greedy)")
            for model, r in by_model.items():
                g = r["decoders"]["greedy"]
                lines.append(f"{model:<14} {'':>7} | " + " ".join(f"{g[l]['bleu']:>9.1f}" for l in lengths))
        lines.append("")
    for key, h in summary["headline"].items():
        lines.append(f"headline {key}: bottleneck first falls >= gap below attention at length {h['first_length_below']}")
    return "\n".join(lines)


# --- figures ---------------------------------------------------------------------------------


def plot_accuracy(results: dict, config: Config) -> Figure:
    metrics = [("exact_match", "exact-match accuracy"), ("token_accuracy", "token accuracy"), ("bleu", "BLEU")]
    fig = Figure(figsize=(13, 3.6 * len(results)), layout="constrained")
    axes = fig.subplots(len(results), 3, squeeze=False)
    lengths = list(config.eval_lengths)
    for r, (task, by_model) in enumerate(results.items()):
        for c, (key, label) in enumerate(metrics):
            ax = axes[r, c]
            if key == "bleu" and task != "translation":
                ax.set_visible(False)
                continue
            for model, res in by_model.items():
                for decoder, style in (("greedy", "o-"), ("beam", "s--")):
                    ys = [res["decoders"][decoder][str(l)][key] for l in lengths]
                    ax.plot(lengths, ys, style, color=COLORS[model], ms=3.5, lw=1.4,
                            alpha=1.0 if decoder == "greedy" else 0.6,
                            label=f"{TITLES[model]}, {decoder}")
            ax.set_xlabel("source length")
            ax.set_ylabel(label)
            ax.set_title(f"{task}: {label}", fontsize=10)
            ax.grid(True, alpha=0.3)
            if key != "bleu":
                ax.set_ylim(-0.02, 1.02)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7.5)
    fig.suptitle(f"Held-out accuracy against source length after {config.steps} Adam steps "
                 f"(batch {config.batch_size}); solid: greedy, dashed: beam {config.beam_size}", fontsize=10)
    return fig


def _labels(task: str, ids: np.ndarray, source: bool) -> list[str]:
    if task == "reversal":
        return [str(int(i) - FIRST) if i >= FIRST else "EOS" for i in ids]
    words = grammar.SOURCE_WORDS if source else grammar.TARGET_WORDS
    return [words[int(i) - FIRST] if i >= FIRST else "EOS" for i in ids]


def plot_alignments(results: dict, config: Config) -> Figure:
    rows = [(t, m) for t in results for m in results[t] if m in ATTENTION]
    cols = [str(l) for l in config.heatmap_lengths if l in config.eval_lengths]
    fig = Figure(figsize=(4.2 * len(cols), 3.8 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for r, (task, model) in enumerate(rows):
        for c, length in enumerate(cols):
            ax = axes[r, c]
            h = results[task][model]["heatmaps"][length]
            w = np.asarray(h["weights"])
            ax.imshow(w, cmap="viridis", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
            if int(length) <= 12:
                ax.set_xticks(range(w.shape[1]), _labels(task, h["src"], True), rotation=90, fontsize=6)
                ax.set_yticks(range(w.shape[0]), _labels(task, h["tgt"], False), fontsize=6)
            ax.set_title(f"{task}, {TITLES[model]}, s = {length}", fontsize=9)
            ax.set_xlabel("source position")
            ax.set_ylabel("target position")
    fig.suptitle("Learned attention weights a_ij (teacher-forced, one held-out example each)", fontsize=10)
    return fig


def plot_entropy(results: dict, config: Config) -> Figure:
    fig = Figure(figsize=(5.5 * len(results) + 1.5, 3.8), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    lengths = list(config.eval_lengths)
    for ax, (task, by_model) in zip(axes, results.items()):
        ax.plot(lengths, [math.log(l) for l in lengths], "k--", lw=1, label="uniform: log s")
        for model, res in by_model.items():
            if "attention" in res:
                ax.plot(lengths, [res["attention"][str(l)]["entropy"] for l in lengths], "o-",
                        color=COLORS[model], ms=3.5, label=TITLES[model])
        ax.set_xlabel("source length s")
        ax.set_ylabel("mean attention entropy (nats)")
        ax.set_title(task, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7.5)
    fig.suptitle("Attention entropy per target step against source length", fontsize=10)
    return fig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
