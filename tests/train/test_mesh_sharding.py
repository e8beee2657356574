"""The 2-D ``(data, model)`` mesh: meshes 8x1, 4x2, 2x4 train a tiny GPT like 1 device, the
parameters and Adam's moments are really split as the rules say, and the per-device parameter
bytes fall as the model axis grows.

The 8 devices are simulated (``--xla_force_host_platform_device_count=8``), which must be set
before JAX is imported, so the training runs in a fresh subprocess (``mesh_train.py``). That
subprocess also lowers XLA's CPU optimisation level: compiling 4 train steps is most of its time,
and every run (1 device and meshes) uses the same flags, so the comparison is unaffected.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import AbstractMesh, PartitionSpec as P

from seqjax.train.optim import adamw
from seqjax.train.partitioning import (
    device_bytes,
    logical_axes,
    opt_state_specs,
    param_specs,
    per_device_bytes,
    replicated_dims,
    shard_shape,
)
from seqjax.train.sharding import mesh, parse_mesh, shard_tree
from seqjax.train.step import make_train_step

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_meshes(trained, placed=(), evals=()):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "mesh_train.py"), json.dumps(trained), json.dumps(placed),
         json.dumps(evals)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_same_training(out, names):
    one = out["one"]
    assert one["losses"][-1] < one["losses"][0] - 0.05, one["losses"]  # it trained
    for name in names:
        run = out[name]
        np.testing.assert_allclose(run["losses"], one["losses"], rtol=1e-5, err_msg=name)
        assert run["params"].keys() == one["params"].keys()
        for path in one["params"]:
            if path.endswith("self_attn/b_k"):
                # The key bias's true gradient is exactly 0 (q . b_k is the same for every key, and
                # softmax ignores a constant), so its computed gradient is rounding noise that
                # depends on the summation order, and Adam's g / (sqrt(v) + eps) turns that noise
                # into updates of ~1e-5. Measured: every other parameter agrees to 1.5e-7; b_k
                # differs by 5e-5. Check that it stays at noise level, far below an lr-sized move.
                assert max(map(abs, run["params"][path] + one["params"][path])) < 1e-3, (name, path)
                continue
            np.testing.assert_allclose(run["params"][path], one["params"][path], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name} {path}")
        # The arrays carry the specs the rules gave, and Adam's first moment carries the same.
        assert run["actual"] == run["specs"], name
        assert run["mu_actual"] == run["specs"], name
        assert run["mu_shard_shapes"] == run["shard_shapes"], name
        assert run["count_replicated"], name
        assert run["bytes_measured"] == run["bytes_computed"], name


def test_meshes_train_like_one_device_and_split_the_parameters():
    trained = [["8x1", "fsdp"], ["4x2", "fsdp+tp"], ["2x4", "tp"]]
    placed = [[m, s] for s in ("tp", "fsdp+tp") for m in ("8x1", "4x2", "2x4", "1x8")]
    out = run_meshes(trained, placed)
    check_same_training(out, [f"{m}/{s}" for m, s in trained])

    # Specs and shard shapes of known parameters (d = 32, d_ff = 128, V = 64, P = 8).
    fsdp, both, tp = out["8x1/fsdp"], out["4x2/fsdp+tp"], out["2x4/tp"]
    w_q, w_2 = "blocks/stack/layers/0/self_attn/w_q", "blocks/stack/layers/0/ffn/w_2"
    assert fsdp["specs"][w_q] == ["data"] and fsdp["shard_shapes"][w_q] == [4, 32]
    assert both["specs"][w_q] == ["data", "model"] and both["shard_shapes"][w_q] == [8, 16]
    assert both["specs"][w_2] == ["model", "data"] and both["shard_shapes"][w_2] == [64, 8]
    assert tp["specs"][w_2] == ["model"] and tp["shard_shapes"][w_2] == [32, 32]
    assert tp["specs"]["token_embedding"] == ["model"] and tp["shard_shapes"]["token_embedding"] == [16, 32]
    assert tp["specs"]["blocks/stack/final_norm/scale"] == [] and tp["shard_shapes"]["blocks/stack/final_norm/scale"] == [32]

    # Memory: measured on every device from addressable_shards; equal to the computed bytes; the
    # same on all devices (even splits); falling as the model axis grows.
    mem = out["memory"]
    total = out["one"]["total_bytes"]
    for name, m in mem.items():
        assert m["measured"] == m["computed"] and len(set(m["per_device"])) == 1, name
    tp_bytes = [mem[f"{m}/tp"]["measured"] for m in ("8x1", "4x2", "2x4", "1x8")]
    assert tp_bytes[0] == total and all(a > b for a, b in zip(tp_bytes, tp_bytes[1:])), tp_bytes
    both_bytes = [mem[f"{m}/fsdp+tp"]["measured"] for m in ("8x1", "4x2", "2x4", "1x8")]
    assert all(b < total / 4 for b in both_bytes[:3]), both_bytes


@pytest.mark.slow
def test_every_strategy_on_every_mesh_trains_like_one_device():
    trained = [[m, s] for m in ("8x1", "4x2", "2x4") for s in ("dp", "fsdp", "tp", "fsdp+tp")]
    out = run_meshes(trained, evals=[["4x2", "fsdp+tp"]])
    check_same_training(out, [f"{m}/{s}" for m, s in trained])
    assert out["2x4/dp"]["bytes_measured"] == out["one"]["total_bytes"]
    # 6 rows do not divide over 4 data groups: the eval step copies the batch and still agrees.
    np.testing.assert_allclose(out["eval"]["4x2/fsdp+tp"], out["eval"]["one"], rtol=1e-6)


def test_parse_mesh():
    assert parse_mesh("4x2", 8) == (4, 2) and parse_mesh(" 2X4 ", 8) == (2, 4)
    assert parse_mesh(None, 8) == (8, 1) and parse_mesh("auto", 3) == (3, 1) and parse_mesh("", 1) == (1, 1)
    assert parse_mesh("-1x2", 8) == (4, 2) and parse_mesh("8x-1", 8) == (8, 1)
    assert parse_mesh(None) == (jax.device_count(), 1)
    with pytest.raises(ValueError, match=r"'4x4' has 16 devices.*there are 8 devices"):
        parse_mesh("4x4", 8)
    for bad in ("4", "4x2x1", "ax2", "4*2"):
        with pytest.raises(ValueError, match="DATAxMODEL"):
            parse_mesh(bad, 8)
    for bad in ("0x8", "-1x-1", "-2x4"):
        with pytest.raises(ValueError, match="positive"):
            parse_mesh(bad, 8)
    with pytest.raises(ValueError, match="3 does not divide the 8 devices"):
        parse_mesh("-1x3", 8)


def test_mesh_shape_and_errors():
    n = jax.device_count()
    m = mesh()
    assert m.axis_names == ("data", "model") and dict(m.shape) == {"data": n, "model": 1}
    assert mesh((1, n)).shape["model"] == n
    with pytest.raises(ValueError, match=f"needs {2 * n} devices; got {n}"):
        mesh((2, n))
    with pytest.raises(ValueError, match="two positive ints"):
        mesh((n,))
    with pytest.raises(ValueError, match="two positive ints"):
        mesh((0, n))
    with pytest.raises(ValueError, match="at least one device"):
        mesh((1, 1), [])


def test_logical_axes_of_stacked_layers_and_unmatched_paths():
    assert logical_axes("blocks/stack/layers/self_attn/w_q", 3) == (None, "embed", "heads")  # [L, d, h d_k]
    assert logical_axes("blocks/stack/layers/3/ffn/w_2", 2) == ("mlp", "embed")
    assert logical_axes("encoder/stack/layers/0/cross_attn/b_o", 1) == ("embed",)
    assert logical_axes("my_model/kernel", 2) == (None, None)
    with pytest.raises(ValueError, match="has 1"):
        logical_axes("ffn/w_1", 1)


def gpt2_small_shapes():
    from flax import nnx
    from seqjax.nn import GPT2Config, GPTLanguageModel
    from seqjax.train.step import split_params

    return split_params(nnx.eval_shape(lambda: GPTLanguageModel(GPT2Config.small(), rngs=nnx.Rngs(0))))[1]


def test_gpt2_small_bytes_per_device_by_hand():
    params = gpt2_small_shapes()
    V, P_, d, L, f = 50257, 1024, 768, 12, 3072
    assert per_device_bytes(params, param_specs(params, "dp", AbstractMesh((8, 1), ("data", "model"))),
                            AbstractMesh((8, 1), ("data", "model"))) == 4 * 124439808
    # tp on 1x8 by hand: the token table stays whole (8 does not divide V = 50257), the position
    # table has no model dimension; per layer, q/k/v/o, w_1, w_2, b_q/b_k/b_v, b_1 are split by
    # 8, b_o, b_2 and the two norms are whole; the final norm is whole.
    split = 4 * d * d + 2 * d * f + 3 * d + f
    whole = 2 * d + 4 * d
    expected = V * d + P_ * d + L * (split // 8 + whole) + 2 * d
    m = AbstractMesh((1, 8), ("data", "model"))
    assert per_device_bytes(params, param_specs(params, "tp", m), m) == 4 * expected
    assert replicated_dims(params, "tp", m) == [
        "token_embedding dim 0 (size 50257): axis 'model' of size 8 does not divide it"
    ]
    # fsdp on 8x1: every parameter with a d ("embed") side is split by 8, the rest whole.
    whole_fsdp = L * (3 * d + f + 4 * d) + 2 * d
    m = AbstractMesh((8, 1), ("data", "model"))
    assert per_device_bytes(params, param_specs(params, "fsdp", m), m) == 4 * ((124439808 - whole_fsdp) // 8 + whole_fsdp)


def test_indivisible_dims_stay_replicated_and_bad_strategy():
    m = AbstractMesh((2, 4), ("data", "model"))
    params = {"self_attn": {"w_q": jnp.zeros((6, 12)), "w_o": jnp.zeros((12, 6))}, "lm_head": jnp.zeros((6, 10))}
    specs = param_specs(params, "fsdp+tp", m)
    assert specs["self_attn"]["w_q"] == P("data", "model")
    assert specs["lm_head"] == P("data")  # 4 does not divide V = 10
    assert shard_shape((6, 12), specs["self_attn"]["w_q"], m) == (3, 3)
    assert replicated_dims(params, "fsdp+tp", m) == ["lm_head dim 1 (size 10): axis 'model' of size 4 does not divide it"]
    with pytest.raises(ValueError, match=r"strategy must be one of \('dp', 'fsdp', 'tp', 'fsdp\+tp'\); got 'zero'"):
        param_specs(params, "zero", m)
    with pytest.raises(ValueError, match="mesh axis 'model'"):
        param_specs(params, "tp", AbstractMesh((2,), ("data",)))


@pytest.mark.parametrize("make_opt", [
    lambda: optax.adam(1e-3),
    lambda: optax.sgd(1e-2, momentum=0.9),
    lambda: optax.chain(optax.clip_by_global_norm(1.0), adamw(1e-3, weight_decay=0.1)),
])
def test_opt_state_specs_agree_with_optax_tree_map_params(make_opt):
    """Reference: ``optax.tree_map_params``, which finds the parameter-shaped parts of the state
    by initialising the optimiser on placeholders."""
    opt = make_opt()
    params = {"ffn": {"w_1": jnp.zeros((4, 8)), "b_1": jnp.zeros(8)}, "norm_1": {"scale": jnp.ones(4)}}
    specs = {"ffn": {"w_1": P("data", "model"), "b_1": P("model")}, "norm_1": {"scale": P()}}
    state = opt.init(params)
    ours = opt_state_specs(state, params, specs)
    ref = optax.tree_map_params(opt, lambda _, s: s, state, specs, transform_non_params=lambda _: P(),
                                is_leaf=lambda x: isinstance(x, P))
    is_spec = lambda x: isinstance(x, P)
    assert jax.tree.structure(ours, is_leaf=is_spec) == jax.tree.structure(ref, is_leaf=is_spec)
    assert jax.tree.leaves(ours, is_leaf=is_spec) == jax.tree.leaves(ref, is_leaf=is_spec)
    assert P("data", "model") in jax.tree.leaves(ours, is_leaf=is_spec)
    with pytest.raises(ValueError, match="one PartitionSpec per parameter"):
        opt_state_specs(state, params, {"ffn": {"w_1": P()}})


def test_sharded_step_on_the_local_devices():
    """The sharded path of make_train_step on this process's devices (1 here): same numbers as the
    plain step, the parameters come back with their shardings, and misuse is refused."""
    loss_fn = lambda p, batch, key: jnp.mean((batch @ p["ffn"]["w_1"]) ** 2)
    params = {"ffn": {"w_1": jnp.arange(12.0).reshape(3, 4) / 10}}
    batch = jnp.ones((len(jax.devices()) * 2, 3))
    opt = optax.adam(0.1)
    plain = make_train_step(loss_fn, opt, donate=False)
    p_ref, _, m_ref = plain(params, opt.init(params), batch)
    m = mesh()
    specs = param_specs(params, "fsdp+tp", m)
    sharded = make_train_step(loss_fn, opt, mesh=m, param_sharding="fsdp+tp", donate=False)
    placed = shard_tree(params, specs, m)
    p_new, s_new, metrics = sharded(placed, shard_tree(opt.init(params), opt_state_specs(opt.init(params), params, specs), m), batch)
    np.testing.assert_allclose(metrics["loss"], m_ref["loss"], rtol=1e-6)
    np.testing.assert_allclose(p_new["ffn"]["w_1"], p_ref["ffn"]["w_1"], rtol=1e-6)
    assert p_new["ffn"]["w_1"].sharding.spec == specs["ffn"]["w_1"]
    assert device_bytes(p_new) == per_device_bytes(params, specs, m)
    with pytest.raises(ValueError, match="need a mesh"):
        make_train_step(loss_fn, opt, param_sharding="fsdp")


def test_rules_cover_every_matrix_of_the_seqjax_transformers():
    """Every parameter matrix of GPT (looped and scanned), BERT and the encoder-decoder gets a
    split dimension from the rules, except the classifier heads (small, left replicated); a
    renamed parameter would otherwise silently stay replicated."""
    from flax import nnx
    from seqjax.nn import BertConfig, BertForMaskedLM, BertForSequenceClassification, EncoderDecoder, GPT2Config, GPTLanguageModel
    from seqjax.train.optim import path_str
    from seqjax.train.step import split_params

    bert = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=8)
    makers = [
        lambda: GPTLanguageModel(GPT2Config(vocab_size=64, n_positions=8, n_embd=16, n_layer=2, n_head=2,
                                            tie_word_embeddings=False), rngs=nnx.Rngs(0)),
        lambda: GPTLanguageModel(GPT2Config(vocab_size=64, n_positions=8, n_embd=16, n_layer=2, n_head=2,
                                            scan_layers=True), rngs=nnx.Rngs(0)),
        lambda: BertForMaskedLM(bert, rngs=nnx.Rngs(0)),
        lambda: BertForSequenceClassification(bert, num_labels=3, rngs=nnx.Rngs(0)),
        lambda: EncoderDecoder(50, 60, rngs=nnx.Rngs(0), d_model=16, num_heads=2, num_layers=1, d_ff=32, max_len=8),
    ]
    m = AbstractMesh((2, 2), ("data", "model"))
    for make in makers:
        params = split_params(nnx.eval_shape(make))[1]
        specs = param_specs(params, "fsdp+tp", m)
        flat_specs = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P))
        for (path, leaf), spec in zip(jax.tree_util.tree_leaves_with_path(params), flat_specs):
            name = path_str(path)
            if "norm" in name:  # [d], or [L, d] in a scanned stack
                assert spec == P(), name
            elif leaf.ndim >= 2 and "classifier" not in name and "relative_bias" not in name:
                assert spec != P(), name


def test_pretrain_tiny_mesh_flag_is_validated():
    from experiments.pretrain_tiny import Config

    assert Config(mesh="4x2", sharding="fsdp+tp").mesh == "4x2"
    with pytest.raises(ValueError, match="mesh must be DATAxMODEL"):
        Config(mesh="4by2")
