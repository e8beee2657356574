"""seqjax.experiment.run_dir: the files a run leaves, and that they are valid JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np
import pytest

from seqjax.experiment.environment import environment
from seqjax.experiment.run_dir import RunDir, to_json


@dataclasses.dataclass(frozen=True)
class Config:
    steps: int = 3
    radii: tuple[float, ...] = (0.5, 1.0)
    seed: int = 0


def test_default_location_is_runs_name_utc_timestamp(tmp_path):
    first = RunDir.create("demo", root=tmp_path)
    second = RunDir.create("demo", root=tmp_path)
    assert first.path.parent == tmp_path / "demo"
    assert re.fullmatch(r"\d{8}T\d{6}Z", first.path.name)
    assert second.path != first.path and second.path.is_dir()  # same second: a fresh directory


def test_files_are_written_and_valid(tmp_path):
    run = RunDir.create("demo", out=tmp_path / "run")
    run.write_config(Config())
    for step in range(3):
        run.log(step=step, loss=np.float32(1.0 / (step + 1)), grads=np.arange(2.0))
    run.log(step=3, loss=float("nan"))
    run.write_summary({"final": np.float32(0.25), "lags": {"0.5": None, "1": 12}, "big": math.inf})

    assert json.loads((run.path / "config.json").read_text()) == {
        "steps": 3, "radii": [0.5, 1.0], "seed": 0,
    }
    lines = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [0, 1, 2, 3]
    assert lines[1]["loss"] == 0.5 and lines[0]["grads"] == [0.0, 1.0]
    assert lines[3]["loss"] == "NaN"  # strict JSON has no NaN
    summary = json.loads((run.path / "metrics.json").read_text())
    assert summary == {"final": 0.25, "lags": {"0.5": None, "1": 12}, "big": "Infinity"}
    assert not list(run.path.glob(".*tmp"))  # the atomic write left no temporary file


def test_summary_is_replaced_atomically(tmp_path, monkeypatch):
    run = RunDir.create("demo", out=tmp_path)
    run.write_summary({"version": 1})

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        run.write_summary({"version": 2, "bad": Unserialisable()})
    # The failed write left the previous summary intact and no temporary file behind.
    assert json.loads((run.path / "metrics.json").read_text()) == {"version": 1}
    assert sorted(p.name for p in run.path.iterdir()) == ["metrics.json"]


def test_reusing_out_starts_a_fresh_log(tmp_path):
    RunDir.create("demo", out=tmp_path).log(step=0)
    run = RunDir.create("demo", out=tmp_path)
    run.log(step=1)
    assert (run.path / "metrics.jsonl").read_text().count("\n") == 1


def test_figure_and_arrays(tmp_path):
    from matplotlib.figure import Figure

    run = RunDir.create("demo", out=tmp_path)
    fig = Figure()
    fig.subplots().semilogy([1, 0.1, 0.01])
    png = run.save_figure(fig, "curve")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    npz = run.save_arrays("curves", a=np.arange(3))
    np.testing.assert_array_equal(np.load(npz)["a"], np.arange(3))


def test_to_json_and_environment():
    assert to_json({"a": (np.int64(1), -math.inf), 2: np.zeros((1, 2))}) == {
        "a": [1, "-Infinity"], "2": [[0.0, 0.0]],
    }
    env = environment()
    assert {"jax", "backend", "devices"} <= env.keys()


def test_an_out_with_checkpoints_is_refused_and_open_needs_a_config(tmp_path):
    run = RunDir.create("demo", out=tmp_path / "run")
    (run.path / "checkpoints" / "12").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"holds the checkpoints of an earlier run .*--resume"):
        RunDir.create("demo", out=run.path)
    with pytest.raises(ValueError, match="is not a run directory: it has no config.json"):
        RunDir.open(run.path)
    run.write_config(Config())
    run.write_run_info(experiment="demo", quick=True)
    again = RunDir.open(run.path)
    assert again.read_config() == {"steps": 3, "radii": [0.5, 1.0], "seed": 0}
    assert again.read_run_info() == {"experiment": "demo", "quick": True}
    assert RunDir(tmp_path).read_run_info() == {}


def test_truncate_log_drops_what_came_after_the_checkpoint(tmp_path):
    run = RunDir.create("demo", out=tmp_path)
    assert run.flush_log() == 0
    run.truncate_log(0)  # no log yet: nothing to cut
    run.log(step=1)
    size = run.flush_log()
    run.log(step=2)
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # a record cut short by a kill
    run.truncate_log(size)
    assert (run.path / "metrics.jsonl").read_text() == '{"step": 1}\n'
    run.log(step=2)
    assert [json.loads(line)["step"] for line in (run.path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    with pytest.raises(ValueError, match="records the checkpoint accounts for are missing"):
        run.truncate_log(10_000)
