"""Run experiments as a user does, each in its own process: start, finish, SIGKILL at a checkpoint.

The processes of one experiment share a persistent XLA compilation cache
(``JAX_COMPILATION_CACHE_DIR``, one directory per experiment and test session): the first process
compiles, the later ones load the same executables, which makes them several times faster and
changes no number (a cached executable is the one the compiler produced; checked by comparing a
cached run with an uncached one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 300


def start(name: str, argv: list[str], *, cache_dir: Path, log: Path) -> subprocess.Popen:
    """``python -m experiments.<name> *argv`` from the repository root; stderr to ``log``."""
    env = os.environ | {
        "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    with open(log, "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", f"experiments.{name}", *argv], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=err,
        )


def finish(proc: subprocess.Popen, log: Path) -> None:
    """Wait for ``proc``; fail with the end of its stderr unless it exits with status 0."""
    assert proc.wait(timeout=TIMEOUT_S) == 0, Path(log).read_text()[-3000:]


def run(name: str, argv: list[str], *, cache_dir: Path, log: Path) -> None:
    finish(start(name, argv, cache_dir=cache_dir, log=log), log)


def checkpoints(run_dir: Path) -> list[int]:
    """The steps of the whole checkpoints on disk (the manifest is written last), oldest first."""
    directory = Path(run_dir) / "checkpoints"
    if not directory.is_dir():
        return []
    return sorted(int(d.name) for d in directory.iterdir()
                  if d.name.isdigit() and (d / "seqjax_manifest.json").is_file())


def kill_at_checkpoint(proc: subprocess.Popen, run_dir: Path, step: int, log: Path) -> None:
    """Poll until checkpoint ``step`` is on disk, then SIGKILL ``proc`` (wherever it is by then)."""
    deadline = time.monotonic() + TIMEOUT_S
    while step not in checkpoints(run_dir):
        assert proc.poll() is None, f"the run ended before checkpoint {step}:\n{Path(log).read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no checkpoint {step} after {TIMEOUT_S} s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def records(run_dir: Path) -> list[dict]:
    """The records of ``metrics.jsonl``, in order."""
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def summary_without_timings(run_dir: Path) -> dict:
    """``metrics.json`` without ``timings``, the one part that depends on the wall clock."""
    summary = json.loads((Path(run_dir) / "metrics.json").read_text())
    timings = summary.pop("timings")
    assert timings["runtime_s"] > 0
    return summary
