"""experiments.embeddings: the --quick run's table is complete and consistent, its vectors load
in gensim, and a SIGKILLed run resumes to the same metrics (slow)."""

import json

import pytest

import experiment_processes as procs
from experiments import embeddings

pytest.importorskip("gensim")


def test_quick_run_reports_every_model_with_coverage(quick_run_dir):
    run = quick_run_dir("embeddings")
    summary = json.loads((run / "metrics.json").read_text())
    assert list(summary["models"]) == list(embeddings.MODELS)
    vocab = {r["vocab"] for r in summary["models"].values()}
    assert len(vocab) == 1  # the same tokens and min_count: the same vocabulary for every model
    for name, r in summary["models"].items():
        for bench, total in (("wordsim353", 353), ("simlex999", 999)):
            assert r[bench]["pairs"] == total and r[bench]["covered"] + r[bench]["oov"] == total
        for method in ("3cosadd", "3cosmul"):
            a = r[f"analogy_{method}"]
            assert a["questions"] == 19544 and 0 <= a["correct"] <= a["covered"] <= a["questions"]
        assert summary["timings"]["words_per_s"][name] > 0
    assert (run / "projection.png").stat().st_size > 0
    assert "| skipgram |" in (run / "neighbours.md").read_text()
    from gensim.models import KeyedVectors
    kv = KeyedVectors.load_word2vec_format(str(run / "skipgram_vectors.txt"))
    assert len(kv) == next(iter(vocab))
    assert summary["corpus"]["tokens"] > 1000


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="models"):
        embeddings.Config(models=("word2vec",))
    with pytest.raises(ValueError, match="dim"):
        embeddings.Config(dim=0)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_results(tmp_path, quick_run_dir, xla_cache):
    straight = quick_run_dir("embeddings")
    killed, cache = tmp_path / "killed", xla_cache("embeddings")
    log = tmp_path / "killed.log"
    procs.kill_at_checkpoint(procs.start("embeddings", ["--quick", "--out", str(killed)], cache_dir=cache, log=log),
                             killed, 3, log)
    assert not (killed / "metrics.json").exists()
    procs.run("embeddings", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
    assert procs.records(killed) == procs.records(straight)
