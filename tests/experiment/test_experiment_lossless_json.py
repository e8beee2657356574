"""seqjax.experiment.lossless_json: what goes in comes back, bit for bit, through strict JSON."""

from __future__ import annotations

import collections
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.experiment.lossless_json import decode, encode


def _round_trip(value):
    return decode(json.loads(json.dumps(encode(value), allow_nan=False)))


def _same(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


@pytest.mark.parametrize(
    "value",
    [
        None, True, 0, -7, 2**70, "text", 0.1, -0.0, 1e-310, math.nan, math.inf, -math.inf,
        [1, [2.5, None]], (1, (2, "a")), (),
        {"a": 1, "b": {"c": [1.0]}},
        {0.5: "float key", 2: "int key", (1, 2): "tuple key", "__x": "a str key that looks like a tag"},
        {"__tuple__": [1]},  # a dict that looks like an encoded tuple stays a dict
        np.array([0.1, np.nan, -np.inf], np.float32),
        np.arange(6, dtype=np.int64).reshape(2, 3),
        np.array([True, False]),
        np.zeros((0, 4), np.float64),
        np.float32(0.1), np.int32(3),
    ],
)
def test_round_trip(value):
    _same(_round_trip(value), value)


def test_jax_arrays_come_back_as_numpy():
    back = _round_trip({"w": jnp.arange(3.0)})
    assert isinstance(back["w"], np.ndarray) and back["w"].dtype == np.float32
    np.testing.assert_array_equal(back["w"], [0.0, 1.0, 2.0])
    assert back["w"].flags.writeable


@pytest.mark.parametrize(
    "value, where",
    [
        ({"a": [object()]}, r"progress\['a'\]\[0\]: cannot encode a builtins.object"),
        ({"t": collections.namedtuple("P", "x")(1)}, r"progress\['t'\]: cannot encode a .*P losslessly"),
        ({"k": jax.random.key(0)}, r"progress\['k'\]: cannot encode"),
        ({"s": {1, 2}}, "cannot encode a builtins.set"),
        ({"o": np.array([object()])}, "cannot encode an array of dtype object"),
    ],
)
def test_what_would_not_come_back_is_refused(value, where):
    with pytest.raises(TypeError, match=where):
        encode(value, where="progress")
