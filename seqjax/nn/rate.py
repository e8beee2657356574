"""Flax NNX module around the leaky rate cell (:mod:`seqjax.cells.rate`).

:class:`RateRNN` owns ``w_i``, ``w_h``, ``b`` and runs :func:`seqjax.recurrence.rnn`; the recurrent
noise is drawn from an explicit ``noise_key`` (none: the noiseless network, for evaluation and
for analysis such as fixed points). Its outputs are the rates ``f(h_t)``; a readout is the
caller's (a :class:`flax.nnx.Linear`).

Example::

    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> from seqjax.nn.rate import RateRNN
    >>> net = RateRNN(3, 16, rngs=nnx.Rngs(0), noise_std=0.05, dale=True)
    >>> us = jnp.ones((2, 5, 3))
    >>> net(us, noise_key=jax.random.key(1)).shape
    (2, 5, 16)
    >>> bool(jnp.allclose(net(us), net(us)))     # no key: deterministic
    True
"""

from __future__ import annotations

from typing import Any

import jax

from seqjax.cells.rate import append_noise, append_zero_noise, effective_recurrent_weights, rate
from seqjax.nn.recurrent import RecurrentLayer
from seqjax.recurrence import rnn


class RateRNN(RecurrentLayer):
    """Leaky rate RNN layer, ``h_t = (1-a) h + a (W f(h) + W_in u + b + sqrt(2/a) sigma xi)``.

    ``activation``, ``tau``, ``dt``, ``noise_std``, ``dale``, ``excitatory_fraction``,
    ``self_connections``, ``recurrent_scale`` as in :func:`seqjax.cells.rate.rate`; the other
    options as :class:`seqjax.nn.RecurrentLayer`.
    """

    def __init__(
        self, in_features, hidden_features, *, rngs, activation: str = "softplus", tau: float = 100.0,
        dt: float = 20.0, noise_std: float = 0.0, dale: bool = False, excitatory_fraction: float = 0.8,
        self_connections: bool = True, recurrent_scale: float = 0.5, **options,
    ):
        cell = rate(
            activation, tau=tau, dt=dt, noise_std=noise_std, dale=dale,
            excitatory_fraction=excitatory_fraction, self_connections=self_connections,
            recurrent_scale=recurrent_scale,
        )
        self.noise_std = float(noise_std)
        self.weight_options = dict(
            dale=dale, excitatory_fraction=excitatory_fraction, self_connections=self_connections
        )
        super().__init__(cell, in_features, hidden_features, rngs=rngs, **options)

    def recurrent_weights(self) -> jax.Array:
        """The effective recurrent matrix ``[h, h]`` (Dale's signs and diagonal mask applied)."""
        return effective_recurrent_weights(self.pure_params(), **self.weight_options)

    def __call__(
        self,
        us: jax.Array,
        *,
        noise_key: jax.Array | None = None,
        seq_lengths: jax.Array | None = None,
        initial_carry: Any = None,
        dropout_key: jax.Array | None = None,
    ):
        """``us`` ``[b, t, d]`` -> rates ``[b, t, h]`` (or ``(carry, rates)`` with ``return_carry``)."""
        xs = us
        if self.noise_std:
            xs = (
                append_zero_noise(us, self.hidden_features) if noise_key is None
                else append_noise(noise_key, us, self.hidden_features)
            )
        return rnn(
            self.cell, self.pure_params(), xs, seq_lengths=seq_lengths,
            initial_carry=initial_carry, return_carry=self.return_carry, dropout_key=dropout_key,
            **self.options,
        )
