"""Forward+backward time and peak memory of attention: chunked (memory-efficient) vs dense forms.

    python -m benchmarks.attention                              # N = 128 ... 4096; B2 H8 d64
    python -m benchmarks.attention --lengths 1024 --rounds 5 --out runs/benchmarks/attention.json
    python -m benchmarks.attention --lengths 16384 --contenders chunked torch --rounds 2 --min-reps 1
    python -m benchmarks.attention --causal                     # causal attention instead
    python -m benchmarks.attention --quick                      # tiny sizes, 2 rounds (the tests)
    python -m benchmarks.attention --subject auto               # ratios auto / other (default chunked / other)

What one timed call computes, per contender and sequence length N: the output and the gradients
of ``sum(out * cotangent)`` with respect to q, k and v (``[b, N, h, d]``, float32), waiting until
they are computed.

Each contender runs in its own fresh process with its library's defaults, in alternating rounds
(:mod:`benchmarks.harness`); the report (:mod:`benchmarks.tables`) gives every contender's
median time over the rounds, the ratio of medians chunked / other with the range of the per-round
ratios, and memory: the whole process's peak resident set and the increment during the timed
calls (the peak during the calls minus the resident set just before them, after the inputs are
built and the program compiled: the memory attention itself needs). Nothing is set for PyTorch:
it uses its default thread count (one per core) and OpenMP's default wait policy.

Contenders:
  chunked  ``seqjax.attention.chunked.chunked_attention`` (online softmax in blocks, a custom VJP
           that recomputes the blocks: memory linear in N), ``jax.jit``.
  auto     ``seqjax.attention.memory_efficient_attention`` (``implementation="auto"``: on CPU the
           dense form below the crossover, chunked above: ``seqjax.attention.chunked.auto_implementation``),
           ``jax.jit``.
  dense    ``seqjax.attention.dense_attention``: one fused softmax, a custom VJP that keeps the
           ``[b, h, N, N]`` weights and recomputes nothing, ``jax.jit``.
  einsum   ``seqjax.attention.dot_product_attention``: einsum, float32 masked softmax, einsum (the
           plain form: ``[b, h, N, N]`` logits and weights), ``jax.jit``.
  jax_nn   ``jax.nn.dot_product_attention(implementation="xla")``, ``jax.jit``.
  torch    ``torch.nn.functional.scaled_dot_product_attention`` (its CPU flash kernel), eager.

A dense form whose score matrices would not fit in the memory available is skipped (the estimate
is in the report); a process that fails, runs out of memory or runs past ``--time-limit`` is
reported as such, and that contender is not started again for that length.
"""

from __future__ import annotations

import dataclasses
import sys

from benchmarks import harness, timing

DENSE = ("einsum", "jax_nn", "dense")
DEFAULT_LENGTHS = (128, 256, 512, 1024, 4096)
# Measured peak of the dense JAX forms, forward + backward, in units of one float32 [b, h, N, N]
# matrix (einsum: 6.0 GiB at b2 h8 N4096, 3x; jax_nn a little more): used to skip what cannot fit.
DENSE_FACTOR = 4.0

CONTENDERS = (
    harness.Contender("chunked", "seqjax chunked", "jax",
                      "`seqjax.attention.chunked.chunked_attention`: online softmax in blocks, "
                      "custom VJP recomputing them, `jax.jit`"),
    harness.Contender("auto", "seqjax auto", "jax",
                      "`seqjax.attention.memory_efficient_attention(implementation=\"auto\")`: "
                      "the route `auto_implementation` picks, `jax.jit`"),
    harness.Contender("dense", "seqjax dense", "jax",
                      "`seqjax.attention.dense_attention`: one fused softmax, custom VJP keeping "
                      "the weights (`[b, h, N, N]`), `jax.jit`"),
    harness.Contender("einsum", "plain einsum", "jax",
                      "`seqjax.attention.dot_product_attention`: einsum, float32 softmax, einsum "
                      "(`[b, h, N, N]` scores), `jax.jit`"),
    harness.Contender("jax_nn", "`jax.nn.dot_product_attention`", "jax",
                      "`jax.nn.dot_product_attention(implementation=\"xla\")`, `jax.jit`"),
    harness.Contender("torch", "PyTorch SDPA", "torch",
                      "`torch.nn.functional.scaled_dot_product_attention` (CPU flash kernel), eager, "
                      "default threads"),
)


def dense_bytes(params: dict) -> float:
    """Estimated peak of a dense form: ``DENSE_FACTOR`` float32 ``[b, h, N, N]`` matrices."""
    return DENSE_FACTOR * 4.0 * params["batch"] * params["heads"] * params["n"] ** 2


def skip(contender: str, params: dict) -> str | None:
    """Why ``contender`` cannot run at ``params`` (a dense form that would not fit), or None."""
    if contender not in DENSE:
        return None
    need, available = dense_bytes(params), harness.available_bytes()
    if need < 0.8 * available:
        return None
    return f"needs ~{need / 2**30:.0f} GiB, {available / 2**30:.0f} GiB available"


BENCHMARK = harness.Benchmark(
    name="attention",
    module="benchmarks.attention",
    what="Forward+backward of attention: the output and the gradients of `sum(out * ct)` with "
    "respect to q, k, v `[b, N, h, d]`, float32.",
    subject="chunked",
    contenders=CONTENDERS,
    config_header="N",
    skip=skip,
)


def config(n: int, *, batch: int, heads: int, head_dim: int, causal: bool,
           q_chunk: int | None, k_chunk: int | None) -> harness.Config:
    return harness.Config(str(n), {"n": n, "batch": batch, "heads": heads, "head_dim": head_dim,
                                   "causal": causal, "q_chunk": q_chunk, "k_chunk": k_chunk})


# --- builders: each runs in its contender's own process --------------------------------------


def _arrays(p: dict):
    import numpy as np

    rng = np.random.default_rng(0)
    dims = (p["batch"], p["n"], p["heads"], p["head_dim"])
    return [rng.standard_normal(dims, dtype=np.float32) for _ in range(4)]  # q, k, v, cotangent


def _build_torch(p: dict) -> timing.Step:
    import numpy as np
    import torch

    def to_torch(x, grad):  # [b, N, h, d] -> torch's [b, h, N, d]
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1, 3))).requires_grad_(grad)

    q, k, v, ct = _arrays(p)
    tq, tk, tv = (to_torch(x, True) for x in (q, k, v))
    tct = to_torch(ct, False)

    def step():
        for x in (tq, tk, tv):
            x.grad = None
        out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=p["causal"])
        out.backward(tct)
        return [out, tq.grad, tk.grad, tv.grad]

    return timing.torch_step(step)


def _build_jax(contender: str, p: dict) -> timing.Step:
    import jax
    import jax.numpy as jnp

    causal = p["causal"]
    if contender == "chunked":
        from seqjax.attention.chunked import chunked_attention

        def attention(q, k, v):
            return chunked_attention(q, k, v, causal=causal, q_chunk=p["q_chunk"], k_chunk=p["k_chunk"])

    elif contender == "auto":
        from seqjax.attention.chunked import memory_efficient_attention

        def attention(q, k, v):
            return memory_efficient_attention(q, k, v, causal=causal, q_chunk=p["q_chunk"],
                                              k_chunk=p["k_chunk"])

    elif contender == "dense":
        from seqjax.attention import dense_attention

        def attention(q, k, v):
            return dense_attention(q, k, v, causal=causal)

    elif contender == "einsum":
        from seqjax.attention import causal_mask, dot_product_attention

        mask = causal_mask(p["n"]) if causal else None

        def attention(q, k, v):
            return dot_product_attention(q, k, v, mask=mask)

    else:

        def attention(q, k, v):
            return jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation="xla")

    def forward_backward(q, k, v, ct):
        out, pullback = jax.vjp(attention, q, k, v)
        return (out, *pullback(ct))

    return timing.jax_step(forward_backward, *(jnp.asarray(x) for x in _arrays(p)))


def build(contender: str, params: dict) -> timing.Step:
    """The prepared forward+backward step of ``contender`` at the length and shape ``params``."""
    if contender == "torch":
        return _build_torch(params)
    if contender in ("chunked", "auto", "dense", "einsum", "jax_nn"):
        return _build_jax(contender, params)
    raise ValueError(f"contender must be one of {[c.name for c in CONTENDERS]}; got {contender!r}.")


# --- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    p = harness.parser(BENCHMARK, __doc__)
    p.add_argument("--lengths", type=int, nargs="+", default=None,
                   help="sequence lengths N (default 128 256 512 1024 4096; --quick 128)")
    p.add_argument("--causal", action="store_true", help="causal attention (default: no mask)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--q-chunk", type=int, default=None, help="chunked: query block (default: seqjax's)")
    p.add_argument("--k-chunk", type=int, default=None, help="chunked: key block (default: seqjax's)")
    p.add_argument("--subject", choices=[c.name for c in CONTENDERS if c.framework == "jax"],
                   default=BENCHMARK.subject,
                   help=f"the contender the ratio columns are about (default {BENCHMARK.subject})")
    args = p.parse_args(argv)
    if args.quick:
        lengths = tuple(args.lengths or (128,))
        shape = dict(batch=1, heads=2, head_dim=16, q_chunk=args.q_chunk or 64, k_chunk=args.k_chunk or 64)
    else:
        lengths = tuple(args.lengths or DEFAULT_LENGTHS)
        shape = dict(batch=args.batch, heads=args.heads, head_dim=args.head_dim,
                     q_chunk=args.q_chunk, k_chunk=args.k_chunk)
    for flag, value in [("--lengths", n) for n in lengths] + [
            ("--batch", shape["batch"]), ("--heads", shape["heads"]), ("--head-dim", shape["head_dim"])]:
        if value < 1:
            p.error(f"{flag} must be >= 1; got {value}")
    configs = [config(n, causal=args.causal, **shape) for n in lengths]
    extra = {"shape": f"b{shape['batch']} h{shape['heads']} d{shape['head_dim']}",
             "mask": "causal" if args.causal else "none",
             "chunks": ", ".join(f"{k} {shape[k] or 'seqjax default'}" for k in ("q_chunk", "k_chunk"))}
    benchmark = dataclasses.replace(BENCHMARK, subject=args.subject)
    return harness.execute(benchmark, configs, args, p, extra=extra)


if __name__ == "__main__":
    main(sys.argv[1:])
