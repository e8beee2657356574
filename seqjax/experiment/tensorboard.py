"""Optional TensorBoard logging, with no dependency of the core on TensorBoard.

``metrics.jsonl`` (:mod:`seqjax.experiment.run_dir`) is the record of every run; TensorBoard is an
extra view of it. :func:`tensorboard_writer` returns a ``SummaryWriter`` from ``tensorboardX`` if
installed, else from ``torch.utils.tensorboard`` (which needs the ``tensorboard`` package), and
otherwise raises ``ImportError`` saying what to install. Nothing is imported until it is called.

Example::

    writer = tensorboard_writer(run.path / "tb")      # ImportError with advice if unavailable
    log_scalars(writer, step, {"loss": loss, "lr": lr})
    writer.close()
"""

from __future__ import annotations

import os
from typing import Any, Mapping

INSTALL_HINT = (
    "TensorBoard logging needs `tensorboardX` (pip install tensorboardX) or `tensorboard` "
    "together with torch (for torch.utils.tensorboard); neither is importable. Training does not "
    "need it: every metric is also in the run directory's metrics.jsonl."
)


def tensorboard_available() -> bool:
    """Whether :func:`tensorboard_writer` can return a writer."""
    try:
        _summary_writer_class()
        return True
    except ImportError:
        return False


def tensorboard_writer(logdir: str | os.PathLike) -> Any:
    """A ``SummaryWriter`` writing event files to ``logdir``; ``ImportError`` if none is installed."""
    return _summary_writer_class()(str(logdir))


def log_scalars(writer: Any, step: int, scalars: Mapping[str, Any]) -> None:
    """Write every scalar (JAX/NumPy scalars or floats) under its name at ``step``."""
    for name, value in scalars.items():
        writer.add_scalar(name, float(value), int(step))


def _summary_writer_class():
    try:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    except ImportError:
        pass
    try:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter
    except ImportError:  # torch missing, or torch present without the tensorboard package
        raise ImportError(INSTALL_HINT) from None
