"""seqjax.experiment.checkpoints: a run's state and progress saved together, the log cut back to
the checkpoint on resume, saves due past each multiple, a damaged latest checkpoint skipped."""

from __future__ import annotations

import json
import shutil
import time
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.experiment.checkpoints import RunCheckpoints
from seqjax.experiment.run_dir import RunDir
from seqjax.train.checkpoint import MANIFEST, Checkpointer


def _run(path):
    run = RunDir.create("demo", out=path)
    run.write_config({"seed": 0})
    return run


def _lines(run):
    return [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]


def _train(run, ckpt, start, stop, progress, every_chunk=1, end=None):
    """Steps start+1..stop in chunks of ``every_chunk`` (a run of ``end`` steps, killed after
    ``stop`` if it is less); the state is the step count as an array."""
    saved = []
    for step in range(start + every_chunk, stop + 1, every_chunk):
        progress["losses"].append(float(step))
        run.log(step=step)
        if ckpt.save(step, {"w": jnp.full(2, float(step))}, progress, force=step == end):
            saved.append(step)
    return saved


def test_saves_fall_at_the_first_chunk_boundary_past_each_multiple(tmp_path):
    run = _run(tmp_path)
    with RunCheckpoints(run, every=60) as ckpt:
        assert ckpt.restore() is None
        # Multiples 60, 120, 180, 240; the last, 250, is forced (the end of the run).
        assert _train(run, ckpt, 0, 250, {"losses": []}, every_chunk=25, end=250) == [75, 125, 200, 250]
    with pytest.raises(ValueError, match="every must be a positive integer"):
        RunCheckpoints(run, every=0)


def test_resume_restores_state_progress_and_the_log_of_the_checkpoint(tmp_path):
    run = _run(tmp_path)
    with RunCheckpoints(run, every=3) as ckpt:
        with pytest.raises(RuntimeError, match="call restore"):
            ckpt.state({"w": jnp.zeros(2)})
        progress = {"losses": [], "by_radius": {0.5: np.float32(np.nan)}}
        _train(run, ckpt, 0, 7, progress)  # "killed" after step 7: checkpoints at 3 and 6
    assert [r["step"] for r in _lines(run)] == list(range(1, 8))
    time.sleep(0.01)

    with RunCheckpoints(RunDir.open(run.path), every=3) as ckpt:
        resumed = ckpt.restore()
        assert resumed.step == 6 and resumed.progress["losses"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        assert np.isnan(resumed.progress["by_radius"][0.5])
        np.testing.assert_array_equal(ckpt.state({"w": jnp.zeros(2)})["w"], [6.0, 6.0])
        assert [r["step"] for r in _lines(run)] == list(range(1, 7))  # step 7 is logged again
        assert ckpt.sessions == 2 and ckpt.elapsed_s() > 0
        # The resumed run saves where the uninterrupted one would have: 9, then the end at 10.
        assert _train(run, ckpt, 6, 10, resumed.progress, end=10) == [9, 10]
    assert [r["step"] for r in _lines(run)] == list(range(1, 11))


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_and_its_log(tmp_path):
    run = _run(tmp_path)
    with RunCheckpoints(run, every=2) as ckpt:
        _train(run, ckpt, 0, 5, {"losses": []})  # checkpoints 2 and 4 (the latest two)
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == ["2", "4"]
    # A kill between Orbax's rename and the manifest: the step directory has no manifest.
    (run.path / "checkpoints" / "4" / MANIFEST).unlink()
    with RunCheckpoints(run, every=2) as ckpt, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = ckpt.restore()
    assert resumed.step == 2 and resumed.progress == {"losses": [1.0, 2.0]}
    assert any("skipping checkpoint step 4" in str(w.message) for w in caught)
    assert [r["step"] for r in _lines(run)] == [1, 2]


def test_the_log_must_hold_what_the_checkpoint_accounts_for(tmp_path):
    run = _run(tmp_path)
    with RunCheckpoints(run, every=1) as ckpt:
        _train(run, ckpt, 0, 2, {"losses": []})
    (run.path / "metrics.jsonl").write_text("")
    with RunCheckpoints(run, every=1) as ckpt, pytest.raises(ValueError, match="resuming would lose them"):
        ckpt.restore()


def test_checkpoints_not_written_by_a_run_are_refused(tmp_path):
    run = _run(tmp_path)
    with Checkpointer(run.path / "checkpoints", save_every=1) as plain:
        plain.save(1, {"w": jnp.zeros(2)})
    with RunCheckpoints(run, every=1) as ckpt, pytest.raises(ValueError, match="not written by RunCheckpoints"):
        ckpt.restore()
    shutil.rmtree(run.path / "checkpoints")
    with RunCheckpoints(run, every=1) as ckpt:
        assert ckpt.restore() is None
