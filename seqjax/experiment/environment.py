"""What a run ran on (library versions, backend, devices), recorded in its summary.

Example::

    >>> from seqjax.experiment.environment import environment
    >>> sorted(environment())
    ['backend', 'cpu_count', 'devices', 'jax', 'python']
"""

from __future__ import annotations

import os
import platform
from typing import Any


def environment() -> dict[str, Any]:
    """Python and JAX versions, the default backend, the device kinds and the CPU count."""
    import jax

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [d.device_kind for d in jax.devices()],
        "cpu_count": os.cpu_count(),
    }
