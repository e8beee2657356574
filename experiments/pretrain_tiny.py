"""Pretrain a tiny BERT (masked LM) or GPT (causal LM) on the text that gensim ships, and save it
so that ``seqjax.experiment.pretrained.load_pretrained(run_dir)`` loads it back in one call.

What it measures
    How far a small transformer trained for minutes on CPU gets past the simplest baselines on
    held-out text. ``--model bert``: :class:`seqjax.nn.BertForMaskedLM` trained with BERT's
    masked-language-model rule (Devlin et al. 2019: 15% of the non-special positions selected;
    of those 80% become ``[MASK]``, 10% a random token, 10% stay; :func:`seqjax.transformer.mlm_masking`);
    reported on held-out text: the accuracy and perplexity at the selected positions (all of them,
    and the ``[MASK]`` ones alone), against a unigram model (always predict the most frequent
    training token; its perplexity from add-one smoothed training frequencies) scored on the same
    positions. ``--model gpt``: :class:`seqjax.nn.GPTLanguageModel` trained on next-token
    prediction; reported: held-out perplexity and top-1 accuracy against the unigram model and an
    interpolated bigram model (absolute discounting, d = 0.75, backing off to the unigram; it is
    given the previous token even at the first position of a window, which the transformer
    is not).

Data
    ``seqjax.data.corpora.wikipedia_excerpt()`` (the 106 articles of the shortened English
    Wikipedia dump in gensim's test data, ~480k words) and ``lee_corpus("background")`` (300
    Australian news articles). **Held out by document**: every tenth document of each corpus
    (index ``i`` with ``i % 10 == 9``, in the corpus's own order) is never trained on; the
    vocabulary is learned from the training documents only. The vocabulary is byte-pair encoding
    (:class:`seqjax.data.BPETokenizer`, Sennrich et al. 2016) of ``vocab_size`` tokens learned on
    the whole training text (it takes about half a minute for the 3 MB); characters seen fewer than
    ``min_char_count`` times in training are left out of it (words containing them are not used
    for learning merges, and such a character encodes as ``[UNK]``). Special tokens: ``[PAD]``
    (0), ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``. Each document is encoded and followed by
    ``[SEP]``; the documents are concatenated into one token stream. A training window is
    ``seq_len`` tokens of the stream at a random offset (BERT: ``[CLS]`` + ``seq_len - 2`` tokens
    + ``[SEP]``; GPT: ``seq_len + 1`` tokens, inputs and shifted targets). Offsets, MLM masks and
    dropout keys are functions of ``(seed, step)``, so a resumed run draws the same batches.
    Held-out windows are the consecutive non-overlapping windows of the held-out stream, with one
    fixed MLM masking.

Training
    AdamW (:func:`seqjax.train.adamw`: no decay of biases and norms) with linear warmup and cosine
    decay (:func:`seqjax.train.warmup_cosine_decay`), gradient clipping at global norm 1,
    dropout 0.1, steps from :func:`seqjax.train.make_train_step`; scanned layers.

Result (numbers in ``metrics.json``; wall times on 2 CPU cores shared with other jobs)
    Corpus: 406 documents (106 Wikipedia, 300 Lee), 40 held out (10 + 30): 918k training tokens
    (489k words, 1.88 tokens per word), 101k held-out tokens (36 of them ``[UNK]``). Held-out
    accuracy at the ``[MASK]`` positions (12,168 of them), against the unigram model (always
    " the", 0.027; perplexity 1411) and a count model that sees only the two neighbours (the most
    frequent training token between them, else the bigram; :func:`neighbour_argmax`: 0.212):

    ======================================================  ==========  ==============  =========
    BERT, 4 layers, d 128, 3000 steps (6.5 epochs)          [MASK] acc  [MASK] perplex  all sel.
    ======================================================  ==========  ==============  =========
    default: ALiBi, 8 heads (31 min, three other jobs)      **0.068**   **338**         0.157
    BERT's learned position table, 4 heads (62 min)         0.031       1234            0.125
    ======================================================  ==========  ==============  =========

    With BERT's learned absolute positions the encoder sat on the unigram plateau: [MASK]
    accuracy 0.027 (exactly " the") up to step 750, 0.031 at 3000, and no head attended to a
    neighbour (at [MASK] queries every head put 0.012-0.021 on the previous and the next token,
    uniform being 0.016). Neither pre-LN, 40% masking, no dropout, a 3x higher learning rate, a 4x
    wider init, T5's relative bias nor shorter windows left the plateau within 400-750 steps
    (diagnostic runs). ALiBi (Press et al. 2022; MosaicBERT, Portes et al. 2023, uses it in a
    BERT) gives its steep heads a built-in preference for near keys: [MASK] accuracy leaves the
    unigram's by step 500 (0.037) and is still rising at 3000; its neighbour share at [MASK]
    queries is 0.16-0.17 per side in the steepest head of every layer (the prior), and layer 3's
    head 1 has sharpened its prior to 0.22 / 0.20 (0.10 in layer 0). It is still far below the
    neighbour count model: the encoder has learned less from its neighbours than their counts hold.
    GPT (default: absolute positions as GPT-2, 8 heads, 3000 steps = 6.8 epochs, 38 min with two
    other jobs): held-out perplexity **139** against unigram 1426 and the interpolated bigram
    model's 222; top-1 accuracy 0.144 (unigram 0.027, bigram 0.110). (The earlier 600-step,
    4-head GPT: 343, below unigram but not the bigram.)

Devices
    ``--mesh DATAxMODEL`` (default: every device on the data axis) and ``--sharding``
    (``dp``, ``fsdp``, ``tp``, ``fsdp+tp``; :mod:`seqjax.train.partitioning`) split the batch,
    the parameters and the optimiser state over a 2-D device mesh; the numbers do not depend on
    it beyond float rounding (``--quick --model gpt`` on 8 simulated CPU devices, ``--mesh 2x4
    --sharding fsdp+tp``: every metric within 1e-6 relative of 1 device). ``batch_size`` must
    divide by the data axis. A resumed run keeps its saved ``--mesh`` (the default adapts to the
    devices it resumes on).

Outputs (``runs/pretrain_tiny/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl`` (training loss per step, held-out evaluations), ``metrics.json`` (the
held-out scores, the baselines, the corpus split, the reload check), ``loss.png`` (training and
held-out loss against step, with the baselines), ``tokenizer.json`` and ``pretrained/`` (the
model: :func:`seqjax.experiment.pretrained.save_pretrained`), ``checkpoints/``.

Run::

    python -m experiments.pretrain_tiny --model bert     # default: 31 min on 2 shared CPU cores
    python -m experiments.pretrain_tiny --model gpt
    python -m experiments.pretrain_tiny --quick          # seconds; used by the tests
    python -m experiments.pretrain_tiny --resume RUN_DIR
    python -m experiments.pretrain_tiny --model gpt --mesh 4x2 --sharding fsdp+tp   # 8 devices

Load the result::

    from seqjax.experiment.pretrained import load_pretrained
    model, tokenizer, kind, config, info, path = load_pretrained("runs/pretrain_tiny/<stamp>")
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
import time
from typing import Any, ClassVar, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from matplotlib.figure import Figure

from seqjax.primitives import count_scalars
from seqjax.data import BPETokenizer, load_tokenizer
from seqjax.data.corpora import lee_corpus, wikipedia_excerpt
from seqjax.data.tokenizers.bpe import pretokenize as bpe_words  # the tokenizer's own word split
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.experiment.pretrained import load_pretrained, save_pretrained
from seqjax.nn import BertConfig, BertForMaskedLM, GPT2Config, GPTLanguageModel
from seqjax.train import adamw, clip_by_global_norm, make_eval_step, make_train_step, warmup_cosine_decay
from seqjax.train.partitioning import opt_state_specs, param_specs
from seqjax.train.sharding import mesh as device_mesh, parse_mesh, shard_batch, shard_tree
from seqjax.train.step import module_loss, split_params
from seqjax.transformer import mlm_loss, mlm_masking, selected_positions

NAME = "pretrain_tiny"
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(5)
CORPUS_NAMES = ("wikipedia", "lee_background")
EVAL_SEED = 10**6  # the held-out masking key: fold_in(key(seed), EVAL_SEED)


@dataclasses.dataclass(frozen=True)
class Config:
    """Pretrain a tiny BERT (MLM) or GPT (causal LM) on gensim's Wikipedia excerpt and Lee corpus."""

    # --quick: the Lee corpus's first 40 documents, a 250-token vocabulary, a 2-layer model of
    # width 32 on windows of 32 tokens for 12 steps (seconds, for the tests).
    QUICK: ClassVar[dict[str, Any]] = {
        "corpora": ("lee_background",), "max_documents": 40, "vocab_size": 250, "d_model": 32,
        "num_layers": 2, "num_heads": 2, "d_ff": 64, "seq_len": 32, "batch_size": 8, "train_steps": 12,
        "warmup_steps": 2, "eval_every": 12, "max_eval_windows": 16, "checkpoint_every": 6,
    }

    model: Literal["bert", "gpt"] = option("bert", "bert: BertForMaskedLM (MLM 80/10/10); gpt: GPTLanguageModel")
    corpora: tuple[str, ...] = option(CORPUS_NAMES, "documents from: wikipedia (gensim's excerpt), lee_background")
    max_documents: int | None = option(None, "use only the first N documents of each corpus (none: all)")
    held_out_every: int = option(10, "hold out document i of each corpus when i % N == N - 1")
    vocab_size: int = option(4096, "BPE vocabulary size (special tokens and base characters included)")
    min_char_count: int = option(20, "characters seen fewer times in training encode as [UNK]")
    positional: Literal["auto", "absolute", "alibi", "relative"] = option(
        "auto", "positions: absolute (a learned table, as BERT and GPT-2), alibi (Press et al. 2022), relative "
        "(T5's bucketed bias); auto: alibi for bert (its learned table formed no positional head in 3000 "
        "steps), absolute for gpt")
    d_model: int = option(128, "model width")
    num_layers: int = option(4, "transformer layers")
    num_heads: int = option(8, "attention heads")
    d_ff: int = option(512, "feed-forward width")
    seq_len: int = option(64, "tokens per window (BERT: [CLS] + seq_len - 2 + [SEP])")
    batch_size: int = option(32, "windows per step")
    train_steps: int = option(3000, "optimiser steps")
    learning_rate: float = option(1e-3, "peak AdamW learning rate")
    warmup_steps: int = option(300, "linear warmup steps, then cosine decay to a tenth of the peak")
    weight_decay: float = option(0.01, "AdamW weight decay (not on biases or norms)")
    dropout_rate: float = option(0.1, "dropout on embeddings, attention weights and residual branches")
    mask_prob: float = option(0.15, "BERT: the fraction of positions selected for prediction")
    eval_every: int = option(250, "evaluate on the held-out text every this many steps (and at the end)")
    max_eval_windows: int | None = option(None, "evaluate on at most N held-out windows (none: all)")
    eval_batch: int = option(64, "held-out windows per evaluation batch")
    seed: int = option(0, "base random seed")
    checkpoint_every: int = option(250, "save a checkpoint (for --resume) every this many steps")
    mesh: str | None = option(None, "device mesh DATAxMODEL, e.g. 4x2 (none: every device on the data axis)")
    sharding: Literal["dp", "fsdp", "tp", "fsdp+tp"] = option(
        "dp", "how parameters and optimiser state split over the mesh (seqjax.train.partitioning)")

    def __post_init__(self):
        if not self.corpora or any(c not in CORPUS_NAMES for c in self.corpora) or len(set(self.corpora)) != len(self.corpora):
            raise ValueError(f"corpora must be a non-empty subset of {CORPUS_NAMES} without repeats; got {self.corpora}.")
        for name in ("held_out_every", "vocab_size", "min_char_count", "d_model", "num_layers", "num_heads", "d_ff",
                     "batch_size", "train_steps", "eval_every", "eval_batch", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.held_out_every < 2:
            raise ValueError(f"held_out_every must be at least 2 (1 would hold out everything); got {self.held_out_every}.")
        if self.mesh is not None and not re.fullmatch(r"\s*(auto|-?\d+\s*[xX]\s*-?\d+)\s*", self.mesh):
            raise ValueError(f"mesh must be DATAxMODEL (e.g. 4x2) or none; got {self.mesh!r}.")
        if self.d_model % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide d_model ({self.d_model}).")
        if self.seq_len < 4:
            raise ValueError(f"seq_len must be at least 4; got {self.seq_len}.")
        if not 0 <= self.warmup_steps < self.train_steps:
            raise ValueError(f"warmup_steps must lie in [0, train_steps); got {self.warmup_steps}.")
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob must lie in (0, 1); got {self.mask_prob}.")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must lie in [0, 1); got {self.dropout_rate}.")
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError("learning_rate must be positive and weight_decay >= 0.")
        for name in ("max_documents", "max_eval_windows"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (or none); got {getattr(self, name)}.")


# --- data --------------------------------------------------------------------------------------


def load_documents(config: Config) -> dict[str, list[str]]:
    """``{corpus: [document text]}`` in each corpus's own order (Wikipedia: title line + text)."""
    docs = {}
    for name in config.corpora:
        if name == "wikipedia":
            texts = [f"{title}\n{text}" for title, text in wikipedia_excerpt()]
        else:
            texts = list(lee_corpus("background"))
        docs[name] = texts if config.max_documents is None else texts[: config.max_documents]
    return docs


def split_documents(docs: dict[str, list[str]], every: int) -> tuple[list[str], list[str], dict[str, Any]]:
    """(training documents, held-out documents, a description): document ``i`` of each corpus is
    held out when ``i % every == every - 1``."""
    train, held, info = [], [], {}
    for name, texts in docs.items():
        held_idx = [i for i in range(len(texts)) if i % every == every - 1]
        train += [t for i, t in enumerate(texts) if i % every != every - 1]
        held += [texts[i] for i in held_idx]
        info[name] = {"documents": len(texts), "held_out_documents": len(held_idx),
                      "held_out_indices": held_idx, "train_chars": sum(len(texts[i]) for i in range(len(texts)) if i % every != every - 1),
                      "held_out_chars": sum(len(texts[i]) for i in held_idx)}
    return train, held, info


def train_tokenizer(train_docs: Sequence[str], config: Config) -> BPETokenizer:
    """BPE on the training documents' words, leaving out words with characters seen fewer than
    ``min_char_count`` times (so those characters get no token and encode as ``[UNK]``)."""
    chars = collections.Counter()
    words = collections.Counter()
    for doc in train_docs:
        chars.update(doc)
        words.update(bpe_words(doc))
    rare = {c for c, n in chars.items() if n < config.min_char_count}
    kept = {w: n for w, n in words.items() if not (rare & set(w))}
    return BPETokenizer.train(kept, vocab_size=config.vocab_size, special_tokens=SPECIALS, unk_token="[UNK]")


def token_stream(tokenizer: BPETokenizer, docs: Sequence[str]) -> np.ndarray:
    """The documents encoded, each followed by ``[SEP]``, concatenated: ``[n]`` int32."""
    parts = []
    for doc in docs:
        parts += [tokenizer.encode(doc), np.array([SEP], np.int32)]
    return np.concatenate(parts).astype(np.int32)


def window_span(config: Config) -> int:
    """Stream tokens per window: BERT ``seq_len - 2`` (plus [CLS], [SEP]), GPT ``seq_len + 1``."""
    return config.seq_len - 2 if config.model == "bert" else config.seq_len + 1


def make_windows(stream: np.ndarray, starts: np.ndarray, config: Config) -> np.ndarray:
    """``[n, span]`` stream slices at ``starts``, with [CLS]/[SEP] around them for BERT."""
    span = window_span(config)
    w = stream[starts[:, None] + np.arange(span)[None]]
    if config.model == "bert":
        n = len(starts)
        w = np.concatenate([np.full((n, 1), CLS, np.int32), w, np.full((n, 1), SEP, np.int32)], axis=1)
    return w


def train_windows(stream: np.ndarray, config: Config, step: int) -> np.ndarray:
    """The windows of training step ``step`` (0-based): random offsets drawn from a generator
    seeded with ``(seed, step)``."""
    rng = np.random.default_rng([config.seed, step])
    starts = rng.integers(0, len(stream) - window_span(config) + 1, config.batch_size)
    return make_windows(stream, starts, config)


def held_out_windows(stream: np.ndarray, config: Config) -> np.ndarray:
    """Consecutive non-overlapping windows of the held-out stream (GPT windows overlap by the
    one target token they share)."""
    span = window_span(config)
    step = span if config.model == "bert" else span - 1
    starts = np.arange(0, len(stream) - span + 1, step)
    if config.max_eval_windows is not None:
        starts = starts[: config.max_eval_windows]
    if len(starts) == 0:
        raise ValueError(f"the held-out text ({len(stream)} tokens) is shorter than one window of {span}.")
    return make_windows(stream, starts, config)


SPECIAL_IDS = (PAD, UNK, CLS, SEP, MASK)


def mask_batch(key: jax.Array, windows: np.ndarray, vocab_size: int, config: Config) -> dict[str, jax.Array]:
    inputs, labels, weights = mlm_masking(key, jnp.asarray(windows), vocab_size=vocab_size, mask_token_id=MASK,
                                          special_ids=SPECIAL_IDS, mask_prob=config.mask_prob)
    # The head runs at the selected positions only (about 15%): its H x V product is the largest
    # of a small BERT's, and the rest of its logits would be thrown away by the loss.
    positions, valid = selected_positions(weights)
    return {"inputs": inputs, "labels": labels, "weights": weights, "positions": positions, "valid": valid}


def batch_for(stream: np.ndarray, config: Config, step: int, vocab_size: int) -> dict[str, jax.Array]:
    windows = train_windows(stream, config, step)
    if config.model == "bert":
        return mask_batch(jax.random.fold_in(jax.random.key(config.seed), step), windows, vocab_size, config)
    return {"inputs": jnp.asarray(windows[:, :-1]), "labels": jnp.asarray(windows[:, 1:])}


def held_out_batches(stream: np.ndarray, config: Config, vocab_size: int) -> list[dict[str, np.ndarray]]:
    """The held-out windows, batched, with one fixed MLM masking (BERT) or shifted targets (GPT)."""
    windows = held_out_windows(stream, config)
    if config.model == "bert":
        batch = mask_batch(jax.random.fold_in(jax.random.key(config.seed), EVAL_SEED), windows, vocab_size, config)
    else:
        batch = {"inputs": windows[:, :-1], "labels": windows[:, 1:]}
    batch = {k: np.asarray(v) for k, v in batch.items()}
    n = len(windows)
    return [{k: v[i: i + config.eval_batch] for k, v in batch.items()} for i in range(0, n, config.eval_batch)]


# --- model ------------------------------------------------------------------------------------


def positional_of(config: Config) -> str:
    """``config.positional`` with ``"auto"`` resolved: ALiBi for BERT, GPT-2's learned table for GPT."""
    if config.positional != "auto":
        return config.positional
    return "alibi" if config.model == "bert" else "absolute"


def build_model(config: Config, vocab_size: int) -> nnx.Module:
    rngs = nnx.Rngs(config.seed)
    if config.model == "bert":
        return BertForMaskedLM(BertConfig(
            vocab_size=vocab_size, hidden_size=config.d_model, num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads, intermediate_size=config.d_ff,
            hidden_dropout_prob=config.dropout_rate, attention_probs_dropout_prob=config.dropout_rate,
            max_position_embeddings=config.seq_len, type_vocab_size=2, pad_token_id=PAD, scan_layers=True,
            positional=positional_of(config),
        ), rngs=rngs)
    return GPTLanguageModel(GPT2Config(
        vocab_size=vocab_size, n_positions=config.seq_len, n_embd=config.d_model, n_layer=config.num_layers,
        n_head=config.num_heads, n_inner=config.d_ff, resid_pdrop=config.dropout_rate,
        embd_pdrop=config.dropout_rate, attn_pdrop=config.dropout_rate, scan_layers=True,
        positional=positional_of(config),
    ), rngs=rngs)


def logits_of(model: nnx.Module, inputs: jax.Array, dropout_key: jax.Array | None = None,
              positions: jax.Array | None = None) -> jax.Array:
    if isinstance(model, BertForMaskedLM):
        return model(inputs, token_mask=inputs != PAD, dropout_key=dropout_key, positions=positions)
    return model(inputs, dropout_key=dropout_key)


def scores(model: nnx.Module, batch: dict, key: jax.Array | None) -> tuple[jax.Array, dict]:
    """``(mean loss over the scored positions, sums)``: BERT scores the MLM-selected positions
    (and separately those replaced by [MASK]), gathered by ``batch["positions"]`` when given (the
    same sums: ``valid`` is 0 at the padding entries), GPT every next-token position."""
    inputs, labels = batch["inputs"], batch["labels"]
    if "positions" in batch:
        positions = batch["positions"]
        logits = logits_of(model, inputs, key, positions)
        inputs, labels = (jnp.take_along_axis(a, positions, 1) for a in (inputs, labels))
        weights = batch["valid"]
    else:
        logits = logits_of(model, inputs, key)
        weights = batch["weights"] if "weights" in batch else jnp.ones(labels.shape, jnp.float32)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
    nll = -jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), -1)[..., 0]
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    sums = {"count": weights.sum(), "nll_sum": (weights * nll).sum(), "correct_sum": (weights * correct).sum()}
    if "weights" in batch:
        masked = weights * (inputs == MASK)
        sums |= {"mask_count": masked.sum(), "mask_nll_sum": (masked * nll).sum(),
                 "mask_correct_sum": (masked * correct).sum()}
        loss = mlm_loss(logits, labels, weights)
    else:
        loss = sums["nll_sum"] / sums["count"]
    return loss, sums


def evaluate(eval_step, params, batches: list[dict]) -> dict[str, float]:
    totals: dict[str, float] = collections.defaultdict(float)
    for batch in batches:
        out = eval_step(params, {k: jnp.asarray(v) for k, v in batch.items()})
        for k, v in out.items():
            if k != "loss":
                totals[k] += float(v)
    result = {"loss": totals["nll_sum"] / totals["count"], "accuracy": totals["correct_sum"] / totals["count"],
              "positions": int(totals["count"])}
    result["perplexity"] = math.exp(result["loss"])
    if "mask_count" in totals:
        result |= {"mask_loss": totals["mask_nll_sum"] / totals["mask_count"],
                   "mask_accuracy": totals["mask_correct_sum"] / totals["mask_count"],
                   "mask_positions": int(totals["mask_count"])}
        result["mask_perplexity"] = math.exp(result["mask_loss"])
    return result


# --- baselines --------------------------------------------------------------------------------


def unigram_log_probs(train_stream: np.ndarray, vocab_size: int, excluded: Sequence[int] = (PAD, CLS, MASK)) -> np.ndarray:
    """``log p(w)`` from training counts, add-one smoothed over the tokens that can be a label;
    the ``excluded`` ids get probability 0 (BERT never scores a special token; GPT predicts
    ``[SEP]`` and ``[UNK]`` but never ``[PAD]``, ``[CLS]``, ``[MASK]``)."""
    counts = np.bincount(train_stream, minlength=vocab_size).astype(np.float64) + 1.0
    counts[list(excluded)] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(counts / counts.sum())


def bigram_log_probs(train_stream: np.ndarray, vocab_size: int, previous: np.ndarray, targets: np.ndarray,
                     discount: float = 0.75) -> np.ndarray:
    """``log p(target | previous)`` of an interpolated absolute-discounting bigram model (Ney,
    Essen & Kneser 1994) fitted on the training stream::

        p(w | v) = max(c(v, w) - d, 0) / c(v) + d * N1+(v, .) / c(v) * p_uni(w)

    (``p_uni`` add-one smoothed; ``p(w | v) = p_uni(w)`` for an unseen ``v``)."""
    uni = np.exp(unigram_log_probs(train_stream, vocab_size))
    pair = train_stream[:-1].astype(np.int64) * vocab_size + train_stream[1:]
    pair_counts = collections.Counter(pair.tolist())
    context = np.bincount(train_stream[:-1], minlength=vocab_size).astype(np.float64)
    types = np.zeros(vocab_size)
    for p in pair_counts:
        types[p // vocab_size] += 1
    c_vw = np.array([pair_counts.get(int(v) * vocab_size + int(w), 0) for v, w in zip(previous, targets)], np.float64)
    c_v = context[previous]
    seen = c_v > 0
    p = np.where(seen, np.maximum(c_vw - discount, 0.0) / np.maximum(c_v, 1.0)
                 + discount * types[previous] / np.maximum(c_v, 1.0) * uni[targets], uni[targets])
    return np.log(p)


def baselines(train_stream: np.ndarray, batches: list[dict], vocab_size: int, is_bert: bool,
              held_stream: np.ndarray, config: Config) -> dict[str, Any]:
    """The unigram (and, for GPT, bigram) baselines scored on exactly the model's positions."""
    labels = np.concatenate([b["labels"].reshape(-1) for b in batches])
    if is_bert:
        weights = np.concatenate([b["weights"].reshape(-1) for b in batches]) > 0
        masked = weights & (np.concatenate([b["inputs"].reshape(-1) for b in batches]) == MASK)
    else:
        weights = np.ones(labels.shape, bool)
    logp = unigram_log_probs(train_stream, vocab_size, SPECIAL_IDS if is_bert else (PAD, CLS, MASK))
    most_frequent = int(np.argmax(logp))
    out = {"most_frequent_token": most_frequent,
           "unigram": {"accuracy": float(np.mean(labels[weights] == most_frequent)),
                       "perplexity": float(np.exp(-logp[labels[weights]].mean()))}}
    if is_bert:
        out["unigram"] |= {"mask_accuracy": float(np.mean(labels[masked] == most_frequent)),
                           "mask_perplexity": float(np.exp(-logp[labels[masked]].mean()))}
        # The neighbours as the model sees them (a neighbour may itself be [MASK] or random).
        inputs = np.concatenate([b["inputs"] for b in batches])
        left = np.concatenate([np.full((len(inputs), 1), CLS), inputs[:, :-1]], 1).reshape(-1)
        right = np.concatenate([inputs[:, 1:], np.full((len(inputs), 1), SEP)], 1).reshape(-1)
        guess = neighbour_argmax(train_stream, vocab_size, left[weights], right[weights])
        out["neighbours"] = {"accuracy": float(np.mean(guess == labels[weights])),
                             "mask_accuracy": float(np.mean(guess[masked[weights]] == labels[masked]))}
    else:
        inputs = np.concatenate([b["inputs"].reshape(-1) for b in batches])
        lp = bigram_log_probs(train_stream, vocab_size, inputs, labels)
        out["bigram"] = {"perplexity": float(np.exp(-lp.mean())),
                         "accuracy": float(np.mean(bigram_argmax(train_stream, vocab_size, inputs) == labels))}
    out["uniform_perplexity"] = float(np.isfinite(logp).sum())
    return out


def neighbour_argmax(train_stream: np.ndarray, vocab_size: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """What a count model that sees only the two neighbours predicts for the token between them:
    the most frequent training token ``w`` of the trigrams ``(left, w, right)`` (ties: the
    smallest id), backing off to :func:`bigram_argmax` of ``left`` for a pair never seen in
    training (a neighbour that is ``[MASK]`` or a window edge never is)."""
    triples = collections.Counter(zip(train_stream[:-2].tolist(), train_stream[1:-1].tolist(),
                                      train_stream[2:].tolist()))
    best: dict[tuple[int, int], tuple[int, int]] = {}
    for (v, w, u), n in triples.items():
        if w in (PAD, CLS, MASK):
            continue
        if n > best.get((v, u), (0, 0))[0] or (n == best[(v, u)][0] and w < best[(v, u)][1]):
            best[(v, u)] = (n, w)
    fallback = bigram_argmax(train_stream, vocab_size, left)
    return np.array([best.get((int(v), int(u)), (0, f))[1] for v, u, f in zip(left, right, fallback)], np.int64)


def bigram_argmax(train_stream: np.ndarray, vocab_size: int, previous: np.ndarray) -> np.ndarray:
    """The most frequent training successor of each ``previous`` token (the unigram's most
    frequent token for a context never seen): what the bigram model predicts."""
    successors = np.full(vocab_size, int(np.argmax(np.bincount(train_stream, minlength=vocab_size))), np.int64)
    best = np.zeros(vocab_size)
    pair_counts = collections.Counter((train_stream[:-1].astype(np.int64) * vocab_size + train_stream[1:]).tolist())
    for p, n in sorted(pair_counts.items()):
        v, w = divmod(p, vocab_size)
        if w in (PAD, CLS, MASK):
            continue
        if n > best[v]:
            best[v], successors[v] = n, w
    return successors[previous]


# --- the run ----------------------------------------------------------------------------------


def prepare(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """Documents, split, tokenizer (trained once, then read back from the run's tokenizer.json on
    resume: training is deterministic, reading is faster) and token streams."""
    docs = load_documents(config)
    train_docs, held_docs, split = split_documents(docs, config.held_out_every)
    if not held_docs:
        raise ValueError("no held-out document: use more documents or a smaller held_out_every.")
    path = run_dir.path / "tokenizer.json"
    started = time.perf_counter()
    resuming = (run_dir.path / "checkpoints").is_dir() and any((run_dir.path / "checkpoints").iterdir())
    if resuming and path.is_file():  # a fresh run (even in a reused --out) trains its own
        tokenizer = load_tokenizer(path)
    else:
        tokenizer = train_tokenizer(train_docs, config)
        tokenizer.save(path)
    tokenizer_s = time.perf_counter() - started
    train_stream = token_stream(tokenizer, train_docs)
    held_stream = token_stream(tokenizer, held_docs)
    return {"tokenizer": tokenizer, "train_stream": train_stream, "held_stream": held_stream, "split": split,
            "tokenizer_s": tokenizer_s, "train_words": sum(len(d.split()) for d in train_docs),
            "held_out_words": sum(len(d.split()) for d in held_docs)}


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    data = prepare(config, run_dir)
    tokenizer, train_stream, held_stream = data["tokenizer"], data["train_stream"], data["held_stream"]
    vocab = len(tokenizer)
    if len(train_stream) <= window_span(config):
        raise ValueError(f"the training text ({len(train_stream)} tokens) is shorter than one window.")
    is_bert = config.model == "bert"
    model = build_model(config, vocab)
    graphdef, init, rest = split_params(model)
    schedule = warmup_cosine_decay(config.learning_rate, config.warmup_steps, config.train_steps,
                                   end_value=0.1 * config.learning_rate)
    optimizer = optax.chain(clip_by_global_norm(1.0), adamw(schedule, weight_decay=config.weight_decay))
    loss_fn = module_loss(graphdef, lambda m, batch, key: scores(m, batch, key)[0], rest)
    # --mesh / --sharding: the batch split over "data", parameters and optimiser state as the
    # strategy says (default: every device on "data", everything replicated: data parallelism).
    mesh = device_mesh(parse_mesh(config.mesh))
    if config.batch_size % mesh.shape["data"]:
        raise ValueError(f"batch_size ({config.batch_size}) must be divisible by the mesh's data axis "
                         f"({mesh.shape['data']}, --mesh {config.mesh}).")
    specs = param_specs(init, config.sharding, mesh)
    init = shard_tree(init, specs, mesh)
    opt_specs = opt_state_specs(jax.eval_shape(optimizer.init, init), init, specs)
    step_fn = make_train_step(loss_fn, optimizer, mesh=mesh, param_sharding=specs, opt_sharding=opt_specs)
    eval_step = make_eval_step(module_loss(graphdef, scores, rest), has_aux=True, mesh=mesh, param_sharding=specs)
    init_opt_state = lambda: shard_tree(optimizer.init(init), opt_specs, mesh)
    held_batches = held_out_batches(held_stream, config, vocab)
    dropout_base = jax.random.fold_in(jax.random.key(config.seed), 1)

    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        if resumed is None:
            params, opt_state = init, init_opt_state()
            prog = {"step": 0, "losses": [], "evals": [], "train_s": 0.0}
            record = {"step": 0, **evaluate(eval_step, params, held_batches)}
            prog["evals"].append(record)
            run_dir.log(kind="eval", **record)
        else:
            state = ckpt.state({"params": init, "opt_state": init_opt_state()})
            params, opt_state, prog = state["params"], state["opt_state"], resumed.progress
        bar = progress(desc=f"pretrain {config.model}", total=config.train_steps, initial=prog["step"])
        started, train_s_before = time.perf_counter(), prog["train_s"]
        for step in range(prog["step"], config.train_steps):
            batch = shard_batch(batch_for(train_stream, config, step, vocab), mesh)
            params, opt_state, metrics = step_fn(params, opt_state, batch, jax.random.fold_in(dropout_base, step))
            loss = float(metrics["loss"])
            prog["losses"].append(loss)
            prog["step"] = step + 1
            run_dir.log(kind="train", step=step + 1, loss=loss, grad_norm=float(metrics["grad_norm"]))
            bar.update(1)
            if (step + 1) % config.eval_every == 0 or step + 1 == config.train_steps:
                record = {"step": step + 1, **evaluate(eval_step, params, held_batches)}
                prog["evals"].append(record)
                run_dir.log(kind="eval", **record)
                bar.set_postfix_str(f"held-out loss {record['loss']:.3f} acc {record['accuracy']:.3f}")
            prog["train_s"] = train_s_before + time.perf_counter() - started
            ckpt.save(step + 1, {"params": params, "opt_state": opt_state}, prog, force=step + 1 == config.train_steps)
        bar.close()
        runtime_s = ckpt.elapsed_s()
        sessions = ckpt.sessions

    params = jax.device_get(params)  # one host copy of the (possibly sharded) parameters
    trained = nnx.merge(graphdef, params, rest)
    base = baselines(train_stream, held_batches, vocab, is_bert, held_stream, config)
    final = prog["evals"][-1]
    info = {"model": config.model, "special_tokens": dict(zip(SPECIALS, range(len(SPECIALS)))),
            "corpora": list(config.corpora), "held_out": f"document i of each corpus with i % {config.held_out_every} "
            f"== {config.held_out_every - 1}", "steps": prog["step"], "held_out_scores": final,
            "input_format": ("[CLS] tokens [SEP]; documents separated by [SEP]" if is_bert
                             else "tokens; documents separated by [SEP]")}
    pretrained_dir = run_dir.path / "pretrained"
    if not (pretrained_dir / "model.json").is_file():
        import shutil

        shutil.rmtree(pretrained_dir, ignore_errors=True)  # a save a kill interrupted
        save_pretrained(pretrained_dir, trained, tokenizer, info=info)
    reloaded = load_pretrained(run_dir.path)
    probe = jnp.asarray(held_batches[0]["inputs"][:4])
    logits_fn = jax.jit(module_loss(graphdef, lambda m, x, key: logits_of(m, x), rest))
    reloaded_params = split_params(reloaded.model)[1]
    diff = float(jnp.max(jnp.abs(logits_fn(reloaded_params, probe, None) - logits_fn(params, probe, None))))

    run_dir.save_arrays("curves", train_loss=np.asarray(prog["losses"], np.float32),
                        eval_steps=[r["step"] for r in prog["evals"]], eval_loss=[r["loss"] for r in prog["evals"]])
    run_dir.save_figure(plot_curves(config, prog, base), "loss")
    n_params = count_scalars(nnx.state(trained, nnx.Param))
    return {
        "model": config.model,
        "parameters": n_params,
        "vocab_size": vocab,
        "corpus": {"split": data["split"], "train_tokens": int(len(train_stream)), "held_out_tokens": int(len(held_stream)),
                   "train_words": data["train_words"], "held_out_words": data["held_out_words"],
                   "tokens_per_word": round(len(train_stream) / max(data["train_words"], 1), 3),
                   "held_out_unknown_tokens": int(np.sum(held_stream == UNK)),
                   "held_out_rule": info["held_out"]},
        "steps": prog["step"],
        "epochs": round(prog["step"] * config.batch_size * window_span(config) / len(train_stream), 2),
        "held_out": final,
        "initial_held_out": prog["evals"][0],
        "baselines": base,
        "evaluations": prog["evals"],
        "final_train_loss": float(np.mean(prog["losses"][-max(1, min(50, len(prog["losses"]))):])),
        "reload_max_abs_logit_diff": diff,
        "pretrained_dir": str(pretrained_dir),
        "environment": environment(),
        "timings": {"runtime_s": round(runtime_s, 1), "train_s": round(prog["train_s"], 1),
                    "tokenizer_s": round(data["tokenizer_s"], 1), "sessions": sessions,
                    "note": "wall clock on a CPU shared with other jobs"},
    }


def plot_curves(config: Config, prog: dict, base: dict) -> Figure:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    losses = np.asarray(prog["losses"])
    if len(losses):
        w = max(1, min(50, len(losses) // 10))
        ax.plot(np.arange(w, len(losses) + 1), np.convolve(losses, np.ones(w) / w, mode="valid"), lw=1,
                alpha=0.7, label=f"training (running mean of {w})")
    evals = prog["evals"]
    ax.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o-", ms=3, color="tab:red", label="held-out")
    ax.axhline(math.log(base["unigram"]["perplexity"]), color="grey", ls="--", lw=0.8)
    ax.text(0, math.log(base["unigram"]["perplexity"]), "unigram", fontsize=8, va="bottom", color="grey")
    if "bigram" in base:
        ax.axhline(math.log(base["bigram"]["perplexity"]), color="grey", ls=":", lw=0.8)
        ax.text(0, math.log(base["bigram"]["perplexity"]), "bigram", fontsize=8, va="bottom", color="grey")
    ax.set_ylim(0, max(math.log(base["uniform_perplexity"]), evals[-1]["loss"]) + 0.5)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("cross-entropy (nats) at " + ("MLM-selected positions" if config.model == "bert" else "next tokens"))
    ax.set_title(f"{'BERT masked LM' if config.model == 'bert' else 'GPT causal LM'}: "
                 f"{config.num_layers} layers, d={config.d_model}")
    ax.legend(fontsize=8)
    return fig


def format_report(summary: dict[str, Any]) -> str:
    h, b = summary["held_out"], summary["baselines"]
    lines = [f"{summary['model']}: {summary['parameters']:,} parameters, vocabulary {summary['vocab_size']}, "
             f"{summary['steps']} steps ({summary['epochs']} epochs of {summary['corpus']['train_tokens']:,} tokens)"]
    if summary["model"] == "bert":
        lines.append(f"held-out MLM accuracy {h['accuracy']:.3f} ([MASK] positions {h['mask_accuracy']:.3f}), "
                     f"perplexity {h['perplexity']:.1f}; unigram accuracy {b['unigram']['accuracy']:.3f}, "
                     f"perplexity {b['unigram']['perplexity']:.1f}; neighbour counts accuracy "
                     f"{b['neighbours']['accuracy']:.3f} ([MASK] {b['neighbours']['mask_accuracy']:.3f})")
    else:
        lines.append(f"held-out perplexity {h['perplexity']:.1f}, accuracy {h['accuracy']:.3f}; unigram "
                     f"{b['unigram']['perplexity']:.1f} / {b['unigram']['accuracy']:.3f}; bigram "
                     f"{b['bigram']['perplexity']:.1f} / {b['bigram']['accuracy']:.3f}")
    lines.append(f"reload: max |logit difference| {summary['reload_max_abs_logit_diff']:.1e}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_report)


if __name__ == "__main__":
    main()
