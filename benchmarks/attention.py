"""Forward+backward time and peak memory of attention: chunked (memory-efficient) vs dense forms.

    python -m benchmarks.attention                      # N = 1024, 4096, 16384; B2 H8 d64
    python -m benchmarks.attention --causal             # causal attention instead
    python -m benchmarks.attention --lengths 1024 4096 --repeats 5
    python -m benchmarks.attention --quick              # tiny sizes, a smoke test (~1 min)

What is measured, per form and sequence length N: one call computing the output and the
gradients of ``sum(out * cotangent)`` with respect to q, k and v (``[b, N, h, d]``, float32).

Contenders:
  chunked   ``seqjax.attention.chunked.chunked_attention`` (online softmax in blocks, custom VJP
            that recomputes the blocks: memory linear in N), under ``jax.jit``.
  einsum    ``seqjax.attention.dot_product_attention``: einsum, float32 masked softmax, einsum
            (the plain form: [b, h, N, N] logits and weights), under ``jax.jit``.
  jax_nn    ``jax.nn.dot_product_attention(implementation="xla")``, under ``jax.jit``.
  torch     ``torch.nn.functional.scaled_dot_product_attention`` (its CPU flash kernel), with
            ``torch.set_num_threads`` (default 2) and ``OMP_WAIT_POLICY=PASSIVE`` unless set.

Two phases, each in fresh subprocesses (``python -m benchmarks.attention --worker SPEC``):

1. **time**: for each N, one process builds every contender that fits in memory, compiles/warms
   it up, then times them in turns (:func:`benchmarks.timing.time_alternating_samples`), so the
   ratios (``paired_ratio`` to torch) are taken under the same load. A matmul calibration line
   says how fast the machine was.
2. **memory**: for each (form, N), a process of its own runs the form (compile + ``--mem-calls``
   calls) and reports its peak resident memory (``ru_maxrss``) and the peak minus the resident
   memory just before the first call (imports, inputs: the part attention itself added,
   compilation included). Its last call's time is reported too (the only time for lengths
   where the time phase is skipped, ``--time-max-n``).

A form whose dense score matrices would not fit in the machine's available memory is reported as
skipped (the estimate is printed); a process that is killed (out of memory) or runs past
``--time-limit`` seconds is reported as such, and the benchmark goes on. Results go to
``runs/benchmarks/attention-<timestamp>.{json,md,png}`` (or ``--out``).

The machines this runs on are shared and noisy (see ../shared/performance-notes.md): absolute
times drift up to 2x (more under load from other jobs); compare ratios from one time phase.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch (and its OpenMP) is loaded

FORMS = ("chunked", "einsum", "jax_nn", "torch")
DENSE = ("einsum", "jax_nn")
# Measured peak of the dense JAX forms, forward + backward, in units of one float32 [b, h, N, N]
# matrix (einsum: 6.0 GiB at b2 h8 N4096, 3x; jax_nn a little more): used to skip what cannot fit.
DENSE_FACTOR = 4.0


@dataclasses.dataclass(frozen=True)
class Shape:
    batch: int = 2
    heads: int = 8
    head_dim: int = 64


# --- the worker: runs in its own process ------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _build(form: str, n: int, shape: Shape, causal: bool, args: dict):
    """A zero-argument callable computing (out, dq, dk, dv) for ``form``."""
    import numpy as np

    rng = np.random.default_rng(0)
    dims = (shape.batch, n, shape.heads, shape.head_dim)
    q, k, v, ct = (rng.standard_normal(dims, dtype=np.float32) for _ in range(4))
    if form == "torch":
        import torch

        torch.set_num_threads(args["torch_threads"])
        to = lambda x, grad: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1, 3))).requires_grad_(grad)
        tq, tk, tv = (to(x, True) for x in (q, k, v))
        tct = to(ct, False)

        def step():
            for x in (tq, tk, tv):
                x.grad = None
            out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
            out.backward(tct)
            return out, tq.grad, tk.grad, tv.grad

        return step

    import jax
    import jax.numpy as jnp

    if form == "chunked":
        from seqjax.attention.chunked import chunked_attention

        attention = lambda q, k, v: chunked_attention(
            q, k, v, causal=causal, q_chunk=args["q_chunk"], k_chunk=args["k_chunk"]
        )
    elif form == "einsum":
        from seqjax.attention import causal_mask, dot_product_attention

        mask = causal_mask(n) if causal else None
        attention = lambda q, k, v: dot_product_attention(q, k, v, mask=mask)
    elif form == "jax_nn":
        attention = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="xla")
    else:
        raise ValueError(f"unknown form {form!r}; expected one of {FORMS}")

    @jax.jit
    def step(q, k, v, ct):
        out, pullback = jax.vjp(attention, q, k, v)
        return (out, *pullback(ct))

    q, k, v, ct = (jnp.asarray(x) for x in (q, k, v, ct))
    return lambda: step(q, k, v, ct)


def _finite(result) -> bool:
    import numpy as np

    return all(bool(np.isfinite(np.asarray(x.detach() if hasattr(x, "detach") else x)).all()) for x in result)


def worker(spec: dict) -> dict:
    """Run one phase for one length: ``spec = {forms, n, shape, causal, mode, repeats, ...}``."""
    from benchmarks import timing

    shape = Shape(**spec["shape"])
    n, causal, forms = spec["n"], spec["causal"], spec["forms"]
    report = {"n": n, "forms": forms, "mode": spec["mode"], "pid": os.getpid()}
    fns = {form: _build(form, n, shape, causal, spec) for form in forms}
    report["rss_before_bytes"] = _rss_bytes()
    if spec["mode"] == "memory":
        (form,) = forms
        times, result = [], None
        for _ in range(spec["calls"]):
            del result
            t0 = time.perf_counter()
            result = timing.block(fns[form]())
            times.append(time.perf_counter() - t0)
        report["finite"] = {form: _finite(result)} if spec["check_finite"] else {}
        report["first_call_s"] = times[0]
        report["last_call_s"] = times[-1]
        report["peak_rss_bytes"] = _peak_rss_bytes()
        return report
    if spec["calibrate"]:
        report["calibration"] = timing.matmul_calibration(torch_too="torch" in forms)
    start = {}
    for form, fn in fns.items():  # compile + first run, outside the timed rounds
        t0 = time.perf_counter()
        result = timing.block(fn())
        start[form] = time.perf_counter() - t0
        if spec["check_finite"]:
            report.setdefault("finite", {})[form] = _finite(result)
        del result
    report["first_call_s"] = start
    samples = timing.time_alternating_samples(fns, repeats=spec["repeats"], warmup=0)
    report["samples_s"] = samples
    report["stats"] = {f: timing.summarize(s).as_dict() for f, s in samples.items()}
    if "torch" in samples:
        report["ratio_to_torch"] = {f: timing.paired_ratio(s, samples["torch"]) for f, s in samples.items()}
    return report


# --- the driver ---------------------------------------------------------------------------------


def _available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _dense_need_bytes(n: int, shape: Shape) -> float:
    return DENSE_FACTOR * 4.0 * shape.batch * shape.heads * n * n


def _launch(spec: dict, time_limit: float) -> dict:
    """Run a worker process; a crash, a kill or a timeout becomes a status, never an exception."""
    cmd = [sys.executable, "-m", "benchmarks.attention", "--worker", json.dumps(spec)]
    root = pathlib.Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=time_limit, cwd=root, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout (> {time_limit:.0f} s)"}
    wall = time.perf_counter() - t0
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return {"status": "ok", "wall_s": wall, **json.loads(line[len("RESULT "):])}
    tail = (proc.stderr or "").strip().splitlines()[-3:]
    if proc.returncode in (-9, 137) or any("RESOURCE_EXHAUSTED" in t or "MemoryError" in t for t in tail):
        return {"status": "out of memory", "detail": tail}
    return {"status": f"failed (exit {proc.returncode})", "detail": tail}


def run(
    lengths=(1024, 4096, 16384),
    *,
    forms=FORMS,
    shape: Shape = Shape(),
    causal: bool = False,
    repeats: int = 3,
    time_max_n: int = 4096,
    mem_calls: int = 2,
    time_limit: float = 1200.0,
    torch_threads: int = 2,
    q_chunk: int | None = None,
    k_chunk: int | None = None,
    calibrate: bool = True,
    verbose: bool = True,
) -> dict:
    from seqjax.attention import chunked as chunked_module

    say = print if verbose else (lambda *a, **k: None)
    defaults = chunked_module.DEFAULT_CAUSAL_CHUNKS if causal else chunked_module.DEFAULT_CHUNKS
    common = {
        "shape": dataclasses.asdict(shape),
        "causal": causal,
        "torch_threads": torch_threads,
        "q_chunk": q_chunk or defaults[0],
        "k_chunk": k_chunk or defaults[1],
        "check_finite": True,
    }
    import jax

    report = {
        "benchmark": "attention",
        "what": "forward+backward: out and d(sum(out * ct))/d(q, k, v), float32, "
        + ("causal" if causal else "no mask"),
        "when": datetime.datetime.now().isoformat(timespec="seconds"),
        "shape": common["shape"],
        "chunks": {"q_chunk": common["q_chunk"], "k_chunk": common["k_chunk"]},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "jax": jax.__version__,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "torch_threads": torch_threads,
            "mem_available_gib": _available_bytes() / 2**30,
        },
        "repeats": repeats,
        "lengths": [],
    }
    for n in lengths:
        entry = {"n": n, "forms": {}}
        fits = {}
        for form in forms:
            need = _dense_need_bytes(n, shape) if form in DENSE else 0.0
            avail = _available_bytes()
            fits[form] = need < 0.8 * avail
            if not fits[form]:
                entry["forms"][form] = {
                    "status": f"skipped (needs ~{need / 2**30:.0f} GiB, {avail / 2**30:.0f} GiB available)"
                }
        runnable = [f for f in forms if fits[f]]
        if n <= time_max_n and len(runnable) > 0:
            say(f"N={n}: timing {', '.join(runnable)} in turns ({repeats} rounds) ...", flush=True)
            res = _launch({**common, "mode": "time", "n": n, "forms": runnable, "repeats": repeats,
                           "calibrate": calibrate}, time_limit * len(runnable))
            entry["time_phase"] = res
            if res["status"] != "ok":
                say(f"  time phase: {res['status']}")
        for form in runnable:
            say(f"N={n}: memory of {form} ...", flush=True)
            res = _launch({**common, "mode": "memory", "n": n, "forms": [form], "calls": mem_calls}, time_limit)
            entry["forms"][form] = _summarize_form(form, res, entry.get("time_phase"))
            say("  " + _describe(entry["forms"][form]))
        report["lengths"].append(entry)
    return report


def _summarize_form(form: str, mem: dict, timed: dict | None) -> dict:
    out = {"status": mem["status"]}
    if mem["status"] == "ok":
        out["peak_rss_mib"] = mem["peak_rss_bytes"] / 2**20
        out["added_mib"] = (mem["peak_rss_bytes"] - mem["rss_before_bytes"]) / 2**20
        out["single_call_s"] = mem["last_call_s"]
        out["finite"] = mem.get("finite", {}).get(form)
    else:
        out["detail"] = mem.get("detail")
    if timed and timed.get("status") == "ok" and form in timed.get("stats", {}):
        out["time"] = timed["stats"][form]
        if "ratio_to_torch" in timed:
            out["ratio_to_torch"] = timed["ratio_to_torch"][form]
    return out


def _describe(r: dict) -> str:
    if r["status"] != "ok":
        return r["status"]
    t = r.get("time", {}).get("median", r["single_call_s"])
    s = f"time {_fmt(t)}, peak RSS {r['peak_rss_mib']:.0f} MiB (+{r['added_mib']:.0f} MiB)"
    if "ratio_to_torch" in r:
        s += f", {r['ratio_to_torch']:.2f}x torch"
    return s


def _fmt(seconds: float) -> str:
    from benchmarks import timing

    return timing.fmt_seconds(seconds)


def format_report(report: dict) -> str:
    m, sh = report["machine"], report["shape"]
    lines = [
        f"# Attention benchmark ({report['when']})",
        "",
        f"{report['what']}; b{sh['batch']} h{sh['heads']} d{sh['head_dim']}; chunked q_chunk "
        f"{report['chunks']['q_chunk']}, k_chunk {report['chunks']['k_chunk']}.",
        f"{m['cpus']} CPUs, jax {m['jax']}, OMP_WAIT_POLICY={m['omp_wait_policy']}, torch threads "
        f"{m['torch_threads']}, {report['repeats']} alternating rounds; "
        f"{m['mem_available_gib']:.0f} GiB available at the start.",
        "",
        "Time: median (min-max) of the alternating rounds; `x torch`: median of per-round ratios. "
        "Where no rounds ran (large N) the time is one call after compilation (marked *). "
        "Peak: the process's peak RSS; `+`: above the RSS before the first call.",
        "",
        "| N | form | time | x torch | peak RSS | + attention |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for entry in report["lengths"]:
        cal = entry.get("time_phase", {}).get("calibration")
        for form, r in entry["forms"].items():
            if r["status"] != "ok":
                lines.append(f"| {entry['n']} | {form} | {r['status']} | | | |")
                continue
            if "time" in r:
                t = r["time"]
                tt = f"{_fmt(t['median'])} ({_fmt(t['min'])}-{_fmt(t['max'])})"
            else:
                tt = f"{_fmt(r['single_call_s'])}*"
            ratio = f"{r['ratio_to_torch']:.2f}" if "ratio_to_torch" in r else ""
            lines.append(
                f"| {entry['n']} | {form} | {tt} | {ratio} | {r['peak_rss_mib']:.0f} MiB "
                f"| {r['added_mib']:.0f} MiB |"
            )
        if cal:
            lines.append(
                f"| {entry['n']} | *calibration* | "
                + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in cal.items() if k != "n")
                + " | | | |"
            )
    return "\n".join(lines) + "\n"


def plot(report: dict, path: pathlib.Path) -> pathlib.Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return None
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    forms = sorted({f for e in report["lengths"] for f in e["forms"]}, key=FORMS.index)
    for form in forms:
        ns, ts, ms = [], [], []
        for e in report["lengths"]:
            r = e["forms"].get(form, {})
            if r.get("status") == "ok":
                ns.append(e["n"])
                ts.append(r["time"]["median"] if "time" in r else r["single_call_s"])
                ms.append(r["peak_rss_mib"])
        if ns:
            ax_t.plot(ns, ts, "o-", label=form)
            ax_m.plot(ns, ms, "o-", label=form)
    for ax, label in ((ax_t, "seconds (forward + backward)"), (ax_m, "peak RSS (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length N")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    sh = report["shape"]
    fig.suptitle(f"attention, b{sh['batch']} h{sh['heads']} d{sh['head_dim']} ({report['what'].split(', ')[-1]})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(report: dict, out: pathlib.Path, *, with_plot: bool = True) -> list[pathlib.Path]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = report["when"].replace(":", "").replace("-", "")
    base = out / f"attention-{stamp}"
    paths = [base.with_suffix(".json"), base.with_suffix(".md")]
    paths[0].write_text(json.dumps(report, indent=2))
    paths[1].write_text(format_report(report))
    if with_plot:
        p = plot(report, base.with_suffix(".png"))
        if p:
            paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attention", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 round (a smoke test)")
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="sequence lengths (default 1024 4096 16384)")
    parser.add_argument("--forms", nargs="+", choices=FORMS, default=list(FORMS))
    parser.add_argument("--causal", action="store_true", help="causal attention (default: no mask)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating timed rounds per length")
    parser.add_argument("--time-max-n", type=int, default=4096, help="longest N with a time phase (longer: memory phase only)")
    parser.add_argument("--mem-calls", type=int, default=2, help="calls in each memory process (the last is timed)")
    parser.add_argument("--time-limit", type=float, default=1200.0, help="seconds per memory process (time phase: x forms)")
    parser.add_argument("--q-chunk", type=int, default=None)
    parser.add_argument("--k-chunk", type=int, default=None)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/benchmarks"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker is not None:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return None
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1; got {args.repeats}")
    if args.quick:
        lengths, shape, repeats = (128, 256), Shape(1, 2, 16), 1
        chunks = dict(q_chunk=args.q_chunk or 64, k_chunk=args.k_chunk or 64)
    else:
        lengths = tuple(args.lengths or (1024, 4096, 16384))
        shape, repeats = Shape(args.batch, args.heads, args.head_dim), args.repeats
        chunks = dict(q_chunk=args.q_chunk, k_chunk=args.k_chunk)
    report = run(
        lengths,
        forms=tuple(args.forms),
        shape=shape,
        causal=args.causal,
        repeats=repeats,
        time_max_n=args.time_max_n,
        mem_calls=1 if args.quick else args.mem_calls,
        time_limit=args.time_limit,
        torch_threads=args.torch_threads,
        calibrate=not args.quick,
        **chunks,
    )
    print("\n" + format_report(report))
    if not args.no_write:
        paths = write(report, args.out)
        print("wrote " + ", ".join(str(p) for p in paths))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
