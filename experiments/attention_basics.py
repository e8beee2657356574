"""Attention basics, measured: order, the 1/sqrt(d_k) scale, positional encodings, masks.

Four claims of the attention chapter, each checked on the library's own functions
(:mod:`seqjax.attention`, :mod:`seqjax.transformer`) and, where a claim is about models, on
models trained here; each has its figure and its numbers in ``metrics.json``.

1. **Order** (``order.png``). A bag of words (counts, or the mean of the word embeddings)
   cannot tell "the cat chased the mouse" from "the mouse chased the cat": the two vectors are
   exactly equal. Self-attention without positional information is permutation-equivariant,
   ``f(P x) = P f(x)`` (Vaswani et al. 2017 add positional encodings for this reason): measured
   as ``max |f(Px) - P f(x)|`` over random models (bare multi-head self-attention, and a
   2-layer pre-LN transformer encoder) and random permutations, against the float32 rounding
   scale ``eps * max |f(x)|``; with a sinusoidal table, a learned table (at its N(0, 0.02^2)
   initialisation, and trained) and RoPE (Su et al. 2021) it is not. Mean-pooled outputs are
   invariant without positions and not with them. Then the same on trained models: a 1-layer
   transformer with mean pooling, trained on the precedence task
   (:mod:`seqjax.data.precedence`: does "cat" come before "mouse" in a sequence of words?)
   with each positional scheme. Without positions its accuracy is chance, measured: exactly 1/2
   on a paired test set (every sequence with its cat/mouse swap, the same multiset with the
   opposite label), about 1/2 on random sequences.
   Precision: everything is float32; seqjax computes the softmax in float32 by design
   (docs/DESIGN.md), so a float64 run would still measure a float32 softmax and is not made.
2. **Why scale by 1/sqrt(d_k)** (``scaling.png``). For queries and keys with unit-variance
   entries the logit ``q . k`` has variance ``d_k``. Against ``d_k`` (``scaling_dims``, 4 to
   1024), with ``scale = 1/sqrt(d_k)`` and with ``scale = 1``: the softmax entropy per query
   (the uniform maximum is ``log s``), its largest weight, and two gradient norms by
   :func:`jax.grad`: of ``sum_j w_j c_j`` (random ``c``) with respect to the logits (the
   softmax Jacobian: zero when saturated), and of ``sum(out * u)`` through
   :func:`seqjax.attention.dot_product_attention` with respect to the queries. Also for the
   trained models' first-layer queries and keys (their own ``d_k``), scaled as trained and not.
3. **Positional encodings** (``positional.png``). The sinusoidal table
   (:func:`seqjax.attention.sinusoidal_table`) as a heatmap (dimension 0 is the *fastest*
   frequency, wavelength 2 pi) and a few dimensions against position; the linear map
   ``PE(pos + k) = M_k PE(pos)``, with ``M_k`` the block-diagonal rotation by ``k w_i`` per
   frequency pair, its maximum error over positions and ``k``; ``M_k`` fitted by least squares
   from the table (residual, error on held-out positions, distance from the rotation); the dot
   product ``PE(p) . PE(p + k)`` against the distance ``k`` (the same for every ``p``); and the
   2-D picture of adding a position vector to a word vector, drawn with the trained model's own
   word embeddings and table rows projected by PCA (not made-up 2-D points).
4. **Masks** (``masks.png``). A real batch of sentences of different lengths (one of them
   empty), tokenized and padded, embedded by the trained (sinusoidal) model: its first layer's
   raw scores, the scores under a causal, a padding and a combined mask
   (:func:`~seqjax.attention.causal_mask`, :func:`~seqjax.attention.padding_mask`,
   :func:`~seqjax.attention.combine_masks`, padded queries masked too), and the softmax rows
   (:func:`~seqjax.attention.dot_product_attention`, ``return_weights=True``). Fully masked rows
   (padded queries, the empty sentence) give zero weights and zero outputs with no NaN, in
   float32, bfloat16 and float16, forward and gradient; the seed's additive ``-1e9`` mask is
   measured next to it (in float16 it overflows to ``-inf`` and gives NaN; elsewhere fully
   masked rows become a uniform average over padding).

Result (default run, seed 0, 2 shared CPU cores, float32; numbers in ``metrics.json``; 101 s)
    *Order.* The counts and the mean embedding of "the cat chased the mouse", "the mouse chased
    the cat" and "chased the mouse the cat" are bit-for-bit equal. Over 4 random models x 8
    permutations each, ``max |f(Px) - P f(x)|`` without positions is 4.8e-7 (bare attention) and
    9.5e-7 (2-layer transformer), 1.8 and 2.4 float32 eps of the output scale; mean-pooled 7.8e-8
    and 2.7e-7. With positions (attention / transformer): sinusoidal 1.67 / 2.30, RoPE 1.65 /
    1.97, learned at its N(0, 0.02^2) initialisation only 0.092 / 0.187 (never below 0.051), and
    the trained models 5.7 (sinusoidal), 6.4 (learned), 6.1 (RoPE). Trained for 1500 steps on the
    precedence task (length 10, 2000 test sequences): test accuracy without positions 0.496,
    paired (with swaps) exactly 0.500, no pair both right, logits changed by at most 7e-8 by the
    swap; with sinusoidal, learned or RoPE positions 1.000.

    *Scale.* At ``d_k = 512`` with 64 keys the unscaled logits have std 22.7 (scaled 1.00): the
    softmax entropy is 0.169 nats unscaled against 3.687 scaled (uniform maximum log 64 = 4.159),
    the largest weight 0.934 against 0.107, and 62% of the unscaled rows put more than 0.99 on
    one key (none scaled). The gradient through the softmax (w.r.t. the logits) is 0.40x the
    scaled one on average but 0.0093x at the median row: most unscaled rows are saturated, a few
    near-ties carry the mean. The gradient w.r.t. the *queries* through the whole attention is
    8.3x *larger* unscaled (the missing 1/sqrt(d_k) = 1/22.6 factor outweighs the saturation on
    average), so "unscaled attention has vanishing gradients" holds for the softmax Jacobian of
    most rows, not for the mean query gradient. Scaled, every statistic is flat in ``d_k``. The
    trained models' own first-layer scores (``d_k = 8``) would also sharpen without the scale:
    entropy 0.68 -> 0.26 nats (sinusoidal).

    *Positional encodings.* ``max |PE(pos + k) - M_k PE(pos)|`` over 1024 positions, d = 128,
    k = 1..64: 7.0e-8 (float32 rounding of the table; the identity map is off by 2.0).
    ``M_k`` fitted by least squares on positions 0..511 reproduces them to 6.9e-8 but is off by
    up to 2.5 on positions 512..1023 and differs from the rotation by up to 3.4: the slow
    dimensions hardly move over 512 positions, so the table does not pin the map down; the
    rotation is exact everywhere. ``PE(p) . PE(p + k)`` depends on ``k`` alone (spread over
    ``p`` 2.7e-7): 64 at k = 0, falling, but not monotonically (it first rises at k = 12, with
    bumps up to k = 64). ||P5 - P6|| = 1.953 < ||P5 - P100|| = 8.677. The trained model's word
    embeddings have norm 5.4 against 4.0 for every position vector (sqrt(d/2), d = 32).

    *Masks.* On the batch of lengths 7, 5, 3, 0 with the combined mask (causal, padding, padded
    queries) 13 rows per head are fully masked; in float32, bfloat16 and float16 their weights
    and outputs are exactly 0, with no NaN in the outputs, weights or gradients. The seed's
    additive ``-1e9`` mask gives NaN in all 52 fully masked rows in float16 (it overflows to
    ``-inf``) and in float32 and bfloat16 a uniform 1/7 over the padding instead of zeros.

Why
    This replaces demos whose results are formulas or random arrays: the positional-encoding
    heatmap and 2-D toy vectors ``(1, 1), (1, 3)`` of the notebook *Demystifying AI, Session 4:
    Transformers and Attention* (whose heatmap explanation has the frequencies reversed), its
    masking heatmap of ``randn(5, 5)`` with ``-1e9`` added, and the bag-of-words print of the
    notebook *Introduction to Sequence Modeling*. Every number here is measured.

Run::

    python -m experiments.attention_basics            # default (a few minutes on 2 CPU cores)
    python -m experiments.attention_basics --quick    # seconds; used by the tests
    python -m experiments.attention_basics --resume RUN_DIR
    python -m experiments.attention_basics --help

Resuming: the only long part is training the four small models. Every ``checkpoint_every``
training steps (counted over the schemes, at chunk boundaries) the run saves the current
model's parameters and Adam state, the finished models and the curves so far; ``--resume``
continues to the same ``metrics.json`` (batches are functions of the seed and step; every
measurement is recomputed from the seed and the trained parameters).

Outputs (``runs/attention_basics/<UTC timestamp>/`` or ``--out``): ``config.json``,
``run.json``, ``metrics.jsonl`` (training loss and accuracy per step and scheme),
``metrics.json``, ``order.png``, ``scaling.png``, ``positional.png``, ``masks.png``,
``curves.npz`` (the scaling curves and similarity curve) and ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from seqjax.attention import (
    add_positions,
    apply_rope,
    causal_mask,
    combine_masks,
    cross_attention_mask,
    dot_product_attention,
    learned_positional_init,
    masked_softmax,
    multi_head_init,
    output_projection,
    padding_mask,
    project_qkv,
    self_attention,
    sinusoidal_table,
)
from seqjax.data import WordTokenizer, pad_sequences
from seqjax.data.precedence import precedence_task, swap_tokens
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.primitives import layer_norm
from seqjax.train import cross_entropy, make_train_step
from seqjax.transformer import TransformerSpec, encoder_stack, encoder_stack_init

NAME = "attention_basics"
SCHEMES = ("none", "sinusoidal", "learned", "rope")
ARCHS = ("attention", "transformer")
# Sentences of the seeds' order-sensitivity examples: the vocabulary of the precedence task and
# the real batch of the mask figures.
SENTENCES = (
    "the cat chased the mouse", "the mouse chased the cat", "chased the mouse the cat",
    "dog bites man", "man bites dog", "not everyone is invited", "everyone is not invited",
    "i only saw the film", "only i saw the film", "the students studied hard for their final",
    "the cat sat on the mat",
)
FIRST, SECOND = "cat", "mouse"
MASK_BATCH = ("the students studied hard for their final", "the cat chased the mouse", "dog bites man", "")
DTYPES = ("float32", "bfloat16", "float16")
EPS32 = float(np.finfo(np.float32).eps)


@dataclasses.dataclass(frozen=True)
class Config:
    """Measure order (permutation equivariance), the 1/sqrt(d_k) scale, positional encodings and masks."""

    QUICK: ClassVar[dict[str, Any]] = {
        "train_steps": 40,
        "eval_batch": 200,
        "equivariance_models": 2,
        "permutations": 3,
        "scaling_dims": (4, 512),        # every d_k is two more programs to compile; 512 is the one tested
        "scaling_queries": 32,
        "pe_positions": 256,
        "pe_dim": 32,
        "max_shift": 8,
    }

    schemes: tuple[str, ...] = option(SCHEMES, "positional schemes: none, sinusoidal, learned, rope")
    d_model: int = option(32, "model width of the trained and random models")
    num_heads: int = option(4, "attention heads")
    length: int = option(10, "sequence length of the precedence task")
    train_steps: int = option(1500, "Adam steps per positional scheme")
    batch_size: int = option(64, "training batch size")
    learning_rate: float = option(3e-3, "Adam learning rate")
    eval_batch: int = option(2000, "test sequences (and as many swapped ones for the paired test)")
    equivariance_models: int = option(4, "random models per scheme and architecture")
    permutations: int = option(8, "random permutations per random model")
    equivariance_length: int = option(12, "sequence length of the random-model equivariance check")
    scaling_dims: tuple[int, ...] = option((4, 8, 16, 32, 64, 128, 256, 512, 1024), "d_k values")
    scaling_keys: int = option(64, "keys s per query (the uniform entropy is log s)")
    scaling_queries: int = option(512, "random queries per d_k")
    pe_positions: int = option(1024, "positions of the sinusoidal table studied")
    pe_dim: int = option(128, "width of the sinusoidal table studied (even)")
    max_shift: int = option(64, "largest shift k of PE(pos + k) = M_k PE(pos)")
    seed: int = option(0, "base random seed")
    checkpoint_every: int = option(200, "save a checkpoint every this many training steps (all schemes counted)")

    def __post_init__(self):
        if not self.schemes or any(s not in SCHEMES for s in self.schemes) or len(set(self.schemes)) != len(self.schemes):
            raise ValueError(f"schemes must be distinct values of {SCHEMES}; got {self.schemes}.")
        for name in ("d_model", "num_heads", "train_steps", "batch_size", "eval_batch", "equivariance_models",
                     "permutations", "scaling_keys", "scaling_queries", "max_shift", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.d_model % self.num_heads or (self.d_model // self.num_heads) % 2:
            raise ValueError(f"num_heads must divide d_model into even head widths (RoPE); got d_model "
                             f"{self.d_model}, num_heads {self.num_heads}.")
        for name in ("length", "equivariance_length"):
            if getattr(self, name) < 3:
                raise ValueError(f"{name} must be at least 3; got {getattr(self, name)}.")
        if not self.scaling_dims or any(d < 2 or d % 2 for d in self.scaling_dims):
            raise ValueError(f"scaling_dims must be even numbers >= 2; got {self.scaling_dims}.")
        if self.pe_dim < 2 or self.pe_dim % 2:
            raise ValueError(f"pe_dim must be even and >= 2; got {self.pe_dim}.")
        if self.pe_positions < 2 * self.max_shift + 4:
            raise ValueError(f"pe_positions must be at least 2 * max_shift + 4; got {self.pe_positions} "
                             f"with max_shift {self.max_shift}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate}.")


# --- data -------------------------------------------------------------------------------------


def tokenizer() -> WordTokenizer:
    return WordTokenizer.fit(SENTENCES)


def task_ids(tok: WordTokenizer) -> tuple[int, int, tuple[int, ...]]:
    """``(first, second, fillers)``: the ids of "cat", "mouse" and every other word."""
    first, second = tok.vocab.token_to_id(FIRST), tok.vocab.token_to_id(SECOND)
    words = sorted({w for s in SENTENCES for w in tok.tokenize(s)} - {FIRST, SECOND})
    return first, second, tuple(tok.vocab.token_to_id(w) for w in words)


def draw(key: jax.Array, n: int, config: Config, tok: WordTokenizer):
    first, second, fillers = task_ids(tok)
    return precedence_task(key, n, config.length, first=first, second=second, fillers=fillers)


def keys(config: Config) -> dict[str, jax.Array]:
    base = jax.random.key(config.seed)
    return {name: jax.random.fold_in(base, i) for i, name in
            enumerate(("init", "train", "test", "random_models", "scaling", "bow"))}


# --- models -----------------------------------------------------------------------------------


def spec_for(scheme: str, num_heads: int) -> TransformerSpec:
    return TransformerSpec(num_heads=num_heads, norm_first=True, activation="gelu",
                           positional="rope" if scheme == "rope" else "absolute")


def init_model(scheme: str, key: jax.Array, vocab: int, config: Config, num_layers: int = 1) -> dict:
    """Embedding ``[V, d]`` N(0, 1), an optional learned table, a pre-LN encoder stack and a
    2-way readout of the mean-pooled output. The same key gives the same weights for every
    scheme (only the learned table is extra)."""
    k_e, k_p, k_s, k_h = jax.random.split(key, 4)
    d = config.d_model
    params = {
        "embed": jax.random.normal(k_e, (vocab, d)),
        "stack": encoder_stack_init(k_s, num_layers, d, config.num_heads, 4 * d, final_norm=True),
        "head": {"w": jax.random.normal(k_h, (d, 2)) / math.sqrt(d), "b": jnp.zeros((2,))},
    }
    if scheme == "learned":
        params["positions"] = learned_positional_init(k_p, max(config.length, config.equivariance_length), d)
    return params


def with_positions(scheme: str, params: dict, x: jax.Array) -> jax.Array:
    """``x`` ``[b, t, d]`` plus the absolute positional table of ``scheme`` (RoPE and none: ``x``)."""
    if scheme == "sinusoidal":
        return add_positions(x, sinusoidal_table(x.shape[1], x.shape[2]))
    if scheme == "learned":
        return add_positions(x, params["positions"]["table"])
    return x


def encode(scheme: str, params: dict, tokens: jax.Array, num_heads: int) -> jax.Array:
    """The encoder output ``[b, t, d]`` of token ids ``[b, t]``."""
    x = with_positions(scheme, params, params["embed"][tokens])
    return encoder_stack(spec_for(scheme, num_heads), params["stack"], x)


def classify(scheme: str, params: dict, tokens: jax.Array, num_heads: int) -> jax.Array:
    """Logits ``[b, 2]`` of the mean-pooled encoder output."""
    pooled = jnp.mean(encode(scheme, params, tokens, num_heads), axis=1)
    return pooled @ params["head"]["w"] + params["head"]["b"]


def random_attention(scheme: str, arch: str, params: dict, x: jax.Array, num_heads: int) -> jax.Array:
    """A random model's output ``[b, t, d]`` on features ``x`` ``[b, t, d]``: bare multi-head
    self-attention (``arch="attention"``; RoPE rotates its queries and keys) or a pre-LN
    transformer encoder stack (``"transformer"``)."""
    h = with_positions(scheme, params, x)
    if arch == "transformer":
        return encoder_stack(spec_for(scheme, num_heads), params["stack"], h)
    if scheme != "rope":
        return self_attention(params["mha"], h, num_heads=num_heads)
    q, k, v = project_qkv(params["mha"], h, h, h, num_heads=num_heads)
    return output_projection(params["mha"], dot_product_attention(apply_rope(q), apply_rope(k), v))


def random_params(scheme: str, arch: str, key: jax.Array, config: Config) -> dict:
    k_m, k_s, k_p = jax.random.split(key, 3)
    d = config.d_model
    params = {"mha": multi_head_init(k_m, d, config.num_heads)} if arch == "attention" else {
        "stack": encoder_stack_init(k_s, 2, d, config.num_heads, 4 * d, final_norm=True)}
    if scheme == "learned":
        params["positions"] = learned_positional_init(k_p, config.equivariance_length, d)
    return params


def random_permutation(key: jax.Array, t: int) -> np.ndarray:
    """A uniformly drawn permutation of ``0..t-1`` other than the identity (then rolled by one)."""
    perm = np.asarray(jax.random.permutation(key, t))
    return np.roll(perm, 1) if np.array_equal(perm, np.arange(t)) else perm


def permutation_deviation(f, x: jax.Array, perm: np.ndarray) -> dict[str, float]:
    """``max |f(Px) - P f(x)|``, the pooled ``max |mean_t f(Px) - mean_t f(x)|`` and ``max |f(x)|``
    for ``x`` ``[b, t, ...]`` permuted along time."""
    y, y_perm = np.asarray(f(x), np.float64), np.asarray(f(x[:, perm]), np.float64)
    return {"max_deviation": float(np.max(np.abs(y_perm - y[:, perm]))),
            "pooled_deviation": float(np.max(np.abs(y_perm.mean(1) - y.mean(1)))),
            "output_scale": float(np.max(np.abs(y)))}


# --- measurements -----------------------------------------------------------------------------


def bag_of_words(tok: WordTokenizer, embed: np.ndarray) -> dict[str, Any]:
    """Counts and mean embeddings of the three cat/mouse sentences: exactly equal."""
    vocab = embed.shape[0]
    ids = [tok.encode(s) for s in SENTENCES[:3]]
    counts = [np.bincount(i, minlength=vocab) for i in ids]
    means = [(c / c.sum()).astype(np.float32) @ embed for c in counts]   # mean embedding from counts
    naive = [embed[i].mean(0) for i in ids]                               # summed in sentence order
    return {
        "sentences": list(SENTENCES[:3]),
        "counts": {w: int(counts[0][tok.vocab.token_to_id(w)]) for w in sorted(set(tok.tokenize(SENTENCES[0])))},
        "counts_equal": bool(all(np.array_equal(counts[0], c) for c in counts[1:])),
        "mean_embedding_equal": bool(all(np.array_equal(means[0], m) for m in means[1:])),
        "mean_embedding_max_difference": float(max(np.max(np.abs(means[0] - m)) for m in means[1:])),
        "mean_in_sentence_order_max_difference": float(max(np.max(np.abs(naive[0] - m)) for m in naive[1:])),
    }


def random_equivariance(config: Config, key: jax.Array) -> dict:
    """Deviation summaries per scheme and architecture over random models and permutations."""
    out = {}
    t, d = config.equivariance_length, config.d_model
    for scheme in config.schemes:
        out[scheme] = {}
        for arch in ARCHS:
            f = jax.jit(lambda p, x, s=scheme, a=arch: random_attention(s, a, p, x, config.num_heads))
            rows = []
            for m in range(config.equivariance_models):
                k_model = jax.random.fold_in(key, 1000 * SCHEMES.index(scheme) + 10 * ARCHS.index(arch) + m)
                params = random_params(scheme, arch, k_model, config)
                x = jax.random.normal(jax.random.fold_in(k_model, 7), (4, t, d))
                for p in range(config.permutations):
                    perm = random_permutation(jax.random.fold_in(k_model, 100 + p), t)
                    rows.append(permutation_deviation(lambda z: f(params, z), x, perm))
            out[scheme][arch] = summarise_deviations(rows)
    return out


def summarise_deviations(rows: list[dict]) -> dict[str, float]:
    dev = np.array([r["max_deviation"] for r in rows])
    pooled = np.array([r["pooled_deviation"] for r in rows])
    scale = max(r["output_scale"] for r in rows)
    return {"max_deviation": float(dev.max()), "min_deviation": float(dev.min()),
            "max_pooled_deviation": float(pooled.max()), "min_pooled_deviation": float(pooled.min()),
            "output_scale": scale, "max_deviation_in_eps_units": float(dev.max() / (EPS32 * scale)),
            "trials": len(rows)}


def softmax_entropy(weights: np.ndarray) -> np.ndarray:
    """``-sum_j w_j log w_j`` over the last axis (``0 log 0 = 0``), in float64."""
    w = np.asarray(weights, np.float64)
    return -np.sum(np.where(w > 0, w * np.log(np.where(w > 0, w, 1.0)), 0.0), axis=-1)


def scaling_point(key: jax.Array, d: int, s: int, n: int, scaled: bool) -> dict[str, float]:
    """Softmax statistics of ``n`` random queries against ``s`` random keys, entries N(0, 1)."""
    kq, kk, kv, ku, kc = jax.random.split(key, 5)
    q = jax.random.normal(kq, (1, n, 1, d))
    k = jax.random.normal(kk, (1, s, 1, d))
    v = jax.random.normal(kv, (1, s, 1, 16))
    u = jax.random.normal(ku, (1, n, 1, 16))
    c = jax.random.normal(kc, (n, s))
    scale = 1.0 / math.sqrt(d) if scaled else 1.0
    _, w = dot_product_attention(q, k, v, return_weights=True, scale=scale)
    w = np.asarray(w[0, 0])
    logits = scale * jnp.einsum("nd,sd->ns", q[0, :, 0], k[0, :, 0])
    g_logits = jax.grad(lambda z: jnp.sum(masked_softmax(z) * c))(logits)
    g_query = jax.grad(lambda x: jnp.sum(dot_product_attention(x, k, v, scale=scale) * u))(q)[0, :, 0]
    g_rows = np.linalg.norm(np.asarray(g_logits), axis=-1)
    return {"entropy": float(softmax_entropy(w).mean()), "max_weight": float(w.max(-1).mean()),
            "saturated_fraction": float(np.mean(w.max(-1) > 0.99)),
            "grad_logits_norm_median": float(np.median(g_rows)),
            "logit_std": float(np.std(np.asarray(logits))),
            "grad_logits_norm": float(g_rows.mean()),
            "grad_query_norm": float(np.linalg.norm(np.asarray(g_query), axis=-1).mean())}


def scaling_sweep(config: Config, key: jax.Array) -> dict:
    out = {"scaled": {}, "unscaled": {}}
    for d in config.scaling_dims:
        k = jax.random.fold_in(key, d)   # the same queries and keys with and without the scale
        for name, scaled in (("scaled", True), ("unscaled", False)):
            out[name][d] = scaling_point(k, d, config.scaling_keys, config.scaling_queries, scaled)
    return out


def first_layer_qkv(scheme: str, params: dict, tokens: jax.Array, num_heads: int):
    """The first layer's queries, keys, values ``[b, t, h, d_k]`` (pre-LN input, RoPE applied)."""
    layer = params["stack"]["layers"][0]
    x = with_positions(scheme, params, params["embed"][tokens])
    h = layer_norm(layer["norm_1"], x)
    q, k, v = project_qkv(layer["self_attn"], h, h, h, num_heads=num_heads)
    if scheme == "rope":
        q, k = apply_rope(q), apply_rope(k)
    return q, k, v


# Jitted forms for the measurements (one compilation per scheme and shape, instead of op by op).
classify_jit = jax.jit(lambda scheme, params, tokens, num_heads: classify(scheme, params, tokens, num_heads),
                       static_argnums=(0, 3))
encode_jit = jax.jit(lambda scheme, params, tokens, num_heads: encode(scheme, params, tokens, num_heads),
                     static_argnums=(0, 3))
first_layer_qkv_jit = jax.jit(lambda scheme, params, tokens, num_heads: first_layer_qkv(scheme, params, tokens, num_heads),
                              static_argnums=(0, 3))


def trained_scaling(scheme: str, params: dict, tokens: jax.Array, num_heads: int) -> dict[str, float]:
    q, k, v = first_layer_qkv_jit(scheme, params, tokens, num_heads)
    d_k = q.shape[-1]
    out = {"d_k": d_k, "uniform_entropy": math.log(tokens.shape[1])}
    for name, scale in (("scaled", 1 / math.sqrt(d_k)), ("unscaled", 1.0)):
        _, w = dot_product_attention(q, k, v, return_weights=True, scale=scale)
        w = np.asarray(w)
        out[name] = {"entropy": float(softmax_entropy(w).mean()), "max_weight": float(w.max(-1).mean())}
    return out


def rotation_map(k: int, d: int, base: float = 10000.0) -> np.ndarray:
    """``M_k`` ``[d, d]`` (float64) with ``PE(pos + k) = M_k PE(pos)`` for the interleaved
    sinusoidal table: per frequency ``w_i = base^(-2i/d)`` the block ``[[cos kw, sin kw],
    [-sin kw, cos kw]]`` on the pair ``(2i, 2i+1)`` (sin(a+b) and cos(a+b) expanded)."""
    w = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    c, s = np.cos(k * w), np.sin(k * w)
    m = np.zeros((d, d))
    i = np.arange(0, d, 2)
    m[i, i], m[i, i + 1], m[i + 1, i], m[i + 1, i + 1] = c, s, -s, c
    return m


def positional_study(config: Config) -> tuple[dict, dict]:
    table = np.asarray(sinusoidal_table(config.pe_positions, config.pe_dim), np.float64)
    P, K = config.pe_positions, config.max_shift
    exact, identity = [], []
    for k in range(1, K + 1):
        pred = table[:-k] @ rotation_map(k, config.pe_dim).T
        exact.append(float(np.max(np.abs(pred - table[k:]))))
        identity.append(float(np.max(np.abs(table[:-k] - table[k:]))))
    half = P // 2
    fits = {}
    for k in sorted({1, max(1, K // 4), K}):
        x, y = table[: half - k], table[k:half]
        a, *_ = np.linalg.lstsq(x, y, rcond=None)          # x a = y, a = M^T
        held_x, held_y = table[half:-k], table[half + k:]
        fits[k] = {"fit_residual": float(np.max(np.abs(x @ a - y))),
                   "held_out_error": float(np.max(np.abs(held_x @ a - held_y))),
                   "max_distance_from_rotation": float(np.max(np.abs(a.T - rotation_map(k, config.pe_dim)))),
                   "fit_positions": half - k}
    sims = np.array([[table[p] @ table[p + k] for p in range(P - K)] for k in range(K + 1)])
    sim_mean, sim_spread = sims.mean(1), sims.std(1)
    increase = np.flatnonzero(np.diff(sim_mean) > 0)
    summary = {
        "table_shape": [P, config.pe_dim],
        "linear_map_max_error": max(exact),
        "linear_map_error_by_k": {k + 1: e for k, e in enumerate(exact)},
        "identity_map_max_error": max(identity),
        "least_squares": fits,
        "similarity_at_k0": float(sim_mean[0]),
        "similarity_by_k": {k: float(v) for k, v in enumerate(sim_mean)},
        "similarity_max_spread_over_positions": float(sim_spread.max()),
        "similarity_first_increase_at_k": int(increase[0] + 1) if increase.size else None,
        "similarity_monotone_decreasing": bool(increase.size == 0),
    }
    if P > 100:
        summary["distance_p5_p6"] = float(np.linalg.norm(table[5] - table[6]))
        summary["distance_p5_p100"] = float(np.linalg.norm(table[5] - table[100]))
    return summary, {"table": table, "similarity": sim_mean, "linear_map_error": np.array(exact)}


def pca_2d(points: np.ndarray) -> np.ndarray:
    centered = points - points.mean(0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    return centered @ vt[:2].T


def mask_study(params: dict, tok: WordTokenizer, config: Config) -> tuple[dict, dict]:
    """Masks on the real batch :data:`MASK_BATCH` through the trained sinusoidal model's first layer."""
    ids, lengths = pad_sequences([tok.encode(s) for s in MASK_BATCH], pad_value=tok.vocab.token_to_id("[PAD]"))
    tokens, lengths = jnp.asarray(ids), jnp.asarray(lengths)
    t = tokens.shape[1]
    q, k, v = first_layer_qkv_jit("sinusoidal", params, tokens, config.num_heads)
    raw = np.asarray(jnp.einsum("bthd,bshd->bhts", q, k)) / math.sqrt(q.shape[-1])
    masks = {"causal": causal_mask(t), "padding": padding_mask(lengths, t),
             "combined": combine_masks(causal_mask(t), cross_attention_mask(lengths, lengths, t, t))}
    panels = {"raw": raw, "tokens": [tok.tokenize(s) for s in MASK_BATCH], "lengths": np.asarray(lengths)}
    for name, m in masks.items():
        _, w = dot_product_attention(q, k, v, mask=m, return_weights=True)
        panels[name] = {"mask": np.broadcast_to(np.asarray(m), raw.shape), "weights": np.asarray(w)}
    full = masks["combined"]
    fully = ~np.asarray(jnp.broadcast_to(full, raw.shape)).any(-1)        # [b, h, t]
    rows = fully[:, 0]                                                     # the same for every head
    summary = {"batch": list(MASK_BATCH), "lengths": np.asarray(lengths).tolist(),
               "fully_masked_rows": int(rows.sum()), "dtypes": {}, "additive_minus_1e9": {}}
    for name in DTYPES:
        dt = jnp.dtype(name)
        qd, kd, vd = q.astype(dt), k.astype(dt), v.astype(dt)
        out, w = dot_product_attention(qd, kd, vd, mask=full, return_weights=True)
        grad = jax.grad(lambda x: jnp.sum(dot_product_attention(x, kd, vd, mask=full).astype(jnp.float32)))(qd)
        out, w, grad = (np.asarray(a.astype(jnp.float32)) for a in (out, w, grad))
        row_sums = w.sum(-1)[~fully]
        summary["dtypes"][name] = {
            "any_nan": bool(np.isnan(out).any() or np.isnan(w).any()),
            "any_nan_gradient": bool(np.isnan(grad).any()),
            "max_weight_on_fully_masked_rows": float(np.abs(w[fully]).max()),
            "max_output_on_fully_masked_rows": float(np.abs(out.transpose(0, 2, 1, 3)[np.broadcast_to(
                rows[:, None, :], out.transpose(0, 2, 1, 3).shape[:3])]).max()),
            "max_row_sum_error_elsewhere": float(np.abs(row_sums - 1).max()),
        }
        # The seed's mask: scores + (-1e9 where blocked), softmax in the same dtype.
        scores = (jnp.einsum("bthd,bshd->bhts", qd, kd) / jnp.asarray(math.sqrt(q.shape[-1]), dt)).astype(dt)
        additive = jnp.where(jnp.broadcast_to(full, scores.shape), 0.0, -1e9).astype(dt)
        naive = np.asarray(jax.nn.softmax(scores + additive, axis=-1).astype(jnp.float32))
        summary["additive_minus_1e9"][name] = {
            "any_nan": bool(np.isnan(naive).any()),
            "nan_rows": int(np.isnan(naive).any(-1).sum()),
            "max_weight_on_fully_masked_rows": float(np.nanmax(np.abs(naive[fully]))) if not np.isnan(naive[fully]).all() else None,
        }
    return summary, panels


# --- training ---------------------------------------------------------------------------------


def chunk_size(config: Config) -> int:
    return math.gcd(config.train_steps, 20)


def make_loss(scheme: str, config: Config):
    def loss_fn(params, batch, key):
        tokens, labels = batch
        logits = classify(scheme, params, tokens, config.num_heads)
        return cross_entropy(logits, labels), {"accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}
    return loss_fn


def train(config: Config, run_dir: RunDir, tok: WordTokenizer, key_init, key_train) -> tuple[dict, float, int]:
    vocab = len(tok.vocab)
    chunk, T = chunk_size(config), config.train_steps
    optimizer = optax.adam(config.learning_rate)
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        bar = progress(desc="attention basics: training", total=len(config.schemes) * T,
                       initial=resumed.step if resumed else 0)
        for index in range(len(sweep["finished"]), len(config.schemes)):
            scheme = config.schemes[index]
            init = init_model(scheme, key_init, vocab, config)
            step = make_train_step(make_loss(scheme, config), optimizer, has_aux=True, donate=False)
            current = sweep["current"]
            if current is None:
                current = {"scheme": scheme, "step": 0, "loss": [], "accuracy": []}
                params, opt_state = init, optimizer.init(init)
            else:
                if current["scheme"] != scheme:
                    raise ValueError(f"the checkpoint is inside scheme {current['scheme']}, expected {scheme}.")
                state = ckpt.state({"params": init, "opt_state": optimizer.init(init)})
                params, opt_state = state["params"], state["opt_state"]
            sweep["current"] = current
            for start in range(current["step"], T, chunk):
                # Chunk batches depend on the seed and the chunk only: every scheme sees the same data.
                tokens, labels = draw(jax.random.fold_in(key_train, start // chunk), chunk * config.batch_size, config, tok)
                tokens = tokens.reshape(chunk, config.batch_size, -1)
                labels = labels.reshape(chunk, config.batch_size)
                metrics = []
                for i in range(chunk):
                    params, opt_state, m = step(params, opt_state, (tokens[i], labels[i]))
                    metrics.append(m)
                for i, m in enumerate(jax.device_get(metrics)):
                    loss, acc = float(m["loss"]), float(m["accuracy"])
                    current["loss"].append(loss)
                    current["accuracy"].append(acc)
                    run_dir.log(scheme=scheme, step=start + i + 1, loss=loss, accuracy=acc)
                bar.update(chunk)
                current["step"] = start + chunk
                final = index == len(config.schemes) - 1 and current["step"] == T
                ckpt.save(index * T + current["step"], {"params": params, "opt_state": opt_state}, sweep, force=final)
            sweep["finished"].append({"scheme": scheme, "params": jax.device_get(params),
                                      "loss": np.asarray(current["loss"], np.float32),
                                      "accuracy": np.asarray(current["accuracy"], np.float32)})
            sweep["current"] = None
        bar.close()
        return sweep, ckpt.elapsed_s(), ckpt.sessions


# --- main -------------------------------------------------------------------------------------


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    tok = tokenizer()
    k = keys(config)
    sweep, train_s, sessions = train(config, run_dir, tok, k["init"], k["train"])
    measure_start = time.perf_counter()
    trained = {f["scheme"]: jax.tree.map(jnp.asarray, f["params"]) for f in sweep["finished"]}
    curves = {f["scheme"]: {"loss": f["loss"], "accuracy": f["accuracy"]} for f in sweep["finished"]}
    bar = progress(desc="attention basics: measuring", total=4)
    section_s, last = {}, [time.perf_counter()]

    def done(name):
        now = time.perf_counter()
        section_s[name] = round(now - last[0], 1)
        last[0] = now
        bar.update(1)

    # 1. order
    first, second, _ = task_ids(tok)
    test_tokens, test_labels = draw(k["test"], config.eval_batch, config, tok)
    swapped = swap_tokens(test_tokens, first, second)
    bow_embed = np.asarray(init_model("none", k["init"], len(tok.vocab), config)["embed"], np.float32)
    order = {"bag_of_words": bag_of_words(tok, bow_embed),
             "random_models": random_equivariance(config, k["random_models"]), "trained": {}}
    sentence_ids = jnp.asarray(np.stack([tok.encode(s) for s in SENTENCES[:2]]))   # both 5 words
    for scheme, params in trained.items():
        logits = classify_jit(scheme, params, test_tokens, config.num_heads)
        logits_swapped = classify_jit(scheme, params, swapped, config.num_heads)
        correct = np.asarray(jnp.argmax(logits, -1) == test_labels)
        correct_swapped = np.asarray(jnp.argmax(logits_swapped, -1) == 1 - test_labels)
        enc = lambda tks, s=scheme, p=params: encode_jit(s, p, tks, config.num_heads)
        rows = [permutation_deviation(enc, test_tokens[:64], random_permutation(jax.random.fold_in(k["test"], 5 + i),
                                                                                config.length))
                for i in range(config.permutations)]
        sent = np.asarray(classify_jit(scheme, params, sentence_ids, config.num_heads))
        order["trained"][scheme] = {
            "test_accuracy": float(correct.mean()),
            "paired_test_accuracy": float(np.concatenate([correct, correct_swapped]).mean()),
            "pairs_both_right": float((correct & correct_swapped).mean()),
            "max_logit_change_under_swap": float(np.max(np.abs(np.asarray(logits) - np.asarray(logits_swapped)))),
            "final_train_accuracy": float(np.mean(curves[scheme]["accuracy"][-max(1, config.train_steps // 10):])),
            "equivariance": summarise_deviations(rows),
            "cat_chased_mouse_vs_mouse_chased_cat_logit_difference": float(np.max(np.abs(sent[0] - sent[1]))),
        }
    order["chance_accuracy"] = 0.5
    done("order")

    # 2. scaling
    sweep_scaling = scaling_sweep(config, k["scaling"])
    scaling = {"keys": config.scaling_keys, "uniform_entropy": math.log(config.scaling_keys),
               "by_dim": {name: {str(d): v for d, v in by.items()} for name, by in sweep_scaling.items()},
               "trained": {s: trained_scaling(s, p, test_tokens[:256], config.num_heads) for s, p in trained.items()}}
    if 512 in config.scaling_dims:
        a, b = sweep_scaling["unscaled"][512], sweep_scaling["scaled"][512]
        scaling["at_512"] = {"entropy_unscaled": a["entropy"], "entropy_scaled": b["entropy"],
                             "entropy_uniform": math.log(config.scaling_keys),
                             "max_weight_unscaled": a["max_weight"], "max_weight_scaled": b["max_weight"],
                             "saturated_fraction_unscaled": a["saturated_fraction"],
                             "saturated_fraction_scaled": b["saturated_fraction"],
                             "grad_logits_median_ratio_unscaled_over_scaled":
                                 a["grad_logits_norm_median"] / b["grad_logits_norm_median"],
                             "grad_logits_ratio_unscaled_over_scaled": a["grad_logits_norm"] / b["grad_logits_norm"],
                             "grad_query_ratio_unscaled_over_scaled": a["grad_query_norm"] / b["grad_query_norm"]}
    done("scaling")

    # 3. positional encodings
    positional, pe_arrays = positional_study(config)
    pos_params = trained.get("sinusoidal") or next(iter(trained.values()))
    embed = np.asarray(pos_params["embed"], np.float64)
    pe_model = np.asarray(sinusoidal_table(config.length, config.d_model), np.float64)
    positional["model_embedding_norm_mean"] = float(np.linalg.norm(embed, axis=1).mean())
    positional["model_position_vector_norm"] = float(np.linalg.norm(pe_model, axis=1).mean())
    done("positional")

    # 4. masks
    mask_params = trained.get("sinusoidal")
    if mask_params is None:   # without a trained sinusoidal model: its initialisation
        mask_params = init_model("sinusoidal", k["init"], len(tok.vocab), config)
    masks, panels = mask_study(mask_params, tok, config)
    done("masks")
    bar.close()

    summary = {"order": order, "scaling": scaling, "positional": positional, "masks": masks,
               "float32_eps": EPS32, "precision": "float32 (softmax in float32 by design; no float64 run)",
               "environment": environment()}
    run_dir.save_arrays("curves", similarity=pe_arrays["similarity"], linear_map_error=pe_arrays["linear_map_error"],
                        scaling_dims=np.asarray(config.scaling_dims),
                        **{f"{n}_{m}": np.array([sweep_scaling[n][d][m] for d in config.scaling_dims])
                           for n in ("scaled", "unscaled") for m in sweep_scaling["scaled"][config.scaling_dims[0]]})
    run_dir.save_figure(plot_order(order, curves, config), "order")
    run_dir.save_figure(plot_scaling(sweep_scaling, config), "scaling")
    run_dir.save_figure(plot_positional(positional, pe_arrays, embed, pe_model, tok, config), "positional")
    run_dir.save_figure(plot_masks(panels), "masks")
    # Wall-clock numbers: training (over all sessions) plus this session's measurements.
    measure_s = time.perf_counter() - measure_start
    summary["timings"] = {"runtime_s": round(train_s + measure_s, 1), "train_s": round(train_s, 1),
                          "measure_s": round(measure_s, 1), "sections_s": section_s,
                          "sessions": sessions}
    return summary


# --- figures ----------------------------------------------------------------------------------


def plot_order(order: dict, curves: dict, config: Config) -> Figure:
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    schemes = list(order["random_models"])
    width = 0.25
    series = [("random attention", lambda s: order["random_models"][s]["attention"]),
              ("random transformer", lambda s: order["random_models"][s]["transformer"]),
              ("trained", lambda s: order["trained"].get(s, {}).get("equivariance"))]
    for j, (label, get) in enumerate(series):
        vals = [get(s)["max_deviation"] if get(s) else np.nan for s in schemes]
        ax1.bar(np.arange(len(schemes)) + (j - 1) * width, np.maximum(vals, 1e-12), width, label=label)
    scale = max(order["random_models"][s]["attention"]["output_scale"] for s in schemes)
    ax1.axhline(EPS32 * scale, color="k", ls="--", lw=0.8)
    ax1.text(-0.4, EPS32 * scale * 1.5, "float32 eps x max|f(x)|", fontsize=7)
    ax1.set_yscale("log")
    ax1.set_xticks(range(len(schemes)), schemes)
    ax1.set_ylabel("max |f(Px) - P f(x)|")
    ax1.set_title("Permutation equivariance by positional scheme")
    ax1.legend(fontsize=7)
    window = max(1, config.train_steps // 20)
    for s, c in curves.items():
        acc = np.convolve(c["accuracy"], np.ones(window) / window, mode="valid")
        ax2.plot(np.arange(window, len(c["accuracy"]) + 1), acc, label=s)
    ax2.axhline(0.5, color="grey", ls="--", lw=0.8)
    ax2.set_xlabel("Adam step")
    ax2.set_ylabel(f"training accuracy (running mean, {window})")
    ax2.set_title('Precedence task: "cat" before "mouse"?')
    ax2.legend(fontsize=8)
    trained = list(order["trained"])
    ax3.bar(np.arange(len(trained)) - 0.2, [order["trained"][s]["test_accuracy"] for s in trained], 0.4, label="test")
    ax3.bar(np.arange(len(trained)) + 0.2, [order["trained"][s]["paired_test_accuracy"] for s in trained], 0.4,
            label="paired test (with swaps)")
    ax3.axhline(0.5, color="grey", ls="--", lw=0.8)
    ax3.set_xticks(range(len(trained)), trained)
    ax3.set_ylim(0, 1.05)
    ax3.set_title("Mean-pooled 1-layer transformer, test accuracy")
    ax3.legend(fontsize=8, loc="lower right")
    return fig


def plot_scaling(sweep: dict, config: Config) -> Figure:
    dims = list(config.scaling_dims)
    fig = Figure(figsize=(16, 3.8), layout="constrained")
    axes = fig.subplots(1, 4)
    for ax, metric, title in zip(axes, ("entropy", "max_weight", "grad_logits_norm", "grad_query_norm"),
                                 ("softmax entropy (nats)", "largest weight", "||d(w.c)/d logits||",
                                  "||d(out.u)/d q|| through attention")):
        for name, style in (("scaled", "-o"), ("unscaled", "--s")):
            ax.plot(dims, [sweep[name][d][metric] for d in dims], style, label=f"{name}" + (" 1/sqrt(d_k)" if name == "scaled" else " (scale 1)"))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("d_k")
        ax.set_title(title)
        if metric.startswith("grad"):
            ax.set_yscale("log")
    axes[0].axhline(math.log(config.scaling_keys), color="grey", ls=":", lw=1)
    axes[0].text(dims[0], math.log(config.scaling_keys) * 0.93, f"uniform log {config.scaling_keys}", fontsize=7)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Random unit-variance queries/keys, {config.scaling_keys} keys, {config.scaling_queries} queries per d_k")
    return fig


def plot_positional(summary: dict, arrays: dict, embed: np.ndarray, pe_model: np.ndarray, tok: WordTokenizer,
                    config: Config) -> Figure:
    table = arrays["table"]
    fig = Figure(figsize=(16, 9), layout="constrained")
    axes = fig.subplots(2, 3)
    shown = table[: min(256, len(table))]
    near = table[: min(100, len(table))]
    im = axes[0, 0].imshow(shown.T, aspect="auto", cmap="viridis", vmin=-1, vmax=1, origin="lower")
    fig.colorbar(im, ax=axes[0, 0], label="PE value")
    axes[0, 0].set_xlabel("position")
    axes[0, 0].set_ylabel("dimension (0 = fastest, wavelength 2 pi)")
    axes[0, 0].set_title(f"sinusoidal table, d = {config.pe_dim}")
    d = config.pe_dim
    for dim in sorted({0, 1, 2, 3, d // 2, d // 2 + 1, d - 2, d - 1}):
        axes[0, 1].plot(near[:, dim], lw=1, label=f"dim {dim}")
    axes[0, 1].set_xlabel("position")
    axes[0, 1].set_title("dimensions against position")
    axes[0, 1].legend(fontsize=7, ncol=2)
    sim = arrays["similarity"]
    axes[0, 2].plot(np.arange(len(sim)), sim, "-o", ms=3)
    axes[0, 2].set_xlabel("distance k")
    axes[0, 2].set_ylabel("PE(p) . PE(p + k), mean over p")
    axes[0, 2].set_title(f"similarity vs distance (spread over p {summary['similarity_max_spread_over_positions']:.1e})")
    err = arrays["linear_map_error"]
    axes[1, 0].semilogy(np.arange(1, len(err) + 1), np.maximum(err, 1e-17), "-o", ms=3, label="exact rotation M_k")
    ls = summary["least_squares"]
    axes[1, 0].semilogy(list(ls), [v["held_out_error"] for v in ls.values()], "s", label="least-squares M_k, held out")
    axes[1, 0].semilogy(list(ls), [v["fit_residual"] for v in ls.values()], "^", label="least-squares M_k, fit residual")
    axes[1, 0].set_xlabel("shift k")
    axes[1, 0].set_ylabel("max |PE(pos+k) - M_k PE(pos)|")
    axes[1, 0].set_title("PE(pos + k) = M_k PE(pos), float32 table")
    axes[1, 0].legend(fontsize=7)
    words = tok.tokenize(SENTENCES[0])
    ids = [tok.vocab.token_to_id(w) for w in words]
    e = embed[ids]
    ep = e + pe_model[: len(ids)]
    cat = tok.vocab.token_to_id(FIRST)
    traj = embed[cat] + pe_model
    pts = pca_2d(np.concatenate([e, ep, traj]))
    n = len(ids)
    e2, ep2, traj2 = pts[:n], pts[n:2 * n], pts[2 * n:]
    ax = axes[1, 1]
    ax.scatter(*e2.T, color="tab:blue", label="word embedding E")
    ax.scatter(*ep2.T, color="tab:green", label="E + PE(position)")
    for i, w in enumerate(words):
        ax.annotate("", xy=ep2[i], xytext=e2[i], arrowprops=dict(color="purple", arrowstyle="->"))
        ax.text(*ep2[i], f"{w}+P{i}", fontsize=8)
        ax.text(*e2[i], w, fontsize=8, color="tab:blue")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f'"{SENTENCES[0]}": trained embeddings + PE (PCA to 2-D)')
    ax.legend(fontsize=7)
    ax = axes[1, 2]
    ax.plot(*traj2.T, "-o", ms=3, color="tab:orange")
    for p in range(len(traj2)):
        ax.text(*traj2[p], str(p), fontsize=7)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f'"{FIRST}" + PE(p), p = 0..{len(traj2) - 1} (same PCA)')
    return fig


def plot_masks(panels: dict) -> Figure:
    b = 1 if len(panels["tokens"]) > 1 else 0
    tokens = panels["tokens"][b]
    t = panels["raw"].shape[-1]
    labels = tokens + ["[PAD]"] * (t - len(tokens))
    fig = Figure(figsize=(13, 12), layout="constrained")
    axes = fig.subplots(3, 3)
    raw = panels["raw"][b, 0]
    lim = float(np.abs(raw).max())
    for row, name in enumerate(("causal", "padding", "combined")):
        mask, w = panels[name]["mask"][b, 0], panels[name]["weights"][b, 0]
        for col, (data, title, kw) in enumerate((
            (raw, "raw scores q.k/sqrt(d_k)", dict(cmap="RdBu_r", vmin=-lim, vmax=lim)),
            (np.where(mask, raw, np.nan), f"{name} mask: masked scores (grey = blocked)", dict(cmap="RdBu_r", vmin=-lim, vmax=lim)),
            (w, f"{name}: softmax rows (fully masked rows = 0)", dict(cmap="Blues", vmin=0, vmax=1)),
        )):
            ax = axes[row, col]
            cmap = __import__("matplotlib").colormaps[kw.pop("cmap")].copy()
            cmap.set_bad("lightgrey")
            im = ax.imshow(data, cmap=cmap, **kw)
            ax.set_xticks(range(t), labels, rotation=60, fontsize=7)
            ax.set_yticks(range(t), labels, fontsize=7)
            ax.set_title(title, fontsize=9)
            if col == 2:
                for i in range(t):
                    for j in range(t):
                        if w[i, j] > 0:
                            ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=6)
            fig.colorbar(im, ax=ax, shrink=0.7)
    fig.suptitle(f'Trained model, layer 1 head 1, "{" ".join(tokens)}" padded to {t} in a batch of lengths '
                 f"{panels['lengths'].tolist()}")
    return fig


def format_table(summary: dict[str, Any]) -> str:
    o, s, p, m = summary["order"], summary["scaling"], summary["positional"], summary["masks"]
    lines = [f"bag of words equal: counts {o['bag_of_words']['counts_equal']}, "
             f"mean embedding {o['bag_of_words']['mean_embedding_equal']}",
             f"{'scheme':<11} {'attn dev':>9} {'tfm dev':>9} {'pooled':>9} | {'trained dev':>11} "
             f"{'test acc':>8} {'paired':>7}"]
    for scheme, r in o["random_models"].items():
        tr = o["trained"].get(scheme, {})
        lines.append(f"{scheme:<11} {r['attention']['max_deviation']:>9.2e} {r['transformer']['max_deviation']:>9.2e} "
                     f"{r['transformer']['max_pooled_deviation']:>9.2e} | "
                     f"{tr.get('equivariance', {}).get('max_deviation', float('nan')):>11.2e} "
                     f"{tr.get('test_accuracy', float('nan')):>8.3f} {tr.get('paired_test_accuracy', float('nan')):>7.3f}")
    if "at_512" in s:
        a = s["at_512"]
        lines.append(f"d_k = 512: entropy unscaled {a['entropy_unscaled']:.3f}, scaled {a['entropy_scaled']:.3f}, "
                     f"uniform {a['entropy_uniform']:.3f}; grad (logits) unscaled/scaled "
                     f"{a['grad_logits_ratio_unscaled_over_scaled']:.2e}, (queries) {a['grad_query_ratio_unscaled_over_scaled']:.2e}")
    lines.append(f"PE(pos+k) = M_k PE(pos): max error {p['linear_map_max_error']:.2e} "
                 f"(identity map {p['identity_map_max_error']:.2f})")
    for name, r in m["dtypes"].items():
        lines.append(f"masks {name:<8}: NaN {r['any_nan']}, NaN grad {r['any_nan_gradient']}, max |w| fully masked "
                     f"{r['max_weight_on_fully_masked_rows']:.1e}; -1e9 additive: NaN rows "
                     f"{m['additive_minus_1e9'][name]['nan_rows']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
