"""Forward+backward time of one LSTM layer: seqjax vs Flax NNX vs PyTorch ``nn.LSTM``.

    python -m benchmarks.recurrent                      # both configs, 3 alternating rounds
    python -m benchmarks.recurrent --rounds 5 --out runs/benchmarks/recurrent.json
    python -m benchmarks.recurrent --configs 0 --contenders seqjax torch
    python -m benchmarks.recurrent --quick              # tiny sizes, 2 rounds (used by the tests)

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

    from seqjax.cells import lstm
    from seqjax.recurrence import rnn

    cell = lstm()
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

    def loss(params, xs):  # Flax's carry is (c, h); passing it keeps RNG streams out of the model
        return _loss(nnx.merge(graphdef, params)(xs, initial_carry=(zeros, zeros)))

    return timing.jax_step(jax.grad(loss, argnums=(0, 1)), params, _inputs(p))


def _build_torch(p: dict) -> timing.Step:
    import torch

    torch.manual_seed(0)
    layer = torch.nn.LSTM(p["inputs"], p["hidden"], batch_first=True)
    xs = torch.randn(p["batch"], p["length"], p["inputs"], requires_grad=True)

    def step():
        layer.zero_grad(set_to_none=True)
        xs.grad = None
        ys, _ = layer(xs)
        ys.square().mean().backward()
        return [q.grad for q in layer.parameters()] + [xs.grad]

    return timing.torch_step(step)


def build(contender: str, params: dict) -> timing.Step:
    """The prepared forward+backward step of ``contender`` on the config ``params``."""
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
    p = harness.parser(BENCHMARK, __doc__)
    p.add_argument("--configs", type=int, nargs="+", choices=range(len(CONFIGS)), default=None,
                   help="indices of the configs to run: " + ", ".join(f"{i} = {c.name}" for i, c in enumerate(CONFIGS)))
    args = p.parse_args(argv)
    if args.quick:
        configs = QUICK_CONFIGS
    else:
        configs = CONFIGS if args.configs is None else tuple(CONFIGS[i] for i in args.configs)
    return harness.execute(BENCHMARK, configs, args, p)


if __name__ == "__main__":
    main(sys.argv[1:])
