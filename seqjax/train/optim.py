"""Optimisers over parameter groups: AdamW with a decay mask, discriminative learning rates, freezing.

Parameter groups are named by *path*: the keys from the root of the parameter pytree to a leaf,
joined with ``/`` (``"rnn/layers/0/w_h"``; an NNX ``Param``'s trailing ``.value`` is dropped, so
``nnx.split(model, nnx.Param)`` states and plain dicts give the same paths). Rules are regular
expressions matched with ``re.search``; the first matching rule wins.

* **Weight decay** (AdamW, Loshchilov & Hutter 2019, decoupled from the gradient)::

      theta <- theta - lr * (adam_direction + lambda * theta)        only where mask is True

  :func:`decay_mask` decides by each parameter's *role* (:func:`param_role`), never by its rank:
  weights and embeddings are decayed, biases and normalisation gains are not (shrinking a
  LayerNorm gain or a bias toward 0 is not regularisation of capacity, it changes what the layer
  computes). A rank rule would fail for scanned layer stacks, whose biases carry a leading
  ``[num_layers]`` axis and look like matrices; the role rule gives a looped and a scanned model
  the same mask. A leaf whose role cannot be told raises ``ValueError`` rather than being decayed
  or spared by accident. Typical ``lambda``: 1e-6 to 1e-4 for LSTMs, 0.01 for Transformers.
* **Discriminative learning rates and freezing** via ``optax.multi_transform``: each group gets its
  own transformation (its own learning rate or schedule); a group mapped to ``None`` is frozen
  with ``optax.set_to_zero()``, so its update is exactly 0, it holds no optimiser state, and weight
  decay does not touch it. Its gradient is still computed; wrap the frozen part of the forward pass
  in ``jax.lax.stop_gradient`` to save that work.

Example::

    >>> import jax.numpy as jnp, optax
    >>> from seqjax.train.optim import path_labels, multi_group, adamw
    >>> params = {"encoder": {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}, "head": {"w": jnp.ones((2, 1))}}
    >>> labels = path_labels(params, [(r"^encoder/", "encoder")], default="head")
    >>> tx = multi_group({"encoder": None, "head": adamw(1e-3, weight_decay=0.01)}, labels)
    >>> state = tx.init(params)
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

import jax
import optax

# The role of a parameter, from the names seqjax (and Flax / PyTorch / Hugging Face) give it.
# Checked in order on the path; the first match wins. Normalisation comes first so that a norm's
# own "bias" counts as a norm parameter (either way it is not decayed).
ROLE_RULES: tuple[tuple[str, str], ...] = (
    (r"(^|/)([^/]*norm[^/]*|ln_[^/]*)(/|$)|(^|/)[^/]*_scale$|(^|/)(scale|gamma|beta)$", "norm"),
    (r"(^|/)(b|b_[^/]*|bias|biases|[^/]*_bias)$", "bias"),
    (r"(^|/)([^/]*embedding[^/]*|embeddings/[^/]+|token|position|token_type|wte|wpe)$", "embedding"),
    (r"(^|/)(w|w_[^/]*|kernel|weight|weights|lm_head|v|peephole)$", "weight"),
)
ROLES = ("weight", "embedding", "bias", "norm")


def path_str(path: Sequence[Any]) -> str:
    """A ``jax.tree_util`` key path as ``"a/b/0/c"`` (an NNX Variable's final ``.value`` dropped)."""
    parts = []
    for key in path:
        if isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(key.name)
        elif isinstance(key, jax.tree_util.FlattenedIndexKey):
            parts.append(str(key.key))
        else:
            parts.append(str(key))
    if parts and isinstance(path[-1], jax.tree_util.GetAttrKey) and parts[-1] == "value":
        parts.pop()
    return "/".join(parts)


def param_paths(params: Any) -> Any:
    """The pytree of ``params``' shape with each leaf replaced by its path string."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path_str(path), params)


def path_labels(
    params: Any, rules: Sequence[tuple[str, str]], default: str = "default", *, strict: bool = True
) -> Any:
    """Label every leaf with the label of the first rule ``(regex, label)`` whose regex is found in
    its path (``re.search``), or ``default``.

    With ``strict``, a rule that matches no parameter raises ``ValueError`` (almost always a typo in
    the pattern, which would otherwise silently train a group meant to be frozen).
    """
    compiled = [(re.compile(pattern), label) for pattern, label in rules]
    used = set()

    def label(path, _):
        name = path_str(path)
        for i, (regex, lab) in enumerate(compiled):
            if regex.search(name):
                used.add(i)
                return lab
        return default

    labels = jax.tree_util.tree_map_with_path(label, params)
    unused = [rules[i][0] for i in range(len(rules)) if i not in used]
    if unused and strict:
        paths = jax.tree.leaves(param_paths(params))
        raise ValueError(
            f"path rules {unused} match no parameter; the parameter paths are {paths}."
        )
    return labels


def param_role(path: str, rules: Sequence[tuple[str, str]] = ()) -> str:
    """The role of the parameter at ``path`` (``"a/b/w_q"``, see :func:`path_str`): one of
    ``"weight"`` (projection matrices and vectors: ``w``, ``w_*``, ``kernel``, ``lm_head``, the
    additive score's ``v``, peepholes), ``"embedding"`` (``*embedding*``, BERT's
    ``embeddings/*``), ``"bias"`` (``b``, ``b_*``, ``bias``, ``*_bias``) or ``"norm"`` (anything
    inside a ``*norm*`` / ``ln_*`` group, ``scale``, ``*_scale``).

    ``rules``: extra ``(regex, role)`` pairs, tried first, for names of your own models.
    Raises ``ValueError`` when no rule applies.

    Example::

        >>> from seqjax.train.optim import param_role
        >>> [param_role(p) for p in ("blocks/layers/self_attn/b_q", "layers/norm_1/scale", "rnn/w_h")]
        ['bias', 'norm', 'weight']
    """
    for pattern, role in tuple(rules) + ROLE_RULES:
        if re.search(pattern, path):
            if role not in ROLES:
                raise ValueError(f"rules map {pattern!r} to the role {role!r}; expected one of {ROLES}.")
            return role
    raise ValueError(
        f"cannot tell the role of the parameter {path!r} from its name; expected a weight "
        "(w, w_*, kernel, weight, lm_head), an embedding (*embedding*), a bias (b, b_*, bias) or a "
        "norm parameter (scale, *norm*/...). Pass rules=[(regex, role), ...] for your names."
    )


def decay_mask(
    params: Any,
    *,
    decay: Sequence[str] = ("weight", "embedding"),
    rules: Sequence[tuple[str, str]] = (),
) -> Any:
    """``True`` for the leaves weight decay applies to: those whose :func:`param_role` is in
    ``decay`` (default weights and embeddings, as GPT-2 and BERT's AdamW recipes: biases and
    LayerNorm parameters are spared). The rank of a leaf plays no part, so stacked (scanned)
    layers get the mask of the same layers in a list. ``rules`` as :func:`param_role`.

    Example::

        >>> import jax.numpy as jnp
        >>> from seqjax.train.optim import decay_mask
        >>> decay_mask({"layers": {"w_1": jnp.ones((2, 4, 4)), "b_1": jnp.ones((2, 4))}})
        {'layers': {'b_1': False, 'w_1': True}}
    """
    unknown = sorted(set(decay) - set(ROLES))
    if unknown:
        raise ValueError(f"decay must name roles from {ROLES}; got {unknown}.")
    return jax.tree_util.tree_map_with_path(
        lambda path, _: param_role(path_str(path), rules) in decay, params
    )


def adamw(
    learning_rate: float | optax.Schedule,
    *,
    weight_decay: float = 1e-4,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    mask: Any = decay_mask,
) -> optax.GradientTransformation:
    """``optax.adamw`` with :func:`decay_mask` as the default mask (biases and norms not decayed).

    ``mask`` may be a pytree of booleans, a function ``params -> mask`` or ``None`` (decay all).
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0; got {weight_decay}.")
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=mask)


def multi_group(
    transforms: Mapping[str, optax.GradientTransformation | None],
    labels: Any | Callable[[Any], Any],
) -> optax.GradientTransformation:
    """``optax.multi_transform`` where a group mapped to ``None`` is frozen (``optax.set_to_zero``).

    ``labels``: a pytree of group names with the parameters' structure (see :func:`path_labels`),
    or a function ``params -> labels``.
    """
    if not transforms:
        raise ValueError("transforms must name at least one parameter group; got an empty mapping.")
    resolved = {name: optax.set_to_zero() if tx is None else tx for name, tx in transforms.items()}
    if not callable(labels):
        missing = sorted(set(jax.tree.leaves(labels)) - set(resolved))
        if missing:
            raise ValueError(
                f"parameter groups {missing} have no transformation; transforms has {sorted(resolved)}."
            )
    return optax.multi_transform(resolved, labels)


def discriminative(
    make_optimizer: Callable[[float | optax.Schedule], optax.GradientTransformation],
    learning_rates: Mapping[str, float | optax.Schedule | None],
    labels: Any | Callable[[Any], Any],
) -> optax.GradientTransformation:
    """One optimiser family with a learning rate (or schedule) per group; ``None`` freezes a group.

    Example: ``discriminative(lambda lr: adamw(lr), {"embed": 1e-4, "head": 1e-3, "frozen": None},
    labels)`` (ULMFiT-style lower rates for the lower layers).
    """
    return multi_group(
        {name: None if lr is None else make_optimizer(lr) for name, lr in learning_rates.items()},
        labels,
    )
