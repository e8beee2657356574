"""JSON that gives back exactly what went in: arrays, non-finite floats, tuples, non-string keys.

A checkpoint keeps a run's device state (parameters, optimiser state) in Orbax and its host-side
progress (metrics so far, the results of finished sub-runs) as JSON. Plain JSON would change that
progress on the way: NumPy arrays and scalars are not serialisable, ``NaN`` is not JSON, tuples come
back as lists and the keys of ``{0.5: ...}`` as strings. :func:`encode` maps each of these to a
tagged object and :func:`decode` maps it back, bit for bit:

==========================  ==============================================================
value                       encoded as
==========================  ==============================================================
``None``, bool, int, str    itself
finite float                itself (``json`` writes the shortest repr, which reads back exactly)
``nan``, ``inf``, ``-inf``  ``{"__float__": "nan"}``
NumPy array or scalar,      ``{"__ndarray__": <base64 of the raw bytes>, "dtype": "<f4",
JAX array                   "shape": [...]}`` (0-d comes back as a NumPy scalar)
list                        a list of encoded items
tuple                       ``{"__tuple__": [...]}``
dict with str keys          a dict of encoded values (``{"__dict__": ...}`` if a key starts
                            with ``__``, so that no key is read as a tag)
dict with other keys        ``{"__dict__": [[key, value], ...]}``
==========================  ==============================================================

Anything else (a namedtuple, a dataclass, a PRNG key) raises ``TypeError`` naming its type and
where it sits: silently flattening it would not give it back.

Example::

    >>> import json, math
    >>> import numpy as np
    >>> from seqjax.experiment.lossless_json import decode, encode
    >>> progress = {"losses": np.array([0.5, np.nan], np.float32), "by_radius": {0.5: (1, math.inf)}}
    >>> back = decode(json.loads(json.dumps(encode(progress), allow_nan=False)))
    >>> back["losses"].dtype, np.array_equal(back["losses"], progress["losses"], equal_nan=True)
    (dtype('float32'), True)
    >>> back["by_radius"]
    {0.5: (1, inf)}
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

TAGS = ("__float__", "__ndarray__", "__tuple__", "__dict__")


def encode(value: Any, *, where: str = "value") -> Any:
    """``value`` as plain JSON data (see the module docstring); ``TypeError`` for other types."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, (np.ndarray, np.generic)) or _is_jax_array(value):
        array = np.asarray(value)
        if array.dtype == object or not array.dtype.isbuiltin:
            raise TypeError(f"{where}: cannot encode an array of dtype {array.dtype} losslessly.")
        return {
            "__ndarray__": base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii"),
            "dtype": array.dtype.str,
            "shape": list(array.shape),
        }
    if type(value) is list:
        return [encode(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if type(value) is tuple:
        return {"__tuple__": [encode(v, where=f"{where}[{i}]") for i, v in enumerate(value)]}
    if type(value) is dict:
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: encode(v, where=f"{where}[{k!r}]") for k, v in value.items()}
        return {"__dict__": [[encode(k, where=f"{where} key {k!r}"), encode(v, where=f"{where}[{k!r}]")]
                             for k, v in value.items()]}
    raise TypeError(
        f"{where}: cannot encode a {type(value).__module__}.{type(value).__qualname__} losslessly; "
        "use dicts, lists, tuples, numbers, strings and arrays."
    )


def decode(data: Any) -> Any:
    """The value :func:`encode` was given, from its (JSON-loaded) output."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__float__" in data:
        return float(data["__float__"])
    if "__ndarray__" in data:
        array = np.frombuffer(base64.b64decode(data["__ndarray__"]), dtype=np.dtype(data["dtype"]))
        array = array.reshape(data["shape"]).copy()  # frombuffer is read-only
        return array[()] if array.ndim == 0 else array
    if "__tuple__" in data:
        return tuple(decode(v) for v in data["__tuple__"])
    if "__dict__" in data:
        return {decode(k): decode(v) for k, v in data["__dict__"]}
    return {k: decode(v) for k, v in data.items()}


def _is_jax_array(value: Any) -> bool:
    try:
        import jax
    except ImportError:  # pragma: no cover - jax is a dependency
        return False
    return isinstance(value, jax.Array) and not jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key)
