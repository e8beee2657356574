"""Every experiment, SIGKILLed mid-training and resumed with --resume, ends where an uninterrupted
run ends: the same metrics.json (timings aside), the same metrics.jsonl records (none twice, none
missing), the same arrays and samples.

Each run is its own process, as a user runs it (``experiment_processes``); the uninterrupted
``--quick`` run is the one the other tests of the experiment read (the ``quick_run_dir`` fixture).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import experiment_processes as procs
from experiments import char_rnn, gradient_flow, long_range
from seqjax.experiment import RunDir, build_parser, parse


def _total_steps(name: str) -> int:
    """Training steps of the whole --quick run, as its checkpoints count them."""
    if name == "long_range":
        c = long_range.Config(**long_range.Config.QUICK)
        return len(long_range.plan(c)[0]) * c.steps
    if name == "gradient_flow":
        c = gradient_flow.Config(**gradient_flow.Config.QUICK)
        return len(gradient_flow.plan(c)) * c.train_steps
    c = char_rnn.Config(**char_rnn.Config.QUICK)
    return char_rnn.hello_steps(c) + c.train_steps


# name -> (--checkpoint-every, the checkpoints to wait for before each SIGKILL, whether to resume
# the finished run once more). The first checkpoint falls inside a sub-run (long_range: run 1 of 6
# at step 7 of 12; gradient_flow: run 3 of 18 at step 10 of 20). char_rnn is killed twice: in
# part 1 (epoch 16 of 30), then, resumed, in part 2 (step 10 of 40, with the recurrent carry
# between windows to restore).
CASES = {
    "long_range": (7, [7], True),
    "gradient_flow": (50, [50], False),
    "char_rnn": (380, [400, 760], False),
}
# The default suite kills and resumes long_range; the other two (30 s and 15 s) run with -m slow.
SLOW = {"gradient_flow", "char_rnn"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES])
def test_sigkill_then_resume_gives_the_uninterrupted_results(name, tmp_path, quick_run_dir, xla_cache):
    every, kill_at, resume_finished = CASES[name]
    straight = quick_run_dir(name)  # first: a cold compile here makes the runs below warm
    killed = tmp_path / "killed"
    cache = xla_cache(name)

    for i, step in enumerate(kill_at):
        argv = ["--quick", "--out", str(killed), "--checkpoint-every", str(every)] if i == 0 else ["--resume", str(killed)]
        log = tmp_path / f"killed_{i}.log"
        procs.kill_at_checkpoint(procs.start(name, argv, cache_dir=cache, log=log), killed, step, log)
        # Killed mid-training: no summary yet, and the newest checkpoint is short of the end.
        assert not (killed / "metrics.json").exists()
        assert step <= procs.checkpoints(killed)[-1] < _total_steps(name)
        # The latest two checkpoints are kept, older ones deleted.
        assert len([d for d in (killed / "checkpoints").iterdir() if d.name.isdigit()]) <= 2
    procs.run(name, ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")

    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
    assert json.loads((killed / "metrics.json").read_text())["timings"]["sessions"] == len(kill_at) + 1
    resumed_records, straight_records = procs.records(killed), procs.records(straight)
    assert len(resumed_records) == len(straight_records)
    assert resumed_records == straight_records  # the same records in the same order: none twice
    for npz in straight.glob("*.npz"):
        a, b = np.load(npz), np.load(killed / npz.name)
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{npz.name}:{key}")
    for text in ("samples.txt", "tokenizer.json"):
        if (straight / text).exists():
            assert (killed / text).read_text() == (straight / text).read_text()
    # The resumed run kept its config, checkpoint_every of the first session included.
    assert json.loads((killed / "config.json").read_text())["checkpoint_every"] == every

    if resume_finished:  # resuming a finished run trains nothing and writes the same results
        procs.run(name, ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "again.log")
        assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
        assert procs.records(killed) == straight_records


@pytest.mark.parametrize("module", [long_range, gradient_flow, char_rnn], ids=lambda m: m.__name__)
def test_help_lists_the_resume_flags(module):
    text = " ".join(build_parser(module.Config).format_help().split())
    assert "--resume RUN_DIR" in text and "--checkpoint-every INT" in text


def test_resume_refuses_a_different_config_and_names_the_fields(tmp_path, capsys):
    run = tmp_path / "run"
    saved = RunDir.create("long_range", out=run)
    saved.write_config(long_range.Config(**long_range.Config.QUICK))
    saved.write_run_info(experiment="long_range", quick=True)
    # --quick agrees with the saved config; checkpoint_every may change.
    args = parse(long_range.Config, ["--resume", str(run), "--quick", "--checkpoint-every", "3"])
    assert args.config == long_range.Config(**long_range.Config.QUICK, checkpoint_every=3)
    assert args.quick and args.resume == run
    with pytest.raises(SystemExit):
        parse(long_range.Config, ["--resume", str(run), "--steps", "24", "--hidden", "8", "--seed", "1"])
    err = capsys.readouterr().err.splitlines()[-1]  # after the usage lines
    assert "--steps (saved 12, given 24); --seed (saved 0, given 1)" in err
    assert "--hidden" not in err  # the same value as saved
    with pytest.raises(SystemExit):
        long_range.main(["--resume", str(run), "--preset", "readme"])
    assert "--models (saved elman,lstm, given elman,lstm,gru,min_gru)" in capsys.readouterr().err.splitlines()[-1]
    with pytest.raises(SystemExit):  # a run of another experiment
        char_rnn.main(["--resume", str(run)])
    assert "config.json does not match Config: missing fields ['parts'," in capsys.readouterr().err
