"""``python -m benchmarks.attention --quick``: the report's structure, end to end, in fresh processes.

No assertion on speed or memory size: they mean nothing on a shared test machine.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import attention

QUICK = ["chunked", "torch"]  # 4 processes; every contender is built in-process below


def test_quick_run_reports_time_ratios_and_memory(tmp_path, capsys):
    out = tmp_path / "attention.json"
    report = attention.main(["--quick", "--contenders", *QUICK, "--out", str(out)])
    printed = capsys.readouterr()

    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["subject"] == "chunked" and report["settings"]["mask"] == "none"
    assert report["settings"]["shape"] == "b1 h2 d16"
    (entry,) = report["configs"]
    assert entry["name"] == "128" and entry["params"]["n"] == 128
    for name in QUICK:
        r = entry["results"][name]
        assert (r["status"], r["rounds_ok"], r["finite"]) == ("ok", 2, True), name
        assert r["process_peak_mib"]["median"] > 0 and r["added_mib"]["n"] == r["added_later_mib"]["n"] == 2
        assert r["time_s"]["min"] <= r["time_s"]["median"] <= r["time_s"]["max"]
    assert entry["results"]["torch"]["loaded"] == ["torch"]
    assert "torch" not in entry["results"]["chunked"]["loaded"]
    ratio = entry["ratios"]["torch"]
    assert ratio["rounds"] == 2 and ratio["spread_min"] <= ratio["spread_max"]

    tables = printed.out.split("\n\n")
    summary = next(t for t in tables if t.startswith("| N |") and "chunked / torch" in t)
    memory = next(t for t in tables if t.startswith("| N |") and "chunked / torch" not in t and "contender" not in t)
    assert summary.splitlines()[2].startswith("| 128 | ")
    assert "MiB" in memory.splitlines()[2]


@pytest.mark.parametrize(
    "name, causal", [(c.name, False) for c in attention.CONTENDERS] + [("chunked", True), ("torch", True)]
)
def test_every_contender_builds_and_gives_finite_gradients(name, causal):
    params = attention.config(64, batch=1, heads=2, head_dim=8, causal=causal, q_chunk=32, k_chunk=32).params
    step = attention.build(name, params)
    assert step.framework == attention.BENCHMARK.contender(name).framework
    result = step.sync(step.run())
    assert step.finite(result) and len(result) == 4  # out, dq, dk, dv


def test_dense_forms_that_cannot_fit_are_skipped():
    huge = attention.config(1 << 20, batch=2, heads=8, head_dim=64, causal=False, q_chunk=None, k_chunk=None).params
    assert "needs ~" in attention.skip("einsum", huge) and "GiB available" in attention.skip("jax_nn", huge)
    assert attention.skip("chunked", huge) is None and attention.skip("torch", huge) is None
    small = dict(huge, n=64)
    assert attention.skip("einsum", small) is None


def test_bad_options_are_refused():
    with pytest.raises(SystemExit):
        attention.main(["--lengths", "0"])
    with pytest.raises(ValueError, match="contender must be one of"):
        attention.build("flash", {})
