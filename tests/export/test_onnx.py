"""ONNX through jax2onnx, run with onnxruntime against JAX at three shapes per model (1e-4).
Skipped, with the install line, when the export extra is absent."""

import jax
import numpy as np
import pytest

from seqjax.export import bert_classifier_serving, lstm_classifier_serving
from seqjax.export.onnx import gpt_forward_serving, onnx_available, run_onnx, to_onnx
from seqjax.export.stablehlo import gpt_decode_step_serving
from serving_models import CACHE_LEN, bert_classifier, gpt, lstm_classifier, lstm_reference, token_inputs

pytestmark = pytest.mark.skipif(
    not onnx_available(),
    reason="ONNX export needs the export extra (jax2onnx, onnx, onnxruntime): pip install 'seqjax[export]'",
)

SHAPES = [(1, 3), (3, 8), (2, 12)]


def test_bert_classifier(tmp_path):
    model = bert_classifier()
    fn, specs = bert_classifier_serving(model)
    path = tmp_path / "bert.onnx"
    to_onnx(fn, specs, path)
    forward = jax.jit(fn)
    for i, shape in enumerate(SHAPES):
        ids, lengths = token_inputs(shape, i)
        mask = np.arange(shape[1])[None, :] < lengths[:, None]
        (got,) = run_onnx(path, ids, mask)
        np.testing.assert_allclose(got, forward(ids, mask), rtol=0, atol=1e-4)


def test_lstm_classifier_scan_and_custom_jvp_convert():
    layer, head, embedding = lstm_classifier()
    fn, specs = lstm_classifier_serving(layer, head, embedding=embedding)
    model = to_onnx(fn, specs)
    ops = {node.op_type for node in model.graph.node}
    assert "Loop" in ops or "Scan" in ops                  # the recurrence stays a loop over t
    for i, shape in enumerate(SHAPES):
        ids, lengths = token_inputs(shape, 10 + i)
        (got,) = run_onnx(model, ids, lengths)
        np.testing.assert_allclose(got, lstm_reference(layer, head, embedding, ids, lengths), rtol=0, atol=1e-4)


def test_gpt_cache_free_path_and_unsupported_cached_step():
    lm = gpt()
    fn, specs = gpt_forward_serving(lm)
    model = to_onnx(fn, specs)
    forward = jax.jit(fn)
    for i, shape in enumerate(SHAPES):
        ids, _ = token_inputs(shape, 20 + i)
        (got,) = run_onnx(model, ids)
        np.testing.assert_allclose(got, forward(ids), rtol=0, atol=1e-4)
    # documented limitation (seqjax.export.onnx): the KV-cache write is a batched scatter that
    # jax2onnx 0.17 refuses. If this starts to pass, update the module docstring.
    step, step_specs = gpt_decode_step_serving(lm, CACHE_LEN)
    with pytest.raises(Exception, match="scatter"):
        to_onnx(step, step_specs)
