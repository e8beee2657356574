"""The reset-after GRU over a whole sequence with a hand-written derivative (``jax.custom_jvp``).

Why: as for the LSTM (:mod:`seqjax.recurrence.fused_lstm`), differentiating ``lax.scan`` of
:func:`seqjax.cells.gru.gru_step` makes JAX accumulate ``dW_i``, ``dW_h``, ``db``, ``db_hn``
inside the reverse loop, one small product per step. The step (PyTorch's ``nn.GRU``)::

    a_t = x_t W_i + b                 q_t = h_{t-1} W_h           (each split into r, z, n)
    r = sigmoid(a_r + q_r)    z = sigmoid(a_z + q_z)    m = q_n + b_hn
    n = tanh(a_n + r * m)     h_t = (1 - z) * n + z * h_{t-1}

has the tangent (``s' = s (1 - s)`` for the sigmoids, ``1 - n^2`` for the tanh)::

    u_t   = dx_t W_i + x_t dW_i + db + [h_{t-1} dW_h]_{r,z} ,  w_t = [h_{t-1} dW_h]_n + db_hn
                                                             # [t * b, ...], outside the loop
    dq    = dh_{t-1} W_h                                     # the only product inside the loop
    dr = r(1-r) (u_r + dq_r)     dz = z(1-z) (u_z + dq_z)    dm = dq_n + w_t
    dn = (1 - n^2) (u_n + dr * m + r * dm)
    dh_t  = (1 - z) dn + z dh_{t-1} + dz (h_{t-1} - n)

JAX transposes this linear map into a reverse loop that carries only ``dh`` and emits the
cotangents of ``u`` and ``w``; the weight and input gradients are then single products over
all ``t * b`` rows. The forward pass also takes the input product ``x W_i`` out of the loop.
Being a JVP rule, forward mode (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``) keeps working.

Semantics are exactly those of :func:`seqjax.recurrence.rnn` with :func:`seqjax.cells.gru`
(no recurrent dropout): at a step where ``valid`` is False the carry is left unchanged and the
output is zero. Time-major and batched; :func:`rnn` does the padding-aware reversal and the
layout changes around it, and uses it automatically (its ``fused`` argument).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.cells import gru
    >>> p = gru().init(jax.random.key(0), 3, 4)
    >>> h, ys = fused_gru(p["w_i"], p["w_h"], p["b"], p["b_hn"], jnp.ones((5, 2, 3)),
    ...                   jnp.zeros((2, 4)), None)
    >>> h.shape, ys.shape
    ((2, 4), (5, 2, 4))
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero


def _input_products(w_i, b, xs):
    """``xs W_i + b`` for every step at once: ``[t, b, d] -> [t, b, 3h]`` (one 2-D product)."""
    time, batch, features = xs.shape
    return (xs.reshape(time * batch, features) @ w_i + b).reshape(time, batch, w_i.shape[1])


def _forward(w_h, b_hn, a, h0, valid, unroll, keep_residuals):
    """The scan of :func:`seqjax.cells.gru.gru_step` given the input products ``a`` ``[t, b, 3h]``.

    With ``keep_residuals`` it also returns, per step, what the tangent needs: ``r``, ``z``,
    ``n``, ``m = h_{t-1} W_hn + b_hn`` and the carry entering the step.
    """

    def step(h_prev, inputs):
        a_t, is_valid = inputs
        a_r, a_z, a_n = jnp.split(a_t, 3, axis=-1)
        q_r, q_z, q_n = jnp.split(h_prev @ w_h, 3, axis=-1)
        r = jax.nn.sigmoid(a_r + q_r)
        z = jax.nn.sigmoid(a_z + q_z)
        m = q_n + b_hn
        n = jnp.tanh(a_n + r * m)
        h = (1.0 - z) * n + z * h_prev
        if is_valid is None:
            y = h
        else:
            v = is_valid[:, None]
            h = jnp.where(v, h, h_prev)
            y = jnp.where(v, h, jnp.zeros_like(h))
        residuals = (r, z, n, m, h_prev) if keep_residuals else ()
        return h, (y, residuals)

    h, (ys, residuals) = jax.lax.scan(step, h0, (a, valid), unroll=unroll)
    return h, ys, residuals


@functools.partial(jax.custom_jvp, nondiff_argnums=(7,))
def fused_gru(w_i, w_h, b, b_hn, xs, h0, valid, unroll=1):
    """The reset-after GRU over a batch of sequences; returns ``(h, ys)``.

    Args:
      w_i, w_h, b, b_hn: the cell's parameters (:func:`seqjax.cells.gru.gru_init` layout:
        ``[d, 3h]``, ``[h, 3h]``, ``[3h]``, ``[h]``, gate order ``r, z, n``).
      xs: ``[t, b, d]`` inputs, *time-major*.
      h0: ``[b, h]`` initial carry.
      valid: ``[t, b]`` booleans (False: padded step, carry kept, output zero) or None.
      unroll: passed to :func:`jax.lax.scan`.
    """
    h, ys, _ = _forward(w_h, b_hn, _input_products(w_i, b, xs), h0, valid, unroll, False)
    return h, ys


@functools.partial(fused_gru.defjvp, symbolic_zeros=True)
def _fused_gru_jvp(unroll, primals, tangents):
    w_i, w_h, b, b_hn, xs, h0, valid = primals
    dw_i, dw_h, db, db_hn, dxs, dh0, _ = tangents
    h, ys, (r, z, n, m, h_prevs) = _forward(
        w_h, b_hn, _input_products(w_i, b, xs), h0, valid, unroll, True
    )
    time, batch, features = xs.shape
    hidden = w_h.shape[0]
    rows = time * batch

    # Everything that does not go through the recurrence, for all steps at once, written on 2-D
    # row views (their transposes are plain 2-D products, faster on XLA:CPU than contractions
    # over [t, b, ...]). u collects the r, z, n input terms and h_{t-1} dW_h's r, z columns;
    # w the n columns of h_{t-1} dW_h plus db_hn (they enter n through r * m).
    u_terms, w_terms = [], []
    if not isinstance(dxs, SymbolicZero):
        u_terms.append(dxs.reshape(rows, features) @ w_i)
    if not isinstance(dw_i, SymbolicZero):
        u_terms.append(xs.reshape(rows, features) @ dw_i)
    if not isinstance(db, SymbolicZero):
        u_terms.append(jnp.broadcast_to(db, (rows, 3 * hidden)))
    if not isinstance(dw_h, SymbolicZero):
        hw = h_prevs.reshape(rows, hidden) @ dw_h
        u_terms.append(jnp.pad(hw[:, : 2 * hidden], ((0, 0), (0, hidden))))
        w_terms.append(hw[:, 2 * hidden :])
    if not isinstance(db_hn, SymbolicZero):
        w_terms.append(jnp.broadcast_to(db_hn, (rows, hidden)))
    zeros = lambda width: jnp.zeros((rows, width), ys.dtype)
    u = functools.reduce(jnp.add, u_terms) if u_terms else zeros(3 * hidden)
    w = functools.reduce(jnp.add, w_terms) if w_terms else zeros(hidden)
    u = u.reshape(time, batch, 3 * hidden)
    w = w.reshape(time, batch, hidden)
    dh0 = jnp.zeros_like(h0) if isinstance(dh0, SymbolicZero) else dh0
    # dh @ w_h against the transposed matrix (made once, outside the loop): the transposed loop
    # then multiplies by w_h.T without a transposed operand, faster on CPU.
    w_h_t = w_h.T

    def step(dh_prev, inputs):
        # Every operation takes a tangent operand, so linearisation keeps the body in one
        # (tangent) loop that stores no further per-step residuals.
        u_t, w_t, r, z, n, m, h_prev, is_valid = inputs
        dq = jax.lax.dot_general(dh_prev, w_h_t, (((1,), (1,)), ((), ())))
        u_r, u_z, u_n = jnp.split(u_t, 3, axis=-1)
        dq_r, dq_z, dq_n = jnp.split(dq, 3, axis=-1)
        t_r, t_z = (u_r + dq_r) * r, (u_z + dq_z) * z
        dr, dz = t_r - t_r * r, t_z - t_z * z
        t_n = u_n + dr * m + (dq_n + w_t) * r
        dn = t_n - (t_n * n) * n
        dh = (dn - dn * z) + dh_prev * z + dz * (h_prev - n)
        if is_valid is None:
            dy = dh
        else:
            v = is_valid[:, None]
            dh = jnp.where(v, dh, dh_prev)
            dy = jnp.where(v, dh, jnp.zeros_like(dh))
        return dh, dy

    dh, dys = jax.lax.scan(step, dh0, (u, w, r, z, n, m, h_prevs, valid), unroll=unroll)
    return (h, ys), (dh, dys)
