"""Running a benchmark: one fresh process per contender per round, alternating, and the report.

A benchmark (:class:`Benchmark`) names its contenders and a module with
``build(contender, params) -> benchmarks.timing.Step``. For every config the driver runs
``rounds`` rounds; in each round every contender gets a new Python process
(``python -m benchmarks.harness --worker SPEC``), in the same order every round
(A, B, C, A, B, C, ...), so slow drift of the machine reaches every contender alike. Each process:

1. imports only its own framework (a PyTorch process never imports jax, a JAX process never
   imports torch; checked, the report says which it loaded) and runs with the library's defaults:
   nothing is set here (no thread count, no ``OMP_WAIT_POLICY``); the environment variables that
   would change them are recorded in the report;
2. measures a float32 matmul (:func:`benchmarks.timing.matmul_gflops`), so drift is visible;
3. builds and compiles its contender (compile seconds reported apart), makes one warm-up call,
   then times several calls (:func:`benchmarks.timing.time_calls`); its round value is their median;
4. prints its measurements as one ``RESULT {json}`` line.

The driver never imports jax or torch itself (library versions are read from the installed
package metadata). A process that fails, runs out of memory or runs past ``time_limit`` becomes a
status in the report, and a contender that failed is not started again for that config.
Statistics: :mod:`benchmarks.stats`; tables: :mod:`benchmarks.tables`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import importlib.metadata
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from benchmarks import stats

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Variables that change how the libraries run; recorded (never set) so a reader sees the settings.
ENV_VARS = (
    "OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OMP_PROC_BIND", "KMP_BLOCKTIME", "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS", "XLA_FLAGS", "JAX_PLATFORMS", "JAX_ENABLE_X64", "GLIBC_TUNABLES",
    "MALLOC_ARENA_MAX", "LD_PRELOAD",
)
PACKAGES = ("jax", "jaxlib", "flax", "torch", "numpy")


@dataclasses.dataclass(frozen=True)
class Contender:
    """One implementation under test.

    Attributes:
      name: its key in the CLI, the JSON and the ratio columns (``torch``, ``flax_opt``, ...).
      label: its column header (Markdown allowed).
      framework: ``"jax"`` or ``"torch"``: the one library its process imports.
      description: what exactly runs, one line, printed under the table.
    """

    name: str
    label: str
    framework: str
    description: str


@dataclasses.dataclass(frozen=True)
class Config:
    """One problem size: ``name`` labels its table row, ``params`` go to the builder."""

    name: str
    params: dict


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """What the driver needs to know about a benchmark.

    Attributes:
      name: ``recurrent``, ``attention``: the report's title.
      module: importable module with ``build(contender_name, params) -> Step``; it must not import
        jax or torch at the top (each process imports only its contender's framework).
      what: one line saying what one timed call computes.
      subject: the contender the ratios are about (``seqjax``, ``chunked``).
      contenders: every contender, in the default order of a round.
      config_header: the header of the config column (``config``, ``N``).
      skip: optional ``(contender_name, params) -> reason or None``, asked before each process
        (for example: the dense score matrices would not fit in memory).
    """

    name: str
    module: str
    what: str
    subject: str
    contenders: tuple[Contender, ...]
    config_header: str = "config"
    skip: Callable[[str, dict], str | None] | None = None

    def contender(self, name: str) -> Contender:
        for c in self.contenders:
            if c.name == name:
                return c
        raise ValueError(f"contender must be one of {[c.name for c in self.contenders]}; got {name!r}.")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How each process times its contender (see :func:`benchmarks.timing.time_calls`)."""

    rounds: int = 3
    budget_s: float = 2.0
    min_reps: int = 2
    max_reps: int = 30
    time_limit_s: float = 1200.0


# --- the worker process -----------------------------------------------------------------------


def worker(spec: dict) -> dict:
    """Measure one contender in this (fresh) process; see the module docstring."""
    from benchmarks import timing

    framework = spec["framework"]
    out = {"pid": os.getpid(), "calibration_gflops": timing.matmul_gflops(framework)}
    module = importlib.import_module(spec["module"])
    step = module.build(spec["contender"], spec["params"])
    if step.framework != framework:
        raise RuntimeError(f"{spec['contender']} built a {step.framework} step; expected {framework}")
    out["compile_s"] = step.compile_s
    out.update(timing.time_calls(step, budget_s=spec["budget_s"], min_reps=spec["min_reps"],
                                 max_reps=spec["max_reps"]))
    out["info"] = timing.framework_info(framework)
    out["loaded"] = timing.loaded_frameworks()
    return out


def _launch(spec: dict, time_limit_s: float) -> dict:
    """Run one worker process; a crash, a kill or a timeout becomes a status, never an exception."""
    cmd = [sys.executable, "-m", "benchmarks.harness", "--worker", json.dumps(spec)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=time_limit_s, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "detail": f"more than {time_limit_s:.0f} s"}
    wall_s = time.perf_counter() - start
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result = {"status": "ok", "process_wall_s": wall_s, **json.loads(line[len("RESULT "):])}
            other = "torch" if spec["framework"] == "jax" else "jax"
            if other in result["loaded"]:
                result["status"] = f"failed ({spec['framework']} process imported {other})"
            return result
    tail = (proc.stderr or "").strip().splitlines()[-5:]
    if proc.returncode in (-9, 137) or any("RESOURCE_EXHAUSTED" in t or "MemoryError" in t for t in tail):
        return {"status": "out of memory", "detail": tail}
    return {"status": f"failed (exit {proc.returncode})", "detail": tail}


# --- the driver -------------------------------------------------------------------------------


def machine() -> dict:
    """CPU model, cores, memory, OS, Python and library versions (without importing the libraries)."""
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu or platform.processor() or None,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _meminfo("MemTotal") / 2**30,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def available_bytes() -> int:
    """Memory the kernel says is available now (``MemAvailable``)."""
    return _meminfo("MemAvailable")


def _meminfo(field: str) -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run(
    benchmark: Benchmark,
    configs: Sequence[Config],
    *,
    contenders: Sequence[str] | None = None,
    settings: Settings = Settings(),
    extra: dict | None = None,
    say: Callable[[str], None] = print,
    after_config: Callable[[dict], None] | None = None,
) -> dict:
    """Run every config for ``settings.rounds`` alternating rounds; returns the report (JSON-ready).

    ``extra`` goes into the report's settings as is (the benchmark's own options);
    ``after_config`` is called with the report so far after each config (to save it as it grows).
    """
    names = [c.name for c in benchmark.contenders] if contenders is None else list(contenders)
    for name in names:
        benchmark.contender(name)  # refuses unknown names
    if benchmark.subject not in names:
        raise ValueError(f"contenders must include the subject {benchmark.subject!r}; got {names}.")
    if settings.rounds < 1:
        raise ValueError(f"rounds must be >= 1; got {settings.rounds}.")
    start = time.perf_counter()
    report = {
        "benchmark": benchmark.name,
        "what": benchmark.what,
        "when": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            **dataclasses.asdict(settings),
            "order": names,
            "warmup_calls": 1,
            "environment": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
            "load_average_start": list(os.getloadavg()),
            **(extra or {}),
        },
        "subject": benchmark.subject,
        "config_header": benchmark.config_header,
        "contenders": {n: dataclasses.asdict(benchmark.contender(n)) for n in names},
        "configs": [],
    }
    for config in configs:
        report["configs"].append(_run_config(benchmark, config, names, settings, say))
        report["settings"]["load_average_end"] = list(os.getloadavg())
        report["wall_s"] = time.perf_counter() - start
        if after_config is not None:
            after_config(report)
    report["settings"]["load_average_end"] = list(os.getloadavg())
    report["wall_s"] = time.perf_counter() - start
    return report


def _run_config(benchmark, config: Config, names, settings: Settings, say) -> dict:
    rounds: list[dict] = []
    stopped: dict[str, str] = {}
    for r in range(settings.rounds):
        this_round = {}
        for name in names:
            if name in stopped:
                this_round[name] = {"status": f"not run ({stopped[name]})"}
                continue
            reason = benchmark.skip(name, config.params) if benchmark.skip else None
            if reason:
                this_round[name] = {"status": f"skipped ({reason})"}
                stopped[name] = "skipped"
                say(f"{config.name} {name}: skipped ({reason})")
                continue
            spec = {
                "module": benchmark.module,
                "contender": name,
                "framework": benchmark.contender(name).framework,
                "params": config.params,
                "budget_s": settings.budget_s,
                "min_reps": settings.min_reps,
                "max_reps": settings.max_reps,
            }
            result = _launch(spec, settings.time_limit_s)
            this_round[name] = result
            if result["status"] != "ok":  # it would fail again (or run out of memory or time)
                stopped[name] = result["status"]
            say(f"{config.name} round {r + 1}/{settings.rounds} {name}: " + _progress(result))
        rounds.append(this_round)
    results = {name: _aggregate([rd[name] for rd in rounds]) for name in names}
    medians = {name: [rd[name].get("median_s") if rd[name]["status"] == "ok" else None for rd in rounds]
               for name in names}
    ratios = {}
    for name in names:
        if name != benchmark.subject:
            ratio = stats.compare(medians[benchmark.subject], medians[name])
            ratios[name] = None if ratio is None else ratio.as_dict()
    return {"name": config.name, "params": config.params, "results": results, "ratios": ratios,
            "rounds": rounds}


def _progress(result: dict) -> str:
    if result["status"] != "ok":
        return result["status"]
    return (f"median {result['median_s'] * 1e3:.1f} ms of {len(result['samples_s'])} calls, "
            f"matmul {result['calibration_gflops']:.0f} GFLOP/s")


def _aggregate(per_round: list[dict]) -> dict:
    """One contender over the rounds: summaries of its per-process values, and its status."""
    ok = [r for r in per_round if r["status"] == "ok"]
    out: dict = {"rounds_ok": len(ok), "rounds": len(per_round)}
    if not ok:
        out["status"] = per_round[0]["status"]
        out["detail"] = per_round[0].get("detail")
        return out
    failed = [r["status"] for r in per_round if r["status"] != "ok"]
    out["status"] = f"partial ({failed[0]})" if failed else "ok"

    def summary(key):
        values = [r[key] for r in ok if r.get(key) is not None]
        return stats.summarize(values).as_dict() if values else None

    out["time_s"] = summary("median_s")
    for key in ("compile_s", "warmup_s", "calibration_gflops", "process_peak_mib", "added_mib",
                "added_later_mib", "process_wall_s"):
        out[key] = summary(key)
    out["reps"] = [len(r["samples_s"]) for r in ok]
    out["finite"] = all(r["finite"] for r in ok)
    if not out["finite"]:
        out["status"] = "non-finite result"
    out["info"] = ok[0]["info"]
    out["loaded"] = ok[0]["loaded"]
    return out


def write_json(report: dict, path: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


# --- the command line shared by the benchmarks --------------------------------------------------


def parser(benchmark: Benchmark, doc: str) -> argparse.ArgumentParser:
    """The options every benchmark has; a benchmark adds its own before parsing."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{benchmark.name}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Settings()
    p.add_argument("--rounds", type=int, default=None,
                   help=f"alternating rounds, one fresh process per contender each (default {d.rounds}; --quick 2)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds, 2 calls per process (a smoke test)")
    p.add_argument("--out", type=pathlib.Path, default=None, help="write the report as JSON to this file")
    p.add_argument("--contenders", nargs="+", choices=[c.name for c in benchmark.contenders], default=None,
                   help="which contenders, in round order (default: all)")
    p.add_argument("--budget", type=float, default=d.budget_s,
                   help=f"seconds of timed calls per process, about (default {d.budget_s})")
    p.add_argument("--min-reps", type=int, default=d.min_reps, help=f"fewest timed calls per process (default {d.min_reps})")
    p.add_argument("--max-reps", type=int, default=d.max_reps, help=f"most timed calls per process (default {d.max_reps})")
    p.add_argument("--time-limit", type=float, default=d.time_limit_s,
                   help=f"seconds before a process is stopped (default {d.time_limit_s:.0f})")
    return p


def settings_from(args: argparse.Namespace, p: argparse.ArgumentParser) -> Settings:
    """:class:`Settings` from the parsed common options (``--quick``: 2 rounds of 2 calls)."""
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else Settings().rounds)
    for flag, value in (("--rounds", rounds), ("--min-reps", args.min_reps), ("--max-reps", args.max_reps)):
        if value < 1:
            p.error(f"{flag} must be >= 1; got {value}")
    if args.max_reps < args.min_reps:
        p.error(f"--max-reps must be >= --min-reps; got {args.max_reps} < {args.min_reps}")
    if args.out is not None and args.out.is_dir():
        p.error(f"--out must be the path of the JSON file to write; got the directory {args.out}")
    if args.budget < 0 or args.time_limit <= 0:
        p.error(f"--budget must be >= 0 and --time-limit > 0; got {args.budget} and {args.time_limit}")
    if args.quick:
        return Settings(rounds=rounds, budget_s=0.0, min_reps=2, max_reps=2, time_limit_s=args.time_limit)
    return Settings(rounds, args.budget, args.min_reps, args.max_reps, args.time_limit)


def execute(benchmark: Benchmark, configs: Sequence[Config], args: argparse.Namespace,
            p: argparse.ArgumentParser, extra: dict | None = None) -> dict:
    """Run, print the Markdown report, write the JSON (``--out``); returns the report."""
    from benchmarks import tables

    settings = settings_from(args, p)
    save = None if args.out is None else (lambda report: write_json(report, args.out))  # as it grows
    report = run(benchmark, configs, contenders=args.contenders, settings=settings, extra=extra,
                 say=lambda line: print(line, file=sys.stderr, flush=True), after_config=save)
    print(tables.format_report(report))
    if args.out is not None:
        write_json(report, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    return report


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) != 2 or args[0] != "--worker":
        sys.exit("usage: python -m benchmarks.harness --worker SPEC_JSON (started by the benchmarks)")
    print("RESULT " + json.dumps(worker(json.loads(args[1]))), flush=True)
