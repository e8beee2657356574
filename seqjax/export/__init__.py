"""Export for serving: :mod:`jax.export` StableHLO artifacts with symbolic batch and length
(:mod:`~seqjax.export.stablehlo`), and ONNX through the optional ``jax2onnx`` with an
``onnxruntime`` check (:mod:`~seqjax.export.onnx`). Nothing here is imported by ``import seqjax``."""

from seqjax.export.stablehlo import (
    bert_classifier_serving,
    export_stablehlo,
    gpt_decode_step_serving,
    load_exported,
    lstm_classifier_serving,
    save_exported,
    symbolic_specs,
)

__all__ = [
    "bert_classifier_serving", "export_stablehlo", "gpt_decode_step_serving", "load_exported",
    "lstm_classifier_serving", "save_exported", "symbolic_specs",
]
