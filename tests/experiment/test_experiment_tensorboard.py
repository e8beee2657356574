"""seqjax.experiment.tensorboard: a writer when TensorBoard is installed, a clear ImportError when not."""

import pytest

from seqjax.experiment.tensorboard import log_scalars, tensorboard_available, tensorboard_writer


def test_writer_or_clear_message(tmp_path):
    if not tensorboard_available():
        with pytest.raises(ImportError, match="pip install tensorboardX"):
            tensorboard_writer(tmp_path)
        return
    writer = tensorboard_writer(tmp_path)
    log_scalars(writer, 3, {"loss": 0.5})
    writer.close()
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.rglob("*"))


def test_log_scalars_converts_values():
    seen = []

    class Recorder:
        def add_scalar(self, name, value, step):
            seen.append((name, value, step))

    import numpy as np

    log_scalars(Recorder(), np.int64(2), {"loss": np.float32(0.25), "lr": 1e-3})
    assert seen == [("loss", 0.25, 2), ("lr", 1e-3, 2)]
