"""Benchmarks: `python -m benchmarks.<name>`; timing helpers in :mod:`benchmarks.timing`."""
