"""Leaky rate RNN cell: the continuous-time network of computational neuroscience, Euler-discretised.

The model of Song, Yang & Wang 2016 and Yang et al. 2019 (column-vector form; ``h`` are the
units' synaptic currents, ``r = f(h)`` their firing rates)::

    tau dh/dt = -h + W f(h) + W_in u + b + sqrt(2 tau) sigma xi(t)

discretised with Euler's method at step ``dt`` (``alpha = dt / tau``)::

    h_t = (1 - alpha) h_{t-1} + alpha (W f(h_{t-1}) + W_in u_t + b + sqrt(2 / alpha) sigma xi_t)
    y_t = f(h_t)                              xi_t ~ N(0, I) independent per step and unit

so the noise added to ``h`` per step is ``alpha sqrt(2/alpha) sigma = sqrt(2 alpha) sigma``: its
stationary standard deviation (for ``W = 0``) is ``sigma`` whatever ``dt`` is, the scaling of Song
et al. 2016 and of Yang et al. 2019's code (``sigma = sqrt(2 / alpha) * sigma_rec``, added to the
pre-activation). Yang et al. 2019 write the rate form ``tau dr/dt = -r + f(W r + W_in u + b)``;
both are leaky integrators with the same fixed points up to ``r = f(h)``.

**Yang et al. 2019's defaults** (:data:`YANG2019`): 256 units, ``tau = 100`` ms, ``dt = 20`` ms
(``alpha = 0.2``), recurrent noise ``sigma = 0.05``, Softplus ``f``.

**Dale's law** (``dale=True``; Song et al. 2016): the first ``round(excitatory_fraction * h)``
units are excitatory and the rest inhibitory (80/20 by default). The trained matrix ``w_h`` is
unconstrained; the network uses ``W_eff = |w_h| * sign[:, None]`` with ``sign = +1`` for an
excitatory and ``-1`` for an inhibitory *presynaptic* unit (rows, in the row-vector layout), so every
outgoing weight of a unit has that unit's sign before, during and after training.
``self_connections=False`` zeroes the diagonal of ``W_eff``.

**Noise as an input stream**: a step must be a pure function (``jax.lax.scan``), so the noise
samples are not drawn inside it. With ``noise_std > 0`` the step's input is
``x = [u, xi]`` (``d + h`` features); :func:`append_noise` draws ``xi`` for a batch from an
explicit key. Zeros for ``xi`` give the noiseless network (evaluation).

Parameter layout (row-vector convention, as the other cells)::

    w_i: [d, h]    input weights  (W_in^T)
    w_h: [h, h]    recurrent weights (W^T; with Dale's law the raw weights, see above)
    b:   [h]       bias

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.cells import rate
    >>> from seqjax.cells.rate import append_noise
    >>> from seqjax.recurrence import rnn
    >>> cell = rate(noise_std=0.05, dale=True)
    >>> params = cell.init(jax.random.key(0), 3, 10)
    >>> us = jnp.ones((2, 7, 3))
    >>> rnn(cell, params, append_noise(jax.random.key(1), us, 10)).shape
    (2, 7, 10)
    >>> bool((effective_recurrent_weights(params, dale=True)[:8] >= 0).all())
    True
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from seqjax import _checks
from seqjax.cells.base import Cell, Params, check_sizes, recurrent_input

ACTIVATIONS = {"relu": jax.nn.relu, "softplus": jax.nn.softplus, "tanh": jnp.tanh, "linear": lambda v: v}

#: Yang et al. 2019 ("Task representations in neural networks trained to perform many cognitive
#: tasks"), Methods: the network size and constants of their leaky RNN.
YANG2019 = {"hidden_features": 256, "tau": 100.0, "dt": 20.0, "noise_std": 0.05, "activation": "softplus"}


def excitatory_count(hidden_features: int, excitatory_fraction: float) -> int:
    """The number of excitatory units, ``round(excitatory_fraction * hidden_features)``."""
    return int(round(excitatory_fraction * hidden_features))


def dale_signs(hidden_features: int, excitatory_fraction: float = 0.8) -> jax.Array:
    """``[h]`` presynaptic signs: ``+1`` for the first ``round(fraction * h)`` units, then ``-1``."""
    n_exc = excitatory_count(hidden_features, excitatory_fraction)
    return jnp.where(jnp.arange(hidden_features) < n_exc, 1.0, -1.0).astype(jnp.float32)


def effective_recurrent_weights(
    params: Params,
    *,
    dale: bool = False,
    excitatory_fraction: float = 0.8,
    self_connections: bool = True,
) -> jax.Array:
    """The recurrent matrix the network uses, ``[h, h]`` (row ``j`` = outgoing weights of unit ``j``).

    ``|w_h| * sign[:, None]`` under Dale's law, ``w_h`` otherwise; diagonal zeroed without
    self connections.
    """
    w = params["w_h"]
    if dale:
        w = jnp.abs(w) * dale_signs(w.shape[0], excitatory_fraction).astype(w.dtype)[:, None]
    if not self_connections:
        w = w * (1 - jnp.eye(w.shape[0], dtype=w.dtype))
    return w


def rate_init(
    key: jax.Array,
    in_features: int,
    hidden_features: int,
    *,
    recurrent_scale: float = 0.5,
    dale: bool = False,
    excitatory_fraction: float = 0.8,
) -> Params:
    """Initial parameters, following Yang et al. 2019 without Dale's law and Song et al. 2016 with it.

    * ``w_i ~ N(0, 1/d)``; ``b = 0``.
    * without Dale's law: ``w_h`` a random orthogonal matrix times ``recurrent_scale`` (Yang et al.
      2019's ``randortho`` with 0.5), so the linearisation at rest contracts;
    * with Dale's law: ``|N(0, 1)|`` magnitudes, the inhibitory rows scaled by
      ``n_exc / n_inh`` so that every unit's input is balanced on average, then the whole matrix
      scaled so its entries' spread gives spectral radius ``recurrent_scale`` by the circular law
      (``std * sqrt(h)``; no eigen-decomposition, so it runs on any backend).
    """
    check_sizes(in_features, hidden_features, recurrent_scale)
    _check_fraction(excitatory_fraction, hidden_features, dale)
    k_i, k_h = jax.random.split(key)
    w_i = jax.random.normal(k_i, (in_features, hidden_features), jnp.float32) / math.sqrt(in_features)
    if dale:
        n_exc = excitatory_count(hidden_features, excitatory_fraction)
        n_inh = hidden_features - n_exc
        magnitude = jnp.abs(jax.random.normal(k_h, (hidden_features, hidden_features), jnp.float32))
        magnitude = magnitude.at[n_exc:].multiply(n_exc / n_inh)
        signed = magnitude * dale_signs(hidden_features, excitatory_fraction)[:, None]
        w_h = magnitude * (recurrent_scale / (jnp.std(signed) * math.sqrt(hidden_features)))
    else:
        w_h = jax.nn.initializers.orthogonal(recurrent_scale)(k_h, (hidden_features, hidden_features), jnp.float32)
    return {"w_i": w_i, "w_h": w_h, "b": jnp.zeros((hidden_features,), jnp.float32)}


def rate_step(
    params: Params,
    h: jax.Array,
    x: jax.Array,
    *,
    activation: str = "softplus",
    alpha: float = 0.2,
    noise_std: float = 0.0,
    dale: bool = False,
    excitatory_fraction: float = 0.8,
    self_connections: bool = True,
):
    """One Euler step (module docstring); ``x`` is ``[d]``, or ``[d + h]`` = ``[u, xi]`` with noise.

    Returns ``(h', f(h'))``.
    """
    f = ACTIVATIONS[activation]
    d = params["w_i"].shape[0]
    w = effective_recurrent_weights(
        params, dale=dale, excitatory_fraction=excitatory_fraction, self_connections=self_connections
    )
    pre = recurrent_input(params, f(h)) @ w + x[:d] @ params["w_i"] + params["b"]
    if noise_std:
        pre = pre + math.sqrt(2.0 / alpha) * noise_std * x[d:]
    h = (1.0 - alpha) * h + alpha * pre
    return h, f(h)


def rate_zero_carry(params: Params, dtype=jnp.float32) -> jax.Array:
    return jnp.zeros(params["w_h"].shape[:1], dtype)


def append_noise(key: jax.Array, us: jax.Array, hidden_features: int) -> jax.Array:
    """``[b, t, d]`` inputs -> ``[b, t, d + h]``: the inputs followed by standard-normal ``xi``
    (the recurrent-noise stream a cell built with ``noise_std > 0`` reads)."""
    us = _checks.floating_array("us", us, ndim=3, layout="[batch, time, features]")
    _checks.positive_int("hidden_features", hidden_features)
    xi = jax.random.normal(key, (*us.shape[:2], hidden_features), us.dtype)
    return jnp.concatenate([us, xi], axis=-1)


def append_zero_noise(us: jax.Array, hidden_features: int) -> jax.Array:
    """``us`` with a zero noise stream: the noiseless run of a cell built with ``noise_std > 0``."""
    us = _checks.floating_array("us", us, ndim=3, layout="[batch, time, features]")
    return jnp.concatenate([us, jnp.zeros((*us.shape[:2], hidden_features), us.dtype)], axis=-1)


def rate(
    activation: str = "softplus",
    *,
    tau: float = 100.0,
    dt: float = 20.0,
    noise_std: float = 0.0,
    dale: bool = False,
    excitatory_fraction: float = 0.8,
    self_connections: bool = True,
    recurrent_scale: float = 0.5,
) -> Cell:
    """The leaky rate cell (module docstring); ``tau`` and ``dt`` in the same unit (ms).

    ``activation`` in ``{"relu", "softplus", "tanh", "linear"}`` (linear: the textbook linear rate
    network, whose stability is read off the eigenvalues of ``(1 - alpha) I + alpha W``); ``0 < dt <= tau`` (with ``alpha > 1`` the
    Euler leak overshoots zero, no longer a discretisation of the ODE); ``noise_std >= 0``.
    """
    _checks.choice("activation", activation, tuple(ACTIVATIONS))
    _checks.positive_float("tau", tau)
    _checks.positive_float("dt", dt)
    if dt > tau:
        raise ValueError(f"dt must be at most tau (alpha = dt / tau <= 1); got dt={dt}, tau={tau}.")
    if not (isinstance(noise_std, (int, float)) and noise_std >= 0 and math.isfinite(noise_std)):
        raise ValueError(f"noise_std must be a finite number >= 0; got {noise_std!r}.")
    _check_fraction(excitatory_fraction, None, dale)
    options = dict(dale=dale, excitatory_fraction=excitatory_fraction)
    noise_std = float(noise_std)

    def step_input_features(params: Params) -> int:
        d, h = params["w_i"].shape
        return d + h if noise_std else d

    return Cell(
        init=functools.partial(rate_init, recurrent_scale=recurrent_scale, **options),
        step=functools.partial(
            rate_step, activation=activation, alpha=dt / tau, noise_std=noise_std,
            self_connections=self_connections, **options,
        ),
        zero_carry=rate_zero_carry,
        name=f"rate_{activation}" + ("_dale" if dale else ""),
        step_input_features=step_input_features,
    )


def _check_fraction(fraction, hidden, dale) -> None:
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction < 1.0):
        raise ValueError(f"excitatory_fraction must be in (0, 1); got {fraction!r}.")
    if dale and hidden is not None:
        n_exc = excitatory_count(hidden, fraction)
        if not 0 < n_exc < hidden:
            raise ValueError(
                f"Dale's law needs excitatory and inhibitory units: excitatory_fraction={fraction} "
                f"of hidden_features={hidden} gives {n_exc} excitatory units."
            )
