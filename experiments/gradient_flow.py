"""Gradient flow through time, measured: ||dL/dh_t|| against the lag T - t.

What it measures
    For the Elman RNN (tanh), the LSTM and the GRU, with recurrent weights whose every ``[h, h]``
    block is orthogonal with spectral radius ``r`` (``recurrent_scale=r``, swept over ``radii``),
    how the gradient of a loss on the *last* step reaches the hidden state ``k = T - 1 - t`` steps
    earlier: the curve ``||dL/dh_t|| / ||dL/dh_T||`` against the lag ``k``, at initialisation and
    again after a short training on the adding problem. For the LSTM it also records the gradient
    through the cell state, ``||dL/dc_t||``.

How
    ``dL/dh_t`` comes from :func:`jax.grad`, never from a formula. The cell is scanned with an
    additive probe ``delta_t`` (all zeros) added to the carry after step ``t``; since
    ``h_t -> h_t + delta_t`` the gradient of ``L`` with respect to ``delta_t`` *is* ``dL/dh_t``,
    and one backward pass gives it for every ``t`` at once. ``L`` is the task loss, the squared
    error of a linear readout of the final hidden state (a random readout at initialisation, the
    trained one after training). Norms are averaged over a batch of sequences (``probe_batch``)
    and over ``seeds`` independent initialisations. Per model and radius the summary reports

    * ``vanishing_lag``: the first lag at which the averaged norm falls below
      ``vanish_threshold`` (1e-6) times ``||dL/dh_T||``, its value at lag 0, or ``None``
      ("never within T"). The LSTM's ``dL/dc_t`` is measured against the same ``||dL/dh_T||``
      and starts at lag 1 (``c_T`` itself does not reach the readout);
    * ``decay_per_step``: ``exp(slope)`` of a least-squares line through ``log(norm ratio)``
      against the lag (< 1 vanishes, > 1 explodes), fitted where the float32 gradient has not
      underflowed;
    * ``ratio_at_max_lag``: the norm ratio at the largest lag ``T - 1``;
    * the final training loss (the adding problem's baselines: 1/6 predicting the mean, 1/12
      remembering only the second marked value, 0 solved).

The task (Hochreiter & Schmidhuber 1997, the adding problem): two input channels, values
``U(0, 1)`` and a marker that is 1 at two steps, one in each half of the sequence; the target is
the sum of the two marked values. Training uses Adam with gradient clipping (by global norm), so
that the exploding regimes (large ``r``) can be trained at all, and the same batches for every
model.

Why
    This replaces the simulated gradient-flow demo of the notebook *Introduction to Sequence
    Modeling - Interactive Notebook* ("Vanishing gradient problem"), which plots the hard-coded
    curves ``0.8^t`` and ``1.2^t`` and explains them with a scalar "|dh_i/dh_{i-1}| < 1"
    argument, and the ``w^t`` illustration of vanishing and exploding gradients in the
    "Recurrent Neural Networks" section of the textbook chapter *Sequence Models: RNN ->
    Attention -> Transformer*. The Jacobian
    ``dh_t/dh_{t-1}`` of a tanh RNN is the matrix ``diag(1 - h_t^2) W_h^T``, not a number: tanh
    saturation shrinks it, so a spectral radius above 1 does not by itself mean explosion. What a
    real network does is measured here and reported as seen.

Result (default run, 2 CPU cores, float32; numbers in ``metrics.json``)
    At initialisation the tanh RNN's gradient falls below 1e-6 of ``||dL/dh_T||`` by lag 20 at
    ``r = 0.5`` (0.49 per step) and lag 54 at ``r = 0.8``, and explodes at ``r = 1.5`` and 2
    (x1.1e4 and x3.2e12 at lag 199). At ``r = 1.2`` it neither vanishes nor explodes (0.99 per
    step): tanh saturation (mean ``1 - h^2`` of 0.78) cancels the excess gain, so "radius > 1
    means explosion" is not what a tanh RNN does. The LSTM decays far more slowly (lag 70 at
    ``r = 0.5``, 145 at 0.8, never within 200 steps from ``r = 1``; at most x18 at ``r = 2``);
    the GRU with PyTorch's initialisation sits in between (lags 28 to 105 up to ``r = 1.5``).
    After 300 Adam steps no model gets past predicting the mean (loss ~1/6: the adding problem
    at T = 200 needs far longer training; the Elman RNN at ``r = 2`` diverges to 1.02), and the
    gated models' decay converges to 0.82 to 0.93 per step for every radius up to 1.5
    (vanishing by lag 57 to 87), no slower than a tanh RNN at ``r = 1`` (lag 92); the Elman RNN
    still explodes at ``r = 2``.

Run::

    python -m experiments.gradient_flow            # default: T = 200, six radii (minutes on CPU)
    python -m experiments.gradient_flow --quick    # seconds; used by the tests
    python -m experiments.gradient_flow --resume RUN_DIR   # continue a stopped or killed run
    python -m experiments.gradient_flow --help     # every config field is a flag

Resuming: every ``checkpoint_every`` training steps (counted over all models, radii and
initialisations, at the next chunk boundary) the run saves the current model's parameters and
Adam state, its position in the sweep, its losses and measurements so far and those of the
finished runs into ``RUN_DIR/checkpoints/``; ``--resume RUN_DIR`` continues from the latest one
with the saved config and reaches the same ``metrics.json`` as a run never stopped (the data and
initialisations are functions of the seed; wall-clock numbers are under ``timings``). A run with
``train_steps = 0`` measures only and saves no checkpoint.

Outputs (``runs/gradient_flow/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl`` (training loss per step, per model, radius and initialisation ``seed``),
``metrics.json`` (the summary above), ``gradient_flow.png`` (norm ratio against lag, one panel
per model, one line per radius, at initialisation and after training), ``training_loss.png``,
``curves.npz`` (every measured curve, per initialisation) and ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from matplotlib.figure import Figure

from seqjax.cells import Cell, LSTMState, elman, gru, lstm
from seqjax.data import adding_baseline_mse, adding_problem
from seqjax.recurrence import rnn
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment

NAME = "gradient_flow"
MODELS = ("elman", "lstm", "gru")
PHASES = ("init", "trained")
# Norm ratios below this are float32 underflow, not signal (gradient entries reach the smallest
# normal float32, 1.2e-38, near here when ||dL/dh_T|| is of order 1): the decay fit ignores them.
UNDERFLOW = 1e-35
# Predicting the mean (1/6, the variance of a sum of two U(0, 1)); remembering only the second
# marked value leaves the first one's variance (1/12).
ADDING_BASELINES = {"predict_mean": adding_baseline_mse(), "second_value_only": adding_baseline_mse() / 2}


@dataclasses.dataclass(frozen=True)
class Config:
    """Measure ||dL/dh_t|| against the lag for Elman, LSTM and GRU over recurrent spectral radii."""

    # --quick: short sequences, three radii, a few training steps (seconds, for the tests).
    QUICK: ClassVar[dict[str, Any]] = {
        "radii": (0.5, 1.0, 2.0),
        "length": 20,
        "hidden": 16,
        "seeds": 2,
        "probe_batch": 16,
        "train_steps": 20,
        "batch_size": 16,
    }

    models: tuple[str, ...] = option(MODELS, "cells to measure: elman (tanh), lstm, gru")
    radii: tuple[float, ...] = option(
        (0.5, 0.8, 1.0, 1.2, 1.5, 2.0), "spectral radii of the recurrent weight blocks"
    )
    length: int = option(200, "sequence length T")
    hidden: int = option(32, "hidden units")
    seeds: int = option(3, "independent initialisations per model and radius (norms averaged)")
    probe_batch: int = option(64, "sequences over which gradient norms are averaged")
    train_steps: int = option(300, "Adam steps on the adding problem (0: measure at init only)")
    batch_size: int = option(32, "training batch size")
    learning_rate: float = option(3e-3, "Adam learning rate")
    clip_norm: float = option(1.0, "clip gradients to this global norm while training")
    forget_bias: float = option(1.0, "LSTM forget-gate bias at initialisation")
    vanish_threshold: float = option(1e-6, "vanished = norm below this fraction of ||dL/dh_T|| (lag 0)")
    seed: int = option(0, "base random seed")
    checkpoint_every: int = option(
        1000, "save a checkpoint (for --resume) every this many training steps, counted over all "
        "models, radii and initialisations (at the next chunk boundary: chunks of up to 25 steps)"
    )

    def __post_init__(self):
        unknown = [m for m in self.models if m not in MODELS]
        if not self.models or unknown:
            raise ValueError(f"models must be a non-empty subset of {MODELS}; got {self.models}.")
        if not self.radii or any(not (r > 0 and math.isfinite(r)) for r in self.radii):
            raise ValueError(f"radii must be positive finite numbers; got {self.radii}.")
        for name in ("models", "radii"):
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise ValueError(f"{name} must not repeat a value; got {getattr(self, name)}.")
        for name in ("hidden", "seeds", "probe_batch", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.length < 4:
            raise ValueError(f"length must be at least 4 (two markers, two halves); got {self.length}.")
        if self.train_steps < 0:
            raise ValueError(f"train_steps must be >= 0; got {self.train_steps}.")
        if not 0.0 < self.vanish_threshold < 1.0:
            raise ValueError(f"vanish_threshold must lie in (0, 1); got {self.vanish_threshold}.")
        if not (self.learning_rate > 0 and self.clip_norm > 0):
            raise ValueError("learning_rate and clip_norm must be positive.")


# --- task -----------------------------------------------------------------------------------


# --- model ----------------------------------------------------------------------------------


def make_cell(name: str, config: Config) -> Cell:
    return {"elman": lambda: elman("tanh"), "lstm": lambda: lstm(forget_bias=config.forget_bias),
            "gru": gru}[name]()


def init_model(cell: Cell, key: jax.Array, hidden: int, radius: float) -> dict:
    """Cell parameters with spectral radius ``radius`` and a random linear readout.

    The readout is random, not zero: a zero readout would make ``dL/dh_T`` zero and the
    measurement at initialisation empty.
    """
    k_cell, k_out = jax.random.split(key)
    return {
        "cell": cell.init(k_cell, 2, hidden, recurrent_scale=radius),
        "readout": {
            "w": jax.random.normal(k_out, (hidden,)) / math.sqrt(hidden),
            "b": jnp.zeros(()),
        },
    }


def hidden_state(carry: Any) -> jax.Array:
    """The part of a carry the readout sees: ``h`` (the LSTM carries ``(h, c)``)."""
    return carry.h if isinstance(carry, LSTMState) else carry


def readout(params: dict, h: jax.Array) -> jax.Array:
    return h @ params["readout"]["w"] + params["readout"]["b"]


def task_loss(cell: Cell, params: dict, xs: jax.Array, ys: jax.Array) -> jax.Array:
    """Mean squared error of the readout of the last state, run with the library's engine."""
    carry, _ = rnn(cell, params["cell"], xs, return_carry=True)
    return jnp.mean(jnp.square(readout(params, hidden_state(carry)) - ys))


# --- measurement ----------------------------------------------------------------------------


def final_carry_with_probes(cell: Cell, cell_params: dict, xs: jax.Array, probes: Any) -> Any:
    """Scan one sequence ``xs`` ``[t, d]``, adding ``probes[t]`` to the carry after step ``t``.

    ``probes`` has the carry's structure with a leading time axis. With zero probes this is the
    ordinary forward pass; its gradient with respect to ``probes[t]`` is ``dL/d(carry_t)``.
    """

    def body(carry, inputs):
        x, probe = inputs
        carry, _ = cell.step(cell_params, carry, x)
        return jax.tree.map(jnp.add, carry, probe), None

    carry, _ = jax.lax.scan(body, cell.zero_carry(cell_params, xs.dtype), (xs, probes))
    return carry


def safe_norm(g: jax.Array, axis: int = -1) -> jax.Array:
    """Euclidean norm that does not underflow: ``sum(g**2)`` is zero in float32 as soon as the
    entries fall below ~1e-19, long before ``g`` itself underflows, so scale by ``max|g|`` first."""
    scale = jnp.max(jnp.abs(g), axis=axis, keepdims=True)
    safe = jnp.where(scale > 0, scale, 1.0)
    return jnp.squeeze(scale, axis) * jnp.linalg.norm(g / safe, axis=axis)


def carry_gradients(cell: Cell, params: dict, xs: jax.Array, ys: jax.Array) -> Any:
    """``dL/d(carry_t)`` for every sequence and step: the carry's structure, leaves ``[b, t, h]``."""
    zero = cell.zero_carry(params["cell"], xs.dtype)
    probes = jax.tree.map(lambda z: jnp.zeros((xs.shape[1], *z.shape), z.dtype), zero)

    def loss(probes, x, y):
        carry = final_carry_with_probes(cell, params["cell"], x, probes)
        return jnp.square(readout(params, hidden_state(carry)) - y)

    return jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(probes, xs, ys)


def gradient_norms_by_lag(cell: Cell, params: dict, xs: jax.Array, ys: jax.Array) -> dict:
    """Batch-mean ``||dL/dh_t||`` indexed by lag ``T - 1 - t`` (and ``||dL/dc_t||`` for the LSTM)."""
    grads = carry_gradients(cell, params, xs, ys)
    # Index 0 of the time axis is the first step; lag 0 is the last, hence the flip.
    by_lag = lambda g: jnp.mean(safe_norm(g), axis=0)[::-1]
    if isinstance(grads, LSTMState):
        return {"h": by_lag(grads.h), "c": by_lag(grads.c)}
    return {"h": by_lag(grads)}


def mean_tanh_slope(cell: Cell, params: dict, xs: jax.Array) -> jax.Array:
    """Mean of ``tanh'(pre) = 1 - h_t^2`` over sequences, steps and units, for the Elman cell.

    The Elman Jacobian ``dh_t/dh_{t-1}`` is ``diag(1 - h_t^2) W_h^T``: this number says how much
    saturation shrinks it below the spectral radius of ``W_h`` (a diagnostic read off the
    measured states, not used to compute any curve).
    """
    hs = rnn(cell, params["cell"], xs)
    return jnp.mean(1.0 - jnp.square(hs))


def norm_ratios(curves: dict[str, dict[float, np.ndarray]]) -> dict[str, dict[float, np.ndarray]]:
    """Seed-mean norm curves of one model divided by its ``||dL/dh_T||`` (the h curve at lag 0).

    Every part is measured against the same reference so that h and c curves share a scale. The
    LSTM's ``dL/dc`` at lag 0 is exactly zero (a probe added to ``c_T`` after the last step never
    reaches the readout of ``h_T``), so that point is NaN rather than a spurious "vanished".
    """
    out = {}
    for part, by_radius in curves.items():
        out[part] = {}
        for radius, per_seed in by_radius.items():
            reference = curves["h"][radius].mean(axis=0)[0]
            ratio = per_seed.mean(axis=0).astype(np.float64) / reference
            if part != "h":
                ratio[0] = np.nan
            out[part][radius] = ratio
    return out


def summarise_curve(ratio: np.ndarray, threshold: float) -> dict[str, Any]:
    """Vanishing lag, fitted decay per step and value at the largest lag of a ratio-vs-lag curve.

    NaN entries (see :func:`norm_ratios`) are skipped; entries at or below the float32 underflow
    level are not fitted, since there the curve measures the number format, not the network.
    """
    ratio = np.asarray(ratio, np.float64)
    lags = np.arange(len(ratio))
    below = np.flatnonzero(ratio < threshold)  # NaN compares False
    usable = np.isfinite(ratio) & (ratio > UNDERFLOW)
    measured = ~np.isnan(ratio)
    underflow = np.flatnonzero(measured & ~usable)
    slope = np.polyfit(lags[usable], np.log(ratio[usable]), 1)[0] if usable.sum() >= 2 else math.nan
    return {
        "vanishing_lag": int(below[0]) if below.size else None,
        "decay_per_step": float(np.exp(slope)),
        "log10_decay_per_step": float(slope / math.log(10)),
        "ratio_at_max_lag": float(ratio[-1]),
        "underflow_from_lag": int(underflow[0]) if underflow.size else None,
    }


# --- training -------------------------------------------------------------------------------


def make_trainer(cell: Cell, config: Config):
    """A jitted ``(params, opt_state, xs[n], ys[n]) -> (params, opt_state, losses[n])``: ``n``
    Adam steps in one :func:`jax.lax.scan`, one batch (``xs[i]``, ``ys[i]``) per step."""
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.clip_norm), optax.adam(config.learning_rate)
    )

    def step(state, batch):
        params, opt_state = state
        xs, ys = batch
        loss, grads = jax.value_and_grad(lambda p: task_loss(cell, p, xs, ys))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    @jax.jit
    def train_chunk(params, opt_state, xs, ys):
        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), (xs, ys))
        return params, opt_state, losses

    return optimizer, train_chunk


# --- figures --------------------------------------------------------------------------------


def _series(models: Sequence[str]) -> list[tuple[str, str, str]]:
    """(model, carry part, panel title) for every panel: the LSTM gets two, h and c."""
    titles = {"elman": "Elman RNN (tanh)", "lstm": "LSTM", "gru": "GRU"}
    out = []
    for m in models:
        out.append((m, "h", titles[m] + (": dL/dh" if m == "lstm" else "")))
        if m == "lstm":
            out.append((m, "c", "LSTM: dL/dc (cell state)"))
    return out


def _radius_colors(radii: Sequence[float]) -> list:
    cmap = matplotlib.colormaps["viridis"]
    return [cmap(i / max(1, len(radii) - 1)) for i in range(len(radii))]


def plot_gradient_flow(ratios: dict, config: Config) -> Figure:
    series = _series(config.models)
    fig = Figure(figsize=(4.2 * len(series), 7.2), layout="constrained")
    axes = fig.subplots(len(PHASES), len(series), sharex=True, sharey=True, squeeze=False)
    colors = _radius_colors(config.radii)
    lags = np.arange(config.length)
    floor = 1e-30  # below this the curves are float32 underflow (see UNDERFLOW)
    lowest = 1.0
    for row, phase in enumerate(PHASES):
        for col, (model, part, title) in enumerate(series):
            ax = axes[row, col]
            for radius, color in zip(config.radii, colors):
                ratio = ratios[phase][model][part][radius]
                ratio = np.where(ratio > floor, ratio, np.nan)  # underflow: leave a gap
                if np.isfinite(ratio).any():
                    lowest = min(lowest, np.nanmin(ratio))
                ax.semilogy(lags, ratio, color=color, lw=1.6, label=f"r = {radius:g}")
            ax.axhline(config.vanish_threshold, color="grey", ls="--", lw=0.8)
            ax.set_title(f"{title}, {'at init' if phase == 'init' else 'after training'}", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
            if row == len(PHASES) - 1:
                ax.set_xlabel("lag T − t (steps)")
            if col == 0:
                ax.set_ylabel("‖∂L/∂h_t‖ / ‖∂L/∂h_T‖")
    axes[0, 0].set_ylim(bottom=max(floor, min(lowest, config.vanish_threshold) / 10))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, title="spectral radius", loc="outside right center", fontsize=9)
    fig.suptitle(
        f"Measured gradient flow (jax.grad), adding problem T = {config.length}, "
        f"hidden {config.hidden}; mean over {config.seeds} inits × {config.probe_batch} sequences. "
        f"Dashed: {config.vanish_threshold:g}",
        fontsize=11,
    )
    return fig


def plot_training(losses: dict, config: Config) -> Figure:
    colors = _radius_colors(config.radii)
    window = max(1, config.train_steps // 30)
    fig = Figure(figsize=(4.2 * len(config.models), 3.6), layout="constrained")
    axes = fig.subplots(1, len(config.models), sharey=True, squeeze=False)[0]
    for ax, model in zip(axes, config.models):
        for radius, color in zip(config.radii, colors):
            curve = losses[model][radius].mean(axis=0)
            # A running mean: single-batch losses are too noisy to compare radii by eye.
            curve = np.convolve(curve, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(window - 1, config.train_steps), curve, color=color, lw=1.2,
                    label=f"r = {radius:g}")
        for name, value in ADDING_BASELINES.items():
            ax.axhline(value, color="grey", ls="--", lw=0.8)
            ax.text(0, value, name.replace("_", " "), fontsize=7, va="bottom", color="grey")
        ax.set_yscale("log")
        ax.set_title(model)
        ax.set_xlabel("Adam step")
    axes[0].set_ylabel(f"training MSE (mean over seeds,\nrunning mean over {window} steps)")
    axes[-1].legend(fontsize=8)
    return fig


# --- main -----------------------------------------------------------------------------------


def plan(config: Config) -> list[tuple[str, float, int]]:
    """The sweep: every (model, radius, initialisation index), in order."""
    return [(m, r, s) for m in config.models for r in config.radii for s in range(config.seeds)]


def chunk_size(config: Config) -> int:
    """Adam steps per jitted call: equal chunks (one compilation), at most 25."""
    return math.gcd(config.train_steps, 25) or 1


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """Measure, train, measure again (from the run's checkpoint, if it has one); write metrics
    and figures into ``run_dir``; return the summary."""
    init_key = jax.random.fold_in(jax.random.key(config.seed), 3)
    probe_key, train_key = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 5))
    # Drawn once, eagerly, outside the jitted steps (drawing inside them costs compile time), from
    # the seed alone: a resumed run draws them again, the same.
    probe_xs, probe_ys = adding_problem(probe_key, config.probe_batch, config.length)
    # Every model sees the same training batches, so differences come from the model alone.
    train_xs, train_ys = (
        adding_problem(train_key, config.train_steps * config.batch_size, config.length)
        if config.train_steps
        else (jnp.zeros((0, config.length, 2)), jnp.zeros((0,)))
    )
    train_xs = train_xs.reshape(config.train_steps, config.batch_size, config.length, 2)
    train_ys = train_ys.reshape(config.train_steps, config.batch_size)

    runs = plan(config)
    chunk = chunk_size(config)
    units = config.train_steps + 2  # progress-bar units per run: measure, train steps, measure
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        # sweep["finished"]: per finished run its measurements, tanh slopes and losses;
        # sweep["current"]: the run in progress (its step, measurement at init and losses so far).
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        done_units = len(sweep["finished"]) * units
        if sweep["current"] is not None:
            done_units += 1 + sweep["current"]["step"]
        bar = progress(desc="gradient flow", total=len(runs) * units, initial=done_units)
        tools = {}
        for index in range(len(sweep["finished"]), len(runs)):
            model, radius, s = runs[index]
            if model not in tools:
                cell = make_cell(model, config)
                tools = {model: (
                    cell,
                    jax.jit(lambda p, cell=cell: gradient_norms_by_lag(cell, p, probe_xs, probe_ys)),
                    jax.jit(lambda p, cell=cell: mean_tanh_slope(cell, p, probe_xs)),
                    *make_trainer(cell, config),
                )}
            cell, measure, slope, optimizer, train_chunk = tools[model]

            def record(params):
                out = {"norms": jax.device_get(measure(params))}
                if model == "elman":
                    out["tanh_slope"] = float(slope(params))
                bar.update(1)
                return out

            fresh = init_model(cell, jax.random.fold_in(init_key, s), config.hidden, radius)
            current, state = ckpt.sweep_run(
                sweep, index, {"params": fresh, "opt_state": optimizer.init(fresh)},
                lambda: {"run": index, "step": 0, "init": record(fresh), "losses": []})
            params, opt_state = state["params"], state["opt_state"]

            for start in range(current["step"], config.train_steps, chunk):
                window = slice(start, start + chunk)
                params, opt_state, chunk_losses = train_chunk(params, opt_state, train_xs[window], train_ys[window])
                chunk_losses = np.asarray(chunk_losses)
                for i, loss in enumerate(chunk_losses):
                    run_dir.log(model=model, radius=radius, seed=s, step=start + i, loss=loss)
                bar.update(len(chunk_losses))
                current["losses"].append(chunk_losses)
                current["step"] = start + chunk
                sweep_step = index * config.train_steps + current["step"]
                final = index == len(runs) - 1 and current["step"] == config.train_steps
                ckpt.save(sweep_step, {"params": params, "opt_state": opt_state}, sweep, force=final)

            losses = np.concatenate(current["losses"]) if current["losses"] else np.zeros(0, np.float32)
            sweep["finished"].append({"init": current["init"], "trained": record(params), "losses": losses})
            sweep["current"] = None
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions

    # per_seed[phase][model][radius]: one dict of lag curves per seed (h, and c for the LSTM);
    # losses[model][radius]: [seeds, steps]; tanh_slopes[phase][radius]: Elman only.
    per_seed = {p: {m: {r: [] for r in config.radii} for m in config.models} for p in PHASES}
    seed_losses = {m: {r: [] for r in config.radii} for m in config.models}
    tanh_slopes = {p: {r: [] for r in config.radii} for p in PHASES}
    for (model, radius, _), done in zip(runs, sweep["finished"]):
        for phase in PHASES:
            per_seed[phase][model][radius].append(done[phase]["norms"])
            if "tanh_slope" in done[phase]:
                tanh_slopes[phase][radius].append(done[phase]["tanh_slope"])
        seed_losses[model][radius].append(done["losses"])
    losses = {m: {r: np.stack(v) for r, v in by_r.items()} for m, by_r in seed_losses.items()}

    # curves[phase][model][part][radius] -> [seeds, T]
    curves = {
        phase: {
            model: {
                part: {r: np.stack([c[part] for c in by_radius[r]]) for r in config.radii}
                for part in ("h", "c") if part in by_radius[config.radii[0]][0]
            }
            for model, by_radius in per_seed[phase].items()
        }
        for phase in PHASES
    }
    ratios = {p: {m: norm_ratios(c) for m, c in curves[p].items()} for p in PHASES}
    summary = summarise(ratios, losses, tanh_slopes, config)
    summary["environment"] = environment()
    summary["timings"] = {"runtime_s": round(runtime_s, 1), "sessions": sessions}
    run_dir.save_arrays(
        "curves",
        radii=np.asarray(config.radii),
        **{
            f"{phase}_{model}_{part}": np.stack([by_r[r] for r in config.radii])
            for phase in PHASES
            for model, parts in curves[phase].items()
            for part, by_r in parts.items()
        },
    )
    run_dir.save_figure(plot_gradient_flow(ratios, config), "gradient_flow")
    if config.train_steps:
        run_dir.save_figure(plot_training(losses, config), "training_loss")
    return summary


def summarise(ratios: dict, losses: dict, tanh_slopes: dict, config: Config) -> dict[str, Any]:
    """The numbers the experiment reports (see the module docstring)."""
    results = {}
    for phase in PHASES:
        results[phase] = {}
        for model, parts in ratios[phase].items():
            for part, by_radius in parts.items():
                key = model if part == "h" else f"{model}_{part}"
                results[phase][key] = {
                    f"{r:g}": summarise_curve(by_radius[r], config.vanish_threshold)
                    for r in config.radii
                }
        for r, values in tanh_slopes[phase].items():
            if values:  # measured only for the Elman cell
                results[phase]["elman"][f"{r:g}"]["mean_tanh_slope"] = float(np.mean(values))
    # Final loss: mean over the last tenth of training (one step is noisy), then over seeds.
    tail = max(1, config.train_steps // 10)
    final = {
        model: {f"{r:g}": float(v[:, -tail:].mean()) if v.size else None for r, v in by_r.items()}
        for model, by_r in losses.items()
    }
    return {
        "length": config.length,
        "vanish_threshold": config.vanish_threshold,
        "results": results,
        "final_train_loss": final,
        "adding_problem_baselines": ADDING_BASELINES,
    }


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text table of the summary, one row per model and radius."""
    fmt_lag = lambda v: "never" if v is None else str(v)
    header = (
        f"{'series':<8} {'radius':>6} | {'init: lag':>9} {'decay':>7} {'ratio@T-1':>10} | "
        f"{'trained: lag':>12} {'decay':>7} {'ratio@T-1':>10} | {'final loss':>10} | "
        f"{'tanh slope init/trained':>23}"
    )
    lines = [header, "-" * len(header)]
    init, trained = summary["results"]["init"], summary["results"]["trained"]
    for series, by_radius in init.items():
        model = series.split("_")[0]
        for radius, a in by_radius.items():
            b = trained[series][radius]
            loss = summary["final_train_loss"].get(model, {}).get(radius)
            lines.append(
                f"{series:<8} {radius:>6} | {fmt_lag(a['vanishing_lag']):>9} "
                f"{a['decay_per_step']:>7.3f} {a['ratio_at_max_lag']:>10.2e} | "
                f"{fmt_lag(b['vanishing_lag']):>12} {b['decay_per_step']:>7.3f} "
                f"{b['ratio_at_max_lag']:>10.2e} | "
                f"{'-' if loss is None else format(loss, '.4f'):>10} | "
                + (f"{a['mean_tanh_slope']:>11.3f} {b['mean_tanh_slope']:>11.3f}"
                   if "mean_tanh_slope" in a else "")
            )
    return "\n".join(line.rstrip(" |") for line in lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, run the experiment, print the table; returns the summary (with
    ``run_dir``)."""
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
