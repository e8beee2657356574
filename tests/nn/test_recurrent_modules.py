"""The NNX modules are thin: same numbers as the pure functions, and they compose with jit/grad."""

import chex
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from seqjax import nn as snn
from seqjax.cells import elman, gru, gru_cho, lstm, min_gru, min_lstm
from seqjax.recurrence import bidirectional, rnn, stacked

XS = jax.random.normal(jax.random.key(0), (3, 6, 4))
LENGTHS = jnp.array([6, 2, 0])

MODULES = [
    (lambda r: snn.RNN(4, 5, rngs=r), elman("tanh")),
    (lambda r: snn.RNN(4, 5, rngs=r, activation="relu"), elman("relu")),
    (lambda r: snn.LSTM(4, 5, rngs=r, peephole=True, layer_norm=True), lstm(peephole=True, layer_norm=True)),
    (lambda r: snn.GRU(4, 5, rngs=r), gru()),
    (lambda r: snn.GRU(4, 5, rngs=r, convention="reset_before"), gru_cho()),
    (lambda r: snn.MinGRU(4, 5, rngs=r, parallel=True), min_gru()),
    (lambda r: snn.MinLSTM(4, 5, rngs=r), min_lstm()),
]


@pytest.mark.parametrize("make, cell", MODULES, ids=lambda v: getattr(v, "name", ""))
def test_module_equals_pure_function(make, cell):
    module = make(nnx.Rngs(0))
    params = module.pure_params()
    chex.assert_trees_all_equal_shapes(params, cell.init(jax.random.key(1), 4, 5))
    chex.assert_trees_all_close(
        module(XS, seq_lengths=LENGTHS), rnn(cell, params, XS, seq_lengths=LENGTHS), atol=1e-6
    )


def test_split_merge_jit_grad_matches_pure_grad():
    module = snn.LSTM(4, 5, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(module, nnx.Param)

    @jax.jit
    def loss(params):
        return jnp.sum(nnx.merge(graphdef, params)(XS, seq_lengths=LENGTHS) ** 2)

    grads = jax.grad(loss)(params)
    pure = jax.grad(lambda p: jnp.sum(rnn(lstm(), p, XS, seq_lengths=LENGTHS) ** 2))(module.pure_params())
    for name, value in pure.items():
        chex.assert_trees_all_close(grads[name][...], value, atol=1e-5)


def test_forward_pass_mutates_no_state():
    module = snn.GRU(4, 5, rngs=nnx.Rngs(0), recurrent_dropout_rate=0.3)
    before = nnx.state(module)
    module(XS, dropout_key=jax.random.key(3))
    chex.assert_trees_all_equal(nnx.state(module), before)


def test_bidirectional_and_stacked_match_pure_functions():
    rngs = nnx.Rngs(0)
    first = snn.Bidirectional(snn.LSTM(4, 5, rngs=rngs), snn.LSTM(4, 5, rngs=rngs), return_carry=True)
    carry, ys = first(XS, seq_lengths=LENGTHS)
    ref_carry, ref = bidirectional(lstm(), first.pure_params(), XS, seq_lengths=LENGTHS, return_carry=True)
    chex.assert_trees_all_close((carry, ys), (ref_carry, ref))
    chex.assert_shape(ys, (3, 6, 10))

    second = snn.Bidirectional(snn.LSTM(10, 5, rngs=rngs), snn.LSTM(10, 5, rngs=rngs))
    with pytest.raises(ValueError, match="return_carry"):  # Stacked would ignore it
        snn.Stacked([first, second])
    first = snn.Bidirectional(first.forward, first.backward)
    stack = snn.Stacked([first, second], dropout_rate=0.5)
    key = jax.random.key(7)
    out = stack(XS, seq_lengths=LENGTHS, dropout_key=key)
    ref = stacked(
        lstm(), [first.pure_params(), second.pure_params()], XS, seq_lengths=LENGTHS,
        dropout_rate=0.5, dropout_key=key,
    )
    chex.assert_trees_all_close(out, ref)
    # Without a key there is no dropout, so training and evaluation outputs differ.
    assert not jnp.allclose(stack(XS, seq_lengths=LENGTHS), out)


def test_residual_stack():
    rngs = nnx.Rngs(0)
    stack = snn.Stacked([snn.GRU(4, 4, rngs=rngs), snn.GRU(4, 4, rngs=rngs)], residual=True)
    layers = [layer.pure_params() for layer in stack.layers]
    chex.assert_trees_all_close(stack(XS), stacked(gru(), layers, XS, residual=True))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda r: snn.GRU(4, 5, rngs=r, convention="cho"), "convention"),
        (lambda r: snn.RNN(4, 5, rngs=r, activation="sigmoid"), "activation"),
        (lambda r: snn.LSTM(0, 5, rngs=r), "in_features"),
        (lambda r: snn.LSTM(4, 5, rngs=r, recurrent_dropout_rate=1.0), "recurrent_dropout_rate"),
        (lambda r: snn.Bidirectional(snn.LSTM(4, 5, rngs=r), snn.GRU(4, 5, rngs=r)), "same cell"),
        (lambda r: snn.Bidirectional(snn.LSTM(4, 5, rngs=r), snn.LSTM(4, 5, rngs=r), merge="mean"), "merge"),
        (lambda r: snn.Stacked([]), "at least one"),
        (lambda r: snn.Stacked([snn.LSTM(4, 5, rngs=r), snn.GRU(5, 5, rngs=r)]), "same cell"),
    ],
)
def test_bad_construction_raises_clear_error(build, match):
    with pytest.raises(ValueError, match=match):
        build(nnx.Rngs(0))


def test_bad_input_raises_clear_error():
    module = snn.LSTM(4, 5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="xs has 3 features"):
        module(XS[..., :3])
    with pytest.raises(ValueError, match="rank 3"):
        module(XS[0])
    with pytest.raises(ValueError, match="seq_lengths"):
        module(XS, seq_lengths=jnp.array([7, 1, 1]))


# Composites used to run every layer with the first (forward) layer's options and drop the
# others' without a word: a bfloat16 backward layer ran in float32, a second layer's recurrent
# dropout was never applied. They now refuse layers that disagree.
@pytest.mark.parametrize(
    "build, match",
    [
        (lambda r: snn.Bidirectional(snn.LSTM(4, 5, rngs=r), snn.LSTM(4, 5, rngs=r, dtype=jnp.bfloat16)),
         r"one dtype; its layers disagree \(forward: None, backward: <class 'jax.numpy.bfloat16'>\)"),
        (lambda r: snn.Bidirectional(snn.LSTM(4, 5, rngs=r), snn.LSTM(4, 5, rngs=r, unroll=2)), "one unroll"),
        (lambda r: snn.Bidirectional(snn.LSTM(4, 5, rngs=r, reverse=True), snn.LSTM(4, 5, rngs=r)),
         r"forward was built with \{'reverse': True\}"),
        (lambda r: snn.Bidirectional(snn.LSTM(4, 5, rngs=r), snn.LSTM(4, 5, rngs=r, keep_order=True)),
         "keep_order"),
        (lambda r: snn.Stacked([snn.GRU(4, 5, rngs=r), snn.GRU(5, 5, rngs=r, recurrent_dropout_rate=0.3)]),
         r"one recurrent_dropout_rate; its layers disagree \(layers\[0\]: 0.0, layers\[1\]: 0.3\)"),
        (lambda r: snn.Stacked([snn.GRU(4, 5, rngs=r), snn.GRU(5, 5, rngs=r, return_carry=True)]),
         "return_carry"),
        (lambda r: snn.Stacked([snn.Bidirectional(snn.GRU(4, 5, rngs=r), snn.GRU(4, 5, rngs=r)),
                                snn.Bidirectional(snn.GRU(10, 5, rngs=r, dtype=jnp.bfloat16),
                                                  snn.GRU(10, 5, rngs=r, dtype=jnp.bfloat16))]),
         r"layers\[0\].forward: None, layers\[0\].backward: None, layers\[1\].forward: <class"),
        (lambda r: snn.Stacked([snn.Bidirectional(snn.GRU(4, 5, rngs=r), snn.GRU(4, 5, rngs=r)), snn.GRU(10, 5, rngs=r)]),
         "all Bidirectional or all unidirectional"),
    ],
)
def test_composites_refuse_layers_whose_options_disagree(build, match):
    with pytest.raises(ValueError, match=match):
        build(nnx.Rngs(0))


def test_composites_run_with_the_shared_options():
    rngs = nnx.Rngs(0)
    layer = snn.Bidirectional(snn.LSTM(4, 5, rngs=rngs, dtype=jnp.bfloat16),
                              snn.LSTM(4, 5, rngs=rngs, dtype=jnp.bfloat16))
    assert layer(XS, seq_lengths=LENGTHS).dtype == jnp.bfloat16
    stack = snn.Stacked([snn.GRU(4, 5, rngs=rngs, recurrent_dropout_rate=0.5),
                         snn.GRU(5, 5, rngs=rngs, recurrent_dropout_rate=0.5)])
    key = jax.random.key(3)
    ref = stacked(gru(), stack.pure_params(), XS, seq_lengths=LENGTHS, recurrent_dropout_rate=0.5, dropout_key=key)
    chex.assert_trees_all_close(stack(XS, seq_lengths=LENGTHS, dropout_key=key), ref)
