"""Shared setup for the sequence-engine tests: make the reference helpers importable under any
pytest import mode (``recurrence_refs`` lives next to this file)."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
