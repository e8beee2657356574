"""Xavier (Glorot) uniform initialisation for several matrices from one key."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp


def xavier_uniform(key: jax.Array, shapes: list[tuple[int, int]]) -> list[jax.Array]:
    """One ``[fan_in, fan_out]`` float32 matrix per shape, each U(±sqrt(6 / (fan_in + fan_out))).

    All matrices come from a single uniform draw (cut into pieces), so an init costs one random
    kernel, not one per matrix: on CPU compiling the random kernel dominates small inits.
    """
    return list(_xavier_uniform(key, tuple(tuple(shape) for shape in shapes)))


@functools.partial(jax.jit, static_argnums=1)
def _xavier_uniform(key: jax.Array, shapes: tuple[tuple[int, int], ...]) -> tuple[jax.Array, ...]:
    sizes = [a * b for a, b in shapes]
    flat = jax.random.uniform(key, (sum(sizes),), jnp.float32, -1.0, 1.0)
    out, start = [], 0
    for (fan_in, fan_out), size in zip(shapes, sizes):
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        out.append(bound * flat[start : start + size].reshape(fan_in, fan_out))
        start += size
    return tuple(out)
