"""experiments.neuro_dynamics: the chapter's cortical network diverges, the corrected one does not,
and the timescales read off the eigenvalues are the ones the simulation shows."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import experiment_processes as procs
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


def test_quick_run_and_resume(quick_run_dir, xla_cache, tmp_path):
    out = quick_run_dir("neuro_dynamics")
    m = json.loads((out / "metrics.json").read_text())
    for name in ("activity.png", "eigenvalues.png", "timescales.png", "metrics.json", "config.json"):
        assert (out / name).stat().st_size > 0
    assert not m["chapter"]["bounded"] and m["corrected"]["bounded"]
    assert m["chapter"]["max_abs_x_at"]["199"] > 1e45 and m["corrected"]["max_abs_x"] < 5
    assert m["chapter"]["matches_numpy_loop_rel_err"] < 1e-9
    for mode in m["corrected"]["timescales"]["modes"]:
        assert mode["measured_ms"] == pytest.approx(mode["predicted_ms"], rel=0.25)
    # nothing to train: a resumed run recomputes the same numbers
    procs.run("neuro_dynamics", ["--resume", str(out)], cache_dir=xla_cache("neuro_dynamics"), log=tmp_path / "r.log")
    again = procs.summary_without_timings(out)
    m.pop("timings")
    assert again == m


def test_bad_config(capsys):
    with pytest.raises(SystemExit):
        nd.main(["--dt", "20", "--tau", "10"])
    assert "dt <= tau" in capsys.readouterr().err
