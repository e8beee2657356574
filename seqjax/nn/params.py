"""Parameters of the NNX modules: plain pytrees in, ``nnx.Param`` trees out, and back.

Every module in :mod:`seqjax.nn` keeps its parameters as ``nnx.Param`` leaves laid out exactly as
its pure function expects, and offers them back as plain arrays with one accessor,
``module.pure_params()``. ``nnx.split(model, nnx.Param)`` is therefore exhaustive: it yields
the whole trainable pytree.

Example::

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from seqjax.nn.params import as_params, values
    >>> class Affine(nnx.Module):
    ...     def __init__(self):
    ...         self.weights = as_params({"w": jnp.ones((2, 3)), "b": jnp.zeros(3)})
    >>> tree = values(Affine().weights)
    >>> sorted(tree), tree["w"].shape
    (['b', 'w'], (2, 3))
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from flax import nnx


def is_variable(leaf: Any) -> bool:
    """True for an ``nnx.Variable`` (a leaf of a parameter tree)."""
    return isinstance(leaf, nnx.Variable)


def as_params(tree: Any) -> Any:
    """A pytree of arrays -> the same structure of ``nnx.Param``, wrapped with ``nnx.data`` so a
    module may hold it as one attribute."""
    return nnx.data(jax.tree.map(nnx.Param, tree))


def values(tree: Any) -> Any:
    """The plain arrays of a pytree of variables (what the pure functions take)."""
    return jax.tree.map(lambda v: v[...], tree, is_leaf=is_variable)


def count_params(model_constructor: Callable[[], nnx.Module], *, filter: Any = nnx.Param) -> int:
    """The exact number of parameters of ``model_constructor()``, counted on abstract shapes.

    The model is built under :func:`flax.nnx.eval_shape`, so no array is allocated and no random
    number drawn: BERT-large costs nothing. Shared (tied) parameters count once.

    Args:
      model_constructor: a zero-argument callable returning the module, e.g.
        ``lambda: BertModel(BertConfig.base(), rngs=nnx.Rngs(0))``.
      filter: which variables to count (default ``nnx.Param``).

    Example::

        >>> from flax import nnx
        >>> from seqjax.nn import BertConfig, BertModel, count_params
        >>> count_params(lambda: BertModel(BertConfig.base(), rngs=nnx.Rngs(0)))
        109482240
    """
    abstract = nnx.eval_shape(model_constructor)
    state = nnx.state(abstract, filter)
    return sum(int(np.prod(leaf.shape, dtype=np.int64)) for leaf in jax.tree.leaves(state))
