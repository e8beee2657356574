"""Partitioning rules: which dimension of each transformer parameter is split over which mesh axis.

One place maps a parameter's *path* (``"blocks/stack/layers/0/self_attn/w_q"``,
:func:`seqjax.train.optim.path_str`) to the *logical* names of its trailing dimensions
(:data:`LOGICAL_RULES`, regex -> names, as t5x/MaxText logical axis rules), and a *strategy* maps
logical names to the axes of the 2-D mesh ``("data", "model")`` (:data:`STRATEGIES`)::

    w_q, w_k, w_v [d, h d_k]    ("embed", "heads")    column-parallel (Megatron, Shoeybi et al. 2019)
    w_o           [h d_v, d]    ("heads", "embed")    row-parallel
    w_1           [d, d_ff]     ("embed", "mlp")      column-parallel
    w_2           [d_ff, d]     ("mlp", "embed")      row-parallel
    token table   [V, d]        ("vocab", "embed")    split over the vocabulary (GPT, BERT, seq2seq)
    lm_head       [d, V]        ("embed", "vocab")    (and the seq2seq output projection)
    position      [P, d]        (None, "embed")
    b_q/b_k/b_v [h d_k], b_1 [d_ff]: ("heads",), ("mlp",); b_o, b_2 [d]: ("embed",)
    norms, the relative-position table, classifier heads and anything unmatched: replicated

    strategy   "embed"   "heads" / "mlp" / "vocab"
    dp         -         -          everything replicated (data parallelism)
    fsdp       data      -          each matrix split over "data" along d (ZeRO-3 / FSDP)
    tp         -         model      tensor parallelism (Megatron)
    fsdp+tp    data      model      both: a [d, d_ff] matrix is split in data x model tiles

Tensor parallelism (Megatron): splitting ``w_q, w_k, w_v, w_1`` by columns and ``w_o, w_2`` by
rows over ``"model"`` lets each device compute its heads (its slice of ``d_ff``) with no
communication until the row-parallel product, whose partial sums GSPMD all-reduces once per
sublayer. FSDP (Rajbhandari et al. 2020's ZeRO stage 3): each matrix is stored split over the
*data* axis along its ``d`` side; ``jax.jit`` (GSPMD) all-gathers it where it is used and
reduce-scatters its gradient, so each device stores ``1/data`` of the parameters, gradients and
optimiser state. Neither changes the arithmetic: the loss curve equals one device's up to float
summation order (``tests/train/test_mesh_sharding.py`` checks it on 8 simulated devices).

A dimension that does not divide the size of its mesh axis stays **replicated** (GSPMD could pad
it, but an even split is what makes the memory predictable): GPT-2's vocabulary of 50257 is odd,
so under ``"tp"`` its token table is replicated; pad the vocabulary to a multiple of 64 (50304,
as nanoGPT does) to split it. :func:`replicated_dims` lists what was left whole and why.
Extra *leading* dimensions (the ``[L]`` axis of scanned layer stacks, ``scan_layers=True``) are
never split: rules name the trailing dimensions.

Initialisation happens whole, then :func:`seqjax.train.sharding.shard_tree` places the parts. A
"sharded init" (``jax.jit`` of the initialiser with the specs as output shardings) would not save
memory here: :func:`seqjax.primitives.init_weights` draws the matrices of one call (a layer's, the
embedding tables) from one flat random kernel, which the partitioner cannot split by matrix.
Measured on 8 simulated CPU devices for a 16.1 MiB GPT (d 256, 4 layers, V 4096) under
``"fsdp"``: each device's outputs are 2.05 MiB, but its temporaries 19.3 MiB. A model too big for
one accelerator is built on the host (inside ``jax.default_device(jax.devices("cpu")[0])``) and
then placed.

The optimiser state is sharded like the parameters: :func:`opt_state_specs` gives every leaf of
an optax state whose path ends with a parameter's path (Adam's ``mu``, ``nu``, momentum) and has
its shape that parameter's spec; counters and other scalars are replicated.

>>> import jax, jax.numpy as jnp
>>> from seqjax.train.partitioning import param_specs
>>> from jax.sharding import AbstractMesh
>>> params = {"ffn": {"w_1": jnp.zeros((8, 32)), "b_1": jnp.zeros(32)}, "norm_1": {"scale": jnp.ones(8)}}
>>> specs = param_specs(params, "tp", AbstractMesh((4, 2), ("data", "model")))
>>> specs["ffn"]["w_1"], specs["norm_1"]["scale"]
(P(None, 'model'), P())
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from seqjax.train.optim import path_str
from seqjax.train.sharding import DATA_AXIS, MODEL_AXIS

# (regex searched in the path, logical names of the trailing dimensions); the first match wins.
LOGICAL_RULES: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    (r"(^|/)(self_attn|cross_attn)/w_[qkv]$", ("embed", "heads")),
    (r"(^|/)(self_attn|cross_attn)/w_o$", ("heads", "embed")),
    (r"(^|/)(self_attn|cross_attn)/b_[qkv]$", ("heads",)),
    (r"(^|/)(self_attn|cross_attn)/b_o$", ("embed",)),
    (r"(^|/)ffn/w_1$", ("embed", "mlp")),
    (r"(^|/)ffn/b_1$", ("mlp",)),
    (r"(^|/)ffn/w_2$", ("mlp", "embed")),
    (r"(^|/)ffn/b_2$", ("embed",)),
    (r"(^|/)(token_embedding|embeddings/token|src_embedding|tgt_embedding)$", ("vocab", "embed")),
    (r"(^|/)(lm_head|output/w)$", ("embed", "vocab")),
    (r"(^|/)(mlm_head/bias|output/b)$", ("vocab",)),
    (r"(^|/)(position_embedding|embeddings/position|embeddings/token_type)$", (None, "embed")),
    (r"(^|/)(pooler|transform)/w$", ("embed", "mlp")),
    (r"(^|/)(pooler|transform)/b$", ("mlp",)),
    (r"norm[^/]*/(scale|bias)$", (None,)),
    (r"(^|/)relative_bias$", (None, None)),
)

# strategy -> {logical name: mesh axis}; a name not listed is replicated.
STRATEGIES: dict[str, dict[str, str]] = {
    "dp": {},
    "fsdp": {"embed": DATA_AXIS},
    "tp": {"heads": MODEL_AXIS, "mlp": MODEL_AXIS, "vocab": MODEL_AXIS},
    "fsdp+tp": {"embed": DATA_AXIS, "heads": MODEL_AXIS, "mlp": MODEL_AXIS, "vocab": MODEL_AXIS},
}


def logical_axes(path: str, ndim: int, rules: Sequence[tuple[str, tuple]] = LOGICAL_RULES) -> tuple[str | None, ...]:
    """The logical names of the ``ndim`` dimensions of the parameter at ``path``: leading
    dimensions beyond the rule's (a scanned stack's ``[L]``) and unmatched paths get ``None``."""
    for pattern, names in rules:
        if re.search(pattern, path):
            names = tuple(names)
            if len(names) > ndim:
                raise ValueError(
                    f"rule {pattern!r} names {len(names)} dimensions {names}, but the parameter {path!r} "
                    f"has {ndim}; expected a parameter of rank >= {len(names)}."
                )
            return (None,) * (ndim - len(names)) + names
    return (None,) * ndim


def param_specs(
    params: Any,
    strategy: str,
    mesh: Mesh,
    *,
    rules: Sequence[tuple[str, tuple]] = LOGICAL_RULES,
    axis_rules: Mapping[str, str] | None = None,
) -> Any:
    """A pytree of ``PartitionSpec`` shaped like ``params``: each parameter's dimensions split over
    the mesh axes of ``strategy`` (``"dp"``, ``"fsdp"``, ``"tp"``, ``"fsdp+tp"``; module
    docstring), a dimension whose size the axis size does not divide replicated.

    ``params``: arrays or ``jax.ShapeDtypeStruct`` (``jax.eval_shape`` of an init: no memory).
    ``rules`` / ``axis_rules``: other path rules, or another logical-name -> mesh-axis table
    (instead of ``STRATEGIES[strategy]``), for models with other names.
    """
    table = _strategy(strategy) if axis_rules is None else dict(axis_rules)
    for name, axis in table.items():
        if axis not in mesh.axis_names:
            raise ValueError(f"strategy maps {name!r} to the mesh axis {axis!r}; the mesh has axes {mesh.axis_names}.")

    def spec(path, leaf):
        return _spec(path_str(path), np.shape(leaf), table, mesh, rules)[0]

    return jax.tree_util.tree_map_with_path(spec, params)


def replicated_dims(params: Any, strategy: str, mesh: Mesh, *, rules: Sequence[tuple[str, tuple]] = LOGICAL_RULES) -> list[str]:
    """The dimensions that ``strategy`` would split but that stay whole because the mesh axis size
    does not divide them, as ``"path dim i (size n): axis 'model' of size k does not divide it"``."""
    table = _strategy(strategy)
    out = []
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        out += _spec(path_str(path), np.shape(leaf), table, mesh, rules)[1]
    return out


def opt_state_specs(opt_state: Any, params: Any, specs: Any) -> Any:
    """Specs for an optax state, shaped like it: a leaf whose path ends with a parameter's path and
    whose shape is that parameter's (``mu``, ``nu``, momentum traces mirror the parameters) gets
    that parameter's spec; every other leaf (step counts, scalars) is replicated.

    >>> import jax.numpy as jnp, optax
    >>> from jax.sharding import PartitionSpec as P
    >>> from seqjax.train.partitioning import opt_state_specs
    >>> params = {"w": jnp.zeros((4, 2))}
    >>> state = optax.adam(1e-3).init(params)
    >>> s = opt_state_specs(state, params, {"w": P("data", None)})
    >>> s[0].mu["w"], s[0].count
    (P('data', None), P())
    """
    by_path = {}
    flat_specs = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, PartitionSpec))
    flat_params = jax.tree_util.tree_leaves_with_path(params)
    if len(flat_specs) != len(flat_params):
        raise ValueError(
            f"specs must have one PartitionSpec per parameter; got {len(flat_specs)} specs for "
            f"{len(flat_params)} parameters."
        )
    for (path, leaf), spec in zip(flat_params, flat_specs):
        by_path[path_str(path)] = (tuple(np.shape(leaf)), spec)

    def spec_of(path, leaf):
        name, shape = path_str(path), tuple(np.shape(leaf))
        parts = name.split("/")
        for i in range(len(parts)):  # the longest parameter path that is a suffix
            hit = by_path.get("/".join(parts[i:]))
            if hit is not None and hit[0] == shape:
                return hit[1]
        return PartitionSpec()

    return jax.tree_util.tree_map_with_path(spec_of, opt_state)


def shard_shape(shape: Sequence[int], spec: PartitionSpec, mesh: Mesh) -> tuple[int, ...]:
    """The shape of one device's shard of an array of ``shape`` split by ``spec`` over ``mesh``."""
    out = list(shape)
    for i, axes in enumerate(tuple(spec)):
        for axis in (axes,) if isinstance(axes, str) else (axes or ()):
            out[i] = -(-out[i] // mesh.shape[axis])
    return tuple(out)


def per_device_bytes(tree: Any, specs: Any, mesh: Mesh) -> int:
    """Bytes one device stores of ``tree`` (arrays or ``jax.ShapeDtypeStruct``) split by ``specs``:
    ``sum(prod(shard_shape) * itemsize)``, computed from shapes alone (nothing is allocated).
    With even splits every device stores the same; compare with the measured
    :func:`device_bytes`."""
    leaves = jax.tree.leaves(tree)
    flat_specs = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, PartitionSpec))
    if len(leaves) != len(flat_specs):
        raise ValueError(f"specs must have one PartitionSpec per leaf; got {len(flat_specs)} for {len(leaves)} leaves.")
    return int(sum(
        math.prod(shard_shape(np.shape(x), s, mesh)) * np.dtype(x.dtype).itemsize for x, s in zip(leaves, flat_specs)
    ))


def device_bytes(tree: Any, device: jax.Device | None = None) -> int:
    """Measured: the bytes of the shards of ``tree``'s arrays that live on ``device`` (default
    the first device holding any of them), from ``addressable_shards``."""
    arrays = [x for x in jax.tree.leaves(tree) if isinstance(x, jax.Array)]
    if device is None:
        device = min((d for x in arrays for d in x.sharding.device_set), key=lambda d: d.id)
    return int(sum(s.data.nbytes for x in arrays for s in x.addressable_shards if s.device == device))


def _strategy(strategy: str) -> dict[str, str]:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {tuple(STRATEGIES)}; got {strategy!r}.")
    return STRATEGIES[strategy]


def _spec(path, shape, table, mesh, rules):
    names = logical_axes(path, len(shape), rules)
    axes, skipped = [], []
    for i, (name, size) in enumerate(zip(names, shape)):
        axis = table.get(name) if name is not None else None
        if axis is not None and axis in axes:  # one mesh axis splits at most one dimension
            axis = None
        if axis is not None and size % mesh.shape[axis]:
            skipped.append(
                f"{path} dim {i} (size {size}): axis {axis!r} of size {mesh.shape[axis]} does not divide it"
            )
            axis = None
        axes.append(axis)
    while axes and axes[-1] is None:
        axes.pop()
    return PartitionSpec(*axes), skipped
