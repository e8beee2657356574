"""Recurrent seq2seq (seqjax.seq2seq.recurrent, seqjax.nn.seq2seq): teacher forcing equals the
step function, masking, padding invariance, numpy references for the Bahdanau and Luong steps,
the bottleneck's independence from the encoder states, and jit/grad through nnx.split/merge.

Every pure function is jitted once per spec (``_fns``): compiling, not running, dominates here.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqjax.cells import gru_step, lstm_step
from seqjax.nn import BahdanauSeq2Seq, BottleneckSeq2Seq, LuongSeq2Seq, RecurrentSeq2Seq
from seqjax.seq2seq import (
    DecodeState,
    Seq2SeqSpec,
    decode,
    decode_step,
    decoder_state,
    encode,
    forward,
    seq2seq_init,
)

V_SRC, V_TGT, B, S, T = 7, 9, 3, 5, 4
SIZES = dict(embed_features=4, hidden_features=3)


def _key(seed):
    return jax.random.key(seed, impl="unsafe_rbg")


SRC = jax.random.randint(_key(1), (B, S), 0, V_SRC)
LENGTHS = jnp.array([5, 3, 1])
TGT = jax.random.randint(_key(2), (B, T), 0, V_TGT)

SPECS = {
    "bahdanau_lstm": Seq2SeqSpec(V_SRC, V_TGT, attention="bahdanau", cell="lstm", **SIZES),
    "luong_general_gru": Seq2SeqSpec(V_SRC, V_TGT, attention="luong", cell="gru", **SIZES),
    "luong_dot_lstm_nofeed": Seq2SeqSpec(
        V_SRC, V_TGT, attention="luong", score="dot", input_feeding=False, **SIZES
    ),
    "luong_concat_gru_cho": Seq2SeqSpec(
        V_SRC, V_TGT, attention="luong", score="concat", cell="gru_cho", decoder_features=5,
        attention_features=4, **SIZES,
    ),
    "none_gru": Seq2SeqSpec(V_SRC, V_TGT, attention="none", cell="gru", **SIZES),
}
ATTENTIVE = [name for name, spec in SPECS.items() if spec.attention != "none"]


JUNK = jax.random.randint(_key(3), (B, 3), 0, V_SRC)  # anything past the length, not only PAD


PADDED = ("bahdanau_lstm", "none_gru")  # also run on a longer-padded source


@functools.lru_cache(maxsize=None)
def _run(name):
    """Everything the tests compare, as numpy arrays, from one compiled program per spec: the
    parameters, the encoder's results, the teacher-forced pass and the state after every call of
    the step function (scanned over the target tokens)."""
    spec = SPECS[name]

    @jax.jit
    def run(params):
        memory, mask, final = encode(spec, params, SRC, LENGTHS)
        start = decoder_state(spec, params, memory, mask, final)
        logits, weights = decode(spec, params, start, TGT)

        def step(state, tokens):
            state, out = decode_step(spec, params, state, tokens)
            return state, (out, state)

        _, (step_logits, states) = jax.lax.scan(step, start, TGT.T)
        # beam search reorders hypotheses by gathering every leaf of the state along axis 0
        perm = jnp.array([2, 0, 0])
        gathered = jax.tree.map(lambda x: x[perm], start)
        gathered_logits = decode_step(spec, params, gathered, TGT[perm, 0])[1]
        out = dict(
            params=params, memory=memory, mask=mask, final=final, logits=logits, weights=weights,
            step_logits=step_logits.swapaxes(0, 1), gathered_logits=gathered_logits, perm=perm,
            # states[i]: the state before target step i ([T + 1] states, batch second)
            states=jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), start, states),
        )
        if name in PADDED:
            padded = jnp.concatenate([SRC, JUNK], axis=1)
            out["padded_logits"], out["padded_weights"] = forward(spec, params, padded, LENGTHS, TGT)
        return out

    # init outside: the modules built from the same spec reuse its compiled program
    out = jax.tree.map(np.asarray, run(seq2seq_init(_key(0), spec)))
    out["states"] = [jax.tree.map(lambda x: x[i], out["states"]) for i in range(T + 1)]
    return out


@pytest.mark.parametrize("name", list(SPECS))
def test_teacher_forcing_equals_step_by_step(name):
    spec, r = SPECS[name], _run(name)
    chex.assert_shape(r["logits"], (B, T, V_TGT))
    assert np.isfinite(r["logits"]).all()
    np.testing.assert_allclose(r["step_logits"], r["logits"], atol=1e-5)
    if spec.attention == "none":
        assert r["weights"] is None
        assert all(st.memory is None and st.weights is None for st in r["states"])
    else:
        chex.assert_shape(r["weights"], (B, T, S))
        step_weights = np.stack([st.weights for st in r["states"][1:]], 1)
        np.testing.assert_allclose(step_weights, r["weights"], atol=1e-6)
    # a pytree with the batch leading every leaf: beam search reorders it along axis 0
    for leaf in jax.tree.leaves(r["states"][-1]):
        assert leaf.shape[0] == B
    np.testing.assert_allclose(r["gathered_logits"], r["logits"][r["perm"], 0], atol=1e-5)


@pytest.mark.parametrize("name", ATTENTIVE)
def test_attention_weights_sum_to_one_and_are_zero_on_padding(name):
    w = _run(name)["weights"]
    valid = np.broadcast_to(np.arange(S)[None, None, :] < np.asarray(LENGTHS)[:, None, None], w.shape)
    np.testing.assert_allclose((w * valid).sum(-1), 1.0, atol=1e-6)
    assert (w[~valid] == 0.0).all()


@pytest.mark.parametrize("name", PADDED)
def test_source_padding_changes_no_logit(name):
    r = _run(name)
    np.testing.assert_allclose(r["padded_logits"], r["logits"], atol=1e-5)
    if r["weights"] is not None:
        np.testing.assert_allclose(r["padded_weights"][..., :S], r["weights"], atol=1e-6)
        assert (r["padded_weights"][..., S:] == 0.0).all()


def _softmax_valid(e, valid):
    e = np.where(valid, e, -np.inf)
    e = np.exp(e - e.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_bahdanau_step_matches_numpy_reference():
    """e_ij = v^T tanh(W1 s_{i-1} + W2 h_j) from the *previous* state; the context is part of the
    cell input; logits read [s_i; c_i; e_i]."""
    r = _run("bahdanau_lstm")
    p, memory, valid, states = r["params"], r["memory"], r["mask"], r["states"]
    att = p["attention"]
    assert set(att) == {"w_query", "w_key", "v"}
    for i in range(T):
        s_prev = states[i].carry.h
        e = np.tanh((s_prev @ att["w_query"])[:, None, :] + memory @ att["w_key"]) @ att["v"]
        alpha = _softmax_valid(e, valid)
        np.testing.assert_allclose(states[i + 1].weights, alpha, atol=1e-6)
        context = np.einsum("bs,bsd->bd", alpha, memory)
        emb = p["tgt_embedding"][np.asarray(TGT[:, i])]
        carry, _ = jax.vmap(lstm_step, in_axes=(None, 0, 0))(
            p["decoder"], states[i].carry, np.concatenate([emb, context], -1)
        )
        chex.assert_trees_all_close(states[i + 1].carry, carry, atol=1e-5)
        features = np.concatenate([np.asarray(carry.h), context, emb], -1)
        np.testing.assert_allclose(
            r["logits"][:, i], features @ p["output"]["w"] + p["output"]["b"], atol=1e-5
        )


def test_luong_step_matches_numpy_reference():
    """h_t = f(h_{t-1}, [e_t; h~_{t-1}]); general score h_t^T W_a h_j from the *current* state;
    h~_t = tanh(W_c [c_t; h_t]); logits = W_s h~_t + b_s."""
    spec = SPECS["luong_general_gru"]
    r = _run("luong_general_gru")
    p, memory, valid, states = r["params"], r["memory"], r["mask"], r["states"]
    attentional = np.zeros((B, spec.decoder_hidden), np.float32)
    for i in range(T):
        emb = p["tgt_embedding"][np.asarray(TGT[:, i])]
        h, _ = jax.vmap(gru_step, in_axes=(None, 0, 0))(
            p["decoder"], states[i].carry, np.concatenate([emb, attentional], -1)
        )
        h = np.asarray(h)
        np.testing.assert_allclose(states[i + 1].carry, h, atol=1e-5)
        alpha = _softmax_valid(np.einsum("bd,de,bse->bs", h, p["attention"]["w"], memory), valid)
        np.testing.assert_allclose(states[i + 1].weights, alpha, atol=1e-6)
        context = np.einsum("bs,bsd->bd", alpha, memory)
        attentional = np.tanh(np.concatenate([context, h], -1) @ p["combine"]["w"])
        np.testing.assert_allclose(states[i + 1].attentional, attentional, atol=1e-5)
        np.testing.assert_allclose(
            r["logits"][:, i], attentional @ p["output"]["w"] + p["output"]["b"], atol=1e-5
        )


def test_bridge_is_linear_tanh_of_final_states():
    spec = SPECS["bahdanau_lstm"]
    r = _run("bahdanau_lstm")
    p, (fwd, bwd), carry = r["params"]["bridge"], r["final"], r["states"][0].carry
    for name in ("h", "c"):
        both = np.concatenate([getattr(fwd, name), getattr(bwd, name)], -1)
        np.testing.assert_allclose(
            getattr(carry, name), np.tanh(both @ p[name]["w"] + p[name]["b"]), atol=1e-6
        )
    # the final states are those of the last *valid* step: the forward state at L-1 and the
    # backward state at 0 (the memory concatenates forward and backward features)
    h, memory = spec.hidden_features, r["memory"]
    np.testing.assert_allclose(fwd.h, memory[np.arange(B), np.asarray(LENGTHS) - 1, :h], atol=1e-6)
    np.testing.assert_allclose(bwd.h, memory[:, 0, h:], atol=1e-6)


def _memory_dependence(name):
    """Logits from given encoder states and final carries, their gradient w.r.t. both, and
    the logits with the memory replaced by noise and every example's final carry by the first
    one's (with the first example's target everywhere)."""
    spec, r = SPECS[name], _run(name)
    params, mask = r["params"], r["mask"]

    def logits_given(memory, final, tgt):
        return decode(spec, params, decoder_state(spec, params, memory, mask, final), tgt)[0]

    @jax.jit
    def run(memory, final, noise):
        grads = jax.grad(lambda m, c: logits_given(m, c, TGT).sum(), argnums=(0, 1))(memory, final)
        first = jax.tree.map(lambda x: jnp.broadcast_to(x[:1], x.shape), final)
        one_target = jnp.broadcast_to(TGT[:1], TGT.shape)
        return logits_given(memory, final, TGT), logits_given(noise, first, one_target), grads

    noise = jax.random.normal(_key(4), r["memory"].shape)
    return r, jax.tree.map(np.asarray, run(r["memory"], r["final"], noise))


def test_bottleneck_decoder_sees_the_source_only_through_the_final_states():
    r, (logits, noisy_same_final, (g_memory, g_final)) = _memory_dependence("none_gru")
    np.testing.assert_allclose(logits, r["logits"], atol=1e-6)
    assert (g_memory == 0.0).all()
    assert all(np.abs(g).sum() > 0 for g in jax.tree.leaves(g_final))
    # any encoder states and any source with the same final states: the same logits
    np.testing.assert_allclose(noisy_same_final, np.broadcast_to(logits[:1], logits.shape), atol=1e-6)


def test_attention_decoder_reads_every_valid_encoder_state_and_no_padded_one():
    r, (logits, noisy_same_final, (g_memory, _)) = _memory_dependence("bahdanau_lstm")
    np.testing.assert_allclose(logits, r["logits"], atol=1e-6)
    valid = r["mask"]
    assert (g_memory[~valid] == 0.0).all()
    assert (np.abs(g_memory).sum(-1)[valid] > 0).all()
    assert not np.allclose(noisy_same_final, np.broadcast_to(logits[:1], logits.shape), atol=1e-3)


def test_luong_variants():
    feed, nofeed = SPECS["luong_general_gru"], SPECS["luong_dot_lstm_nofeed"]
    assert feed.decoder_input_features == feed.embed_features + feed.decoder_hidden
    assert nofeed.decoder_input_features == nofeed.embed_features
    assert _run("luong_dot_lstm_nofeed")["params"]["attention"] == {}
    assert all(st.attentional is None for st in _run("luong_dot_lstm_nofeed")["states"])
    concat = _run("luong_concat_gru_cho")["params"]
    assert concat["attention"]["w_key"].shape == (6, 4)  # memory 2h = 6 -> attention_features 4
    assert concat["combine"]["w"].shape == (6 + 5, 5)  # W_c: [c_t; h_t] -> d
    for name in ("luong_general_gru", "luong_dot_lstm_nofeed", "luong_concat_gru_cho"):
        assert np.isfinite(_run(name)["logits"]).all()


def test_modules_are_thin_and_compose_with_jit_and_grad():
    model = LuongSeq2Seq(V_SRC, V_TGT, rngs=nnx.Rngs(_key(0)), cell="gru", **SIZES)
    assert isinstance(model, RecurrentSeq2Seq) and model.spec == SPECS["luong_general_gru"]
    graphdef, state = nnx.split(model, nnx.Param)
    params = model.pure_params()
    # nnx.split yields exactly the pure pytree; load the reference parameters into it
    chex.assert_trees_all_equal_structs(nnx.to_pure_dict(state), params)
    r = _run("luong_general_gru")
    nnx.replace_by_pure_dict(state, r["params"])

    def loss_of(logits):
        return jnp.mean(jax.nn.logsumexp(logits, -1))

    @jax.jit
    def run(state):
        grads = jax.grad(lambda st: loss_of(nnx.merge(graphdef, st)(SRC, LENGTHS, TGT)))(state)
        module = nnx.merge(graphdef, state)
        logits = module(SRC, LENGTHS, TGT)
        start = module.init_decode_state(SRC, LENGTHS)
        assert isinstance(start, DecodeState)
        _, step_logits = module.decode_step(start, TGT[:, 0])
        _, bound_logits = module.step_fn()(start, TGT[:, 0])
        return grads, logits, step_logits, bound_logits

    grads, logits, step_logits, bound_logits = run(state)
    grads = nnx.to_pure_dict(grads)
    chex.assert_trees_all_equal_structs(grads, params)
    leaves = jax.tree.leaves(grads)
    assert all(np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).sum() > 0 for g in leaves)
    np.testing.assert_allclose(logits, r["logits"], atol=1e-6)  # the module calls the pure core
    np.testing.assert_allclose(step_logits, logits[:, 0], atol=1e-5)
    np.testing.assert_allclose(bound_logits, step_logits, atol=1e-6)


def test_bottleneck_module_dropout_bfloat16_and_no_mutation():
    model = BottleneckSeq2Seq(
        V_SRC, V_TGT, rngs=nnx.Rngs(_key(0)), dropout_rate=0.5, dtype=jnp.bfloat16, **SIZES
    )
    assert "attention" not in model.pure_params()
    assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(model.pure_params()))
    before = nnx.state(model)

    @nnx.jit  # propagates any state change back to `model`: there must be none
    def run(model):
        plain, weights = model(SRC, LENGTHS, TGT, return_attention=True)
        return plain, weights, model(SRC, LENGTHS, TGT, dropout_key=_key(5))

    plain, weights, dropped = run(model)
    assert weights is None and plain.dtype == jnp.bfloat16
    assert np.isfinite(np.asarray(plain, np.float32)).all()
    assert not np.allclose(np.asarray(plain, np.float32), np.asarray(dropped, np.float32))
    chex.assert_trees_all_equal(nnx.state(model), before)
    # the other two named modules, built abstractly (nothing compiled)
    assert nnx.eval_shape(lambda: BahdanauSeq2Seq(5, 6, rngs=nnx.Rngs(0))).spec.attention == "bahdanau"
    assert nnx.eval_shape(lambda: LuongSeq2Seq(5, 6, rngs=nnx.Rngs(0))).spec.score_name == "general"


def test_bad_input_raises_clear_errors():
    spec = SPECS["bahdanau_lstm"]
    r = _run("bahdanau_lstm")
    params, state = r["params"], r["states"][0]
    with pytest.raises(ValueError, match="score='dot'"):
        Seq2SeqSpec(5, 5, hidden_features=3, decoder_features=4, attention="luong", score="dot")
    with pytest.raises(ValueError, match="score must be None"):
        Seq2SeqSpec(5, 5, attention="none", score="dot")
    with pytest.raises(ValueError, match="attention must be one of"):
        Seq2SeqSpec(5, 5, attention="self")
    with pytest.raises(ValueError, match="src_tokens must hold ids"):
        forward(spec, params, np.asarray(SRC) + V_SRC, LENGTHS, TGT)
    with pytest.raises(ValueError, match="src_lengths must lie"):
        forward(spec, params, SRC, np.array([5, 3, 6]), TGT)
    with pytest.raises(ValueError, match="must hold integers"):
        forward(spec, params, np.asarray(SRC, np.float32), LENGTHS, TGT)
    with pytest.raises(ValueError, match="tokens has batch 2"):
        decode_step(spec, params, state, TGT[:2, 0])
    with pytest.raises(ValueError, match="tgt_in_tokens has batch 2"):
        decode(spec, params, state, TGT[:2])
    with pytest.raises(ValueError, match="DecodeState"):
        decode_step(spec, params, tuple(state), TGT[:, 0])
