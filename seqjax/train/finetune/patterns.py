"""Choosing parameters by path pattern: the selection every fine-tuning method starts from.

A parameter's *path* is the keys from the root of the pytree to the leaf joined with ``/``
(:func:`seqjax.train.optim.path_str`: ``"bert/encoder/stack/layers/0/self_attn/w_q"``; the same
for an ``nnx.split`` state and a plain ``pure_params()`` dict, up to the attribute names that the
pure tree leaves out). A *pattern* is a shell glob matched against the whole path
(:func:`fnmatch.fnmatchcase`: ``*`` matches any characters, ``/`` included, so
``"*/self_attn/w_q"`` selects the query projection of every layer), or, prefixed with ``re:``, a
regular expression found anywhere in the path (``re.search``, the rule of
:func:`seqjax.train.optim.path_labels`).

A pattern that matches nothing raises ``ValueError`` listing the paths (``strict=False`` to allow
it): a typo must not silently leave a model fully trainable or fully frozen.

Example::

    >>> import jax.numpy as jnp
    >>> from seqjax.train.finetune.patterns import select_paths
    >>> params = {"layers": [{"w_q": jnp.ones((2, 2)), "b_q": jnp.zeros(2)}] * 2, "head": {"w": jnp.ones((2, 1))}}
    >>> select_paths(params, ["*/w_q", "re:^head/"])
    ['head/w', 'layers/0/w_q', 'layers/1/w_q']
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Sequence

import jax

from seqjax.train.optim import path_str


def _as_patterns(name: str, patterns: Any) -> tuple[str, ...]:
    if isinstance(patterns, str):
        patterns = (patterns,)
    patterns = tuple(patterns)
    if not all(isinstance(p, str) and p for p in patterns):
        raise ValueError(f"{name} must be a non-empty string or a sequence of them; got {patterns!r}.")
    return patterns


def path_matches(path: str, pattern: str) -> bool:
    """Whether ``path`` matches ``pattern`` (a glob over the whole path, or ``re:<regex>`` searched)."""
    if pattern.startswith("re:"):
        return re.search(pattern[3:], path) is not None
    return fnmatch.fnmatchcase(path, pattern)


def leaf_paths(params: Any) -> list[str]:
    """The path of every leaf of ``params``, in ``jax.tree`` order."""
    return [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def match_mask(params: Any, patterns: Any, *, strict: bool = True, name: str = "patterns") -> Any:
    """A pytree of booleans shaped like ``params``: True at the leaves whose path matches any of
    ``patterns``. With ``strict``, a pattern matching no leaf raises ``ValueError``."""
    patterns = _as_patterns(name, patterns)
    used: set[str] = set()

    def hit(path, _):
        s = path_str(path)
        found = [p for p in patterns if path_matches(s, p)]
        used.update(found)
        return bool(found)

    mask = jax.tree_util.tree_map_with_path(hit, params)
    unused = [p for p in patterns if p not in used]
    if strict and unused:
        raise ValueError(
            f"{name} {unused} match no parameter; the parameter paths are {leaf_paths(params)}."
        )
    return mask


def select_paths(params: Any, patterns: Any, *, strict: bool = True) -> list[str]:
    """The sorted paths of the leaves matching any of ``patterns`` (see :func:`match_mask`)."""
    mask = match_mask(params, patterns, strict=strict)
    return sorted(p for p, m in zip(leaf_paths(params), jax.tree.leaves(mask)) if m)


def check_patterns(name: str, patterns: Sequence[str]) -> tuple[str, ...]:
    """``patterns`` as a tuple of non-empty strings (one string is one pattern)."""
    return _as_patterns(name, patterns)
