"""The explorer's data format: arrays quantised to ``uint8`` per block, deflated, base64.

The HTML explorer (:mod:`seqjax.viz.explorer`) carries its data as one JSON object. Each array
is quantised in blocks of its last ``scale_axes`` axes (one attention matrix ``[t, s]`` per
layer and head: ``scale_axes=2``; one unit's activations over time: ``scale_axes=1``). A block
``x`` is stored as integer codes

    q_k = round((x_k - lo) / step),   lo = min(min(x), 0),   step = (max(x, 0) - lo) / levels

in ``[0, levels]`` (``uint8``) with ``lo`` and ``step`` per block (float32), so the dequantised
value ``lo + q_k * step`` is within ``step / 2`` of ``x_k``. For an attention matrix ``lo = 0``
and ``step = max w / levels``: its largest weight is exact to float32 and every weight is within
``max w / (2 levels)``, the resolution of a heatmap scaled to that maximum, which is how the
explorer draws it. The codes are compressed with zlib (the ``deflate`` format that browsers'
``DecompressionStream`` reads) and base64-encoded.

``levels`` is chosen by :func:`choose_levels` as the largest of 255, 127, 63, 31, 15 whose
compressed payload fits a byte budget; below 15 levels the budget gives way. (Dense attention
does not compress much: 12 layers x 12 heads x 256 x 256 weights are 9.4 MB as ``uint8``.)

Example:
    >>> import numpy as np
    >>> x = np.array([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0]], np.float32)
    >>> block = encode_array(x, levels=255)
    >>> sorted(block)
    ['data', 'levels', 'lo', 'scale_axes', 'shape', 'step']
    >>> bool(np.abs(decode_array(block) - x).max() <= 0.7 / 255 / 2 + 1e-7)
    True
"""

from __future__ import annotations

import base64
import zlib
from typing import Any, Sequence

import numpy as np

__all__ = ["LEVELS", "choose_levels", "decode_array", "encode_array", "quantize", "dequantize"]

# Quantisation levels tried, finest first (codes are uint8, so 255 at most); below 15 levels
# (4 bits) a heatmap bands visibly, so the budget gives way instead.
LEVELS = (255, 127, 63, 31, 15)


def quantize(
    x: np.ndarray, levels: int = 255, *, scale_axes: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantise ``x`` with one ``(lo, step)`` per block of its last ``scale_axes`` axes.

    Returns ``(codes uint8 like x, lo, step)`` with ``lo``/``step`` of shape
    ``x.shape[:-scale_axes]``: ``lo = min(min(block), 0)``, ``step = (max(block, 0) - lo) /
    levels`` (an all-zero block gets ``step = 0``). Computed in float32, a block at a time in
    chunks, so a 24 x 16 x 512 x 512 array needs little memory beyond its codes.
    """
    if not 1 <= int(levels) <= 255:
        raise ValueError(f"levels must be an integer in [1, 255]; got {levels!r}.")
    x = np.asarray(x, np.float32)
    if not 1 <= scale_axes <= x.ndim:
        raise ValueError(f"scale_axes must lie in [1, {x.ndim}]; got {scale_axes!r}.")
    shape = x.shape
    lead = shape[:x.ndim - scale_axes]
    blocks = x.reshape(int(np.prod(lead, dtype=np.int64)), -1)
    codes = np.empty(blocks.shape, np.uint8)
    lo = np.empty(blocks.shape[0], np.float32)
    step = np.empty(blocks.shape[0], np.float32)
    chunk = max(1, (1 << 22) // max(1, blocks.shape[1]))
    for i in range(0, blocks.shape[0], chunk):
        r = blocks[i:i + chunk]
        lo_c = np.minimum(r.min(axis=-1), 0.0)
        step_c = (np.maximum(r.max(axis=-1), 0.0) - lo_c) / np.float32(levels)
        safe = np.where(step_c > 0, step_c, np.float32(1.0))
        q = np.rint((r - lo_c[:, None]) / safe[:, None])
        codes[i:i + chunk] = np.clip(q, 0, levels)
        lo[i:i + chunk] = lo_c
        step[i:i + chunk] = step_c
    return codes.reshape(shape), lo.reshape(lead), step.reshape(lead)


def dequantize(codes: np.ndarray, lo: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Invert :func:`quantize` (to within ``step / 2`` per entry), as float32."""
    extra = (1,) * (codes.ndim - lo.ndim)
    lo = lo.reshape(lo.shape + extra)
    step = step.reshape(step.shape + extra)
    return (lo + codes.astype(np.float32) * step).astype(np.float32)


def _pack(a: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(a).tobytes(), 6)).decode("ascii")


def _unpack(text: str, dtype: Any, shape: Sequence[int]) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(text))
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(shape))


def encode_array(x: np.ndarray, levels: int = 255, *, scale_axes: int = 1) -> dict:
    """One array as a JSON-able block: shape, levels, and base64(zlib) codes, lo and step.

    Codes are ``uint8`` in C order; ``lo`` and ``step`` are little-endian float32 of shape
    ``x.shape[:-scale_axes]`` (see :func:`quantize`).
    """
    codes, lo, step = quantize(x, levels, scale_axes=scale_axes)
    return {
        "shape": list(codes.shape),
        "levels": int(levels),
        "scale_axes": int(scale_axes),
        "data": _pack(codes),
        "lo": _pack(lo.astype("<f4")),
        "step": _pack(step.astype("<f4")),
    }


def decode_array(block: dict) -> np.ndarray:
    """Dequantise a block written by :func:`encode_array` (float32, ``block["shape"]``)."""
    shape = tuple(block["shape"])
    lead = shape[:len(shape) - int(block.get("scale_axes", 1))]
    codes = _unpack(block["data"], np.uint8, shape)
    lo = _unpack(block["lo"], "<f4", lead)
    step = _unpack(block["step"], "<f4", lead)
    return dequantize(codes, lo, step)


def _compressed_bytes(arrays: Sequence[tuple[np.ndarray, int]], levels: int) -> float:
    """Estimated base64 size of ``arrays`` at ``levels``, from a sample of their scale blocks."""
    total = 0.0
    for a, scale_axes in arrays:
        a = np.asarray(a, np.float32)
        lead = a.shape[:a.ndim - scale_axes]
        n = int(np.prod(lead, dtype=np.int64))
        blocks = a.reshape(n, -1)
        if blocks.size == 0:
            continue
        stride = max(1, (n * blocks.shape[1]) // (1 << 21))
        sample = blocks[::stride] if stride < n else blocks[:1]
        codes, _, _ = quantize(sample, levels)
        packed = len(zlib.compress(codes.tobytes(), 6))
        total += (packed * (n / sample.shape[0]) + n * 8) * 4 / 3
    return total


def choose_levels(
    arrays: Sequence[tuple[np.ndarray, int]], max_bytes: int | None, *,
    levels: Sequence[int] = LEVELS,
) -> int:
    """The largest entry of ``levels`` whose estimated encoded size of ``arrays`` fits ``max_bytes``.

    ``arrays`` are ``(array, scale_axes)`` pairs as given to :func:`encode_array`. The size is
    estimated by compressing an evenly spaced sample of scale blocks (about 2M entries per
    array). ``max_bytes=None`` returns ``levels[0]``; if nothing fits, the coarsest entry is
    returned (and the file exceeds the budget).
    """
    if max_bytes is None:
        return int(levels[0])
    if int(max_bytes) <= 0:
        raise ValueError(f"max_bytes must be a positive number of bytes or None; got {max_bytes!r}.")
    for lv in levels:
        if _compressed_bytes(arrays, lv) <= max_bytes:
            return int(lv)
    return int(levels[-1])
