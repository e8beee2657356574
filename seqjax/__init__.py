"""seqjax: functional JAX/Flax sequence models.

Layers, top to bottom: ``seqjax.nn`` (Flax NNX modules) -> ``seqjax.recurrence`` (the sequence
engine) -> ``seqjax.cells`` (pure cells). ``seqjax.interop`` converts PyTorch weights.
"""

__version__ = "0.1.0"
