"""Serving artifacts with :mod:`jax.export`: a model's inference function, its parameters baked in,
serialised as StableHLO with symbolic batch and length dimensions, and run again anywhere jax
runs, without seqjax (or the model's Python code) installed.

What gets exported is a pure function of arrays only (the parameters are closed over and become
constants of the program)::

    exported = export_stablehlo(fn, specs)              # jax.export.export(jax.jit(fn))(*specs)
    save_exported(exported, "model.stablehlo")          # exported.serialize(): bytes
    # on the serving side, with jax alone:
    exported = jax.export.deserialize(bytearray(open("model.stablehlo", "rb").read()))
    outputs = exported.call(*inputs)

Shapes are symbolic where a server needs them to vary (:func:`jax.export.symbolic_shape`): ``b``
(batch) and ``t`` (length) for the classifiers, with ``t <= max_len`` as a constraint where
learned position embeddings bound it; the GPT decoding step has a fixed cache capacity ``T`` and a
symbolic batch. One artifact serves every ``b`` and ``t``; XLA compiles it for each concrete shape
when it is first called. The artifact is for the platform it was exported for (``platforms``,
default the current backend; pass ``("cpu", "cuda")`` for both).

Three recipes return ``(fn, specs)`` for the models of :mod:`seqjax.nn`:

* :func:`lstm_classifier_serving` -- token ids (or features) ``[b, t]`` and ``seq_lengths`` ``[b]``
  -> logits ``[b, K]``: an embedding, any recurrent layer (the LSTM's fused-derivative scan
  included: only its forward pass is exported) and a linear head on the last valid state.
* :func:`bert_classifier_serving` -- :class:`~seqjax.nn.BertForSequenceClassification`:
  ``input_ids``, ``token_mask`` ``[b, t]`` -> logits ``[b, K]``.
* :func:`gpt_decode_step_serving` -- :meth:`~seqjax.nn.GPTLanguageModel.decode_step`:
  ``(k, v, index, tokens)`` -> ``(k, v, index, logits)``, the KV cache passed in and out as
  arrays (a server keeps it between calls).

Serialising needs the ``flatbuffers`` package (``pip install 'seqjax[export]'``).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.export.stablehlo import export_stablehlo, symbolic_specs
    >>> (x,) = symbolic_specs(("b, t, 3", jnp.float32))
    >>> exported = export_stablehlo(lambda x: jnp.tanh(x).sum(-1), [x])
    >>> exported.in_avals[0].shape
    (b, t, 3)
    >>> exported.call(jnp.ones((2, 5, 3))).shape
    (2, 5)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax import export as jax_export

from seqjax import _checks

INSTALL_HINT = "pip install 'seqjax[export]'  (flatbuffers; onnx, onnxruntime and jax2onnx for ONNX)"


def symbolic_specs(*shapes: tuple[str, Any], constraints: Sequence[str] = ()) -> list[jax.ShapeDtypeStruct]:
    """``jax.ShapeDtypeStruct`` s from ``("b, t", dtype)`` pairs whose dimension names are shared
    (one scope: ``b`` is the same dimension in every spec), with ``constraints`` such as
    ``"t <= 512"``."""
    if not shapes:
        raise ValueError("symbolic_specs needs at least one (shape, dtype) pair.")
    scope = jax_export.SymbolicScope(tuple(constraints))
    return [jax.ShapeDtypeStruct(jax_export.symbolic_shape(s, scope=scope), jnp.dtype(d)) for s, d in shapes]


def export_stablehlo(
    fn: Callable[..., Any], specs: Sequence[Any], *, platforms: Sequence[str] | None = None,
) -> jax_export.Exported:
    """``jax.export.export(jax.jit(fn))(*specs)``: ``specs`` are ``jax.ShapeDtypeStruct`` (pytrees
    of them), symbolic dimensions allowed (:func:`symbolic_specs`)."""
    kwargs = {} if platforms is None else {"platforms": tuple(platforms)}
    return jax_export.export(jax.jit(fn), **kwargs)(*specs)


def _require_flatbuffers() -> None:
    if importlib.util.find_spec("flatbuffers") is None:
        from seqjax.data.corpora import MissingOptionalDependency

        raise MissingOptionalDependency(
            f"serialising a jax.export artifact needs the flatbuffers package: {INSTALL_HINT}."
        )


def save_exported(exported: jax_export.Exported, path: str | Path) -> Path:
    """Write ``exported.serialize()`` (StableHLO and the calling convention) to ``path``."""
    _require_flatbuffers()
    path = Path(path)
    path.write_bytes(exported.serialize())
    return path


def load_exported(path: str | Path) -> jax_export.Exported:
    """The inverse of :func:`save_exported` (``jax.export.deserialize``; needs jax only)."""
    _require_flatbuffers()
    return jax_export.deserialize(bytearray(Path(path).read_bytes()))


# --- recipes ----------------------------------------------------------------------------------------


def lstm_classifier_serving(
    layer: Any, head: dict, *, embedding: jax.Array | None = None, features: int | None = None,
) -> tuple[Callable, list]:
    """Serving function of a recurrent text classifier::

        h_t    = Layer(E[ids_t])   (or the features x_t)        t < seq_lengths[b]
        logits = h_last W + b,     h_last = the state after each sequence's last valid step

    Args:
      layer: a :class:`seqjax.nn.RecurrentLayer` (``LSTM``, ``GRU``, ...): its cell, parameters
        and options.
      head: ``{"w": [h, K], "b": [K]}``.
      embedding: ``[V, d]``: inputs are token ids ``[b, t]``; None: inputs are features
        ``[b, t, features]``.
      features: the input width when ``embedding`` is None (default ``layer.in_features``).

    Returns:
      ``(fn, specs)``: ``fn(inputs, seq_lengths) -> logits [b, K]`` and symbolic specs
      ``("b, t"`` int32 or ``"b, t, d"`` float32, ``"b"`` int32).
    """
    from seqjax.recurrence import rnn

    params, cell, options = layer.pure_params(), layer.cell, dict(layer.options)
    if set(head) != {"w", "b"}:
        raise ValueError(f"head must be {{'w': [h, K], 'b': [K]}}; got keys {sorted(head)}.")

    def fn(inputs, seq_lengths):
        xs = inputs if embedding is None else jnp.take(embedding, inputs, axis=0)
        carry, _ = rnn(cell, params, xs, seq_lengths=seq_lengths, return_carry=True, **options)
        h = getattr(carry, "h", carry)
        return h @ head["w"] + head["b"]

    if embedding is None:
        d = layer.in_features if features is None else features
        specs = symbolic_specs((f"b, t, {d}", jnp.float32), ("b", jnp.int32))
    else:
        specs = symbolic_specs(("b, t", jnp.int32), ("b", jnp.int32))
    return fn, specs


def bert_classifier_serving(model: Any, *, max_len: int | None = None) -> tuple[Callable, list]:
    """Serving function of a :class:`~seqjax.nn.BertForSequenceClassification`:
    ``fn(input_ids [b, t] int32, token_mask [b, t] bool) -> logits [b, K]`` (dropout off), with
    ``t <= max_len`` (default ``max_position_embeddings``)."""
    max_len = model.config.max_position_embeddings if max_len is None else max_len
    _checks.positive_int("max_len", max_len)

    def fn(input_ids, token_mask):
        return model(input_ids, token_mask=token_mask)

    return fn, symbolic_specs(("b, t", jnp.int32), ("b, t", jnp.bool_), constraints=(f"t <= {max_len}",))


def gpt_decode_step_serving(model: Any, cache_len: int) -> tuple[Callable, list]:
    """Serving function of one decoding step of a :class:`~seqjax.nn.GPTLanguageModel`::

        fn(k, v, index, tokens) -> (k, v, index, logits)
        k, v: [b, n_layer, cache_len, n_head, d_head],  index: [b] int32,  tokens: [b] int32,
        logits: [b, V]

    the cache of :meth:`~seqjax.nn.GPTLanguageModel.init_cache` flattened into arrays (a
    prefill is this step called once per prompt token, or a separate export of
    :meth:`~seqjax.nn.GPTLanguageModel.prefill`). ``cache_len`` is fixed, the batch symbolic.
    """
    _checks.positive_int("cache_len", cache_len)
    cache = jax.eval_shape(lambda: model.init_cache(1, cache_len))
    step = model.step_fn()

    def fn(k, v, index, tokens):
        new, logits = step({"k": k, "v": v, "index": index}, tokens)
        return new["k"], new["v"], new["index"], logits

    (b,) = jax_export.symbolic_shape("b")
    specs = [jax.ShapeDtypeStruct((b, *cache[name].shape[1:]), cache[name].dtype) for name in ("k", "v", "index")]
    return fn, [*specs, jax.ShapeDtypeStruct((b,), jnp.int32)]
