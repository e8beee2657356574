"""experiments.neural_decoding: the --quick run end to end (its numbers recomputed from its saved
arrays and from the data), a SIGKILL and resume, and the invariants the experiment rests on
(causal decoders, free sampling that feeds its own spikes back)."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiment_processes as procs
from experiments import neural_decoding as nd
from seqjax.analysis.linear_decoders import r_squared
from seqjax.analysis.population_statistics import compare


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    out = quick_run_dir("neural_decoding")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_run_writes_every_output_and_its_numbers_recompute(quick_run):
    out, summary = quick_run
    config = nd.Config(**nd.Config.QUICK)
    for name in ("config.json", "run.json", "metrics.jsonl", "metrics.json", "decoded.png", "r2.png",
                 "raster.png", "statistics.png", "predictions_place_cells.npz", "samples_place_cells.npz"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert set(summary["decoding"]) == set(config.populations)
    for pop in config.populations:
        scores = summary["decoding"][pop]
        assert set(scores) == {*nd.LINEAR, *config.networks}
        data = nd.Population(pop, config)
        # The linear decoders are deterministic: recomputed here, the same numbers.
        preds, fitted = nd.linear_decoders(data, config)
        assert fitted["wiener_ridge"] == summary["fitted"][pop]["wiener_ridge"]
        arrays = np.load(out / f"predictions_{pop}.npz")
        np.testing.assert_allclose(arrays["targets"], data.targets[data.test])
        scored = slice(config.lags - 1, None)
        for decoder in scores:
            want = r_squared(arrays[decoder][:, scored], arrays["targets"][:, scored])
            assert scores[decoder]["r2"] == pytest.approx(want.tolist(), rel=1e-5, abs=1e-6), (pop, decoder)
            assert len(scores[decoder]["r2"]) == data.targets.shape[-1]
        for decoder in nd.LINEAR:
            np.testing.assert_allclose(arrays[decoder], preds[decoder], rtol=1e-6)


def test_quick_run_likelihoods_and_generated_statistics_recompute(quick_run):
    stats = pytest.importorskip("scipy.stats")
    out, summary = quick_run
    config = nd.Config(**nd.Config.QUICK)
    for name in config.spike_data:
        data = nd.Population(name, config)
        lik = summary["likelihood"][name]
        assert lik["constant_rate"]["bits_per_spike"] == 0.0
        test = data.spikes[data.test]
        want = -stats.poisson.logpmf(test, data.rates[data.test]).mean()
        assert lik["true_rate"]["nats_per_bin"] == pytest.approx(want, rel=1e-5)
        assert lik["spikes"] == test.sum() and lik["bins"] == test.size
        assert "psth" not in lik   # place cells: no time-locked rate
        arrays = np.load(out / f"samples_{name}.npz")
        np.testing.assert_array_equal(arrays["held_out"], test)
        assert arrays["generated"].shape == test.shape and arrays["generated"].min() >= 0
        for kind in ("generated", *nd.GENERATIVE_BASELINES):
            got = summary["generative"][name][kind]
            want = compare(arrays[kind], test, bin_size=config.corr_bin)
            for k, v in want.items():
                assert got[k] == pytest.approx(v, nan_ok=True), (name, kind, k)
        # The shuffled baseline keeps each neuron's own trains from the training trials.
        train = data.spikes[data.train]
        shuffled = arrays["shuffled"]
        for n in range(test.shape[2]):
            assert all(any(np.array_equal(shuffled[i, :, n], train[j, :, n]) for j in range(len(train)))
                       for i in range(len(shuffled)))


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_results(quick_run, tmp_path, xla_cache):
    straight, _ = quick_run
    killed = tmp_path / "killed"
    cache = xla_cache("neural_decoding")
    log = tmp_path / "killed.log"
    proc = procs.start("neural_decoding", ["--quick", "--out", str(killed), "--checkpoint-every", "15"],
                       cache_dir=cache, log=log)
    procs.kill_at_checkpoint(proc, killed, 15, log)   # inside the second network (12 steps each)
    assert not (killed / "metrics.json").exists()
    procs.run("neural_decoding", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
    assert json.loads((killed / "metrics.json").read_text())["timings"]["sessions"] == 2


def test_linear_decoders_on_the_two_group_population_see_only_the_power():
    """The motor state is in the oscillations' power: a linear readout of the activity gets
    nothing, the same readout of the squared activity gets most of it."""
    config = nd.Config(trials=60, test_trials=10, validation_trials=10, time=120, lags=5)
    data = nd.Population("two_group", config)
    assert data.targets.shape == (60, 120, 1) and set(np.unique(data.targets)) == {0.0, 1.0}
    preds, fitted = nd.linear_decoders(data, config)
    scores = {k: nd.decoding_scores(v, data, config)["r2_mean"] for k, v in preds.items()}
    assert scores["wiener"] < 0.1 < 0.6 < scores["wiener_squared"]
    assert fitted["wiener_ridge"] in config.ridges


def test_the_chapter_spike_trains_split_like_the_chapter():
    data = nd.Population("chapter_spikes", nd.Config())
    assert data.spikes.shape == (200, 100, 50)
    assert (len(data.train), len(data.val), len(data.test)) == (160, 20, 20)  # the chapter: 160 / 40
    previous, counts = data.next_step(data.test[:2])
    np.testing.assert_array_equal(np.asarray(previous[:, 1:]), np.asarray(counts[:, :-1]))
    assert float(jnp.abs(previous[:, 0]).sum()) == 0.0


@pytest.mark.parametrize("model", ["gru", pytest.param("lstm", marks=pytest.mark.slow)])
def test_recurrent_decoders_are_causal(model):
    params = nd.init_network(model, jax.random.key(0), 5, 6, 2)
    xs = jax.random.normal(jax.random.key(1), (2, 12, 5))
    changed = xs.at[:, 7:].set(100.0)
    a, b = nd.network_outputs(model, params, xs), nd.network_outputs(model, params, changed)
    np.testing.assert_array_equal(np.asarray(a[:, :7]), np.asarray(b[:, :7]))
    assert not np.allclose(np.asarray(a[:, 7:]), np.asarray(b[:, 7:]))


def test_free_sampling_feeds_its_own_spikes_back():
    """The rates the sampler drew from are the teacher-forced rates of the model given the
    sampled history (counts of bin t - 1 as the input of bin t), and the counts are Poisson."""
    n = 4
    params = nd.init_network("gru", jax.random.key(2), n, 8, n, bias=nd.softplus_inverse(np.full(n, 0.7)))
    counts, rates = nd.sample_spikes(params, jax.random.key(3), 300, 8)
    assert counts.shape == rates.shape == (300, 8, n) and counts.dtype == jnp.int32
    previous = jnp.concatenate([jnp.zeros((300, 1, n)), counts[:, :-1].astype(jnp.float32)], axis=1)
    forced = jax.nn.softplus(nd.network_outputs("gru", params, previous))
    np.testing.assert_allclose(np.asarray(forced), np.asarray(rates), rtol=1e-5, atol=1e-6)
    residual = np.asarray(counts, np.float64) - np.asarray(rates, np.float64)
    assert abs(residual.mean()) < 0.03
    assert np.mean(residual ** 2) == pytest.approx(float(np.mean(rates)), rel=0.08)
    assert nd.softplus_inverse(np.array([0.7])) == pytest.approx(math.log(math.expm1(0.7)))


def test_config_rejects_bad_values_by_name():
    with pytest.raises(ValueError, match="populations"):
        nd.Config(populations=("cortex",))
    with pytest.raises(ValueError, match="trials"):
        nd.Config(trials=40, test_trials=30, validation_trials=10)
    with pytest.raises(ValueError, match="lags"):
        nd.Config(time=20, lags=20)
    with pytest.raises(ValueError, match="ridges"):
        nd.Config(ridges=(-1.0,))
