"""Memory-efficient (chunked, "flash") scaled dot-product attention.

Rabe & Staats 2021 ("Self-attention does not need O(n^2) memory") and FlashAttention(-2) (Dao et
al. 2022, 2023) as pure JAX: the queries are cut into chunks of ``q_chunk`` rows and the keys into
chunks of ``k_chunk`` columns; for each query chunk the key chunks are visited in turn with a
running (online) softmax::

    s     = q_i k_j^T                   one [q_chunk, k_chunk] block (q pre-multiplied by scale)
    m'    = max(m, rowmax(s))           running max
    p     = exp(s - m')                 0 where masked
    l'    = exp(m - m') l + rowsum(p)   running denominator
    acc'  = exp(m - m') acc + p v_j     running numerator
    out_i = acc / l,  lse_i = m + log l (a row with no allowed key: out 0, lse 0)

so the ``[t, s]`` score matrix never exists beyond one block. The gradient is a
:func:`jax.custom_vjp` (FlashAttention-2's backward) that keeps only ``(q, k, v, out, lse)`` and
recomputes each block's scores::

    p = exp(q_i k_j^T - lse_i)      D_i = rowsum(dout_i * out_i)
    dv_j += p^T dout_i              dp = dout_i v_j^T
    ds = p * (dp - D_i)             dq_i += ds k_j,   dk_j += ds^T q_i

so forward *and* backward memory grow linearly in the sequence length (plain autodiff through the
forward loop would save every block).

Conventions are those of :func:`seqjax.attention.dot_product_attention`: ``[b, t, h, d]``
tensors; boolean masks (True = may attend) broadcastable to ``[b, h, t, s]``; grouped-query
attention (``h_kv`` kv heads dividing ``h``; query head ``n`` reads kv head ``n // (h / h_kv)``);
a row with no allowed key gives zeros, and zero gradients, never NaN; masked logits take the most
negative finite value of the statistics' dtype; softmax statistics and accumulators in float32
whatever the input dtype (float64 for float64 inputs). bfloat16 works: the block products take
bfloat16 operands and accumulate in float32.

``causal=True`` builds each block's causal mask (key ``j`` visible to query ``i`` iff ``j <= i``,
as :func:`seqjax.attention.causal_mask` with ``offset=0``) from indices, skips the blocks above the
diagonal (about half the work for square attention) and masks only the blocks that cross it.
Lengths that are not multiples of the chunk sizes are padded internally and the padding masked.

:func:`memory_efficient_attention` adds an ``implementation=`` switch between this form, the lean
dense form :func:`seqjax.attention.dot_product.dense_attention` (``"dense"``: fastest on CPU for
short sequences) and :func:`jax.nn.dot_product_attention` (``"xla"``, or ``"cudnn"`` on a GPU);
:func:`auto_implementation` gives the rule behind ``"auto"``. Measurements:
``python -m benchmarks.attention``.

Not supported here (use :func:`seqjax.attention.dot_product_attention`): an additive ``bias``,
attention dropout, returning the weights.

Example::

    >>> import jax
    >>> from seqjax.attention.chunked import chunked_attention
    >>> q, k, v = jax.random.normal(jax.random.key(0), (3, 2, 100, 4, 8))
    >>> chunked_attention(q, k, v, causal=True, q_chunk=32, k_chunk=32).shape
    (2, 100, 4, 8)
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from seqjax import _checks
from seqjax.attention.dot_product import dense_attention

#: Default chunk sizes ``(q_chunk, k_chunk)``, measured fastest on a 2-core CPU (forward + backward,
#: b2 h8 d64, N 1024-4096, benchmarks/attention.py): 1024 x 1024 blocks without a causal mask;
#: 512 x 512 with one (smaller blocks waste less work on the blocks that cross the diagonal).
DEFAULT_CHUNKS = (1024, 1024)
DEFAULT_CAUSAL_CHUNKS = (512, 512)

IMPLEMENTATIONS = ("auto", "chunked", "dense", "xla", "cudnn")

#: The CPU part of ``implementation="auto"`` (see :func:`auto_implementation`): the dense route
#: while one head's score matrix has at most ``CPU_DENSE_MAX_SCORES`` entries (``t * s``) and
#: the float32 weights of all heads (``4 b h t s`` bytes) at most ``CPU_DENSE_MAX_BYTES``.
CPU_DENSE_MAX_SCORES = 2**17  # 256 x 512; N = 362 square
CPU_DENSE_MAX_BYTES = 2**25
#: Accelerators (not measured): the ``"xla"`` route while the float32 score matrix fits this.
ACCELERATOR_DENSE_MAX_BYTES = 2**30


def chunked_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    *,
    mask: jax.Array | None = None,
    causal: bool = False,
    scale: float | jax.Array | None = None,
    q_chunk: int | None = None,
    k_chunk: int | None = None,
    head_chunk: int | None = None,
) -> jax.Array:
    """Scaled dot-product attention in ``[q_chunk, k_chunk]`` blocks, with linear memory.

    The function of :func:`seqjax.attention.dot_product_attention` without bias or dropout::

        out_i = sum_j softmax_j(scale * q_i . k_j  over the keys j with mask_ij) v_j

    with a custom gradient that recomputes the blocks instead of storing them.

    Args:
      query: ``[b, t, h, d]`` (or unbatched ``[t, h, d]``).
      key: ``[b, s, h_kv, d]``, ``h_kv`` dividing ``h``.
      value: ``[b, s, h_kv, d_v]``.
      mask: boolean, True = may attend, broadcastable to ``[b, h, t, s]`` (``[h, t, s]``
        unbatched). A ``[b, 1, 1, s]`` padding mask costs ``O(s)``; a mask with a ``t`` axis is
        itself quadratic, and one that varies over the batch but not the heads is laid out per
        kv head (``h_kv`` copies): pass causal masking as ``causal=True``.
      causal: also mask the keys ``j > i`` (top-left aligned, as ``causal_mask(t, s)``),
        skipping the blocks above the diagonal.
      scale: multiplies the logits; default ``1 / sqrt(d)``. May be a traced array (it is
        differentiated like any input).
      q_chunk: rows per query chunk; default 1024, or 512 with ``causal`` (see
        ``DEFAULT_CHUNKS``). An upper bound: the chunks are balanced, so ``t`` is padded by less
        than one chunk.
      k_chunk: columns per key chunk; default 1024, or 512 with ``causal``. Likewise balanced.
      head_chunk: how many of the ``b * h_kv`` (batch, kv head) pairs one step of the loop
        handles (rounded down to a divisor of ``b * h_kv``). Default: as many as keep a block
        near ``2^20`` scores: one per step for long sequences (per-head products measured ~15%
        faster on CPU than batched ones), many for short ones (fewer loop steps).

    Returns:
      ``[b, t, h, d_v]`` in the inputs' promoted dtype.
    """
    query, key, value, mask, unbatched = _validate(query, key, value, mask)
    if not isinstance(causal, bool):
        raise ValueError(f"causal must be a bool; got {causal!r}.")
    default_q, default_k = DEFAULT_CAUSAL_CHUNKS if causal else DEFAULT_CHUNKS
    q_chunk = default_q if q_chunk is None else q_chunk
    k_chunk = default_k if k_chunk is None else k_chunk
    _checks.positive_int("q_chunk", q_chunk)
    _checks.positive_int("k_chunk", k_chunk)
    if head_chunk is not None:
        _checks.positive_int("head_chunk", head_chunk)
        head_chunk = int(head_chunk)
    out = _chunked(query, key, value, mask, scale, causal, int(q_chunk), int(k_chunk), head_chunk)
    return out[0] if unbatched else out


def memory_efficient_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    *,
    mask: jax.Array | None = None,
    causal: bool = False,
    scale: float | jax.Array | None = None,
    implementation: str = "auto",
    q_chunk: int | None = None,
    k_chunk: int | None = None,
    head_chunk: int | None = None,
) -> jax.Array:
    """Scaled dot-product attention by the fastest memory-safe route for the backend.

    Arguments and result as :func:`chunked_attention` (the chunk sizes matter only to it), plus
    ``implementation``:

    - ``"chunked"``: :func:`chunked_attention` (any backend; memory linear in the length).
    - ``"dense"``: :func:`seqjax.attention.dot_product.dense_attention`: the ``[b, h, t, s]``
      weights in one fused softmax, a custom VJP that keeps them (quadratic memory; the fastest
      form on CPU for short sequences).
    - ``"xla"``: :func:`jax.nn.dot_product_attention` with ``implementation="xla"``: the full
      ``[b, h, t, s]`` score matrix (quadratic memory). Rows with no allowed key are zeroed here
      (jax.nn alone returns the mean of the values there).
    - ``"cudnn"``: :func:`jax.nn.dot_product_attention` with ``implementation="cudnn"`` (GPU,
      float16/bfloat16; cuDNN's fused flash kernel, linear memory). Raises where unavailable.
    - ``"auto"`` (default): the rule of :func:`auto_implementation`, in short: on CPU
      ``"dense"`` while ``t s <= 2^17`` (N = 362 square) and the weights take at most 32 MiB, ``"chunked"``
      above; on GPU ``"cudnn"`` for half precision, else ``"xla"`` while the score matrix fits
      1 GiB, ``"chunked"`` above.

    Every route computes the same function (masks, ``causal``, ``scale``, grouped kv heads, rows
    with no allowed key giving zeros) up to float rounding, and its gradient.
    """
    _checks.choice("implementation", implementation, IMPLEMENTATIONS)
    if implementation == "auto":
        implementation = _auto_implementation(query, key, value)
        if implementation == "cudnn":
            try:
                return _jax_nn_attention(query, key, value, mask, causal, scale, "cudnn")
            except (ValueError, NotImplementedError, RuntimeError, TypeError):
                implementation = _dense_or_chunked(query, key)
    if implementation == "dense":
        return dense_attention(query, key, value, mask=mask, causal=causal, scale=scale)
    if implementation == "chunked":
        return chunked_attention(
            query, key, value, mask=mask, causal=causal, scale=scale, q_chunk=q_chunk,
            k_chunk=k_chunk, head_chunk=head_chunk,
        )
    return _jax_nn_attention(query, key, value, mask, causal, scale, implementation)


# --- validation -------------------------------------------------------------------------------


def _validate(query, key, value, mask):
    """Shapes as :func:`seqjax.attention.dot_product_attention`; returns rank-4 inputs in one
    dtype and a rank-4 mask (or None)."""
    query, key, value, unbatched = _checks.attention_inputs(query, key, value)
    t, s = query.shape[1], key.shape[1]
    if t == 0 or s == 0:
        raise ValueError(
            f"query and key need at least one time step; got q_len {t} and kv_len {s}."
        )
    mask = _checks.attention_mask("mask", mask, query.shape, s, unbatched)
    return query, key, value, mask, unbatched


def _balanced_chunk(length: int, chunk: int) -> int:
    """The chunk size actually used: ``ceil(length / n)`` for ``n = ceil(length / chunk)`` chunks,
    rounded up to a multiple of 8 when that stays <= ``chunk`` (vector-friendly rows)."""
    n = -(-length // chunk)
    size = -(-length // n)
    return min(chunk, -(-size // 8) * 8)


# --- the chunked computation -------------------------------------------------------------------


def _stats_dtype(dtype):
    """Softmax statistics and accumulators: float32 (float64 for float64 inputs), and the masked
    logit, the most negative finite value of that dtype (never -inf or a -1e9 that overflows)."""
    stats = jnp.promote_types(dtype, jnp.float32)
    return stats, float(jnp.finfo(stats).min)


@functools.partial(jax.jit, static_argnums=(5, 6, 7, 8))
def _chunked(query, key, value, mask, scale, causal, q_chunk, k_chunk, head_chunk):
    """Validated ``[b, t, h, d]`` inputs to ``[b, t, h, d_v]``: scale, pad, block, run the kernel.

    Everything outside :func:`_flash` is O(t + s) reshaping that plain autodiff handles (so a
    traced ``scale`` gets its gradient through ``q * scale``).
    """
    b, t, h, d = query.shape
    s, h_kv, dv = key.shape[1], key.shape[2], value.shape[3]
    g, n = h // h_kv, b * h_kv
    dtype = query.dtype
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    query = (query.astype(_stats_dtype(dtype)[0]) * scale).astype(dtype)

    qc, kc = _balanced_chunk(t, q_chunk), _balanced_chunk(s, k_chunk)
    nq, nk = -(-t // qc), -(-s // kc)
    tp, sp, rows = nq * qc, nk * kc, g * qc
    # Per kv head (n = b * h_kv of them), blocked: q [n, nq, rows, d], whose block rows are the
    # g query heads sharing that kv head, each with qc positions; k and v [n, nk, kc, d].
    q = jnp.pad(query, ((0, 0), (0, tp - t), (0, 0), (0, 0)))
    q = q.reshape(b, nq, qc, h_kv, g, d).transpose(0, 3, 1, 4, 2, 5).reshape(n, nq, rows, d)
    k, v = (
        jnp.pad(x, ((0, 0), (0, sp - s), (0, 0), (0, 0)))
        .reshape(b, nk, kc, h_kv, x.shape[-1]).transpose(0, 3, 1, 2, 4).reshape(n, nk, kc, x.shape[-1])
        for x in (key, value)
    )
    if mask is not None:
        mask = _block_mask(mask, b, h_kv, g, qc, kc, nq, nk)

    # The kernel runs on `heads` kv heads at a time (a sequential map over groups of heads): a
    # block of about 2^20 scores per step measured fastest on CPU (per-head matrix products
    # beat batched ones there), while short sequences still batch many heads per step.
    heads = _heads_per_step(n, rows, kc, head_chunk)
    groups = n // heads
    to_kernel = lambda x: jnp.swapaxes(x.reshape(groups, heads, *x.shape[1:]), 1, 2)
    q, k, v = to_kernel(q), to_kernel(k), to_kernel(v)  # [groups, n_chunks, heads, .., ..]
    shared_mask = mask is None or mask.shape[0] == 1
    if mask is not None:
        # [n|1, a, e, r, f] -> [a, e, 1, r, f] (shared) or [groups, a, e, heads, r, f]
        mask = mask[:, :, :, None][0] if shared_mask else jnp.moveaxis(
            mask.reshape(groups, heads, *mask.shape[1:]), 1, 3)
    flash = lambda q, k, v, m: _flash(q, k, v, m, causal, s, qc)
    if groups == 1:
        out = flash(q[0], k[0], v[0], mask if shared_mask else mask[0])[None]
    elif shared_mask:
        out = lax.map(lambda a: flash(*a, mask), (q, k, v))
    else:
        out = lax.map(lambda a: flash(*a), (q, k, v, mask))
    # [groups, nq, heads, rows, dv] -> [b, t, h, dv]
    out = jnp.swapaxes(out, 1, 2).reshape(b, h_kv, nq, g, qc, dv)
    out = out.transpose(0, 2, 4, 1, 3, 5).reshape(b, tp, h, dv)
    return out[:, :t]


def _heads_per_step(n: int, rows: int, kc: int, head_chunk: int | None, target: int = 2**20) -> int:
    """The largest divisor of ``n`` that is at most ``head_chunk`` (default: at most
    ``target / (rows * kc)``), at least 1."""
    limit = target // (rows * kc) if head_chunk is None else head_chunk
    heads = max(1, min(n, limit))
    while n % heads:
        heads -= 1
    return heads


def _block_mask(mask, b, h_kv, g, qc, kc, nq, nk):
    """``[mb, mh, mt, ms]`` (each 1 or full) to ``[n|1, nq|1, nk|1, rows|1, kc|1]`` (``n = b
    h_kv``, ``rows = g qc``), blocked like q and k and padded with False.

    Axes of size 1 stay size 1 (a ``[1, 1, t, s]`` mask is not copied per head); a mask that
    varies over batch or heads is laid out per kv head (a ``[b, 1, t, s]`` one is copied h_kv
    times: pass causal masks as ``causal=True`` instead)."""
    mb, mh, mt, ms = mask.shape
    if mt > 1:
        mask = jnp.pad(mask, ((0, 0), (0, 0), (0, nq * qc - mt), (0, 0)))
    if ms > 1:
        mask = jnp.pad(mask, ((0, 0), (0, 0), (0, 0), (0, nk * kc - ms)))
    a, c = (nq, qc) if mt > 1 else (1, 1)
    e, f = (nk, kc) if ms > 1 else (1, 1)
    hk, gg = (h_kv, g) if mh > 1 else (1, 1)
    mask = mask.reshape(mb, hk, gg, a, c, e, f)
    if mb > 1 or mh > 1:
        mask = jnp.broadcast_to(mask, (b, h_kv, gg, a, c, e, f)).reshape(b * h_kv, gg, a, c, e, f)
    else:
        mask = mask.reshape(1, gg, a, c, e, f)
    mask = mask.transpose(0, 2, 4, 1, 3, 5)  # [n|1, a, e, gg, c, f]
    if gg == 1 and c == 1:
        return mask.reshape(mask.shape[0], a, e, 1, f)
    mask = jnp.broadcast_to(mask, (*mask.shape[:3], g, qc, f))
    return mask.reshape(mask.shape[0], a, e, g * qc, f)


def _block_valid(mask, i, j, *, causal, kv_len, qc, kc, rows, kv_padded, transposed=False):
    """Boolean, broadcastable to a ``[heads, rows, kc]`` block (i, j) (``[.., kc, rows]``
    if ``transposed``): the allowed entries, or None when all are."""
    valid = None
    if causal or kv_padded:
        shape = (kc, rows) if transposed else (rows, kc)
        r_axis, c_axis = (1, 0) if transposed else (0, 1)
        # Row r of a block is query position i * qc + r % qc (rows run over g heads x qc).
        r = i * qc + lax.broadcasted_iota(jnp.int32, shape, r_axis) % qc
        c = j * kc + lax.broadcasted_iota(jnp.int32, shape, c_axis)
        if causal:
            valid = c <= r
        if kv_padded:
            valid = c < kv_len if valid is None else valid & (c < kv_len)
    if mask is not None:
        mi = mask[0] if mask.shape[0] == 1 else lax.dynamic_index_in_dim(mask, i, 0, keepdims=False)
        block = mi[0] if mi.shape[0] == 1 else lax.dynamic_index_in_dim(mi, j, 0, keepdims=False)
        if transposed:
            block = jnp.swapaxes(block, -1, -2)
        valid = block if valid is None else valid & block
    return valid


def _loop_ranges(causal, nq, nk, qc, kc, kv_len, has_mask):
    """Which blocks to visit and which of them need a mask, as traced functions of the chunk.

    ``for_query_chunk(i) = (j_clean, j_end)``: key chunks ``[0, j_clean)`` need no mask,
    ``[j_clean, j_end)`` do, ``[j_end, nk)`` are skipped (entirely above the causal diagonal).
    ``for_key_chunk(j) = (i_start, i_clean)``: the transpose: query chunks ``[0, i_start)`` are
    skipped, ``[i_start, i_clean)`` need the mask, ``[i_clean, nq)`` do not.
    """
    kv_padded = nk * kc != kv_len

    def for_query_chunk(i):
        if causal:
            j_end = jnp.minimum(((i + 1) * qc - 1) // kc + 1, nk)
            # key chunk j is clean iff its last column (j + 1) kc - 1 <= the first row i qc
            j_clean = jnp.minimum((i * qc + 1) // kc, j_end)
        else:
            j_end = jnp.asarray(nk, jnp.int32)
            j_clean = j_end
        if kv_padded:
            j_clean = jnp.minimum(j_clean, nk - 1)
        if has_mask:
            j_clean = jnp.zeros_like(j_clean)
        return j_clean.astype(jnp.int32), j_end.astype(jnp.int32)

    def for_key_chunk(j):
        if causal:
            i_start = jnp.minimum((j * kc) // qc, nq)
            i_clean = jnp.clip(-(-((j + 1) * kc - 1) // qc), i_start, nq)
        else:
            i_start = jnp.asarray(0, jnp.int32)
            i_clean = i_start
        if kv_padded:
            i_clean = jnp.where(j == nk - 1, nq, i_clean)
        if has_mask:
            i_clean = jnp.full_like(i_clean, nq)
        return i_start.astype(jnp.int32), i_clean.astype(jnp.int32)

    return for_query_chunk, for_key_chunk


def _flash_forward(q, k, v, mask, causal, kv_len, qc):
    """Forward kernel on blocked inputs: ``out [nq, heads, rows, dv]`` (inputs' dtype) and
    ``lse [nq, heads, rows]`` (float32), ``rows = g * qc``."""
    nq, rows, nk, kc = q.shape[0], q.shape[2], k.shape[0], k.shape[2]
    acc_dtype, neg = _stats_dtype(q.dtype)
    stat_shape = q.shape[1:3]
    dv = v.shape[-1]
    kv_padded = nk * kc != kv_len
    needs_mask = causal or kv_padded or mask is not None
    ranges, _ = _loop_ranges(causal, nq, nk, qc, kc, kv_len, mask is not None)

    def query_chunk(args):
        i, qi = args

        def step(masked):
            def body(j, carry):
                m, l, acc = carry
                kj = lax.dynamic_index_in_dim(k, j, 0, keepdims=False)
                vj = lax.dynamic_index_in_dim(v, j, 0, keepdims=False)
                s = jnp.einsum("nrd,ncd->nrc", qi, kj, preferred_element_type=acc_dtype)
                if masked:
                    valid = _block_valid(mask, i, j, causal=causal, kv_len=kv_len, qc=qc, kc=kc,
                                         rows=rows, kv_padded=kv_padded)
                    s = jnp.where(valid, s, neg)
                m_new = jnp.maximum(m, s.max(axis=-1))
                # A row with nothing allowed yet keeps m = neg; shifting it by 0 instead makes
                # exp(neg - 0) = 0 at its masked entries (exp(neg - neg) would be 1).
                shift = jnp.where(m_new == neg, 0.0, m_new) if masked else m_new
                p = jnp.exp(s - shift[..., None])
                alpha = jnp.exp(m - shift)
                l = alpha * l + p.sum(axis=-1)
                pv = jnp.einsum("nrc,ncv->nrv", p.astype(v.dtype), vj,
                                preferred_element_type=acc_dtype)
                return m_new, l, alpha[..., None] * acc + pv

            return body

        carry = (
            jnp.full(stat_shape, neg, acc_dtype),
            jnp.zeros(stat_shape, acc_dtype),
            jnp.zeros((*stat_shape, dv), acc_dtype),
        )
        j_clean, j_end = ranges(i)
        carry = lax.fori_loop(0, j_clean, step(False), carry)
        if needs_mask:
            carry = lax.fori_loop(j_clean, j_end, step(True), carry)
        m, l, acc = carry
        nonempty = l > 0.0
        safe_l = jnp.where(nonempty, l, 1.0)
        out = jnp.where(nonempty[..., None], acc / safe_l[..., None], 0.0)
        lse = jnp.where(nonempty, m + jnp.log(safe_l), 0.0)
        return out.astype(v.dtype), lse

    return lax.map(query_chunk, (jnp.arange(nq, dtype=jnp.int32), q))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _flash(q, k, v, mask, causal, kv_len, qc):
    return _flash_forward(q, k, v, mask, causal, kv_len, qc)[0]


def _flash_fwd(q, k, v, mask, causal, kv_len, qc):
    out, lse = _flash_forward(q, k, v, mask, causal, kv_len, qc)
    return out, (q, k, v, mask, out, lse)


def _flash_bwd(causal, kv_len, qc, residuals, dout):
    """FlashAttention-2's backward, key chunks outside, query chunks inside.

    Blocks are computed transposed, ``[heads, kc, rows]`` (keys x queries), so that the two
    products accumulated per key chunk, ``dv_j += p^T dout_i`` and ``dk_j += ds^T q_i``, and the
    third, ``dq_i^T += k_j^T ds^T``, all read their operands in place: no block is transposed
    (on CPU, transposing two blocks per step cost more than the arithmetic they fed).
    """
    q, k, v, mask, out, lse = residuals
    nq, rows, nk, kc = q.shape[0], q.shape[2], k.shape[0], k.shape[2]
    acc_dtype, _ = _stats_dtype(q.dtype)
    kv_padded = nk * kc != kv_len
    needs_mask = causal or kv_padded or mask is not None
    _, ranges = _loop_ranges(causal, nq, nk, qc, kc, kv_len, mask is not None)
    dout = dout.astype(v.dtype)
    # D_i = rowsum(dout * out) = rowsum(p * dp): the softmax Jacobian's subtracted term.
    delta = jnp.sum(dout.astype(acc_dtype) * out.astype(acc_dtype), axis=-1)

    def key_chunk(dq_t, args):
        j, kj, vj = args

        def step(masked):
            def body(i, carry):
                dq_t, dk, dv = carry
                qi = lax.dynamic_index_in_dim(q, i, 0, keepdims=False)
                doi = lax.dynamic_index_in_dim(dout, i, 0, keepdims=False)
                lse_i = lax.dynamic_index_in_dim(lse, i, 0, keepdims=False)
                delta_i = lax.dynamic_index_in_dim(delta, i, 0, keepdims=False)
                s_t = jnp.einsum("ncd,nrd->ncr", kj, qi, preferred_element_type=acc_dtype)
                p_t = jnp.exp(s_t - lse_i[..., None, :])
                if masked:
                    valid = _block_valid(mask, i, j, causal=causal, kv_len=kv_len, qc=qc, kc=kc,
                                         rows=rows, kv_padded=kv_padded, transposed=True)
                    p_t = jnp.where(valid, p_t, 0.0)
                dv = dv + jnp.einsum("ncr,nrv->ncv", p_t.astype(v.dtype), doi,
                                     preferred_element_type=acc_dtype)
                dp_t = jnp.einsum("ncv,nrv->ncr", vj, doi, preferred_element_type=acc_dtype)
                ds_t = (p_t * (dp_t - delta_i[..., None, :])).astype(q.dtype)
                dk = dk + jnp.einsum("ncr,nrd->ncd", ds_t, qi,
                                     preferred_element_type=acc_dtype)
                dq_i = lax.dynamic_index_in_dim(dq_t, i, 0, keepdims=False) + jnp.einsum(
                    "ncd,ncr->ndr", kj, ds_t, preferred_element_type=acc_dtype)
                return lax.dynamic_update_index_in_dim(dq_t, dq_i, i, 0), dk, dv

            return body

        carry = (dq_t, jnp.zeros(kj.shape, acc_dtype), jnp.zeros(vj.shape, acc_dtype))
        i_start, i_clean = ranges(j)
        if needs_mask:
            carry = lax.fori_loop(i_start, i_clean, step(True), carry)
        dq_t, dk, dv = lax.fori_loop(i_clean, nq, step(False), carry)
        return dq_t, (dk.astype(k.dtype), dv.astype(v.dtype))

    # dq accumulates transposed, [nq, heads, d, rows], and is transposed once at the end.
    dq_t = jnp.zeros((*q.shape[:2], q.shape[3], rows), acc_dtype)
    dq_t, (dk, dv) = lax.scan(key_chunk, dq_t, (jnp.arange(nk, dtype=jnp.int32), k, v))
    return jnp.swapaxes(dq_t, -1, -2).astype(q.dtype), dk, dv, None


_flash.defvjp(_flash_fwd, _flash_bwd)


# --- jax.nn route -------------------------------------------------------------------------------


def auto_implementation(
    batch: int, heads: int, q_len: int, kv_len: int, *, dtype=jnp.float32,
    backend: str | None = None,
) -> str:
    """The route ``memory_efficient_attention(implementation="auto")`` takes for these sizes.

    The rule, with ``P = 4 b h t s`` the bytes of the float32 weights:

    * CPU: ``"dense"`` (:func:`seqjax.attention.dot_product.dense_attention`) while
      ``t s <= CPU_DENSE_MAX_SCORES = 2^17`` (256 x 512, or N = 362 square) and
      ``P <= CPU_DENSE_MAX_BYTES = 32 MiB``; ``"chunked"`` above. Measured on a quiet machine
      (``python -m benchmarks.attention --subject auto``, forward + backward, b2 h8 d64, float32,
      2 cores, 2026-12-01, each form in its own process, 3 alternating rounds, medians): dense /
      chunked time 0.89 at N = 128, 0.76 at 256, 0.91 at 512, 1.62 at 1024, 1.92 at 4096. At
      512 the gain (3 ms of 34) is within the spread between processes of one form (the chunked
      route took 30.1 ms as ``auto`` and 33.7 ms as ``chunked``) and the dense form needs twice
      the memory (+175 MiB against +87), so the rule stops at N = 362; the dense weights (16 MiB
      at 512) leave the cache, while the chunked form works in blocks of about 2^20 scores.
    * GPU with bfloat16/float16: ``"cudnn"`` (``memory_efficient_attention`` falls back to the
      next rule if cuDNN refuses the call).
    * GPU/TPU otherwise: ``"xla"`` while ``P <= ACCELERATOR_DENSE_MAX_BYTES = 1 GiB``,
      ``"chunked"`` above. *Not measured* (no accelerator was available when this was written):
      on accelerators XLA's fused dense attention is usually faster than a sequential loop of
      blocks while it fits. Re-measure with the benchmark there.

    Args:
      batch, heads, q_len, kv_len: ``b``, ``h`` (query heads), ``t``, ``s``.
      dtype: the inputs' dtype.
      backend: ``"cpu"``, ``"gpu"``, ``"tpu"``...; default ``jax.default_backend()``.

    Example::

        >>> from seqjax.attention.chunked import auto_implementation
        >>> auto_implementation(2, 8, 256, 256, backend="cpu"), auto_implementation(2, 8, 4096, 4096, backend="cpu")
        ('dense', 'chunked')
    """
    for name, value in (("batch", batch), ("heads", heads), ("q_len", q_len), ("kv_len", kv_len)):
        _checks.positive_int(name, value)
    backend = jax.default_backend() if backend is None else backend
    if not isinstance(backend, str):
        raise ValueError(f"backend must be a string such as 'cpu' or 'gpu'; got {backend!r}.")
    weight_bytes = 4 * batch * heads * q_len * kv_len
    if backend == "cpu":
        small = q_len * kv_len <= CPU_DENSE_MAX_SCORES and weight_bytes <= CPU_DENSE_MAX_BYTES
        return "dense" if small else "chunked"
    if backend == "gpu" and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16):
        return "cudnn"
    return "xla" if weight_bytes <= ACCELERATOR_DENSE_MAX_BYTES else "chunked"


def _sizes(query, key):
    q_shape, k_shape = jnp.shape(query), jnp.shape(key)
    b = 1 if len(q_shape) == 3 else q_shape[0]
    return b, q_shape[-2], q_shape[-3], k_shape[-3]


def _auto_implementation(query, key, value) -> str:
    """:func:`auto_implementation` for these arrays on the default backend."""
    return auto_implementation(*_sizes(query, key), dtype=jnp.result_type(query, key, value))


def _dense_or_chunked(query, key) -> str:
    """``"xla"`` while the float32 score matrix ``[b, h, t, s]`` stays under 1 GiB (the
    accelerator rule after cuDNN refused)."""
    b, h, t, s = _sizes(query, key)
    return "xla" if 4 * b * h * t * s <= ACCELERATOR_DENSE_MAX_BYTES else "chunked"


def _jax_nn_attention(query, key, value, mask, causal, scale, implementation):
    query, key, value, mask, unbatched = _validate(query, key, value, mask)
    if not isinstance(causal, bool):
        raise ValueError(f"causal must be a bool; got {causal!r}.")
    d = query.shape[-1]
    if scale is None:
        scale = 1.0 / math.sqrt(d)
    elif isinstance(scale, jax.Array):
        # jax.nn takes a Python float; an array scale is folded into the query instead.
        query = (query.astype(_stats_dtype(query.dtype)[0]) * scale).astype(query.dtype)
        scale = 1.0
    out = jax.nn.dot_product_attention(
        query, key, value, mask=mask, scale=float(scale), is_causal=causal,
        implementation=implementation,
    )
    if mask is not None:
        # jax.nn gives a row with no allowed key the mean of the values; ours gives zeros.
        allowed = mask
        if causal:
            t, s = query.shape[1], key.shape[1]
            allowed = allowed & (jnp.arange(s)[None, :] <= jnp.arange(t)[:, None])
        any_key = jnp.any(allowed, axis=-1)  # [mb, mh, t]
        out = jnp.where(jnp.swapaxes(any_key, 1, 2)[..., None], out, 0.0).astype(out.dtype)
    return out[0] if unbatched else out
