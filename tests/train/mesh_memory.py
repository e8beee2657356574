"""Per-device bytes of parameters / AdamW state by strategy and mesh (8x1 | 4x2 | 2x4 | 1x8), in MiB.

GPT-2 small (124M) is computed from shapes (``nnx.eval_shape``: nothing allocated); a 4.3M GPT is
placed on 8 simulated devices and measured from ``addressable_shards`` (asserted equal to the
computed bytes on every device). Not a test (a script the suite imports but does not run); the
numbers in the README come from it::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu python tests/train/mesh_memory.py
"""

import jax
import optax
from flax import nnx
from jax.sharding import AbstractMesh

from seqjax.nn import GPT2Config, GPTLanguageModel
from seqjax.primitives import count_scalars
from seqjax.train.partitioning import device_bytes, opt_state_specs, param_specs, per_device_bytes
from seqjax.train.sharding import mesh, shard_tree
from seqjax.train.step import split_params

MESHES = [(8, 1), (4, 2), (2, 4), (1, 8)]
STRATEGIES = ("dp", "fsdp", "tp", "fsdp+tp")
MIB = 2**20


def computed(optimizer) -> None:
    """GPT-2 small (odd and padded vocabulary), from shapes only."""
    for vocab in (50257, 50304):
        params = split_params(nnx.eval_shape(
            lambda: GPTLanguageModel(GPT2Config.small(vocab_size=vocab), rngs=nnx.Rngs(0))))[1]
        state = jax.eval_shape(optimizer.init, params)
        for strategy in STRATEGIES:
            row = []
            for shape in MESHES:
                grid = AbstractMesh(shape, ("data", "model"))
                specs = param_specs(params, strategy, grid)
                row.append((per_device_bytes(params, specs, grid) / MIB,
                            per_device_bytes(state, opt_state_specs(state, params, specs), grid) / MIB))
            print(f"gpt2-small V={vocab}", strategy, " | ".join(f"{a:.1f} / {b:.1f}" for a, b in row))


def measured(optimizer) -> None:
    """A 4.3M GPT placed on the devices; its shards' bytes equal the computed ones on every device."""
    config = GPT2Config(vocab_size=4096, n_positions=256, n_embd=256, n_layer=4, n_head=8)
    params = split_params(GPTLanguageModel(config, rngs=nnx.Rngs(0)))[1]
    print("real params", count_scalars(params))
    for strategy in STRATEGIES:
        row = []
        for shape in MESHES:
            grid = mesh(shape)
            specs = param_specs(params, strategy, grid)
            placed = shard_tree(params, specs, grid)
            state = shard_tree(optimizer.init(params), opt_state_specs(optimizer.init(params), params, specs), grid)
            per_device = {device_bytes(placed, d) for d in grid.devices.flat}
            assert per_device == {per_device_bytes(params, specs, grid)}, per_device
            first = grid.devices.flat[0]
            row.append((device_bytes(placed, first) / MIB, device_bytes(state, first) / MIB))
        print("real", strategy, " | ".join(f"{a:.2f} / {b:.2f}" for a, b in row))


if __name__ == "__main__":
    adamw = optax.adamw(1e-4)
    computed(adamw)
    measured(adamw)
