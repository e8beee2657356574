"""Every cell against a plain float64 numpy implementation of its documented equations.

The references below are written from the module docstrings (row-vector convention ``x @ W``),
not from the seqjax code: whole sequences, a nonzero initial state, random values in every
parameter (including biases, peepholes and layer-norm gains that ``init`` sets to constants).
Also: the recurrent-dropout mask contract of :mod:`seqjax.cells.base`, seed 001's
forget/learn/remember/use formulation and :func:`seqjax.cells.flip_update_gate`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.cells import (
    LSTMState,
    elman,
    flip_update_gate,
    gru,
    gru_cho,
    lstm,
    min_gru,
    min_lstm,
)
from seqjax.cells.base import RECURRENT_DROPOUT_MASK
from seqjax.cells.lstm import gate_formulation_params, gate_formulation_step, lstm_step
from seqjax.recurrence import rnn

ATOL = RTOL = 1e-5
B, T, D, H = 3, 9, 5, 8


# --- numpy references (float64, batched over a leading axis) ---------------------------------


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def ln(v, gain, bias, eps=1e-5):
    mean = v.mean(-1, keepdims=True)
    var = ((v - mean) ** 2).mean(-1, keepdims=True)
    return gain * (v - mean) / np.sqrt(var + eps) + bias


def split(v, n):
    return np.split(v, n, axis=-1)


def ref_elman(p, h, x, activation, mask=1.0):
    pre = x @ p["w_i"] + (h * mask) @ p["w_h"] + p["b"]
    h = np.tanh(pre) if activation == "tanh" else np.maximum(pre, 0.0)
    return h, h


def ref_lstm(p, carry, x, mask=1.0):
    h, c = carry
    xw, hw = x @ p["w_i"], (h * mask) @ p["w_h"]
    if "ln_x_scale" in p:  # Ba et al.: the two products normalised separately, gain only
        xw = ln(xw, p["ln_x_scale"], 0.0)
        hw = ln(hw, p["ln_h_scale"], 0.0)
    z_i, z_f, z_g, z_o = split(xw + hw + p["b"], 4)
    p_i, p_f, p_o = p["peephole"] if "peephole" in p else (0.0, 0.0, 0.0)
    i = sigmoid(z_i + p_i * c)
    f = sigmoid(z_f + p_f * c)
    g = np.tanh(z_g)
    c_new = f * c + i * g
    o = sigmoid(z_o + p_o * c_new)  # peephole reads the *new* cell state
    c_out = ln(c_new, p["ln_c_scale"], p["ln_c_bias"]) if "ln_c_scale" in p else c_new
    h_new = o * np.tanh(c_out)
    return (h_new, c_new), h_new


def ref_gru(p, h, x, mask=1.0):
    """Reset-after (PyTorch): n = tanh(x W_in + b_in + r * (h W_hn + b_hn))."""
    W_ir, W_iz, W_in = split(p["w_i"], 3)
    W_hr, W_hz, W_hn = split(p["w_h"], 3)
    b_r, b_z, b_n = split(p["b"], 3)
    hm = h * mask
    r = sigmoid(x @ W_ir + hm @ W_hr + b_r)
    z = sigmoid(x @ W_iz + hm @ W_hz + b_z)
    n = np.tanh(x @ W_in + b_n + r * (hm @ W_hn + p["b_hn"]))
    h = (1 - z) * n + z * h
    return h, h


def ref_gru_cho(p, h, x, mask=1.0):
    """Reset-before (Cho et al. 2014): n = tanh(x W_in + (r * h) W_hn + b_n)."""
    W_ir, W_iz, W_in = split(p["w_i"], 3)
    W_hr, W_hz, W_hn = split(p["w_h"], 3)
    b_r, b_z, b_n = split(p["b"], 3)
    hm = h * mask
    r = sigmoid(x @ W_ir + hm @ W_hr + b_r)
    z = sigmoid(x @ W_iz + hm @ W_hz + b_z)
    n = np.tanh(x @ W_in + (r * hm) @ W_hn + b_n)
    h = (1 - z) * n + z * h
    return h, h


def ref_min_gru(p, h, x):
    W_z, W_h = split(p["w"], 2)
    b_z, b_h = split(p["b"], 2)
    z = sigmoid(x @ W_z + b_z)
    h = (1 - z) * h + z * (x @ W_h + b_h)
    return h, h


def ref_min_lstm(p, h, x):
    W_f, W_i, W_h = split(p["w"], 3)
    b_f, b_i, b_h = split(p["b"], 3)
    f = sigmoid(x @ W_f + b_f)
    i = sigmoid(x @ W_i + b_i)
    h = f / (f + i) * h + i / (f + i) * (x @ W_h + b_h)
    return h, h


def ref_sequence(ref_step, p, carry, xs, **kw):
    """Loop ``ref_step`` over ``xs`` ``[b, t, d]``; returns ``(carry, ys [b, t, h])``."""
    ys = []
    for t in range(xs.shape[1]):
        carry, y = ref_step(p, carry, xs[:, t], **kw)
        ys.append(y)
    return carry, np.stack(ys, axis=1)


# --- the cases -------------------------------------------------------------------------------

CASES = {
    # name: (cell, numpy reference, carry is (h, c))
    "elman_tanh": (elman("tanh"), lambda p, c, x, **k: ref_elman(p, c, x, "tanh", **k), False),
    "elman_relu": (elman("relu"), lambda p, c, x, **k: ref_elman(p, c, x, "relu", **k), False),
    "lstm": (lstm(), ref_lstm, True),
    "lstm_peephole": (lstm(peephole=True), ref_lstm, True),
    "lstm_layer_norm": (lstm(layer_norm=True), ref_lstm, True),
    "lstm_peephole_layer_norm": (lstm(peephole=True, layer_norm=True), ref_lstm, True),
    "gru": (gru(), ref_gru, False),
    "gru_cho": (gru_cho(), ref_gru_cho, False),
    "min_gru": (min_gru(), ref_min_gru, False),
    "min_lstm": (min_lstm(), ref_min_lstm, False),
}


def random_params(cell, seed: int):
    """``cell.init`` for the layout, then every entry replaced by random values.

    Layer-norm gains stay near 1 (as trained ones do); everything else is N(0, 0.5^2).
    """
    params = cell.init(jax.random.key(seed), D, H)
    rng = np.random.default_rng(seed)
    out = {}
    for name, value in params.items():
        if name in ("ln_x_scale", "ln_h_scale", "ln_c_scale"):
            new = 1.0 + 0.3 * rng.normal(size=value.shape)
        else:
            new = 0.5 * rng.normal(size=value.shape)
        out[name] = jnp.asarray(new, jnp.float32)
    return out


def to64(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def data(seed: int, is_lstm: bool):
    rng = np.random.default_rng(seed + 100)
    xs = rng.normal(size=(B, T, D)).astype(np.float32)
    h0 = (0.5 * rng.normal(size=(B, H))).astype(np.float32)
    c0 = (0.5 * rng.normal(size=(B, H))).astype(np.float32)
    carry_j = LSTMState(jnp.asarray(h0), jnp.asarray(c0)) if is_lstm else jnp.asarray(h0)
    carry_np = (h0.astype(np.float64), c0.astype(np.float64)) if is_lstm else h0.astype(np.float64)
    return xs, carry_j, carry_np


def assert_close(actual, expected, what=""):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, atol=ATOL, rtol=RTOL, err_msg=what)


@pytest.mark.parametrize("name", list(CASES))
def test_sequence_matches_numpy(name):
    cell, ref_step, is_lstm = CASES[name]
    seed = list(CASES).index(name)
    params = random_params(cell, seed)
    xs, carry_j, carry_np = data(seed, is_lstm)

    carry, ys = rnn(cell, params, jnp.asarray(xs), initial_carry=carry_j, return_carry=True)
    carry_ref, ys_ref = ref_sequence(ref_step, to64(params), carry_np, xs.astype(np.float64))

    assert ys.shape == (B, T, H) and ys.dtype == jnp.float32
    assert_close(ys, ys_ref, "outputs")
    if is_lstm:
        assert_close(carry.h, carry_ref[0], "h")
        assert_close(carry.c, carry_ref[1], "c")
    else:
        assert_close(carry, carry_ref, "carry")
    if name == "elman_relu":  # the relu really clips
        assert (ys_ref == 0).any() and (ys_ref > 0).any()


@pytest.mark.parametrize("name", ["elman_tanh", "lstm_peephole", "lstm_layer_norm", "gru", "gru_cho"])
def test_recurrent_dropout_mask_only_enters_recurrent_products(name):
    """With ``recurrent_dropout_mask`` in the params, ``h * mask`` feeds the recurrent matrix
    products while the carried state itself (the ``z * h`` term of the GRU) stays intact."""
    cell, ref_step, is_lstm = CASES[name]
    params = random_params(cell, 40)
    xs, _, carry_np = data(40, is_lstm)
    mask = np.array([0.0, 2.0] * (H // 2), np.float32)  # rate 0.5, inverted scaling
    carry = jax.tree.map(jnp.asarray, carry_np)
    carry = LSTMState(*carry) if is_lstm else carry
    masked = params | {RECURRENT_DROPOUT_MASK: jnp.asarray(mask)}
    ys = []
    for t in range(T):  # the cell contract is per example: vmap the step over the batch
        carry, y = jax.vmap(cell.step, in_axes=(None, 0, 0))(masked, carry, jnp.asarray(xs[:, t]))
        ys.append(y)
    _, ys_ref = ref_sequence(ref_step, to64(params), carry_np, xs.astype(np.float64), mask=mask)
    assert_close(jnp.stack(ys, 1), ys_ref)
    # and the mask makes a difference
    _, ys_nomask = ref_sequence(ref_step, to64(params), carry_np, xs.astype(np.float64))
    assert np.abs(ys_nomask - ys_ref).max() > 1e-2


# --- seed 001's forget / learn / remember / use gates ----------------------------------------


def test_gate_formulation_is_the_lstm():
    rng = np.random.default_rng(7)
    seed_params = {}
    for gate in ("f", "i", "N", "o"):
        seed_params[f"W_{gate}"] = jnp.asarray(0.5 * rng.normal(size=(H, H + D)), jnp.float32)
        seed_params[f"b_{gate}"] = jnp.asarray(0.5 * rng.normal(size=(H,)), jnp.float32)
    fused = gate_formulation_params(**seed_params, hidden_features=H)
    assert fused["w_i"].shape == (D, 4 * H) and fused["w_h"].shape == (H, 4 * H)
    assert fused["b"].shape == (4 * H,)

    xs = jnp.asarray(rng.normal(size=(T, D)), jnp.float32)
    carry0 = LSTMState(
        jnp.asarray(0.5 * rng.normal(size=H), jnp.float32), jnp.asarray(0.5 * rng.normal(size=H), jnp.float32)
    )
    carry_seed = carry_fused = carry0
    for t in range(T):
        carry_seed, y_seed = gate_formulation_step(seed_params, carry_seed, xs[t])
        carry_fused, y_fused = lstm_step(fused, carry_fused, xs[t])
        assert_close(y_fused, np.asarray(y_seed), f"step {t}")
        assert_close(carry_fused.c, np.asarray(carry_seed.c), f"c at step {t}")

    # And both equal the numpy LSTM on the mapped parameters.
    carry0_np = tuple(np.asarray(c, np.float64)[None] for c in carry0)
    _, ys_ref = ref_sequence(ref_lstm, to64(fused), carry0_np, np.asarray(xs, np.float64)[None])
    ys = rnn(lstm(), fused, xs[None], initial_carry=jax.tree.map(lambda c: c[None], carry0))
    assert_close(ys, ys_ref)


# --- flip_update_gate: the seeds' GRU interpolation -------------------------------------------


def seed_gru_reset_before(w, h, xs):
    """Seed 001 §1.5, column convention, hidden first in the concatenation::

    z = sigma(W_z [h, x] + b_z); r = sigma(W_r [h, x] + b_r); n = tanh(W_h [r*h, x] + b_h)
    h = (1 - z) h + z n
    """
    ys = []
    for x in xs:
        hx = np.concatenate([h, x])
        z = sigmoid(w["W_z"] @ hx + w["b_z"])
        r = sigmoid(w["W_r"] @ hx + w["b_r"])
        n = np.tanh(w["W_h"] @ np.concatenate([r * h, x]) + w["b_h"])
        h = (1 - z) * h + z * n
        ys.append(h)
    return np.stack(ys)


def seed_gru_reset_after(p, h, xs):
    """PyTorch's reset-after candidate, seeds' interpolation ``h = (1 - z) h + z n``; seqjax layout."""
    ys = []
    for x in xs:
        W_ir, W_iz, W_in = split(p["w_i"], 3)
        W_hr, W_hz, W_hn = split(p["w_h"], 3)
        b_r, b_z, b_n = split(p["b"], 3)
        r = sigmoid(x @ W_ir + h @ W_hr + b_r)
        z = sigmoid(x @ W_iz + h @ W_hz + b_z)
        n = np.tanh(x @ W_in + b_n + r * (h @ W_hn + p["b_hn"]))
        h = (1 - z) * h + z * n
        ys.append(h)
    return np.stack(ys)


def test_flip_update_gate_reset_before_matches_seed_gru():
    rng = np.random.default_rng(11)
    w = {f"W_{g}": 0.5 * rng.normal(size=(H, H + D)) for g in "zrh"}
    w |= {f"b_{g}": 0.5 * rng.normal(size=H) for g in "zrh"}
    # The seed's weights in seqjax's fused layout (gate order r, z, n; rows -> columns).
    params = {
        "w_h": jnp.asarray(np.concatenate([w["W_r"][:, :H].T, w["W_z"][:, :H].T, w["W_h"][:, :H].T], 1), jnp.float32),
        "w_i": jnp.asarray(np.concatenate([w["W_r"][:, H:].T, w["W_z"][:, H:].T, w["W_h"][:, H:].T], 1), jnp.float32),
        "b": jnp.asarray(np.concatenate([w["b_r"], w["b_z"], w["b_h"]]), jnp.float32),
    }
    w = jax.tree.map(lambda a: np.asarray(np.asarray(a, np.float32), np.float64), w)
    xs = rng.normal(size=(T, D)).astype(np.float32)
    h0 = (0.5 * rng.normal(size=H)).astype(np.float32)
    expected = seed_gru_reset_before(w, h0.astype(np.float64), xs.astype(np.float64))

    ys = rnn(gru_cho(), flip_update_gate(params), jnp.asarray(xs)[None], initial_carry=jnp.asarray(h0)[None])
    assert_close(ys[0], expected)
    # Without the flip it is a different function.
    ys_unflipped = rnn(gru_cho(), params, jnp.asarray(xs)[None], initial_carry=jnp.asarray(h0)[None])
    assert np.abs(np.asarray(ys_unflipped[0]) - expected).max() > 1e-2


def test_flip_update_gate_reset_after_matches_seed_convention():
    params = random_params(gru(), 12)
    rng = np.random.default_rng(12)
    xs = rng.normal(size=(T, D)).astype(np.float32)
    h0 = (0.5 * rng.normal(size=H)).astype(np.float32)
    expected = seed_gru_reset_after(to64(params), h0.astype(np.float64), xs.astype(np.float64))
    ys = rnn(gru(), flip_update_gate(params), jnp.asarray(xs)[None], initial_carry=jnp.asarray(h0)[None])
    assert_close(ys[0], expected)


@pytest.mark.parametrize("cell", [gru(), gru_cho()], ids=["gru", "gru_cho"])
def test_flip_update_gate_touches_only_z_and_is_an_involution(cell):
    params = random_params(cell, 13)
    flipped = flip_update_gate(params)
    z = slice(H, 2 * H)
    for name in ("w_i", "w_h", "b"):
        np.testing.assert_array_equal(np.asarray(flipped[name][..., z]), -np.asarray(params[name][..., z]))
        np.testing.assert_array_equal(np.asarray(flipped[name][..., :H]), np.asarray(params[name][..., :H]))
        np.testing.assert_array_equal(np.asarray(flipped[name][..., 2 * H:]), np.asarray(params[name][..., 2 * H:]))
    if "b_hn" in params:
        np.testing.assert_array_equal(np.asarray(flipped["b_hn"]), np.asarray(params["b_hn"]))
    jax.tree.map(np.testing.assert_array_equal, flip_update_gate(flipped), params)
