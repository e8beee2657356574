"""Suite-wide settings, applied before any test module imports jax.

Most of the suite's time is XLA compiling hundreds of small programs, not running them. Tests check
values, never speed, so they compile with LLVM's backend optimisations off, which measured 35%
less CPU time on `tests/nn tests/seq2seq` (59 s -> 39 s), and without LLVM's expensive passes
(another 3-13% of CPU time on `tests/seq2seq/test_seq2seq_recurrent.py`, 30 s -> 26-29 s user).
Set XLA_FLAGS yourself to override.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
