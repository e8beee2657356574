"""Smoke test of ``python -m benchmarks.recurrent --quick``: it runs and every contender yields a
finite, positive timing and finite gradients. No assertion on speed: timings on shared CI
machines mean nothing; the benchmark itself reports them."""

from __future__ import annotations

import json
import math

from benchmarks import recurrent


def test_quick_mode_times_every_contender(tmp_path, capsys):
    report = recurrent.main(["--quick", "--repeats", "2", "--out", str(tmp_path)])

    (entry,) = report["configs"]
    assert set(entry["results"]) == set(recurrent.ALL_CONTENDERS)
    for name, result in entry["results"].items():
        assert result["finite"], f"{name}: non-finite gradients"
        assert result["runs"] == 2
        for key in ("min", "median", "max"):
            assert math.isfinite(result[key]) and result[key] > 0, (name, key, result[key])
        assert result["min"] <= result["median"] <= result["max"]
    for key in ("seqjax/torch", "seqjax/flax", "seqjax/scan", "seqjax/torch paired"):
        assert math.isfinite(entry["ratios"][key]) and entry["ratios"][key] > 0

    printed = capsys.readouterr().out
    assert "| seqjax |" in printed and "seqjax/torch" in printed
    (json_file,) = tmp_path.glob("recurrent-*.json")
    assert json.loads(json_file.read_text())["configs"][0]["name"] == entry["name"]
    assert len(list(tmp_path.glob("recurrent-*.md"))) == 1
