"""The benchmark driver with stand-in contenders: one process each, failures become statuses.

The stand-ins are plain Python (no real work), so the test checks the plumbing only: which
processes ran, what they loaded, how failures, time-outs and skips are reported. Nothing here
asserts on a timing.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import pytest

from benchmarks import harness, tables

FAKE = textwrap.dedent(
    '''
    import time
    from benchmarks import timing

    def build(contender, params):
        if contender == "broken":
            raise RuntimeError("this contender is broken on purpose")
        if contender == "sleepy":
            time.sleep(1000)
        if contender == "leaky":
            import torch  # a JAX contender must not load torch
        work = params["work"] * (2 if contender == "slow" else 1)
        return timing.Step(lambda: sum(range(work)), lambda r: r, lambda r: r >= 0, "jax")
    '''
)


def _benchmark(names, skip=None):
    return harness.Benchmark(
        name="fake", module="fake_contenders", what="Stand-ins.", subject="fast",
        contenders=tuple(harness.Contender(n, n.title(), "jax", f"the {n} stand-in") for n in names),
        skip=skip,
    )


@pytest.fixture
def fake_module(tmp_path, monkeypatch):
    (tmp_path / "fake_contenders.py").write_text(FAKE)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))


def test_rounds_ratios_and_failures(fake_module):
    skip = lambda name, params: "does not fit, on purpose" if name == "skipped" else None
    bench = _benchmark(["fast", "slow", "broken", "leaky", "skipped"], skip=skip)
    configs = [harness.Config("tiny", {"work": 1000})]
    settings = harness.Settings(rounds=2, budget_s=0.0, min_reps=3, max_reps=3)
    lines = []
    report = harness.run(bench, configs, settings=settings, say=lines.append)

    (entry,) = report["configs"]
    assert len(entry["rounds"]) == 2
    fast, slow = entry["results"]["fast"], entry["results"]["slow"]
    for r in (fast, slow):
        assert (r["status"], r["rounds_ok"], r["reps"], r["finite"]) == ("ok", 2, [3, 3], True)
        assert r["loaded"] == ["jax"]  # the calibration's framework, nothing else
        assert r["time_s"]["min"] <= r["time_s"]["median"] <= r["time_s"]["max"]
    pids = {rd[n]["pid"] for rd in entry["rounds"] for n in ("fast", "slow")}
    assert len(pids) == 4 and os.getpid() not in pids  # a fresh process per contender per round

    broken = entry["results"]["broken"]
    assert broken["status"] == "failed (exit 1)" and broken["rounds_ok"] == 0
    assert any("broken on purpose" in line for line in broken["detail"])
    assert entry["rounds"][1]["broken"]["status"] == "not run (failed (exit 1))"  # not retried
    assert entry["results"]["leaky"]["status"] == "failed (jax process imported torch)"
    assert entry["results"]["skipped"]["status"] == "skipped (does not fit, on purpose)"

    ratio = entry["ratios"]["slow"]
    assert ratio["rounds"] == 2 and ratio["spread_min"] <= ratio["spread_max"]
    assert ratio["ratio_of_medians"] == pytest.approx(fast["time_s"]["median"] / slow["time_s"]["median"])
    assert entry["ratios"]["broken"] is None
    # progress: one line per launched process (broken and leaky only in round 1), one per skip
    assert sum(" round " in line for line in lines) == 2 * 2 + 2
    assert sum("skipped" in line for line in lines) == 1

    text = tables.format_report(report)
    assert "| tiny | " in text and "failed (exit 1)" in text and "skipped (does not fit" in text
    assert "fast / slow" in text and "2 rounds alternating fast, slow, broken, leaky, skipped" in text


def test_a_process_past_the_time_limit_is_stopped(fake_module):
    bench = dataclasses.replace(_benchmark(["sleepy"]), subject="sleepy")
    settings = harness.Settings(rounds=2, budget_s=0.0, min_reps=1, max_reps=1, time_limit_s=8.0)
    report = harness.run(bench, [harness.Config("tiny", {"work": 10})], settings=settings, say=lambda s: None)
    (entry,) = report["configs"]
    assert entry["results"]["sleepy"]["status"] == "timeout"
    assert entry["rounds"][1]["sleepy"]["status"] == "not run (timeout)"  # not started again
    assert "timeout" in tables.summary_table(report)


def test_bad_arguments_are_refused():
    bench = _benchmark(["fast", "slow"])
    with pytest.raises(ValueError, match="contender must be one of"):
        harness.run(bench, [], contenders=["fast", "nope"])
    with pytest.raises(ValueError, match="must include the subject 'fast'"):
        harness.run(bench, [], contenders=["slow"])
    with pytest.raises(ValueError, match="rounds must be >= 1; got 0"):
        harness.run(bench, [], settings=harness.Settings(rounds=0))


def test_the_driver_side_imports_no_framework():
    """Importing the benchmarks loads neither jax nor torch: each process loads only its own."""
    code = ("import sys, benchmarks.recurrent, benchmarks.attention, benchmarks.tables; "
            "print(sorted(m for m in ('jax', 'flax', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=harness.ROOT)
    assert out.stdout.strip() == "[]"
