"""Hugging Face checkpoint directories -> seqjax models -> back (seqjax.interop.huggingface and
seqjax.nn.transformer.pretrained), checked against ``transformers`` itself.

Every Hugging Face model is built locally from a tiny config (odd sizes included: hidden 48,
3 heads, intermediate 80, 3 layers) with random weights, redrawn wider than the 0.02 init (and
the biases and LayerNorm parameters made nonzero, so every entry of the name map matters), and
written with ``save_pretrained`` (``model.safetensors``) or ``torch.save`` (``pytorch_model.bin``)
to a temporary directory: what a downloaded checkpoint looks like to the code. Nothing is
downloaded (``HF_HUB_OFFLINE=1``). Outputs are compared in float32 to 1e-5, with padding
(``attention_mask``) and segment ids (``token_type_ids``).
"""

from __future__ import annotations

import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never reach the Hub

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import nnx  # noqa: E402

torch = pytest.importorskip("torch", reason="the Hugging Face parity tests need torch: pip install 'seqjax[test]'")
transformers = pytest.importorskip(
    "transformers", reason="the Hugging Face parity tests need transformers: pip install 'seqjax[test]'"
)
pytest.importorskip("safetensors", reason="the checkpoint tests need safetensors: pip install 'seqjax[test]'")

from test_huggingface_gpt2 import one_torch_thread  # noqa: E402,F401  (autouse: one PyTorch thread)

from seqjax.data.corpora import MissingOptionalDependency  # noqa: E402
from seqjax.interop.huggingface import (  # noqa: E402
    check_hf_bert_config,
    check_hf_gpt2_config,
    from_hf_bert,
    load_hf_tokenizer,
    read_hf_state_dict,
    to_hf_bert,
)
from seqjax.nn import load_pure_params  # noqa: E402
from seqjax.nn.transformer import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    BertForNextSentencePrediction,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    GPT2Config,
    GPTLanguageModel,
    load_pretrained,
)

ATOL = 1e-5
BERT_CONFIGS = {
    "odd": dict(vocab_size=61, hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=80,
                max_position_embeddings=20, type_vocab_size=2),
    "tanh-gelu": dict(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=56,
                      max_position_embeddings=16, type_vocab_size=3, hidden_act="gelu_new", layer_norm_eps=1e-6),
    "relu": dict(vocab_size=33, hidden_size=20, num_hidden_layers=1, num_attention_heads=5, intermediate_size=24,
                 max_position_embeddings=12, type_vocab_size=2, hidden_act="relu", pad_token_id=None),
}
BERT_CASES = [("odd", name) for name in ("BertModel", "BertForMaskedLM", "BertForSequenceClassification",
                                          "BertForTokenClassification", "BertForNextSentencePrediction")]
BERT_CASES += [("tanh-gelu", "BertModel"), ("tanh-gelu", "BertForMaskedLM"), ("relu", "BertForSequenceClassification")]
BERT_CLASSES = {  # Hugging Face class name -> (seqjax class, extra config fields)
    "BertModel": (BertModel, {}),
    "BertForMaskedLM": (BertForMaskedLM, {}),
    "BertForSequenceClassification": (BertForSequenceClassification, {"num_labels": 3}),
    "BertForTokenClassification": (BertForTokenClassification, {"num_labels": 5}),
    "BertForNextSentencePrediction": (BertForNextSentencePrediction, {}),
}
GPT2_CONFIGS = {
    "odd": dict(vocab_size=53, n_positions=20, n_embd=48, n_layer=3, n_head=3, n_inner=80),
    "untied-relu": dict(vocab_size=37, n_positions=16, n_embd=24, n_layer=2, n_head=2, activation_function="relu",
                        tie_word_embeddings=False, layer_norm_epsilon=1e-6),
    "exact-gelu-upcast": dict(vocab_size=29, n_positions=12, n_embd=16, n_layer=2, n_head=4, activation_function="gelu",
                              reorder_and_upcast_attn=True),
}
B, T = 3, 9
LENGTHS = np.array([9, 5, 1])


def widen(model, seed):
    """Redraw the weights wider than the init, biases and LayerNorm parameters nonzero."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or ".ln_" in name or name.startswith(("ln_", "transformer.ln_")):
                p.copy_((1 + 0.1 * torch.randn_like(p)) if name.endswith("weight") else 0.1 * torch.randn_like(p))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
    return model.eval()


def save_bin(model, path):
    """An old-style checkpoint: config.json plus pytorch_model.bin (a pickle of the state dict)."""
    path.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(path)
    torch.save(model.state_dict(), path / "pytorch_model.bin")
    return path


@pytest.fixture(scope="module")
def bert_dirs(tmp_path_factory):
    """{(config name, class name): (HF model, checkpoint dir)}: one model per config and class."""
    out = {}
    for seed, (c_name, cls_name) in enumerate(BERT_CASES + [("relu", "BertModel")]):
        if True:
            fields, extra = BERT_CONFIGS[c_name], BERT_CLASSES[cls_name][1]
            config = transformers.BertConfig(**fields, **extra)
            model = widen(getattr(transformers, cls_name)(config), seed)
            path = tmp_path_factory.mktemp(f"{c_name}-{cls_name}")
            model.save_pretrained(path)
            out[c_name, cls_name] = model, path
    return out


@pytest.fixture(scope="module")
def gpt2_dirs(tmp_path_factory):
    out = {}
    for seed, (c_name, fields) in enumerate(GPT2_CONFIGS.items()):
        config = transformers.GPT2Config(**fields, bos_token_id=None, eos_token_id=None)
        model = widen(transformers.GPT2LMHeadModel(config), seed)
        path = tmp_path_factory.mktemp(f"gpt2-{c_name}")
        model.save_pretrained(path)
        out[c_name] = model, path
    return out


def bert_inputs(fields, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, fields["vocab_size"], (B, T))
    types = rng.integers(0, fields["type_vocab_size"], (B, T))
    mask = np.arange(T)[None] < LENGTHS[:, None]
    return ids, types, mask


def hf_bert_outputs(model, ids, types, mask):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(types),
                    attention_mask=torch.tensor(mask.astype(np.int64)))
    if isinstance(model, transformers.BertModel):
        return out.last_hidden_state.numpy(), out.pooler_output.numpy()
    return (out.logits.numpy(),)


def ours_bert_outputs(model, ids, types, mask):
    out = model(jnp.asarray(ids), token_type_ids=jnp.asarray(types), token_mask=jnp.asarray(mask))
    return tuple(np.asarray(o) for o in (out if isinstance(out, tuple) else (out,)))


def assert_close(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)
        assert np.abs(b).max() > 0.1 and np.std(b) > 0.05  # outputs that vary, not a collapsed model


# --- loading ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("c_name, cls_name", BERT_CASES)
def test_bert_from_pretrained_equals_transformers(bert_dirs, c_name, cls_name):
    hf, path = bert_dirs[c_name, cls_name]
    cls = BERT_CLASSES[cls_name][0]
    scan = c_name == "odd" and cls_name == "BertForMaskedLM"  # the stacked layout once
    ours = cls.from_pretrained(path, scan_layers=scan)
    assert type(ours) is cls and ours.config.scan_layers == scan
    assert ours.config.hidden_act == {"gelu_new": "gelu_tanh"}.get(hf.config.hidden_act, hf.config.hidden_act)
    inputs = bert_inputs(BERT_CONFIGS[c_name])
    assert_close(ours_bert_outputs(ours, *inputs), hf_bert_outputs(hf, *inputs))
    if cls_name in ("BertForSequenceClassification", "BertForTokenClassification"):
        assert ours.num_labels == hf.config.num_labels


def test_pytorch_model_bin_and_load_pretrained(bert_dirs, gpt2_dirs, tmp_path):
    hf, _ = bert_dirs["odd", "BertForSequenceClassification"]
    path = save_bin(hf, tmp_path / "bert-bin")
    assert not (path / "model.safetensors").exists()
    ours = load_pretrained(path)  # the class from config.json's architectures
    assert type(ours) is BertForSequenceClassification
    inputs = bert_inputs(BERT_CONFIGS["odd"], seed=1)
    assert_close(ours_bert_outputs(ours, *inputs), hf_bert_outputs(hf, *inputs))
    hf_gpt, _ = gpt2_dirs["odd"]
    gpt = load_pretrained(save_bin(hf_gpt, tmp_path / "gpt-bin"))
    assert type(gpt) is GPTLanguageModel
    ids = np.random.default_rng(3).integers(0, 53, (B, T))
    with torch.no_grad():
        expected = hf_gpt(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(np.asarray(gpt(jnp.asarray(ids))), expected, atol=ATOL, rtol=0)


def test_bin_without_torch_names_the_extra(bert_dirs, tmp_path, monkeypatch):
    hf, _ = bert_dirs["relu", "BertModel"]
    path = save_bin(hf, tmp_path / "bin")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(MissingOptionalDependency, match=r"pytorch_model.bin .*needs torch: pip install 'seqjax\[torch\]'"):
        BertModel.from_pretrained(path)


def test_sharded_safetensors(bert_dirs, tmp_path):
    hf, _ = bert_dirs["odd", "BertModel"]
    hf.save_pretrained(tmp_path, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").exists() and not (tmp_path / "model.safetensors").exists()
    state = read_hf_state_dict(tmp_path)
    expected = {k: v.numpy() for k, v in hf.state_dict().items()}
    assert set(state) == set(expected) and all(np.array_equal(state[k], expected[k]) for k in state)
    inputs = bert_inputs(BERT_CONFIGS["odd"], seed=2)
    assert_close(ours_bert_outputs(BertModel.from_pretrained(tmp_path), *inputs), hf_bert_outputs(hf, *inputs))


@pytest.mark.parametrize("c_name", list(GPT2_CONFIGS))
def test_gpt2_from_pretrained_equals_transformers_with_padding(gpt2_dirs, c_name):
    hf, path = gpt2_dirs[c_name]
    ours = GPTLanguageModel.from_pretrained(path, scan_layers=c_name == "odd")
    fields = GPT2_CONFIGS[c_name]
    ids = np.random.default_rng(4).integers(0, fields["vocab_size"], (B, T))
    mask = np.arange(T)[None] < LENGTHS[:, None]
    with torch.no_grad():
        expected = hf(torch.tensor(ids), attention_mask=torch.tensor(mask.astype(np.int64))).logits.numpy()
        unpadded = hf(torch.tensor(ids)).logits.numpy()
    got = np.asarray(ours(jnp.asarray(ids), seq_lengths=jnp.asarray(LENGTHS)))
    # right padding: a valid (causal) query never reads a padded key, so the valid positions agree
    np.testing.assert_allclose(got[mask], expected[mask], atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.asarray(ours(jnp.asarray(ids))), unpadded, atol=ATOL, rtol=0)
    assert np.abs(expected).max() > 1


def test_missing_head_keeps_its_init_with_a_warning(bert_dirs):
    _, path = bert_dirs["odd", "BertModel"]  # no classifier in a BertModel checkpoint
    fresh = BertForSequenceClassification(BertConfig.from_hf(BERT_CONFIGS["odd"]), 2, rngs=nnx.Rngs(5))
    with pytest.warns(UserWarning, match=r"no weights for \['classifier'\]"):
        ours = BertForSequenceClassification.from_pretrained(path, rngs=nnx.Rngs(5))
    np.testing.assert_array_equal(np.asarray(ours.classifier["w"][...]), np.asarray(fresh.classifier["w"][...]))
    state = read_hf_state_dict(path)
    np.testing.assert_array_equal(np.asarray(ours.bert.pooler["w"][...]), state["pooler.dense.weight"].T)
    # a BertForMaskedLM checkpoint has no pooler: BertModel keeps its initial pooler, with a warning
    _, mlm_path = bert_dirs["odd", "BertForMaskedLM"]
    with pytest.warns(UserWarning, match=r"no weights for \['pooler'\]"):
        BertModel.from_pretrained(mlm_path)
    # and a head the class lacks is skipped: the MLM head, loading a BertForMaskedLM checkpoint as the encoder
    hf_mlm, _ = bert_dirs["odd", "BertForMaskedLM"]
    encoder = from_hf_bert(read_hf_state_dict(mlm_path), hf_mlm.config, "BertModel")
    assert sorted(encoder) == ["embeddings", "encoder"]


# --- writing back ----------------------------------------------------------------------------------------


def perturbed(model, seed):
    """``model`` with every parameter moved off its init (zero biases, unit scales), in place."""
    rng = np.random.default_rng(seed)
    load_pure_params(model, jax.tree.map(lambda a: np.asarray(a) + 0.2 * rng.standard_normal(a.shape, np.float32),
                                         model.pure_params()))
    return model


@pytest.mark.parametrize("cls_name", list(BERT_CLASSES))
def test_bert_save_pretrained_loads_in_transformers(tmp_path, cls_name):
    cls, extra = BERT_CLASSES[cls_name]
    config = BertConfig.from_hf(BERT_CONFIGS["odd"], scan_layers=cls_name == "BertModel")
    args = (extra["num_labels"],) if "num_labels" in extra else ()
    ours = perturbed(cls(config, *args, rngs=nnx.Rngs(1)), 2)
    ours.save_pretrained(tmp_path)
    hf, info = getattr(transformers, cls_name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [cls_name]
    inputs = bert_inputs(BERT_CONFIGS["odd"], seed=3)
    assert_close(ours_bert_outputs(ours, *inputs), hf_bert_outputs(hf.eval(), *inputs))
    # and back into seqjax, bit for bit
    again = cls.from_pretrained(tmp_path, scan_layers=config.scan_layers)
    for a, b in zip(jax.tree.leaves(again.pure_params()), jax.tree.leaves(ours.pure_params())):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("tied", [True, False])
def test_gpt2_save_pretrained_loads_in_transformers(tmp_path, tied):
    config = GPT2Config(vocab_size=31, n_positions=12, n_embd=24, n_layer=2, n_head=3, n_inner=40,
                        tie_word_embeddings=tied, scan_layers=tied)
    ours = perturbed(GPTLanguageModel(config, rngs=nnx.Rngs(0)), 3)
    ours.save_pretrained(tmp_path)
    hf, info = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert ("lm_head.weight" in ours.hf_state_dict()) == (not tied)
    ids = np.random.default_rng(5).integers(0, 31, (2, 10))
    with torch.no_grad():
        expected = hf.eval()(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(np.asarray(ours(jnp.asarray(ids))), expected, atol=ATOL, rtol=0)


# --- refusals ------------------------------------------------------------------------------------------------


BERT_REFUSALS = [
    ({"model_type": "roberta"}, "model_type must be 'bert'"),
    ({"hidden_act": "silu"}, "hidden_act must be one of"),
    ({"hidden_act": "quick_gelu"}, "hidden_act must be one of"),
    ({"is_decoder": True}, "is_decoder=True is not supported"),
    ({"add_cross_attention": True}, "add_cross_attention=True is not supported"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type='relative_key' is not supported"),
    ({"position_embedding_type": "relative_key_query"}, "position_embedding_type='relative_key_query'"),
    ({"pad_token_id": 61}, "pad_token_id must be None or an id in"),
    ({"num_attention_heads": 5}, "must divide"),
    ({"type_vocab_size": 0}, "type_vocab_size must be a positive integer"),
]


@pytest.mark.parametrize("bad, match", BERT_REFUSALS)
def test_bert_refuses_what_it_does_not_compute(bert_dirs, tmp_path, bad, match):
    config = {**BERT_CONFIGS["odd"], **bad}
    with pytest.raises(ValueError, match=match):
        check_hf_bert_config(config)
    with pytest.raises(ValueError, match=match):
        BertConfig.from_hf(config)
    # from a checkpoint directory whose config.json says so
    _, path = bert_dirs["odd", "BertModel"]
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "model.safetensors").symlink_to(path / "model.safetensors")
    on_disk = {**json.loads((path / "config.json").read_text()), **bad}
    (target / "config.json").write_text(json.dumps(on_disk))
    with pytest.raises(ValueError, match=match):
        BertModel.from_pretrained(target)


def test_bert_refuses_bad_checkpoints(bert_dirs, tmp_path):
    hf, path = bert_dirs["odd", "BertForMaskedLM"]
    state = read_hf_state_dict(path)
    fields = hf.config.to_dict()
    with pytest.raises(ValueError, match="tie_word_embeddings=False is not supported by seqjax's BertForMaskedLM"):
        from_hf_bert(state, {**fields, "tie_word_embeddings": False}, "BertForMaskedLM")
    with pytest.raises(ValueError, match="decoder.weight differs from the word embeddings"):
        from_hf_bert({**state, "cls.predictions.decoder.weight": state["bert.embeddings.word_embeddings.weight"] + 1},
                     fields, "BertForMaskedLM")
    with pytest.raises(ValueError, match="lacks"):
        from_hf_bert({k: v for k, v in state.items() if "layer.2." not in k}, fields, "BertForMaskedLM")
    with pytest.raises(ValueError, match="that this BERT .* does not have"):
        from_hf_bert({**state, "bert.encoder.layer.3.output.dense.bias": np.zeros(48)}, fields, "BertForMaskedLM")
    with pytest.raises(ValueError, match=r"must have shape \(48, 48\)"):
        from_hf_bert({**state, "bert.encoder.layer.0.attention.self.key.weight": np.zeros((48, 40))}, fields,
                     "BertForMaskedLM")
    with pytest.raises(ValueError, match="architecture must be one of"):
        from_hf_bert(state, fields, "BertLMHeadModel")
    with pytest.raises(ValueError, match="is not a directory"):
        BertModel.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="has no config.json"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(fields))
    with pytest.raises(ValueError, match="has no weights: expected model.safetensors or pytorch_model.bin"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**fields, "architectures": ["BertLMHeadModel"]}))
    with pytest.raises(ValueError, match="architectures must name one of"):
        load_pretrained(tmp_path)
    # the pure converters round-trip exactly, and to_hf_bert checks the params against the config
    params = from_hf_bert(state, fields, "BertForMaskedLM")
    back = to_hf_bert(params, fields, "BertForMaskedLM")
    assert set(back) == set(state) and all(np.array_equal(back[k], state[k]) for k in back)
    with pytest.raises(ValueError, match="do not fit the config"):
        to_hf_bert(params, {**fields, "intermediate_size": 64}, "BertForMaskedLM")


def test_gpt2_refuses_other_model_types():
    fields = GPT2_CONFIGS["odd"]
    for bad in ({"model_type": "gpt_neo"}, {"model_type": "gptj"}):
        with pytest.raises(ValueError, match="model_type must be 'gpt2'"):
            check_hf_gpt2_config({**fields, **bad})
    assert check_hf_gpt2_config({**fields, "reorder_and_upcast_attn": True})  # the same function (tested above)


# --- tokenizer ---------------------------------------------------------------------------------------------


def test_tokenizer_json_encodes_as_transformers(tmp_path):
    from tokenizers import BertWordPieceTokenizer

    corpus = ["the cat sat on the mat", "a dog chased the cat", "unbelievable things happen",
              "the mat was red and the dog was happy"] * 5
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(corpus, vocab_size=90, min_frequency=1)
    hf_tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=wordpiece._tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]")
    hf_tok.save_pretrained(tmp_path)
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    ours = load_hf_tokenizer(tmp_path)
    assert len(ours) == len(hf_tok) and ours.pad_id == hf_tok.pad_token_id
    texts = ["The Cat sat!", "unbelievable dogs chased a zebra", "mat"]
    pairs = ["a dog", "the mat was red", "happy happy"]
    for text, pair in zip(texts, pairs):
        assert ours.encode(text).tolist() == hf_tok(text)["input_ids"]
        assert ours.encode(text, add_special_tokens=False).tolist() == hf_tok(text, add_special_tokens=False)["input_ids"]
        assert ours.encode(text, pair).tolist() == hf_tok(text, pair)["input_ids"]
        assert ours.tokenizer.encode(text, pair).type_ids == hf_tok(text, pair, return_token_type_ids=True)["token_type_ids"]
        assert ours.decode(ours.encode(text)) == hf_tok.decode(hf_tok(text)["input_ids"], skip_special_tokens=True)
    batch = ours(texts, pairs)
    theirs = hf_tok(texts, pairs, padding=True, return_tensors="np", return_token_type_ids=True)
    np.testing.assert_array_equal(batch["input_ids"], theirs["input_ids"])
    np.testing.assert_array_equal(batch["token_type_ids"], theirs["token_type_ids"])
    np.testing.assert_array_equal(batch["token_mask"], theirs["attention_mask"].astype(bool))
    np.testing.assert_array_equal(batch["seq_lengths"], theirs["attention_mask"].sum(1))
    with pytest.raises(ValueError, match="no tokenizer.json"):
        load_hf_tokenizer(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="texts must be a non-empty sequence"):
        ours("one text")
