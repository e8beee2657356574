"""The explorer's data format: validated arrays, quantised per row to ``uint8``, deflated, base64.

The HTML explorer (:mod:`seqjax.viz.explorer`) carries its data as one JSON object. Each array
is quantised along its last axis: a row ``x`` of length ``n`` is stored as integer codes

    q_k = round((x_k - lo) / step),   step = (max(x) - lo) / levels,   lo = min(min(x), 0)

in ``[0, levels]`` (``uint8``) with ``lo`` and ``step`` per row (float32), so the dequantised
value ``lo + q_k * step`` is within ``step / 2`` of ``x_k``. For attention rows (non-negative)
``lo = 0`` and ``step = max_j w_j / levels``: a row's largest weight is exact to float32 and
small weights keep their resolution relative to the row. The codes are compressed with zlib
(the ``deflate`` format that browsers' ``DecompressionStream`` reads) and base64-encoded.

``levels`` is chosen by :func:`choose_levels` as the largest of 255, 127, ..., 3 whose
compressed payload fits a byte budget (a 12-layer x 12-head x 256-token input of near-uniform
attention does not fit 5 MB at 255 levels; peaked attention does).

Example:
    >>> import numpy as np
    >>> x = np.array([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0]], np.float32)
    >>> block = encode_array(x, levels=255)
    >>> sorted(block)
    ['data', 'levels', 'lo', 'shape', 'step']
    >>> bool(np.abs(decode_array(block) - x).max() <= 0.7 / 255 / 2 + 1e-7)
    True
"""

from __future__ import annotations

import base64
import zlib
from typing import Any, Sequence

import numpy as np

__all__ = ["LEVELS", "choose_levels", "decode_array", "encode_array", "quantize", "dequantize"]

# Quantisation levels tried, finest first (codes are uint8, so 255 at most).
LEVELS = (255, 127, 63, 31, 15, 7, 3)


def quantize(x: np.ndarray, levels: int = 255) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantise ``x`` along its last axis: ``(codes uint8, lo [...], step [...])``.

    ``lo = min(min(x), 0)`` and ``step = (max(x) - lo) / levels`` per row (a constant row gets
    ``step = 0`` where its values are all ``lo``, else ``lo = 0`` and ``step = x / levels``).
    """
    if not 1 <= int(levels) <= 255:
        raise ValueError(f"levels must be an integer in [1, 255]; got {levels!r}.")
    x = np.asarray(x, np.float64)
    lo = np.minimum(x.min(axis=-1), 0.0)
    hi = np.maximum(x.max(axis=-1), 0.0)
    step = (hi - lo) / levels
    safe = np.where(step > 0, step, 1.0)
    codes = np.rint((x - lo[..., None]) / safe[..., None])
    codes = np.clip(codes, 0, levels).astype(np.uint8)
    return codes, lo.astype(np.float32), step.astype(np.float32)


def dequantize(codes: np.ndarray, lo: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Invert :func:`quantize` (to within ``step / 2`` per entry), as float32."""
    return (lo[..., None] + codes.astype(np.float32) * step[..., None]).astype(np.float32)


def _pack(a: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(a).tobytes(), 6)).decode("ascii")


def _unpack(text: str, dtype: Any, shape: Sequence[int]) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(text))
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(shape))


def encode_array(x: np.ndarray, levels: int = 255) -> dict:
    """One array as a JSON-able block: shape, levels, and base64(zlib) codes, lo and step.

    Codes are ``uint8`` in C order; ``lo`` and ``step`` are little-endian float32 of shape
    ``x.shape[:-1]``.
    """
    codes, lo, step = quantize(x, levels)
    return {
        "shape": list(codes.shape),
        "levels": int(levels),
        "data": _pack(codes),
        "lo": _pack(lo.astype("<f4")),
        "step": _pack(step.astype("<f4")),
    }


def decode_array(block: dict) -> np.ndarray:
    """Dequantise a block written by :func:`encode_array` (float32, ``block["shape"]``)."""
    shape = tuple(block["shape"])
    codes = _unpack(block["data"], np.uint8, shape)
    lo = _unpack(block["lo"], "<f4", shape[:-1])
    step = _unpack(block["step"], "<f4", shape[:-1])
    return dequantize(codes, lo, step)


def _compressed_bytes(arrays: Sequence[np.ndarray], levels: int, sample_rows: int) -> float:
    """Estimated base64 size of ``arrays`` at ``levels``, compressing at most ``sample_rows``."""
    total = 0.0
    for a in arrays:
        rows = a.reshape(-1, a.shape[-1]) if a.size else a.reshape(0, 1)
        n = rows.shape[0]
        if n == 0:
            continue
        stride = max(1, n // sample_rows)
        sample = rows[::stride]
        codes, _, _ = quantize(sample, levels)
        packed = len(zlib.compress(codes.tobytes(), 6))
        total += packed * (n / sample.shape[0]) * 4 / 3 + n * 8 * 4 / 3
    return total


def choose_levels(
    arrays: Sequence[np.ndarray], max_bytes: int | None, *, levels: Sequence[int] = LEVELS
) -> int:
    """The largest entry of ``levels`` whose estimated encoded size of ``arrays`` fits ``max_bytes``.

    The size is estimated by compressing an evenly spaced sample of rows (about 4096 per
    array). ``max_bytes=None`` returns ``levels[0]``; if nothing fits, the coarsest is returned.
    """
    if max_bytes is None:
        return int(levels[0])
    if int(max_bytes) <= 0:
        raise ValueError(f"max_bytes must be a positive number of bytes or None; got {max_bytes!r}.")
    for lv in levels:
        if _compressed_bytes(arrays, lv, 4096) <= max_bytes:
            return int(lv)
    return int(levels[-1])
