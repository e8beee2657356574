"""Markdown tables of a benchmark report (the dict :func:`benchmarks.harness.run` returns).

Three tables and a header:

- **summary**, one row per config: each contender's time, median (min–max) over the rounds of the
  per-process medians, then ``subject / other``: the ratio of medians (min–max of the per-round
  ratios). This is the table to paste into the README.
- **memory**: each contender's whole-process peak resident set (median over rounds) and, in
  brackets, two increments (:func:`benchmarks.timing.time_calls`): the peak during all calls over
  the resident set before the first (inputs built, program compiled), and the peak during the
  later calls over the resident set the first call left (without one-time allocations).
- **details**: per config and contender: rounds that succeeded, timed calls per process,
  compile time, the warm-up call, the process's wall time and its matmul calibration.

``python -m benchmarks.tables REPORT.json`` prints the tables of a saved report again.
"""

from __future__ import annotations

import json
import pathlib
import sys

from benchmarks import stats

DASH = "–"  # en dash between a min and a max


def fmt_seconds(s: float, unit: str | None = None) -> str:
    """``s`` seconds in ms below 1 s, else in s; ``unit`` ("ms"/"s") forces one (no unit printed).

    >>> fmt_seconds(0.0981), fmt_seconds(0.00123), fmt_seconds(3.391), fmt_seconds(59.84)
    ('98.1 ms', '1.23 ms', '3.39 s', '59.8 s')
    """
    shown = unit or ("ms" if s < 1.0 else "s")
    x = s * 1e3 if shown == "ms" else s
    digits = 3 if abs(x) < 1 else 2 if abs(x) < 10 else 1 if abs(x) < 1000 else 0
    text = f"{x:.{digits}f}"
    return text if unit else f"{text} {shown}"


def fmt_time_range(summary: dict) -> str:
    """``median unit (min–max)`` with min and max in the median's unit.

    >>> fmt_time_range({"median": 0.0981, "min": 0.095, "max": 0.1102, "n": 5})
    '98.1 ms (95.0–110.2)'
    """
    unit = "ms" if summary["median"] < 1.0 else "s"
    lo, hi = fmt_seconds(summary["min"], unit), fmt_seconds(summary["max"], unit)
    return f"{fmt_seconds(summary['median'])} ({lo}{DASH}{hi})"


def fmt_ratio(ratio: dict | None) -> str:
    """``ratio of medians (min–max of per-round ratios)``.

    >>> fmt_ratio({"ratio_of_medians": 1.2712, "spread_min": 1.16, "spread_max": 1.341})
    '1.27 (1.16–1.34)'
    """
    if ratio is None:
        return "–"
    return f"{ratio['ratio_of_medians']:.2f} ({ratio['spread_min']:.2f}{DASH}{ratio['spread_max']:.2f})"


def fmt_mib(mib: float) -> str:
    """``mib`` MiB in MiB below 1 GiB, else in GiB.

    >>> fmt_mib(361.4), fmt_mib(1310.7)
    ('361 MiB', '1.28 GiB')
    """
    return f"{mib:.0f} MiB" if mib < 1024 else f"{mib / 1024:.2f} GiB"


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _align(n_left: int, n_right: int) -> str:
    """The Markdown alignment row: ``n_left`` left-aligned columns, then right-aligned ones."""
    return _row(["---"] * n_left + ["---:"] * n_right)


def _partial(result: dict) -> str:
    return "" if result["rounds_ok"] == result["rounds"] else f" [{result['rounds_ok']}/{result['rounds']} rounds]"


def _time_cell(result: dict) -> str:
    if result["rounds_ok"] == 0:
        return result["status"]
    return fmt_time_range(result["time_s"]) + _partial(result)


def summary_table(report: dict) -> str:
    names = list(report["contenders"])
    subject = report["subject"]
    others = [n for n in names if n != subject]
    header = [report["config_header"]] + [report["contenders"][n]["label"] for n in names]
    header += [f"{subject} / {n}" for n in others]
    lines = [_row(header), _align(1, len(header) - 1)]
    for entry in report["configs"]:
        cells = [entry["name"]] + [_time_cell(entry["results"][n]) for n in names]
        cells += [fmt_ratio(entry["ratios"][n]) for n in others]
        lines.append(_row(cells))
    return "\n".join(lines)


def memory_table(report: dict) -> str:
    names = list(report["contenders"])
    header = [report["config_header"]] + [report["contenders"][n]["label"] for n in names]
    lines = [_row(header), _align(1, len(names))]
    for entry in report["configs"]:
        cells = [entry["name"]]
        for n in names:
            r = entry["results"][n]
            if r["rounds_ok"] == 0 or r.get("process_peak_mib") is None:
                cells.append(r["status"] if r["rounds_ok"] == 0 else "–")
                continue
            cell = fmt_mib(r["process_peak_mib"]["median"])
            if r.get("added_mib") and r.get("added_later_mib"):
                cell += f" (+{fmt_mib(r['added_mib']['median'])}, +{fmt_mib(r['added_later_mib']['median'])})"
            cells.append(cell)
        lines.append(_row(cells))
    return "\n".join(lines)


def details_table(report: dict) -> str:
    header = [report["config_header"], "contender", "rounds ok", "calls / process", "compile",
              "warm-up call", "process wall", "matmul GFLOP/s", "status"]
    lines = [_row(header), _row(["---"] * 2 + ["---:"] * 6 + ["---"])]
    for entry in report["configs"]:
        for n, r in entry["results"].items():
            if r["rounds_ok"] == 0:
                lines.append(_row([entry["name"], n, f"0/{r['rounds']}", "", "", "", "", "", r["status"]]))
                continue
            reps = f"{min(r['reps'])}" if min(r["reps"]) == max(r["reps"]) else f"{min(r['reps'])}{DASH}{max(r['reps'])}"
            cal = r["calibration_gflops"]
            lines.append(_row([
                entry["name"], n, f"{r['rounds_ok']}/{r['rounds']}", reps,
                fmt_seconds(r["compile_s"]["median"]) if r.get("compile_s") else "none (eager)",
                fmt_seconds(r["warmup_s"]["median"]),
                fmt_seconds(r["process_wall_s"]["median"]),
                f"{cal['median']:.0f} ({cal['min']:.0f}{DASH}{cal['max']:.0f})",
                r["status"],
            ]))
    return "\n".join(lines)


def _calibration_line(report: dict) -> str:
    by_framework: dict[str, list[float]] = {}
    for entry in report["configs"]:
        for n, rounds in ((n, [rd[n] for rd in entry["rounds"]]) for n in report["contenders"]):
            framework = report["contenders"][n]["framework"]
            by_framework.setdefault(framework, []).extend(
                r["calibration_gflops"] for r in rounds if r["status"] == "ok")
    parts = []
    for framework, values in by_framework.items():
        if values:
            c = stats.summarize(values)
            parts.append(f"{framework} {c.median:.0f} ({c.min:.0f}{DASH}{c.max:.0f}) over {c.n} processes")
    return ("Calibration, a 1024x1024 float32 matmul at the start of every process, GFLOP/s median "
            "(min–max): " + "; ".join(parts) + "." if parts else "")


def _threads(report: dict) -> str:
    seen = sorted({r["info"]["torch_threads"] for e in report["configs"] for r in e["results"].values()
                   if r["rounds_ok"] and "torch_threads" in r.get("info", {})})
    return "PyTorch threads: " + ", ".join(map(str, seen)) + " (its default, not set)" if seen else ""


def _reps(s: dict) -> str:
    if s["min_reps"] == s["max_reps"]:
        return f"{s['min_reps']} timed calls"
    return f"{s['min_reps']}{DASH}{s['max_reps']} timed calls (as many as fit in about {s['budget_s']:g} s)"


def header(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    env = ", ".join(f"`{k}={v}`" for k, v in s["environment"].items()) or "none set"
    load = lambda la: f"{la[0]:.2f}"
    lines = [
        f"# Benchmark: {report['benchmark']} ({report['when']})",
        "",
        report["what"],
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"{m['memory_gib']:.0f} GiB; {m['platform']}; Python {m['python']}; {versions}.",
        f"- Method: each contender in its own fresh Python process with its library's defaults "
        f"(a PyTorch process never imports jax, a JAX process never imports torch), "
        f"{s['rounds']} rounds alternating {', '.join(s['order'])}, a new process per contender "
        f"per round. Per process: matmul calibration, compilation (timed apart, excluded), "
        f"{s['warmup_calls']} warm-up call, then {_reps(s)}; the round's value is their median.",
        f"- Environment variables that change the libraries' threading or compilation: {env}. "
        + _threads(report),
        f"- Load average (1 min) {load(s['load_average_start'])} at the start, "
        f"{load(s['load_average_end'])} at the end; {report['wall_s'] / 60:.1f} min in all.",
    ]
    extra = {k: v for k, v in s.items() if k not in {
        "rounds", "budget_s", "min_reps", "max_reps", "time_limit_s", "order", "warmup_calls",
        "environment", "load_average_start", "load_average_end"}}
    if extra:
        lines.append("- Options: " + ", ".join(f"{k} {v}" for k, v in extra.items()) + ".")
    cal = _calibration_line(report)
    if cal:
        lines.append("- " + cal)
    return "\n".join(lines)


def legend(report: dict) -> str:
    return "\n".join(f"- `{n}`: {c['description']}" for n, c in report["contenders"].items())


def format_report(report: dict) -> str:
    """The whole report as Markdown: header, summary, memory, details, legend."""
    return "\n".join([
        header(report),
        "",
        "Time per call: median (min–max) over the rounds of each process's median. "
        f"`{report['subject']} / x`: ratio of the medians (min–max of the per-round ratios).",
        "",
        summary_table(report),
        "",
        "Peak resident memory of the whole process, median over rounds; in brackets the "
        "increments over the resident set before the calls (inputs built, program compiled): the "
        "peak of all calls (+ a first call's one-time allocations), and the peak of the later calls "
        "over the resident set the first call left:",
        "",
        memory_table(report),
        "",
        "Details (medians over rounds):",
        "",
        details_table(report),
        "",
        "Contenders:",
        "",
        legend(report),
        "",
    ])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m benchmarks.tables REPORT.json")
    print(format_report(json.loads(pathlib.Path(sys.argv[1]).read_text())))
