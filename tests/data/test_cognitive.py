"""The cognitive-task generators: shapes, epochs that partition time, labels and weights as
documented, label balance, determinism per key, input-noise scale, the answer recoverable from the
noiseless inputs by a hand-written rule (numpy, reading only the inputs), scoring, bad input.

One batch size throughout (eager JAX compiles each op once per shape)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.data.cognitive import (
    TASKS,
    choice_scores,
    context_decision,
    delayed_match,
    input_features,
    perceptual_decision,
    ready_set_go,
    reaching,
    timing_scores,
)
from seqjax.data.cognitive.trials import ring_channels

B, N_RING, DT = 512, 8, 20.0
FIX, RING1, RING2 = 0, ring_channels(N_RING, 1), ring_channels(N_RING, 2)
CUE0, CUE1 = 1 + 2 * N_RING, 2 + 2 * N_RING


@pytest.fixture(scope="module")
def batches():
    return {name: task(jax.random.key(0), B) for name, task in TASKS.items()}


@pytest.fixture(scope="module")
def clean():
    return {name: jax.tree.map(np.asarray, task(jax.random.key(0), B, input_noise=0.0)) for name, task in TASKS.items()}


@pytest.mark.parametrize("name", list(TASKS))
def test_shapes_epochs_labels_weights(batches, name):
    tr = jax.tree.map(np.asarray, batches[name])
    b, t, d = tr.inputs.shape
    assert (b, d) == (B, input_features(N_RING)) and tr.inputs.dtype == np.float32
    classes = 2 if name == "ready_set_go" else 1 + N_RING
    assert tr.labels.shape == (b, t) and tr.labels.dtype == np.int32
    assert tr.targets.shape == (b, t, classes) and tr.weights.shape == (b, t)
    ep = tr.epochs
    assert sorted(ep) == ["decision", "delay", "fixation", "stimulus"]
    stack = np.stack([ep[k] for k in ("fixation", "stimulus", "delay", "decision")], -1).astype(int)
    assert (stack.sum(-1) == 1).all()                              # a partition of every step
    order = np.argmax(stack, -1)
    assert (np.diff(order, axis=1) >= 0).all()                      # in order, each contiguous
    assert ep["fixation"][:, 0].all() and ep["decision"][:, -1].all()
    assert ep["stimulus"].any(1).all()
    onset = tr.info["decision_onset"]
    np.testing.assert_array_equal(onset, np.argmax(ep["decision"], 1))
    np.testing.assert_array_equal(tr.info["delay_ms"], ep["delay"].sum(1) * DT)
    # labels: 0 before the decision epoch, the answer in it
    assert (tr.labels[~ep["decision"]] == 0).all()
    np.testing.assert_array_equal(tr.labels[:, -1], tr.info["choice"])
    assert (tr.labels == np.where(ep["decision"], tr.info["choice"][:, None], 0)).all()
    # weights: 1 before, 0 in the grace window, 5 after; targets 0.8 on the label, 0.05 elsewhere
    grace = 0 if name == "ready_set_go" else 5
    assert (tr.weights[~ep["decision"]] == 1).all()
    steps = np.arange(t)[None, :] - onset[:, None]
    assert (tr.weights[ep["decision"] & (steps < grace)] == 0).all()
    assert (tr.weights[ep["decision"] & (steps >= grace)] == 5).all()
    np.testing.assert_array_equal(np.argmax(tr.targets, -1), tr.labels)
    assert set(np.unique(tr.targets)) == {np.float32(0.05), np.float32(0.8)}


@pytest.mark.parametrize("name", list(TASKS))
def test_determinism_per_key(batches, name):
    again = TASKS[name](jax.random.key(0), B)
    other = TASKS[name](jax.random.key(1), B)
    for a, b in zip(jax.tree.leaves(batches[name]), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(batches[name].inputs, other.inputs)


@pytest.mark.parametrize("name", list(TASKS))
def test_input_noise_scale(batches, clean, name):
    """Noise of std input_noise * sqrt(2 * 100 / dt) on every channel (Yang et al. 2019)."""
    noise = np.asarray(batches[name].inputs) - clean[name].inputs
    np.testing.assert_allclose(noise.std(), 0.01 * math.sqrt(2 * 100 / DT), rtol=0.01)
    assert abs(noise.mean()) < 1e-3


def test_fixation_input_and_balance(clean):
    for name, tr in clean.items():
        fix = tr.inputs[..., FIX]
        if name == "ready_set_go":
            assert (fix == 1).all()
        else:
            np.testing.assert_array_equal(fix, (~tr.epochs["decision"]).astype(np.float32))
    dm = clean["perceptual_decision"].info
    assert abs(dm["first_stronger"].mean() - 0.5) < 0.08
    np.testing.assert_allclose(np.unique(np.abs(dm["coherence"])), [0.01, 0.02, 0.04, 0.08], rtol=1e-6)
    assert abs((dm["coherence"] > 0).mean() - 0.5) < 0.08
    for name in ("delayed_match", "delayed_non_match"):
        info = clean[name].info
        assert abs(info["match"].mean() - 0.5) < 0.08
        go_rate = (info["choice"] > 0).mean()
        assert abs(go_rate - 0.5) < 0.08
        assert sorted(np.unique(info["delay_ms"]).tolist()) == [200.0, 400.0, 600.0, 800.0, 1000.0]
    ctx = clean["context_decision"].info
    assert abs(ctx["context"].mean() - 0.5) < 0.08 and abs(ctx["congruent"].mean() - 0.5) < 0.08
    for name in ("go", "anti", "delayed_go", "perceptual_decision"):
        counts = np.bincount(clean[name].info["choice"], minlength=1 + N_RING)[1:]
        assert counts.min() > B / N_RING * 0.6                        # every direction answered


# --- the answer from the noiseless inputs, by hand-written rules reading only the inputs -------


def test_decision_rule_recovers_answer(clean):
    tr = clean["perceptual_decision"]
    evidence = tr.inputs[:, :, RING1].sum(1)                          # total input per ring unit
    np.testing.assert_array_equal(1 + evidence.argmax(1), tr.labels[:, -1])
    ctx = clean["context_decision"]
    context = ctx.inputs[:, 0, CUE1] > ctx.inputs[:, 0, CUE0]         # cue 1 on: judge modality 2
    ev = np.where(context[:, None], ctx.inputs[:, :, RING2].sum(1), ctx.inputs[:, :, RING1].sum(1))
    np.testing.assert_array_equal(1 + ev.argmax(1), ctx.labels[:, -1])
    # the irrelevant modality alone answers only the congruent trials
    other = np.where(context[:, None], ctx.inputs[:, :, RING1].sum(1), ctx.inputs[:, :, RING2].sum(1))
    agree = (1 + other.argmax(1)) == ctx.labels[:, -1]
    np.testing.assert_array_equal(agree, ctx.info["congruent"])


def test_decision_sign_of_mean_evidence_with_noise():
    """With noise, the sign of the mean evidence difference (theta_1 unit minus theta_2 unit over
    the stimulus epoch) matches the answer more often at higher coherence, and almost always at 0.08."""
    acc = []
    for c in (0.01, 0.08):
        tr = jax.tree.map(np.asarray, perceptual_decision(jax.random.key(3), B, coherences=(c,)))
        rows = np.arange(B)
        stim = tr.epochs["stimulus"]
        u1 = tr.inputs[:, :, RING1][rows, :, tr.info["direction_1"]]
        u2 = tr.inputs[:, :, RING1][rows, :, tr.info["direction_2"]]
        diff = ((u1 - u2) * stim).sum(1) / stim.sum(1)
        acc.append(np.mean((diff > 0) == tr.info["first_stronger"]))
    assert 0.7 < acc[0] < acc[1] and acc[1] > 0.99


def test_memory_rule_recovers_answer(clean):
    for name, go_on_match in (("delayed_match", True), ("delayed_non_match", False)):
        tr = clean[name]
        fix_on = tr.inputs[..., FIX] > 0.5
        ring = tr.inputs[:, :, RING1]
        sample = np.where(fix_on[..., None], ring, 0).sum(1).argmax(1)
        test = np.where(~fix_on[..., None], ring, 0).sum(1).argmax(1)
        match = sample == test
        expected = np.where(match == go_on_match, 1 + test, 0)
        np.testing.assert_array_equal(expected, tr.labels[:, -1])
        # nothing is shown during the delay
        assert (ring[tr.epochs["delay"]] == 0).all()


def test_reaching_rules(clean):
    for name, shift in (("go", 0), ("anti", N_RING // 2), ("delayed_go", 0)):
        tr = clean[name]
        direction = tr.inputs[:, :, RING1].sum(1).argmax(1)
        np.testing.assert_array_equal(1 + (direction + shift) % N_RING, tr.labels[:, -1])
        on_in_decision = (tr.inputs[:, :, RING1].max(-1) > 0)[tr.epochs["decision"]]
        assert on_in_decision.all() if name != "delayed_go" else not on_in_decision.any()


def test_ready_set_go_rule(clean):
    tr = clean["ready_set_go"]
    ready = tr.inputs[:, :, CUE0].argmax(1)
    set_ = tr.inputs[:, :, CUE1].argmax(1)
    go = tr.labels.argmax(1)                                           # first step labelled "go"
    np.testing.assert_array_equal(go - set_, set_ - ready)             # gain 1: reproduce it
    np.testing.assert_array_equal((set_ - ready) * DT, tr.info["interval_ms"])
    doubled = jax.tree.map(np.asarray, ready_set_go(jax.random.key(0), B, gain=2.0, input_noise=0.0))
    r, s = doubled.inputs[:, :, CUE0].argmax(1), doubled.inputs[:, :, CUE1].argmax(1)
    np.testing.assert_array_equal(doubled.labels.argmax(1) - s, 2 * (s - r))


def test_explicit_conditions_and_dt():
    c = jnp.linspace(-0.1, 0.1, B)
    tr = perceptual_decision(jax.random.key(0), B, signed_coherence=c, input_noise=0.0)
    np.testing.assert_array_equal(tr.info["coherence"], c)
    tr10 = perceptual_decision(jax.random.key(0), B, dt=10.0)
    assert tr10.inputs.shape[1] == 2 * 80                              # same durations in ms
    ctx = context_decision(jax.random.key(0), B, context=jnp.zeros(B, jnp.int32))
    assert (np.asarray(ctx.info["context"]) == 0).all()


def test_scores():
    tr = reaching(jax.random.key(0), B, kind="go")
    perfect = 10.0 * jax.nn.one_hot(tr.labels, 1 + N_RING)
    s = choice_scores(perfect, tr)
    assert bool(s["correct"].all()) and not bool(s["fixation_broken"].any())
    # answering early breaks fixation; a wrong direction is wrong
    early = perfect.at[:, 0].set(10.0 * jax.nn.one_hot(tr.labels[:, -1], 1 + N_RING))
    assert not bool(choice_scores(early, tr)["correct"].any())
    wrong = 10.0 * jax.nn.one_hot(jnp.where(tr.epochs["decision"], 1 + (tr.labels - 1 + 1) % N_RING, 0), 1 + N_RING)
    assert not bool(choice_scores(wrong, tr)["correct"].any())
    rsg = ready_set_go(jax.random.key(0), B)
    ideal = 10.0 * jax.nn.one_hot(rsg.labels, 2)
    ts = timing_scores(ideal, rsg, dt=DT)
    np.testing.assert_array_equal(ts["produced_ms"], ts["target_ms"])
    assert bool(ts["correct"].all())
    late = 10.0 * jax.nn.one_hot(jnp.roll(rsg.labels, 10, axis=1), 2)   # 200 ms late
    assert not bool(timing_scores(late, rsg, dt=DT)["correct"].all())


def test_bad_input():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="batch"):
        perceptual_decision(key, 0)
    with pytest.raises(ValueError, match="dt"):
        perceptual_decision(key, 2, dt=-1.0)
    with pytest.raises(ValueError, match="n_ring"):
        perceptual_decision(key, 2, n_ring=7)
    with pytest.raises(ValueError, match="coherences"):
        perceptual_decision(key, 2, coherences=(-0.1,))
    with pytest.raises(ValueError, match="signed_coherence"):
        perceptual_decision(key, 2, signed_coherence=jnp.zeros(3))
    with pytest.raises(ValueError, match="stimulus_ms"):
        perceptual_decision(key, 2, stimulus_ms=(800.0, 400.0))
    with pytest.raises(ValueError, match="modality"):
        perceptual_decision(key, 2, modality=3)
    with pytest.raises(ValueError, match="input_noise"):
        perceptual_decision(key, 2, input_noise=-1.0)
    with pytest.raises(ValueError, match="rule"):
        delayed_match(key, 2, rule="maybe")
    with pytest.raises(ValueError, match="match_probability"):
        delayed_match(key, 2, match_probability=1.5)
    with pytest.raises(ValueError, match="delays_ms"):
        delayed_match(key, 2, delays_ms=())
    with pytest.raises(ValueError, match="kind"):
        reaching(key, 2, kind="reach")
    with pytest.raises(ValueError, match="context"):
        context_decision(key, 2, context=jnp.array([0, 2]))
    with pytest.raises(ValueError, match="intervals_ms"):
        ready_set_go(key, 2, intervals_ms=(0.0,))
    with pytest.raises(ValueError, match="gain"):
        ready_set_go(key, 2, gain=0.0)
    tr = ready_set_go(key, 2)
    with pytest.raises(ValueError, match="logits"):
        timing_scores(jnp.zeros((2, 3, 2)), tr, dt=DT)
    with pytest.raises(ValueError, match="logits"):
        choice_scores(jnp.zeros((2, tr.labels.shape[1], 5)), tr)


def test_against_neurogym_if_installed():
    """Convention parity with neurogym (not a dependency: skipped when it is not installed):
    its perceptual decision task, too, has a fixation input that is on exactly while the ground
    truth is "fixate" (class 0)."""
    ngym = pytest.importorskip("neurogym")
    env = ngym.make("PerceptualDecisionMaking-v0", dt=DT)
    env.new_trial()
    ob, gt = np.asarray(env.ob), np.asarray(env.gt)
    np.testing.assert_array_equal(ob[:, 0] > 0.5, gt == 0)
