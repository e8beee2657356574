"""seqjax.train.schedules: values at known steps, computed by hand in the comments."""

import math

import numpy as np
import pytest

from seqjax.train.schedules import (
    inverse_sqrt_warmup,
    warmup_constant,
    warmup_cosine_decay,
    warmup_linear_decay,
)


def _values(schedule, counts):
    return [float(schedule(c)) for c in counts]


def test_inverse_sqrt_warmup_transformer_numbers():
    noam = inverse_sqrt_warmup(d_model=512, warmup_steps=4000)
    # count 0 -> s = 1: 512^-0.5 * 1 * 4000^-1.5 = 0.0441942 * 3.95285e-6 = 1.74693e-7 (no 0^-0.5)
    # count 999 -> s = 1000: 0.0441942 * 1000 * 3.95285e-6 = 1.74693e-4 (still warming up)
    # count 3999 -> s = 4000, the peak: (512 * 4000)^-0.5 = 1 / 1431.0835 = 6.98771e-4
    # count 15999 -> s = 16000: 0.0441942 / 126.4911 = 3.49386e-4 (half the peak: 1/sqrt(4))
    np.testing.assert_allclose(
        _values(noam, [0, 999, 3999, 15999]), [1.74693e-7, 1.74693e-4, 6.98771e-4, 3.49386e-4], rtol=1e-5
    )


def test_inverse_sqrt_warmup_peaks_at_the_end_of_warmup_and_scales():
    noam = inverse_sqrt_warmup(d_model=64, warmup_steps=10, scale=2.0)
    values = _values(noam, range(40))
    assert int(np.argmax(values)) == 9  # count 9 is s = 10 = warmup
    # 2 * 64^-0.5 * 10^-0.5 = 2 / 8 / 3.16228 = 0.0790569
    np.testing.assert_allclose(values[9], 0.0790569, rtol=1e-5)
    assert all(math.isfinite(v) and v > 0 for v in values)


def test_warmup_linear_decay_bert_defaults_and_never_negative():
    sched = warmup_linear_decay(1e-4, warmup_steps=10_000, total_steps=100_000)
    # 0 at count 0; half the peak halfway through warmup; the peak at 10k; halfway down at 55k;
    # 0 at 100k and clamped at 0 after (the seed's formula goes to -1e-4 at 190k).
    np.testing.assert_allclose(
        _values(sched, [0, 5_000, 10_000, 55_000, 100_000, 190_000]),
        [0.0, 5e-5, 1e-4, 5e-5, 0.0, 0.0], atol=1e-12,
    )


def test_warmup_linear_decay_end_and_init_values():
    sched = warmup_linear_decay(1.0, warmup_steps=4, total_steps=8, end_value=0.2, init_value=0.2)
    # warmup 0.2 -> 1.0 in 4 steps (0.2 per step), decay 1.0 -> 0.2 in 4 steps.
    np.testing.assert_allclose(_values(sched, [0, 2, 4, 6, 8, 100]), [0.2, 0.6, 1.0, 0.6, 0.2, 0.2], rtol=1e-6)
    no_warmup = warmup_linear_decay(1.0, warmup_steps=0, total_steps=4)
    np.testing.assert_allclose(_values(no_warmup, [0, 1, 4, 9]), [1.0, 0.75, 0.0, 0.0], atol=1e-7)


def test_warmup_cosine_decay_values():
    sched = warmup_cosine_decay(1.0, warmup_steps=10, total_steps=110)
    # count 35 is a quarter into the decay: (1 + cos(pi/4)) / 2 = 0.8535534; count 60 halfway: 0.5.
    np.testing.assert_allclose(
        _values(sched, [0, 5, 10, 35, 60, 110, 1000]), [0.0, 0.5, 1.0, 0.8535534, 0.5, 0.0, 0.0], atol=1e-6
    )
    floor = warmup_cosine_decay(1.0, warmup_steps=10, total_steps=110, end_value=0.1)
    # 0.1 + 0.9 * 0.5 = 0.55 halfway; 0.1 at and after the end.
    np.testing.assert_allclose(_values(floor, [60, 110, 500]), [0.55, 0.1, 0.1], atol=1e-6)


def test_warmup_constant_seed_lstm_schedule():
    sched = warmup_constant(1e-3, warmup_steps=100)
    np.testing.assert_allclose(_values(sched, [0, 50, 100, 10**6]), [0.0, 5e-4, 1e-3, 1e-3], atol=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: inverse_sqrt_warmup(0, 10), "d_model"),
        (lambda: inverse_sqrt_warmup(512, 0), "warmup_steps"),
        (lambda: warmup_linear_decay(1.0, 10, 10), "total_steps must exceed"),
        (lambda: warmup_cosine_decay(-1.0, 1, 10), "peak_value"),
        (lambda: warmup_linear_decay(1.0, 1, 10, end_value=-0.1), "end_value"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
