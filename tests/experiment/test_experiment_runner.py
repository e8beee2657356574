"""seqjax.experiment.runner: run_experiment writes run.json, config.json and metrics.json, and
resumes only a run of the same experiment."""

from __future__ import annotations

import dataclasses
import json

import pytest

from seqjax.experiment import option, parse, run_experiment


@dataclasses.dataclass(frozen=True)
class Config:
    steps: int = option(3, "steps")
    seed: int = option(0, "seed")
    checkpoint_every: int = option(1, "checkpoint interval")


def _run(config, run_dir):
    run_dir.log(step=1, loss=0.5)
    (run_dir.path / "checkpoints").mkdir(exist_ok=True)
    (run_dir.path / "checkpoints" / "3").mkdir(exist_ok=True)  # as a finished run leaves it
    return {"final_loss": 0.5, "timings": {"runtime_s": 0.1}}


def test_a_new_run_then_its_resumption(tmp_path, capsys):
    out = tmp_path / "run"
    summary = run_experiment("toy", parse(Config, ["--out", str(out), "--steps", "5"]), _run, str)
    assert summary["run_dir"] == str(out) and summary["quick"] is False
    assert json.loads((out / "run.json").read_text()) == {"experiment": "toy", "quick": False}
    assert json.loads((out / "config.json").read_text()) == {"steps": 5, "seed": 0, "checkpoint_every": 1}
    assert json.loads((out / "metrics.json").read_text()) == {
        "final_loss": 0.5, "timings": {"runtime_s": 0.1}, "quick": False,
    }
    assert f"results in {out}" in capsys.readouterr().out

    # A new run into the same directory would mix two runs: refused, with what to do instead.
    with pytest.raises(SystemExit, match=f"holds the checkpoints of an earlier run .*--resume {out}"):
        run_experiment("toy", parse(Config, ["--out", str(out)]), _run, str)
    # --resume: the saved config, with the new checkpoint_every written back.
    args = parse(Config, ["--resume", str(out), "--checkpoint-every", "2"])
    assert args.config == Config(steps=5, checkpoint_every=2)
    run_experiment("toy", args, _run, str)
    assert json.loads((out / "config.json").read_text())["checkpoint_every"] == 2
    with pytest.raises(SystemExit, match="a run of experiments.toy, not of experiments.other"):
        run_experiment("other", args, _run, str)
