"""Forward+backward time of one LSTM layer (seqjax vs Flax NNX vs PyTorch ``nn.LSTM``), of one GRU
layer (seqjax vs Flax NNX ``GRUCell`` vs ``nn.GRU``), and of 2-layer and 2-layer bidirectional LSTM
and GRU stacks (seqjax's schedules vs PyTorch).

    python -m benchmarks.recurrent                      # both configs, 3 alternating rounds
    python -m benchmarks.recurrent --rounds 5 --out runs/benchmarks/recurrent.json
    python -m benchmarks.recurrent --configs 0 --contenders seqjax torch
    python -m benchmarks.recurrent --quick              # tiny sizes, 2 rounds (used by the tests)
    python -m benchmarks.recurrent --suite stacked      # the 8 stack configs (--configs to pick)
    python -m benchmarks.recurrent --suite stacked --quick
    python -m benchmarks.recurrent --suite gru          # one GRU layer (3 configs)

Suite ``gru``: one reset-after GRU layer, ``rnn(gru(), params, xs)`` (the generic scan, JAX's
own derivative) against ``nnx.RNN(nnx.GRUCell(d, h))`` and ``torch.nn.GRU(d, h, batch_first=True)``,
at the two LSTM sizes and at the size of the ``long_range`` paper preset's adding problem at
``T = 1000`` (B64 I2 H128).

Suite ``stacked``: ``seqjax.recurrence.stacked(cell, layers, xs, schedule=...)`` against
``torch.nn.LSTM`` / ``torch.nn.GRU(d, h, num_layers=2, bidirectional=..., batch_first=True)``,
same loss and gradients (all layers' parameters and ``xs``). Contenders: ``seqjax`` (the default
``schedule="auto"``), ``seqjax_layered`` (one loop per layer and direction, the reference path),
``seqjax_wavefront`` (a unidirectional stack as one wavefront scan, each bidirectional layer's
two directions in one scan: :mod:`seqjax.recurrence.wavefront`), ``torch``.

What one timed call computes, per contender: the gradient of the scalar loss ``mean(ys ** 2)``
with respect to the layer's parameters *and* its input ``xs`` ``[b, t, d]`` (float32, zero
initial state, no padding), waiting until it is computed.

Each contender runs in its own fresh process with its library's defaults, in alternating rounds
(:mod:`benchmarks.harness`); the report (:mod:`benchmarks.tables`) gives every contender's
median time over the rounds and the ratio of medians seqjax / other with the range of the
per-round ratios. Nothing is set for PyTorch: it uses its default thread count (one per core) and
OpenMP's default wait policy, as a user running it would.

Contenders:
  seqjax       ``rnn(lstm(), params, xs)`` (:mod:`seqjax.recurrence`): for the plain LSTM this takes
               the fused path with its own derivative rule (:mod:`seqjax.recurrence.fused_lstm`).
  seqjax_scan  the same with ``fused=False``: the generic ``vmap`` of a ``lax.scan`` of the cell.
  flax_opt     ``nnx.RNN(nnx.OptimizedLSTMCell(d, h))``, split/merge in a pure loss.
  flax_lstm    ``nnx.RNN(nnx.LSTMCell(d, h))`` (eight separate gate products), same wrapping.
  torch        ``torch.nn.LSTM(d, h, batch_first=True)`` (oneDNN on CPU), eager.

The JAX contenders are ``jax.jit``-compiled ahead of time; compilation is timed apart and reported
in the details table, never in the call times.

Environment, not set here: every call allocates large fresh buffers (scan residuals, gradients),
so page faults are a visible share of the time. ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (huge
pages for malloc, where the kernel's transparent huge pages are in ``madvise`` mode) cut the time
of every contender by 16-25% on the 2-core development machine, leaving the ratios about as they
were. The report lists such variables when they are set.
"""

from __future__ import annotations

import sys

from benchmarks import harness, timing

CONTENDERS = (
    harness.Contender("seqjax", "seqjax", "jax",
                      "`seqjax.recurrence.rnn(lstm(), params, xs)`, fused LSTM derivative rule, `jax.jit`"),
    harness.Contender("flax_opt", "Flax NNX `OptimizedLSTMCell`", "jax",
                      "`flax.nnx.RNN(nnx.OptimizedLSTMCell(d, h))`, split/merge in a pure loss, `jax.jit`"),
    harness.Contender("flax_lstm", "Flax NNX `LSTMCell`", "jax",
                      "`flax.nnx.RNN(nnx.LSTMCell(d, h))`, split/merge in a pure loss, `jax.jit`"),
    harness.Contender("torch", "PyTorch `nn.LSTM`", "torch",
                      "`torch.nn.LSTM(d, h, batch_first=True)`, eager, default threads"),
    harness.Contender("seqjax_scan", "seqjax, generic scan", "jax",
                      "`rnn(..., fused=False)`: `vmap` of a `lax.scan` of the cell, autodiff, `jax.jit`"),
)

BENCHMARK = harness.Benchmark(
    name="recurrent",
    module="benchmarks.recurrent",
    what="Forward+backward of one LSTM layer: the gradient of `mean(ys ** 2)` with respect to the "
    "parameters and the inputs `xs` `[b, t, d]`, float32, zero initial state.",
    subject="seqjax",
    contenders=CONTENDERS,
)


def config(batch: int, length: int, inputs: int, hidden: int) -> harness.Config:
    return harness.Config(f"B{batch} T{length} I{inputs} H{hidden}",
                          {"batch": batch, "length": length, "inputs": inputs, "hidden": hidden})


CONFIGS = (config(32, 128, 64, 256), config(64, 512, 512, 512))
QUICK_CONFIGS = (config(2, 5, 3, 4),)

STACKED_CONTENDERS = (
    harness.Contender("seqjax", "seqjax `auto`", "jax",
                      "`seqjax.recurrence.stacked(cell, layers, xs)`, default `schedule=\"auto\"`, `jax.jit`"),
    harness.Contender("seqjax_layered", "seqjax `layered`", "jax",
                      "`stacked(..., schedule=\"layered\")`: one loop per layer and direction, `jax.jit`"),
    harness.Contender("seqjax_wavefront", "seqjax `wavefront`", "jax",
                      "`stacked(..., schedule=\"wavefront\")`: one diagonal scan per unidirectional stack, "
                      "both directions in one scan per bidirectional layer, `jax.jit`"),
    harness.Contender("torch", "PyTorch", "torch",
                      "`torch.nn.LSTM` / `nn.GRU(d, h, num_layers=2, bidirectional=..., batch_first=True)`, "
                      "eager, default threads"),
)

STACKED_BENCHMARK = harness.Benchmark(
    name="recurrent",
    module="benchmarks.recurrent",
    what="Forward+backward of a 2-layer (optionally bidirectional) LSTM or GRU stack: the gradient of "
    "`mean(ys ** 2)` with respect to every layer's parameters and the inputs `xs` `[b, t, d]`, "
    "float32, zero initial state.",
    subject="seqjax",
    contenders=STACKED_CONTENDERS,
)


def stacked_config(cell: str, bidirectional: bool, batch: int, length: int, inputs: int, hidden: int,
                   layers: int = 2) -> harness.Config:
    kind = f"{cell.upper()} {layers}-layer{' bidir' if bidirectional else ''}"
    return harness.Config(f"{kind} B{batch} T{length} I{inputs} H{hidden}",
                          {"batch": batch, "length": length, "inputs": inputs, "hidden": hidden,
                           "cell": cell, "layers": layers, "bidirectional": bidirectional})


STACKED_CONFIGS = tuple(
    stacked_config(cell, bidir, *size)
    for size in ((32, 128, 64, 256), (64, 512, 512, 512))
    for cell in ("lstm", "gru")
    for bidir in (True, False)
)
STACKED_QUICK_CONFIGS = (stacked_config("lstm", True, 2, 5, 3, 4), stacked_config("gru", False, 2, 5, 3, 4))

GRU_CONTENDERS = (
    harness.Contender("seqjax", "seqjax", "jax",
                      "`seqjax.recurrence.rnn(gru(), params, xs)`: `vmap` of a `lax.scan` of the cell, "
                      "autodiff, `jax.jit`"),
    harness.Contender("flax_gru", "Flax NNX `GRUCell`", "jax",
                      "`flax.nnx.RNN(nnx.GRUCell(d, h))`, split/merge in a pure loss, `jax.jit`"),
    harness.Contender("torch", "PyTorch `nn.GRU`", "torch",
                      "`torch.nn.GRU(d, h, batch_first=True)`, eager, default threads"),
)

GRU_BENCHMARK = harness.Benchmark(
    name="recurrent",
    module="benchmarks.recurrent",
    what="Forward+backward of one GRU layer (reset after the recurrent product, PyTorch's form): the "
    "gradient of `mean(ys ** 2)` with respect to the parameters and the inputs `xs` `[b, t, d]`, "
    "float32, zero initial state.",
    subject="seqjax",
    contenders=GRU_CONTENDERS,
)


def gru_config(batch: int, length: int, inputs: int, hidden: int) -> harness.Config:
    return harness.Config(f"GRU B{batch} T{length} I{inputs} H{hidden}",
                          {"batch": batch, "length": length, "inputs": inputs, "hidden": hidden, "cell": "gru"})


GRU_CONFIGS = (gru_config(32, 128, 64, 256), gru_config(64, 512, 512, 512), gru_config(64, 1000, 2, 128))
GRU_QUICK_CONFIGS = (gru_config(2, 5, 3, 4),)
SUITES = {"single": (BENCHMARK, CONFIGS, QUICK_CONFIGS),
          "stacked": (STACKED_BENCHMARK, STACKED_CONFIGS, STACKED_QUICK_CONFIGS),
          "gru": (GRU_BENCHMARK, GRU_CONFIGS, GRU_QUICK_CONFIGS)}


# --- builders: each runs in its contender's own process --------------------------------------


def _inputs(p: dict):
    import jax.numpy as jnp
    import numpy as np

    # numpy's generator: eager jax.random calls would each compile, seconds of setup per process
    rng = np.random.default_rng(1)
    return jnp.asarray(rng.standard_normal((p["batch"], p["length"], p["inputs"]), dtype=np.float32))


def _loss(ys):
    import jax.numpy as jnp

    return jnp.mean(jnp.square(ys))


def _build_seqjax(p: dict, *, fused: bool) -> timing.Step:
    import jax

    from seqjax.cells import gru, lstm
    from seqjax.recurrence import rnn

    cell = {"lstm": lstm, "gru": gru}[p.get("cell", "lstm")]()
    params = jax.jit(lambda key: cell.init(key, p["inputs"], p["hidden"]))(jax.random.key(0))
    grad = jax.grad(lambda params, xs: _loss(rnn(cell, params, xs, fused=fused)), argnums=(0, 1))
    return timing.jax_step(grad, params, _inputs(p))


def _build_flax(p: dict, cell_name: str) -> timing.Step:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    cell = getattr(nnx, cell_name)(p["inputs"], p["hidden"], rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(nnx.RNN(cell, rngs=False), nnx.Param)
    zeros = jnp.zeros((p["batch"], p["hidden"]))
    # Flax's LSTM carry is (c, h), its GRU carry h; passing it keeps RNG streams out of the model
    carry = zeros if cell_name == "GRUCell" else (zeros, zeros)

    def loss(params, xs):
        return _loss(nnx.merge(graphdef, params)(xs, initial_carry=carry))

    return timing.jax_step(jax.grad(loss, argnums=(0, 1)), params, _inputs(p))


def _build_torch(p: dict) -> timing.Step:
    import torch

    torch.manual_seed(0)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[p.get("cell", "lstm")]
    return _torch_step(module(p["inputs"], p["hidden"], batch_first=True), p)


def _torch_step(layer, p: dict) -> timing.Step:
    """The timed PyTorch step of ``layer`` (an ``nn.LSTM`` or ``nn.GRU``) on fresh inputs."""
    import torch

    xs = torch.randn(p["batch"], p["length"], p["inputs"], requires_grad=True)

    def step():
        layer.zero_grad(set_to_none=True)
        xs.grad = None
        ys, _ = layer(xs)
        ys.square().mean().backward()
        return [q.grad for q in layer.parameters()] + [xs.grad]

    return timing.torch_step(step)


def _build_seqjax_stacked(p: dict, schedule: str) -> timing.Step:
    import jax

    from seqjax.cells import gru, lstm
    from seqjax.recurrence import stacked, stacked_init

    cell = {"lstm": lstm, "gru": gru}[p["cell"]]()
    layers = jax.jit(lambda key: stacked_init(cell, key, p["inputs"], p["hidden"], p["layers"],
                                              bidirectional=p["bidirectional"]))(jax.random.key(0))
    grad = jax.grad(lambda layers, xs: _loss(stacked(cell, layers, xs, schedule=schedule)), argnums=(0, 1))
    return timing.jax_step(grad, layers, _inputs(p))


def _build_torch_stacked(p: dict) -> timing.Step:
    import torch

    torch.manual_seed(0)
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[p["cell"]]
    layer = module(p["inputs"], p["hidden"], num_layers=p["layers"], bidirectional=p["bidirectional"],
                   batch_first=True)
    return _torch_step(layer, p)


def build(contender: str, params: dict) -> timing.Step:
    """The prepared forward+backward step of ``contender`` on the config ``params`` (a stack
    config, with ``"layers"``, selects the stacked suite's contenders; a config with
    ``"cell": "gru"`` the GRU suite's)."""
    if "layers" in params:
        if contender == "torch":
            return _build_torch_stacked(params)
        schedules = {"seqjax": "auto", "seqjax_layered": "layered", "seqjax_wavefront": "wavefront"}
        if contender in schedules:
            return _build_seqjax_stacked(params, schedules[contender])
        raise ValueError(f"contender must be one of {[c.name for c in STACKED_CONTENDERS]}; got {contender!r}.")
    if params.get("cell") == "gru":
        if contender == "seqjax":
            return _build_seqjax(params, fused=True)
        if contender == "flax_gru":
            return _build_flax(params, "GRUCell")
        if contender == "torch":
            return _build_torch(params)
        raise ValueError(f"contender must be one of {[c.name for c in GRU_CONTENDERS]}; got {contender!r}.")
    if contender == "seqjax":
        return _build_seqjax(params, fused=True)
    if contender == "seqjax_scan":
        return _build_seqjax(params, fused=False)
    if contender == "flax_opt":
        return _build_flax(params, "OptimizedLSTMCell")
    if contender == "flax_lstm":
        return _build_flax(params, "LSTMCell")
    if contender == "torch":
        return _build_torch(params)
    raise ValueError(f"contender must be one of {[c.name for c in CONTENDERS]}; got {contender!r}.")


# --- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    pre = __import__("argparse").ArgumentParser(add_help=False)
    pre.add_argument("--suite", choices=tuple(SUITES), default="single")
    suite = pre.parse_known_args(argv)[0].suite
    benchmark, all_configs, quick_configs = SUITES[suite]
    p = harness.parser(benchmark, __doc__)
    p.add_argument("--suite", choices=tuple(SUITES), default="single",
                   help="single: one LSTM layer (default); stacked: 2-layer and 2-layer bidirectional "
                   "LSTM and GRU stacks, seqjax's schedules against PyTorch; gru: one GRU layer")
    p.add_argument("--configs", type=int, nargs="+", choices=range(len(all_configs)), default=None,
                   help="indices of the configs of the suite to run: "
                   + ", ".join(f"{i} = {c.name}" for i, c in enumerate(all_configs)))
    args = p.parse_args(argv)
    if args.quick:
        configs = quick_configs
    else:
        configs = all_configs if args.configs is None else tuple(all_configs[i] for i in args.configs)
    return harness.execute(benchmark, configs, args, p, extra={"suite": suite})


if __name__ == "__main__":
    main(sys.argv[1:])
