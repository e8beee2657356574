"""The small pieces every model is built from, written once: weight initialisation, a dense
projection, inverted dropout, layer normalisation, key splitting and parameter counting.

Cells, attention, transformer layers and the recurrent encoder-decoders all call these; none
keeps a private copy. Conventions (row vectors, float32 statistics)::

    init_weights(key, [(fan_in, fan_out), ...])   Xavier uniform U(+-sqrt(6 / (fan_in + fan_out)))
                                                  (or N(0, std^2), or any jax initializer)
    dense(x, w, b)        = x W + b                          x [..., d_in], W [d_in, d_out]
    dropout(x, p, key)    = x * m / (1 - p),  m ~ Bernoulli(1 - p)   (identity without a key)
    layer_norm(params, x) = scale * (x - mean) / sqrt(var + eps) + bias   over the last axis
    count_scalars(tree)   = sum of the sizes of the tree's array leaves (a parameter count)

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.primitives import dense, dropout, layer_norm, layer_norm_init, split_key
    >>> x = jnp.arange(8.0).reshape(2, 4)
    >>> dense(x, jnp.ones((4, 3)), jnp.zeros(3)).shape
    (2, 3)
    >>> [round(float(v), 3) for v in layer_norm(layer_norm_init(4), x)[0]]
    [-1.342, -0.447, 0.447, 1.342]
    >>> bool((dropout(x, 0.5, None) == x).all())    # no key: evaluation mode
    True
    >>> split_key(None, 3)
    [None, None, None]
    >>> count_scalars({"w": jnp.ones((4, 3)), "b": jnp.zeros(3)})
    15
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks

Params = dict[str, Any]
WeightInit = Callable[..., jax.Array]  # init(key, shape, dtype), as jax.nn.initializers


def init_weights(
    key: jax.Array,
    shapes: Sequence[tuple[int, int]],
    weight_init: WeightInit | float | None = None,
    *,
    scales: Sequence[float] | None = None,
) -> list[jax.Array]:
    """Float32 matrices of the given ``[fan_in, fan_out]`` shapes, each multiplied by its
    ``scales`` entry (default 1).

    ``weight_init``: None = Xavier (Glorot) uniform ``U(+-sqrt(6 / (fan_in + fan_out)))``; a float
    ``std`` = ``N(0, std^2)`` (BERT, GPT-2: 0.02); or a callable ``init(key, shape, dtype)`` (one
    call per matrix). The first two draw every matrix from one random kernel, cut into pieces: on
    CPU, compiling the random kernel dominates small inits.
    """
    shapes = tuple((int(a), int(b)) for a, b in shapes)
    scales = (1.0,) * len(shapes) if scales is None else tuple(float(c) for c in scales)
    if len(scales) != len(shapes):
        raise ValueError(f"scales must have one entry per shape ({len(shapes)}); got {len(scales)}.")
    if callable(weight_init):
        keys = jax.random.split(key, len(shapes))
        return [jnp.asarray(weight_init(k, shape, jnp.float32), jnp.float32) * c
                for k, shape, c in zip(keys, shapes, scales)]
    if weight_init is None:
        return list(_draw(key, shapes, scales, None))
    if isinstance(weight_init, (int, float, np.floating)) and not isinstance(weight_init, bool) and weight_init >= 0:
        return list(_draw(key, shapes, scales, float(weight_init)))
    raise ValueError(
        "weight_init must be None (Xavier uniform), a non-negative float (normal std) or a callable "
        f"init(key, shape, dtype); got {weight_init!r}."
    )


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _draw(key, shapes, scales, std):
    sizes = [a * b for a, b in shapes]
    if std is None:
        flat = jax.random.uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0)
    else:
        flat = jax.random.normal(key, (sum(sizes),), jnp.float32)
    out, start = [], 0
    for (fan_in, fan_out), size, scale in zip(shapes, sizes, scales):
        bound = math.sqrt(6.0 / (fan_in + fan_out)) if std is None else std
        out.append((bound * scale) * flat[start : start + size].reshape(fan_in, fan_out))
        start += size
    return tuple(out)


def dense(x: jax.Array, w: jax.Array, b: jax.Array | None = None) -> jax.Array:
    """``x W + b`` in ``x``'s dtype (the float32 parameters are cast to it); ``b`` optional."""
    y = x @ w.astype(x.dtype)
    return y if b is None else y + b.astype(x.dtype)


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout: zero each entry with probability ``rate`` and scale the rest by
    ``1 / (1 - rate)``; the identity when ``key`` is None or ``rate == 0`` (evaluation)."""
    _checks.probability("rate", rate)
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def split_key(key: jax.Array | None, n: int) -> list[jax.Array | None]:
    """``n`` independent keys from ``key`` (``jax.random.split``), or ``n`` Nones without one,
    so that code with optional randomness (dropout) has a single path."""
    _checks.positive_int("n", n)
    if key is None:
        return [None] * n
    return list(jax.random.split(key, n))


def layer_norm_init(d_model: int, *, use_bias: bool = True) -> Params:
    """``{"scale": ones [d], "bias": zeros [d]}`` (no ``"bias"`` with ``use_bias=False``)."""
    _checks.positive_int("d_model", d_model)
    params = {"scale": jnp.asarray(np.ones((d_model,), np.float32))}
    if use_bias:
        params["bias"] = jnp.asarray(np.zeros((d_model,), np.float32))
    return params


def layer_norm(params: Params, x: jax.Array, *, eps: float = 1e-5) -> jax.Array:
    """``scale * (x - mean) / sqrt(var + eps) + bias`` over the last axis (biased variance, as
    PyTorch and Ba et al. 2016). Statistics in float32; the result has ``x``'s dtype. ``eps``:
    PyTorch 1e-5 (default), BERT 1e-12, Flax 1e-6.

    Args:
      params: ``{"scale": [d]}`` and optionally ``"bias": [d]`` (:func:`layer_norm_init`).
      x: ``[..., d]``.
      eps: added to the variance; a positive number.
    """
    if not isinstance(params, dict) or "scale" not in params:
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"params must be a dict with 'scale' (and optionally 'bias'), as layer_norm_init gives; got {got}.")
    _checks.positive_float("eps", eps)
    x = _checks.floating_array("x", x, ndim=tuple(range(1, 7)), layout="[..., features]")
    _checks.feature_size("x", x, params["scale"].shape[-1])
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + eps) * params["scale"].astype(jnp.float32)
    if params.get("bias") is not None:
        y = y + params["bias"].astype(jnp.float32)
    return y.astype(x.dtype)


def count_scalars(tree: Any) -> int:
    """The number of scalars in a pytree of arrays (for a parameter tree: its parameter count).

    Works on concrete arrays and on shapes alone (``jax.ShapeDtypeStruct`` leaves from
    :func:`jax.eval_shape`). For an NNX model built on abstract shapes, see
    :func:`seqjax.nn.params.count_params`.
    """
    return sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree.leaves(tree))
