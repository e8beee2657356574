"""Shared by the experiment tests: each experiment's uninterrupted ``--quick`` run, run once per
test session in its own process (as a user runs it), and the helpers of
``experiment_processes`` (next to this file) importable under any pytest import mode."""

from __future__ import annotations

import os
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import experiment_processes  # noqa: E402


@pytest.fixture(scope="session")
def xla_cache(tmp_path_factory):
    """``name -> the compilation-cache directory`` shared by the processes of one experiment."""
    root = tmp_path_factory.mktemp("xla_cache")
    return lambda name: root / name


@pytest.fixture(scope="session")
def quick_run_dir(tmp_path_factory, xla_cache):
    """``name -> the run directory of an uninterrupted `python -m experiments.<name> --quick```,
    run on first use."""
    done = {}

    def get(name: str):
        if name not in done:
            base = tmp_path_factory.mktemp(f"{name}_quick")
            experiment_processes.run(name, ["--quick", "--out", str(base / "run")],
                                     cache_dir=xla_cache(name), log=base / "stderr.log")
            done[name] = base / "run"
        return done[name]

    return get

