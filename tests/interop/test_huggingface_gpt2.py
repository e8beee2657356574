"""Hugging Face GPT-2 -> seqjax (the pure name map seqjax.interop.huggingface.from_hf_gpt2, the
NNX side GPT2Config.from_hf / GPTLanguageModel.from_hf / seqjax.nn.load_pure_params), checked
against ``transformers`` itself: the converted GPTLanguageModel gives GPT2LMHeadModel's logits to 1e-5 (looped and scanned
layers, tied and untied heads), and seqjax's beam search, run through the model's KV cache, gives
``generate(num_beams=k)``'s sequences and ``sequences_scores`` for k in {1, 2, 4}, with and without
EOS, for length penalties 0, 0.6, 1 and 2 and the three early-stopping settings; greedy decoding
equals HF's greedy search (``num_beams=1``, which is what HF runs for one beam).

Every model is built locally from a tiny config with random weights: nothing is downloaded
(``HF_HUB_OFFLINE=1``). GPT-2's own init (std 0.02) gives nearly uniform next-token
distributions, where candidate beams differ by less than the float32 noise between two
frameworks; the weights are redrawn wider (and the biases and LayerNorm parameters made nonzero,
so that every entry of the name map matters) to make the rankings decisive.
"""

from __future__ import annotations

import os

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

from seqjax.decoding import beam_search, greedy  # noqa: E402
from seqjax.interop.huggingface import check_hf_gpt2_config, from_hf_gpt2  # noqa: E402
from seqjax.nn import GPT2Config, GPTLanguageModel, load_pure_params  # noqa: E402

V, P, N, B = 48, 4, 8, 2  # vocabulary, prompt length, new tokens, batch
PAD = 1  # not 0: HF fills finished hypotheses with `pad_token_id or eos_token_id`
LENGTH_PENALTIES = (0.0, 0.6, 1.0, 2.0)
EARLY_STOPPING = (True, False, "never")


def tiny_hf_gpt2(seed=0, **overrides):
    config = transformers.GPT2Config(vocab_size=V, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                     bos_token_id=None, eos_token_id=None, **overrides)
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.rsplit(".", 2)[-2] in ("ln_1", "ln_2", "ln_f") and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    return model


def numpy_state(model):
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # PyTorch's spinning threads would take the cores JAX compiles on
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def hf():
    return tiny_hf_gpt2()


@pytest.fixture(scope="module")
def ours(hf):
    return GPTLanguageModel.from_hf(numpy_state(hf), hf.config)


@pytest.fixture(scope="module")
def prompt():
    return np.random.default_rng(1).integers(0, V, (B, P))


@pytest.fixture(scope="module")
def eos_id(ours, prompt):
    """A token the model emits often: the most frequent of the first prompt's greedy continuation,
    so that hypotheses do end with it."""
    tokens = np.asarray(greedy(ours.step_fn(), *prefill(ours, prompt), N).sequences[0])
    values, counts = np.unique(tokens, return_counts=True)
    return int(values[np.argmax(counts)])


def prefill(model, prompt):
    """The cache after the prompt but its last token, and that token (fed first). Capacity
    ``P - 1 + N``: the decoders feed N tokens, the first at index P - 1, and need no more."""
    cache, _ = model.prefill(model.init_cache(B, P - 1 + N), jnp.asarray(prompt[:, :-1]))
    return cache, jnp.asarray(prompt[:, -1])


def hf_generate(hf, prompt, **options):
    with torch.no_grad():
        out = hf.generate(torch.tensor(prompt), attention_mask=torch.ones(prompt.shape, dtype=torch.long),
                          do_sample=False, max_new_tokens=N, pad_token_id=PAD, output_scores=True,
                          return_dict_in_generate=True, **options)
    return out


def assert_same_tokens(ours, theirs):
    """``ours`` ``[..., N]`` equals HF's generated tokens ``[..., G]`` (G <= N: HF stops when
    every hypothesis has ended), padded with PAD after them."""
    ours, g = np.asarray(ours), theirs.shape[-1]
    np.testing.assert_array_equal(ours[..., :g], theirs)
    assert (ours[..., g:] == PAD).all()


# --- the converter -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scan_layers", [False, True])
def test_converted_model_gives_hf_logits(hf, scan_layers):
    ids = np.random.default_rng(0).integers(0, V, (B, 12))
    with torch.no_grad():
        expected = hf(torch.tensor(ids)).logits.numpy()
    model = GPTLanguageModel.from_hf(numpy_state(hf), hf.config, scan_layers=scan_layers)
    assert isinstance(model.blocks.stack["layers"], dict) == scan_layers  # stacked for scan, a list otherwise
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(ids))), expected, atol=1e-5, rtol=0)
    assert np.abs(expected).max() > 3  # decisive logits, not a near-uniform model


def test_untied_head_and_the_plain_pytree(hf):
    untied = tiny_hf_gpt2(seed=1, tie_word_embeddings=False)
    state = numpy_state(untied)
    assert not np.array_equal(state["lm_head.weight"], state["transformer.wte.weight"])
    config = GPT2Config.from_hf(untied.config.to_dict())  # a dict works as well as the object
    assert not config.tie_word_embeddings and config.activation == "gelu_tanh"
    params = from_hf_gpt2(state, config)
    assert params["lm_head"].shape == (32, V)
    np.testing.assert_array_equal(np.asarray(params["blocks"]["layers"][1]["self_attn"]["w_k"]),
                                  state["transformer.h.1.attn.c_attn.weight"][:, 32:64])
    # the pure converter reads the sizes from any config: the HF object and its dict give the same pytree
    for other in (untied.config, untied.config.to_dict()):
        same = from_hf_gpt2(state, other)
        assert jax.tree.structure(same) == jax.tree.structure(params)
        assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(params)))
    model = GPTLanguageModel(config, rngs=nnx.Rngs(0))
    load_pure_params(model, params)
    ids = np.random.default_rng(2).integers(0, V, (B, 7))
    with torch.no_grad():
        expected = untied(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(ids))), expected, atol=1e-5, rtol=0)


def test_pure_converter_stacks_layers_when_the_config_says_scan(hf):
    state = numpy_state(hf)
    looped = from_hf_gpt2(state, hf.config.to_dict())  # no scan_layers field: a list of layers
    scanned = from_hf_gpt2(state, {**hf.config.to_dict(), "scan_layers": True})
    assert isinstance(looped["blocks"]["layers"], list)
    np.testing.assert_array_equal(np.asarray(scanned["blocks"]["layers"]["ffn"]["w_2"][1]),
                                  np.asarray(looped["blocks"]["layers"][1]["ffn"]["w_2"]))
    assert jax.tree.structure(from_hf_gpt2(state, GPT2Config.from_hf(hf.config, scan_layers=True))) == \
        jax.tree.structure(scanned)


def test_converter_refuses_what_does_not_fit(hf):
    state = numpy_state(hf)
    config = GPT2Config.from_hf(hf.config)
    with pytest.raises(ValueError, match="lacks"):
        from_hf_gpt2({k: v for k, v in state.items() if "h.1.mlp" not in k}, config)
    with pytest.raises(ValueError, match=r"c_attn.weight'\] must have shape \(32, 96\)"):
        from_hf_gpt2({**state, "transformer.h.0.attn.c_attn.weight": np.zeros((32, 64))}, config)
    with pytest.raises(ValueError, match="differs from wte.weight"):
        from_hf_gpt2({**state, "lm_head.weight": state["lm_head.weight"] + 1}, config)
    with pytest.raises(ValueError, match="without \\['n_layer'\\]"):
        from_hf_gpt2(state, {k: v for k, v in hf.config.to_dict().items() if k != "n_layer"})
    with pytest.raises(ValueError, match="config.n_embd must be a positive integer"):
        from_hf_gpt2(state, {**hf.config.to_dict(), "n_embd": 0})
    with pytest.raises(ValueError, match="state_dict must be a mapping"):
        from_hf_gpt2(list(state.items()), config)
    for bad, match in (({"activation_function": "silu"}, "activation_function must be one of"),
                       ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
                       ({"scale_attn_weights": False}, "scale_attn_weights"),
                       ({"add_cross_attention": True}, "add_cross_attention")):
        with pytest.raises(ValueError, match=match):
            check_hf_gpt2_config({**hf.config.to_dict(), **bad})
        with pytest.raises(ValueError, match=match):  # the nn side refuses through the same check
            GPT2Config.from_hf({**hf.config.to_dict(), **bad})
        with pytest.raises(ValueError, match=match):
            GPTLanguageModel.from_hf(state, {**hf.config.to_dict(), **bad})
    other = GPTLanguageModel(GPT2Config.from_hf({**hf.config.to_dict(), "n_embd": 16}), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="has shape"):
        load_pure_params(other, from_hf_gpt2(state, config))


# --- decoding parity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 4])
def test_beam_search_equals_hf_generate(hf, ours, prompt, eos_id, k):
    cache, first = prefill(ours, prompt)
    step_fn = ours.step_fn()
    found, ended_early = {}, False
    for eos in (None, eos_id):
        for early_stopping in EARLY_STOPPING if eos is not None else (False,):
            for alpha in LENGTH_PENALTIES:
                options = dict(length_penalty=alpha, early_stopping=early_stopping)
                theirs = hf_generate(hf, prompt, num_beams=k, num_return_sequences=k, eos_token_id=eos, **options)
                out = beam_search(step_fn, cache, first, N, k, eos_id=eos, pad_id=PAD, **options)
                where = f"eos={eos} early_stopping={early_stopping} length_penalty={alpha}"
                assert_same_tokens(out.sequences, theirs.sequences[:, P:].numpy().reshape(B, k, -1))
                np.testing.assert_allclose(np.asarray(out.scores), theirs.sequences_scores.numpy().reshape(B, k),
                                           atol=1e-4, rtol=0, err_msg=where)
                # the score is log p / |Y| ** alpha, |Y| the generated tokens with EOS, no prompt
                np.testing.assert_allclose(np.asarray(out.scores),
                                           np.asarray(out.log_probs) / np.asarray(out.lengths) ** alpha, rtol=1e-5)
                lengths = np.asarray(out.lengths)
                if eos is None:
                    assert (lengths == N).all()
                else:
                    ended_early |= bool((lengths < N).any())
                    found[early_stopping, alpha] = np.asarray(out.sequences)
    assert ended_early  # hypotheses did end with EOS (and moved out of the beam)
    if k == 2:  # on these prompts the three settings choose differently somewhere
        assert any(not np.array_equal(found[True, a], found[False, a]) for a in LENGTH_PENALTIES)
        assert any(not np.array_equal(found[False, a], found["never", a]) for a in LENGTH_PENALTIES)


def test_greedy_and_one_beam_equal_hf_greedy_search(hf, ours, prompt, eos_id):
    cache, first = prefill(ours, prompt)
    step_fn = ours.step_fn()
    for eos in (None, eos_id):
        theirs = hf_generate(hf, prompt, num_beams=1, eos_token_id=eos)
        tokens = theirs.sequences[:, P:].numpy()
        log_p = np.stack([torch.log_softmax(s, -1).numpy() for s in theirs.scores], 1)  # [B, G, V]
        token_lp = np.take_along_axis(log_p, tokens[..., None], -1)[..., 0]
        lengths = np.array([list(row).index(eos) + 1 if eos in row else N for row in tokens])
        hf_log_p = np.array([token_lp[i, :n].sum() for i, n in enumerate(lengths)])
        if eos is not None:
            assert (lengths < N).any()
        g = greedy(step_fn, cache, first, N, eos_id=eos, pad_id=PAD)
        assert_same_tokens(g.sequences, tokens)
        np.testing.assert_allclose(np.asarray(g.scores), hf_log_p, atol=1e-4, rtol=0)
        for early_stopping, alpha in ((False, 1.0), (True, 0.6), (False, 0.0)):
            beam = beam_search(step_fn, cache, first, N, 1, length_penalty=alpha, early_stopping=early_stopping,
                               eos_id=eos, pad_id=PAD)
            assert_same_tokens(beam.sequences[:, 0], tokens)
            np.testing.assert_allclose(np.asarray(beam.scores[:, 0]), hf_log_p / lengths ** alpha, atol=1e-4, rtol=0)
