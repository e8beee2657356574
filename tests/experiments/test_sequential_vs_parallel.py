"""experiments.sequential_vs_parallel: the --quick run, its resume after a SIGKILL, and the pieces.

No test checks a timing: the forms are checked to compute the functions they claim (the unrolled
loop is the scan, the associative scan is the sequential minGRU, chunked attention is dense
attention), the memory analysis to show the quadratic score matrix where it must be, the slope
fit against exact power laws and numpy's least squares, and the run for the set of measurements
it promises.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import experiment_processes as procs
from experiments import sequential_vs_parallel as svp

NAME = "sequential_vs_parallel"
QUICK = svp.Config(**svp.Config.QUICK)


def _summary(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def test_quick_run_measures_every_form_pass_and_length(quick_run_dir):
    run = quick_run_dir(NAME)
    summary = _summary(run)
    for figure in ("time_vs_length", "memory_vs_length", "compile_vs_length"):
        assert (run / f"{figure}.png").stat().st_size > 10_000
    device = summary["device"]
    assert device["platform"] == jax.devices()[0].platform and device["device_kind"]
    if device["platform"] == "cpu":
        assert device["cpu"] and device["cores"] >= 1
    assert summary["setup"]["lengths"] == list(QUICK.lengths)
    times, samples = summary["results"]["time_s"], summary["results"]["samples_s"]
    assert list(times) == list(svp.FORMS)
    for form in svp.FORMS:
        lengths = [str(t) for t in svp.form_lengths(form, QUICK)]
        assert summary["status"][form] == {t: "ok" for t in lengths}
        for mode in svp.MODES:
            assert list(times[form][mode]) == lengths
            assert all(len(samples[form][mode][t]) == QUICK.reps for t in lengths)
            assert all(v > 0 for v in times[form][mode].values())
            memory = summary["memory_bytes"][form][mode]
            assert list(memory) == lengths
            for m in memory.values():
                assert m["total"] == m["argument"] + m["output"] + m["temp"] - m["alias"] > 0
            # A slope wherever there are two lengths >= 8: every form but the capped unrolled one.
            assert (summary["results"]["slopes"][form][mode] is None) == (len(lengths) < 2)
    # The unrolled loop stops at its cap; every form reads inputs [b, T, d] and writes [b, T, d].
    assert list(times["elman_unrolled"]["forward"]) == ["8"]
    b, d = QUICK.batch, QUICK.width
    for form in svp.FORMS:
        for t, m in summary["memory_bytes"][form]["forward"].items():
            assert m["output"] == 4 * b * int(t) * d
    # Forward+backward keeps more than the forward pass (the residuals for the backward).
    for form in svp.FORMS:
        for t in summary["memory_bytes"][form]["forward"]:
            assert (summary["memory_bytes"][form]["forward_backward"][t]["temp"]
                    > summary["memory_bytes"][form]["forward"][t]["temp"])
    # metrics.jsonl: one record per measurement unit.
    records = procs.records(run)
    assert len(records) == svp.total_units(QUICK)
    assert sum(r["kind"] == "round" for r in records) == QUICK.reps * len(QUICK.lengths)


def test_the_markdown_table_lists_every_form_and_length(quick_run_dir):
    summary = _summary(quick_run_dir(NAME))
    table = svp.markdown_table(summary, "forward_backward").splitlines()
    assert table[0] == "| form | T=8 | T=16 | slope (T>=8) |"
    assert len(table) == 2 + len(svp.FORMS)
    assert table[-1].startswith("| Elman (Python loop, unrolled) |") and table[-1].count(" - ") == 2  # T=16, slope
    text = svp.format_table(summary)
    assert "Device: " in text and "forward + backward, median ms per call:" in text
    with pytest.raises(ValueError, match="mode"):
        svp.markdown_table(summary, "backward")


@pytest.mark.slow  # two quick runs and a kill: ~20 s; resume is covered in the default suite by tests/experiments/test_resume.py
def test_sigkill_then_resume_gives_the_same_measurements(tmp_path, xla_cache):
    """Killed after a checkpoint inside the second length and resumed: the same set of
    measurements, memory analysis and statuses as an uninterrupted run of the same config; only
    the wall-clock numbers differ (see ``comparable``)."""
    argv = ["--quick", "--lengths", "8", "32", "--forms", "elman", "min_gru_parallel",
            "attention_chunked", "elman_unrolled"]
    config = svp.Config(**(svp.Config.QUICK | {"lengths": (8, 32), "forms": (
        "elman", "min_gru_parallel", "attention_chunked", "elman_unrolled")}))
    total = svp.total_units(config)  # (4 preparations + 2 rounds) per length
    cache = xla_cache(NAME)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    procs.run(NAME, argv + ["--out", str(straight)], cache_dir=cache, log=tmp_path / "straight.log")
    log = tmp_path / "killed.log"
    procs.kill_at_checkpoint(procs.start(NAME, argv + ["--out", str(killed)], cache_dir=cache, log=log),
                             killed, 8, log)  # the second preparation at T = 32
    assert not (killed / "metrics.json").exists()
    assert 8 <= procs.checkpoints(killed)[-1] < total
    procs.run(NAME, ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")

    a, b = _summary(killed), _summary(straight)
    assert a["timings"]["sessions"] == 2
    assert svp.comparable(a) == svp.comparable(b)
    assert a["memory_bytes"] == b["memory_bytes"]
    resumed, uninterrupted = procs.records(killed), procs.records(straight)
    assert [svp.comparable(r) for r in resumed] == [svp.comparable(r) for r in uninterrupted]
    assert len(resumed) == total


def test_the_forms_compute_what_they_claim():
    config = svp.Config(batch=3, width=8, heads=2, attention_chunk=4)
    xs = svp.inputs(config, 11)
    later = xs.at[:, -1].add(1.0)
    out, changed = {}, {}
    for form in svp.FORMS:
        init, apply = svp.make_form(form, config)
        params, apply = init(jax.random.key(1)), jax.jit(apply)
        out[form], changed[form] = apply(params, xs), apply(params, later)
        assert out[form].shape == (3, 11, 8)
    # The same cell and parameters (same init key): unrolled == scan, parallel == sequential.
    np.testing.assert_allclose(out["elman_unrolled"], out["elman"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["min_gru_parallel"], out["min_gru"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["attention_chunked"], out["attention_dense"], rtol=1e-5, atol=1e-6)
    # Causal: changing the last step changes no earlier output of any form (and does change the last).
    for form in svp.FORMS:
        np.testing.assert_allclose(changed[form][:, :-1], out[form][:, :-1], rtol=1e-6, atol=1e-6)
        assert not np.allclose(changed[form][:, -1], out[form][:, -1])


def test_unrolled_rnn_equals_a_numpy_loop():
    from seqjax.cells import elman

    cell = elman("tanh")
    params = cell.init(jax.random.key(0), 3, 4)
    xs = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    h = np.zeros((2, 4))
    expected = []
    for t in range(6):
        h = np.tanh(xs[:, t] @ p["w_i"] + h @ p["w_h"] + p["b"])
        expected.append(h)
    np.testing.assert_allclose(svp.unrolled_rnn(cell, params, jnp.asarray(xs)), np.stack(expected, 1),
                               rtol=1e-5, atol=1e-6)


def test_memory_analysis_shows_the_score_matrix_only_in_dense_attention():
    """At T = 1024 (compiled only, never run) the dense form's forward+backward keeps at least one
    float32 [b, h, T, T] matrix; the chunked form's whole program is smaller than that matrix."""
    config = svp.Config(batch=2, attention_chunk=128)
    length = 1024
    scores = 4 * config.batch * config.heads * length**2
    xs = svp.inputs(config, length)
    memory = {}
    for form in ("attention_dense", "attention_chunked"):
        init, apply = svp.make_form(form, config)
        params = jax.jit(init)(jax.random.key(0))
        compiled, lower_s, compile_s = svp.compile_program(svp.programs(apply)["forward_backward"], params, xs)
        assert lower_s > 0 and compile_s > 0
        memory[form] = svp.memory_of(compiled)
    assert memory["attention_dense"]["temp"] >= scores
    assert memory["attention_chunked"]["total"] < scores


def test_fit_slope_recovers_power_laws_and_matches_numpy_least_squares():
    lengths = [8, 16, 32, 64, 128, 256]
    for p in (0.0, 1.0, 2.0, 0.5):
        assert svp.fit_slope(lengths, [3.0 * t**p for t in lengths], 1) == pytest.approx(p, abs=1e-9)
    rng = np.random.default_rng(0)
    values = list(rng.uniform(0.1, 10.0, len(lengths)))
    use = [i for i, t in enumerate(lengths) if t >= 32]
    expected = np.polyfit(np.log([lengths[i] for i in use]), np.log([values[i] for i in use]), 1)[0]
    assert svp.fit_slope(lengths, values, 32) == pytest.approx(expected, rel=1e-9)
    # Missing values (a form not run) are left out; fewer than two points: no slope.
    assert svp.fit_slope([8, 16, 32], [1.0, None, 16.0], 1) == pytest.approx(2.0)
    assert svp.fit_slope([8, 16], [1.0, 2.0], 16) is None
    assert svp.fit_slope([8, 16], [None, 2.0], 1) is None


def test_comparable_hides_only_wall_clock_numbers():
    summary = {"memory_bytes": {"elman": 10}, "status": "ok", "results": {"slopes": {"a": None, "b": 1.2},
               "samples_s": [0.1, 0.2]}, "timings": {"runtime_s": 3.0, "sessions": 2},
               "compile_s": {"forward": 0.4}}
    assert svp.comparable(summary) == {
        "memory_bytes": {"elman": 10}, "status": "ok",
        "results": {"slopes": {"a": None, "b": "number"}, "samples_s": ["number", "number"]},
        "timings": {"runtime_s": "number", "sessions": "number"}, "compile_s": {"forward": "number"}}


@pytest.mark.parametrize("field, value, message", [
    ("lengths", (32, 8), "strictly increasing"),
    ("lengths", (0, 8), "positive integers"),
    ("forms", ("elman", "rnn"), "forms must be"),
    ("forms", ("elman", "elman"), "forms must be"),
    ("reps", 0, "reps"),
    ("heads", 3, "heads must divide width"),
    ("attention_chunk", 0, "attention_chunk"),
    ("memory_fraction", 1.5, "memory_fraction"),
])
def test_bad_config_raises_value_error_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        svp.Config(**{field: value})


def test_make_form_refuses_an_unknown_form():
    with pytest.raises(ValueError, match="form must be one of"):
        svp.make_form("transformer", svp.Config())
