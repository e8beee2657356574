"""The textbook chapter's cortical rate network, with the stability condition it gets wrong.

What it measures
    The "recurrent cortical circuit" of the textbook chapter *Sequence Models: RNN -> Attention ->
    Transformer* (section 11.4): 100 linear rate units, ``tau = 10`` ms, ``dt = 1`` ms, a sparse
    random matrix (20% of ``N(0, 0.05^2)`` entries kept), an impulse to 20 units and noise of std
    0.01 per step, simulated with Euler steps ``x_t = x_{t-1} + dt (-x_{t-1} / tau + x_{t-1} W)``.
    The chapter rescales ``W`` to spectral radius 0.95 "to make the network stable". That is the
    wrong condition: the update is the linear map

        x_t = x_{t-1} A + noise,    A = (1 - dt / tau) I + dt W

    and it is bounded exactly when every eigenvalue ``mu`` of ``A`` lies inside the unit circle;
    with ``|lambda(W)| <= 0.95`` the eigenvalues of ``A`` reach ``0.9 + 0.95 = 1.85`` in modulus.
    (In continuous time ``dx/dt = -x / tau + W^T x`` needs ``Re lambda(W) < 1 / tau = 0.1``.)
    The corrected network writes the model as the leaky rate cell,
    ``tau dx/dt = -x + W' x`` (:mod:`seqjax.cells.rate` with a linear ``f``), with ``W'`` of
    spectral radius 0.95, so ``A = (1 - alpha) I + alpha W'`` has ``|mu| <= 1 - alpha + 0.95 alpha < 1``.

    Reported: the spectral radius of ``A`` for both (eigenvalues with NumPy), ``max |x_t|`` over
    the simulation (the chapter's, simulated with its own draws in float64, reaches ~1e49), and
    the intrinsic timescales of the corrected network: read off the eigenvalues,
    ``tau_k = -dt / ln |mu_k|``, and measured from a long noisy simulation as the decay of the
    autocorrelation of the activity projected on each eigenmode (for a linear network the
    projection on a left eigenvector is an AR(1) process with coefficient ``mu_k``).

Result (default run, seconds): the chapter's update has spectral radius 1.787 and its activity
reaches max |x| = 6.4e49 at t = 199 ms (the rate cell's run agrees with the chapter's NumPy loop
to 1.2e-14 relative). The corrected update has radius 0.989 and stays below 0.97. The slowest three
modes have timescales of 87.8, 54.4 and 37.6 ms read off the eigenvalues, and 80.3, 53.3 and
37.2 ms measured from the autocorrelation (8 runs of 10 s).

Both networks run through :func:`seqjax.recurrence.rnn` with the rate cell (the chapter's
update is the rate cell with ``W_h = tau W``); the noise is the chapter's own draws, fed as the
cell's noise stream.

Run::

    python -m experiments.neuro_dynamics            # default (seconds)
    python -m experiments.neuro_dynamics --quick
    python -m experiments.neuro_dynamics --resume RUN_DIR   # reruns with the saved config

No checkpoints: nothing is trained, the run takes seconds (15 s on a loaded 2-core CPU) and is a
deterministic function of the config (the chapter's seeded draws), so ``--resume`` recomputes it
to the same ``metrics.json``.

Outputs: ``metrics.json``, ``activity.png`` (max |x_t| of both networks, the corrected network's
activity), ``eigenvalues.png`` (eigenvalues of both updates and the unit circle),
``timescales.png`` (predicted against measured timescales).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from seqjax.cells import rate
from seqjax.experiment import RunDir, environment, option, parse, run_experiment
from seqjax.recurrence import rnn

NAME = "neuro_dynamics"


@dataclasses.dataclass(frozen=True)
class Config:
    """The chapter's cortical rate network against its corrected form."""

    QUICK: ClassVar[dict[str, Any]] = {"measure_steps": 2000, "measure_batch": 4}

    neurons: int = option(100, "rate units (the chapter: 100)")
    steps: int = option(200, "simulated steps (the chapter: 200)")
    tau: float = option(10.0, "time constant (ms)")
    dt: float = option(1.0, "Euler step (ms)")
    density: float = option(0.2, "fraction of nonzero weights")
    weight_std: float = option(0.05, "std of the nonzero weights before rescaling")
    radius: float = option(0.95, "spectral radius the chapter rescales W to")
    noise: float = option(0.01, "noise std added to every unit per step")
    impulse_units: int = option(20, "units given a U(0, 1) initial impulse")
    measure_steps: int = option(10000, "steps of the long simulation that measures timescales")
    measure_batch: int = option(8, "independent long simulations")
    modes: int = option(3, "slowest eigenmodes whose timescales are measured")
    seed: int = option(42, "numpy seed of the chapter's draws (the chapter: 42)")

    def __post_init__(self):
        for name in ("neurons", "steps", "measure_steps", "measure_batch", "modes", "impulse_units"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if not (0 < self.dt <= self.tau):
            raise ValueError(f"need 0 < dt <= tau; got dt={self.dt}, tau={self.tau}.")
        if not 0 < self.density <= 1:
            raise ValueError(f"density must lie in (0, 1]; got {self.density}.")
        if not (self.radius > 0 and self.noise >= 0 and self.weight_std > 0):
            raise ValueError("radius and weight_std must be positive, noise >= 0.")


def chapter_draws(config: Config):
    """``W`` (rescaled as the chapter does), the impulse and the per-step noise, drawn in the
    chapter's order from ``np.random.seed(seed)``."""
    n = config.neurons
    rng = np.random.RandomState(config.seed)
    w = rng.randn(n, n) * config.weight_std
    w[rng.rand(n, n) > config.density] = 0
    w = config.radius * w / np.max(np.abs(np.linalg.eigvals(w)))
    x0 = np.zeros(n)
    x0[: config.impulse_units] = rng.rand(config.impulse_units)
    noise = rng.randn(config.steps - 1, n) * config.noise
    return w, x0, noise


def update_matrix(w_h: np.ndarray, alpha: float) -> np.ndarray:
    """``A`` of the rate cell's linear update ``x_t = x_{t-1} A``: ``(1 - alpha) I + alpha W_h``."""
    return (1 - alpha) * np.eye(len(w_h)) + alpha * w_h


def simulate(w_h: np.ndarray, x0: np.ndarray, noise: np.ndarray, config: Config) -> np.ndarray:
    """``[steps, n]`` activity ``x_0 .. x_{T-1}`` of the linear rate cell with recurrent matrix
    ``w_h``, given the per-step additive noise ``noise`` ``[steps - 1, n]`` (float64)."""
    alpha = config.dt / config.tau
    sigma = 1.0 if not config.noise else config.noise / math.sqrt(2 * alpha)
    cell = rate("linear", tau=config.tau, dt=config.dt, noise_std=sigma)
    n = len(w_h)
    with jax.enable_x64(True):
        params = {"w_i": jnp.zeros((1, n), jnp.float64), "w_h": jnp.asarray(w_h), "b": jnp.zeros(n, jnp.float64)}
        # the cell adds sqrt(2 alpha) sigma xi: xi = noise / (sqrt(2 alpha) sigma) reproduces the draws
        xi = noise / (math.sqrt(2 * alpha) * sigma)
        xs = jnp.concatenate([jnp.zeros((1, len(noise), 1)), jnp.asarray(xi)[None]], -1)
        ys = rnn(cell, params, xs, initial_carry=jnp.asarray(x0)[None])
        return np.concatenate([x0[None], np.asarray(ys[0])])


def measured_timescales(w_h: np.ndarray, config: Config) -> dict:
    """Predicted ``-dt / ln|mu_k|`` against the autocorrelation decay of the eigenmode projections
    of a long stationary simulation, for the ``modes`` slowest modes."""
    alpha = config.dt / config.tau
    a = update_matrix(w_h, alpha)
    mu, vectors = np.linalg.eig(a)     # A v = mu v, so z_t = x_t v = mu z_{t-1} + noise . v
    order = np.argsort(-np.abs(mu))
    rng = np.random.default_rng(config.seed)
    n = len(w_h)
    noise = rng.standard_normal((config.measure_batch, config.measure_steps, n)) * config.noise
    cell = rate("linear", tau=config.tau, dt=config.dt, noise_std=config.noise / math.sqrt(2 * alpha))
    with jax.enable_x64(True):
        params = {"w_i": jnp.zeros((1, n), jnp.float64), "w_h": jnp.asarray(w_h), "b": jnp.zeros(n, jnp.float64)}
        xi = noise / config.noise
        xs = jnp.concatenate([jnp.zeros((*noise.shape[:2], 1)), jnp.asarray(xi)], -1)
        x = np.asarray(rnn(cell, params, xs))
    burn = min(config.measure_steps // 5, int(20 * -1 / np.log(np.abs(mu[order[0]]))))
    x = x[:, burn:]
    out = []
    seen = set()
    for k in order:
        if len(out) == config.modes:
            break
        if any(np.isclose(mu[k], np.conj(mu[j])) for j in seen):
            continue                    # a complex pair shares one timescale
        seen.add(k)
        z = x @ vectors[:, k]
        lag = max(1, int(round(-1 / np.log(np.abs(mu[k])))))     # about one timescale
        acf = np.mean(z[:, lag:] * np.conj(z[:, :-lag])) / np.mean(np.abs(z) ** 2)
        measured = -lag * config.dt / np.log(np.abs(acf))
        out.append({
            "eigenvalue": [float(mu[k].real), float(mu[k].imag)],
            "predicted_ms": float(-config.dt / np.log(np.abs(mu[k]))),
            "measured_ms": float(measured),
            "lag_steps": lag,
            "acf_at_lag": [float(acf.real), float(acf.imag)],
            "predicted_acf_at_lag": [float((mu[k] ** lag).real), float((mu[k] ** lag).imag)],
        })
    return {"modes": out, "burn_in_steps": int(burn)}


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    started = time.perf_counter()
    w, x0, noise = chapter_draws(config)
    alpha = config.dt / config.tau
    # the chapter's update x + dt(-x / tau + x W) is the rate cell's with W_h = tau W
    seed_wh = config.tau * w
    fixed_wh = config.radius * w / np.max(np.abs(np.linalg.eigvals(w)))       # radius 0.95 in the tau-form
    seed_a, fixed_a = update_matrix(seed_wh, alpha), update_matrix(fixed_wh, alpha)
    seed_mu, fixed_mu = np.linalg.eigvals(seed_a), np.linalg.eigvals(fixed_a)
    # the chapter's loop, in numpy, as an independent check of the cell's simulation
    direct = [x0]
    for t in range(config.steps - 1):
        x = direct[-1]
        direct.append(x + config.dt * (-x / config.tau + x @ w) + noise[t])
    direct = np.array(direct)
    seed_x = simulate(seed_wh, x0, noise, config)
    fixed_x = simulate(fixed_wh, x0, noise, config)
    seed_max, fixed_max = np.abs(seed_x).max(1), np.abs(fixed_x).max(1)
    timescales = measured_timescales(fixed_wh, config)
    summary = {
        "chapter": {
            "spectral_radius_W": float(np.max(np.abs(np.linalg.eigvals(w)))),
            "spectral_radius_update": float(np.abs(seed_mu).max()),
            "max_real_part_W": float(np.linalg.eigvals(w).real.max()),
            "continuous_bound_1_over_tau": 1.0 / config.tau,
            "max_abs_x_at": {str(t): float(seed_max[t]) for t in (0, 50, 100, config.steps - 1) if t < config.steps},
            "bounded": bool(np.abs(seed_mu).max() < 1),
            "matches_numpy_loop_rel_err": float(np.abs(seed_x - direct).max() / np.abs(direct).max()),
        },
        "corrected": {
            "spectral_radius_update": float(np.abs(fixed_mu).max()),
            "max_abs_x_at": {str(t): float(fixed_max[t]) for t in (0, 50, 100, config.steps - 1) if t < config.steps},
            "max_abs_x": float(fixed_max.max()),
            "bounded": bool(np.abs(fixed_mu).max() < 1),
            "timescales": timescales,
        },
        "environment": environment(),
    }
    run_dir.save_figure(plot_activity(seed_max, fixed_max, fixed_x, config), "activity")
    run_dir.save_figure(plot_eigenvalues(seed_mu, fixed_mu), "eigenvalues")
    run_dir.save_figure(plot_timescales(timescales), "timescales")
    summary["timings"] = {"runtime_s": round(time.perf_counter() - started, 2)}
    return summary


def plot_activity(seed_max, fixed_max, fixed_x, config) -> Figure:
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    a, b = fig.subplots(1, 2)
    t = np.arange(config.steps) * config.dt
    a.semilogy(t, seed_max, label="chapter (|λ(W)| = 0.95)", color="tab:red")
    a.semilogy(t, fixed_max, label="corrected (|μ(A)| < 1)", color="tab:blue")
    a.set_xlabel("time (ms)")
    a.set_ylabel("max |x_t|")
    a.legend(fontsize=8)
    a.set_title("The chapter's 'stable' network diverges", fontsize=10)
    im = b.imshow(fixed_x.T, aspect="auto", cmap="viridis", extent=[0, t[-1], config.neurons, 0])
    fig.colorbar(im, ax=b)
    b.set_xlabel("time (ms)")
    b.set_ylabel("neuron")
    b.set_title("Corrected network: activity", fontsize=10)
    return fig


def plot_eigenvalues(seed_mu, fixed_mu) -> Figure:
    fig = Figure(figsize=(4.5, 4.2), layout="constrained")
    ax = fig.subplots()
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 300))
    ax.plot(circle.real, circle.imag, color="grey", lw=0.8)
    ax.plot(seed_mu.real, seed_mu.imag, ".", color="tab:red", label="chapter's update")
    ax.plot(fixed_mu.real, fixed_mu.imag, ".", color="tab:blue", label="corrected update")
    ax.set_aspect("equal")
    ax.legend(fontsize=8)
    ax.set_title("Eigenvalues of the discretised update A", fontsize=10)
    return fig


def plot_timescales(timescales) -> Figure:
    fig = Figure(figsize=(4.2, 3.8), layout="constrained")
    ax = fig.subplots()
    p = [m["predicted_ms"] for m in timescales["modes"]]
    q = [m["measured_ms"] for m in timescales["modes"]]
    ax.loglog(p, q, "o")
    lim = [min(p + q) * 0.8, max(p + q) * 1.2]
    ax.plot(lim, lim, color="grey", lw=0.8)
    ax.set_xlabel("timescale from eigenvalue, -dt / ln|μ| (ms)")
    ax.set_ylabel("measured from autocorrelation (ms)")
    ax.set_title("Intrinsic timescales of the slowest modes", fontsize=10)
    return fig


def format_table(summary: dict) -> str:
    c, f = summary["chapter"], summary["corrected"]
    lines = [
        f"chapter:   radius(A) = {c['spectral_radius_update']:.3f}, max|x| at end = {c['max_abs_x_at'][max(c['max_abs_x_at'], key=int)]:.3g}",
        f"corrected: radius(A) = {f['spectral_radius_update']:.3f}, max|x| overall = {f['max_abs_x']:.3g}",
    ]
    for m in f["timescales"]["modes"]:
        lines.append(f"  mode |mu| = {abs(complex(*m['eigenvalue'])):.4f}: predicted {m['predicted_ms']:.1f} ms, measured {m['measured_ms']:.1f} ms")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
