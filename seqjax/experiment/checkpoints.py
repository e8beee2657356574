"""A run's checkpoints: what ``--resume RUN_DIR`` continues from, to the same final numbers.

A checkpoint of an experiment run holds two things, saved together in one Orbax checkpoint
(:class:`seqjax.train.checkpoint.Checkpointer`, in ``<run dir>/checkpoints/<step>/``):

* the **device state**: a pytree of arrays (parameters, optimiser state, a recurrent carry, ...),
  restored into a template the experiment builds;
* the **progress**: host-side data (the step counters and data position, the metrics logged so
  far, which sub-runs of a sweep are finished and their results), stored as JSON through
  :mod:`seqjax.experiment.lossless_json`, so that arrays, ``NaN`` and float keys come back exactly;

and, kept by this class, the length of ``metrics.jsonl`` at the save, the seconds of work done so
far and the number of sessions. Restoring cuts ``metrics.jsonl`` back to that length: the records
a killed run wrote after its last checkpoint are dropped and written again by the resumed run, so
the log has every record once.

What makes the resumed run equal the uninterrupted one is the experiment's part of the contract:

1. every batch and key is a function of the config seed and the position (never of a stateful
   generator), so the resumed run draws the same data;
2. the progress saved at step ``s`` is the same whatever triggered the save (a periodic save, the
   final one, a different ``--checkpoint-every``): save at one place in the loop, after the step's
   records are logged;
3. everything after training (summaries, samples, figures) is recomputed from the restored
   state and progress.

Saves are atomic (Orbax writes a temporary directory and renames it; a manifest written last marks
the checkpoint whole), so a run killed while saving leaves the previous checkpoint to resume from:
the latest two are kept and older ones deleted. ``save`` is due whenever the step has passed a
multiple of ``every`` since the last save, so loops whose steps come in chunks save at the first
chunk boundary past each multiple.

Example::

    >>> import tempfile, jax.numpy as jnp
    >>> from seqjax.experiment.checkpoints import RunCheckpoints
    >>> from seqjax.experiment.run_dir import RunDir
    >>> run = RunDir.create("demo", out=tempfile.mkdtemp())
    >>> _ = run.write_config({"steps": 5, "seed": 0})
    >>> ckpt = RunCheckpoints(run, every=2)
    >>> print(ckpt.restore())                      # a fresh run: nothing to resume
    None
    >>> w, losses = jnp.zeros(3), []
    >>> for step in range(1, 6):
    ...     w = w + 1.0
    ...     losses.append(float(w[0]))
    ...     run.log(step=step, loss=losses[-1])
    ...     _ = ckpt.save(step, {"w": w}, {"losses": losses})
    >>> ckpt.close()
    >>> again = RunCheckpoints(RunDir.open(run.path), every=2)   # a new process, after a kill
    >>> resumed = again.restore()
    >>> resumed.step, resumed.progress
    (4, {'losses': [1.0, 2.0, 3.0, 4.0]})
    >>> again.state({"w": jnp.zeros(3)})["w"].tolist()
    [4.0, 4.0, 4.0]
    >>> len((run.path / "metrics.jsonl").read_text().splitlines())   # step 5's record is dropped
    4
    >>> again.close()
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

from seqjax import _checks
from seqjax.experiment.lossless_json import decode, encode
from seqjax.experiment.run_dir import CHECKPOINTS, RunDir
from seqjax.train.checkpoint import Checkpointer

FORMAT = 1


class Resumed(NamedTuple):
    """What :meth:`RunCheckpoints.restore` returns: the step of the checkpoint and its progress."""

    step: int
    progress: Any


class RunCheckpoints:
    """Save a run's state and progress every ``every`` steps; restore the latest on ``--resume``.

    Args:
      run_dir: the run's directory; checkpoints go to ``run_dir.path / "checkpoints"``.
      every: save when the step has passed a multiple of ``every`` since the last save.
    """

    def __init__(self, run_dir: RunDir, *, every: int):
        _checks.positive_int("every", every)
        self.run_dir = run_dir
        self.every = every
        self._checkpointer = Checkpointer(run_dir.path / CHECKPOINTS, save_every=every, max_to_keep=2)
        self._started = time.perf_counter()
        self._previous_s = 0.0
        self._last_saved = 0
        self._restored: int | None = None
        self.sessions = 1

    def restore(self) -> Resumed | None:
        """Read the newest valid checkpoint's progress and cut ``metrics.jsonl`` back to its length
        at that save; ``None`` (and an empty log) if the run has no checkpoint. Its device state
        is restored on demand by :meth:`state` (its template may depend on the progress)."""
        step = self._checkpointer.latest_valid()
        if step is None:
            self.run_dir.truncate_log(0)
            return None
        extra = self._checkpointer.restore_metadata(step).extra
        if extra.get("format") != FORMAT:
            raise ValueError(
                f"checkpoint {self._checkpointer.step_dir(step)} was not written by "
                f"RunCheckpoints (format {extra.get('format')!r}, expected {FORMAT})."
            )
        self.run_dir.truncate_log(extra["log_bytes"])
        self._previous_s = float(extra["elapsed_s"])
        self.sessions = int(extra["sessions"]) + 1
        self._last_saved = self._restored = step
        return Resumed(step, decode(extra["progress"]))

    def state(self, template: Any) -> Any:
        """The device state of the checkpoint :meth:`restore` found, in ``template``'s structure
        (a freshly initialised state of the same shapes, for example)."""
        if self._restored is None:
            raise RuntimeError("state() needs a checkpoint: call restore() first (it returned None?).")
        return self._checkpointer.restore(template, self._restored).state

    def sweep_run(self, sweep: dict, index: int, template: Any, start: Callable[[], dict]) -> tuple[dict, Any]:
        """Enter run ``index`` of a sweep whose progress ``sweep["current"]`` is None (a fresh
        run) or the progress of the run a killed session was inside.

        Returns ``(current, state)``: for a fresh run ``start()`` and ``template``; for the
        interrupted one its saved progress and the checkpoint's state in ``template``'s
        structure. ``sweep["current"]`` is set to ``current``. A checkpoint inside another run
        than ``index`` is refused (the sweep's order changed).
        """
        current = sweep["current"]
        if current is None:
            current, state = start(), template
        else:
            if current["run"] != index:
                raise ValueError(f"the checkpoint is inside run {current['run']}, expected run {index}.")
            state = self.state(template)
        sweep["current"] = current
        return current, state

    def due(self, step: int) -> bool:
        """Whether :meth:`save` at ``step`` would save (without ``force``)."""
        return step // self.every > self._last_saved // self.every

    def save(self, step: int, state: Any, progress: Any, *, force: bool = False) -> bool:
        """Save ``state`` (a pytree of arrays) and ``progress`` (see
        :mod:`~seqjax.experiment.lossless_json`) if :meth:`due` or ``force``; True if it saved.
        A step already on disk is not saved again."""
        if not (force or self.due(step)):
            return False
        extra = {
            "format": FORMAT,
            "progress": encode(progress, where="progress"),
            "log_bytes": self.run_dir.flush_log(),
            "elapsed_s": self.elapsed_s(),
            "sessions": self.sessions,
        }
        saved = self._checkpointer.save(step, state, data_position=step, extra=extra)
        self._last_saved = step
        return saved

    def elapsed_s(self) -> float:
        """Seconds of work behind the run so far: this session's, plus the earlier sessions' up to
        the checkpoint this one resumed from (work a killed session did after it is redone, and
        counted once)."""
        return self._previous_s + time.perf_counter() - self._started

    def close(self) -> None:
        self._checkpointer.close()

    def __enter__(self) -> "RunCheckpoints":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
