"""The weight-decay mask decides by parameter role, so a model with scanned (stacked) layers gets
the mask of the same model with looped layers. The old rank-and-name rule decayed the biases of
scanned stacks (``b_q``, ``b_1``, ... are rank 2 there because of the leading layer axis)."""

import re

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from seqjax import cells
from seqjax.nn import (BertConfig, BertForMaskedLM, GPT2Config, GPTLanguageModel, LuongSeq2Seq)
from seqjax.recurrence import stacked_init
from seqjax.train.optim import decay_mask, param_paths, param_role


def _by_role_name(params):
    """{path with layer indices removed: mask value} (the same for a list and a stacked dict)."""
    mask, paths = decay_mask(params), param_paths(params)
    out = {}
    for path, value in zip(jax.tree.leaves(paths), jax.tree.leaves(mask)):
        key = re.sub(r"/\d+(?=/|$)", "", path)
        assert out.setdefault(key, value) == value, f"layers disagree at {path}"
        out[key] = value
    return out


def _gpt(scan):
    config = GPT2Config(vocab_size=30, n_positions=8, n_embd=16, n_layer=3, n_head=2, scan_layers=scan)
    return nnx.split(GPTLanguageModel(config, rngs=nnx.Rngs(0)), nnx.Param)[1]


def _bert(scan):
    config = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=8, scan_layers=scan)
    return nnx.split(BertForMaskedLM(config, rngs=nnx.Rngs(0)), nnx.Param)[1]


@pytest.mark.parametrize("build", [_gpt, _bert], ids=["gpt", "bert"])
def test_looped_and_scanned_models_get_the_same_mask(build):
    looped, scanned = _by_role_name(build(False)), _by_role_name(build(True))
    assert looped == scanned
    for path, decayed in scanned.items():
        leaf = path.rsplit("/", 1)[-1]
        if re.fullmatch(r"b(_.*)?|bias", leaf) or "norm" in path:
            assert decayed is False, path          # the old rule decayed stack/layers/self_attn/b_q
        elif re.fullmatch(r"w(_.*)?", leaf) or "embedding" in path:
            assert decayed is True, path


def test_scanned_biases_are_spared_although_rank_two():
    params = _gpt(True)
    layers = params["blocks"]["stack"]["layers"]
    assert layers["self_attn"]["b_q"].ndim == 2 and layers["ffn"]["b_1"].ndim == 2
    mask = decay_mask(params)["blocks"]["stack"]["layers"]
    assert not mask["self_attn"]["b_q"].get_value() and not mask["ffn"]["b_1"].get_value()
    assert not mask["norm_1"]["scale"].get_value()
    assert mask["self_attn"]["w_q"].get_value() and mask["ffn"]["w_2"].get_value()


def test_recurrent_stacks_and_seq2seq_have_known_roles():
    cell = cells.lstm(peephole=True, layer_norm=True)
    layers = stacked_init(cell, jax.random.key(0), 3, 4, num_layers=2, bidirectional=True)
    mask = _by_role_name({"layers": layers})
    assert all(v is (k.rsplit("/", 1)[-1] in ("w_i", "w_h", "peephole")) for k, v in mask.items()), mask
    seq2seq = nnx.split(LuongSeq2Seq(20, 20, rngs=nnx.Rngs(0)), nnx.Param)[1]
    _by_role_name(seq2seq)  # every leaf has a role (an unknown one raises)


def test_unknown_names_raise_and_rules_extend():
    with pytest.raises(ValueError, match="cannot tell the role of the parameter 'head/gain'"):
        decay_mask({"head": {"gain": jnp.ones(3)}})
    assert decay_mask({"head": {"gain": jnp.ones(3)}}, rules=[(r"gain$", "norm")]) == {"head": {"gain": False}}
    with pytest.raises(ValueError, match="decay must name roles"):
        decay_mask({"w": jnp.ones((2, 2))}, decay=("matrix",))
    assert param_role("pooler/w") == "weight" and param_role("embeddings/token") == "embedding"
    assert decay_mask({"w": jnp.ones(2)}, decay=("bias",)) == {"w": False}
