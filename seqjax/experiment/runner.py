"""The body every experiment's ``main`` shares: run directory, config, run, summary, report."""

from __future__ import annotations

from typing import Any, Callable

from seqjax.experiment.run_dir import RunDir


def run_experiment(
    name: str, args: Any, run: Callable[[Any, RunDir], dict], report: Callable[[dict], str]
) -> dict[str, Any]:
    """Run experiment ``name`` as ``args`` (what :func:`seqjax.experiment.parse` returned) ask.

    A new run: create its directory (``--out`` or ``runs/<name>/<UTC timestamp>/``) and write
    ``run.json`` (the experiment and ``--quick``). A resumed one (``--resume RUN_DIR``): check that
    ``RUN_DIR`` holds a run of this experiment. Then write ``config.json``, call
    ``run(config, run_dir)`` (which restores the run's checkpoint, if any:
    :class:`seqjax.experiment.checkpoints.RunCheckpoints`), write ``metrics.json`` (the summary with
    ``quick``), print ``report(summary)`` and where the results are. Returns the summary with
    ``run_dir``. The summary's wall-clock numbers belong under ``"timings"`` (with ``runtime_s``):
    the only part that differs between a resumed run and an uninterrupted one.
    """
    if args.resume is None:
        try:
            run_dir = RunDir.create(name, out=args.out)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
        run_dir.write_run_info(experiment=name, quick=args.quick)
    else:
        run_dir = RunDir.open(args.resume)
        other = run_dir.read_run_info().get("experiment")
        if other != name:
            raise SystemExit(
                f"error: --resume {args.resume}: that is a run of experiments.{other}, not of "
                f"experiments.{name}."
            )
    run_dir.write_config(args.config)  # a resumed run may have changed a RUN_FIELDS value
    summary = run(args.config, run_dir) | {"quick": args.quick}
    run_dir.write_summary(summary)
    print(report(summary))
    print(f"runtime {summary['timings']['runtime_s']} s; results in {run_dir.path}")
    return summary | {"run_dir": str(run_dir.path)}
