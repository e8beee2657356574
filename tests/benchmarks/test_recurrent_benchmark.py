"""``python -m benchmarks.recurrent --quick``: the report's structure, end to end, in fresh processes.

No assertion on speed: timings on shared machines mean nothing in a test; the benchmark reports them.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import recurrent

QUICK = ["seqjax", "torch"]  # 4 processes; the other contenders are built in-process below


def test_quick_run_reports_per_process_rounds_and_ratios(tmp_path, capsys):
    out = tmp_path / "recurrent.json"
    report = recurrent.main(["--quick", "--contenders", *QUICK, "--out", str(out)])
    printed = capsys.readouterr()

    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["settings"]["rounds"] == 2 and report["settings"]["order"] == QUICK
    assert report["machine"]["cpu"] and report["machine"]["versions"]["jax"]
    (entry,) = report["configs"]
    assert entry["name"] == "B2 T5 I3 H4" and len(entry["rounds"]) == 2
    for name in QUICK:
        r = entry["results"][name]
        assert (r["status"], r["rounds_ok"], r["reps"], r["finite"]) == ("ok", 2, [2, 2], True), name
        assert r["time_s"]["min"] <= r["time_s"]["median"] <= r["time_s"]["max"]
        assert r["calibration_gflops"]["n"] == 2 and r["process_peak_mib"]["median"] > 0
    # each framework in its own process, with its defaults: torch never meets jax
    assert entry["results"]["torch"]["loaded"] == ["torch"]
    assert entry["results"]["torch"]["info"]["torch_threads"] >= 1
    assert entry["results"]["torch"]["compile_s"] is None
    assert "torch" not in entry["results"]["seqjax"]["loaded"]
    assert entry["results"]["seqjax"]["compile_s"]["n"] == 2
    (ratio,) = entry["ratios"].values()
    assert ratio["rounds"] == 2 and ratio["spread_min"] <= ratio["spread_max"]
    medians = [entry["results"][n]["time_s"]["median"] for n in QUICK]
    assert ratio["ratio_of_medians"] == pytest.approx(medians[0] / medians[1])

    table = [line for line in printed.out.splitlines() if line.startswith("|")]
    header = table[0]
    for column in ("seqjax", "PyTorch `nn.LSTM`", "seqjax / torch"):
        assert column in header
    row = next(line for line in table if line.startswith("| B2 T5 I3 H4 |"))
    assert row.count("|") == header.count("|")
    assert "Machine:" in printed.out and "Calibration" in printed.out
    assert "round 2/2 torch" in printed.err  # progress goes to stderr, the tables to stdout


@pytest.mark.parametrize("name", [c.name for c in recurrent.CONTENDERS])
def test_every_contender_builds_and_gives_finite_gradients(name):
    step = recurrent.build(name, recurrent.QUICK_CONFIGS[0].params)
    assert step.framework == recurrent.BENCHMARK.contender(name).framework
    assert step.finite(step.sync(step.run()))


def test_bad_options_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        recurrent.main(["--rounds", "0"])
    with pytest.raises(SystemExit):  # before anything runs, not after minutes of benchmarking
        recurrent.main(["--quick", "--out", str(tmp_path)])
    assert "--out must be the path of the JSON file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="contender must be one of"):
        recurrent.build("keras", {})


@pytest.mark.parametrize("name", [c.name for c in recurrent.GRU_CONTENDERS])
def test_every_gru_contender_builds_and_gives_finite_gradients(name):
    step = recurrent.build(name, recurrent.GRU_QUICK_CONFIGS[0].params)
    assert step.framework == recurrent.GRU_BENCHMARK.contender(name).framework
    assert step.finite(step.sync(step.run()))
    with pytest.raises(ValueError, match="contender must be one of"):
        recurrent.build("flax_opt", recurrent.GRU_QUICK_CONFIGS[0].params)
