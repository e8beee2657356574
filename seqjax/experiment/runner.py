"""The body every experiment's ``main`` shares: run directory, config, run, summary, report."""

from __future__ import annotations

from typing import Any, Callable

from seqjax.experiment.run_dir import RunDir


def run_experiment(
    name: str, args: Any, run: Callable[[Any, RunDir], dict], report: Callable[[dict], str]
) -> dict[str, Any]:
    """Create the run directory, write ``config.json``, call ``run(config, run_dir)``, write
    ``metrics.json``, print ``report(summary)`` and where the results are; returns the summary
    with ``run_dir``. ``args`` is what :func:`seqjax.experiment.parse` returned."""
    run_dir = RunDir.create(name, out=args.out)
    run_dir.write_config(args.config)
    summary = run(args.config, run_dir) | {"quick": args.quick}
    run_dir.write_summary(summary)
    print(report(summary))
    print(f"runtime {summary['runtime_s']} s; results in {run_dir.path}")
    return summary | {"run_dir": str(run_dir.path)}
