"""experiments.gradient_flow: the --quick run end to end, and the measurement it rests on."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import gradient_flow as gf
from seqjax.data import adding_problem
from seqjax.experiment import config_from_json
from seqjax.recurrence import rnn


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    """The run directory and summary of `python -m experiments.gradient_flow --quick` (run in its own
    process, once per session: see conftest.py)."""
    out = quick_run_dir("gradient_flow")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_run_writes_every_output(quick_run):
    out, summary = quick_run
    for name in ("config.json", "run.json", "metrics.jsonl", "metrics.json", "gradient_flow.png",
                 "training_loss.png", "curves.npz"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "gradient_flow.png").read_bytes()[:4] == b"\x89PNG"

    config = config_from_json(gf.Config, json.loads((out / "config.json").read_text()))
    assert config == gf.Config(**gf.Config.QUICK)

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    per_run = config.train_steps
    assert len(records) == len(config.models) * len(config.radii) * config.seeds * per_run
    assert all(math.isfinite(r["loss"]) for r in records)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["quick"] is True and metrics["length"] == config.length
    assert metrics["timings"]["sessions"] == 1 and metrics["timings"]["runtime_s"] > 0
    radii = {f"{r:g}" for r in config.radii}
    for phase in ("init", "trained"):
        assert set(metrics["results"][phase]) == {"elman", "lstm", "lstm_c", "gru"}
        for series in metrics["results"][phase].values():
            assert set(series) == radii
            for entry in series.values():
                assert math.isfinite(entry["decay_per_step"]) and entry["decay_per_step"] > 0
                assert math.isfinite(entry["ratio_at_max_lag"])
                lag = entry["vanishing_lag"]
                assert lag is None or 0 <= lag < config.length
    for by_radius in metrics["final_train_loss"].values():
        assert set(by_radius) == radii
        assert all(math.isfinite(v) and v > 0 for v in by_radius.values())

    curves = np.load(out / "curves.npz")
    assert curves["init_elman_h"].shape == (len(config.radii), config.seeds, config.length)
    assert curves["init_lstm_c"][..., 0].max() == 0.0  # c_T never reaches the readout


def test_quick_run_shows_the_physics(quick_run):
    _, summary = quick_run
    init = summary["results"]["init"]
    # Contracting tanh RNN: at radius 0.5 every step multiplies the gradient by at most 0.5
    # (tanh' <= 1), so after 19 steps it is below 0.5**19 ~ 2e-6 of its value at lag 0.
    assert init["elman"]["0.5"]["ratio_at_max_lag"] < 0.5 ** (gf.Config.QUICK["length"] - 1)
    assert init["elman"]["0.5"]["decay_per_step"] < 0.55
    # The LSTM's additive cell-state path keeps far more gradient at the same radius.
    assert init["lstm"]["0.5"]["ratio_at_max_lag"] > 100 * init["elman"]["0.5"]["ratio_at_max_lag"]
    # Larger recurrent weights carry more gradient back (monotone in the radius here).
    assert init["elman"]["2"]["ratio_at_max_lag"] > init["elman"]["1"]["ratio_at_max_lag"]
    assert init["elman"]["1"]["ratio_at_max_lag"] > init["elman"]["0.5"]["ratio_at_max_lag"]


@pytest.mark.parametrize("model", gf.MODELS)
def test_probe_scan_is_the_forward_pass_and_its_gradient_is_dl_dh(model):
    """The probes change nothing in the forward pass, and their gradient is dL/dh_t as computed
    by differentiating the tail of the sequence from h_t directly."""
    config = gf.Config(**gf.Config.QUICK)
    cell = gf.make_cell(model, config)
    params = gf.init_model(cell, jax.random.key(0), 8, 1.3)
    xs, ys = adding_problem(jax.random.key(0), 3, 12)

    carry, _ = rnn(cell, params["cell"], xs, return_carry=True)
    zero = cell.zero_carry(params["cell"], jnp.float32)
    probes = jax.tree.map(lambda z: jnp.zeros((12, *z.shape)), zero)
    probed = jax.vmap(lambda x: gf.final_carry_with_probes(cell, params["cell"], x, probes))(xs)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), probed, carry)

    grads = gf.carry_gradients(cell, params, xs, ys)
    t = 4  # dL/d(carry after step t), by running steps t+1 .. T-1 from that carry
    x0, y0 = xs[0], ys[0]
    head = gf.final_carry_with_probes(cell, params["cell"], x0[: t + 1], jax.tree.map(lambda p: p[: t + 1], probes))

    def tail_loss(c):
        c, _ = jax.lax.scan(lambda c, x: cell.step(params["cell"], c, x), c, x0[t + 1 :])
        return jnp.square(gf.readout(params, gf.hidden_state(c)) - y0)

    direct = jax.grad(tail_loss)(head)
    jax.tree.map(
        lambda g, d: np.testing.assert_allclose(g[0, t], d, rtol=1e-4, atol=1e-7), grads, direct
    )


def test_summarise_curve():
    ratio = 0.5 ** np.arange(30.0)
    s = gf.summarise_curve(ratio, 1e-6)
    assert s["vanishing_lag"] == 20  # 0.5**20 = 9.5e-7 is the first below 1e-6
    assert s["decay_per_step"] == pytest.approx(0.5)
    assert gf.summarise_curve(1.1 ** np.arange(30.0), 1e-6)["vanishing_lag"] is None
    underflow = np.where(np.arange(30) < 10, ratio, 0.0)
    assert gf.summarise_curve(underflow, 1e-6)["decay_per_step"] == pytest.approx(0.5)
    assert gf.summarise_curve(underflow, 1e-6)["underflow_from_lag"] == 10


def test_bad_config_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        gf.main(["--radii", "0.5,-1"])
    assert "radii must be positive finite numbers" in capsys.readouterr().err
