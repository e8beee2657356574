"""Suite-wide settings, applied before any test module imports jax.

Most of the suite's time is XLA compiling hundreds of small programs, not running them. Tests check
values, never speed, so they compile with LLVM's backend optimisations off, which measured 35%
less CPU time on `tests/nn tests/seq2seq` (59 s -> 39 s), and without LLVM's expensive passes
(another 3-13% of CPU time on `tests/seq2seq/test_seq2seq_recurrent.py`, 30 s -> 26-29 s user),
and with XLA:CPU's older elemental emitters instead of its MLIR fusion emitters
(`--xla_cpu_use_fusion_emitters=false`: `tests/transformer` 116-119 s -> 67 s of CPU time, and
`experiments.attention_basics --quick` 41 s -> 26 s, on a quiet 2-core machine). Subprocesses (the
experiments' `--quick` runs) inherit the variable. Set XLA_FLAGS yourself to override.
"""

import os

import pytest

os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true --xla_cpu_use_fusion_emitters=false",
)

_TESTS = os.path.dirname(os.path.abspath(__file__))
_EXPERIMENTS = os.path.join(_TESTS, "experiments")


def _experiment_names() -> list[str]:
    root = os.path.join(os.path.dirname(_TESTS), "experiments")
    return [f.removesuffix(".py") for f in os.listdir(root) if f.endswith(".py") and not f.startswith("_")]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    """pytest-xdist groups for ``-n 2 --dist loadgroup`` (the README's command): the tests of one
    file run in one worker, so a module- or session-scoped fixture (a trained model, the browser,
    an experiment's ``--quick`` run) is built once per suite, not once in each worker. An
    experiment's group also holds its SIGKILL-and-resume case in ``experiments/test_resume.py``,
    which reads the same ``--quick`` run. Docstring examples stay ungrouped."""
    for item in items:
        path = str(item.fspath)
        if not path.startswith(_TESTS + os.sep):
            continue
        name = os.path.relpath(path, _TESTS)
        if os.path.dirname(path) == _EXPERIMENTS:
            name = os.path.basename(path).removeprefix("test_").removesuffix(".py")
            # test_<experiment>_<part>.py shares <experiment>'s --quick run: the same group.
            name = max((e for e in _experiment_names() if name == e or name.startswith(e + "_")), key=len, default=name)
            params = getattr(getattr(item, "callspec", None), "params", {})
            if name == "resume" and isinstance(params.get("name"), str):
                name = params["name"]
            name = f"experiments/{name}"
        item.add_marker(pytest.mark.xdist_group(name))
