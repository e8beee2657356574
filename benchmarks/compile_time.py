"""Compile time of a recurrent stack's forward+backward against sequence length and depth.

    python -m benchmarks.compile_time                         # T 16..1024, 1..4 layers, LSTM
    python -m benchmarks.compile_time --cell gru --out runs/benchmarks/compile_time.json
    python -m benchmarks.compile_time --quick                 # tiny (used by the tests)

What is timed: ``jax.jit(jax.grad(loss)).lower(...).compile()`` for the loss ``mean(ys ** 2)``
of ``seqjax.recurrence.stacked(cell, layers, xs, schedule=...)`` (gradient with respect to every
layer's parameters and ``xs``), float32, for each ``schedule`` in ``layered`` and ``wavefront``.
Lowering (tracing to StableHLO) and XLA compilation are reported apart; nothing is run. Every
measurement is in one process (JAX's in-memory caches are cleared between measurements and the
persistent compilation cache is off), so it is a measurement of this machine at that moment: on
a loaded machine read the trend, not the seconds.

A scan's body is compiled once whatever ``T``, so both schedules should compile in a time
independent of ``T``; the layered path compiles one scan per layer (and per direction), the
wavefront one scan whose body holds every layer, so their growth with depth is what differs.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

SCHEDULES = ("layered", "wavefront")


def measure(cell_name: str, layers: int, length: int, *, batch: int, inputs: int, hidden: int,
            schedule: str, bidirectional: bool = False) -> dict:
    """Seconds to lower and to compile one forward+backward program (see the module docstring)."""
    import jax
    import jax.numpy as jnp

    from seqjax.cells import elman, gru, lstm
    from seqjax.recurrence import stacked, stacked_init

    cells = {"lstm": lstm, "gru": gru, "elman": elman}
    if cell_name not in cells:
        raise ValueError(f"cell must be one of {sorted(cells)}; got {cell_name!r}.")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}; got {schedule!r}.")
    cell = cells[cell_name]()
    params = jax.eval_shape(lambda: stacked_init(cell, jax.random.key(0), inputs, hidden, layers,
                                                 bidirectional=bidirectional))
    xs = jax.ShapeDtypeStruct((batch, length, inputs), jnp.float32)
    grad = jax.jit(jax.grad(lambda p, x: jnp.mean(jnp.square(stacked(cell, p, x, schedule=schedule))),
                            argnums=(0, 1)))
    jax.clear_caches()
    start = time.perf_counter()
    lowered = grad.lower(params, xs)
    lowered_at = time.perf_counter()
    lowered.compile()
    done = time.perf_counter()
    return {"cell": cell_name, "layers": layers, "length": length, "schedule": schedule,
            "bidirectional": bidirectional, "lower_s": lowered_at - start, "compile_s": done - lowered_at}


def table(rows: list[dict]) -> str:
    """Markdown: one row per (layers, T), lower+compile seconds per schedule."""
    keys = sorted({(r["layers"], r["length"]) for r in rows})
    lines = ["| layers | T | " + " | ".join(f"{s} lower + compile" for s in SCHEDULES) + " |",
             "| ---: | ---: | " + " | ".join("---:" for _ in SCHEDULES) + " |"]
    for layers, length in keys:
        cells = []
        for s in SCHEDULES:
            r = next((r for r in rows if (r["layers"], r["length"], r["schedule"]) == (layers, length, s)), None)
            cells.append("–" if r is None else f"{r['lower_s']:.2f} + {r['compile_s']:.2f} s")
        lines.append(f"| {layers} | {length} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compile_time", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cell", choices=("lstm", "gru", "elman"), default="lstm", help="the cell (default lstm)")
    p.add_argument("--lengths", type=int, nargs="+", default=[16, 128, 1024], help="sequence lengths T")
    p.add_argument("--layers", type=int, nargs="+", default=[1, 2, 4], help="numbers of layers")
    p.add_argument("--bidirectional", action="store_true", help="bidirectional layers")
    p.add_argument("--size", type=int, nargs=3, default=[32, 64, 256], metavar=("B", "I", "H"),
                   help="batch, input and hidden sizes (default 32 64 256)")
    p.add_argument("--quick", action="store_true", help="T 4 and 8, 1 and 2 layers, tiny sizes")
    p.add_argument("--out", type=pathlib.Path, default=None, help="write the rows as JSON to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.lengths, args.layers, args.size = [4, 8], [1, 2], [2, 3, 4]
    for flag, values in (("--lengths", args.lengths), ("--layers", args.layers), ("--size", args.size)):
        if min(values) < 1:
            p.error(f"{flag} must be positive integers; got {values}")
    if args.out is not None and args.out.is_dir():
        p.error(f"--out must be the path of the JSON file to write; got the directory {args.out}")
    batch, inputs, hidden = args.size
    rows = []
    for layers in args.layers:
        for length in args.lengths:
            for schedule in SCHEDULES:
                row = measure(args.cell, layers, length, batch=batch, inputs=inputs, hidden=hidden,
                              schedule=schedule, bidirectional=args.bidirectional)
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    print(f"Compile time, {args.cell}{' bidirectional' if args.bidirectional else ''}, "
          f"B{batch} I{inputs} H{hidden}, forward+backward (one process):\n")
    print(table(rows))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
