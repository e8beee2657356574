"""Per-device bytes of parameters / AdamW state by strategy and mesh (8x1 | 4x2 | 2x4 | 1x8), in MiB.

GPT-2 small (124M) is computed from shapes (``nnx.eval_shape``: nothing allocated); a 4.3M GPT is
placed on 8 simulated devices and measured from ``addressable_shards`` (asserted equal to the
computed bytes on every device). Not a test; the numbers in the README come from it::

    XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu python tests/train/mesh_memory.py
"""
import jax
from flax import nnx
from jax.sharding import AbstractMesh
from seqjax.nn import GPT2Config, GPTLanguageModel
from seqjax.train.partitioning import param_specs, per_device_bytes, device_bytes, opt_state_specs
from seqjax.train.sharding import mesh, shard_tree
from seqjax.train.step import split_params
import optax
meshes = [(8,1),(4,2),(2,4),(1,8)]
# GPT-2 small, computed from shapes (nothing allocated)
small = split_params(nnx.eval_shape(lambda: GPTLanguageModel(GPT2Config.small(), rngs=nnx.Rngs(0))))[1]
padded = split_params(nnx.eval_shape(lambda: GPTLanguageModel(GPT2Config.small(vocab_size=50304), rngs=nnx.Rngs(0))))[1]
opt = optax.adamw(1e-4)
for name, p in (("gpt2-small V=50257", small), ("gpt2-small V=50304", padded)):
  for st in ("dp","fsdp","tp","fsdp+tp"):
    row=[]
    for sh in meshes:
      m = AbstractMesh(sh, ("data","model")); s = param_specs(p, st, m)
      o = jax.eval_shape(opt.init, p)
      row.append((per_device_bytes(p, s, m)/2**20, per_device_bytes(o, opt_state_specs(o, p, s), m)/2**20))
    print(name, st, " | ".join(f"{a:.1f} / {b:.1f}" for a,b in row))
# a real one, measured
cfg = GPT2Config(vocab_size=4096, n_positions=256, n_embd=256, n_layer=4, n_head=8)
p = split_params(GPTLanguageModel(cfg, rngs=nnx.Rngs(0)))[1]
print("real params", sum(x.size for x in jax.tree.leaves(p)))
for st in ("dp","fsdp","tp","fsdp+tp"):
  row=[]
  for sh in meshes:
    m = mesh(sh); s = param_specs(p, st, m); placed = shard_tree(p, s, m)
    st_ = shard_tree(opt.init(p), opt_state_specs(opt.init(p), p, s), m)
    per = {device_bytes(placed, d) for d in m.devices.flat}
    assert per == {per_device_bytes(p, s, m)}, (per, per_device_bytes(p, s, m))
    row.append((device_bytes(placed, m.devices.flat[0])/2**20, device_bytes(st_, m.devices.flat[0])/2**20))
  print("real", st, " | ".join(f"{a:.2f} / {b:.2f}" for a,b in row))
