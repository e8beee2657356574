"""experiments.long_range: the --quick run end to end, the baselines, the presets and the losses."""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest

from experiments import long_range as lr
from seqjax.data import COPY_VOCAB
from seqjax.experiment import config_from_json, parse


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    """The run directory and summary of `python -m experiments.long_range --quick` (run in its own
    process, once per session: see conftest.py)."""
    out = quick_run_dir("long_range")
    return out, json.loads((out / "metrics.json").read_text())


def test_quick_run_writes_every_output(quick_run):
    out, summary = quick_run
    for name in ("config.json", "run.json", "metrics.jsonl", "metrics.json", "long_range.png", "training_curves.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in ("long_range.png", "training_curves.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"

    config = config_from_json(lr.Config, json.loads((out / "config.json").read_text()))
    assert config == lr.Config(**lr.Config.QUICK)
    assert json.loads((out / "run.json").read_text()) == {"experiment": "long_range", "quick": True}
    # The default checkpoint_every is beyond the quick run: only the final checkpoint is there.
    runs = sum(len(config.lags(t)) for t in config.tasks) * len(config.models)
    assert [p.name for p in (out / "checkpoints").iterdir()] == [str(runs * config.steps)]

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert len(train) == runs * config.steps
    assert len(evals) == runs * config.eval_points
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in train)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["quick"] is True and metrics["steps"] == config.steps
    assert set(metrics["results"]) == set(config.tasks)
    for task, by_model in metrics["results"].items():
        assert set(by_model) == set(config.models)
        for model, by_lag in by_model.items():
            assert set(by_lag) == {str(lag) for lag in config.lags(task)}
            for lag, entry in by_lag.items():
                for key in ("test_loss", "baseline", "final_train_loss"):
                    assert math.isfinite(entry[key]) and entry[key] > 0, (task, model, key)
                assert metrics["timings"]["runs"][task][model][lag]["wall_s"] > 0
                assert entry["steps"] == config.steps and isinstance(entry["solved"], bool)
                if task == "copy":
                    assert 0.0 <= entry["recall_accuracy"] <= 1.0
    assert set(metrics["criteria"]) == set(config.tasks)


def test_recorded_baselines_are_the_formulas(quick_run):
    _, summary = quick_run
    config = lr.Config(**lr.Config.QUICK)
    for entry in summary["results"]["adding"]["elman"].values():
        assert entry["baseline"] == pytest.approx(2 / 12)
    s = config.copy_symbols
    for lag, entry in summary["results"]["copy"]["lstm"].items():
        assert entry["baseline"] == pytest.approx(s * math.log(8) / (int(lag) + 2 * s))
        assert entry["chance_accuracy"] == pytest.approx(1 / 8)
        assert entry["sequence_length"] == int(lag) + 2 * s
        # Whatever it learned in a few steps, the copy loss is a per-step mean over ~uniform
        # logits at worst: far below the cross-entropy of a confidently wrong model.
        assert entry["test_loss"] < 2 * math.log(COPY_VOCAB)


@pytest.mark.parametrize("model", [m for m in lr.MODELS if m not in lr.Config.QUICK["models"]])
def test_losses_at_init(model):
    """The models the quick run leaves out (it trains the others end to end): copy loss and
    recall accuracy at initialisation are well formed. A random readout of scale 1/sqrt(width)
    gives logits of order 1, a loss near log(10)."""
    config = lr.Config(**lr.Config.QUICK)
    tokens, targets = lr.draw("copy", jax.random.key(0), 4, 5, config)
    params = lr.init_model(model, jax.random.key(1), COPY_VOCAB, COPY_VOCAB, config)
    loss, aux = jax.jit(lr.make_loss(model, "copy", config))(params, (tokens, targets), None)
    assert 0.5 * math.log(COPY_VOCAB) < float(loss) < 2 * math.log(COPY_VOCAB)
    assert 0.0 <= float(aux["recall_accuracy"]) <= 1.0


def test_data_are_shared_by_models_and_split_by_key():
    config = lr.Config(**lr.Config.QUICK)
    n = 8  # a small batch: one quick compilation
    train = lr.draw("adding", lr.task_key(0, "adding", 12, "train"), n, 12, config)
    again = lr.draw("adding", lr.task_key(0, "adding", 12, "train"), n, 12, config)
    test = lr.draw("adding", lr.task_key(0, "adding", 12, "test"), n, 12, config)
    np.testing.assert_array_equal(train[0], again[0])
    assert not np.array_equal(train[0], test[0])
    assert train[0].shape == (n, 12, 2) and train[1].shape == (n,)


def test_preset_readme_and_flag_precedence():
    args = parse(lr.Config, ["--preset", "readme"])
    assert args.config.models == lr.PRESETS["readme"]["models"]
    assert args.config.adding_lengths == lr.PRESETS["readme"]["adding_lengths"]
    args = parse(lr.Config, ["--preset", "readme", "--adding-lengths", "30", "--steps", "200"])
    assert args.config.adding_lengths == (30,) and args.config.steps == 200
    assert args.config.copy_lags == lr.PRESETS["readme"]["copy_lags"]
    # --quick wins over the preset, explicit flags over both.
    args = parse(lr.Config, ["--preset", "readme", "--quick", "--hidden", "4"])
    assert args.config.adding_lengths == lr.Config.QUICK["adding_lengths"] and args.config.hidden == 4
    assert args.config.preset == "readme"
    assert parse(lr.Config, []).config == lr.Config()


def test_bad_config_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        lr.main(["--models", "elman,rnn"])
    assert "models must be a non-empty subset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        lr.main(["--steps", "100", "--chunk", "30"])
    assert "chunk (30) must divide steps (100)" in capsys.readouterr().err
