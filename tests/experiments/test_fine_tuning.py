"""experiments.fine_tuning: the --quick run end to end, a SIGKILL and resume, and the pieces it
measures with (parameter counts against their formulas, frozen parameters staying frozen, the
classifier and the BiLSTM student against direct computations)."""

from __future__ import annotations

import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import experiment_processes as procs
from experiments import fine_tuning as ft
from seqjax.data.corpora import wikipedia_excerpt
from seqjax.nn import BertConfig, BertForMaskedLM
from seqjax.train.finetune.patterns import leaf_paths

D, L, FF, V, K = 8, 2, 16, 40, 3
TINY = BertConfig(vocab_size=V, hidden_size=D, num_hidden_layers=L, num_attention_heads=2, intermediate_size=FF,
                  max_position_embeddings=12, scan_layers=True)


class FakePretrained(NamedTuple):
    model: object
    config: BertConfig


@pytest.fixture(scope="module")
def pre():
    return FakePretrained(BertForMaskedLM(TINY, rngs=nnx.Rngs(5)), TINY)


@pytest.fixture(scope="module")
def quick_run(quick_run_dir):
    out = quick_run_dir("fine_tuning")
    return out, json.loads((out / "metrics.json").read_text())


def _setup(method, pre, **overrides):
    config = ft.Config(steps=3, adapter_size=4, **overrides)
    return ft.Setup({"kind": "method", "name": method, "steps": 3}, config, pre, K, jax.random.key(1))


def test_trainable_counts_follow_the_formulas(pre):
    head = D * K + K
    biases = L * (4 * D + FF + D + 2 * D) + D  # b_q, b_k, b_v, b_o, b_1, b_2, two norm biases; embedding norm
    norms = 2 * (2 * D) * L + 2 * D
    full = _setup("full", pre)
    total = full.num_params
    assert full.num_trainable == total == sum(np.prod(p.shape) for p in jax.tree.leaves(nnx.state(
        ft.PassageClassifier(TINY, K, rngs=nnx.Rngs(0)), nnx.Param)))
    assert _setup("scratch", pre).num_trainable == total
    assert _setup("probe", pre).num_trainable == head
    assert _setup("bitfit", pre).num_trainable == biases + head
    for r in (1, 4):
        assert _setup(f"lora_r{r}", pre).num_trainable == L * 2 * r * (D + D) + head  # w_q, w_v
    assert _setup("adapters", pre).num_trainable == L * 2 * (2 * D * 4 + D + 4) + norms + head


def test_pretrained_weights_are_loaded_except_for_scratch(pre):
    want = pre.model.bert.pure_params()["encoder"]["layers"]["self_attn"]["w_q"]
    for method, same in (("full", True), ("probe", True), ("scratch", False)):
        s = _setup(method, pre)
        got = s.params["bert"]["encoder"]["stack"]["layers"]["self_attn"]["w_q"][...]
        assert bool(jnp.array_equal(got, want)) == same, method


@pytest.mark.parametrize("method", ["probe", "lora_r4", "adapters"])
def test_a_training_step_changes_only_the_trainable_parameters(pre, method):
    s = _setup(method, pre, weight_decay=0.1)
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 12, 6).astype(np.int32)
    ids = np.where(np.arange(12)[None] < lengths[:, None], rng.integers(5, V, (6, 12)), 0).astype(np.int32)
    batch = {"ids": jnp.asarray(ids), "lengths": jnp.asarray(lengths), "labels": jnp.asarray(rng.integers(0, K, 6))}
    before = jax.tree.map(np.asarray, s.params)
    step = ft.make_train_step(s.loss_fn, s.optimizer, donate=False)
    opt_state = s.optimizer.init(s.params)
    params = s.params
    for k in range(2):
        params, opt_state, _ = step(params, opt_state, batch, jax.random.key(k))
    changed = {p: not np.array_equal(a, np.asarray(b))
               for p, a, b in zip(leaf_paths(before), jax.tree.leaves(before), jax.tree.leaves(params))}
    if method == "probe":
        trainable = {p for p in changed if p.startswith("classifier/")}
    elif method == "lora_r4":
        trainable = {p for p in changed if p.startswith("lora/") or p.startswith("base/classifier/")}
    else:
        trainable = {p for p in changed if "adapter" in p or "norm" in p or p.startswith("classifier/")}
    assert {p for p, c in changed.items() if c} <= trainable  # nothing frozen moved (weight decay included)
    assert all(changed[p] for p in trainable if "classifier" in p)
    if method != "probe":
        assert any(changed[p] for p in trainable if "classifier" not in p)


def test_classifier_is_the_mean_of_the_valid_hidden_states(pre):
    model = ft.PassageClassifier(TINY, K, rngs=nnx.Rngs(0))
    ids = jnp.array([[2, 7, 8, 3, 0, 0], [2, 9, 10, 11, 12, 3]])
    lengths = jnp.array([4, 6])
    h, _ = model.bert(ids, seq_lengths=lengths)
    mean = jnp.stack([h[0, :4].mean(0), h[1].mean(0)])
    want = mean @ model.classifier["w"][...] + model.classifier["b"][...]
    np.testing.assert_allclose(model(ids, lengths), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model(ids[:1, :4], lengths[:1])[0], want[0], rtol=1e-5, atol=1e-6)  # padding is inert


def test_bilstm_student_ignores_padding_and_reads_both_directions():
    params = ft.bilstm_init(jax.random.key(0), V, K, 6, 5)
    ids = jnp.array([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]])
    lengths = jnp.array([3, 5])
    logits = jax.jit(ft.bilstm_logits)
    out = logits(params, ids, lengths)
    np.testing.assert_allclose(logits(params, ids[:1, :3], lengths[:1])[0], out[0], rtol=1e-5, atol=1e-6)
    # the first token matters (the backward state after it), and so does the last
    for pos in (0, 4):
        changed = ids.at[1, pos].set(20)
        assert float(jnp.abs(logits(params, changed, lengths)[1] - out[1]).max()) > 1e-6


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="methods"):
        ft.Config(methods=("full", "lora_r2"))
    with pytest.raises(ValueError, match="teacher"):
        ft.Config(methods=("probe",))
    with pytest.raises(ValueError, match="test_fraction"):
        ft.Config(test_fraction=1.0)
    with pytest.raises(ValueError, match="distill_alpha"):
        ft.Config(distill_alpha=1.5)


def test_quick_run_writes_every_output_and_its_numbers_hold_together(quick_run):
    out, summary = quick_run
    for name in ("config.json", "run.json", "metrics.jsonl", "metrics.json", "methods.png", "distillation.png",
                 "pretrain/pretrained/model.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    config = ft.Config(**ft.Config.QUICK)
    methods = summary["methods"]
    assert list(methods) == list(config.methods)
    # the task's articles are the documents the pretraining held out (i % 10 == 9)
    held = {t for i, (t, _) in enumerate(wikipedia_excerpt()) if i % 10 == 9}
    assert set(summary["task"]["articles"]) <= held and summary["task"]["classes"] == 3
    assert summary["baselines"]["majority"] == pytest.approx(1 / 3)
    full, lora = methods["full"], methods["lora_r4"]
    assert full["trainable_params"] == full["params"] and lora["trainable_params"] < full["trainable_params"]
    for m in methods.values():
        assert 0 <= m["accuracy"] <= 1 and m["memory"]["peak_bytes"] >= m["memory"]["argument_bytes"] > 0
    # full fine-tuning holds parameters and two Adam moments of every parameter (float32)
    assert full["memory"]["argument_bytes"] >= 3 * 4 * full["params"]
    assert lora["memory"]["argument_bytes"] < full["memory"]["argument_bytes"]
    student = summary["students"]["bilstm_distilled"]
    assert 0 <= student["agreement_with_teacher"] <= 1 and student["params"] > 0
    timings = summary["timings"]
    assert set(timings["inference_s_per_example"]) == {"full", "bilstm_distilled"}
    assert summary["encoder"]["path"] == "pretrain/pretrained"
    results = [r for r in procs.records(out) if r["kind"] == "result"]
    assert [r["run"] for r in results] == [*config.methods, "bilstm_distilled"]


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_results(quick_run, tmp_path, xla_cache):
    straight, _ = quick_run
    killed = tmp_path / "killed"
    cache = xla_cache("fine_tuning")
    log = tmp_path / "killed.log"
    # step 6 of 16: inside the LoRA run (its state: the frozen base and the factors)
    proc = procs.start("fine_tuning", ["--quick", "--out", str(killed), "--checkpoint-every", "6"], cache_dir=cache, log=log)
    procs.kill_at_checkpoint(proc, killed, 6, log)
    assert not (killed / "metrics.json").exists()
    procs.run("fine_tuning", ["--resume", str(killed)], cache_dir=cache, log=tmp_path / "resumed.log")
    assert procs.summary_without_timings(killed) == procs.summary_without_timings(straight)
    assert procs.records(killed) == procs.records(straight)
