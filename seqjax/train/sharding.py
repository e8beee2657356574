"""Data and model parallelism with ``jax.sharding``: a device mesh, the batch split over its
``"data"`` axis, parameters replicated (data parallelism) or split (:mod:`seqjax.train.partitioning`).

Data parallelism, the 1-D case. With ``n`` devices and a batch of ``b`` examples (``b`` divisible
by ``n``), device ``j`` holds rows ``j*b/n .. (j+1)*b/n - 1``; parameters and optimiser state are
replicated on every device. The step is written once, for the whole batch: ``jax.jit`` partitions
it (GSPMD), each device computes the loss and gradient of its rows, and the compiler inserts the
all-reduce that turns per-device gradient sums into the gradient of the global mean. So the mean
loss and the update equal those of one device with the whole batch, up to float summation order::

    mesh = data_mesh()                                    # all devices, axis "data"
    params, opt_state = replicate((params, opt_state), mesh)
    step = make_train_step(loss_fn, optimizer, mesh=mesh)
    params, opt_state, metrics = step(params, opt_state, shard_batch(batch, mesh), key)

The 2-D mesh ``(data, model)``: :func:`mesh` arranges ``data * model`` devices in a grid with axes
``("data", "model")``; the batch is split over ``"data"`` (each row of the grid sees the same
examples), and a parameter's dimensions may be split over either axis by a ``PartitionSpec``
(:func:`seqjax.train.partitioning.param_specs`: FSDP over ``"data"``, tensor parallelism over
``"model"``). ``--mesh 4x2`` on the command line is :func:`parse_mesh`::

    m = mesh(parse_mesh("4x2"))                           # 8 devices: 4 data x 2 model
    specs = param_specs(params, "fsdp+tp", m)
    params = shard_tree(params, specs, m)
    opt_state = shard_tree(opt_state, opt_state_specs(opt_state, params, specs), m)
    step = make_train_step(loss_fn, optimizer, mesh=m, param_sharding=specs)

Testing on a CPU: ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` makes the host look like
4 devices, but only if set before ``jax`` is first imported (a fresh process).

Multi-host (several machines, e.g. a TPU pod slice or GPU nodes)
    1. On every host, before anything else touches JAX::

           jax.distributed.initialize()   # TPU/SLURM: auto-detected; else
           # jax.distributed.initialize(coordinator_address="host0:1234",
           #                            num_processes=N, process_id=i)

       After it, ``jax.devices()`` lists the devices of *all* hosts and ``jax.local_devices()``
       this host's; :func:`data_mesh` and :func:`mesh` use ``jax.devices()``, so the mesh spans
       all hosts. ``jax.devices()`` lists each host's devices together, and :func:`mesh` lays
       them out row-major, so with ``model`` dividing the local device count a model group stays
       inside one host (its all-reduces on the fast local links; only ``"data"`` crosses hosts).
    2. Every host runs the same program (SPMD) and loads *its own* part of the global batch:
       ``b / jax.process_count()`` rows, different on each host (e.g. a data position offset by
       ``jax.process_index()``). :func:`shard_batch` then assembles the global array with
       ``jax.make_array_from_process_local_data``; the global batch is the concatenation of the
       hosts' parts in process order.
    3. Random keys, parameters and the initial optimiser state must be identical on every host:
       derive them from the same seed (never from ``process_index``), or initialise on one host
       and broadcast (``jax.experimental.multihost_utils.broadcast_one_to_all``).
    4. Checkpoints: Orbax coordinates the hosts (every host calls ``save``; each writes its
       shards; process 0 finalises). Logging: only ``jax.process_index() == 0`` writes metrics.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
MODEL_AXIS = "model"
MESH_AXES = (DATA_AXIS, MODEL_AXIS)


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default ``jax.devices()``: on one host
    all its local devices; after ``jax.distributed.initialize`` those of every host)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must hold at least one device; got an empty sequence.")
    return Mesh(np.array(devices), (DATA_AXIS,))


def mesh(shape: tuple[int, int] | None = None, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 2-D mesh with axes ``("data", "model")`` of shape ``(data, model)`` over ``devices``.

    ``devices`` (default ``jax.devices()``) are laid out row-major: device ``i`` sits at
    ``(i // model, i % model)``, so the devices of one ``"model"`` group are neighbours in the
    list (on a TPU slice, the fast-interconnect neighbours; the model axis communicates most).
    ``shape=None``: every device on ``"data"``, ``model = 1`` (data parallelism).

    >>> import jax
    >>> from seqjax.train.sharding import mesh
    >>> m = mesh((len(jax.devices()), 1))
    >>> m.axis_names, m.devices.shape == (len(jax.devices()), 1)
    (('data', 'model'), True)
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must hold at least one device; got an empty sequence.")
    if shape is None:
        shape = (len(devices), 1)
    shape = tuple(shape)
    if len(shape) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 for n in shape):
        raise ValueError(f"shape must be two positive ints (data, model); got {shape!r}.")
    data, model = (int(n) for n in shape)
    if data * model != len(devices):
        raise ValueError(
            f"shape {data}x{model} needs {data * model} devices; got {len(devices)} devices. The product "
            f"data * model must equal the device count (e.g. {len(devices)}x1 for data parallelism)."
        )
    return Mesh(np.array(devices, dtype=object).reshape(data, model), MESH_AXES)


def parse_mesh(text: str | None, device_count: int | None = None) -> tuple[int, int]:
    """``"4x2"`` -> ``(4, 2)``: the ``--mesh`` flag, ``DATAxMODEL``.

    ``None``, ``""`` or ``"auto"``: all ``device_count`` devices (default ``jax.device_count()``)
    on ``"data"``, ``(device_count, 1)``. One side may be ``-1`` (``"-1x2"``), inferred from the
    device count. ``ValueError`` if the text is not ``AxB`` or the product is not the device count.

    >>> from seqjax.train.sharding import parse_mesh
    >>> parse_mesh("4x2", 8), parse_mesh(None, 8), parse_mesh("-1x4", 8)
    ((4, 2), (8, 1), (2, 4))
    """
    count = jax.device_count() if device_count is None else device_count
    if text is None or str(text).strip().lower() in ("", "auto"):
        return (count, 1)
    parts = str(text).strip().lower().split("x")
    try:
        if len(parts) != 2:
            raise ValueError
        data, model = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"mesh must be DATAxMODEL, e.g. '4x2' or '8x1'; got {text!r}.") from None
    if (data, model).count(-1) == 2 or any(n == 0 or n < -1 for n in (data, model)):
        raise ValueError(f"mesh sides must be positive (one may be -1: inferred); got {text!r}.")
    if data == -1 or model == -1:
        known = model if data == -1 else data
        if count % known:
            raise ValueError(f"mesh {text!r}: {known} does not divide the {count} devices.")
        data, model = (count // known, known) if data == -1 else (known, count // known)
    if data * model != count:
        raise ValueError(
            f"mesh {text!r} has {data * model} devices (data * model); there are {count} devices. "
            f"Use a shape whose product is {count}, e.g. '{count}x1'."
        )
    return (data, model)


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that puts a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding that splits the leading (batch) axis over ``mesh``'s ``"data"`` axis (and
    replicates it over ``"model"``, if the mesh has one)."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Copy every leaf of ``tree`` (parameters, optimiser state, keys) to every device."""
    return jax.device_put(tree, replicated(mesh))


def shard_batch(batch: Any, mesh: Mesh) -> Any:
    """Split every leaf of ``batch`` along its leading axis over the mesh.

    One process: ``batch`` is the global batch; its size must be divisible by the number of
    devices. Several processes: ``batch`` is this host's part, divisible by its local device
    count in the mesh (see the module docstring).
    """
    sharding = batch_sharding(mesh)
    multi = jax.process_count() > 1
    data = mesh.shape[DATA_AXIS]
    # This process holds the rows of its own data groups: one per local device divided by the
    # devices that share a row (the rest of the mesh's axes).
    n = max(1, len(mesh.local_devices) * data // mesh.size) if multi else data
    for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
        shape = np.shape(leaf)
        if not shape or shape[0] % n:
            raise ValueError(
                f"batch leaf {jax.tree_util.keystr(path) or '(root)'} has shape {tuple(shape)}: its "
                f"leading (batch) axis must be divisible by the {n} devices of the mesh's \"data\" "
                f"axis to be split evenly. Use a batch size that is a multiple of {n}."
            )
    if multi:
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)
    return jax.device_put(batch, sharding)


def shard_tree(tree: Any, specs: Any, mesh: Mesh) -> Any:
    """Put every leaf of ``tree`` on ``mesh`` with the ``PartitionSpec`` at the same place in
    ``specs`` (a pytree of the same structure, e.g. from
    :func:`seqjax.train.partitioning.param_specs`); a leaf's dimension named by a mesh axis is
    split over that axis, the others are copied."""
    return jax.device_put(tree, named_shardings(specs, mesh))


def named_shardings(specs: Any, mesh: Mesh) -> Any:
    """The pytree of ``NamedSharding(mesh, spec)`` for a pytree of ``PartitionSpec`` (leaves that
    already are shardings are kept)."""
    return jax.tree.map(
        lambda s: s if isinstance(s, jax.sharding.Sharding) else NamedSharding(mesh, s),
        specs,
        is_leaf=lambda x: isinstance(x, (PartitionSpec, jax.sharding.Sharding)),
    )
