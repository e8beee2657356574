"""Timing helpers shared by the benchmarks.

The machines these run on are noisy (absolute speed drifts up to 2x between runs, and PyTorch's
OpenMP threads have spin-wait outliers), so the helpers are built for *ratios taken in one
process*: every contender is compiled/warmed up first, then the contenders are timed in turns
(round-robin, the starting contender rotating each round) so that drift hits all of them alike.
Each timed call blocks until its result is ready (``jax.block_until_ready``; PyTorch on CPU is
synchronous). A matmul calibration line records how fast the machine was during the run.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Stats:
    """Seconds per call over the timed rounds."""

    min: float
    median: float
    max: float
    runs: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def summarize(samples: list[float]) -> Stats:
    return Stats(min(samples), statistics.median(samples), max(samples), len(samples))


def block(x):
    """Wait for every JAX array in ``x`` (anything else is returned as is)."""
    return jax.block_until_ready(x)


def time_once(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    block(fn())
    return time.perf_counter() - start


def time_alternating(
    contenders: dict[str, Callable[[], object]],
    *,
    repeats: int = 5,
    warmup: int = 1,
) -> dict[str, Stats]:
    """Time each zero-argument callable ``repeats`` times, interleaved with the others.

    ``warmup`` untimed calls per contender come first (JAX compiles on the first call). Round
    ``r`` starts with contender ``r mod n`` so no contender always runs right after another.
    Returns min/median/max seconds per call for each contender.
    """
    samples = time_alternating_samples(contenders, repeats=repeats, warmup=warmup)
    return {name: summarize(s) for name, s in samples.items()}


def time_alternating_samples(
    contenders: dict[str, Callable[[], object]],
    *,
    repeats: int = 5,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """As :func:`time_alternating`, but the raw seconds of every round (round ``r`` at index ``r``)."""
    names = list(contenders)
    for name in names:
        for _ in range(warmup):
            block(contenders[name]())
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            samples[name].append(time_once(contenders[name]))
    return samples


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of ``numerator[r] / denominator[r]``.

    Two contenders timed in the same round saw about the same machine load, so the per-round
    ratio cancels most of the drift that makes the absolute times wander.
    """
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def matmul_calibration(n: int = 1024, repeats: int = 5, *, torch_too: bool = True) -> dict:
    """GFLOP/s of an ``n x n`` float32 matmul in JAX (and PyTorch if importable), best of ``repeats``.

    Printed with each benchmark so that absolute numbers from different runs can be put in
    proportion to how fast the machine was at the time.
    """
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    block(mm(a))
    flops = 2.0 * n**3
    out = {"n": n, "jax_gflops": flops / min(time_once(lambda: mm(a)) for _ in range(repeats)) / 1e9}
    if torch_too:
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is an optional dependency
            return out
        t = torch.randn(n, n)
        with torch.no_grad():
            t @ t
            out["torch_gflops"] = (
                flops / min(time_once(lambda: t @ t) for _ in range(repeats)) / 1e9
            )
    return out


def fmt_seconds(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1.0 else f"{s:.3f} s"
