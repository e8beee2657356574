"""jax.export artifacts with symbolic batch/length: saved, reloaded in a subprocess in which seqjax
cannot be imported, and equal to JAX's outputs to 1e-5 at three shapes per model."""

import json
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.export import (
    bert_classifier_serving,
    export_stablehlo,
    gpt_decode_step_serving,
    load_exported,
    lstm_classifier_serving,
    save_exported,
    symbolic_specs,
)
from serving_models import (
    CACHE_LEN,
    bert_classifier,
    gpt,
    gpt_cache,
    lstm_classifier,
    lstm_reference,
    token_inputs,
)

pytest.importorskip("flatbuffers", reason="serialising jax.export artifacts needs flatbuffers: pip install 'seqjax[export]'")

SHAPES = {"lstm": [(1, 3), (4, 7), (2, 12)], "bert": [(1, 4), (3, 9), (2, 12)], "gpt_step": [1, 2, 5]}

# Runs with jax and numpy only: any attempt to import seqjax fails, and sys.modules is checked.
SERVER = textwrap.dedent("""
    import json, sys
    class NoSeqjax:
        def find_spec(self, name, path=None, target=None):
            if name == "seqjax" or name.startswith("seqjax."):
                raise ImportError("seqjax must not be imported by the server")
    sys.meta_path.insert(0, NoSeqjax())
    import jax, numpy as np
    jax.config.update("jax_platforms", "cpu")
    from jax import export
    cases = json.load(open(sys.argv[1]))
    errors = {}
    for name, case in cases.items():
        exported = export.deserialize(bytearray(open(case["artifact"], "rb").read()))
        for i, inputs_file in enumerate(case["inputs"]):
            data = np.load(inputs_file)
            args = [data[f"in{j}"] for j in range(case["n_in"])]
            outs = exported.call(*args)
            outs = outs if isinstance(outs, (tuple, list)) else [outs]
            errors[f"{name}/{i}"] = [float(np.abs(np.asarray(o, np.float64) - data[f"out{j}"]).max())
                                     for j, o in enumerate(outs)]
    assert not any(m == "seqjax" or m.startswith("seqjax.") for m in sys.modules)
    print(json.dumps({"errors": errors, "seqjax_loaded": "seqjax" in sys.modules}))
""")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """Export the three models, write their inputs and JAX's reference outputs per shape."""
    root = tmp_path_factory.mktemp("serving")
    cases, exported = {}, {}

    def add(name, fn_specs, inputs_and_refs):
        fn, specs = fn_specs
        ex = export_stablehlo(fn, specs)
        exported[name] = ex
        path = save_exported(ex, root / f"{name}.stablehlo")
        files = []
        for i, (inputs, refs) in enumerate(inputs_and_refs):
            f = root / f"{name}_{i}.npz"
            np.savez(f, **{f"in{j}": np.asarray(x) for j, x in enumerate(inputs)},
                     **{f"out{j}": np.asarray(r, np.float64) for j, r in enumerate(refs)})
            files.append(str(f))
        cases[name] = {"artifact": str(path), "inputs": files, "n_in": len(inputs_and_refs[0][0])}

    layer, head, embedding = lstm_classifier()
    rows = []
    for i, shape in enumerate(SHAPES["lstm"]):
        ids, lengths = token_inputs(shape, i)
        rows.append(((ids, lengths), (lstm_reference(layer, head, embedding, ids, lengths),)))
    add("lstm", lstm_classifier_serving(layer, head, embedding=embedding), rows)

    model = bert_classifier()
    forward = jax.jit(lambda ids, mask: model(ids, token_mask=mask))
    rows = []
    for i, shape in enumerate(SHAPES["bert"]):
        ids, lengths = token_inputs(shape, 10 + i)
        mask = np.arange(shape[1])[None, :] < lengths[:, None]
        rows.append(((ids, mask), (forward(ids, mask),)))
    add("bert", bert_classifier_serving(model), rows)

    lm = gpt()
    decode = jax.jit(lm.decode_step)
    rows = []
    for i, batch in enumerate(SHAPES["gpt_step"]):
        cache, tokens = gpt_cache(lm, batch, 20 + i)
        new, logits = decode(cache, jnp.asarray(tokens))
        rows.append(((cache["k"], cache["v"], cache["index"], tokens), (new["k"], new["v"], new["index"], logits)))
    add("gpt_step", gpt_decode_step_serving(lm, CACHE_LEN), rows)
    (root / "cases.json").write_text(json.dumps(cases))
    return root, cases, exported


def test_symbolic_signatures(artifacts):
    _, _, exported = artifacts
    assert str(exported["lstm"].in_avals[0].shape) == "(b, t)"
    assert str(exported["bert"].in_avals[1].shape) == "(b, t)"
    k = exported["gpt_step"].in_avals[0].shape
    assert str(k[0]) == "b" and tuple(k[1:]) == (2, CACHE_LEN, 2, 4)      # batch symbolic, cache fixed
    assert str(exported["gpt_step"].out_avals[3].shape) == "(b, 23)"


def test_reloaded_without_seqjax_reproduces_jax(artifacts):
    root, cases, _ = artifacts
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", SERVER, str(root / "cases.json")], capture_output=True, text=True,
                          cwd=root, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["seqjax_loaded"] is False
    assert len(result["errors"]) == 9                                     # 3 models x 3 shapes
    for key, errs in result["errors"].items():
        assert max(errs) <= 1e-5, (key, errs)


def test_in_process_reload(artifacts):
    root, cases, exported = artifacts
    again = load_exported(cases["bert"]["artifact"])
    data = np.load(cases["bert"]["inputs"][1])
    np.testing.assert_allclose(again.call(data["in0"], data["in1"]), data["out0"], rtol=0, atol=1e-5)


def test_length_constraint_is_enforced(artifacts):
    _, _, exported = artifacts
    ids = np.zeros((1, 13), np.int32)
    with pytest.raises(Exception, match="t <= 12|constraint"):
        exported["bert"].call(ids, np.ones((1, 13), bool))


def test_symbolic_specs_share_names_and_check():
    x, n = symbolic_specs(("b, t, 3", jnp.float32), ("b", jnp.int32))
    assert x.shape[0] == n.shape[0]
    with pytest.raises(ValueError, match="at least one"):
        symbolic_specs()


def test_optional_packages_are_imported_lazily():
    # (flatbuffers is left out: jax itself imports it when it is installed)
    code = ("import sys, seqjax, seqjax.export, seqjax.export.onnx, seqjax.train.finetune.lora; "
            "print(sorted(m for m in ('jax2onnx', 'onnx', 'onnxruntime', 'safetensors') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
