"""experiments.char_rnn: the --quick run end to end (the notebook's CharRNN regenerates its text)."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import char_rnn as cr
from seqjax.experiment import config_from_json


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    """The run directory and summary of `python -m experiments.char_rnn --quick` (run in its own
    process, once per session: see conftest.py)."""
    out = quick_run_dir("char_rnn")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_regenerates_hello_world(quick_run):
    _, summary = quick_run
    hello = summary["hello"]
    assert hello["regenerate_target"] == "hello world! hello world!"
    assert hello["regenerated"] == "hello world! hello world!"
    assert hello["regenerates"] is True
    assert hello["greedy_samples"]["h"].startswith("hello world! hello world!")
    assert hello["vocab"] == [" ", "!", "d", "e", "h", "l", "o", "r", "w"]
    assert hello["windows_per_epoch"] == 25  # the notebook's 25 chunks of 10 per epoch
    # The notebook's code gives ~15-18 at epoch 0, ~0.0125 by epoch 20 (summed over 25 windows).
    assert 10 < hello["summed_loss_by_epoch"]["0"] < hello["uniform_summed_loss"]
    assert hello["final_summed_loss"] < 0.05


def test_quick_writes_every_output(quick_run):
    out, summary = quick_run
    for name in ("config.json", "run.json", "metrics.jsonl", "metrics.json", "samples.txt", "hello_loss.png",
                 "bpc.png", "curves.npz", "tokenizer.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "bpc.png").read_bytes()[:4] == b"\x89PNG"
    config = config_from_json(cr.Config, json.loads((out / "config.json").read_text()))
    assert config == cr.Config(**cr.Config.QUICK)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["quick"] is True
    lm = metrics["lm"]
    assert lm["corpus"] in ("lee_background", "python_docs") and lm["corpus_choice"].startswith("auto")
    assert lm["train_chars"] + lm["held_out_chars"] == lm["corpus_chars"] == config.corpus_chars
    assert lm["held_out_chars"] == config.corpus_chars // 10
    assert 0 < lm["held_out_chars_scored"] <= lm["held_out_chars"] - 1
    assert lm["steps"] == config.train_steps
    for key in ("initial_held_out_bpc", "final_held_out_bpc", "final_train_probe_bpc", "best_held_out_bpc"):
        assert math.isfinite(lm[key]) and 0 < lm[key] < 10, key
    # Even the quick run learns something: below a uniform guess over the vocabulary.
    assert lm["final_held_out_bpc"] < lm["initial_held_out_bpc"] and lm["final_held_out_bpc"] < lm["uniform_bpc"]
    assert set(lm["samples"]) == {"greedy", "T=0.5", "T=1", "T=1.5"}
    for sample in lm["samples"].values():
        assert sample.startswith(config.sample_prompt) and len(sample) == len(config.sample_prompt) + config.sample_length
    samples_txt = (out / "samples.txt").read_text()
    assert "hello world! hello world!" in samples_txt and "T=1.5" in samples_txt

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["part"] == "hello" for r in records) == config.hello_epochs
    steps = [r for r in records if r["part"] == "lm" and "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, config.train_steps + 1))
    assert all(math.isfinite(r["loss"]) for r in steps)
    evals = [r for r in records if "held_out_bpc" in r]
    assert [r["step"] for r in evals] == [0, 20, 40]


def test_sampler_greedy_is_argmax_and_temperature_is_reproducible():
    cell = cr.elman("tanh")
    rng = np.random.default_rng(0)
    # The model's layout (init_params), drawn with NumPy: no compilation besides the sampler's.
    params = {"embed": rng.normal(size=(5, 4)), "cell": {"w_i": rng.normal(size=(4, 8)),
              "w_h": rng.normal(0, 0.4, (8, 8)), "b": rng.normal(size=8)},
              "out": {"w": rng.normal(size=(8, 5)), "b": rng.normal(size=5)}}
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    sample = cr.make_sampler(cell, 6)
    prompt = jnp.array([1, 2])
    greedy = np.asarray(sample(params, prompt, jax.random.key(1), 0.0))
    # Greedy by hand in NumPy: feed the prompt, then take the argmax and feed it back.
    p = jax.tree.map(np.asarray, params)
    step = lambda h, t: np.tanh(p["embed"][t] @ p["cell"]["w_i"] + h @ p["cell"]["w_h"] + p["cell"]["b"])
    h = np.zeros(8, np.float32)
    for t in prompt.tolist():
        h = step(h, t)
    expected = []
    for _ in range(6):
        expected.append(int(np.argmax(h @ p["out"]["w"] + p["out"]["b"])))
        h = step(h, expected[-1])
    assert greedy.tolist() == expected
    a = sample(params, prompt, jax.random.key(2), 1.0)
    b = sample(params, prompt, jax.random.key(2), 1.0)
    np.testing.assert_array_equal(a, b)
    assert ((np.asarray(a) >= 0) & (np.asarray(a) < 5)).all()


def test_epoch_offsets_are_the_draws_of_one_generator_seeded_with_the_seed():
    """The offsets a run that is never stopped draws one after the other (epoch 1 the first draw)
    are what epoch_offset recomputes from the seed and the epoch alone."""
    config = cr.Config(seed=3, bptt=64)
    rng = np.random.default_rng(3)
    expected = [0] + [int(rng.integers(64)) for _ in range(12)]
    assert [cr.epoch_offset(config, e) for e in range(13)] == expected
    assert {cr.epoch_offset(cr.Config(shift_windows=False), e) for e in range(5)} == {0}


def test_config_validation():
    with pytest.raises(ValueError, match="parts"):
        cr.Config(parts=("nope",))
    with pytest.raises(ValueError, match="corpus"):
        cr.Config(corpus="wikitext")
    with pytest.raises(ValueError, match="hello_starts"):
        cr.Config(hello_starts=("x",))
    with pytest.raises(SystemExit):
        cr.main(["--temperatures", "-1"])
