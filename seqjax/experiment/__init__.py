"""Experiment plumbing: config -> CLI, run directories, progress bars, run logging.

What ``python -m experiments.<name>`` is built from, kept apart from the training core
(:mod:`seqjax.train`), which knows nothing of command lines or run directories::

    cli.py          a frozen dataclass config -> argparse flags, --quick, --out
    run_dir.py      runs/<name>/<UTC timestamp>/: config.json, metrics.jsonl, metrics.json, figures
    runner.py       run_experiment: the body every experiment's main shares
    progress.py     tqdm progress bars on stderr
    tensorboard.py  optional TensorBoard writer (metrics.jsonl is the record)
    environment.py  what a run ran on (versions, backend, devices)

An experiment::

    @dataclasses.dataclass(frozen=True)
    class Config:
        steps: int = option(1000, "training steps")
        seed: int = option(0, "base random seed")

    def run(config, run_dir):
        for step in progress(range(config.steps), desc="train"):
            run_dir.log(step=step, loss=loss)
        return {"final_loss": loss, "runtime_s": ...}

    def main(argv=None):
        return run_experiment("<name>", parse(Config, argv), run, report)
"""

from seqjax.experiment.cli import Args, build_parser, option, parse
from seqjax.experiment.environment import environment
from seqjax.experiment.progress import progress
from seqjax.experiment.run_dir import RunDir, to_json
from seqjax.experiment.runner import run_experiment
from seqjax.experiment.tensorboard import log_scalars, tensorboard_available, tensorboard_writer

__all__ = [
    "Args", "RunDir", "build_parser", "environment", "log_scalars", "option", "parse", "progress",
    "run_experiment", "tensorboard_available", "tensorboard_writer", "to_json",
]
