"""experiments.forecasting: the --quick run end to end, a SIGKILL and resume, and the pieces it
rests on (the networks' view of a series, the recursive forecast, the statsmodels baselines)
against independent references."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("statsmodels", reason="the forecasting experiment needs statsmodels: pip install 'seqjax[forecasting]'")

import experiment_processes as procs  # noqa: E402
from experiments import forecasting as fc  # noqa: E402
from seqjax.data.forecasting import seasonal_naive  # noqa: E402
from seqjax.train.forecast_metrics import forecast_scores, mase_scale  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    out = quick_run_dir("forecasting")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_run_writes_every_output_and_scores_every_contender(quick_run):
    out, summary = quick_run
    for name in ("config.json", "run.json", "metrics.jsonl", "metrics.json", "forecasts.png", "horizons.png",
                 "forecasts_nile.npz"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    config = fc.Config(**fc.Config.QUICK)
    nile = summary["results"]["nile"]
    assert set(nile) == {"persistence", "ar", "arima", *config.models}  # no season: no seasonal naive
    for model, s in nile.items():
        assert len(s["rmse"]) == fc.SETTINGS["nile"]["horizon"] and all(math.isfinite(v) for v in s["rmse"]), model
        assert s["count"] == [20, 19, 18, 17, 16]
    # The persistence row is the definition, recomputed here from the series.
    data = fc.Prepared("nile")
    want = forecast_scores(seasonal_naive(data.y, data.origins, data.horizon, 1), data.targets,
                           mase_scale(data.y[:data.n_train], 1))
    assert nile["persistence"]["rmse"] == pytest.approx(want["rmse"])
    arrays = np.load(out / "forecasts_nile.npz")
    np.testing.assert_allclose(arrays["persistence"], seasonal_naive(data.y, data.origins, data.horizon, 1))
    assert summary["best"]["nile"]["model"] in nile


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_results(quick_run, tmp_path, xla_cache):
    straight, _ = quick_run
    killed = tmp_path / "killed"
    cache = xla_cache("forecasting")
    log = tmp_path / "killed.log"
    proc = procs.start("forecasting", ["--quick", "--out", str(killed), "--checkpoint-every", "80"],
                       cache_dir=cache, log=log)
    procs.kill_at_checkpoint(proc, killed, 80, log)   # inside the second network (60 steps each)
    assert not (killed / "metrics.json").exists()
    procs.run("forecasting", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
    assert json.loads((killed / "metrics.json").read_text())["timings"]["sessions"] == 2


@pytest.mark.parametrize("name", ["co2", "nile"])
def test_the_networks_view_decodes_to_the_series_and_never_sees_the_future(name):
    data = fc.Prepared(name)
    o = data.origins
    # Encoding the true future and decoding it gives the true future back.
    future = data.targets[:-data.horizon]
    shift = 1 if data.transform == "difference" else 0
    z_future = np.stack([data.z[i - shift:i - shift + data.horizon] for i in o[:-data.horizon]])
    np.testing.assert_allclose(data.decode(z_future, o[:-data.horizon]), future, rtol=1e-12)
    # The window before an origin depends on y[:o] only.
    windows = data.windows_before(o)
    poisoned = fc.Prepared(name)
    for i, origin in enumerate(o):
        y = data.y.copy()
        y[origin:] = 1e6
        poisoned.z = poisoned.encode(y)
        np.testing.assert_array_equal(poisoned.windows_before(np.array([origin]))[0], windows[i])
    # Standardisation uses the training part only.
    train = data.y[:data.n_train]
    base = np.diff(train) if data.transform == "difference" else train
    assert data.mean == pytest.approx(base.mean()) and data.std == pytest.approx(base.std())


def test_recursive_forecast_is_the_loop_of_one_step_predictions():
    params = fc.init_model("gru", jax.random.key(3), 8, 1)
    windows = jax.random.normal(jax.random.key(4), (5, 7))
    got = np.asarray(fc.recursive_forecast("gru", params, windows, 4))
    window = np.asarray(windows)
    for h in range(4):
        nxt = np.asarray(fc.predict("gru", params, jnp.asarray(window)[:, :, None]))[:, 0]
        np.testing.assert_allclose(got[:, h], nxt, rtol=1e-5, atol=1e-6)
        window = np.concatenate([window[:, 1:], nxt[:, None]], axis=1)


def test_ar_baseline_is_the_fitted_recursion_without_refitting():
    """``AutoRegResults.apply`` keeps the fitted parameters: the forecasts equal the AR recursion
    with those parameters, run here by hand from each origin."""
    from statsmodels.tsa.ar_model import AutoReg

    data = fc.Prepared("nile")
    train = data.y[:data.n_train]
    res = AutoReg(train, lags=[1, 2], trend="c").fit()
    c, phi = res.params[0], res.params[1:]
    for o in data.origins[:5]:
        history = list(data.y[:o])
        want = []
        for _ in range(3):
            nxt = c + phi[0] * history[-1] + phi[1] * history[-2]
            want.append(nxt)
            history.append(nxt)
        np.testing.assert_allclose(res.apply(data.y[:o]).forecast(3), want, rtol=1e-10)
