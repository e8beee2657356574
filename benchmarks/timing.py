"""Measuring inside one benchmark process: a prepared step, its timed calls, memory, calibration.

A benchmark process runs exactly one contender (see :mod:`benchmarks.harness`), so this module
imports neither jax nor torch at the top: a function that needs a framework imports it when called,
and a torch process never loads jax (nor a jax process torch).

A :class:`Step` is a zero-argument callable plus how to wait for its result. JAX steps are
compiled ahead of time (``jax.jit(f).lower(*args).compile()``), so compilation is timed apart from
the calls; PyTorch on CPU runs eagerly and synchronously. :func:`time_calls` makes one warm-up call
(timed and reported apart), then times calls, each ended by waiting for the result
(``jax.block_until_ready``), until they add up to about ``budget_s`` seconds.

Memory is read from ``/proc/self``: the resident set just before the calls (after free heap
memory is handed back to the kernel with ``malloc_trim``) and the peak resident set *during* the
calls (the kernel's high-water mark, reset by writing ``5`` to ``/proc/self/clear_refs`` just
before them), so the memory that imports and compilation needed does not hide in the increment.
Both are taken before the first call and again after it, so the one-time allocations of a first
call show apart. The whole-process peak (``ru_maxrss``, all of that included) is reported too.
"""

from __future__ import annotations

import ctypes
import dataclasses
import resource
import statistics
import sys
import time
from typing import Any, Callable

MiB = 2**20


@dataclasses.dataclass(frozen=True)
class Step:
    """One contender, ready to call.

    Attributes:
      run: computes the contender's result (the gradients) from its prepared inputs.
      sync: waits until a result of ``run`` is computed and returns it.
      finite: True if every array of a result is finite.
      framework: ``"jax"`` or ``"torch"``.
      compile_s: seconds spent tracing and compiling (``None``: nothing is compiled).
    """

    run: Callable[[], Any]
    sync: Callable[[Any], Any]
    finite: Callable[[Any], bool]
    framework: str
    compile_s: float | None = None


def jax_step(fn: Callable, *args) -> Step:
    """Compile ``jax.jit(fn)`` for ``args`` ahead of time; the step calls the compiled program."""
    import jax
    import numpy as np

    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start

    def finite(result) -> bool:
        return all(bool(np.isfinite(np.asarray(leaf)).all()) for leaf in jax.tree.leaves(result))

    return Step(lambda: compiled(*args), jax.block_until_ready, finite, "jax", compile_s)


def torch_step(fn: Callable[[], Any]) -> Step:
    """A PyTorch step; ``fn`` returns a tensor or a list/tuple of tensors (CPU: synchronous)."""

    def finite(result) -> bool:
        tensors = result if isinstance(result, (list, tuple)) else [result]
        return all(bool(t.detach().isfinite().all()) for t in tensors)

    return Step(fn, lambda result: result, finite, "torch", None)


def rss_bytes() -> int:
    """Resident set size of this process now."""
    return _status_kib("VmRSS") * 1024


def reset_peak() -> bool:
    """Reset the kernel's peak-resident-set mark (``VmHWM``) to the current RSS; False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int:
    """Peak resident set size since the last :func:`reset_peak` (since start if never reset)."""
    return _status_kib("VmHWM") * 1024


def release_free_memory() -> None:
    """Give the heap memory that is free but still resident (left by imports and compilation)
    back to the kernel (glibc ``malloc_trim``), so that the resident set measured before the
    calls is what is in use, and memory the calls reuse counts in their increment."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the increment may then be understated
        pass


def process_peak_bytes() -> int:
    """Peak resident set size of the whole process (``ru_maxrss``, never reset)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field} line")


def time_calls(step: Step, *, budget_s: float, min_reps: int, max_reps: int) -> dict:
    """One warm-up call, then timed calls; seconds, finiteness and memory of the calls.

    The timed calls go on until they add up to ``budget_s`` seconds, at least ``min_reps`` and at
    most ``max_reps`` of them (the warm-up call can be much slower than the others). Returns
    ``warmup_s``, ``samples_s`` (every timed call), ``median_s``, ``finite`` (of the warm-up
    result), ``process_peak_mib`` and, unless the kernel refused to reset the peak mark (then
    ``None``), the increments over the resident set before them:

    - ``added_mib``: the peak of all calls over the resident set before the first (with the
      one-time allocations of a first call: kernel caches, workspaces);
    - ``added_later_mib``: the peak of the timed calls over the resident set after the first call
      (its result freed): what each later call needs on top of what the first one left.
    """
    base_first, can_reset = _baseline()
    start = time.perf_counter()
    result = step.sync(step.run())
    warmup_s = time.perf_counter() - start
    finite = step.finite(result)
    del result  # a result kept alive while the next call runs would count twice in the peak
    peak_first = peak_bytes()
    base_later, _ = _baseline()
    samples: list[float] = []
    while len(samples) < max_reps and (len(samples) < min_reps or sum(samples) < budget_s):
        start = time.perf_counter()
        step.sync(step.run())
        samples.append(time.perf_counter() - start)
    peak_later = peak_bytes()
    return {
        "warmup_s": warmup_s,
        "samples_s": samples,
        "median_s": statistics.median(samples),
        "finite": finite,
        "rss_before_mib": base_first / MiB,
        "added_mib": (max(peak_first, peak_later) - base_first) / MiB if can_reset else None,
        "added_later_mib": (peak_later - base_later) / MiB if can_reset else None,
        "process_peak_mib": process_peak_bytes() / MiB,
    }


def _baseline() -> tuple[int, bool]:
    """Free heap memory handed back, the resident set now, and the peak mark reset to it."""
    release_free_memory()
    return rss_bytes(), reset_peak()


def matmul_gflops(framework: str, n: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of an ``n x n`` float32 matmul in ``framework`` (best of ``repeats``).

    Run in every benchmark process before its contender, so the report shows how fast the machine
    was for each process: absolute times on shared machines drift (up to 2x on the 2-core CPU).
    """
    import numpy as np

    x = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    if framework == "jax":
        import jax

        a = jax.device_put(x)
        mm = jax.jit(lambda x: x @ x)
        call = lambda: jax.block_until_ready(mm(a))
    elif framework == "torch":
        import torch

        a = torch.from_numpy(x)

        def call():
            with torch.no_grad():
                return a @ a

    else:
        raise ValueError(f"framework must be 'jax' or 'torch'; got {framework!r}.")
    call()  # compile / warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best / 1e9


def framework_info(framework: str) -> dict:
    """What the framework runs with in this process: its version and threads or devices."""
    if framework == "torch":
        import torch

        return {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    import jax

    return {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()]}


def loaded_frameworks() -> list[str]:
    """Which of jax, flax and torch this process has imported (one framework per process)."""
    return [m for m in ("jax", "flax", "torch") if m in sys.modules]
