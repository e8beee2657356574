"""experiments.recurrent_internals: its measurements against brute force (saturation fractions,
PCA against numpy's covariance eigenvectors, correlations against np.corrcoef, text features),
and the --quick run end to end: every figure, activations.npz consistent with metrics.json, gates
in range, states from the gates equal to rnn's."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from experiments import recurrent_internals as ri
from seqjax.cells import gru, lstm


def test_saturation_counts():
    g = np.array([[0.05, 0.5], [0.95, 0.5], [0.5, 0.99], [0.01, 0.09]])
    s = ri.saturation(g)
    np.testing.assert_allclose(s["left"], [2 / 4, 1 / 4])
    np.testing.assert_allclose(s["right"], [1 / 4, 1 / 4])
    assert s["mean_left"] == pytest.approx(3 / 8)


def test_pca_matches_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) @ np.diag([3.0, 2.0, 1.0, 0.5, 0.1])
    proj, ratio = ri.pca_2d(x)
    cov = np.cov(x - x.mean(0), rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    np.testing.assert_allclose(ratio, vals[order] / vals.sum(), rtol=1e-8)
    ref = (x - x.mean(0)) @ vecs[:, order[:2]]
    np.testing.assert_allclose(np.abs(proj), np.abs(ref), atol=1e-8)  # up to the sign of each axis


def test_correlations_and_features():
    rng = np.random.default_rng(1)
    v, f = rng.normal(size=(50, 3)), rng.normal(size=50)
    np.testing.assert_allclose(ri.correlations(v, f), [np.corrcoef(v[:, u], f)[0, 1] for u in range(3)])
    assert ri.correlations(v, np.ones(50)).tolist() == [0.0, 0.0, 0.0]
    feats = ri.text_features('He said "no way". Ok')
    assert feats["in_quotes"].tolist()[7:16] == [0.0] + [1.0] * 7 + [0.0]  # the opening quote counts, the closing not
    assert feats["word_position"][:3].tolist() == [1, 2, 0] and feats["is_space"][2] == 1.0
    assert feats["sentence_position"][16] == 0 and feats["sentence_position"][17] == 1


@pytest.mark.parametrize("make", [lstm, gru])
def test_gates_over_time_states_equal_the_model(make):
    from seqjax.recurrence import rnn

    cell = make()
    params = cell.init(jax.random.key(0), 2, 6)
    xs = jax.random.normal(jax.random.key(1), (11, 2))
    carries, gates = ri.gates_over_time(cell, params, xs)
    h = carries.h if make is lstm else carries
    np.testing.assert_allclose(np.asarray(h), np.asarray(rnn(cell, params, xs[None])[0]), atol=1e-6)
    with pytest.raises(ValueError, match="no gates"):
        from seqjax.cells import elman

        ri.gates_over_time(elman("tanh"), params, xs)


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    out = quick_run_dir("recurrent_internals")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_writes_everything_consistently(quick_run):
    out, m = quick_run
    for name in ("char_units.png", "char_gates.png", "saturation.png", "trajectories.png", "training.png",
                 "activations.npz", "metrics.jsonl"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    data = np.load(out / "activations.npz")
    text = str(data["char/text"])
    t = len(text)
    assert data["char/h"].shape == (t, m["char"]["hidden"]) and data["char/gate_f"].shape == (t, m["char"]["hidden"])
    for k in ("i", "f", "o"):
        g = data[f"char/gate_{k}"]
        assert np.all((g > 0) & (g < 1))
        np.testing.assert_allclose(ri.saturation(g)["left"], m["char"]["saturation"][k]["left"])
    assert np.all(np.abs(data["char/gate_g"]) < 1)
    np.testing.assert_allclose(np.tanh(data["char/c"]) * data["char/gate_o"], data["char/h"], atol=1e-5)
    assert m["char"]["states_max_abs_diff"] < 1e-5
    units = [u["unit"] for u in m["char"]["interpretable_units"].values()]
    assert len(set(units)) == len(units)
    for name in ri.ADDING_CELLS:
        s = m[f"adding_{name}"]
        assert s["states_max_abs_diff"] < 1e-5 and s["baseline_mse"] == pytest.approx(1 / 6)
        xs = data[f"adding_{name}/xs"]
        assert xs.shape[1] == s["length"] and np.all(xs[..., 1].sum(1) == 2)
        gates = ("i", "f", "o") if name == "lstm" else ("r", "z")
        assert set(s["saturation"]) == set(gates)
        h = data[f"adding_{name}/h"]
        np.testing.assert_allclose(h[:, -1].std() > 0, True)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_results(tmp_path, quick_run_dir, xla_cache):
    import experiment_processes as procs

    straight = quick_run_dir("recurrent_internals")
    killed = tmp_path / "killed"
    cache = xla_cache("recurrent_internals")
    log = tmp_path / "killed.log"
    # checkpoint 30 of 60 steps: inside the adding-problem LSTM, after the char LSTM
    procs.kill_at_checkpoint(procs.start("recurrent_internals", ["--quick", "--out", str(killed)], cache_dir=cache,
                                         log=log), killed, 30, log)
    assert not (killed / "metrics.json").exists()
    procs.run("recurrent_internals", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    a, b = procs.summary_without_timings(straight), procs.summary_without_timings(killed)
    assert a == b
    assert procs.records(straight) == procs.records(killed)
    np.testing.assert_array_equal(np.load(straight / "activations.npz")["char/h"],
                                  np.load(killed / "activations.npz")["char/h"])
