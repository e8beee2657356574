"""Data parallelism with ``jax.sharding``: one 1-D mesh, the batch split over it, the rest replicated.

With ``n`` devices and a batch of ``b`` examples (``b`` divisible by ``n``), device ``j`` holds rows
``j*b/n .. (j+1)*b/n - 1``; parameters and optimiser state are replicated on every device. The
step is written once, for the whole batch: ``jax.jit`` partitions it (GSPMD), each device computes
the loss and gradient of its rows, and the compiler inserts the all-reduce that turns per-device
gradient sums into the gradient of the global mean. So the mean loss and the update equal those of
one device with the whole batch, up to float summation order::

    mesh = data_mesh()                                    # all devices, axis "data"
    params, opt_state = replicate((params, opt_state), mesh)
    step = make_train_step(loss_fn, optimizer, mesh=mesh)
    params, opt_state, metrics = step(params, opt_state, shard_batch(batch, mesh), key)

Testing on a CPU: ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` makes the host look like
4 devices, but only if set before ``jax`` is first imported (a fresh process).

Multi-host (several machines, e.g. a TPU pod slice or GPU nodes)
    1. On every host, before anything else touches JAX::

           jax.distributed.initialize()   # TPU/SLURM: auto-detected; else
           # jax.distributed.initialize(coordinator_address="host0:1234",
           #                            num_processes=N, process_id=i)

       After it, ``jax.devices()`` lists the devices of *all* hosts and ``jax.local_devices()``
       this host's; :func:`data_mesh` uses ``jax.devices()``, so the mesh spans all hosts.
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


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default ``jax.devices()``: on one host
    all its local devices; after ``jax.distributed.initialize`` those of every host)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must hold at least one device; got an empty sequence.")
    return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that puts a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding that splits the leading (batch) axis over ``mesh``'s ``"data"`` axis."""
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
    n = len(mesh.local_devices) if multi else mesh.size
    for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
        shape = np.shape(leaf)
        if not shape or shape[0] % n:
            raise ValueError(
                f"batch leaf {jax.tree_util.keystr(path) or '(root)'} has shape {tuple(shape)}: its "
                f"leading (batch) axis must be divisible by the {n} devices of the mesh to be split "
                f"evenly. Use a batch size that is a multiple of {n}."
            )
    if multi:
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)
    return jax.device_put(batch, sharding)
