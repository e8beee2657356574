"""Benchmarks, ``python -m benchmarks.<name>``: each contender timed in its own fresh process.

- :mod:`benchmarks.recurrent`: one LSTM layer, seqjax vs Flax NNX vs PyTorch ``nn.LSTM``.
- :mod:`benchmarks.attention`: chunked vs dense attention vs PyTorch SDPA, time and memory.

Shared, once: :mod:`benchmarks.harness` (processes, alternating rounds, the report and the CLI),
:mod:`benchmarks.timing` (what one process measures), :mod:`benchmarks.stats` (ratio of medians
and its spread), :mod:`benchmarks.tables` (the Markdown tables).
"""
