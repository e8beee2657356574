"""Experiment plumbing: the command line from a config dataclass, run directories, progress bars.

Experiments (``python -m experiments.<name>``) are built from three pieces::

    args = parse(Config, argv)                           # seqjax.train.cli
    run = RunDir.create("<name>", out=args.out)          # seqjax.train.run_dir
    run.write_config(args.config)
    for step in progress(range(n), desc="train"):        # seqjax.train.progress
        run.log(step=step, loss=loss)
    run.write_summary({...}); run.save_figure(fig, "curves")
"""

from seqjax.train.cli import Args, build_parser, option, parse
from seqjax.train.progress import progress
from seqjax.train.run_dir import RunDir, environment, to_json

__all__ = ["Args", "RunDir", "build_parser", "environment", "option", "parse", "progress", "to_json"]
