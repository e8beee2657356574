"""Skip-gram with negative sampling (SGNS; Mikolov et al. 2013) as one jitted, batched SGD step
over *composed inputs*, shared by skip-gram, CBOW, FastText and CharNgram.

Every model here scores an input representation ``h`` against output ("context") vectors. An
example ``b`` has input rows ``I_b`` of the table ``E``, targets ``t_bj`` (rows of ``O``, with a
mask ``m_bj``) and, per target, negatives ``n_bjk`` drawn from the noise distribution:

    h_b  = (1/|I_b|) Σ_{i ∈ I_b} E[i]                  (the mean of the example's input rows)
    L_b  = Σ_j m_bj [ -log σ(h_b · O[t_bj]) - Σ_k [n_bjk ≠ t_bj] log σ(-h_b · O[n_bjk]) ]

(word2vec skips a negative equal to the target). What the input rows and targets are tells the
models apart: skip-gram: input the center word, targets its context words; CBOW: input the
context words, target the center; FastText: input the center word and its hashed character
n-grams, targets the contexts; CharNgram: input the center's character n-grams.

The update is plain SGD on the rows the batch touches (gathered, differentiated by hand, added
back with ``.at[].add``: a batch costs O(batch · rows · d), never O(vocabulary · d)):

    O[r] -= lr · Σ_{(b,j,k): row r} g_bjk h_b,     g = σ(logit) - label (masked)
    E[i] -= lr · s · Σ_{b: i ∈ I_b} Σ_{j,k} g_bjk O[row_bjk]

``input_gradient="sum"`` (``s = 1``) gives every input row the full gradient of ``h``, as
word2vec's CBOW, gensim's CBOW with ``cbow_mean=1`` (its ``fast_sentence_cbow_neg`` adds the
undivided error to every context vector) and fastText do; ``"mean"`` (``s = 1/|I_b|``) is the
true gradient of the mean (tested against ``jax.grad``, as is ``"sum"``). With ``"mean"`` the
CBOW input vectors learn about 1/(2·window) as fast: measured on the experiment's corpus, WS-353
rho -0.05 against gensim's 0.13. The updates of all
examples in a batch are summed (word2vec applies each pair's at once, in threads without locks);
so are the updates of one center's context pairs (word2vec and fastText apply them one after the
other).

Example::

    >>> import jax, numpy as np
    >>> params = init_params(jax.random.key(0), num_inputs=5, num_outputs=5, dim=4)
    >>> batch = Batch(inputs=np.array([[0], [1]]), input_mask=np.ones((2, 1), bool),
    ...               targets=np.array([[1], [0]]), target_mask=np.ones((2, 1), bool),
    ...               negatives=np.array([[[2, 3]], [[4, 1]]]))
    >>> params, loss = sgns_step(params, batch, 0.025, input_gradient="sum")
    >>> round(float(loss), 4)   # 2 targets x (1 + 2) terms of log 2 at zero output vectors
    4.1589
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Batch", "SGNSConfig", "init_params", "sgns_loss", "sgns_step", "train_sgns"]

INPUT_GRADIENTS = ("sum", "mean")


@dataclasses.dataclass(frozen=True)
class SGNSConfig:
    """The settings every SGNS model shares (gensim's names and defaults; ``dim`` is gensim's
    ``vector_size``); :class:`~seqjax.text.embeddings.word2vec.Word2VecConfig`,
    ``FastTextConfig`` and ``CharNgramConfig`` add their own."""

    dim: int = 100
    window: int = 5
    negative: int = 5
    min_count: int = 5
    epochs: int = 5
    sample: float = 1e-3
    alpha: float = 0.025
    min_alpha: float = 1e-4
    batch_size: int = 128          # examples (centers) per step
    seed: int = 0


class Batch(NamedTuple):
    """One batch: ``inputs`` / ``input_mask`` ``[b, k]`` (rows of ``E``), ``targets`` /
    ``target_mask`` ``[b, t]`` and ``negatives`` ``[b, t, n]`` (rows of ``O``)."""

    inputs: np.ndarray
    input_mask: np.ndarray
    targets: np.ndarray
    target_mask: np.ndarray
    negatives: np.ndarray


def init_params(key, *, num_inputs: int, num_outputs: int, dim: int, scale: float | None = None) -> dict:
    """``{"input": E [num_inputs, dim], "output": O [num_outputs, dim]}``: ``E`` uniform in
    ``[-scale, scale)`` (default ``0.5 / dim``, word2vec's), ``O`` zeros (word2vec's)."""
    for name, value in (("num_inputs", num_inputs), ("num_outputs", num_outputs), ("dim", dim)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    scale = 0.5 / dim if scale is None else scale
    table = jax.random.uniform(key, (num_inputs, dim), jnp.float32, -scale, scale)
    return {"input": table, "output": jnp.zeros((num_outputs, dim), jnp.float32)}


def _forward(params, batch):
    b, k = batch.inputs.shape
    t, d = batch.targets.shape[1], params["input"].shape[1]
    mask = batch.input_mask.astype(jnp.float32)[..., None]                          # [b, k, 1]
    count = jnp.maximum(mask.sum(axis=1), 1.0)                                        # [b, 1]
    # flat (1-D) index arrays and 3-D products: XLA's CPU gather/scatter and dot are several
    # times slower with higher-rank ones (measured)
    h = (params["input"][batch.inputs.reshape(-1)].reshape(b, k, d) * mask).sum(axis=1) / count
    outputs = jnp.concatenate([batch.targets[..., None], batch.negatives], axis=-1).reshape(b * t, -1)  # [p, 1 + n]
    live = batch.target_mask.reshape(b * t, 1)
    weight = jnp.concatenate([live, live & (outputs[:, 1:] != outputs[:, :1])], axis=-1).astype(jnp.float32)
    label = jnp.zeros(outputs.shape, jnp.float32).at[:, 0].set(1.0)
    rows = params["output"][outputs.reshape(-1)].reshape(outputs.shape + (d,))       # [p, 1 + n, d]
    h_pairs = jnp.repeat(h, t, axis=0)                                                # [p, d]
    logits = jnp.einsum("pd,pjd->pj", h_pairs, rows)
    loss = -(weight * jax.nn.log_sigmoid(jnp.where(label > 0, logits, -logits))).sum()
    return mask, count, h_pairs, outputs, weight, label, rows, logits, loss


def sgns_loss(params: dict, batch: Batch) -> jax.Array:
    """The summed SGNS loss of the batch (the module docstring's ``Σ_b L_b``)."""
    return _forward(params, batch)[-1]


@functools.partial(jax.jit, static_argnames=("input_gradient",), donate_argnums=(0,))
def sgns_step(params: dict, batch: Batch, lr, *, input_gradient: str = "sum") -> tuple[dict, jax.Array]:
    """One SGD step on the batch (module docstring); returns ``(params, summed loss)``."""
    if input_gradient not in INPUT_GRADIENTS:
        raise ValueError(f"input_gradient must be one of {INPUT_GRADIENTS}; got {input_gradient!r}.")
    mask, count, h_pairs, outputs, weight, label, rows, logits, loss = _forward(params, batch)
    (b, t), d = batch.targets.shape, h_pairs.shape[1]
    g = (jax.nn.sigmoid(logits) - label) * weight                                     # [p, 1 + n]
    grad_h = jnp.einsum("pj,pjd->pd", g, rows).reshape(b, t, d).sum(axis=1)           # [b, d]
    if input_gradient == "mean":
        grad_h = grad_h / count
    input_updates = (-lr * grad_h[:, None, :] * mask).reshape(-1, d)
    output_updates = (-lr * g[..., None] * h_pairs[:, None, :]).reshape(-1, d)
    table = params["input"].at[batch.inputs.reshape(-1)].add(input_updates)
    output = params["output"].at[outputs.reshape(-1)].add(output_updates)
    return {"input": table, "output": output}, loss


def train_sgns(
    params: dict,
    epoch_examples: Callable[[np.random.Generator], tuple[np.ndarray, ...]],
    *,
    noise: np.ndarray,
    epochs: int,
    negative: int = 5,
    batch_size: int = 128,
    alpha: float = 0.025,
    min_alpha: float = 1e-4,
    seed: int = 0,
    input_gradient: str = "sum",
    desc: str | None = None,
) -> tuple[dict, list[float]]:
    """SGD over ``epochs`` epochs; returns ``(params, losses)``: the mean loss per example of
    each epoch.

    ``epoch_examples(rng) -> (inputs [m, k], input_mask [m, k], targets [m, t], target_mask [m, t])``
    gives one epoch's examples (subsampled, reduced windows) from the epoch's generator
    ``numpy.random.default_rng((seed, epoch))``; they are shuffled and cut into batches of
    ``batch_size`` (the last one padded with masked examples, which change nothing). Each batch
    gets ``negative`` noise words per target (uniform slots of word2vec's unigram table), and the learning rate :func:`~seqjax.text.embeddings.corpus.linear_learning_rate`
    at its share of all epochs. Small batches are faster per example on CPU (a 128 x 10-context batch ran ~10x faster per pair
    than a 256 x 10 one in XLA's CPU scatter).
    """
    from seqjax.experiment import progress
    from seqjax.text.embeddings.corpus import linear_learning_rate, noise_table, sample_negatives

    for name, value in (("epochs", epochs), ("negative", negative), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}.")
    if input_gradient not in INPUT_GRADIENTS:
        raise ValueError(f"input_gradient must be one of {INPUT_GRADIENTS}; got {input_gradient!r}.")
    table = noise_table(noise)
    losses = []
    for epoch in range(epochs):
        rng = np.random.default_rng((seed, epoch))
        arrays = epoch_examples(rng)
        m = len(arrays[0])
        order = rng.permutation(m)
        batches = -(-m // batch_size)
        pad = batches * batch_size - m
        arrays = [np.concatenate([a[order], np.zeros((pad,) + a.shape[1:], a.dtype)]) for a in arrays]
        arrays = [a.reshape((batches, batch_size) + a.shape[1:]) for a in arrays]
        lrs = np.asarray([linear_learning_rate(alpha, min_alpha, (epoch + i / batches) / epochs)
                          for i in range(batches)], np.float32)
        total = []
        steps = range(batches)
        if desc is not None:
            steps = progress(steps, desc=f"{desc} epoch {epoch + 1}/{epochs}", total=batches)
        for i in steps:
            targets = arrays[2][i]
            negatives = sample_negatives(table, targets.shape + (negative,), rng)
            batch = Batch(arrays[0][i], arrays[1][i], targets, arrays[3][i], negatives)
            params, loss = sgns_step(params, batch, lrs[i], input_gradient=input_gradient)
            total.append(loss)  # device scalars: summed once per epoch, no sync per step
        total = float(jnp.sum(jnp.stack(total))) if total else 0.0
        losses.append(total / max(m, 1))
    jax.block_until_ready(params)
    return params, losses
