"""experiments.code_lab: a two-exercise --quick run in process, the claims the numbers rest on, and
(marked slow: the whole --quick run compiles about twenty models, about 40 s on a quiet 2-core
machine) every exercise end to end and SIGKILL + resume."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiment_processes as procs
from experiments import code_lab as lab
from seqjax.cells import gru, lstm
from seqjax.data import adding_problem
from seqjax.experiment import config_from_json
from seqjax.recurrence import rnn

QUICK = lab.Config(**lab.Config.QUICK)
TIMEOUT_S = 1200  # the whole --quick run is ~40 s on a quiet machine; several times that when shared


def _run(argv, *, cache_dir, log):
    proc = procs.start("code_lab", argv, cache_dir=cache_dir, log=log)
    assert proc.wait(timeout=TIMEOUT_S) == 0, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, xla_cache):
    base = tmp_path_factory.mktemp("code_lab_quick")
    _run(["--quick", "--out", str(base / "run")], cache_dir=xla_cache("code_lab"), log=base / "stderr.log")
    out = base / "run"
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_run_of_two_exercises_in_process(tmp_path):
    out = tmp_path / "run"
    summary = lab.main(["--quick", "--exercise", "clipping,gru_gates", "--out", str(out)])
    for name in ("config.json", "metrics.jsonl", "metrics.json", "clipping.png", "gru_gates.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    records = procs.records(out)
    assert len(records) == 2 * QUICK.clip_steps + QUICK.gru_steps
    assert [r["variant"] for r in records[:QUICK.clip_steps]] == ["clipped"] * QUICK.clip_steps
    ex = summary["exercises"]
    assert set(ex) == {"clipping", "gru_gates"} and [r["exercise"] for r in summary["table"]] == ["clipping", "gru_gates"]
    # The same init and batches: the first step's loss and (pre-clipping) gradient norm agree.
    first = {r["variant"]: r for r in records if r["step"] == 1 and r["exercise"] == "clipping"}
    assert first["clipped"]["loss"] == first["unclipped"]["loss"]
    assert first["clipped"]["grad_norm"] == pytest.approx(first["unclipped"]["grad_norm"], rel=1e-6)
    assert ex["clipping"]["baseline_mse"] == pytest.approx(1 / 6)
    assert ex["gru_gates"]["max_abs_difference_to_cell"] < 1e-5
    g = ex["gru_gates"]["params_cell"]
    h = QUICK.gru_hidden
    assert g["gru"] == 3 * h * (2 + h) + 4 * h   # PyTorch's reset-after GRU: w_i, w_h, b, b_hn
    assert g["lstm"] == 4 * h * (2 + h) + 4 * h
    assert 0 < ex["gru_gates"]["update_gate_marked"] < 1


@pytest.mark.slow
def test_quick_run_writes_every_output(quick_run):
    out, summary = quick_run
    for name in ("config.json", "run.json", "metrics.jsonl", "metrics.json", *(f"{e}.png" for e in lab.EXERCISES)):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert config_from_json(lab.Config, json.loads((out / "config.json").read_text())) == QUICK
    records = procs.records(out)
    assert len(records) == sum(steps for _, _, steps in lab.plan(QUICK))
    assert summary["quick"] is True and summary["timings"]["sessions"] == 1
    assert set(summary["exercises"]) == set(lab.EXERCISES)
    assert [row["exercise"] for row in summary["table"]] == list(lab.EXERCISES)
    ex = summary["exercises"]
    # Baselines are what they claim to be, whatever the (tiny) training did.
    assert ex["lstm_sine"]["test_mse"]["noise_floor"] == pytest.approx(0.04)
    assert ex["lstm_sine"]["test_mse"]["ar20"] < ex["lstm_sine"]["test_mse"]["persistence"]
    assert ex["lstm_sine"]["test_mse"]["ar20"] > 0.04 * 0.9  # nothing beats the noise by much
    assert ex["elman_pattern"]["majority"] == pytest.approx(0.5)
    assert ex["elman_pattern"]["chapter_iid_majority_accuracy"] == pytest.approx(124 / 125, abs=0.002)
    assert ex["bidirectional"]["left_to_right_ceiling"] == pytest.approx(0.75)
    assert ex["bidirectional"]["majority"] == pytest.approx(0.625, abs=0.05)
    nf = ex["neural_forecast"]
    assert nf["trials"] == {"train": 8, "test": 2} and len(nf["mse_per_horizon"]["dense_windows"]) == QUICK.neural_horizon
    assert nf["mse_mean"]["ar20"] < nf["mse_mean"]["zero"]
    ts = ex["transformer_sine"]
    assert len(ts["forecast_mse_per_horizon"]["causal"]) == QUICK.transformer_length - QUICK.transformer_context
    # The teaching LSTM and seqjax.nn.LSTM are the same function (and gradient) with the same weights.
    for sizes in ex["lstm_sine"]["equality"].values():
        assert sizes["max_abs_output_difference"] < 1e-5 and sizes["max_rel_gradient_difference"] < 1e-4
    assert ex["gru_gates"]["max_abs_difference_to_cell"] < 1e-5
    sim = ex["attention_preview"]["similarity_preview"]
    assert sim["dot"]["row_sums_max_error"] < 1e-5
    assert "lstm_sine" in summary["timings"] and "speed_loaded_machine" in summary["timings"]["lstm_sine"]


def test_teaching_lstm_is_the_cell_with_regrouped_weights():
    cell = lstm()
    fused = cell.init(jax.random.key(0), 3, 5)
    xs = jax.random.normal(jax.random.key(1), (2, 7, 3))
    np.testing.assert_allclose(lab.teaching_lstm(lab.teaching_lstm_params(fused), xs),
                               rnn(cell, fused, xs, fused=False), atol=1e-6)
    # The regrouping is the fused layout's i, f, g, o blocks: e.g. the forget gate's bias.
    np.testing.assert_array_equal(lab.teaching_lstm_params(fused)["forget"]["b"], fused["b"][5:10])


def test_gru_gate_replay_is_the_cell_and_z_near_one_keeps_the_state():
    params = gru().init(jax.random.key(2), 2, 4)
    xs, _ = adding_problem(jax.random.key(3), 1, 9)
    out = lab.gru_gates_over_time(params, xs[0])
    np.testing.assert_allclose(out["h"], rnn(gru(), params, xs)[0], atol=1e-6)
    # Force the update gate open (bias +30): the state stays where it started (zeros).
    stuck = params | {"b": params["b"].at[4:8].set(30.0)}
    np.testing.assert_allclose(lab.gru_gates_over_time(stuck, xs[0])["h"], 0.0, atol=1e-6)


@pytest.mark.parametrize("variant", ["causal", "leaky"])
def test_the_causal_mask_is_what_stops_the_leak(variant):
    job = lab.transformer_sine_job(variant, QUICK)
    params = jax.jit(job.init)()
    xs = jax.random.normal(jax.random.key(4), (2, QUICK.transformer_length))
    changed = xs.at[:, 10:].add(1.0)           # change the future of position 9
    before, after = job.forward(params, xs), job.forward(params, changed)
    diff = float(jnp.max(jnp.abs(before[:, :10] - after[:, :10])))
    if variant == "causal":
        assert diff < 1e-6                     # outputs up to 9 ignore positions 10..
    else:
        assert diff > 1e-3                     # the chapter's unmasked encoder reads them


def test_padding_hides_the_future_in_autoregressive_generation():
    job = lab.transformer_sine_job("leaky", QUICK)
    params = jax.jit(job.init)()
    xs = jax.random.normal(jax.random.key(5), (2, QUICK.transformer_length))
    lengths = jnp.full((2,), 12)
    a = job.forward(params, xs, seq_lengths=lengths)
    b = job.forward(params, xs.at[:, 12:].set(7.0), seq_lengths=lengths)
    np.testing.assert_allclose(a[:, :12], b[:, :12], atol=1e-6)


def test_unidirectional_gets_the_closest_parameter_count():
    h = lab.unidirectional_hidden(lab.Config())
    v = lab.Config().bidir_vocab
    bi = lab.gru_count(v, 16, 2, 2, 32)
    assert abs(lab.gru_count(v, h, 2, 1, 32) - bi) <= abs(lab.gru_count(v, h + 1, 2, 1, 32) - bi)
    assert abs(lab.gru_count(v, h, 2, 1, 32) - bi) <= abs(lab.gru_count(v, h - 1, 2, 1, 32) - bi)
    job = lab.bidirectional_job("bidirectional", lab.Config())
    assert lab.num_params(jax.eval_shape(job.init)) == bi   # the formula counts the real parameters


def test_neural_split_is_by_trial():
    data = lab.neural_data(QUICK)
    train_rows = {row.tobytes() for row in data["x_train"][:, :1].reshape(len(data["x_train"]), -1)}
    assert all(row.tobytes() not in train_rows for row in data["x_test"][:, :1].reshape(len(data["x_test"]), -1))
    assert data["x_train"].shape[0] == 8 * data["x_test"].shape[0] // 2


def test_config_refuses_bad_values_by_name():
    with pytest.raises(ValueError, match="exercise"):
        lab.Config(exercise=("nope",))
    with pytest.raises(ValueError, match="lstm_steps"):
        lab.Config(lstm_steps=0)
    with pytest.raises(ValueError, match="transformer_context"):
        lab.Config(transformer_context=50)
    assert [e for e, _, _ in lab.plan(lab.Config(exercise=("clipping",)))] == ["clipping", "clipping"]


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_results(quick_run, tmp_path, xla_cache):
    straight, _ = quick_run
    killed, cache = tmp_path / "killed", xla_cache("code_lab")
    # checkpoint 30: inside the third run (attention_sentence, steps 21-40 of the sweep)
    argv = ["--quick", "--out", str(killed), "--checkpoint-every", "30"]
    procs.kill_at_checkpoint(procs.start("code_lab", argv, cache_dir=cache, log=tmp_path / "k.log"),
                             killed, 30, tmp_path / "k.log")
    assert not (killed / "metrics.json").exists()
    _run(["--resume", str(killed)], cache_dir=cache, log=tmp_path / "r.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
    assert procs.records(killed) == procs.records(straight)
