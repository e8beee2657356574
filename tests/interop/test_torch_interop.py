"""PyTorch parity for the recurrent cells through :mod:`seqjax.interop.torch`.

Reference: ``torch.nn.RNN`` (tanh, relu), ``torch.nn.LSTM`` and ``torch.nn.GRU`` with their own
default (random, nonzero-bias) initialisation, single and multi-layer, uni- and bidirectional,
``batch_first=True``, with and without packed padding. Weights go through ``from_torch`` and run
with ``seqjax.recurrence.stacked`` (or ``rnn`` for one layer); outputs and final states must agree
to float32 precision.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seqjax.cells import LSTMState, gru_cho, lstm  # noqa: E402
from seqjax.interop.torch import from_torch, to_torch  # noqa: E402
from seqjax.recurrence import rnn, stacked  # noqa: E402

ATOL = RTOL = 1e-5
# One shape for every test, so JAX compiles each scan once.
B, T, D, H = 3, 7, 5, 8
LENGTHS = [7, 4, 1]  # one full, one partial, one of length one (torch refuses length 0)

TORCH_KINDS = {
    "rnn_tanh": lambda **kw: torch.nn.RNN(nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: torch.nn.RNN(nonlinearity="relu", **kw),
    "lstm": lambda **kw: torch.nn.LSTM(**kw),
    "gru": lambda **kw: torch.nn.GRU(**kw),
}


def make_torch(kind: str, num_layers: int, bidirectional: bool, seed: int, **extra):
    torch.manual_seed(seed)
    module = TORCH_KINDS[kind](
        input_size=D, hidden_size=H, num_layers=num_layers, batch_first=True,
        bidirectional=bidirectional, **extra,
    )
    return module.eval()


def numpy_state(module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def inputs(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(B, T, D)).astype(np.float32)


def run_torch(module, xs: np.ndarray, lengths=None, h0=None):
    """Returns ``(outputs [b, t, dirs*h], h_n [layers*dirs, b, h], c_n or None)`` as numpy."""
    x = torch.from_numpy(xs)
    with torch.no_grad():
        if lengths is None:
            out, state = module(x, h0)
        else:
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                x, torch.tensor(lengths), batch_first=True, enforce_sorted=False
            )
            out, state = module(packed, h0)
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    if isinstance(state, tuple):
        h_n, c_n = state
        return out.numpy(), h_n.numpy(), c_n.numpy()
    return out.numpy(), state.numpy(), None


def carries_to_torch_layout(carries: list, is_lstm: bool):
    """seqjax's per-layer carries -> ``(h_n, c_n)`` stacked as torch's ``[layers*dirs, b, h]``."""
    hs, cs = [], []
    for carry in carries:
        directions = carry if isinstance(carry, tuple) and not isinstance(carry, LSTMState) else (carry,)
        for c in directions:
            if is_lstm:
                assert isinstance(c, LSTMState), type(c)
                hs.append(c.h)
                cs.append(c.c)
            else:
                hs.append(c)
    return np.stack(hs), (np.stack(cs) if is_lstm else None)


def assert_close(actual, expected, what: str):
    np.testing.assert_allclose(np.asarray(actual), expected, atol=ATOL, rtol=RTOL, err_msg=what)


CONFIGS = [
    # (kind, num_layers, bidirectional)
    ("rnn_tanh", 1, False),
    ("rnn_relu", 1, False),
    ("lstm", 1, False),
    ("gru", 1, False),
    ("rnn_tanh", 2, True),
    ("rnn_relu", 3, False),
    ("lstm", 2, False),
    ("lstm", 2, True),
    ("gru", 3, False),
    ("gru", 2, True),
]


def _ids(config):
    kind, layers, bidi = config
    return f"{kind}-L{layers}" + ("-bidi" if bidi else "")


@pytest.mark.parametrize("config", CONFIGS, ids=[_ids(c) for c in CONFIGS])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "packed"])
def test_parity_with_torch(config, padded):
    kind, num_layers, bidirectional = config
    seed = 17 * num_layers + (3 if bidirectional else 0) + len(kind)
    module = make_torch(kind, num_layers, bidirectional, seed)
    xs = inputs(seed)
    lengths = LENGTHS if padded else None
    out_t, h_t, c_t = run_torch(module, xs, lengths)

    cell, layers = from_torch(numpy_state(module), kind)
    assert len(layers) == num_layers
    seq_lengths = None if lengths is None else jnp.asarray(lengths)
    carries, ys = stacked(cell, layers, jnp.asarray(xs), seq_lengths=seq_lengths, return_carry=True)

    dirs = 2 if bidirectional else 1
    assert ys.shape == (B, T, dirs * H)
    assert_close(ys, out_t, "outputs")
    if padded:
        # torch's pad_packed_sequence zero-fills; seqjax's padded outputs are zero too.
        for i, length in enumerate(lengths):
            assert np.all(np.asarray(ys[i, length:]) == 0.0)
    h_j, c_j = carries_to_torch_layout(carries, kind == "lstm")
    assert_close(h_j, h_t, "h_n")
    if kind == "lstm":
        assert_close(c_j, c_t, "c_n")


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_single_layer_with_rnn_and_initial_state(kind):
    """One layer through ``rnn`` directly, from a nonzero initial state (torch's ``h0``/``c0``)."""
    module = make_torch(kind, 1, False, seed=5)
    xs = inputs(5)
    rng = np.random.default_rng(6)
    h0 = rng.normal(size=(1, B, H)).astype(np.float32) * 0.5
    c0 = rng.normal(size=(1, B, H)).astype(np.float32) * 0.5
    if kind == "lstm":
        torch_h0 = (torch.from_numpy(h0), torch.from_numpy(c0))
        carry0 = LSTMState(jnp.asarray(h0[0]), jnp.asarray(c0[0]))
    else:
        torch_h0 = torch.from_numpy(h0)
        carry0 = jnp.asarray(h0[0])
    out_t, h_t, c_t = run_torch(module, xs, LENGTHS, torch_h0)

    cell, layers = from_torch(numpy_state(module), kind)
    carry, ys = rnn(
        cell, layers[0], jnp.asarray(xs), seq_lengths=jnp.asarray(LENGTHS),
        initial_carry=carry0, return_carry=True,
    )
    assert_close(ys, out_t, "outputs")
    if kind == "lstm":
        assert_close(carry.h, h_t[0], "h_n")
        assert_close(carry.c, c_t[0], "c_n")
    else:
        assert_close(carry, h_t[0], "h_n")


@pytest.mark.parametrize("kind", ["rnn_relu", "lstm", "gru"])
def test_parity_bias_free_module(kind):
    """``bias=False`` modules have no bias keys; ``from_torch`` gives zero biases."""
    module = make_torch(kind, 2, False, seed=9, bias=False)
    state = numpy_state(module)
    assert not any(k.startswith("bias") for k in state)
    xs = inputs(9)
    out_t, h_t, _ = run_torch(module, xs)
    cell, layers = from_torch(state, kind)
    for layer in layers:
        assert not np.any(np.asarray(layer["b"]))
    carries, ys = stacked(cell, layers, jnp.asarray(xs), return_carry=True)
    assert_close(ys, out_t, "outputs")
    assert_close(carries_to_torch_layout(carries, kind == "lstm")[0], h_t, "h_n")


def test_from_torch_layout_and_bias_folding():
    """The documented layout: ``w_i = W_ih^T``, ``w_h = W_hh^T``; biases summed except GRU's b_hn."""
    gru_module = make_torch("gru", 1, False, seed=2)
    sd = numpy_state(gru_module)
    _, (p,) = from_torch(sd, "gru")
    np.testing.assert_array_equal(np.asarray(p["w_i"]), sd["weight_ih_l0"].T)
    np.testing.assert_array_equal(np.asarray(p["w_h"]), sd["weight_hh_l0"].T)
    b_ih, b_hh = sd["bias_ih_l0"], sd["bias_hh_l0"]
    np.testing.assert_allclose(np.asarray(p["b"][: 2 * H]), b_ih[: 2 * H] + b_hh[: 2 * H], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(p["b"][2 * H :]), b_ih[2 * H :])
    np.testing.assert_array_equal(np.asarray(p["b_hn"]), b_hh[2 * H :])

    lstm_module = make_torch("lstm", 1, True, seed=2)
    sd = numpy_state(lstm_module)
    _, (layer,) = from_torch(sd, "lstm")
    assert set(layer) == {"forward", "backward"}
    np.testing.assert_allclose(
        np.asarray(layer["backward"]["b"]), sd["bias_ih_l0_reverse"] + sd["bias_hh_l0_reverse"], rtol=1e-6
    )
    assert set(layer["forward"]) == {"w_i", "w_h", "b"}


@pytest.mark.parametrize(
    "config",
    [("rnn_tanh", 1, False), ("rnn_relu", 2, True), ("lstm", 2, True), ("gru", 2, True), ("gru", 1, False)],
    ids=_ids,
)
def test_round_trip_through_torch(config):
    """``to_torch(from_torch(sd))`` loaded into a fresh module computes the same function."""
    kind, num_layers, bidirectional = config
    original = make_torch(kind, num_layers, bidirectional, seed=21)
    sd = numpy_state(original)
    _, layers = from_torch(sd, kind)
    back = to_torch(layers, kind)
    assert set(back) == set(sd)
    for name in sd:
        assert back[name].shape == sd[name].shape, name
        assert back[name].dtype == np.float32, name

    fresh = make_torch(kind, num_layers, bidirectional, seed=22)  # different weights to overwrite
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in back.items()})
    xs = inputs(21)
    for lengths in (None, LENGTHS):
        out_a, h_a, c_a = run_torch(original, xs, lengths)
        out_b, h_b, c_b = run_torch(fresh, xs, lengths)
        assert_close(out_b, out_a, "outputs")
        assert_close(h_b, h_a, "h_n")
        if kind == "lstm":
            assert_close(c_b, c_a, "c_n")
    # Converting again gives the same seqjax parameters.
    _, layers_again = from_torch(back, kind)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), layers, layers_again)


# --- error cases ---------------------------------------------------------------------------


def test_unknown_key_raises():
    sd = numpy_state(make_torch("lstm", 1, False, seed=0))
    sd["weight_xx_l0"] = np.zeros((4 * H, D), np.float32)
    with pytest.raises(ValueError, match="weight_xx_l0"):
        from_torch(sd, "lstm")


def test_unknown_kind_raises():
    sd = numpy_state(make_torch("lstm", 1, False, seed=0))
    with pytest.raises(ValueError, match="kind"):
        from_torch(sd, "transformer")
    with pytest.raises(ValueError, match="kind"):
        to_torch(from_torch(sd, "lstm")[1], "mamba")


@pytest.mark.parametrize(
    "actual,claimed", [("gru", "lstm"), ("lstm", "gru"), ("rnn_tanh", "lstm"), ("lstm", "rnn")]
)
def test_mismatched_kind_raises(actual, claimed):
    """A state dict of one module read as another has the wrong number of gate rows."""
    sd = numpy_state(make_torch(actual, 1, False, seed=0))
    with pytest.raises(ValueError, match="rows"):
        from_torch(sd, claimed)


def test_lstm_projection_raises():
    torch.manual_seed(0)
    module = torch.nn.LSTM(D, H, proj_size=3, batch_first=True)
    with pytest.raises(ValueError, match="proj"):
        from_torch(numpy_state(module), "lstm")


def test_empty_state_dict_raises():
    with pytest.raises(ValueError, match="empty"):
        from_torch({}, "gru")


def test_missing_direction_raises():
    sd = numpy_state(make_torch("gru", 2, True, seed=0))
    for name in [k for k in sd if k.endswith("l1_reverse")]:
        del sd[name]
    with pytest.raises(ValueError, match="layer 1"):
        from_torch(sd, "gru")


def test_missing_weight_raises_value_error():
    """A state dict without ``weight_hh_l0`` is bad input: it should be a ValueError naming the
    missing key (DESIGN: clear errors at the boundary), not a bare KeyError."""
    sd = numpy_state(make_torch("lstm", 1, False, seed=0))
    del sd["weight_hh_l0"]
    with pytest.raises(ValueError, match="weight_hh"):
        from_torch(sd, "lstm")


@pytest.mark.parametrize("variant", [{"peephole": True}, {"layer_norm": True}])
def test_to_torch_rejects_lstm_variants(variant):
    params = lstm(**variant).init(jax.random.key(0), D, H)
    with pytest.raises(ValueError, match="peephole|ln_"):
        to_torch([params], "lstm")
    with pytest.raises(ValueError, match="layer 1"):
        to_torch([lstm().init(jax.random.key(1), D, H), params], "lstm")


def test_to_torch_rejects_reset_before_gru():
    """``gru_cho`` (reset before the product, no ``b_hn``) has no ``torch.nn.GRU`` equivalent;
    exporting it should be a ValueError, not a bare KeyError('b_hn')."""
    params = gru_cho().init(jax.random.key(0), D, H)
    with pytest.raises(ValueError, match="b_hn|gru_cho|reset"):
        to_torch([params], "gru")


def test_to_torch_rejects_params_of_another_kind():
    """GRU parameters exported as an Elman RNN would silently drop ``b_hn`` and write [d, 3h]
    weights under RNN names; the converter should refuse (as ``from_torch`` does)."""
    _, layers = from_torch(numpy_state(make_torch("gru", 1, False, seed=0)), "gru")
    with pytest.raises(ValueError):
        to_torch(layers, "rnn_tanh")
