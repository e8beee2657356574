"""The plain LSTM over a whole sequence with a hand-written derivative (``jax.custom_jvp``).

Why: differentiating ``lax.scan`` of :func:`seqjax.cells.lstm.lstm_step` in reverse mode makes
JAX accumulate the weight gradients ``dW_i``, ``dW_h``, ``db`` (and compute ``dx_t``) *inside*
the reverse loop: at every step small products (contraction length = batch) and a
read-modify-write of every ``[d or h, 4h]`` accumulator. Here the tangent is written so that
everything that does not depend on the recurrence is one product over all ``t * b`` rows::

    u      = dxs W_i + xs dW_i + h_prev dW_h + db          # [t * b, 4h], outside the loop
    dz_t   = u_t + dh_{t-1} W_h                             # the only product inside the loop

JAX transposes this linear map into the cuDNN/PyTorch-style backward pass: a reverse loop that
carries only ``(dh, dc)`` and emits ``dz_t``, then ``dW_i = xs^T dz``, ``dW_h = h_prev^T dz``,
``dxs = dz W_i^T`` as single large products. Being a JVP rule (not a ``custom_vjp``), it also
keeps forward mode (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``) working.

Semantics are exactly those of :func:`seqjax.recurrence.rnn` with the plain LSTM cell (no
peephole, no layer norm, no recurrent dropout): at a step where ``valid`` is False the carry is
left unchanged and the output is zero. The function is time-major and batched; :func:`rnn` does
the padding-aware reversal and the layout changes around it, and uses it automatically (see its
``fused`` argument).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero


def _rows(a: jax.Array) -> jax.Array:
    """``[t, b, n] -> [t * b, n]`` (a free reshape)."""
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2])


def _forward(w_i, w_h, b, xs, h0, c0, valid, unroll, keep_residuals):
    """The scan of :func:`seqjax.cells.lstm.lstm_step` (same operations, batched, time-major).

    With ``keep_residuals`` it also returns, per step, what the tangent needs: the activated
    gates, the carry entering the step and ``tanh(c_t)``.
    """

    def step(carry, inputs):
        h_prev, c_prev = carry
        x, is_valid = inputs
        z_i, z_f, z_g, z_o = jnp.split(x @ w_i + h_prev @ w_h + b, 4, axis=-1)
        i, f, g, o = jax.nn.sigmoid(z_i), jax.nn.sigmoid(z_f), jnp.tanh(z_g), jax.nn.sigmoid(z_o)
        c = f * c_prev + i * g
        tanh_c = jnp.tanh(c)
        h = o * tanh_c
        if is_valid is None:
            y = h
        else:
            v = is_valid[:, None]
            h = jnp.where(v, h, h_prev)
            c = jnp.where(v, c, c_prev)
            y = jnp.where(v, h, jnp.zeros_like(h))
        residuals = (i, f, g, o, h_prev, c_prev, tanh_c) if keep_residuals else ()
        return (h, c), (y, residuals)

    carry, (ys, residuals) = jax.lax.scan(step, (h0, c0), (xs, valid), unroll=unroll)
    return carry, ys, residuals


@functools.partial(jax.custom_jvp, nondiff_argnums=(7,))
def fused_lstm(w_i, w_h, b, xs, h0, c0, valid, unroll=1):
    """The LSTM over a batch of sequences; returns ``((h, c), ys)``.

    Args:
      w_i, w_h, b: the cell's parameters (:func:`seqjax.cells.lstm.lstm_init` layout).
      xs: ``[t, b, d]`` inputs, *time-major*.
      h0, c0: ``[b, h]`` initial carry.
      valid: ``[t, b]`` booleans (False: padded step, carry kept, output zero) or None.
      unroll: passed to :func:`jax.lax.scan`.
    """
    carry, ys, _ = _forward(w_i, w_h, b, xs, h0, c0, valid, unroll, False)
    return carry, ys


@functools.partial(fused_lstm.defjvp, symbolic_zeros=True)
def _fused_lstm_jvp(unroll, primals, tangents):
    w_i, w_h, b, xs, h0, c0, valid = primals
    dw_i, dw_h, db, dxs, dh0, dc0, _ = tangents
    carry, ys, (i, f, g, o, h_prevs, c_prevs, tanh_cs) = _forward(
        w_i, w_h, b, xs, h0, c0, valid, unroll, True
    )
    time, batch = xs.shape[:2]
    rows = time * batch

    # Everything that does not go through the recurrence, for all steps at once. Products are
    # written on 2-D row views: their transposes are then plain 2-D products, which XLA:CPU
    # runs faster than the equivalent contraction over [t, b, ...].
    terms = []
    if not isinstance(dxs, SymbolicZero):
        terms.append(_rows(dxs) @ w_i)
    if not isinstance(dw_i, SymbolicZero):
        terms.append(_rows(xs) @ dw_i)
    if not isinstance(dw_h, SymbolicZero):
        terms.append(_rows(h_prevs) @ dw_h)
    if not isinstance(db, SymbolicZero):
        terms.append(jnp.broadcast_to(db, (rows, db.shape[-1])))
    u = functools.reduce(jnp.add, terms) if terms else jnp.zeros((rows, w_h.shape[1]), ys.dtype)
    u = u.reshape(time, batch, w_h.shape[1])
    dh0 = jnp.zeros_like(h0) if isinstance(dh0, SymbolicZero) else dh0
    dc0 = jnp.zeros_like(c0) if isinstance(dc0, SymbolicZero) else dc0
    # dh @ w_h written against the transposed matrix (made once, outside the loop), so that the
    # transposed loop multiplies by w_h.T without a transposed operand: faster on CPU.
    w_h_t = w_h.T

    def step(carry, inputs):
        # Every operation below takes a tangent operand: linearisation then keeps the whole body
        # in one (tangent) loop and stores no further per-step residuals.
        dh_prev, dc_prev = carry
        u_t, i, f, g, o, c_prev, tanh_c, is_valid = inputs
        dz = u_t + jax.lax.dot_general(dh_prev, w_h_t, (((1,), (1,)), ((), ())))
        dz_i, dz_f, dz_g, dz_o = jnp.split(dz, 4, axis=-1)
        t_i, t_f, t_o = dz_i * i, dz_f * f, dz_o * o
        di, df, do = t_i - t_i * i, t_f - t_f * f, t_o - t_o * o  # sigmoid' = s (1 - s)
        dg = dz_g - (dz_g * g) * g  # tanh' = 1 - tanh^2
        dc = (df * c_prev + dc_prev * f) + (di * g + dg * i)
        dh = do * tanh_c + (dc - (dc * tanh_c) * tanh_c) * o
        if is_valid is None:
            dy = dh
        else:
            v = is_valid[:, None]
            dh = jnp.where(v, dh, dh_prev)
            dc = jnp.where(v, dc, dc_prev)
            dy = jnp.where(v, dh, jnp.zeros_like(dh))
        return (dh, dc), dy

    dcarry, dys = jax.lax.scan(
        step, (dh0, dc0), (u, i, f, g, o, c_prevs, tanh_cs, valid), unroll=unroll
    )
    return (carry, ys), (dcarry, dys)
