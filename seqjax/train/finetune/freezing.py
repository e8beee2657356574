"""Which parameters train, and how fast: freezing by pattern, BitFit, discriminative learning rates
and gradual unfreezing (ULMFiT), as optax transformations over pure parameter pytrees.

Everything is built on :func:`seqjax.train.optim.multi_group` (``optax.multi_transform``; a group
mapped to ``None`` is frozen by ``optax.set_to_zero``: update exactly 0, no optimiser state, no
weight decay). Parameters are chosen by path pattern (:mod:`~seqjax.train.finetune.patterns`).

* :func:`freeze` -- train only what ``trainable`` matches (or all but what ``frozen`` matches).
* :func:`bitfit` -- BitFit (Ben Zaken et al. 2022): only the bias terms train, LayerNorm's
  ``bias`` (their ``b_LN``) included, plus the new task head passed as ``also``.
* :func:`layer_groups` -- label each parameter with its layer group, bottom (0: embeddings) to
  top (the head); the first pattern that matches wins, so ``"*"`` last catches the rest.
* :func:`discriminative_lrs` / :func:`ulmfit_optimizer` -- ULMFiT (Howard & Ruder 2018,
  "Universal Language Model Fine-tuning for Text Classification"): group ``g`` of ``G`` trains
  with ``lr_g = lr / decay^(G-1-g)`` (``decay = 2.6``: each group down gets the rate of the one
  above divided by 2.6), and with gradual unfreezing the top group trains from the start and one
  more group below it joins every ``steps_per_stage`` updates (one epoch in the paper), until all
  train. ``lr`` may be a schedule of the *global* step, e.g. the slanted triangular one
  (:func:`seqjax.train.schedules.slanted_triangular`).

Gradual unfreezing is :func:`unfreeze_at`: a group's optimiser starts, with fresh state, at the
step the group is unfrozen (its Adam moments and bias-correction count begin there, as in fastai,
where a frozen parameter has no optimiser state); before it the group's update is exactly 0.
The group's schedule is still read at the global step. Per-layer groups need the layers as a
list (``scan_layers=False``): a scanned stack keeps all layers in one array, which one label
cannot split.

Example::

    >>> import jax, jax.numpy as jnp, optax
    >>> from seqjax.train.finetune.freezing import layer_groups, ulmfit_optimizer
    >>> params = {"embed": jnp.ones(2), "layers": [{"w": jnp.ones(2)}, {"w": jnp.ones(2)}], "head": jnp.ones(2)}
    >>> labels = layer_groups(params, ["embed", "layers/0/*", "layers/1/*", "*"])
    >>> labels
    {'embed': 0, 'head': 3, 'layers': [{'w': 1}, {'w': 2}]}
    >>> tx = ulmfit_optimizer(optax.sgd, labels, learning_rate=1.0, steps_per_stage=1)
    >>> state = tx.init(params)
    >>> grads = jax.tree.map(jnp.ones_like, params)
    >>> for step in range(2):
    ...     updates, state = tx.update(grads, state, params)
    ...     print([round(float(u[0]), 4) for u in jax.tree.leaves(updates)])
    [0.0, -1.0, 0.0, 0.0]
    [0.0, -1.0, 0.0, -0.3846]
"""

from __future__ import annotations

import re
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqjax import _checks
from seqjax.train.finetune.patterns import check_patterns, leaf_paths, match_mask, path_matches
from seqjax.train.optim import multi_group, path_str

# A bias by the last name on its path: ``b``, ``b_*``, ``bias``, ``*_bias`` (LayerNorm's included).
BIAS_NAME = re.compile(r"(^|/)(b|b_[^/]*|bias|biases|[^/]*_bias)$")
ULMFIT_DECAY = 2.6


def trainable_mask(params: Any, *, trainable: Any = None, frozen: Any = None) -> Any:
    """True at the leaves that train: those matching ``trainable``, or all but those matching
    ``frozen`` (give exactly one)."""
    if (trainable is None) == (frozen is None):
        raise ValueError("give exactly one of trainable= or frozen= (path patterns).")
    if trainable is not None:
        return match_mask(params, trainable, name="trainable")
    return jax.tree.map(lambda m: not m, match_mask(params, frozen, name="frozen"))


def freeze(
    optimizer: optax.GradientTransformation, params: Any = None, *, trainable: Any = None, frozen: Any = None,
    mask: Any = None,
) -> optax.GradientTransformation:
    """``optimizer`` on the trainable leaves only; the rest frozen (``optax.set_to_zero``).

    Either patterns (``trainable=`` or ``frozen=``, resolved on ``params``) or a boolean ``mask``
    pytree (True = trains), e.g. :func:`bitfit_mask`.

    Example::

        >>> import jax.numpy as jnp, optax
        >>> from seqjax.train.finetune.freezing import freeze
        >>> params = {"encoder": {"w": jnp.ones(2)}, "head": {"w": jnp.ones(2)}}
        >>> tx = freeze(optax.sgd(1.0), params, frozen="encoder/*")
        >>> updates, _ = tx.update({"encoder": {"w": jnp.ones(2)}, "head": {"w": jnp.ones(2)}}, tx.init(params))
        >>> updates["encoder"]["w"].tolist(), updates["head"]["w"].tolist()
        ([0.0, 0.0], [-1.0, -1.0])
    """
    if mask is None:
        if params is None:
            raise ValueError("freeze needs params to resolve the patterns (or an explicit mask=).")
        mask = trainable_mask(params, trainable=trainable, frozen=frozen)
    elif trainable is not None or frozen is not None:
        raise ValueError("give patterns (trainable=/frozen=) or mask=, not both.")
    labels = jax.tree.map(lambda m: "trainable" if m else "frozen", mask)
    if "trainable" not in jax.tree.leaves(labels):
        raise ValueError("nothing would train: the mask is False everywhere.")
    return multi_group({"trainable": optimizer, "frozen": None}, labels)


def bitfit_mask(params: Any, *, also: Any = ()) -> Any:
    """BitFit's mask: True at every bias (the last path name is ``b``, ``b_*``, ``bias`` or
    ``*_bias``; LayerNorm biases included, as in Ben Zaken et al. 2022) and at the leaves matching
    ``also`` (the task head, e.g. ``"classifier/*"``, which is new and trains whole)."""
    extra = check_patterns("also", also) if also else ()
    if extra:
        match_mask(params, extra, name="also")  # a typo must not pass silently

    def hit(path, _):
        s = path_str(path)
        return bool(BIAS_NAME.search(s)) or any(path_matches(s, p) for p in extra)

    mask = jax.tree_util.tree_map_with_path(hit, params)
    if not any(jax.tree.leaves(mask)):
        raise ValueError(f"params has no bias to train (paths {leaf_paths(params)[:8]} ...).")
    return mask


def bitfit(optimizer: optax.GradientTransformation, params: Any, *, also: Any = ()) -> optax.GradientTransformation:
    """``optimizer`` on the biases (and ``also``) only: :func:`freeze` with :func:`bitfit_mask`."""
    return freeze(optimizer, mask=bitfit_mask(params, also=also))


def count_trainable(params: Any, mask: Any) -> int:
    """The number of scalars at the leaves where ``mask`` is True."""
    return sum(int(np.prod(np.shape(x))) for x, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask)) if m)


def layer_groups(params: Any, groups: Sequence[Any]) -> Any:
    """Label every leaf with the index of the first group (bottom 0 to top ``G-1``) whose
    pattern(s) match its path. Each group is a pattern or a list of patterns; a leaf matching no
    group, or a group matching no leaf, raises ``ValueError``."""
    if not groups:
        raise ValueError("groups must list at least one group of patterns (bottom to top).")
    groups = [check_patterns(f"groups[{i}]", g) for i, g in enumerate(groups)]
    used: set[int] = set()
    unmatched: list[str] = []

    def label(path, _):
        s = path_str(path)
        for i, pats in enumerate(groups):
            if any(path_matches(s, p) for p in pats):
                used.add(i)
                return i
        unmatched.append(s)
        return -1

    labels = jax.tree_util.tree_map_with_path(label, params)
    if unmatched:
        raise ValueError(f"parameters {unmatched[:6]} match no group; end the groups with '*' to catch the rest.")
    empty = [i for i in range(len(groups)) if i not in used]
    if empty:
        raise ValueError(f"groups {[(i, groups[i]) for i in empty]} match no parameter (or only ones an earlier "
                         "group took).")
    return labels


def encoder_layer_groups(params: Any, num_layers: int, *, layers: str = "*/layers/{i}/*",
                         embeddings: str = "*embedding*") -> Any:
    """:func:`layer_groups` for a transformer: ``[embeddings, layer 0, ..., layer L-1, the rest]``
    (the rest: pooler, final norm, head). The patterns fit seqjax's BERT and GPT (looped layers)."""
    _checks.positive_int("num_layers", num_layers)
    return layer_groups(params, [embeddings, *[layers.format(i=i) for i in range(num_layers)], "*"])


def discriminative_lrs(learning_rate: float | optax.Schedule, num_groups: int, *, decay: float = ULMFIT_DECAY) -> list:
    """``[lr / decay^(G-1), ..., lr / decay, lr]``: ULMFiT's rate per group, bottom to top (each a
    float, or a schedule when ``learning_rate`` is one)."""
    _checks.positive_int("num_groups", num_groups)
    if not (isinstance(decay, (int, float)) and decay >= 1):
        raise ValueError(f"decay must be a number >= 1; got {decay!r}.")
    factors = [decay ** -(num_groups - 1 - g) for g in range(num_groups)]
    if callable(learning_rate):
        return [(lambda f: lambda c: f * learning_rate(c))(f) for f in factors]
    return [learning_rate * f for f in factors]


class UnfreezeState(NamedTuple):
    count: jax.Array
    inner: Any


def unfreeze_at(inner: optax.GradientTransformation, step: int) -> optax.GradientTransformation:
    """``inner``, switched on at update ``step`` (0-based): before it the update is exactly 0 and
    ``inner``'s state is left as initialised; from it on, ``inner`` runs as if its first update were
    that one (a fresh Adam, bias correction included)."""
    _checks.nonnegative_int("step", step)

    def init(params):
        return UnfreezeState(jnp.zeros([], jnp.int32), inner.init(params))

    def update(updates, state, params=None):
        active = state.count >= step
        new_updates, new_inner = inner.update(updates, state.inner, params)
        new_updates = jax.tree.map(lambda u: jnp.where(active, u, jnp.zeros_like(u)), new_updates)
        new_inner = jax.tree.map(lambda n, o: jnp.where(active, n, o), new_inner, state.inner)
        return new_updates, UnfreezeState(optax.safe_int32_increment(state.count), new_inner)

    return optax.GradientTransformation(init, update)


def ulmfit_optimizer(
    make_optimizer: Callable[[float | optax.Schedule], optax.GradientTransformation],
    labels: Any,
    *,
    learning_rate: float | optax.Schedule,
    decay: float = ULMFIT_DECAY,
    steps_per_stage: int | None = None,
    num_groups: int | None = None,
) -> optax.GradientTransformation:
    """Discriminative learning rates, with gradual unfreezing when ``steps_per_stage`` is given.

    Args:
      make_optimizer: ``lr -> optax transformation`` (e.g. ``lambda lr: adamw(lr)``), built once
        per group.
      labels: group indices per leaf, 0 = bottom (:func:`layer_groups`).
      learning_rate: the top group's rate, a float or a schedule of the global step (e.g.
        :func:`seqjax.train.schedules.slanted_triangular`).
      decay: the ratio between neighbouring groups (ULMFiT: 2.6).
      steps_per_stage: unfreeze one more group (top-down) every this many updates; group ``g``
        starts at update ``(G-1-g) * steps_per_stage``. None: all groups train from the start.
      num_groups: ``G`` (default: the largest label + 1).
    """
    present = sorted({int(x) for x in jax.tree.leaves(labels)})
    if not present or present[0] < 0:
        raise ValueError(f"labels must be group indices >= 0 (layer_groups); got {present[:8]}.")
    g_count = present[-1] + 1 if num_groups is None else num_groups
    _checks.positive_int("num_groups", g_count)
    if present[-1] >= g_count:
        raise ValueError(f"labels go up to {present[-1]} but num_groups = {g_count}.")
    if steps_per_stage is not None:
        _checks.positive_int("steps_per_stage", steps_per_stage)
    lrs = discriminative_lrs(learning_rate, g_count, decay=decay)
    transforms = {}
    for g in present:
        start = 0 if steps_per_stage is None else (g_count - 1 - g) * steps_per_stage
        lr = lrs[g]
        if callable(lr) and start:
            lr = (lambda f, s: lambda c: f(c + s))(lr, start)  # the inner count starts at unfreezing
        tx = make_optimizer(lr)
        transforms[str(g)] = unfreeze_at(tx, start) if start else tx
    return multi_group(transforms, jax.tree.map(str, labels))


def unfrozen_groups(step: int, num_groups: int, steps_per_stage: int) -> list[int]:
    """The groups that train at update ``step`` under :func:`ulmfit_optimizer`'s gradual unfreezing."""
    return [g for g in range(num_groups) if step >= (num_groups - 1 - g) * steps_per_stage]
