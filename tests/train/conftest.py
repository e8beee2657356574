"""Shared setup for the training-core tests: make ``train_tiny`` (a tiny model, loss and data
stream, next to this file) importable under any pytest import mode."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
