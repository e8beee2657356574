"""ONNX export through ``jax2onnx`` (an optional extra), checked with ``onnxruntime``.

The same serving functions as :mod:`seqjax.export.stablehlo` (pure functions of arrays with the
parameters baked in) are traced by ``jax2onnx.to_onnx`` with symbolic dimensions (the specs'
names, ``b``, ``t``, become ONNX's dynamic dimensions), and :func:`run_onnx` runs a model with
``onnxruntime``.

What converts and what does not (jax2onnx 0.17.1, onnx 1.23, onnxruntime 1.32, jax 0.10.2):

* **BERT classifier** (embeddings, exact-erf GELU, LayerNorm, masked softmax attention, pooler):
  converts, symbolic ``b`` and ``t``.
* **Recurrent classifier** (:func:`~seqjax.export.stablehlo.lstm_classifier_serving`):
  ``lax.scan`` converts (to an ONNX ``Loop``), and so does the LSTM's ``jax.custom_jvp``
  derivative rule (:mod:`seqjax.recurrence.fused_lstm`): only its primal forward is traced.
  Symbolic ``t`` needs the length masks to be built with ``lax.broadcasted_iota`` rather than
  ``jnp.arange(t)`` (jax2onnx's dynamic dimensions have no ``arange``); :mod:`seqjax.recurrence`
  builds them so. ``reverse=True`` with ``seq_lengths`` (a per-sequence permutation from
  ``arange``) and bidirectional layers were not tried.
* **GPT decoding step with a KV cache: does not convert.** The cache write
  (:func:`seqjax.transformer.cache.write_kv`: a ``vmap`` of ``dynamic_update_slice`` at a
  per-sequence position) lowers to a batched ``scatter``, which jax2onnx refuses ("scatter
  pattern not supported in plugins"). The inference path that converts is the full forward pass
  (:func:`gpt_forward_serving`: ``ids [b, t] -> logits [b, t, V]``, no cache: each new token
  re-reads the prefix, ``O(t^2)`` per sequence instead of ``O(t)``). For a cached ONNX decoder the
  cache write would have to be a one-hot select, ``where(arange(T) == index[b], new, cache)``.
  The StableHLO artifact (:func:`~seqjax.export.stablehlo.gpt_decode_step_serving`) has no such
  limit.

Install: ``pip install 'seqjax[export]'``. jax2onnx 0.13-0.17 declare
``orbax-checkpoint<0.11.37`` (which seqjax's ``orbax-checkpoint>=0.12.8`` excludes) and hard
dependencies on equinox, dm-pix, netron and orbax-export that the converter does not import for
these models; installed with ``pip install --no-deps jax2onnx==0.17.1`` next to ``onnx``,
``onnx-ir`` and ``onnxruntime``, it converts them (a plugin for equinox or dm-pix logs an import
error and is skipped).

Example (skipped when the extra is missing)::

    >>> import jax.numpy as jnp
    >>> from seqjax.export.onnx import onnx_available, run_onnx, to_onnx
    >>> from seqjax.export.stablehlo import symbolic_specs
    >>> if onnx_available():
    ...     model = to_onnx(lambda x: jnp.tanh(x) * 2.0, symbolic_specs(("b, 3", jnp.float32)))
    ...     print(run_onnx(model, jnp.zeros((2, 3)))[0].shape)
    ... else:
    ...     print((2, 3))
    (2, 3)
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.export.stablehlo import INSTALL_HINT, symbolic_specs

REQUIRED = ("jax2onnx", "onnx", "onnxruntime")


def onnx_available() -> bool:
    """Whether jax2onnx, onnx and onnxruntime are installed (checked without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in REQUIRED)


def _require() -> None:
    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        from seqjax.data.corpora import MissingOptionalDependency

        raise MissingOptionalDependency(f"ONNX export needs {missing}, which are not installed: {INSTALL_HINT}.")


def to_onnx(fn: Callable[..., Any], specs: Sequence[jax.ShapeDtypeStruct], path: str | Path | None = None, *,
            name: str = "seqjax_model", opset: int = 23) -> Any:
    """Convert ``fn`` (arrays in, arrays or a tuple of arrays out) to an ONNX ``ModelProto`` with
    ``jax2onnx.to_onnx``; symbolic dimensions of ``specs`` become dynamic ONNX dimensions. With
    ``path``, also write the model there."""
    _require()
    from jax2onnx import to_onnx as convert

    # jax2onnx imports every plugin on first use and logs each one whose package (equinox,
    # dm-pix) is absent; those plugins are not needed here.
    logging.getLogger("jax2onnx").setLevel(logging.CRITICAL)
    model = convert(fn, list(specs), model_name=name, opset=opset)
    if path is not None:
        Path(path).write_bytes(model.SerializeToString())
    return model


def run_onnx(model: Any, *inputs: Any) -> list[np.ndarray]:
    """Run an ONNX model (a ``ModelProto``, its bytes, or a file path) with onnxruntime on the CPU;
    the inputs are matched to the graph's inputs by position."""
    _require()
    import onnxruntime as ort

    if isinstance(model, (str, Path)):
        source = str(model)
    elif isinstance(model, (bytes, bytearray)):
        source = bytes(model)
    else:
        source = model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if len(names) != len(inputs):
        raise ValueError(f"the model takes {len(names)} inputs ({names}); got {len(inputs)}.")
    return session.run(None, {n: np.asarray(x) for n, x in zip(names, inputs)})


def gpt_forward_serving(model: Any, *, max_len: int | None = None) -> tuple[Callable, list]:
    """The cache-free inference path of a :class:`~seqjax.nn.GPTLanguageModel` for ONNX:
    ``fn(input_ids [b, t] int32) -> logits [b, t, V]``, ``t <= max_len`` (default
    ``n_positions``). See the module docstring for why the cached step does not convert."""
    max_len = model.config.n_positions if max_len is None else max_len

    def fn(input_ids):
        return model(input_ids)

    return fn, symbolic_specs(("b, t", jnp.int32), constraints=(f"t <= {max_len}",))
