"""GloVe (Pennington, Socher & Manning 2014): weighted least squares on log co-occurrence counts,
trained in JAX with AdaGrad as the paper and its ``glove.c`` do.

Co-occurrence (:func:`cooccurrence`): within each sentence, every pair of tokens at distance
``1 <= d <= window`` adds ``1/d`` to ``X[i, j]`` and to ``X[j, i]`` (symmetric window, the
paper's distance weighting; ``window = 10``). The model fits

    J = Σ_{X_ij > 0} f(X_ij) (w_i · w̃_j + b_i + b̃_j - log X_ij)²,
    f(x) = min(1, (x / x_max)^α),  x_max = 100, α = 3/4

(the sum runs over the nonzero counts only: ``f(0) = 0``), by AdaGrad with learning rate 0.05
over shuffled batches of nonzero entries, each parameter's squared-gradient sum starting at 1
(``glove.c``); parameters start uniform in ``[-0.5/d, 0.5/d)``. The gradient of a batch is the
sum of its entries' gradients (``glove.c`` applies them one at a time, in threads). The word
vectors are ``W + W̃`` (the paper's choice).

Example::

    >>> import numpy as np
    >>> i, j, x = cooccurrence([np.array([0, 1, 2])], vocab_size=3, window=2)
    >>> [(int(a), int(b), float(c)) for a, b, c in zip(i, j, x)]
    [(0, 1, 1.0), (0, 2, 0.5), (1, 0, 1.0), (1, 2, 1.0), (2, 0, 0.5), (2, 1, 1.0)]
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.text.embeddings.corpus import build_vocab
from seqjax.text.embeddings.vectors import WordVectors

__all__ = ["GloVeConfig", "cooccurrence", "glove_loss", "glove_step", "train_glove", "weighting"]


def cooccurrence(sentences: Sequence[np.ndarray], *, vocab_size: int, window: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, X_ij)`` of the nonzero distance-weighted counts, sorted by ``(i, j)``."""
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer >= 1; got {window!r}.")
    keys, weights = [], []
    for s in sentences:
        s = np.asarray(s, np.int64)
        for d in range(1, min(window, len(s) - 1) + 1):
            a, b = s[:-d], s[d:]
            keys += [a * vocab_size + b, b * vocab_size + a]
            weights += [np.full(len(a), 1.0 / d)] * 2
    if not keys:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float64)
    keys, weights = np.concatenate(keys), np.concatenate(weights)
    unique, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse, weights=weights)
    return (unique // vocab_size).astype(np.int32), (unique % vocab_size).astype(np.int32), counts


def weighting(x, x_max: float = 100.0, alpha: float = 0.75):
    """``f(x) = min(1, (x / x_max)^alpha)``."""
    return jnp.minimum(1.0, (x / x_max) ** alpha)


def glove_loss(params: dict, i, j, x, x_max: float = 100.0, alpha: float = 0.75) -> jax.Array:
    """``Σ f(x) (w_i · w̃_j + b_i + b̃_j - log x)²`` over the batch (half of it is ``glove.c``'s cost)."""
    diff = (params["w"][i] * params["w_context"][j]).sum(-1) + params["b"][i] + params["b_context"][j] - jnp.log(x)
    return (weighting(x, x_max, alpha) * diff ** 2).sum()


@functools.partial(jax.jit, donate_argnums=(0, 1))
def glove_step(params: dict, sq: dict, i, j, x, lr, x_max, alpha):
    """One AdaGrad step on a batch of entries: ``p -= lr g / sqrt(G)``, then ``G += g²``, per row
    (``G`` as ``glove.c``: the sum of the squared gradients before this one, from 1)."""
    diff = (params["w"][i] * params["w_context"][j]).sum(-1) + params["b"][i] + params["b_context"][j] - jnp.log(x)
    fdiff = weighting(x, x_max, alpha) * diff          # d(J/2)/d(prediction), as glove.c
    grads = {
        "w": fdiff[:, None] * params["w_context"][j], "w_context": fdiff[:, None] * params["w"][i],
        "b": fdiff, "b_context": fdiff,
    }
    index = {"w": i, "w_context": j, "b": i, "b_context": j}
    new_params, new_sq = {}, {}
    for name in params:
        g = grads[name]
        new_params[name] = params[name].at[index[name]].add(-lr * g / jnp.sqrt(sq[name][index[name]]))
        new_sq[name] = sq[name].at[index[name]].add(g ** 2)
    return new_params, new_sq, (fdiff * diff).sum() / 2


@dataclasses.dataclass(frozen=True)
class GloVeConfig:
    """The paper's settings (50 iterations for d < 300), batched."""

    dim: int = 100
    window: int = 10
    min_count: int = 5
    epochs: int = 50
    lr: float = 0.05
    x_max: float = 100.0
    alpha: float = 0.75
    batch_size: int = 8192
    seed: int = 0


def train_glove(sentences: Sequence[Sequence[str]], config: GloVeConfig = GloVeConfig(), *,
                desc: str | None = None) -> tuple[WordVectors, list[float]]:
    """Train GloVe on tokenized ``sentences``; returns ``(vectors W + W̃, cost per epoch)`` (the
    cost is ``glove.c``'s: ``J/2`` over the entries, divided by their number)."""
    from seqjax.experiment import progress

    vocab = build_vocab(sentences, min_count=config.min_count)
    i, j, x = cooccurrence(vocab.encode(sentences), vocab_size=len(vocab), window=config.window)
    v, d = len(vocab), config.dim
    keys = jax.random.split(jax.random.key(config.seed), 4)
    params = {
        "w": jax.random.uniform(keys[0], (v, d), jnp.float32, -0.5 / d, 0.5 / d),
        "w_context": jax.random.uniform(keys[1], (v, d), jnp.float32, -0.5 / d, 0.5 / d),
        "b": jax.random.uniform(keys[2], (v,), jnp.float32, -0.5 / d, 0.5 / d),
        "b_context": jax.random.uniform(keys[3], (v,), jnp.float32, -0.5 / d, 0.5 / d),
    }
    sq = {name: jnp.ones_like(p) for name, p in params.items()}
    m, bs = len(x), config.batch_size
    batches = -(-m // bs)
    costs = []
    epochs = range(config.epochs)
    if desc is not None:
        epochs = progress(epochs, desc=desc, total=config.epochs)
    for epoch in epochs:
        order = np.random.default_rng((config.seed, epoch)).permutation(m)
        ii, jj, xx = i[order], j[order], x[order].astype(np.float32)
        total = []
        for b in range(batches):  # the last, shorter batch compiles once more
            sl = slice(b * bs, (b + 1) * bs)
            params, sq, cost = glove_step(params, sq, ii[sl], jj[sl], xx[sl], np.float32(config.lr),
                                          np.float32(config.x_max), np.float32(config.alpha))
            total.append(cost)
        costs.append(float(jnp.sum(jnp.stack(total))) / m)
    vectors = np.asarray(params["w"]) + np.asarray(params["w_context"])
    return WordVectors(vocab.words, vectors), costs
