"""seqjax.train.sharding: 4 (fake CPU) devices train exactly like 1 device.

``--xla_force_host_platform_device_count`` must be set before JAX is imported, and this pytest
process imported it long ago, so the 4-device run happens in a fresh subprocess.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from seqjax.train.sharding import batch_sharding, data_mesh, replicated, shard_batch

HERE = os.path.dirname(os.path.abspath(__file__))

SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {here!r})
    import jax, numpy as np, optax
    import train_tiny
    from seqjax.train import data_mesh, make_train_step, replicate, shard_batch

    assert len(jax.devices()) == 4, jax.devices()
    opt = optax.adam(1e-2)

    def run(devices):
        mesh = data_mesh(devices)
        # accumulate=2: the micro-batch split must keep the batch sharded too.
        step = make_train_step(train_tiny.loss_fn, opt, accumulate=2, mesh=mesh)
        params = replicate(train_tiny.init(0), mesh)
        opt_state = replicate(opt.init(params), mesh)
        losses = []
        for i in range(4):
            batch = shard_batch(train_tiny.batch_at(i), mesh)
            params, opt_state, metrics = step(params, opt_state, batch, jax.random.key(i))
            losses.append(float(metrics["loss"]))
        return dict(
            losses=losses,
            params=[np.asarray(x).tolist() for x in jax.tree.leaves(params)],
            replicated=all(x.sharding.is_fully_replicated for x in jax.tree.leaves((params, opt_state))),
            batch_devices=len(batch[0].sharding.device_set),
            shard_rows=batch[0].addressable_shards[0].data.shape[0],
        )

    try:
        shard_batch(train_tiny.batch_at(0, batch_size=6), data_mesh())
        error = None
    except ValueError as err:
        error = str(err)
    print(json.dumps(dict(one=run(jax.devices()[:1]), four=run(jax.devices()), error=error)))
    """
)


def test_four_devices_give_the_same_loss_curve_as_one():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(here=HERE)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    one, four = out["one"], out["four"]
    assert four["batch_devices"] == 4 and four["shard_rows"] == 4  # 16 rows over 4 devices
    assert one["batch_devices"] == 1 and four["replicated"] and one["replicated"]
    np.testing.assert_allclose(four["losses"], one["losses"], rtol=1e-5)
    assert four["losses"][-1] < four["losses"][0]  # it trained
    for a, b in zip(four["params"], one["params"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert "divisible by the 4 devices" in out["error"] and "(6, 6, 2)" in out["error"]


def test_mesh_and_shardings_on_the_local_devices():
    mesh = data_mesh()
    assert mesh.axis_names == ("data",) and mesh.size == len(jax.devices())
    assert batch_sharding(mesh).spec == jax.sharding.PartitionSpec("data")
    assert replicated(mesh).is_fully_replicated
    batch = shard_batch({"x": np.ones((4, 3))}, mesh)
    assert batch["x"].sharding == batch_sharding(mesh)
    with pytest.raises(ValueError, match=r"\['y'\].*leading \(batch\) axis"):
        shard_batch({"y": np.float32(1.0)}, mesh)
    with pytest.raises(ValueError, match="at least one device"):
        data_mesh([])
