"""experiments.attention_basics: the --quick run end to end (its invariants), a SIGKILL and
resume, and the measurements it rests on against independent references."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiment_processes as procs
from experiments import attention_basics as ab
from seqjax.attention import sinusoidal_table


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    out = quick_run_dir("attention_basics")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_run_writes_every_output(quick_run):
    out, summary = quick_run
    for name in ("config.json", "run.json", "metrics.jsonl", "metrics.json", "order.png", "scaling.png",
                 "positional.png", "masks.png", "curves.npz"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    config = ab.Config(**ab.Config.QUICK)
    records = procs.records(out)
    assert len(records) == len(config.schemes) * config.train_steps
    assert all(math.isfinite(r["loss"]) for r in records)
    assert summary["quick"] is True and summary["timings"]["sessions"] == 1


def test_quick_run_order_invariants(quick_run):
    _, summary = quick_run
    order = summary["order"]
    assert order["bag_of_words"]["counts_equal"] and order["bag_of_words"]["mean_embedding_equal"]
    assert order["bag_of_words"]["mean_embedding_max_difference"] == 0.0
    for arch in ab.ARCHS:
        none = order["random_models"]["none"][arch]
        # Equivariant to float32 rounding: a few eps of the output scale.
        assert none["max_deviation_in_eps_units"] < 64 and none["max_pooled_deviation"] < 1e-5
        for scheme in ("sinusoidal", "rope"):
            assert order["random_models"][scheme][arch]["min_deviation"] > 1e-2
        assert order["random_models"]["learned"][arch]["min_deviation"] > 1e3 * none["max_deviation"]
    trained = order["trained"]
    assert trained["none"]["paired_test_accuracy"] == 0.5       # exactly chance on swapped pairs
    assert trained["none"]["pairs_both_right"] == 0.0
    assert trained["none"]["max_logit_change_under_swap"] < 1e-5
    assert trained["none"]["equivariance"]["max_deviation_in_eps_units"] < 64
    assert trained["sinusoidal"]["equivariance"]["min_deviation"] > 1e-2


def test_quick_run_scaling_positional_masks(quick_run):
    _, summary = quick_run
    at = summary["scaling"]["at_512"]
    assert at["entropy_unscaled"] < 0.5 * at["entropy_scaled"] < at["entropy_uniform"]
    assert at["max_weight_unscaled"] > at["max_weight_scaled"]
    pos = summary["positional"]
    assert pos["linear_map_max_error"] < 1e-6 < 1 < pos["identity_map_max_error"]
    assert pos["similarity_max_spread_over_positions"] < 1e-4     # a function of the distance alone
    masks = summary["masks"]
    assert masks["fully_masked_rows"] > 0
    for name in ab.DTYPES:
        r = masks["dtypes"][name]
        assert not r["any_nan"] and not r["any_nan_gradient"]
        assert r["max_weight_on_fully_masked_rows"] == 0.0 and r["max_output_on_fully_masked_rows"] == 0.0
    assert masks["additive_minus_1e9"]["float16"]["any_nan"]       # the seed's mask overflows
    assert masks["additive_minus_1e9"]["float32"]["max_weight_on_fully_masked_rows"] > 0   # uniform, not zero


@pytest.mark.slow  # two quick runs and a kill: ~45 s; resume is covered in the default suite by tests/experiments/test_resume.py
def test_sigkill_then_resume_gives_the_uninterrupted_results(quick_run, tmp_path, xla_cache):
    straight, _ = quick_run
    killed = tmp_path / "killed"
    cache = xla_cache("attention_basics")
    log = tmp_path / "killed.log"
    proc = procs.start("attention_basics", ["--quick", "--out", str(killed), "--checkpoint-every", "60"],
                       cache_dir=cache, log=log)
    procs.kill_at_checkpoint(proc, killed, 60, log)   # inside the second scheme (40 steps each)
    assert not (killed / "metrics.json").exists()
    procs.run("attention_basics", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
    assert procs.records(killed) == procs.records(straight)
    assert json.loads((killed / "metrics.json").read_text())["timings"]["sessions"] == 2
    a, b = np.load(straight / "curves.npz"), np.load(killed / "curves.npz")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_rotation_map_against_the_table_by_brute_force():
    d, k = 16, 5
    m = ab.rotation_map(k, d)
    table = np.asarray(sinusoidal_table(40, d), np.float64)
    np.testing.assert_allclose(table[:-k] @ m.T, table[k:], atol=1e-6)
    np.testing.assert_allclose(m @ m.T, np.eye(d), atol=1e-12)               # a rotation
    np.testing.assert_allclose(ab.rotation_map(2, d) @ ab.rotation_map(3, d), m, atol=1e-12)  # M_2 M_3 = M_5
    # Element by element, independently of the block construction: pair i rotates by k w_i.
    for i in range(d // 2):
        w = 10000.0 ** (-2 * i / d)
        for p in (0, 7, 30):
            a, b = math.sin(p * w), math.cos(p * w)
            assert m[2 * i, 2 * i] * a + m[2 * i, 2 * i + 1] * b == pytest.approx(math.sin((p + k) * w), abs=1e-12)
            assert m[2 * i + 1, 2 * i] * a + m[2 * i + 1, 2 * i + 1] * b == pytest.approx(math.cos((p + k) * w), abs=1e-12)


def test_softmax_entropy_known_values():
    assert ab.softmax_entropy(np.full(8, 1 / 8)) == pytest.approx(math.log(8))
    assert ab.softmax_entropy(np.array([1.0, 0.0, 0.0])) == 0.0
    w = np.array([0.5, 0.25, 0.25])
    assert ab.softmax_entropy(w) == pytest.approx(-sum(x * math.log(x) for x in w))


def test_scaling_point_matches_a_numpy_softmax():
    key = jax.random.key(3)
    out = ab.scaling_point(key, 16, 10, 6, scaled=True)
    kq, kk, *_ = jax.random.split(key, 5)
    q = np.asarray(jax.random.normal(kq, (1, 6, 1, 16)))[0, :, 0].astype(np.float64)
    k = np.asarray(jax.random.normal(kk, (1, 10, 1, 16)))[0, :, 0].astype(np.float64)
    z = q @ k.T / 4.0
    w = np.exp(z - z.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    assert out["entropy"] == pytest.approx(float(np.mean(-(w * np.log(w)).sum(1))), rel=1e-5)
    assert out["max_weight"] == pytest.approx(float(w.max(1).mean()), rel=1e-5)
    # The softmax Jacobian applied to c: grad_z sum(w c) = w * (c - w.c), row by row.
    c = np.asarray(jax.random.normal(jax.random.split(key, 5)[4], (6, 10)), np.float64)
    g = w * (c - (w * c).sum(1, keepdims=True))
    assert out["grad_logits_norm"] == pytest.approx(float(np.linalg.norm(g, axis=1).mean()), rel=1e-4)


def test_permutation_deviation_of_an_equivariant_and_a_position_dependent_map():
    x = jax.random.normal(jax.random.key(0), (2, 6, 3))
    perm = ab.random_permutation(jax.random.key(1), 6)
    assert not np.array_equal(perm, np.arange(6)) and sorted(perm) == list(range(6))
    same = ab.permutation_deviation(lambda z: 2 * z, x, perm)
    assert same["max_deviation"] == 0.0 and same["pooled_deviation"] == 0.0
    ramp = ab.permutation_deviation(lambda z: z + jnp.arange(6.0)[None, :, None], x, perm)
    assert ramp["max_deviation"] >= 1.0


def test_bag_of_words_of_the_cat_and_mouse_sentences():
    tok = ab.tokenizer()
    bow = ab.bag_of_words(tok, np.asarray(jax.random.normal(jax.random.key(0), (len(tok.vocab), 8))))
    assert bow["counts"] == {"cat": 1, "chased": 1, "mouse": 1, "the": 2}
    assert bow["counts_equal"] and bow["mean_embedding_equal"]


def test_bad_config_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        ab.main(["--schemes", "none,alibi"])
    assert "schemes must be distinct values" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pe_dim"):
        ab.Config(pe_dim=7)
