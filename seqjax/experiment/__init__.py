"""Experiment plumbing: config -> CLI, run directories, progress bars, run logging.

What ``python -m experiments.<name>`` is built from, kept apart from the training core
(:mod:`seqjax.train`), which knows nothing of command lines or run directories::

    cli.py            a frozen dataclass config -> argparse flags, --quick, --out, --resume
    run_dir.py        runs/<name>/<UTC timestamp>/: config.json, metrics.jsonl, metrics.json, figures
    checkpoints.py    a run's checkpoints (device state + progress): what --resume continues from
    lossless_json.py  JSON that gives back arrays, NaN, tuples and float keys exactly
    runner.py         run_experiment: the body every experiment's main shares
    progress.py       tqdm progress bars on stderr
    tensorboard.py    optional TensorBoard writer (metrics.jsonl is the record)
    environment.py    what a run ran on (versions, backend, devices)

A resumable experiment (the three in ``experiments/`` follow this shape)::

    @dataclasses.dataclass(frozen=True)
    class Config:
        steps: int = option(1000, "training steps")
        seed: int = option(0, "base random seed")
        checkpoint_every: int = option(100, "save a checkpoint every this many steps")

    def run(config, run_dir):
        with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
            resumed = ckpt.restore()                 # None, or the latest checkpoint's progress
            if resumed is None:
                state, losses, start = init(config), [], 0
            else:
                state, losses, start = ckpt.state(init(config)), resumed.progress, resumed.step
            for step in progress(range(start, config.steps), desc="train", total=config.steps,
                                 initial=start):
                state, loss = train_step(state, batch_at(config.seed, step))  # batches: f(seed, step)
                losses.append(loss)
                run_dir.log(step=step + 1, loss=loss)
                ckpt.save(step + 1, state, losses, force=step + 1 == config.steps)
            runtime_s = ckpt.elapsed_s()
        return {"final_loss": losses[-1], "timings": {"runtime_s": runtime_s}}

    def main(argv=None):
        return run_experiment("<name>", parse(Config, argv), run, report)
"""

from seqjax.experiment.checkpoints import Resumed, RunCheckpoints
from seqjax.experiment.cli import RUN_FIELDS, Args, build_parser, config_from_json, option, parse
from seqjax.experiment.environment import environment
from seqjax.experiment.lossless_json import decode, encode
from seqjax.experiment.progress import progress
from seqjax.experiment.run_dir import RunDir, to_json
from seqjax.experiment.runner import run_experiment
from seqjax.experiment.tensorboard import log_scalars, tensorboard_available, tensorboard_writer

__all__ = [
    "RUN_FIELDS", "Args", "Resumed", "RunCheckpoints", "RunDir", "build_parser", "config_from_json",
    "decode", "encode", "environment", "log_scalars", "option", "parse", "progress",
    "run_experiment", "tensorboard_available", "tensorboard_writer", "to_json",
]
