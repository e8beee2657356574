"""Train a tiny GPT on 1 device and on 2-D meshes; print one JSON line (run by test_mesh_sharding.py).

Run in a fresh process with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the flag is
read when JAX is first imported)::

    python tests/train/mesh_train.py '[["8x1", "dp"], ["4x2", "fsdp+tp"]]' '[["2x4", "tp"]]'

The first list is trained (and compared with 1 device by the test), the second only placed.

For each ``(mesh, strategy)`` it records the loss curve, the trained parameters, the specs and
shard shapes of the parameters and of Adam's ``mu``/``nu``, and the bytes of parameters on device 0
(measured from ``addressable_shards`` and computed from the specs).
"""

import json
import sys

import jax
import numpy as np
import optax
from flax import nnx

from seqjax.nn import GPT2Config, GPTLanguageModel
from seqjax.train import cross_entropy
from seqjax.train.partitioning import device_bytes, opt_state_specs, param_specs, per_device_bytes
from seqjax.train.optim import path_str
from seqjax.train.sharding import mesh, parse_mesh, shard_batch, shard_tree
from seqjax.train.step import make_eval_step, make_train_step, module_loss, split_params

STEPS = 4
BATCH, SEQ, VOCAB = 8, 8, 64
CONFIG = GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=32, n_layer=1, n_head=4,
                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def batch_at(i):
    """Counting sequences ``s, s+1, ...`` (mod V) from random starts: learnable, so the loss falls."""
    starts = np.random.default_rng(i).integers(0, VOCAB, size=(BATCH, 1))
    ids = ((starts + np.arange(SEQ + 1)) % VOCAB).astype(np.int32)
    return {"x": ids[:, :-1], "y": ids[:, 1:]}


def lm_loss(model, batch, key):
    return cross_entropy(model(batch["x"]), batch["y"])


def run(devices, shape, strategy):
    model = GPTLanguageModel(CONFIG, rngs=nnx.Rngs(0))
    graphdef, params, rest = split_params(model)
    opt = optax.adam(1e-2)
    m = mesh(shape, devices)
    specs = param_specs(params, strategy, m)
    params = shard_tree(params, specs, m)
    opt_state = opt.init(params)
    o_specs = opt_state_specs(opt_state, params, specs)
    opt_state = shard_tree(opt_state, o_specs, m)
    step = make_train_step(module_loss(graphdef, lm_loss, rest), opt, mesh=m, param_sharding=specs)
    bytes_measured = device_bytes(params, m.devices.flat[0])
    bytes_computed = per_device_bytes(params, specs, m)
    losses = []
    for i in range(STEPS):
        params, opt_state, metrics = step(params, opt_state, shard_batch(batch_at(i), m), jax.random.key(i))
        losses.append(float(metrics["loss"]))
    flat = jax.tree_util.tree_leaves_with_path(params)
    spec_leaves = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    mu = opt_state[0].mu
    return dict(
        losses=losses,
        params={path_str(p): np.asarray(x).ravel()[:64].tolist() for p, x in flat},
        specs={path_str(p): list(s) for (p, _), s in zip(flat, spec_leaves)},
        actual={path_str(p): list(x.sharding.spec) for p, x in flat},
        shard_shapes={path_str(p): list(x.addressable_shards[0].data.shape) for p, x in flat},
        mu_actual={path_str(p): list(x.sharding.spec) for p, x in jax.tree_util.tree_leaves_with_path(mu)},
        mu_shard_shapes={path_str(p): list(x.addressable_shards[0].data.shape)
                         for p, x in jax.tree_util.tree_leaves_with_path(mu)},
        count_replicated=bool(opt_state[0].count.sharding.is_fully_replicated),
        bytes_measured=bytes_measured,
        bytes_computed=bytes_computed,
        total_bytes=int(sum(x.nbytes for _, x in flat)),
    )


def placed_bytes(shape, strategy):
    """Measured bytes of parameters on the mesh's first device, after placing them (no training)."""
    params = split_params(GPTLanguageModel(CONFIG, rngs=nnx.Rngs(0)))[1]
    m = mesh(shape)
    specs = param_specs(params, strategy, m)
    placed = shard_tree(params, specs, m)
    return dict(measured=device_bytes(placed, m.devices.flat[0]), computed=per_device_bytes(params, specs, m),
                per_device=[device_bytes(placed, d) for d in m.devices.flat])


def eval_uneven(devices, shape, strategy, rows=6):
    """The eval step on ``rows`` examples, which the data axis need not divide (then copied)."""
    graphdef, params, rest = split_params(GPTLanguageModel(CONFIG, rngs=nnx.Rngs(0)))
    m = mesh(shape, devices)
    specs = param_specs(params, strategy, m)
    eval_step = make_eval_step(module_loss(graphdef, lm_loss, rest), mesh=m, param_sharding=specs)
    batch = {k: v[:rows] for k, v in batch_at(0).items()}
    return float(eval_step(shard_tree(params, specs, m), batch)["loss"])


def main(configs, memory=(), evals=()):
    assert len(jax.devices()) == 8, jax.devices()
    out = {"one": run(jax.devices()[:1], (1, 1), "dp")} if configs else {}
    for text, strategy in configs:
        out[f"{text}/{strategy}"] = run(jax.devices(), parse_mesh(text), strategy)
    if evals:
        out["eval"] = {"one": eval_uneven(jax.devices()[:1], (1, 1), "dp")}
        out["eval"] |= {f"{t}/{s}": eval_uneven(jax.devices(), parse_mesh(t), s) for t, s in evals}
    out["memory"] = {f"{text}/{strategy}": placed_bytes(parse_mesh(text), strategy) for text, strategy in memory}
    print(json.dumps(out))


if __name__ == "__main__":
    main(*(json.loads(a) for a in sys.argv[1:]))
