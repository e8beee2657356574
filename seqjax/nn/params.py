"""Parameters of the NNX modules: plain pytrees in, ``nnx.Param`` trees out, and back.

Every module in :mod:`seqjax.nn` keeps its parameters as ``nnx.Param`` leaves laid out exactly as
its pure function expects, and offers them back as plain arrays with one accessor,
``module.pure_params()``. ``nnx.split(model, nnx.Param)`` is therefore exhaustive: it yields
the whole trainable pytree. :func:`load_pure_params` is the inverse of ``pure_params()``: it
writes such a plain pytree (from another model, a checkpoint or a converter of
:mod:`seqjax.interop`) into a model.

Example::

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from seqjax.nn.params import as_params, load_pure_params, values
    >>> class Affine(nnx.Module):
    ...     def __init__(self):
    ...         self.weights = as_params({"w": jnp.ones((2, 3)), "b": jnp.zeros(3)})
    >>> tree = values(Affine().weights)
    >>> sorted(tree), tree["w"].shape
    (['b', 'w'], (2, 3))
    >>> from seqjax.nn import LSTM
    >>> source, target = LSTM(3, 5, rngs=nnx.Rngs(0)), LSTM(3, 5, rngs=nnx.Rngs(1))
    >>> load_pure_params(target, source.pure_params())
    >>> bool((target.w_h[...] == source.w_h[...]).all())
    True
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
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



def _path_part(key: Any) -> Any:
    """A pytree path entry (``DictKey``, ``SequenceKey``, ``GetAttrKey``) as the plain key or index
    that NNX uses in its own paths."""
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return getattr(key, attr)
    return key


def _is_subsequence(short: tuple, long: tuple) -> bool:
    """True when ``short`` is ``long`` with some entries left out (the order kept)."""
    it = iter(long)
    return all(any(part == other for other in it) for part in short)


def _show(path: tuple) -> str:
    return "/".join(map(str, path))


def load_pure_params(model: nnx.Module, params: Any) -> None:
    """Write a plain parameter pytree into ``model``, in place: the inverse of
    ``model.pure_params()``, so ``load_pure_params(m2, m1.pure_params())`` makes ``m2`` compute
    what ``m1`` computes when both were built with the same configuration.

    The pure tree leaves out the module attributes that hold the parameters (``GPTLanguageModel``
    keeps ``blocks.stack.layers[0].ffn.w_1``; its ``pure_params()`` has
    ``blocks.layers[0].ffn.w_1``), so each ``nnx.Param`` of the model at path ``p`` (attribute
    names, dict keys, list indices) takes the entry of ``params`` at the same path ``p`` if there
    is one, otherwise the one entry whose path is ``p`` with some parts left out and ends with the
    same name. Every model parameter must match exactly one entry, of its shape, and every entry
    exactly one parameter; values are cast to the parameter's dtype. This covers every module of
    :mod:`seqjax.nn` whose ``pure_params()`` nests as its attributes do: the recurrent layers,
    ``Bidirectional``, ``Stacked`` and the transformer models (looped or scanned layers; the pure
    tree must have the same form: a list of layers for a looped model, one stacked dict for a
    scanned one). Variables other than ``nnx.Param`` are left alone.

    Args:
      model: the NNX module to write into.
      params: a pytree of arrays (nested dicts and lists), e.g. ``other.pure_params()`` or
        :func:`seqjax.interop.huggingface.from_hf_gpt2`.

    Raises:
      ValueError: naming the parameter or entry that matches none or several, or whose shape
        differs.

    Example::

        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from seqjax.nn import GPT2Config, GPTLanguageModel, load_pure_params
        >>> config = GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=2, n_head=2)
        >>> m1, m2 = GPTLanguageModel(config, rngs=nnx.Rngs(0)), GPTLanguageModel(config, rngs=nnx.Rngs(1))
        >>> load_pure_params(m2, m1.pure_params())
        >>> ids = jnp.ones((1, 4), jnp.int32)
        >>> bool(jnp.array_equal(m1(ids), m2(ids)))
        True
    """
    state = nnx.state(model, nnx.Param)
    pure = nnx.to_pure_dict(state)
    flat_params = {tuple(map(_path_part, path)): leaf
                   for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}
    used: dict[tuple, tuple] = {}
    for path, variable in nnx.to_flat_state(state):
        path = tuple(path)
        if path in flat_params:
            match = path
        else:
            matches = [q for q in flat_params if q[-1] == path[-1] and _is_subsequence(q, path)]
            if len(matches) != 1:
                raise ValueError(
                    f"the model parameter {_show(path)} matches {len(matches)} entries of params "
                    f"({[_show(m) for m in matches][:4]}); expected exactly one. Does params come from a "
                    "model of the same class and configuration (looped vs scanned layers included)?")
            match = matches[0]
        if match in used:
            raise ValueError(f"params {_show(match)} matches two model parameters, {_show(used[match])} and "
                             f"{_show(path)}; expected one.")
        value = flat_params[match]
        if tuple(np.shape(value)) != tuple(variable.shape):
            raise ValueError(f"params {_show(match)} has shape {tuple(np.shape(value))} but the model parameter "
                             f"{_show(path)} has {tuple(variable.shape)}: build the model with the configuration "
                             "params was made for.")
        node = pure
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = jnp.asarray(value, variable.dtype)
        used[match] = path
    unused = sorted(_show(q) for q in set(flat_params) - set(used))
    if unused:
        raise ValueError(f"params has entries that match no parameter of the model: {unused[:6]}.")
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
