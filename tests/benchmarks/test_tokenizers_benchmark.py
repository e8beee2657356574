"""benchmarks.tokenizers at tiny sizes: every contender builds and does its job, and the report
has its structure (no timing is checked)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tokenizers")

from benchmarks import tokenizers as bt  # noqa: E402


@pytest.mark.parametrize("name", bt.CONTENDERS)
def test_every_contender_builds_and_works(name):
    out = bt.build(name, vocab_size=300, max_documents=5)()
    if name.endswith("train"):
        size = len(out) if name.startswith("seqjax") else out.get_vocab_size()
        assert 1 < size <= 300
    else:  # encoding: the 5 test documents 20 times, each a non-empty list of ids
        out = [[int(i) for i in ids] for ids in out]
        assert len(out) == 100 and all(len(ids) > 0 for ids in out)
        assert out[:5] == out[5:10]


def test_worker_reports_its_repetitions():
    r = bt.worker("seqjax_wordpiece_train", 2, vocab_size=100, max_documents=3)
    assert r["contender"] == "seqjax_wordpiece_train" and len(r["times_s"]) == 2
    assert r["median_s"] == pytest.approx(sorted(r["times_s"])[0] / 2 + sorted(r["times_s"])[1] / 2)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="name must be one of"):
        bt.build("spacy_train")
    with pytest.raises(ValueError, match="vocab_size"):
        bt.build("hf_bpe_train", vocab_size=0)
    with pytest.raises(ValueError, match="max_documents"):
        bt.build("hf_bpe_train", max_documents=0)


def test_main_runs_workers_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "report.json"
    report = bt.main(["--rounds", "1", "--reps", "1", "--contenders", "seqjax_bpe_train", "hf_bpe_train",
                      "--vocab-size", "300", "--max-documents", "3", "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert set(report["rounds"]) == {"seqjax_bpe_train", "hf_bpe_train"}
    assert all(len(v) == 1 and v[0] > 0 for v in report["rounds"].values())
    assert report["vocab_size"] == 300 and report["max_documents"] == 3
    rows = report["table"].splitlines()
    assert rows[0].startswith("| task |") and len(rows) == 3 and rows[2].startswith("| bpe_train |")
    assert report["table"] in capsys.readouterr().out
