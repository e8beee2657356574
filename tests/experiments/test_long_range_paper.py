"""experiments.long_range's `paper` machinery: the preset, the sweep order, chrono and orthogonal
inits in the models, early stopping at "solved" (steps_to_solve read back from the log), skipping
after a failure, the longest-solved table, and that a run stopped early resumes to the same result."""

from __future__ import annotations

import dataclasses
import json
import math

import jax
import matplotlib.colors
import numpy as np
import pytest

from experiments import long_range as lr
from seqjax.cells import lstm
from seqjax.experiment import RunDir, parse

# A tiny `paper`-style sweep (seconds): the LSTM with chrono + orthogonal init, early stop every 3
# steps, skip after failure, shortest lengths first (adding T = 6, copy L = 4, copy L = 8). The
# adding criterion is lenient (MSE < 0.15, under the 1/6 baseline) so that the run stops early; the
# copy one is out of reach in 24 steps, so copy L = 4 fails and L = 8 is skipped (the last run:
# the skip saves the final checkpoint).
TINY = lr.Config(**(lr.Config.QUICK | {
    "preset": "paper", "models": ("lstm",), "adding_lengths": (6,), "copy_lags": (4, 8),
    "steps": 24, "chunk": 6, "eval_every": 3, "early_stop": True, "skip_after_failure": True,
    "sweep_order": "length", "chrono_models": ("lstm",), "orthogonal_models": ("lstm",),
    "schedule": "constant", "learning_rate": 0.02, "adding_solved_mse": 0.15,
    "copy_solved_accuracy": 0.9, "checkpoint_every": 3,
}))


def test_paper_preset_has_the_papers_lengths_and_budget():
    c = parse(lr.Config, ["--preset", "paper"]).config
    assert max(c.adding_lengths) == 1000 and max(c.copy_lags) == 100
    assert c.adding_lengths == (100, 200, 500, 1000) and c.copy_lags == (10, 20, 50, 100)
    assert c.models == ("elman", "lstm", "gru", "min_gru") and c.hidden == 128
    assert c.steps >= 10_000 and c.steps % c.chunk == 0 and c.early_stop and c.eval_every
    assert c.chrono_models == ("lstm",) and c.orthogonal_models == ("lstm",)
    assert c.schedule == "constant" and c.skip_after_failure and c.sweep_order == "length"
    # Explicit flags win over the preset; the other presets do not turn any of it on.
    c = parse(lr.Config, ["--preset", "paper", "--steps", "5000", "--no-early-stop"]).config
    assert c.steps == 5000 and not c.early_stop and c.hidden == 128
    for preset in ("full", "readme"):
        c = parse(lr.Config, ["--preset", preset]).config
        assert not (c.early_stop or c.skip_after_failure or c.chrono_models or c.orthogonal_models)
        assert c.eval_every is None and c.sweep_order == "task"


def test_sweep_order():
    c = lr.Config(adding_lengths=(100, 200, 500), copy_lags=(10, 20), models=("elman", "lstm"))
    task_order = [(t, lag, m) for t in ("adding", "copy") for lag in c.lags(t) for m in c.models]
    assert lr.plan(c)[0] == task_order  # the default: unchanged
    runs = lr.plan(dataclasses.replace(c, sweep_order="length"))[0]
    assert sorted(runs) == sorted(task_order)
    assert [(t, lag) for t, lag, _ in runs[::2]] == [("adding", 100), ("copy", 10), ("adding", 200),
                                                     ("copy", 20), ("adding", 500)]


def test_eval_steps_and_solved_criterion():
    c = dataclasses.replace(TINY, steps=20, chunk=5, eval_every=6)
    assert lr.eval_steps(c) == [6, 12, 18, 20]
    assert lr.eval_steps(TINY) == list(range(3, 25, 3))
    assert lr.eval_steps(dataclasses.replace(TINY, eval_every=None, early_stop=False, eval_points=4)) == [6, 12, 18, 24]
    assert lr.is_solved("adding", {"loss": 0.149}, TINY) and not lr.is_solved("adding", {"loss": 0.15}, TINY)
    assert not lr.is_solved("adding", {"loss": float("nan")}, TINY)
    assert lr.is_solved("copy", {"recall_accuracy": 0.9}, TINY)
    assert not lr.is_solved("copy", {"recall_accuracy": 0.899}, TINY)


def test_bad_paper_options_are_value_errors():
    with pytest.raises(ValueError, match="early_stop needs eval_every"):
        dataclasses.replace(TINY, eval_every=None)
    with pytest.raises(ValueError, match="eval_every must lie in"):
        dataclasses.replace(TINY, eval_every=25)
    with pytest.raises(ValueError, match="chrono_models must be a subset"):
        dataclasses.replace(TINY, chrono_models=("elman",))
    with pytest.raises(ValueError, match="orthogonal_models must be a subset"):
        dataclasses.replace(TINY, orthogonal_models=("min_gru",))
    # eval_points is not used with eval_every, so it may exceed a short budget.
    assert dataclasses.replace(TINY, steps=6, chunk=6, eval_every=3, eval_points=10).eval_points == 10
    with pytest.raises(ValueError, match="eval_points"):
        dataclasses.replace(TINY, steps=6, chunk=6, eval_every=None, early_stop=False, eval_points=10)


def test_failed_before_skips_longer_lags_of_the_same_task_and_model():
    runs = [("adding", 6, "lstm"), ("adding", 6, "gru"), ("copy", 4, "lstm"), ("adding", 12, "lstm"),
            ("adding", 12, "gru"), ("adding", 24, "lstm")]
    ok, bad = {"record": {"solved": True}}, {"record": {"solved": False}}
    finished = [ok, bad, bad]
    assert lr.failed_before(finished, runs, 3, TINY) is None  # lstm solved adding 6 (copy is another task)
    assert lr.failed_before(finished, runs, 4, TINY) == 6
    finished += [bad, {"skipped": "failed at 6", "failed_at": 6}]
    assert lr.failed_before(finished, runs, 5, TINY) == 12
    assert lr.failed_before(finished, runs, 4, dataclasses.replace(TINY, skip_after_failure=False)) is None


def test_models_get_chrono_and_orthogonal_init_only_where_asked():
    # The paper preset's LSTM: b_i = -b_f, b_f = log U[1, T_max - 1] with T_max the sequence length.
    for task, lag in (("adding", 6), ("copy", 4)):
        t_max = lr.chrono_t_max("lstm", task, lag, TINY)
        assert t_max == lr.sequence_length(task, lag, TINY)
        p = lr.initial_params("lstm", task, TINY, t_max)["cell"]
        h = TINY.hidden
        b_i, b_f = np.asarray(p["b"][:h]), np.asarray(p["b"][h:2 * h])
        np.testing.assert_array_equal(b_i, -b_f)
        assert (b_f >= 0).all() and (b_f <= math.log(t_max - 1) + 1e-6).all()
        for block in np.split(np.asarray(p["w_h"]), 4, axis=1):
            np.testing.assert_allclose(block.T @ block, np.eye(h), atol=1e-5)
    assert lr.chrono_t_max("elman", "adding", 12, TINY) is None
    with pytest.raises(ValueError, match="t_max is needed"):
        lr.init_model("lstm", jax.random.key(0), 2, 1, TINY)
    # Without the options, the initialisation is the one before they existed.
    plain = lr.Config(**lr.Config.QUICK)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), 100), lr.MODELS.index("lstm"))
    expect = lstm(forget_bias=1.0).init(jax.random.split(key)[0], 2, plain.hidden)
    got = lr.initial_params("lstm", "adding", plain)["cell"]
    for k in expect:
        np.testing.assert_array_equal(got[k], expect[k])


def _records(run: RunDir) -> list[dict]:
    return [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]


def _without_timings(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "timings"}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    run = RunDir.create("long_range", out=tmp_path_factory.mktemp("paper") / "run")
    run.write_config(TINY)
    return run, lr.run(TINY, run)


def test_early_stop_at_the_first_solved_evaluation(straight, tmp_path):
    run, summary = straight
    records = _records(run)
    adding = summary["results"]["adding"]["lstm"]
    assert set(adding) == {"6"}
    stopped_early = 0
    for lag, r in adding.items():
        evals = [e for e in records if e["kind"] == "eval" and e["task"] == "adding" and e["lag"] == int(lag)]
        train = [e for e in records if e["kind"] == "train" and e["task"] == "adding" and e["lag"] == int(lag)]
        # Independently from the log: the first evaluation under the threshold is where it stopped.
        first = next((e["step"] for e in evals if e["loss"] < TINY.adding_solved_mse), None)
        assert r["steps_to_solve"] == first and r["solved"] == (first is not None)
        assert r["steps"] == (first or TINY.steps) == len(train) == train[-1]["step"]
        assert [e["step"] for e in evals] == [s for s in lr.eval_steps(TINY) if s <= r["steps"]]
        assert r["test_loss"] == evals[-1]["loss"]
        stopped_early += first is not None and first < TINY.steps
    assert stopped_early >= 1  # the test exercises the early stop
    # The copy task fails at L = 4 within the budget (trained to the end), so L = 8 is skipped.
    copy = summary["results"]["copy"]["lstm"]
    assert set(copy) == {"4"} and not copy["4"]["solved"] and copy["4"]["steps"] == TINY.steps
    assert copy["4"]["steps_to_solve"] is None
    assert summary["skipped_after_failure"] == {"copy": {"lstm": {"8": "failed at 4"}}}
    assert not any(r["task"] == "copy" and r["lag"] == 8 for r in records)
    solved_adding = [int(lag) for lag, r in adding.items() if r["solved"]]
    assert summary["longest_solved"]["adding"]["lstm"]["lag"] == max(solved_adding)
    assert summary["longest_solved"]["copy"]["lstm"] == {"lag": None, "steps": None, "steps_to_solve": None}
    table = lr.format_table(summary | {"timings": summary["timings"]})
    assert "skipped: failed at 4" in table and "longest T solved" in table
    assert f"{max(solved_adding)} ({adding[str(max(solved_adding))]['steps_to_solve']} steps)" in table
    for name in ("long_range.png", "training_curves.png", "steps_to_solve.png"):
        assert (run.path / name).read_bytes()[:4] == b"\x89PNG"
    # The report from the final checkpoint has the same tables (the wall times aside).
    report = lr.progress_report(run.path, figures=tmp_path / "figures")
    for name in ("long_range.png", "steps_to_solve.png"):
        assert (tmp_path / "figures" / name).read_bytes()[:4] == b"\x89PNG"
    assert report.startswith("3 of 3 runs finished") and "in progress" not in report
    assert table in report  # the same finished records, wall times included
    with pytest.raises(ValueError, match="no whole checkpoint"):
        lr.progress_report(run.path / "checkpoints")


class _Killed(Exception):
    pass


def test_a_run_killed_at_its_early_stop_resumes_to_the_same_results(straight, tmp_path, monkeypatch):
    """Crash right after the checkpoint of the step that solved the adding task at T = 6 (it
    carries ``solved_at``: the resumed run must not train on), then resume in a new RunDir."""
    run, summary = straight
    stop = summary["results"]["adding"]["lstm"]["6"]["steps_to_solve"]
    assert stop is not None and stop < TINY.steps and stop % TINY.checkpoint_every == 0

    class CrashAfterSave(lr.RunCheckpoints):
        def save(self, step, state, progress, *, force=False):
            saved = super().save(step, state, progress, force=force)
            if saved and step == stop:
                raise _Killed
            return saved

    killed = RunDir.create("long_range", out=tmp_path / "killed")
    killed.write_config(TINY)
    monkeypatch.setattr(lr, "RunCheckpoints", CrashAfterSave)
    with pytest.raises(_Killed):
        lr.run(TINY, killed)
    monkeypatch.undo()
    # What the report of a stopped run shows: nothing finished, the LSTM stopped at `stop`.
    report = lr.progress_report(killed.path)
    assert report.startswith(f"0 of 3 runs finished (checkpoint at sweep step {stop},")
    assert f"in progress: lstm adding 6, step {stop} of {TINY.steps}; test at step {stop}: loss" in report
    resumed = lr.run(TINY, RunDir.open(killed.path))
    assert resumed["timings"]["sessions"] == 2
    assert _without_timings(resumed) == _without_timings(summary)
    assert _records(killed) == _records(run)


def test_steps_to_solve_figure_draws_solved_runs_at_their_step_and_failures_at_the_budget():
    c = dataclasses.replace(TINY, models=("lstm", "gru"), adding_lengths=(6, 12, 24), copy_lags=(4, 8))
    run = lambda solved, steps: {"solved": solved, "steps": steps, "steps_to_solve": steps if solved else None}
    results = {
        "adding": {"lstm": {"6": run(True, 9), "12": run(True, 15), "24": run(False, 24)},
                   "gru": {"6": run(False, 24)}},  # 12 and 24 skipped after the failure
        "copy": {"lstm": {"4": run(True, 21), "8": run(True, 24)}, "gru": {}},
    }
    fig = lr.plot_steps_to_solve(results, c)
    adding, copy = fig.axes[:2]
    colour = {m: matplotlib.colors.to_hex(lr.COLORS[m]) for m in c.models}

    def points(ax, model, filled):
        """The (lag, steps) drawn for ``model`` with filled or open markers."""
        out = []
        for line in ax.get_lines():
            if matplotlib.colors.to_hex(line.get_color()) == colour[model] and (line.get_markerfacecolor() != "none") == filled:
                out += list(zip(map(int, line.get_xdata()), map(int, line.get_ydata())))
        return sorted(out)

    assert points(adding, "lstm", True) == [(6, 9), (12, 15)] and points(adding, "lstm", False) == [(24, 24)]
    assert points(adding, "gru", True) == [] and points(adding, "gru", False) == [(6, 24)]  # 12, 24 skipped
    assert points(copy, "lstm", True) == [(4, 21), (8, 24)] and points(copy, "gru", True) == points(copy, "gru", False) == []
    # the budget line on both panels; one legend entry per model
    assert all(any(list(line.get_ydata()) == [c.steps, c.steps] for line in ax.get_lines()) for ax in (adding, copy))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["LSTM", "GRU"]
