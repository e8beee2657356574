"""experiments.neuro_tasks: the --quick run end to end (slow: its compilations take longer than the
suite's 15 s budget), its resume, and the pieces it rests on (in-process, small)."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiment_processes as procs
from experiments import neuro_tasks as nt
from seqjax.analysis import find_fixed_points
from seqjax.experiment import config_from_json

QUICK = nt.Config(**nt.Config.QUICK)


def test_logistic_fit_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.1, 0.1, 2000)
    y = rng.random(2000) < 1 / (1 + np.exp(-(0.3 + 40 * x)))
    b0, b1 = nt.logistic_fit(x, y)
    ref = sm.Logit(y.astype(float), sm.add_constant(x)).fit(disp=0).params
    np.testing.assert_allclose([b0, b1], ref, rtol=1e-4)
    assert abs(b1 - 40) < 8 and abs(b0 - 0.3) < 0.2


def test_held_out_trials_equal_eager_trials():
    key = jax.random.key(3)
    c = jnp.linspace(-0.1, 0.1, 8)
    a = nt.held_out_trials("perceptual_decision", QUICK, key, 8, signed_coherence=c)
    b = nt.trials("perceptual_decision", QUICK, key, 8, signed_coherence=c)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):    # the same up to float rounding (fusion)
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)


@pytest.mark.parametrize("model", nt.MODELS)
def test_forward_shapes_and_noise(model):
    config = nt.Config(**(nt.Config.QUICK | {"hidden": 6}))
    params = nt.init_params(model, "go", config, jax.random.key(0))
    batch = nt.trials("go", config, jax.random.key(1), 3)
    cell = nt.make_cell(model, config)
    logits, activity = nt.forward(model, cell, params, batch.inputs, jax.random.key(2), 6)
    assert logits.shape == (*batch.labels.shape, 1 + config.n_ring) and activity.shape[-1] == 6
    quiet, _ = nt.forward(model, cell, params, batch.inputs, None, 6)
    noisy = not np.allclose(logits, quiet)
    assert noisy == (model == "rate")           # only the rate network has recurrent noise
    loss = nt.loss_fn(logits, batch, "cross_entropy")
    manual = -(jax.nn.log_softmax(logits)[jnp.arange(3)[:, None], jnp.arange(batch.labels.shape[1]), batch.labels]
               * batch.weights).sum() / batch.weights.sum()
    np.testing.assert_allclose(loss, manual, rtol=1e-5)


def test_rate_network_fixed_point_is_a_fixed_point():
    """The analysis' map is the network's own noiseless step: a found point is (nearly) invariant."""
    config = nt.Config(**(nt.Config.QUICK | {"hidden": 8}))
    params = nt.init_params("rate", "delayed_match", config, jax.random.key(0))
    cell = nt.make_cell("rate", config)
    u = nt.held_input("delayed_match", config)
    x = jnp.asarray(np.concatenate([u, np.zeros(8, np.float32)]))
    F = lambda h: cell.step(params["cell"], h, x)[0]
    search = find_fixed_points(F, jax.random.normal(jax.random.key(1), (4, 8)), num_steps=1500, learning_rate=0.02)
    h = search.points[int(np.argmin(search.speed))]
    assert float(search.speed.min()) < 1e-8
    np.testing.assert_allclose(F(h), h, atol=1e-3)


def test_task_budgets_override_steps_for_every_model():
    config = nt.Config(**(nt.Config.QUICK | {"steps": 40, "comparison_steps": 30,
                                            "task_steps": ("go=70", "perceptual_decision=120")}))
    assert nt.task_budgets(config) == {"go": 70, "perceptual_decision": 120}
    assert [nt.train_steps(config, m, "perceptual_decision") for m in nt.MODELS] == [120, 120, 120]
    assert [nt.train_steps(config, m, "delayed_match") for m in nt.MODELS] == [40, 30, 30]
    same = nt.Config(**(nt.Config.QUICK | {"steps": 40, "comparison_steps": None}))
    assert [nt.train_steps(same, m, "anti") for m in nt.MODELS] == [40, 40, 40]
    # a chunk divides the budget and is at most 50 steps
    assert nt.chunk_size(config, "rate", "go") == 10 and nt.chunk_size(config, "gru", "perceptual_decision") == 10
    assert nt.chunk_size(nt.Config(**(nt.Config.QUICK | {"steps": 3000})), "rate", "go") == 50


@pytest.mark.parametrize("task_steps", [("go",), ("go=0",), ("flying=10",), ("go=10", "go=20"), ("go=ten",)])
def test_bad_task_steps_raise(task_steps):
    with pytest.raises(ValueError, match="task_steps must be distinct task=steps"):
        nt.Config(**(nt.Config.QUICK | {"task_steps": task_steps}))


@pytest.mark.parametrize("field, value", [("stop_accuracy", 1.5), ("comparison_steps", 0), ("warmup_steps", -1),
                                          ("final_lr_fraction", 2.0), ("validation_batch", 0)])
def test_bad_training_options_raise(field, value):
    with pytest.raises(ValueError, match=field):
        nt.Config(**(nt.Config.QUICK | {field: value}))


def test_warmup_cosine_schedule_against_its_formula():
    config = nt.Config(**(nt.Config.QUICK | {"schedule": "warmup_cosine", "learning_rate": 0.01,
                                            "warmup_steps": 100, "final_lr_fraction": 0.1}))
    schedule = nt.learning_rate(config, 1000)
    steps = np.array([0, 1, 50, 99, 100, 101, 400, 550, 999, 1000, 1200])
    peak, end = 0.01, 0.001
    ref = np.where(steps < 100, peak * steps / 100,
                   end + (peak - end) * 0.5 * (1 + np.cos(np.pi * np.clip(steps - 100, 0, 900) / 900)))
    np.testing.assert_allclose([float(schedule(int(i))) for i in steps], ref, rtol=1e-5, atol=1e-9)
    assert nt.learning_rate(config, 60)(30) == pytest.approx(0.01)        # warmup capped at half the budget
    constant = nt.Config(**(nt.Config.QUICK | {"schedule": "constant", "learning_rate": 0.004}))
    assert nt.learning_rate(constant, 1000) == 0.004


@pytest.mark.slow      # compiles a training chunk: ~10 s
def test_validation_is_the_held_out_accuracy_after_the_chunk():
    """train_chunk's validation number is the accuracy of the updated parameters on the fixed
    validation batch (eval key purpose 4), recomputed here outside the jitted chunk."""
    config = nt.Config(**(nt.Config.QUICK | {"hidden": 6, "steps": 2, "batch_size": 4, "validation_batch": 32}))
    cell, optimizer, train_chunk = nt.make_trainer("rate", "go", config)
    params = nt.init_params("rate", "go", config, jax.random.key(0))
    new, _, losses, val = train_chunk(params, optimizer.init(params), 0)
    assert losses.shape == (2,) and not jax.tree.all(jax.tree.map(jnp.array_equal, new, params))
    k_val, k_noise = jax.random.split(nt.eval_key(config, "go", 4))
    batch = nt.trials("go", config, k_val, 32)
    logits, _ = nt.forward("rate", cell, new, batch.inputs, k_noise, 6)
    perfect = 10.0 * jax.nn.one_hot(batch.labels, logits.shape[-1])
    assert float(np.mean(nt.scores("go", perfect, batch, config)["correct"])) == 1.0   # the scorer can say "all right"
    np.testing.assert_allclose(float(val), float(np.mean(nt.scores("go", logits, batch, config)["correct"])), atol=1e-6)


def test_bad_config_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        nt.main(["--tasks", "perceptual_decision,flying"])
    assert "tasks must be distinct values" in capsys.readouterr().err


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    out = quick_run_dir("neuro_tasks")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_run_writes_every_output(quick_run):
    out, m = quick_run
    for name in ("config.json", "metrics.jsonl", "metrics.json", "accuracy.png", "psychometric.png",
                 "delay_accuracy.png", "fixed_points.png", "eigenvalues.png", "selectivity.png",
                 "training_loss.png", "analysis.npz"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    config = config_from_json(nt.Config, json.loads((out / "config.json").read_text()))
    assert config == QUICK
    records = procs.records(out)
    assert len(records) == len(config.tasks) * (config.steps + config.comparison_steps)
    assert all(math.isfinite(r["loss"]) for r in records)
    # one validation accuracy at the end of every chunk (10 steps here), and no early stop
    assert [r["step"] for r in records if "validation_accuracy" in r] == [9, 19, 9] * len(config.tasks)
    assert m["steps_trained"] == {t: {"rate": config.steps, "gru": config.comparison_steps} for t in config.tasks}
    assert len(m["results"]["delayed_match"]["rate"]["validation_accuracy"]) == 2
    for task in config.tasks:
        for model in config.models:
            r = m["results"][task][model]
            assert 0 <= r["accuracy"] <= 1 and r["eval_trials"] > 0
    psy = m["results"]["perceptual_decision"]["rate"]["psychometric"]
    assert len(psy["signed_coherence"]) == len(psy["p_choose_1"]) == 2 * len(set(config.psychometric_coherences) | set(config.coherences)) - 1
    assert set(m["results"]["delayed_match"]["rate"]["accuracy_by_delay"]) == {f"{d:g}" for d in config.eval_delays_ms}
    for dyn in m["rate_dynamics"].values():
        assert dyn["stable_fixed_points"] + dyn["unstable_fixed_points"] == dyn["fixed_points"]
        assert sum(dyn["pca_explained_top3"]) <= 1 + 1e-6
    assert m["timings"]["sessions"] == 1


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_results(tmp_path, quick_run_dir, xla_cache):
    straight = quick_run_dir("neuro_tasks")
    killed = tmp_path / "killed"
    cache = xla_cache("neuro_tasks")
    log = tmp_path / "killed.log"
    # sweep steps: rate 20 + GRU 10 per task; the checkpoint at 30 ends run 2 of 4, mid-sweep
    procs.kill_at_checkpoint(procs.start("neuro_tasks", ["--quick", "--out", str(killed), "--checkpoint-every", "30"],
                                         cache_dir=cache, log=log), killed, 30, log)
    assert not (killed / "metrics.json").exists()
    procs.run("neuro_tasks", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
    assert procs.records(killed) == procs.records(straight)
    a, b = np.load(straight / "analysis.npz"), np.load(killed / "analysis.npz")
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.slow
def test_early_stopping_skips_the_budget_and_resumes_exactly(tmp_path, xla_cache):
    """``--stop-accuracy 0``: every run stops after its first chunk (10 steps). The sweep's step
    count is the sum of the budgets (20 + 10 + 20 + 10), so the checkpoint at 40 is the one saved
    right after run 2 stopped: killed there, the resumed run must not train run 2 any further."""
    cache = xla_cache("neuro_tasks_stop")
    args = ["--quick", "--stop-accuracy", "0", "--checkpoint-every", "40"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    procs.run("neuro_tasks", [*args, "--out", str(straight)], cache_dir=cache, log=tmp_path / "straight.log")
    m = json.loads((straight / "metrics.json").read_text())
    assert m["steps_trained"] == {"perceptual_decision": {"rate": 10, "gru": 10}, "delayed_match": {"rate": 10, "gru": 10}}
    assert [r["step"] for r in procs.records(straight)] == list(range(10)) * 4
    procs.kill_at_checkpoint(procs.start("neuro_tasks", [*args, "--out", str(killed)], cache_dir=cache,
                                         log=tmp_path / "killed.log"), killed, 40, tmp_path / "killed.log")
    procs.run("neuro_tasks", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
    assert procs.records(killed) == procs.records(straight)
