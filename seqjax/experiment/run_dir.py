"""A run directory: where one experiment run leaves everything it produced.

Layout (``runs/<name>/<UTC timestamp>/`` by default, or the directory given with ``--out``)::

    config.json     the config, field by field (tuples as lists)
    run.json        which experiment wrote the run, and whether with --quick
    metrics.jsonl   one JSON record per line, appended during the run (training curves)
    metrics.json    the final summary: the numbers the experiment reports
    <figure>.png    figures
    <name>.npz      optional arrays too long for a summary (for example full curves)
    checkpoints/    the latest checkpoints, from which --resume continues the run
                    (:mod:`seqjax.experiment.checkpoints`)

``metrics.jsonl`` is appended and flushed line by line so that a run that crashes or is stopped
still leaves its curve so far; a resumed run first cuts it back to its length at the checkpoint
it resumes from (:meth:`RunDir.truncate_log`), so that no record is there twice. ``metrics.json`` is written to a temporary file and moved into
place with :func:`os.replace`, so a reader never sees half a summary. Non-finite floats are
written as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``: Python's ``json`` would
otherwise emit bare ``NaN``, which is not JSON and which other readers reject.

Example::

    >>> import tempfile
    >>> from seqjax.experiment.run_dir import RunDir
    >>> run = RunDir.create("demo", out=tempfile.mkdtemp())
    >>> run.log(step=0, loss=1.5)
    >>> path = run.write_summary({"final_loss": 0.1})
    >>> path.name
    'metrics.json'
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

CONFIG = "config.json"
RUN_INFO = "run.json"
METRICS_LOG = "metrics.jsonl"
SUMMARY = "metrics.json"
CHECKPOINTS = "checkpoints"


class RunDir:
    """One run's directory; create it with :meth:`RunDir.create`."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, name: str, out: str | os.PathLike | None = None, root: str | os.PathLike = "runs") -> "RunDir":
        """Make ``out``, or a fresh ``<root>/<name>/<UTC timestamp>/``, and return it.

        Reusing an ``out`` that holds an earlier run replaces that run's ``metrics.jsonl`` rather
        than appending to it, so the log never mixes two runs; an ``out`` that holds checkpoints
        is refused (``ValueError``): continue that run with :meth:`open` (``--resume``) or
        choose another directory.
        """
        if out is not None:
            path = Path(out)
            checkpoints = path / CHECKPOINTS
            if checkpoints.is_dir() and any(checkpoints.iterdir()):
                raise ValueError(
                    f"{path} holds the checkpoints of an earlier run ({checkpoints}): continue it "
                    f"with --resume {path}, or choose another --out (or delete {checkpoints})."
                )
            path.mkdir(parents=True, exist_ok=True)
            (path / METRICS_LOG).unlink(missing_ok=True)
            return cls(path)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        base = Path(root) / name
        base.mkdir(parents=True, exist_ok=True)
        # Two runs started in the same second get distinct directories (-1, -2, ...).
        for suffix in range(1000):
            path = base / (stamp if suffix == 0 else f"{stamp}-{suffix}")
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                continue
        raise FileExistsError(f"could not create a fresh run directory under {base}")

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunDir":
        """An existing run's directory, to resume it: ``ValueError`` unless it has a ``config.json``."""
        path = Path(path)
        if not (path / CONFIG).is_file():
            raise ValueError(
                f"{path} is not a run directory: it has no {CONFIG} (expected the directory a run "
                "was started in, runs/<name>/<UTC timestamp>/ or its --out)."
            )
        return cls(path)

    def write_config(self, config: Any, **extra: Any) -> Path:
        """Write ``config`` (a dataclass or a mapping) and any ``extra`` keys to ``config.json``."""
        data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
        data.update(extra)
        return _write_json_atomic(self.path / CONFIG, data)

    def read_config(self) -> dict[str, Any]:
        """The contents of ``config.json`` (turn them into a config with
        :func:`seqjax.experiment.cli.config_from_json`)."""
        return json.loads((self.path / CONFIG).read_text(encoding="utf-8"))

    def write_run_info(self, **info: Any) -> Path:
        """Write ``run.json`` (for example ``experiment="long_range", quick=True``)."""
        return _write_json_atomic(self.path / RUN_INFO, info)

    def read_run_info(self) -> dict[str, Any]:
        """The contents of ``run.json``; ``{}`` if the run has none."""
        path = self.path / RUN_INFO
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def log(self, **record: Any) -> None:
        """Append one record (for example ``step=10, loss=0.3``) to ``metrics.jsonl``."""
        line = json.dumps(to_json(record), allow_nan=False)
        with open(self.path / METRICS_LOG, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def flush_log(self) -> int:
        """Force ``metrics.jsonl`` to disk and return its length in bytes (0 if there is none yet):
        what a checkpoint records, so that a resumed run knows which records it accounts for."""
        path = self.path / METRICS_LOG
        if not path.exists():
            return 0
        with open(path, "rb") as f:
            os.fsync(f.fileno())
            return os.fstat(f.fileno()).st_size

    def truncate_log(self, size: int) -> None:
        """Cut ``metrics.jsonl`` back to its first ``size`` bytes: the records a checkpoint
        accounts for. What a killed run logged after its last checkpoint (perhaps half a line) is
        dropped; the resumed run logs it again. ``ValueError`` if the log is shorter than that."""
        path = self.path / METRICS_LOG
        have = path.stat().st_size if path.exists() else 0
        if have < size:
            raise ValueError(
                f"{path} has {have} bytes, but the checkpoint was taken when it had {size}: records "
                "the checkpoint accounts for are missing, so resuming would lose them."
            )
        if path.exists():
            os.truncate(path, size)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write the final summary to ``metrics.json`` atomically."""
        return _write_json_atomic(self.path / SUMMARY, summary)

    def save_figure(self, fig: Any, name: str, *, dpi: int = 120) -> Path:
        """Save a matplotlib figure as ``<name>.png`` and release its memory."""
        path = self.path / f"{name}.png"
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        # Figures made with pyplot stay registered until closed; Figure() objects do not.
        try:
            import matplotlib.pyplot as plt

            plt.close(fig)
        except Exception:  # pragma: no cover - closing is best effort
            pass
        return path

    def save_arrays(self, name: str, **arrays: Any) -> Path:
        """Save named arrays to ``<name>.npz`` (for data too long for ``metrics.json``)."""
        path = self.path / f"{name}.npz"
        np.savez_compressed(path, **{k: np.asarray(v) for k, v in arrays.items()})
        return path

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def to_json(value: Any) -> Any:
    """``value`` made JSON-safe: arrays and NumPy/JAX scalars to Python, tuples to lists,
    non-finite floats to the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # numpy or jax array / scalar
        value = np.asarray(value)
        return to_json(value.item() if value.ndim == 0 else value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _write_json_atomic(path: Path, data: Any) -> Path:
    text = json.dumps(to_json(data), indent=2, allow_nan=False)
    # The temporary file lives in the same directory so that os.replace is an atomic rename.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
