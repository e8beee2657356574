"""One interface over the fine-tuning methods, so that a comparison runs them through one loop.

:func:`prepare` turns a method name, the pretrained parameters and an optimiser into a
:class:`FineTuning`: the pytree the train step updates, the optimiser over it (the frozen part
with no update and no optimiser state), the loss wrapper, the function that gives the model's
effective parameters for evaluation or serving, and the number of trainable scalars::

    plan = prepare("lora", params, optax.adam(1e-3), key=key, lora_targets=["*/w_q", "*/w_v"], r=4)
    step = make_train_step(plan.wrap_loss(loss_fn), plan.optimizer)
    state, opt_state = plan.train_params, plan.optimizer.init(plan.train_params)
    ...
    eval_params = plan.effective(state)

Methods (``head``: the patterns of the new task head, trained by every method):

* ``"full"`` -- every parameter trains.
* ``"probe"`` -- feature extraction: only the head trains (a frozen encoder and a linear probe).
* ``"bitfit"`` -- biases and the head (:func:`~seqjax.train.finetune.freezing.bitfit_mask`).
* ``"lora"`` -- LoRA factors on ``lora_targets`` and the head; the base frozen
  (:mod:`~seqjax.train.finetune.lora`).
* ``"adapters"`` -- a tree that already holds adapter parameters (inserted with
  :func:`~seqjax.train.finetune.adapters.insert_adapters`; the model must apply them): adapters,
  norms and the head train.

Example::

    >>> import jax, jax.numpy as jnp, optax
    >>> from seqjax.train.finetune.methods import prepare
    >>> params = {"encoder": {"w_q": jnp.ones((4, 4)), "b_q": jnp.zeros(4)}, "classifier": {"w": jnp.ones((4, 2))}}
    >>> [prepare(m, params, optax.sgd(0.1), key=jax.random.key(0), lora_targets="*/w_q", r=1).num_trainable
    ...  for m in ("full", "probe", "bitfit", "lora")]
    [28, 8, 12, 16]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import optax

from seqjax.primitives import count_scalars
from seqjax.train.finetune.adapters import adapter_trainable_mask
from seqjax.train.finetune.freezing import bitfit_mask, count_trainable, freeze, trainable_mask
from seqjax.train.finetune.lora import init_lora, merge_lora
from seqjax.train.finetune.patterns import match_mask

METHODS = ("full", "probe", "bitfit", "lora", "adapters")


@dataclasses.dataclass(frozen=True)
class FineTuning:
    """A prepared method (module docstring). ``wrap_loss(loss_fn)`` maps a loss of the model's
    parameters to a loss of ``train_params``; ``effective(train_params)`` gives the model's
    parameters (LoRA merged)."""

    method: str
    train_params: Any
    optimizer: optax.GradientTransformation
    wrap_loss: Callable[[Callable], Callable]
    effective: Callable[[Any], Any]
    num_trainable: int


def prepare(
    method: str, params: Any, optimizer: optax.GradientTransformation, *, head: Any = "classifier/*",
    key: jax.Array | None = None, lora_targets: Any = ("*/self_attn/w_q", "*/self_attn/w_v"), r: int = 8,
    alpha: float | None = None, rslora: bool = False,
) -> FineTuning:
    """Prepare ``method`` (one of :data:`METHODS`) on ``params``; ``key`` draws the LoRA factors."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    same = lambda loss_fn: loss_fn
    ident = lambda p: p
    if method == "full":
        return FineTuning(method, params, optimizer, same, ident, count_scalars(params))
    if method == "lora":
        if key is None:
            raise ValueError("method 'lora' needs key= (draws the A factors).")
        lora = init_lora(key, params, lora_targets, r, alpha, rslora=rslora)
        head_mask = match_mask(params, head, name="head")
        state = {"base": params, "lora": lora}
        labels = {"base": jax.tree.map(lambda m: "head" if m else "frozen", head_mask),
                  "lora": jax.tree.map(lambda _: "lora", lora)}
        from seqjax.train.optim import multi_group

        tx = multi_group({"lora": optimizer, "head": optimizer, "frozen": None}, labels)

        def merged(state):
            return merge_lora(state["base"], state["lora"])

        def wrap(loss_fn):
            def loss(state, batch, key):
                # the frozen base gets no gradient; the head keeps its own
                base = jax.tree.map(lambda m, x: x if m else jax.lax.stop_gradient(x), head_mask, state["base"])
                return loss_fn(merge_lora(base, state["lora"]), batch, key)
            return loss

        return FineTuning(method, state, tx, wrap, merged, lora.num_params() + count_trainable(params, head_mask))
    if method == "probe":
        mask = trainable_mask(params, trainable=head)
    elif method == "bitfit":
        mask = bitfit_mask(params, also=head)
    else:
        mask = adapter_trainable_mask(params, also=head)
        if not any("adapter" in p for p in _paths_where(params, mask)):
            raise ValueError("method 'adapters' needs a tree holding adapter parameters (insert_adapters).")

    def wrap(loss_fn):
        def loss(p, batch, key):
            p = jax.tree.map(lambda m, x: x if m else jax.lax.stop_gradient(x), mask, p)
            return loss_fn(p, batch, key)
        return loss

    return FineTuning(method, params, freeze(optimizer, mask=mask), wrap, ident, count_trainable(params, mask))


def _paths_where(params, mask):
    from seqjax.train.finetune.patterns import leaf_paths

    return [p for p, m in zip(leaf_paths(params), jax.tree.leaves(mask)) if m]
