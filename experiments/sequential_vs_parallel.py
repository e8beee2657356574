"""Sequential vs parallel, measured: wall time, memory and compile time against sequence length.

What it measures
    On the current default JAX device (``jax.devices()[0]``: its platform and ``device_kind``,
    and the CPU model from ``/proc/cpuinfo`` on a CPU; all in ``metrics.json`` and the figure
    titles), for one layer of width ``d = width`` on a batch ``[b, T, d]`` of float32 inputs, at
    every sequence length ``T`` in ``lengths`` (log-spaced, 8 ... 4096 by default):

    * **wall time** of the forward pass ``ys = layer(params, xs)`` (``ys`` ``[b, T, d]``) and of
      the forward+backward pass (the gradients of ``mean(ys ** 2)`` with respect to the parameters
      and the inputs ``xs``), each the median of ``reps`` timed calls;
    * **memory** of each compiled program, exact and per form, from XLA's buffer assignment
      (``jax.jit(f).lower(...).compile().memory_analysis()``): ``total = argument + output +
      temp - alias`` bytes (nothing is donated, so ``alias`` is 0); the process's resident set
      would mix every form and the allocator's caching;
    * **compile time**: seconds to trace and lower (``lower_s``) and to compile (``compile_s``);
    * fitted **log-log slopes** ``p`` of ``time ~ c T^p`` (least squares of ``log time`` on
      ``log T`` over the lengths ``T >= fit_min_length``; 1 is linear, 2 quadratic), of memory and
      of compile time likewise.

    The forms (:data:`FORMS`):

    ==================  ==========================================================================
    ``elman``           :func:`seqjax.recurrence.rnn` of :func:`seqjax.cells.elman` (tanh): one
                        :func:`jax.lax.scan`, ``T`` dependent steps
    ``lstm``            the same with :func:`seqjax.cells.lstm` (the library's default path for
                        the plain LSTM: a scan with a fused derivative rule)
    ``gru``             the same with :func:`seqjax.cells.gru`
    ``min_gru``         minGRU (Feng et al. 2024), sequential scan of ``h_t = a_t h_{t-1} + b_t``
    ``min_gru_parallel``  the same recurrence with ``parallel=True``: a
                        :func:`jax.lax.associative_scan`, ``O(log T)`` depth
    ``attention_dense``   single-layer self-attention (Vaswani et al. 2017):
                        :func:`seqjax.attention.self_attention`, the ``[b, h, T, T]`` scores in
                        memory (causal mask by default, as the recurrent forms are causal)
    ``attention_chunked`` the same function with :func:`seqjax.attention.chunked_attention`
                        (online softmax in blocks, linear memory; causal blocks skipped)
    ``elman_unrolled``  the Elman RNN as a Python loop of ``T`` vmapped steps, traced and compiled
                        as ``T`` copies: run only up to ``unrolled_max_length``, to show what
                        ``lax.scan`` saves in compile time
    ==================  ==========================================================================

How
    Per length, first one matmul calibration (:func:`benchmarks.timing.matmul_gflops`, an
    ``n x n`` float32 product on the same device), then every form is compiled ahead of time for
    both passes (so compile time never enters a timed call), its memory read, and called once to
    warm up (timed apart). Then ``reps`` rounds: in every round each form and pass is called
    once, in the order of ``forms``, each call ended with :func:`jax.block_until_ready`, so the
    repetitions of one form are spread over the whole measurement of that length and the
    machine's drift reaches every form alike. The reported time is the median of a form's
    ``reps`` calls. Inputs are drawn from the seed with numpy; parameters with the cells' and
    :func:`seqjax.attention.multi_head_init`'s own initialisers. A form whose compiled program
    needs more than ``memory_fraction`` of the memory available (the device's free memory on a
    GPU/TPU, ``MemAvailable`` on a CPU) is skipped at that length and longer ones, with the
    reason. Nothing here is CPU-specific: the same command runs on a GPU or a TPU.

Why
    This replaces the "Sequential vs parallel processing" demo of the notebook *Introduction to
    Sequence Modeling - Interactive Notebook*, which times ``time.sleep``: the "RNN" sleeps
    ``0.1 s`` per arrow (3.6 s for 8 steps, a total that grows quadratically, where a real RNN
    is ``T`` constant-depth steps), "attention" sleeps a fixed 0.2 s, and the notebook prints
    "Speedup with parallelization: 18x faster!". Attention does ``O(T^2)`` work; whether its
    parallelism beats a sequential scan depends on the device and the length. What the hardware
    does is measured here and reported as seen.

Result
    See the README table (from the default run); this module asserts no speedup.

Resuming and what "the same results" means here
    A measurement unit is one form's preparation at one length (compile times, memory, warm-up)
    or one timing round at one length (one call of every form and pass). After every
    ``checkpoint_every`` units (default: every unit) the finished measurements, which are the
    whole state, are saved (:class:`seqjax.experiment.RunCheckpoints`), so a SIGKILL loses at
    most the unit in progress; ``--resume RUN_DIR`` recompiles the forms of the length it
    stopped in (not recorded again: their compile times were measured already) and continues.
    The times themselves are the measurement and depend on the wall clock by nature, so they
    are in ``metrics.json`` (under ``results``) and two runs never agree on them. What a resumed
    run must give exactly as an uninterrupted one is everything else: the setup, the lengths,
    the set of measurements (which form, pass and length has a time, how many samples, which
    slopes exist), the statuses and the memory analysis (XLA's buffer assignment is
    deterministic). :func:`comparable` maps a summary (or a ``metrics.jsonl`` record) to that
    part, with every wall-clock value replaced by the word ``"number"``; the resume test
    compares it.

Run::

    python -m experiments.sequential_vs_parallel            # default: T = 8 ... 4096 (minutes)
    python -m experiments.sequential_vs_parallel --quick    # T = 8, 16 (seconds; the tests)
    python -m experiments.sequential_vs_parallel --resume RUN_DIR   # continue a stopped run
    python -m experiments.sequential_vs_parallel --help     # every config field is a flag

Outputs (``runs/sequential_vs_parallel/<UTC timestamp>/`` or ``--out``): ``config.json``,
``run.json``, ``metrics.jsonl`` (one record per unit), ``metrics.json``, ``time_vs_length.png``
(log-log, forward and forward+backward panels), ``memory_vs_length.png``,
``compile_vs_length.png``, ``checkpoints/``; the Markdown tables of times per form and length are
printed at the end.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from benchmarks.harness import available_bytes, machine
from benchmarks.timing import matmul_gflops
from seqjax.attention import (
    causal_mask,
    chunked_attention,
    multi_head_init,
    output_projection,
    project_qkv,
    self_attention,
)
from seqjax.cells import elman, gru, lstm, min_gru
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.recurrence import rnn

NAME = "sequential_vs_parallel"
FORMS = (
    "elman", "lstm", "gru", "min_gru", "min_gru_parallel", "attention_dense", "attention_chunked",
    "elman_unrolled",
)
LABELS = {
    "elman": "Elman (scan)",
    "lstm": "LSTM (scan)",
    "gru": "GRU (scan)",
    "min_gru": "minGRU (scan)",
    "min_gru_parallel": "minGRU (associative scan)",
    "attention_dense": "self-attention, dense",
    "attention_chunked": "self-attention, chunked",
    "elman_unrolled": "Elman (Python loop, unrolled)",
}
MODES = ("forward", "forward_backward")
MODE_LABELS = {"forward": "forward", "forward_backward": "forward + backward"}
RECURRENT = ("elman", "lstm", "gru", "min_gru", "min_gru_parallel", "elman_unrolled")
# Keys whose values are wall-clock measurements (see "Resuming" in the module docstring).
WALL_CLOCK_KEYS = frozenset({
    "results", "timings", "lower_s", "compile_s", "warmup_s", "samples_s", "calibration_gflops",
})
MEMORY_FIELDS = ("argument", "output", "temp", "alias", "generated_code")


@dataclasses.dataclass(frozen=True)
class Config:
    """Time, memory and compile time of scan RNNs, associative scan and attention against length."""

    # --quick: two short lengths, two rounds (seconds, for the tests).
    QUICK: ClassVar[dict[str, Any]] = {
        # Two short lengths: every (form, pass, length) is a program to compile, and the
        # unrolled loop's grows with T (it stops at 8, so T = 16 shows the cap).
        "lengths": (8, 16),
        "reps": 2,
        "unrolled_max_length": 8,
        "fit_min_length": 8,
        "attention_chunk": 8,            # two chunks at T = 16
        "calibration_size": 256,
    }

    lengths: tuple[int, ...] = option(
        (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096), "sequence lengths T, increasing"
    )
    forms: tuple[str, ...] = option(FORMS, "forms to measure, in the order of each round: " + ", ".join(FORMS))
    batch: int = option(8, "batch size b")
    width: int = option(64, "features d: input and hidden size of every layer (equal width)")
    heads: int = option(1, "attention heads (head size width / heads)")
    causal: bool = option(True, "causal self-attention (the recurrent forms are causal)")
    attention_chunk: int | None = option(
        None, "query and key block of the chunked attention (none: the library's default, 512 "
        "causal / 1024 otherwise)"
    )
    reps: int = option(7, "timed calls per form, pass and length (one per round); the median is reported")
    unrolled_max_length: int = option(128, "longest T for the unrolled Python-loop Elman form")
    fit_min_length: int = option(256, "log-log slopes are fitted over the lengths T >= this")
    calibration_size: int = option(1024, "n of the n x n float32 matmul calibration run before each length")
    memory_fraction: float = option(
        0.5, "skip a form at a length where its compiled program needs more than this fraction "
        "of the memory available"
    )
    seed: int = option(0, "seed of the inputs and parameters")
    checkpoint_every: int = option(1, "save a checkpoint (for --resume) every this many measurement units")

    def __post_init__(self):
        if not self.lengths or any(not isinstance(t, int) or t < 1 for t in self.lengths):
            raise ValueError(f"lengths must be positive integers; got {self.lengths}.")
        if list(self.lengths) != sorted(set(self.lengths)):
            raise ValueError(f"lengths must be strictly increasing; got {self.lengths}.")
        unknown = [f for f in self.forms if f not in FORMS]
        if not self.forms or unknown or len(set(self.forms)) != len(self.forms):
            raise ValueError(f"forms must be distinct names from {FORMS}; got {self.forms}.")
        for name in ("batch", "width", "heads", "reps", "unrolled_max_length", "fit_min_length",
                     "calibration_size", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if self.width % self.heads:
            raise ValueError(f"heads must divide width; got heads={self.heads}, width={self.width}.")
        if self.attention_chunk is not None and self.attention_chunk < 1:
            raise ValueError(f"attention_chunk must be a positive integer or none; got {self.attention_chunk}.")
        if not 0.0 < self.memory_fraction <= 1.0:
            raise ValueError(f"memory_fraction must lie in (0, 1]; got {self.memory_fraction}.")


# --- the forms --------------------------------------------------------------------------------


def unrolled_rnn(cell, params: dict, xs: jax.Array) -> jax.Array:
    """``cell`` over ``xs`` ``[b, t, d]`` as a Python loop: ``t`` vmapped steps, traced one by one.

    The same function as :func:`seqjax.recurrence.rnn` without padding (tested), but the traced
    program holds ``t`` copies of the step, so tracing and compile time grow with ``t``.
    """
    step = jax.vmap(cell.step, in_axes=(None, 0, 0))
    zero = cell.zero_carry(params, xs.dtype)
    carry = jax.tree.map(lambda z: jnp.broadcast_to(z, (xs.shape[0], *z.shape)), zero)
    ys = []
    for t in range(xs.shape[1]):
        carry, y = step(params, carry, xs[:, t])
        ys.append(y)
    return jnp.stack(ys, axis=1)


def make_form(form: str, config: Config) -> tuple[Callable, Callable]:
    """``(init(key) -> params, apply(params, xs [b, t, d]) -> ys [b, t, d])`` of ``form``."""
    d = config.width
    cells = {"elman": lambda: elman("tanh"), "lstm": lstm, "gru": gru, "min_gru": min_gru,
             "min_gru_parallel": min_gru, "elman_unrolled": lambda: elman("tanh")}
    if form in cells:
        cell = cells[form]()
        init = lambda key: cell.init(key, d, d)
        if form == "elman_unrolled":
            return init, lambda params, xs: unrolled_rnn(cell, params, xs)
        parallel = form == "min_gru_parallel"
        return init, lambda params, xs: rnn(cell, params, xs, parallel=parallel)
    if form not in ("attention_dense", "attention_chunked"):
        raise ValueError(f"form must be one of {FORMS}; got {form!r}.")
    h = config.heads
    init = lambda key: multi_head_init(key, d, h)
    if form == "attention_dense":

        def apply(params, xs):
            mask = causal_mask(xs.shape[1]) if config.causal else None
            return self_attention(params, xs, num_heads=h, mask=mask)

        return init, apply

    def apply(params, xs):
        q, k, v = project_qkv(params, xs, xs, xs, num_heads=h)
        heads = chunked_attention(q, k, v, causal=config.causal, q_chunk=config.attention_chunk,
                                  k_chunk=config.attention_chunk)
        return output_projection(params, heads)

    return init, apply


def programs(apply: Callable) -> dict[str, Callable]:
    """The two timed functions of a form: its forward pass and its forward+backward pass."""

    def forward_backward(params, xs):
        return jax.grad(lambda p, x: jnp.mean(jnp.square(apply(p, x))), argnums=(0, 1))(params, xs)

    return {"forward": apply, "forward_backward": forward_backward}


def form_lengths(form: str, config: Config) -> tuple[int, ...]:
    """The lengths at which ``form`` is measured (the unrolled form stops at its cap)."""
    if form == "elman_unrolled":
        return tuple(t for t in config.lengths if t <= config.unrolled_max_length)
    return config.lengths


def inputs(config: Config, length: int) -> jax.Array:
    """``xs`` ``[b, length, d]``, standard normal, a function of the seed and the length."""
    rng = np.random.default_rng([config.seed, length])
    return jnp.asarray(rng.standard_normal((config.batch, length, config.width), dtype=np.float32))


def parameter_count(params: Any) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))


# --- measuring ---------------------------------------------------------------------------------


def memory_of(compiled) -> dict[str, int | None]:
    """XLA's memory analysis of a compiled program, in bytes; ``total = argument + output + temp -
    alias``. Every field is ``None`` if the backend gives no analysis."""
    stats = compiled.memory_analysis()
    out = {name: None for name in (*MEMORY_FIELDS, "total")}
    if stats is None:
        return out
    for name in MEMORY_FIELDS:
        value = getattr(stats, f"{name}_size_in_bytes", None)
        out[name] = None if value is None else int(value)
    parts = [out[k] for k in ("argument", "output", "temp")]
    if all(p is not None for p in parts):
        out["total"] = sum(parts) - (out["alias"] or 0)
    return out


def compile_program(fn: Callable, *args) -> tuple[Any, float, float]:
    """``(compiled, lower_s, compile_s)``: ``jax.jit(fn)`` traced and lowered, then compiled."""
    start = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    return compiled, lowered_at - start, time.perf_counter() - lowered_at


def timed_call(compiled, *args) -> float:
    """Seconds of one call of ``compiled``, until its result is computed."""
    start = time.perf_counter()
    result = jax.block_until_ready(compiled(*args))
    elapsed = time.perf_counter() - start
    del result
    return elapsed


def free_bytes() -> int | None:
    """Memory available on the default device now: free device memory where the backend reports
    it (GPU, TPU), otherwise the host's ``MemAvailable``."""
    device = jax.devices()[0]
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # not every backend implements it
        pass
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return available_bytes() or None


def device_info() -> dict[str, Any]:
    """The default device: platform, kind, count, and on a CPU the CPU model and core count."""
    device = jax.devices()[0]
    info = {"platform": device.platform, "device_kind": device.device_kind,
            "device_count": jax.device_count()}
    if device.platform == "cpu":
        host = machine()
        info |= {"cpu": host["cpu"], "cores": host["usable_cores"] or host["cores"]}
    return info


def device_name(info: dict[str, Any]) -> str:
    """One line naming the device, for titles and tables."""
    if info["platform"] == "cpu":
        return f"CPU: {info.get('cpu') or 'unknown model'}, {info.get('cores')} cores"
    return f"{info['platform'].upper()}: {info['device_kind']}"


# --- statistics ----------------------------------------------------------------------------------


def fit_slope(lengths: Sequence[float], values: Sequence[float | None], min_length: float) -> float | None:
    """Least-squares slope ``p`` of ``log(value) = p log(length) + c`` over the points with
    ``length >= min_length`` and a positive value; ``None`` with fewer than two such points.

    >>> fit_slope([10, 100, 1000], [3.0, 300.0, 30000.0], 1)
    2.0
    """
    points = [(math.log(t), math.log(v)) for t, v in zip(lengths, values)
              if t >= min_length and v is not None and v > 0]
    if len({x for x, _ in points}) < 2:
        return None
    xs, ys = np.array(points).T
    x0, y0 = xs.mean(), ys.mean()
    return round(float(np.sum((xs - x0) * (ys - y0)) / np.sum((xs - x0) ** 2)), 12)


def comparable(value: Any, *, wall_clock: bool = False) -> Any:
    """``value`` (a summary or a ``metrics.jsonl`` record) with every number under a key of
    :data:`WALL_CLOCK_KEYS` replaced by ``"number"``: what a resumed run must reproduce exactly
    (the structure, the set of measurements, the statuses, the memory analysis).

    >>> comparable({"memory": 3, "results": {"time_s": [0.1, None]}})
    {'memory': 3, 'results': {'time_s': ['number', None]}}
    """
    if isinstance(value, dict):
        return {k: comparable(v, wall_clock=wall_clock or k in WALL_CLOCK_KEYS) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [comparable(v, wall_clock=wall_clock) for v in value]
    if wall_clock and isinstance(value, (int, float)) and not isinstance(value, bool):
        return "number"
    return value


# --- the run ---------------------------------------------------------------------------------------


def plan(config: Config) -> list[tuple[int, list[str]]]:
    """Per length, the forms measured there (in round order)."""
    return [(t, [f for f in config.forms if t in form_lengths(f, config)]) for t in config.lengths]


def total_units(config: Config) -> int:
    """Measurement units of the whole run: a preparation per (length, form), ``reps`` rounds per length."""
    return sum(len(forms) + config.reps for _, forms in plan(config))


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """Measure every form at every length (from the run's checkpoint, if it has one), write the
    records and figures into ``run_dir``; return the summary."""
    key = jax.random.key(config.seed)
    layers = {form: make_form(form, config) for form in config.forms}
    # Initialised once, eagerly jitted (one small program per form), from the seed alone.
    params = {form: jax.jit(init)(jax.random.fold_in(key, FORMS.index(form)))
              for form, (init, _) in layers.items()}
    fns = {form: programs(apply) for form, (_, apply) in layers.items()}
    units_total = total_units(config)

    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        # done[str(T)]: {"calibration_gflops", "prepared": {form: record}, "rounds": [{form: {mode: s}}]}
        done = resumed.progress if resumed else {}
        units = resumed.step if resumed else 0
        bar = progress(desc="sequential vs parallel", total=units_total, initial=units)
        stopped: dict[str, str] = {}  # form -> why it is not run at longer lengths
        for length, forms in plan(config):
            entry = done.get(str(length))
            if entry is not None and len(entry["rounds"]) == config.reps:
                for form, rec in entry["prepared"].items():
                    if rec["status"] != "ok":
                        stopped.setdefault(form, rec["status"])
                continue
            xs = inputs(config, length)
            if entry is None:
                entry = {"calibration_gflops": matmul_gflops("jax", n=config.calibration_size),
                         "prepared": {}, "rounds": []}
                done[str(length)] = entry
            compiled: dict[str, dict[str, Any]] = {}
            for form in forms:
                if form in entry["prepared"]:  # measured before the kill: compile again, unrecorded
                    if entry["prepared"][form]["status"] == "ok":
                        compiled[form] = {m: compile_program(fn, params[form], xs)[0] for m, fn in fns[form].items()}
                        for m in MODES:
                            timed_call(compiled[form][m], params[form], xs)
                    else:
                        stopped.setdefault(form, entry["prepared"][form]["status"])
                    continue
                record, compiled_form = prepare(form, fns[form], params[form], xs, stopped, config)
                entry["prepared"][form] = record
                if compiled_form is not None:
                    compiled[form] = compiled_form
                elif form not in stopped:
                    stopped[form] = record["status"]
                run_dir.log(kind="prepare", length=length, form=form, **record)
                units += 1
                bar.update(1)
                ckpt.save(units, _state(units), done, force=units == units_total)
            while len(entry["rounds"]) < config.reps:
                samples = {form: {m: timed_call(c[m], params[form], xs) for m in MODES}
                           for form, c in compiled.items()}
                entry["rounds"].append(samples)
                run_dir.log(kind="round", length=length, round=len(entry["rounds"]), samples_s=samples)
                units += 1
                bar.update(1)
                ckpt.save(units, _state(units), done, force=units == units_total)
            del compiled
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions

    summary = summarise(done, params, config)
    summary["environment"] = environment()
    summary["timings"] = {"runtime_s": round(runtime_s, 1), "sessions": sessions}
    title = device_name(summary["device"])
    run_dir.save_figure(plot_times(summary, config, title), "time_vs_length")
    run_dir.save_figure(plot_memory(summary, config, title), "memory_vs_length")
    run_dir.save_figure(plot_compile(summary, config, title), "compile_vs_length")
    return summary


def _state(units: int) -> dict:
    """The device state of a checkpoint: none is needed (the finished measurements, saved as the
    progress, are the whole state); a counter keeps the pytree non-empty."""
    return {"units": jnp.asarray(units, jnp.int32)}


def prepare(form: str, fns: dict, params: Any, xs: jax.Array, stopped: dict, config: Config):
    """Compile both passes of ``form``, read their memory, warm each up once.

    Returns ``(record, compiled)``; ``compiled`` is ``None`` when the form is not run at this
    length (stopped at a shorter one, too large for the memory available, or failed)."""
    record: dict[str, Any] = {"status": "ok", "memory": {}, "lower_s": {}, "compile_s": {}, "warmup_s": {}}
    if form in stopped:
        record["status"] = f"not run ({stopped[form]} at a shorter length)"
        return record, None
    compiled = {}
    for mode, fn in fns.items():
        compiled[mode], record["lower_s"][mode], record["compile_s"][mode] = compile_program(fn, params, xs)
        record["memory"][mode] = memory_of(compiled[mode])
    need = max((m["total"] or 0) for m in record["memory"].values())
    free = free_bytes()
    if free is not None and need > config.memory_fraction * free:
        record["status"] = f"skipped (needs {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB available)"
        return record, None
    try:
        for mode in MODES:
            record["warmup_s"][mode] = timed_call(compiled[mode], params, xs)
    except Exception as err:  # out of memory at run time, most likely: report it, go on
        record["status"] = f"failed ({type(err).__name__})"
        return record, None
    return record, compiled


def summarise(done: dict, params: dict, config: Config) -> dict[str, Any]:
    """The numbers the experiment reports (see the module docstring)."""
    lengths = list(config.lengths)
    status, memory = {}, {}
    time_s, samples_s, compile_s, lower_s, warmup_s = {}, {}, {}, {}, {}
    for form in config.forms:
        status[form], memory[form] = {}, {m: {} for m in MODES}
        for table in (time_s, samples_s, compile_s, lower_s, warmup_s):
            table[form] = {m: {} for m in MODES}
        for length in form_lengths(form, config):
            entry = done[str(length)]
            rec = entry["prepared"][form]
            status[form][str(length)] = rec["status"]
            for mode in MODES:
                if mode in rec["memory"]:
                    memory[form][mode][str(length)] = rec["memory"][mode]
                    compile_s[form][mode][str(length)] = rec["compile_s"][mode]
                    lower_s[form][mode][str(length)] = rec["lower_s"][mode]
                if rec["status"] == "ok":
                    samples = [r[form][mode] for r in entry["rounds"]]
                    samples_s[form][mode][str(length)] = samples
                    time_s[form][mode][str(length)] = float(np.median(samples))
                    warmup_s[form][mode][str(length)] = rec["warmup_s"][mode]

    def slopes(table, value=lambda v: v):
        return {form: {mode: fit_slope([int(t) for t in by_t], [value(v) for v in by_t.values()],
                                       config.fit_min_length)
                       for mode, by_t in by_mode.items()}
                for form, by_mode in table.items()}

    def ratio(a, b):
        return {mode: {t: time_s[a][mode][t] / time_s[b][mode][t] for t in time_s[a][mode]
                       if t in time_s[b][mode]} for mode in MODES} if a in time_s and b in time_s else None

    ratios = {}
    for name, (a, b) in {"elman_over_attention_dense": ("elman", "attention_dense"),
                         "lstm_over_attention_dense": ("lstm", "attention_dense"),
                         "min_gru_over_min_gru_parallel": ("min_gru", "min_gru_parallel"),
                         "attention_dense_over_chunked": ("attention_dense", "attention_chunked")}.items():
        value = ratio(a, b)
        if value is not None:
            ratios[name] = value
    fit_lengths = [t for t in lengths if t >= config.fit_min_length]
    return {
        "device": device_info(),
        "setup": {
            "batch": config.batch, "width": config.width, "heads": config.heads,
            "causal": config.causal, "dtype": "float32", "reps": config.reps,
            "attention_chunk": config.attention_chunk, "lengths": lengths,
            "fit_min_length": config.fit_min_length, "fit_lengths": fit_lengths,
            "calibration": f"{config.calibration_size} x {config.calibration_size} float32 matmul, "
                           "best of 5, before each length",
            "compilation_cache": bool(getattr(jax.config, "jax_compilation_cache_dir", None)),
            "forms": {form: {"label": LABELS[form], "parameters": parameter_count(params[form]),
                             "lengths": list(form_lengths(form, config))} for form in config.forms},
        },
        "status": status,
        "memory_bytes": memory,
        "memory_slopes": slopes(memory, lambda m: m["total"]),
        "results": {
            "time_s": time_s,
            "slopes": slopes(time_s),
            "samples_s": samples_s,
            "warmup_s": warmup_s,
            "lower_s": lower_s,
            "compile_s": compile_s,
            "compile_slopes": {form: {mode: fit_slope(
                [int(t) for t in by_t], [by_t[t] + lower_s[form][mode][t] for t in by_t], min(lengths))
                for mode, by_t in by_mode.items()} for form, by_mode in compile_s.items()},
            "ratios": ratios,
            "calibration_gflops": {str(t): done[str(t)]["calibration_gflops"] for t in lengths},
        },
    }


# --- figures and tables ------------------------------------------------------------------------------


def _style(form: str) -> dict:
    colors = {"elman": "C0", "lstm": "C1", "gru": "C2", "min_gru": "C4", "min_gru_parallel": "C4",
              "attention_dense": "C3", "attention_chunked": "C3", "elman_unrolled": "C0"}
    ls = ":" if form == "elman_unrolled" else "--" if form in ("min_gru_parallel", "attention_chunked") else "-"
    return {"color": colors[form], "ls": ls, "marker": "o", "ms": 3, "lw": 1.5}


def _panels(summary: dict, config: Config, title: str, ylabel: str, series: Callable) -> Figure:
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, mode in zip(axes, MODES):
        for form in config.forms:
            points = series(form, mode)
            if points:
                ts, vs = zip(*points)
                ax.loglog(ts, vs, label=LABELS[form], **_style(form))
        ax.set_title(MODE_LABELS[mode])
        ax.set_xlabel("sequence length T")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[1].legend(fontsize=8, loc="upper left")
    setup = summary["setup"]
    fig.suptitle(f"{title}\n{title_setup(setup)}", fontsize=10)
    return fig


def title_setup(setup: dict) -> str:
    return (f"b = {setup['batch']}, d = {setup['width']}, float32, "
            f"{'causal ' if setup['causal'] else ''}attention with {setup['heads']} head(s)")


def plot_times(summary: dict, config: Config, device: str) -> Figure:
    times = summary["results"]["time_s"]
    slopes = summary["results"]["slopes"]

    def series(form, mode):
        return [(int(t), v) for t, v in times[form][mode].items()]

    fig = _panels(summary, config, f"Measured wall time (median of {config.reps} calls): {device}",
                  "seconds per call", series)
    for ax, mode in zip(fig.axes, MODES):
        handles, labels = ax.get_legend_handles_labels()
        if mode == "forward_backward" and handles:
            labels = [f"{label} (slope {_fmt_slope(slopes[f][mode])})"
                      for f, label in zip([f for f in config.forms if times[f][mode]], labels)]
            ax.legend(handles, labels, fontsize=7, loc="upper left")
    return fig


def plot_memory(summary: dict, config: Config, device: str) -> Figure:
    memory = summary["memory_bytes"]

    def series(form, mode):
        return [(int(t), m["total"] / 2**20) for t, m in memory[form][mode].items() if m["total"]]

    return _panels(summary, config, f"Compiled memory (XLA memory analysis: argument + output + temp): "
                   f"{device}", "MiB", series)


def plot_compile(summary: dict, config: Config, device: str) -> Figure:
    compile_s, lower_s = summary["results"]["compile_s"], summary["results"]["lower_s"]

    def series(form, mode):
        return [(int(t), s + lower_s[form][mode][t]) for t, s in compile_s[form][mode].items()]

    return _panels(summary, config, f"Trace + lower + compile time: {device}", "seconds", series)


def _fmt_slope(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def markdown_table(summary: dict, mode: str) -> str:
    """A Markdown table of median milliseconds per form (rows) and length (columns) for ``mode``,
    with the fitted slope; ``-`` where a form was not run."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    lengths = summary["setup"]["lengths"]
    times, slopes = summary["results"]["time_s"], summary["results"]["slopes"]
    fit = summary["setup"]["fit_min_length"]
    header = ["form"] + [f"T={t}" for t in lengths] + [f"slope (T>={fit})"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for form, by_mode in times.items():
        cells = [LABELS[form]] + [_fmt_time(by_mode[mode].get(str(t))) for t in lengths]
        lines.append("| " + " | ".join(cells + [_fmt_slope(slopes[form][mode])]) + " |")
    return "\n".join(lines)


def format_table(summary: dict) -> str:
    """What the run prints: the device, then one Markdown table per pass, milliseconds per call."""
    parts = [f"Device: {device_name(summary['device'])}; {title_setup(summary['setup'])}"]
    for mode in MODES:
        parts += ["", f"{MODE_LABELS[mode]}, median ms per call:", "", markdown_table(summary, mode)]
    slopes = summary["memory_slopes"]
    parts += ["", "memory slope (log-log, T>=%d), forward / forward+backward: " % summary["setup"]["fit_min_length"]
              + "; ".join(f"{f} {_fmt_slope(s['forward'])} / {_fmt_slope(s['forward_backward'])}"
                          for f, s in slopes.items())]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, run the experiment, print the tables; returns the summary (with ``run_dir``)."""
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
