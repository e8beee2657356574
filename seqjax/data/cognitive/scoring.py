"""Scoring a network's answers on choice tasks, the way Yang et al. 2019 score them.

A trial is **correct** when the network held fixation until the decision epoch (the argmax of its
outputs is class 0 at every step before it) and its **response** (the class with the largest mean
probability over the decision epoch's weighted steps, i.e. after the grace period) is the
trial's answer (``info["choice"]``; class 0 for a no-go answer).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.data.cognitive import go, choice_scores
    >>> trials = go(jax.random.key(0), 4)
    >>> perfect = 10.0 * jax.nn.one_hot(trials.labels, 9)        # logits of an ideal network
    >>> bool(choice_scores(perfect, trials)["correct"].all())
    True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.data.cognitive.trials import FIXATE, Trials


def choice_scores(logits: jax.Array, trials: Trials) -> dict:
    """``logits`` ``[b, t, c]`` -> ``{"response", "correct", "fixation_broken"}``, each ``[b]``."""
    logits = _checks.floating_array("logits", logits, ndim=3, layout="[batch, time, classes]")
    if logits.shape[:2] != trials.labels.shape or logits.shape[-1] != trials.targets.shape[-1]:
        raise ValueError(
            f"logits must be [batch, time, classes] = {(*trials.labels.shape, trials.targets.shape[-1])}; "
            f"got {tuple(logits.shape)}."
        )
    probs = jax.nn.softmax(logits.astype(jnp.float32), -1)
    scored = (trials.epochs["decision"] & (trials.weights > 0)).astype(jnp.float32)
    mean = (probs * scored[..., None]).sum(1) / jnp.maximum(scored.sum(1), 1.0)[:, None]
    response = jnp.argmax(mean, -1)
    before = ~trials.epochs["decision"]
    broken = jnp.any(before & (jnp.argmax(logits, -1) != FIXATE), axis=1)
    return {
        "response": response,
        "correct": (response == trials.info["choice"]) & ~broken,
        "fixation_broken": broken,
    }
