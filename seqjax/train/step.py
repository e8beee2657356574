"""The train step: one pure, jit-compiled optimiser update of a parameter pytree.

With parameters ``theta``, optimiser state ``s`` and a batch ``B`` split into ``k`` equal
micro-batches ``B_1 .. B_k`` (``accumulate=k``; ``k = 1`` is the plain step)::

    g          = (1/k) * sum_i grad_theta L(theta, B_i, key_i)
    u, s'      = optimizer.update(g, s, theta)          (clipping, schedules, decay live here)
    theta'     = theta + u

With a per-example mean loss and equal micro-batches, ``g`` is exactly the gradient of the mean
loss over all of ``B``: accumulation changes memory, not the update (up to float summation
order). For a loss averaged over *valid tokens* (a padding mask), micro-batches with different
token counts are weighted equally instead of per token; keep token counts balanced, or return a
``sum`` loss divided by a count fixed for the whole batch.

The functional NNX pattern (``docs/DESIGN.md``, Conventions)::

    graphdef, params, rest = split_params(model)              # nnx.split(model, nnx.Param, ...)
    loss_fn = module_loss(graphdef, lambda m, batch, key: ..., rest)
    step = make_train_step(loss_fn, optimizer)
    params, opt_state, metrics = step(params, optimizer.init(params), batch, key)

A runnable one, with a plain pytree and two micro-batches::

    >>> import jax.numpy as jnp, optax
    >>> from seqjax.train.step import make_train_step
    >>> loss_fn = lambda p, batch, key: jnp.mean((batch[0] @ p["w"] - batch[1]) ** 2)
    >>> opt = optax.sgd(0.1)
    >>> step = make_train_step(loss_fn, opt, accumulate=2)
    >>> params = {"w": jnp.zeros(3)}
    >>> x = jnp.ones((4, 3))
    >>> params, opt_state, metrics = step(params, opt.init(params), (x, x.sum(1)))
    >>> float(metrics["loss"]), params["w"].tolist()        # loss 3^2; w += 0.1 * 2 * 3
    (9.0, [0.6000000238418579, 0.6000000238418579, 0.6000000238418579])

``loss_fn(params, batch, key) -> loss`` (or ``(loss, aux_dict)`` with ``has_aux=True``) is pure:
the model is rebuilt from ``params`` inside it with ``nnx.merge`` and nothing is mutated (a
mutation inside ``jax.grad`` raises ``TraceContextError``; ``docs/DESIGN.md``, Known traps).

Choices and why
    * **Accumulation with ``lax.scan`` inside one jitted step**, not ``optax.MultiSteps``: one call
      is one optimiser update, so the optimiser's counter, the schedules, the checkpoint step and
      the data position all count the same thing; no gradient-sized accumulator lives in the
      optimiser state (or in checkpoints); and the step is a pure function of the whole batch.
      The cost: the whole batch (inputs only, not activations) is on the device at once.
      ``optax.MultiSteps`` is the choice when micro-batches must stream from the host one by one.
    * Micro-batch ``i`` takes rows ``i, i + k, i + 2k, ...`` (a reshape to ``[b/k, k, ...]``, then a
      transpose): when the batch axis is sharded over devices in contiguous blocks, each
      micro-batch then takes rows from every device and stays sharded, with no communication.
    * **Mixed precision** (``compute_dtype=jnp.bfloat16``): float32 master parameters are cast to
      bfloat16 *inside* the differentiated function, so the forward pass runs in bfloat16 while
      ``jax.grad`` returns float32 gradients (the transpose of a cast is a cast back) and the update
      is applied to float32 parameters. Floating inputs in the batch are cast too
      (``cast_batch``); integer labels are left alone. bfloat16 has float32's exponent range, so no
      loss scaling is needed; float16 would need dynamic loss scaling and is refused.
    * **Rematerialisation** (``remat=True``): the loss is wrapped in ``jax.checkpoint``, so the
      forward pass is recomputed during the backward pass instead of its activations being stored
      between them. Around the *whole* loss this mostly costs one more forward pass: the backward
      pass of the recomputed loss still holds all its activations at once (measured on CPU, an
      LSTM with b=64, t=200, h=256: 164 MiB of XLA temporaries without, 189 MiB with). Memory is
      saved by checkpoints *inside* the model (``jax.checkpoint`` around each layer or each chunk
      of a scan), which only the model can place. ``remat_policy`` (``jax.checkpoint_policies.*``)
      chooses which intermediates of the loss are kept instead of recomputed.
    * **Donation** (``donate=True``): the parameters and optimiser state passed in are donated
      to XLA (``donate_argnums=(0, 1)``), which writes the new ones into the same buffers, so peak
      memory holds one copy of them, not two. The arrays passed in are invalid afterwards: always
      rebind ``params, opt_state = step(params, opt_state, ...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqjax import _checks
from seqjax.train.sharding import DATA_AXIS, batch_sharding, named_shardings, replicated

if TYPE_CHECKING:  # flax is imported where it is used: `import seqjax.train` stays light
    from flax import nnx

LossFn = Callable[[Any, Any, Any], Any]
TrainStep = Callable[..., tuple[Any, Any, dict[str, jax.Array]]]


def split_params(model: nnx.Module) -> tuple[Any, nnx.State, nnx.State]:
    """``nnx.split(model, nnx.Param, ...)``: the graph, the trainable parameters, everything else."""
    from flax import nnx

    return nnx.split(model, nnx.Param, ...)


def module_loss(graphdef: Any, loss_of_model: Callable[[nnx.Module, Any, Any], Any], *rest: nnx.State) -> LossFn:
    """A pure ``loss_fn(params, batch, key)`` that rebuilds the module and calls
    ``loss_of_model(model, batch, key)``; ``rest`` are the non-parameter states from
    :func:`split_params` (held fixed)."""

    from flax import nnx

    def loss_fn(params, batch, key):
        return loss_of_model(nnx.merge(graphdef, params, *rest), batch, key)

    return loss_fn


def cast_floating(tree: Any, dtype: Any) -> Any:
    """Cast every floating-point leaf of ``tree`` to ``dtype``; other leaves unchanged."""
    def cast(x):
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating) and x.dtype != dtype:
            return x.astype(dtype)
        return x

    return jax.tree.map(cast, tree)


def make_train_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    accumulate: int = 1,
    has_aux: bool = False,
    compute_dtype: Any = None,
    cast_batch: bool = True,
    remat: bool = False,
    remat_policy: Callable | None = None,
    donate: bool = True,
    mesh: jax.sharding.Mesh | None = None,
    param_sharding: Any = None,
    opt_sharding: Any = None,
) -> TrainStep:
    """A jitted ``step(params, opt_state, batch, key=None) -> (params, opt_state, metrics)``.

    Args:
      loss_fn: pure ``(params, batch, key) -> scalar loss`` (or ``(loss, aux)`` with ``has_aux``).
      optimizer: any optax transformation (chain clipping before it: :mod:`seqjax.train.clipping`).
      accumulate: ``k`` micro-batches per update; every batch leaf's leading axis must divide by
        ``k``. Each micro-batch gets ``jax.random.split(key, k)[i]``.
      has_aux: ``loss_fn`` returns ``(loss, aux)``; ``aux`` (a dict of scalars) joins ``metrics``,
        averaged over micro-batches.
      compute_dtype: e.g. ``jnp.bfloat16`` for mixed precision (module docstring); ``None``: as is.
      cast_batch: with ``compute_dtype``, also cast the batch's floating leaves.
      remat: wrap the loss in ``jax.checkpoint`` (with ``remat_policy``).
      donate: donate ``params`` and ``opt_state`` buffers (rebind them to the outputs).
      mesh: a device mesh with a ``"data"`` axis (:func:`seqjax.train.sharding.data_mesh`,
        or the 2-D :func:`seqjax.train.sharding.mesh`): the batch is sharded along ``"data"``;
        parameters and optimiser state are replicated unless ``param_sharding`` says otherwise;
        metrics are replicated.
      param_sharding: with ``mesh``: a pytree of ``PartitionSpec`` (or ``NamedSharding``) shaped
        like ``params`` (:func:`seqjax.train.partitioning.param_specs`), or a strategy name
        (``"dp"``, ``"fsdp"``, ``"tp"``, ``"fsdp+tp"``) resolved on the first call's ``params``.
        The parameters passed in must already be placed so (``shard_tree``); the new ones come
        back so.
      opt_sharding: the same for ``opt_state``; default: derived at the first call from the
        parameters' specs (:func:`seqjax.train.partitioning.opt_state_specs`).
        With either, the step is compiled at the first call (its ``.jitted`` exists from then on),
        and arguments placed otherwise are refused by ``jax.jit`` ("Sharding passed to jit does
        not match the sharding on the respective arg").

    ``metrics``: ``loss`` (mean over micro-batches, float32), ``grad_norm`` (global norm of the
    averaged gradient, before any clipping in ``optimizer``) and the ``aux`` entries.
    """
    _checks.positive_int("accumulate", accumulate)
    value_and_grad = jax.value_and_grad(
        _as_float32_loss(loss_fn, has_aux, compute_dtype, cast_batch, remat, remat_policy), has_aux=True
    )

    def step(params, opt_state, batch, key):
        loss, aux, grads = _accumulated(value_and_grad, params, batch, key, accumulate)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}
        return params, opt_state, metrics

    donate_argnums = (0, 1) if donate else ()
    if param_sharding is None and opt_sharding is None:
        jitted = jax.jit(step, donate_argnums=donate_argnums, **_shardings(mesh, train=True))

        def train_step(params, opt_state, batch, key=None):
            return jitted(params, opt_state, batch, key)

        train_step.jitted = jitted  # for .lower(...) / memory_analysis() in benchmarks
        return train_step

    # Sharded parameters: the shardings need the trees' structure, known at the first call.
    if mesh is None:
        raise ValueError("param_sharding / opt_sharding need a mesh; got mesh=None.")

    def sharded_step(params, opt_state, batch, key=None):
        if not hasattr(sharded_step, "jitted"):
            ps, os_ = _param_and_opt_shardings(mesh, params, opt_state, param_sharding, opt_sharding)
            rep, data = replicated(mesh), batch_sharding(mesh)
            sharded_step.param_sharding, sharded_step.opt_sharding = ps, os_
            sharded_step.jitted = jax.jit(
                step, donate_argnums=donate_argnums,
                in_shardings=(ps, os_, data, rep), out_shardings=(ps, os_, rep),
            )
        return sharded_step.jitted(params, opt_state, batch, key)

    return sharded_step


def make_eval_step(
    loss_fn: LossFn,
    *,
    has_aux: bool = False,
    compute_dtype: Any = None,
    cast_batch: bool = True,
    mesh: jax.sharding.Mesh | None = None,
    param_sharding: Any = None,
) -> Callable[..., dict[str, jax.Array]]:
    """A jitted ``eval_step(params, batch, key=None) -> {"loss": ..., **aux}`` (no gradient, no
    donation; pass ``key=None`` so that dropout is off if the loss reads the key that way).
    ``mesh`` and ``param_sharding`` as in :func:`make_train_step`; with ``param_sharding``, a batch
    whose leading axis the ``"data"`` axis does not divide (an evaluation set's last batch) is
    copied to every device instead of split."""
    loss = _as_float32_loss(loss_fn, has_aux, compute_dtype, cast_batch, False, None)

    def step(params, batch, key):
        value, aux = loss(params, batch, key)
        return {"loss": value, **aux}

    if param_sharding is None:
        jitted = jax.jit(step, **_shardings(mesh, train=False))

        def eval_step(params, batch, key=None):
            return jitted(params, batch, key)

        return eval_step
    if mesh is None:
        raise ValueError("param_sharding needs a mesh; got mesh=None.")

    def sharded_eval(params, batch, key=None):
        if not hasattr(sharded_eval, "jitted"):
            ps, _ = _param_and_opt_shardings(mesh, params, None, param_sharding, None)
            rep = replicated(mesh)
            # The batch keeps the sharding it is given (None: unspecified), see below.
            sharded_eval.jitted = jax.jit(step, in_shardings=(ps, None, rep), out_shardings=rep)
        return sharded_eval.jitted(params, _place_eval_batch(batch, mesh), key)

    return sharded_eval


def _as_float32_loss(loss_fn, has_aux, compute_dtype, cast_batch, remat, remat_policy):
    """``(params, batch, key) -> (float32 loss, aux)``, with the mixed-precision casts inside."""
    if compute_dtype is not None:
        compute_dtype = jnp.dtype(compute_dtype)
        if compute_dtype == jnp.float16:
            raise ValueError(
                "compute_dtype=float16 needs dynamic loss scaling, which this step does not do; "
                "use jnp.bfloat16 (float32's exponent range, no scaling needed)."
            )
        if not jnp.issubdtype(compute_dtype, jnp.floating):
            raise ValueError(f"compute_dtype must be a floating dtype; got {compute_dtype}.")

    def wrapped(params, batch, key):
        if compute_dtype is not None:
            params = cast_floating(params, compute_dtype)
            if cast_batch:
                batch = cast_floating(batch, compute_dtype)
        out = loss_fn(params, batch, key)
        loss, aux = out if has_aux else (out, {})
        loss = jnp.asarray(loss)
        if loss.shape != ():
            raise ValueError(
                f"loss_fn must return a scalar loss; got shape {tuple(loss.shape)}. Reduce it "
                "(mean over the batch) inside loss_fn."
            )
        if not isinstance(aux, dict):
            raise ValueError(f"with has_aux=True, loss_fn must return (loss, dict); got {type(aux).__name__}.")
        return loss.astype(jnp.float32), aux

    if remat:
        wrapped = jax.checkpoint(wrapped, policy=remat_policy)
    return wrapped


def _accumulated(value_and_grad, params, batch, key, k):
    """``(mean loss, mean aux, mean grad)`` over ``k`` micro-batches of ``batch``."""
    if k == 1:
        (loss, aux), grads = value_and_grad(params, batch, key)
        return loss, aux, grads
    micro = jax.tree.map(lambda x: _micro_batches(x, k), batch)
    keys = None if key is None else jax.random.split(key, k)

    def body(total, xs):
        mb, mk = xs
        (loss, aux), grads = value_and_grad(params, mb, mk)
        # Sum in float32 whatever the leaf dtype, then divide once at the end.
        return jax.tree.map(lambda t, v: t + v.astype(t.dtype), total, (loss, aux, grads)), None

    first = jax.tree.map(lambda x: x[0], (micro, keys))
    shapes = jax.eval_shape(lambda p, xs: _flat(value_and_grad(p, *xs)), params, first)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, _acc_dtype(s.dtype)), shapes)
    total, _ = jax.lax.scan(body, zeros, (micro, keys))
    loss, aux, grads = jax.tree.map(lambda t: t / k, total)
    # Gradients go back to the parameters' dtype (float32 master weights stay float32).
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)
    return loss, aux, grads


def _flat(out):
    (loss, aux), grads = out
    return loss, aux, grads


def _acc_dtype(dtype):
    return jnp.float32 if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32 else dtype


def _micro_batches(x, k):
    x = jnp.asarray(x)
    if x.ndim == 0 or x.shape[0] % k:
        raise ValueError(
            f"accumulate={k} needs every batch leaf to have a leading batch axis divisible by {k}; "
            f"got a leaf of shape {tuple(x.shape)}."
        )
    # [b, ...] -> [b/k, k, ...] -> [k, b/k, ...]: micro-batch i holds rows i, i+k, ... (see above).
    return jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1)


def _place_eval_batch(batch, mesh):
    """Split the batch over ``"data"`` when every leaf's leading axis divides by its size, else
    copy it to every device (the last, partial batch of an evaluation set)."""
    data = mesh.shape[DATA_AXIS]
    if all(np.ndim(x) and np.shape(x)[0] % data == 0 for x in jax.tree.leaves(batch)):
        return jax.device_put(batch, batch_sharding(mesh))
    return jax.device_put(batch, replicated(mesh))


def _param_and_opt_shardings(mesh, params, opt_state, param_sharding, opt_sharding):
    """``NamedSharding`` pytrees for ``params`` and ``opt_state`` (``None``: not needed)."""
    from seqjax.train.partitioning import opt_state_specs, param_specs

    if param_sharding is None:
        param_sharding = jax.tree.map(lambda _: jax.sharding.PartitionSpec(), params)
    elif isinstance(param_sharding, str):
        param_sharding = param_specs(params, param_sharding, mesh)
    ps = named_shardings(param_sharding, mesh)
    if opt_state is None:
        return ps, None
    if opt_sharding is None:
        specs = jax.tree.map(lambda s: s.spec, ps, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))
        opt_sharding = opt_state_specs(opt_state, params, specs)
    return ps, named_shardings(opt_sharding, mesh)


def _shardings(mesh, *, train: bool) -> dict:
    if mesh is None:
        return {}
    rep, data = replicated(mesh), batch_sharding(mesh)
    if train:  # (params, opt_state, batch, key) -> (params, opt_state, metrics)
        return dict(in_shardings=(rep, rep, data, rep), out_shardings=(rep, rep, rep))
    return dict(in_shardings=(rep, data, rep), out_shardings=rep)
