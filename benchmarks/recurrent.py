"""Forward+backward time of one LSTM layer: seqjax vs Flax NNX vs PyTorch ``nn.LSTM``.

    python -m benchmarks.recurrent                 # both configs, 5 timed rounds each
    python -m benchmarks.recurrent --repeats 9
    python -m benchmarks.recurrent --quick         # tiny sizes, 2 rounds (used by the tests)

What is timed, per contender: one call that computes the gradient of the scalar loss
``mean(ys ** 2)`` with respect to the layer's parameters *and* its input ``xs`` ``[b, t, d]``
(zero initial state, no padding). JAX contenders are jitted and compiled before timing; each
timed call ends with ``block_until_ready``. Contenders are timed in turns inside one process
(see :mod:`benchmarks.timing`), so the ratios are more trustworthy than the absolute times, which
drift with the machine's load. A matmul calibration line says how fast the machine was.

Contenders:
  seqjax         ``rnn(lstm(), params, xs)`` (:mod:`seqjax.recurrence`), under ``jax.jit``; for the
                 plain LSTM this takes the fused path (:mod:`seqjax.recurrence.fused_lstm`).
  seqjax_scan    the same with ``fused=False``: the generic ``vmap`` of a ``lax.scan`` of the cell.
  flax_opt       ``nnx.RNN(nnx.OptimizedLSTMCell(d, h))``, split/merge, ``jax.jit``.
  flax_lstm      ``nnx.RNN(nnx.LSTMCell(d, h))`` (eight separate gate products), same wrapping.
  torch          ``torch.nn.LSTM(d, h, batch_first=True)`` with ``torch.set_num_threads(2)``.

PyTorch's OpenMP threads spin after each parallel region by default; on a 2-core machine that
shared with JAX's threads gives rare huge outliers, so the benchmark sets
``OMP_WAIT_POLICY=PASSIVE`` unless the variable is already set (it must be set before torch is
imported; the value in effect is printed and saved). Results go to
``runs/benchmarks/recurrent-<timestamp>.{json,md}`` (or ``--out``).

Environment, not set here: every call allocates large fresh buffers (scan residuals, gradients),
so page faults are a visible share of the time. ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (huge
pages for malloc, where the kernel's transparent huge pages are in ``madvise`` mode) cut the time
of every contender by 16-25% on the 2-core development machine, leaving the ratios about as they
were.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import sys
from typing import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch (and its OpenMP) is loaded

import jax
import jax.numpy as jnp

from benchmarks import timing

JAX_CONTENDERS = ("seqjax", "seqjax_scan", "flax_opt", "flax_lstm")
ALL_CONTENDERS = (*JAX_CONTENDERS, "torch")


@dataclasses.dataclass(frozen=True)
class Config:
    batch: int
    length: int
    inputs: int
    hidden: int

    @property
    def name(self) -> str:
        return f"B{self.batch} T{self.length} I{self.inputs} H{self.hidden}"


CONFIGS = (Config(32, 128, 64, 256), Config(64, 512, 512, 512))
QUICK_CONFIGS = (Config(2, 5, 3, 4),)


def _inputs(cfg: Config) -> jax.Array:
    return jax.random.normal(jax.random.key(1), (cfg.batch, cfg.length, cfg.inputs), jnp.float32)


def _loss(ys: jax.Array) -> jax.Array:
    return jnp.mean(jnp.square(ys))


# --- contenders: each builder returns a zero-argument callable computing (grad params, grad xs) --


def build_seqjax(cfg: Config, *, fused: bool = True) -> Callable[[], object]:
    from seqjax.cells import lstm
    from seqjax.recurrence import rnn

    cell = lstm()
    params = cell.init(jax.random.key(0), cfg.inputs, cfg.hidden)
    xs = _inputs(cfg)
    grad = jax.jit(jax.grad(lambda p, x: _loss(rnn(cell, p, x, fused=fused)), argnums=(0, 1)))
    return lambda: grad(params, xs)


def build_seqjax_scan(cfg: Config) -> Callable[[], object]:
    return build_seqjax(cfg, fused=False)


def _build_flax(cfg: Config, cell_cls) -> Callable[[], object]:
    from flax import nnx

    model = nnx.RNN(cell_cls(cfg.inputs, cfg.hidden, rngs=nnx.Rngs(0)), rngs=False)
    graphdef, params = nnx.split(model, nnx.Param)
    xs = _inputs(cfg)

    zeros = jnp.zeros((cfg.batch, cfg.hidden), jnp.float32)

    def loss(p, x):  # Flax's carry is (c, h); passing it avoids an RNG stream in the model
        return _loss(nnx.merge(graphdef, p)(x, initial_carry=(zeros, zeros)))

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    return lambda: grad(params, xs)


def build_flax_opt(cfg: Config) -> Callable[[], object]:
    from flax import nnx

    return _build_flax(cfg, nnx.OptimizedLSTMCell)


def build_flax_lstm(cfg: Config) -> Callable[[], object]:
    from flax import nnx

    return _build_flax(cfg, nnx.LSTMCell)


def build_torch(cfg: Config, threads: int = 2) -> Callable[[], object]:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layer = torch.nn.LSTM(cfg.inputs, cfg.hidden, batch_first=True)
    xs = torch.randn(cfg.batch, cfg.length, cfg.inputs, requires_grad=True)

    def step():
        layer.zero_grad(set_to_none=True)
        xs.grad = None
        ys, _ = layer(xs)
        ys.square().mean().backward()
        return [p.grad for p in layer.parameters()] + [xs.grad]

    return step


BUILDERS = {
    "seqjax": build_seqjax,
    "seqjax_scan": build_seqjax_scan,
    "flax_opt": build_flax_opt,
    "flax_lstm": build_flax_lstm,
    "torch": build_torch,
}


def gradients_finite(result) -> bool:
    """True if every gradient array a contender returned is finite (checked once per contender)."""
    leaves = jax.tree.leaves(result)
    ok = True
    for leaf in leaves:
        if hasattr(leaf, "detach"):  # torch tensor
            ok &= bool(leaf.detach().isfinite().all())
        else:
            ok &= bool(jnp.isfinite(leaf).all())
    return ok


# --- running -----------------------------------------------------------------------------------


def run(
    configs=CONFIGS,
    *,
    contenders=ALL_CONTENDERS,
    repeats: int = 5,
    torch_threads: int = 2,
    calibrate: bool = True,
    verbose: bool = True,
) -> dict:
    """Time every contender on every config; returns a JSON-ready dict (see :func:`main`)."""
    say = print if verbose else (lambda *a, **k: None)
    report = {
        "benchmark": "recurrent",
        "what": "forward+backward of one LSTM layer: grad of mean(ys**2) wrt params and xs",
        "when": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "jax": jax.__version__,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "torch_threads": torch_threads,
        },
        "repeats": repeats,
        "configs": [],
    }
    if "torch" in contenders:
        import torch

        torch.set_num_threads(torch_threads)
        report["machine"]["torch"] = torch.__version__
    if calibrate:
        report["calibration"] = timing.matmul_calibration(torch_too="torch" in contenders)
        say("calibration (1024^2 f32 matmul): "
            + ", ".join(f"{k} {v:.0f}" for k, v in report["calibration"].items() if k != "n")
            + " GFLOP/s")
    say(f"OMP_WAIT_POLICY={report['machine']['omp_wait_policy']}, torch threads {torch_threads}")
    for cfg in configs:
        fns, finite = {}, {}
        for name in contenders:
            fn = BUILDERS[name](cfg) if name != "torch" else build_torch(cfg, torch_threads)
            finite[name] = gradients_finite(timing.block(fn()))  # also compiles / warms up
            fns[name] = fn
        samples = timing.time_alternating_samples(fns, repeats=repeats, warmup=0)
        entry = {
            "config": dataclasses.asdict(cfg),
            "name": cfg.name,
            "results": {
                n: timing.summarize(samples[n]).as_dict() | {"finite": finite[n], "samples": samples[n]}
                for n in contenders
            },
        }
        entry["ratios"] = _ratios(entry["results"])
        report["configs"].append(entry)
        say(format_config(entry))
    return report


def _ratios(results: dict) -> dict:
    """``seqjax`` against the others: the ratio of medians, and the median of the per-round
    ratios ("paired": both timed in the same round, so under about the same load)."""
    ratios = {}
    if "seqjax" not in results:
        return ratios
    mine = results["seqjax"]
    others = {"torch": "torch", "scan": "seqjax_scan"}
    flax = {n: r["median"] for n, r in results.items() if n.startswith("flax")}
    if flax:
        others["flax"] = min(flax, key=flax.get)
        ratios["flax_best"] = others["flax"]
    for label, name in others.items():
        if name in results:
            theirs = results[name]
            ratios[f"seqjax/{label}"] = mine["median"] / theirs["median"]
            ratios[f"seqjax/{label} paired"] = timing.paired_ratio(mine["samples"], theirs["samples"])
    return ratios


def format_config(entry: dict) -> str:
    lines = [
        f"\n### {entry['name']}\n",
        "| contender | median | min | max | runs |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in entry["results"].items():
        lines.append(
            f"| {name} | {timing.fmt_seconds(r['median'])} | {timing.fmt_seconds(r['min'])} "
            f"| {timing.fmt_seconds(r['max'])} | {r['runs']} |"
        )
    ratios = entry["ratios"]
    lines.append("")
    for label in ("torch", "flax", "scan"):
        if f"seqjax/{label}" in ratios:
            vs = f" (vs {ratios['flax_best']})" if label == "flax" else ""
            lines.append(
                f"seqjax/{label}{vs}: {ratios[f'seqjax/{label}']:.2f} (medians), "
                f"{ratios[f'seqjax/{label} paired']:.2f} (paired per round)  "
            )
    return "\n".join(lines)


def format_report(report: dict) -> str:
    m = report["machine"]
    head = [
        f"# Recurrent benchmark ({report['when']})",
        "",
        report["what"] + ".",
        f"{m['cpus']} CPUs, jax {m['jax']}, torch {m.get('torch', '-')}, "
        f"OMP_WAIT_POLICY={m['omp_wait_policy']}, torch threads {m['torch_threads']}, "
        f"{report['repeats']} alternating rounds.",
    ]
    if "calibration" in report:
        c = report["calibration"]
        head.append(
            f"Calibration, {c['n']}^2 f32 matmul: "
            + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in c.items() if k != "n")
        )
    return "\n".join(head + [format_config(e) for e in report["configs"]]) + "\n"


def write(report: dict, out: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = report["when"].replace(":", "").replace("-", "")
    json_path = out / f"recurrent-{stamp}.json"
    md_path = out / f"recurrent-{stamp}.md"
    json_path.write_text(json.dumps(report, indent=2))
    md_path.write_text(format_report(report))
    return json_path, md_path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recurrent", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 rounds (a smoke test)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per contender (default 5, quick 2)")
    parser.add_argument("--contenders", nargs="+", choices=ALL_CONTENDERS, default=list(ALL_CONTENDERS))
    parser.add_argument("--config", type=int, nargs="+", choices=range(len(CONFIGS)), default=None,
                        help="indices of the configs to run (default: all)")
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/benchmarks"))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be >= 1; got {args.repeats}")

    if args.quick:
        configs, repeats = QUICK_CONFIGS, args.repeats or 2
    else:
        configs = CONFIGS if args.config is None else tuple(CONFIGS[i] for i in args.config)
        repeats = args.repeats or 5
    report = run(
        configs,
        contenders=tuple(args.contenders),
        repeats=repeats,
        torch_threads=args.torch_threads,
        calibrate=not args.quick,
    )
    if not args.no_write:
        paths = write(report, args.out)
        print("\nwrote " + ", ".join(str(p) for p in paths))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
