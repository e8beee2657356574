"""experiments.neuro_dynamics: the chapter's cortical network diverges, the corrected one does not,
and the timescales read off the eigenvalues are the ones the simulation shows; the trained parts
(predictive coding, hierarchical timescales, working memory) measure what they say, and a
SIGKILLed run resumes to the same results."""

from __future__ import annotations

import dataclasses
import json

import experiment_processes as procs
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import neuro_dynamics as nd

QUICK = nd.Config(**nd.Config.QUICK)


def test_rate_cell_simulation_is_the_chapters_loop():
    config = dataclasses.replace(QUICK, steps=60)
    w, x0, noise = nd.chapter_draws(config)
    x = [x0]
    for t in range(config.steps - 1):                      # the chapter's own update, verbatim
        x.append(x[-1] + config.dt * (-x[-1] / config.tau + np.dot(x[-1], w)) + noise[t])
    np.testing.assert_allclose(nd.simulate(config.tau * w, x0, noise, config), np.array(x), rtol=1e-9, atol=1e-12)


def test_chapter_diverges_and_corrected_is_bounded():
    w, x0, noise = nd.chapter_draws(QUICK)
    assert np.abs(np.linalg.eigvals(w)).max() == pytest.approx(0.95)
    alpha = QUICK.dt / QUICK.tau
    seed_a = nd.update_matrix(QUICK.tau * w, alpha)
    assert np.abs(np.linalg.eigvals(seed_a)).max() == pytest.approx(1.787, abs=1e-3)   # seed 42
    x = nd.simulate(QUICK.tau * w, x0, noise, QUICK)
    assert np.abs(x[-1]).max() > 1e45
    fixed = nd.update_matrix(w, alpha)            # W of radius 0.95 in tau dx/dt = -x + W x
    assert np.abs(np.linalg.eigvals(fixed)).max() < 1 - alpha + 0.95 * alpha + 1e-9
    assert np.abs(nd.simulate(w, x0, noise, QUICK)).max() < 5


def test_timescales_of_a_diagonal_network():
    """W' = diag(w): modes are the units, mu = 1 - alpha + alpha w, timescale -dt / ln mu."""
    config = dataclasses.replace(QUICK, neurons=3, modes=3, measure_steps=20000, measure_batch=8)
    w = np.diag([0.9, 0.5, -0.5])
    out = nd.measured_timescales(w, config)["modes"]
    mu = 1 - 0.1 + 0.1 * np.array([0.9, 0.5, -0.5])
    np.testing.assert_allclose([m["predicted_ms"] for m in out], -1 / np.log(mu), rtol=1e-9)
    np.testing.assert_allclose([m["measured_ms"] for m in out], -1 / np.log(mu), rtol=0.08)


def chapter_stimulus():
    base = np.sin(np.linspace(0, 2 * np.pi, 20))
    stimulus = np.tile(base, 5)
    for vp in (35, 75):
        stimulus[vp:vp + 5] = -stimulus[vp:vp + 5]
    return stimulus


def test_error_summary_splits_by_window():
    config = dataclasses.replace(QUICK, pc_length=20, violation_starts=(5,), violation_width=3)
    mask = np.zeros(20, bool)
    mask[5:8] = True
    err = np.ones((2, 19))
    err[:, 4:7] = 4.0              # predictions of x_5 .. x_7
    err[:, 7:10] = 2.0             # the three steps after the window
    out = nd.error_summary(err, mask, config)
    assert out["mse_inside"] == 4.0 and out["mismatch_ratio"] == pytest.approx(4 / ((13 + 6) / 16))
    assert out["mse_after"] == 2.0 and out["mse_window_onsets"] == 4.0
    assert out["mse"] == pytest.approx(err.mean())


def test_layer_timescales_reads_each_layer():
    """Rates whose layer l is an AR(1) of timescale tau_l: the per-layer fit returns tau_l."""
    config = dataclasses.replace(QUICK, ts_taus=(2.0, 6.0, 18.0), ts_hidden=3, ts_max_lag=40)
    rng = np.random.default_rng(0)
    rates = np.zeros((8, 3000, 9))
    phis = np.repeat(np.exp(-1 / np.array(config.ts_taus)), 3)
    for t in range(1, 3000):
        rates[:, t] = phis * rates[:, t - 1] + rng.standard_normal((8, 9))
    fitted = [layer["fit"]["tau"] for layer in nd.layer_timescales(rates, config)]
    np.testing.assert_allclose(fitted, config.ts_taus, rtol=0.15)


def test_padded_memory_readout_is_the_unpadded_one():
    config = dataclasses.replace(QUICK, wm_hidden=6, wm_readout_hidden=4, wm_features=3)
    for model in ("rate",):       # the padding is the same for every model
        c = dataclasses.replace(config, wm_noise=0.0)
        params = nd.memory_init(jax.random.key(0), model=model, config=c)
        xs = jax.random.uniform(jax.random.key(1), (5, 4, 3))
        short = nd.memory_logits(params, xs, None, model=model, config=c)
        padded = nd.memory_logits(params, jnp.pad(xs, ((0, 0), (0, 6), (0, 0))), None, model=model, config=c,
                                  last=jnp.full(5, 3))
        np.testing.assert_allclose(padded, short, atol=1e-6)


def check_cortical(m: dict) -> None:
    assert not m["chapter"]["bounded"] and m["corrected"]["bounded"]
    assert m["chapter"]["max_abs_x_at"]["199"] > 1e45 and m["corrected"]["max_abs_x"] < 5
    assert m["chapter"]["matches_numpy_loop_rel_err"] < 1e-9
    for mode in m["corrected"]["timescales"]["modes"]:
        assert mode["measured_ms"] == pytest.approx(mode["predicted_ms"], rel=0.25)


def test_cortical_quick_run_and_resume(xla_cache, tmp_path):
    """The untrained part alone (``--parts cortical``): the only check that ``--parts`` leaves
    the other parts out (the full --quick run below covers every part)."""
    out = tmp_path / "run"
    cache = xla_cache("neuro_dynamics_cortical")
    procs.run("neuro_dynamics", ["--quick", "--parts", "cortical", "--out", str(out)], cache_dir=cache, log=tmp_path / "q.log")
    m = json.loads((out / "metrics.json").read_text())
    for name in ("activity.png", "eigenvalues.png", "timescales.png", "metrics.json", "config.json"):
        assert (out / name).stat().st_size > 0
    assert not {"predictive_coding", "hierarchical_timescales", "working_memory"} & set(m)
    check_cortical(m)
    # nothing trained: a resumed run recomputes the same numbers
    procs.run("neuro_dynamics", ["--resume", str(out)], cache_dir=cache, log=tmp_path / "r.log")
    again = procs.summary_without_timings(out)
    m.pop("timings")
    assert again == m


def test_quick_run_of_every_part_and_resume(quick_run_dir, xla_cache, tmp_path):
    out = quick_run_dir("neuro_dynamics")
    m = json.loads((out / "metrics.json").read_text())
    for name in ("activity.png", "eigenvalues.png", "timescales.png", "metrics.json", "config.json",
                 "predictive_coding.png", "hierarchy_timescales.png", "working_memory.png", "training_loss.png"):
        assert (out / name).stat().st_size > 0
    check_cortical(m)
    # predictive coding: the persistence predictor on the noiseless chapter stimulus, recomputed
    pc = m["predictive_coding"]["sine"]
    x = chapter_stimulus()
    sq = (x[1:] - x[:-1]) ** 2
    inside = np.zeros(100, bool)
    inside[35:40] = inside[75:80] = True
    persistence = pc["noiseless"]["persistence"]
    assert persistence["mse_inside"] == pytest.approx(sq[inside[1:]].mean(), rel=1e-5)
    assert persistence["mse_outside"] == pytest.approx(sq[~inside[1:]].mean(), rel=1e-5)
    for name in ("rnn", "persistence"):
        t = pc["test"][name]
        assert t["mismatch_ratio"] == pytest.approx(t["mse_inside"] / t["mse_outside"])
    # hierarchical timescales: the learned network started from equal taus; a fit per layer
    ts = m["hierarchical_timescales"]["learned"]
    assert ts["initial_time_constants"] == pytest.approx([QUICK.ts_learned_init] * len(QUICK.ts_taus), rel=1e-5)
    for cond in ("trained_task", "trained_spontaneous", "untrained_task", "untrained_spontaneous"):
        assert len(ts[cond]) == len(QUICK.ts_taus) and all(layer["tau"] > 0 for layer in ts[cond])
    wm = m["working_memory"]["gated"]
    assert set(wm["accuracy_by_length"]) == {str(n) for n in (*QUICK.wm_eval_lengths, QUICK.wm_length)}
    assert all(0 <= a <= 1 for a in wm["accuracy_by_length"].values())
    # the finished run resumed: nothing to train, the same numbers
    procs.run("neuro_dynamics", ["--resume", str(out)], cache_dir=xla_cache("neuro_dynamics"), log=tmp_path / "r.log")
    again = procs.summary_without_timings(out)
    m.pop("timings")
    assert again == m


@pytest.mark.slow
def test_sigkill_then_resume(quick_run_dir, xla_cache, tmp_path):
    """Killed at the checkpoint inside the first training run (step 20 of 40), resumed: the same
    metrics.json and metrics.jsonl records as the uninterrupted --quick run."""
    straight = quick_run_dir("neuro_dynamics")
    killed, cache = tmp_path / "killed", xla_cache("neuro_dynamics")
    log = tmp_path / "killed.log"
    procs.kill_at_checkpoint(procs.start("neuro_dynamics", ["--quick", "--out", str(killed), "--checkpoint-every", "20"],
                                         cache_dir=cache, log=log), killed, 20, log)
    assert not (killed / "metrics.json").exists()
    assert 20 <= procs.checkpoints(killed)[-1] < QUICK.pc_steps + QUICK.ts_steps + QUICK.wm_steps
    procs.run("neuro_dynamics", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
    assert procs.records(killed) == procs.records(straight)
    assert json.loads((killed / "metrics.json").read_text())["timings"]["sessions"] == 2


def test_bad_config(capsys):
    with pytest.raises(SystemExit):
        nd.main(["--dt", "20", "--tau", "10"])
    assert "dt <= tau" in capsys.readouterr().err
    for argv, message in ((["--parts", "dreams"], "parts must be"), (["--parts", "memory", "memory"], "parts must be"), (["--violation-starts", "98"], "violation_starts"),
                          (["--ts-taus", "0.5", "4"], "ts_taus"), (["--wm-length", "1"], "wm_length")):
        with pytest.raises(SystemExit):
            nd.main(argv)
        assert message in capsys.readouterr().err
