"""The explorer's data format: quantisation bounds, the deflate/base64 round trip, the budget."""

import numpy as np
import pytest

from seqjax.viz.payload import choose_levels, decode_array, encode_array, quantize


@pytest.mark.parametrize("levels", [255, 31, 15])
@pytest.mark.parametrize("scale_axes", [1, 2])
def test_round_trip_within_half_a_step(levels, scale_axes):
    x = np.random.default_rng(0).normal(size=(3, 4, 7, 9)).astype(np.float32)
    out = decode_array(encode_array(x, levels, scale_axes=scale_axes))
    assert out.shape == x.shape and out.dtype == np.float32
    axes = tuple(range(x.ndim - scale_axes, x.ndim))
    lo = np.minimum(x.min(axis=axes, keepdims=True), 0)
    step = (np.maximum(x.max(axis=axes, keepdims=True), 0) - lo) / levels
    err = np.abs(out - x)
    assert (err <= step / 2 * (1 + 1e-5) + 1e-7).all()
    # Not trivially exact: coarse levels do lose information.
    if levels == 15:
        assert err.max() > step.min() / 10


def test_quantize_matches_a_direct_formula_and_keeps_zero_and_max_exact():
    w = np.array([[0.0, 0.25, 0.75], [0.5, 0.5, 0.0]], np.float32)
    codes, lo, step = quantize(w, 255)
    np.testing.assert_array_equal(lo, [0, 0])
    np.testing.assert_allclose(step, [0.75 / 255, 0.5 / 255])
    np.testing.assert_array_equal(codes, [[0, 85, 255], [255, 255, 0]])
    codes2, _, step2 = quantize(w, 255, scale_axes=2)
    assert step2.shape == () and np.isclose(step2, 0.75 / 255)
    np.testing.assert_array_equal(codes2[1], [170, 170, 0])


def test_all_zero_block_round_trips():
    np.testing.assert_array_equal(decode_array(encode_array(np.zeros((2, 3)))), np.zeros((2, 3)))


def test_choose_levels_follows_the_budget():
    w = np.random.default_rng(0).random((8, 64, 64)).astype(np.float32)
    assert choose_levels([(w, 2)], None) == 255
    big = choose_levels([(w, 2)], 10_000_000)
    small = choose_levels([(w, 2)], 20_000)
    assert big == 255 and small < big
    with pytest.raises(ValueError, match="max_bytes"):
        choose_levels([(w, 2)], 0)
    with pytest.raises(ValueError, match="levels"):
        quantize(w, 0)
