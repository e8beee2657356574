"""seqjax.nn.params.load_pure_params is the inverse of every module's pure_params(): loading one
model's pure pytree into a second model of the same configuration (other seed) makes the second
compute what the first does, for every NNX model of seqjax.nn; what does not fit is refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqjax import nn as snn
from seqjax.nn import load_pure_params
from seqjax.nn.params import as_params

GPT = snn.GPT2Config(vocab_size=23, n_positions=12, n_embd=8, n_layer=2, n_head=2)
BERT = snn.BertConfig(vocab_size=23, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=16, max_position_embeddings=12)
IDS = jnp.array([[1, 5, 7, 2, 0, 9], [3, 3, 4, 8, 1, 6]])
XS = jax.random.normal(jax.random.key(0), (2, 6, 3))


def lstm_stack(seed, bidirectional=False):
    def layer(i, d):
        make = lambda s: snn.LSTM(d, 4, rngs=nnx.Rngs(seed * 10 + s))
        return snn.Bidirectional(make(2 * i), make(2 * i + 1)) if bidirectional else make(2 * i)
    return snn.Stacked([layer(0, 3), layer(1, 8 if bidirectional else 4)])


# (make(seed) -> model, run(model) -> output)
MODELS = {
    "gpt_looped": (lambda s: snn.GPTLanguageModel(GPT, rngs=nnx.Rngs(s)), lambda m: m(IDS)),
    "gpt_scanned": (lambda s: snn.GPTLanguageModel(snn.GPT2Config(**{**GPT.__dict__, "scan_layers": True}),
                                                   rngs=nnx.Rngs(s)), lambda m: m(IDS)),
    "gpt_untied": (lambda s: snn.GPTLanguageModel(snn.GPT2Config(**{**GPT.__dict__, "tie_word_embeddings": False}),
                                                  rngs=nnx.Rngs(s)), lambda m: m(IDS)),
    "lstm": (lambda s: snn.LSTM(3, 4, rngs=nnx.Rngs(s), layer_norm=True), lambda m: m(XS)),
    "stacked_lstm": (lstm_stack, lambda m: m(XS)),
    "stacked_bidirectional_lstm": (lambda s: lstm_stack(s, bidirectional=True), lambda m: m(XS)),
    "bert_mlm": (lambda s: snn.BertForMaskedLM(BERT, rngs=nnx.Rngs(s)), lambda m: m(IDS)),
    "encoder_decoder_scanned": (
        lambda s: snn.EncoderDecoder(23, 19, rngs=nnx.Rngs(s), d_model=8, num_heads=2, num_layers=2, d_ff=16,
                                     max_len=12, scan=True),
        lambda m: m(IDS, IDS % 19)),
    "bahdanau_seq2seq": (lambda s: snn.BahdanauSeq2Seq(23, 19, rngs=nnx.Rngs(s)), None),
}


def leaves_equal(a, b):
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("name", list(MODELS))
def test_load_pure_params_inverts_pure_params(name):
    make, run = MODELS[name]
    m1, m2 = make(0), make(1)
    assert not leaves_equal(m1.pure_params(), m2.pure_params())  # different draws to start with
    load_pure_params(m2, m1.pure_params())
    assert leaves_equal(m1.pure_params(), m2.pure_params())
    # every nnx.Param, not only those pure_params reads, took the new value
    assert leaves_equal(nnx.state(m1, nnx.Param), nnx.state(m2, nnx.Param))
    if run is not None:
        np.testing.assert_array_equal(np.asarray(run(m1)), np.asarray(run(m2)))


def test_values_are_cast_to_the_parameter_dtype():
    m1, m2 = snn.LSTM(3, 4, rngs=nnx.Rngs(0)), snn.LSTM(3, 4, rngs=nnx.Rngs(1))
    as_float64 = jax.tree.map(lambda a: np.asarray(a, np.float64), m1.pure_params())
    load_pure_params(m2, as_float64)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(m2.pure_params()))
    assert leaves_equal(m1.pure_params(), m2.pure_params())


def test_refuses_a_tree_of_another_form_or_size():
    looped, scanned = MODELS["gpt_looped"][0](0), MODELS["gpt_scanned"][0](0)
    with pytest.raises(ValueError, match="matches 0 entries.*looped vs scanned"):
        load_pure_params(scanned, looped.pure_params())
    params = looped.pure_params()
    with pytest.raises(ValueError, match=r"has shape \(23, 8\) but the model parameter token_embedding has \(30, 8\)"):
        load_pure_params(snn.GPTLanguageModel(snn.GPT2Config(**{**GPT.__dict__, "vocab_size": 30}),
                                              rngs=nnx.Rngs(0)), params)
    with pytest.raises(ValueError, match="match no parameter of the model: \\['lm_head'\\]"):
        load_pure_params(looped, {**params, "lm_head": jnp.zeros((8, 23))})
    del params["blocks"]["final_norm"]["bias"]
    with pytest.raises(ValueError, match="final_norm/bias matches 0 entries"):
        load_pure_params(looped, params)
    model = lstm_stack(0)
    with pytest.raises(ValueError, match="the model parameter layers/1/[a-z_]* matches 0 entries"):
        load_pure_params(model, model.pure_params()[:1])


class Twins(nnx.Module):
    """Two parameters whose paths differ only in a module attribute (``a`` / ``b``)."""

    def __init__(self):
        self.a = as_params({"x": {"w": jnp.zeros(2)}})
        self.b = as_params({"x": {"w": jnp.zeros(2)}})


class Nested(nnx.Module):
    """A parameter ``a/w`` and a deeper one ``a/b/w``: the first path is a subsequence of the second."""

    def __init__(self):
        self.a = as_params({"w": jnp.zeros(2), "b": {"w": jnp.zeros(3)}})


def test_one_entry_never_fills_two_parameters():
    # the old GPT-2 loader (load_gpt2_params) wrote {"x": {"w"}} into both a/x/w and b/x/w silently
    with pytest.raises(ValueError, match="params x/w matches two model parameters, a/x/w and b/x/w"):
        load_pure_params(Twins(), {"x": {"w": jnp.ones(2)}})


def test_an_exact_path_wins_over_a_shorter_one():
    # the old GPT-2 loader refused this: a/b/w matched both a/w and a/b/w
    model = Nested()
    load_pure_params(model, {"a": {"w": jnp.ones(2), "b": {"w": jnp.full(3, 2.0)}}})
    np.testing.assert_array_equal(np.asarray(model.a["w"][...]), np.ones(2))
    np.testing.assert_array_equal(np.asarray(model.a["b"]["w"][...]), np.full(3, 2.0))
