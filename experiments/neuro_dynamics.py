"""The chapter's neuroscience demos, done right: cortical stability, predictive coding, timescale hierarchy, gated memory.

What it measures
    **1. The cortical rate network** (nothing trained). The "recurrent cortical circuit" of the
    textbook chapter *Sequence Models: RNN -> Attention -> Transformer* (section 11.4): 100 linear
    rate units, ``tau = 10`` ms, ``dt = 1`` ms, a sparse random matrix (20% of ``N(0, 0.05^2)``
    entries kept), an impulse to 20 units and noise of std 0.01 per step, simulated with Euler
    steps ``x_t = x_{t-1} + dt (-x_{t-1} / tau + x_{t-1} W)``. The chapter rescales ``W`` to
    spectral radius 0.95 "to make the network stable". That is the wrong condition: the update is
    the linear map

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
    projection on a left eigenvector is an AR(1) process with coefficient ``mu_k``). Both networks
    run through :func:`seqjax.recurrence.rnn` with the rate cell (the chapter's update is the rate
    cell with ``W_h = tau W``); the noise is the chapter's own draws, fed as the cell's noise stream.

    **2. Predictive coding.** The chapter's "predictive coding" predicts each sample by the
    previous one (persistence, ``x_hat_t = x_{t-1}``): nothing is learned. Here a GRU (64 units,
    linear readout) is trained by Adam to predict the next sample of *regular* sequences (no
    violations; random phase; observation noise 0.05) of two stimuli of :mod:`seqjax.data.oddball`:
    the chapter's sine (``sin(linspace(0, 2 pi, 20))`` tiled, 100 samples) and a motif of four
    tones (0.05, 0.1, 0.15, 0.2 cycles/sample, 10 samples each). Held-out test sequences (fresh
    phase and noise) carry the chapter's violation windows ``[35, 40)`` and ``[75, 80)``: the
    sine inverted there (the chapter's violation), the tone motif playing the tone two places
    ahead (a sound the stimulus contains, out of order). Reported for the trained GRU and for
    persistence: the squared error inside and outside the windows, their ratio (the *mismatch
    ratio*), the error in the five steps after each window, the overall test MSE, and the MSE on
    regular test sequences.

    **3. Hierarchical timescales.** A stack of three leaky rate layers (32 tanh units each,
    :mod:`seqjax.cells.leaky_stack`, recurrent noise 0.05) with one time constant per layer, either
    fixed at 2, 8, 32 steps or learned (all starting at 8), is trained on a multi-timescale task
    (:mod:`seqjax.data.multiscale`): the input is ``z_fast + z_slow + 0.5 noise`` (AR(1) latents
    with tau 2 and 50 steps), the readout of all layers must output ``z_fast``, ``z_slow`` and the
    running mean of the input over 50 steps. Each layer's unit-averaged autocorrelation is fitted
    with ``A (exp(-k / tau) + B)`` as Murray et al. 2014 do for cortical areas
    (:mod:`seqjax.analysis.timescales`, lags 1 to 150, 16 held-out runs of 3000 steps), in four
    conditions: trained or untrained (the initial parameters) network, *spontaneous* activity
    (zero input, recurrent noise: what Murray et al. measure, in the fixation period) or activity
    *during the task*.

    **4. Working memory.** The chapter's PFC / basal-ganglia gating model
    (:mod:`seqjax.cells.gated_memory`: a sigmoid update gate choosing between ``tanh`` of the
    input and a GRU cell fed the memory as input and state) had no readout, loss or sizes. Here it
    gets 32 memory units, a ReLU readout MLP (64 units) on the memory after the probe and a
    cross-entropy loss, and is trained on the chapter's delayed match-to-sample protocol
    (:func:`seqjax.data.synthetic.delayed_match_to_sample`: a sample ``U(0, 1)^8`` at step 0,
    eight distractors from the same distribution, then the probe, the sample with probability
    1/2), against a leaky rate RNN (:mod:`seqjax.cells.rate`, Yang et al. 2019's constants,
    softplus, noise 0.05) and a GRU, both 32 units with the same readout, 3000 Adam steps of 128
    trials each. Held-out accuracy (4096 trials per length) at the trained length 10 and at 4 to 30.

Result (default run: 6.2 minutes on a shared 2-core machine, 22 minutes under heavier load; a
second run gave the same ``metrics.json``; numbers in ``metrics.json``)
    1. The chapter's update has spectral radius 1.787 and its activity reaches max |x| = 6.4e49
    at t = 199 ms (the rate cell's run agrees with the chapter's NumPy loop to 1.2e-14 relative).
    The corrected update has radius 0.989 and stays below 0.97. The slowest three modes have
    timescales of 87.8, 54.4 and 37.6 ms read off the eigenvalues, and 80.3, 53.3 and 37.2 ms
    measured from the autocorrelation (8 runs of 10 s).

    2. Predictive coding, held-out test sequences with violations (512 per stimulus):

    ========  ===========  ========  =============  ===========  ==============  ===============
    stimulus  predictor    test MSE  MSE in window  MSE outside  mismatch ratio  MSE, no windows
    ========  ===========  ========  =============  ===========  ==============  ===============
    sine      GRU          0.188     1.610          0.028        **56.6**        0.0037
    sine      persistence  0.129     0.397          0.099        4.0             0.056
    tones     GRU          0.153     0.929          0.065        **14.2**        0.0085
    tones     persistence  0.359     0.467          0.347        1.3             0.340
    ========  ===========  ========  =============  ===========  ==============  ===============

    The trained GRU predicts the regular stimulus to near the noise floor (0.0025) and its error
    jumps where the regularity breaks: a mismatch response. Persistence has no model of the
    stimulus; its error rises only at the jumps where a window starts or ends (on the inverted
    sine), and on the tones, where the out-of-order tone is a sound it sees elsewhere, its error is
    nearly the same inside and out (ratio 1.3). The price of the learned expectation: on the
    violated sine sequences the GRU's overall MSE (0.188) is *worse* than persistence's (0.129),
    and after each window it takes tens of steps to lock on to the stimulus again (0.097 in the
    five steps after a window; 0.028 over all steps outside the windows, against 0.0037 on
    regular sequences), which ``predictive_coding.png`` shows.

    3. Timescales (steps) fitted per layer, bottom to top:

    ========================  ====================  ============================================
    condition                 fixed tau 2 / 8 / 32  learned tau (8 / 8 / 8 -> 5.6 / 13.7 / 16.3)
    ========================  ====================  ============================================
    trained, spontaneous      1.6 / 5.5 / 30.8      4.7 / 13.5 / 17.8
    untrained, spontaneous    1.7 / 9.0 / 39.0      8.5 / 12.1 / 14.8
    trained, during the task  35.7 / 8.5 / 38.0     23.6 / 25.1 / 21.3
    untrained, during task    32.0 / 28.3 / 87.7    36.2 / 35.1 / 45.2
    ========================  ====================  ============================================

    Trained from equal time constants, the layers' taus spread out and rise with depth (5.6,
    13.7, 16.3), and the spontaneous timescales follow them (4.7, 13.5, 17.8). But the spontaneous
    timescales rise with depth in the *untrained* equal-tau stack as well (8.5, 12.1, 14.8): each
    layer low-pass filters the one below, so a feed-forward stack shows a Murray-like hierarchy
    without any difference in its units. During the task the activity follows the input (the
    slow latent has tau 50) and the hierarchy is gone: layer 1 of the fixed stack, tau 2, fits 35.7
    (its autocorrelation is a fast drop on a slow tail, which one exponential does not describe).
    Both stacks solve the task equally well (test MSE 0.40 / 0.29 / 0.005 on the fast latent, the
    slow latent and the running mean, against variances 1.0 / 1.0 / 0.85).

    4. Working memory, held-out accuracy at the trained length (sample, 8 distractors, probe):
    gated model **0.508**, rate RNN **0.506**, GRU **0.973** (parameters 7872 / 1312 / 3968,
    readout 2177 each). The chapter's gated model and the rate RNN never left the chance plateau
    (loss ln 2 for all 3000 steps); the GRU left it after about 1300 steps. The GRU's memory is
    tied to the trained timing: 0.65, 0.84, 0.97, 0.92, 0.73, 0.51 at lengths 4, 6, 10, 15, 20, 30.
    The plateau is an optimisation problem, not a capacity one: trained on mixed lengths (each
    trial's length uniform in 2 to 10, ``--parts memory --wm-min-length 2``, 3000 steps, 2
    minutes) the gated model reaches **0.992** at length 10 and holds 0.975 at length 30 (28
    distractors), the GRU 0.996 (0.993 at 30). The leaky rate RNN stays at chance on mixed
    lengths too (0.506), and after 12000 steps (0.541) or with ``tau = 40`` ms (0.530). Its
    failure has two parts. With Yang et al. 2019's ``alpha = dt / tau = 0.2`` an item shown for
    one step barely moves the state: it fails even with no distractor at all (sample then probe,
    ``--wm-length 2 --wm-eval-lengths 2 --wm-steps 1000``: 0.498). Without the leak
    (``--wm-tau 20``, ``alpha = 1``) it solves that no-distractor task (0.997), but distractors
    defeat it: 0.507 on mixed lengths with its recurrent noise, 0.689 without noise (0.80 at
    length 4, 0.58 at 30). The two gated models learn to keep the distractors out; the ungated
    network does not in this budget. (In ``neuro_tasks`` the rate cell holds a sample shown for
    hundreds of ms through a blank delay at 0.95.)

Run::

    python -m experiments.neuro_dynamics            # default (all parts)
    python -m experiments.neuro_dynamics --quick    # used by the tests
    python -m experiments.neuro_dynamics --parts cortical   # part 1 alone (seconds, nothing trained)
    python -m experiments.neuro_dynamics --parts memory --wm-min-length 2   # mixed trial lengths
    python -m experiments.neuro_dynamics --resume RUN_DIR

Resuming: every ``checkpoint_every`` training steps (counted over the sweep of seven training
runs) the run saves the current model's parameters and Adam state with the finished runs'
parameters and losses; ``--resume RUN_DIR`` continues to the same ``metrics.json`` (part 1 and
every evaluation are recomputed: they are deterministic functions of the config and the trained
parameters; wall-clock numbers are under ``timings``). Training keys use JAX's ``rbg`` PRNG
(faster to compile than threefry; reproducible on one backend).

Outputs: ``config.json``, ``metrics.jsonl`` (loss per step), ``metrics.json``, ``activity.png``
(max |x_t| of both networks, the corrected network's activity), ``eigenvalues.png``,
``timescales.png`` (part 1: predicted against measured timescales), ``predictive_coding.png``
(stimulus, predictions, squared error with the violation windows shaded),
``hierarchy_timescales.png`` (autocorrelations with their fits, fitted tau per layer and
condition), ``working_memory.png`` (accuracy against the number of distractors),
``training_loss.png``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from seqjax.analysis.timescales import autocorrelation, fit_timescale
from seqjax.cells import Cell, gru, lstm, rate
from seqjax.cells.gated_memory import gated_memory
from seqjax.cells.leaky_stack import leaky_stack, time_constants
from seqjax.cells.rate import append_noise
from seqjax.data.multiscale import mixed_timescales
from seqjax.data.oddball import (
    periodic_stimulus,
    seed_sine_pattern,
    tone_pattern,
    violation_mask,
)
from seqjax.data.synthetic import delayed_match_to_sample
from seqjax.experiment import (
    RunCheckpoints,
    RunDir,
    environment,
    option,
    parse,
    progress,
    run_experiment,
)
from seqjax.recurrence import rnn

NAME = "neuro_dynamics"


PARTS = ("cortical", "predictive", "timescales", "memory")
#: The trained parts' PRNG: XLA's RngBitGenerator, whose programs compile in a fraction of the time
#: of threefry's (its bits are reproducible on one backend, not across backends).
PRNG = "rbg"
STIMULI = ("sine", "tones")
HIERARCHIES = ("fixed", "learned")
MEMORY_MODELS = ("gated", "rate", "gru")
#: Every training run of the experiment, in sweep order; a run's keys come from its place here,
#: so choosing fewer parts or variants does not change the others' draws.
ALL_RUNS = (
    *(("predictive", s) for s in STIMULI),
    *(("timescales", h) for h in HIERARCHIES),
    *(("memory", m) for m in MEMORY_MODELS),
)


@dataclasses.dataclass(frozen=True)
class Config:
    """The chapter's cortical rate network against its corrected form; predictive coding,
    hierarchical timescales and gated working memory, trained and measured."""

    QUICK: ClassVar[dict[str, Any]] = {
        "measure_steps": 2000, "measure_batch": 4,
        "stimuli": ("sine",), "hierarchies": ("learned",), "memory_models": ("gated",),
        "pc_hidden": 16, "pc_steps": 40, "pc_test": 32,
        "ts_hidden": 8, "ts_steps": 20, "ts_length": 120, "ts_measure_length": 400, "ts_max_lag": 40,
        "ts_measure_batch": 4,
        "wm_hidden": 16, "wm_steps": 40, "wm_eval": 256, "wm_eval_lengths": (4, 10, 20), "wm_readout_hidden": 16,
        "checkpoint_every": 50,
    }

    # part 1: the chapter's cortical network (nothing trained)
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
    seed: int = option(42, "numpy seed of the chapter's draws (the chapter: 42), and the training seed")

    parts: tuple[str, ...] = option(PARTS, f"parts to run, from {PARTS} (cortical: the chapter's network, nothing trained)")
    learning_rate: float = option(3e-3, "Adam learning rate (every trained part)")
    clip_norm: float = option(1.0, "clip gradients to this global norm")

    # part 2: predictive coding
    stimuli: tuple[str, ...] = option(STIMULI, "stimuli: sine (the chapter's), tones (a motif of four tones)")
    hierarchies: tuple[str, ...] = option(HIERARCHIES, "stacked rate networks: fixed (ts_taus) and/or learned time constants")
    memory_models: tuple[str, ...] = option(MEMORY_MODELS, "working-memory models: gated (the chapter's), rate, gru")
    pc_model: Literal["gru", "lstm"] = option("gru", "the next-sample predictor's cell")
    pc_hidden: int = option(64, "predictor units")
    pc_steps: int = option(2000, "Adam steps per stimulus")
    pc_batch: int = option(32, "training sequences per step (regular: no violations)")
    pc_length: int = option(100, "samples per sequence (the chapter: 100)")
    pc_noise: float = option(0.05, "observation noise std added to every sample (the chapter: 0)")
    violation_starts: tuple[int, ...] = option((35, 75), "starts of the violation windows (the chapter: 35, 75)")
    violation_width: int = option(5, "violation window length (the chapter: 5)")
    sine_period: int = option(20, "samples per cycle of the chapter's pattern (the chapter: 20)")
    tone_frequencies: tuple[float, ...] = option((0.05, 0.1, 0.15, 0.2), "the tone motif's frequencies (cycles/sample)")
    tone_length: int = option(10, "samples per tone; the violation plays the tone two places ahead")
    pc_test: int = option(512, "held-out test sequences per stimulus (random phase, fresh noise)")

    # part 3: hierarchical timescales
    ts_taus: tuple[float, ...] = option((2.0, 8.0, 32.0), "fixed time constants per layer, bottom to top (steps)")
    ts_learned_init: float = option(8.0, "every layer's initial time constant in the learned-tau network (steps)")
    ts_hidden: int = option(32, "units per layer")
    ts_steps: int = option(2000, "Adam steps per network")
    ts_batch: int = option(32, "training sequences per step")
    ts_length: int = option(300, "steps per training sequence")
    ts_tau_fast: float = option(2.0, "time constant of the fast latent (steps)")
    ts_tau_slow: float = option(50.0, "time constant of the slow latent (steps)")
    ts_obs_noise: float = option(0.5, "observation noise std of the task input")
    ts_window: int = option(50, "steps of the running mean target (and of the loss burn-in)")
    ts_noise: float = option(0.05, "recurrent noise sigma of the rate layers")
    ts_measure_length: int = option(3000, "steps of each held-out simulation the autocorrelation is measured on")
    ts_measure_batch: int = option(16, "held-out simulations per condition")
    ts_max_lag: int = option(150, "autocorrelation lags fitted (1 .. max_lag)")

    # part 4: working memory
    wm_features: int = option(8, "features per item (the chapter leaves input_size unset)")
    wm_hidden: int = option(32, "memory units of each model (the chapter leaves memory_size unset)")
    wm_length: int = option(10, "trained sequence length: sample, length - 2 distractors, probe (the chapter: 10)")
    wm_min_length: int = option(0, "if in [2, wm_length): train on lengths drawn uniformly from [wm_min_length, wm_length] (0: all wm_length, the chapter's)")
    wm_steps: int = option(3000, "Adam steps per model")
    wm_batch: int = option(128, "trials per step")
    wm_readout_hidden: int = option(64, "ReLU units of the readout MLP on the final state (0: linear readout)")
    wm_tau: float = option(100.0, "rate RNN time constant (ms; Yang et al. 2019: 100)")
    wm_dt: float = option(20.0, "rate RNN step per item (ms; Yang et al. 2019: 20)")
    wm_noise: float = option(0.05, "rate RNN recurrent noise sigma (Yang et al. 2019: 0.05)")
    wm_eval: int = option(4096, "held-out trials per model and length")
    wm_eval_lengths: tuple[int, ...] = option((4, 6, 10, 15, 20, 30), "sequence lengths of the accuracy-vs-delay curve")

    checkpoint_every: int = option(500, "save a checkpoint every this many training steps (whole sweep)")

    def __post_init__(self):
        for name in ("neurons", "steps", "measure_steps", "measure_batch", "modes", "impulse_units",
                     "pc_hidden", "pc_steps", "pc_batch", "violation_width", "sine_period", "tone_length", "pc_test",
                     "ts_hidden", "ts_steps", "ts_batch", "ts_window", "ts_measure_batch", "ts_max_lag",
                     "wm_features", "wm_hidden", "wm_steps", "wm_batch", "wm_eval", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if not (0 < self.dt <= self.tau):
            raise ValueError(f"need 0 < dt <= tau; got dt={self.dt}, tau={self.tau}.")
        if not 0 < self.density <= 1:
            raise ValueError(f"density must lie in (0, 1]; got {self.density}.")
        if not (self.radius > 0 and self.noise >= 0 and self.weight_std > 0):
            raise ValueError("radius and weight_std must be positive, noise >= 0.")
        for name, allowed in (("parts", PARTS), ("stimuli", STIMULI), ("hierarchies", HIERARCHIES),
                              ("memory_models", MEMORY_MODELS)):
            value = getattr(self, name)
            if not value or any(v not in allowed for v in value) or len(set(value)) != len(value):
                raise ValueError(f"{name} must be distinct values from {allowed}; got {value}.")
        for name in ("learning_rate", "clip_norm", "ts_tau_fast", "ts_tau_slow", "wm_tau", "wm_dt"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}.")
        for name in ("pc_noise", "ts_obs_noise", "ts_noise", "wm_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}.")
        if self.wm_readout_hidden < 0:
            raise ValueError(f"wm_readout_hidden must be >= 0; got {self.wm_readout_hidden}.")
        if self.pc_length < 3 or any(s < 1 or s + self.violation_width > self.pc_length for s in self.violation_starts):
            raise ValueError(f"violation_starts {self.violation_starts} with width {self.violation_width} must lie in "
                             f"[1, pc_length = {self.pc_length}).")
        if not self.ts_taus or any(t <= 1 for t in self.ts_taus) or self.ts_learned_init <= 1:
            raise ValueError(f"ts_taus and ts_learned_init must be time constants > 1 step; got {self.ts_taus}, {self.ts_learned_init}.")
        if self.ts_tau_fast >= self.ts_tau_slow:
            raise ValueError(f"need ts_tau_fast < ts_tau_slow; got {self.ts_tau_fast}, {self.ts_tau_slow}.")
        if self.ts_length <= self.ts_window:
            raise ValueError(f"ts_length must exceed ts_window; got {self.ts_length} <= {self.ts_window}.")
        if self.ts_measure_length < 2 * self.ts_max_lag + 100:
            raise ValueError(f"ts_measure_length must be at least 2 ts_max_lag + 100 = {2 * self.ts_max_lag + 100}; "
                             f"got {self.ts_measure_length}.")
        if self.wm_dt > self.wm_tau:
            raise ValueError(f"need wm_dt <= wm_tau; got wm_dt={self.wm_dt}, wm_tau={self.wm_tau}.")
        if self.wm_min_length and not 2 <= self.wm_min_length <= self.wm_length:
            raise ValueError(f"wm_min_length must be 0 or in [2, wm_length = {self.wm_length}]; got {self.wm_min_length}.")
        if self.wm_length < 2 or not self.wm_eval_lengths or any(n < 2 for n in self.wm_eval_lengths):
            raise ValueError(f"wm_length and wm_eval_lengths must be >= 2 (sample and probe); got {self.wm_length}, "
                             f"{self.wm_eval_lengths}.")


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


def cortical(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """Part 1: the chapter's network and the corrected one (nothing trained)."""
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
    }
    run_dir.save_figure(plot_activity(seed_max, fixed_max, fixed_x, config), "activity")
    run_dir.save_figure(plot_eigenvalues(seed_mu, fixed_mu), "eigenvalues")
    run_dir.save_figure(plot_timescales(timescales), "timescales")
    return summary


# --- training: one Adam loop for every part -------------------------------------------------


def run_key(config: Config, part: str, variant: str) -> jax.Array:
    """The run's base key: its place in :data:`ALL_RUNS`, so choosing fewer runs changes no draws."""
    return jax.random.fold_in(jax.random.key(config.seed, impl=PRNG), 1 + ALL_RUNS.index((part, variant)))


def init_key(config: Config, part: str, variant: str) -> jax.Array:
    """The initial parameters' key (no training step folds in this value)."""
    return jax.random.fold_in(run_key(config, part, variant), 2**31 - 1)


def eval_key(config: Config, part: str, variant: str) -> jax.Array:
    """Held-out draws: a key no training step uses."""
    return jax.random.fold_in(jax.random.key(config.seed + 10_000, impl=PRNG), 1 + ALL_RUNS.index((part, variant)))


def plan(config: Config) -> list[tuple[str, str]]:
    chosen = {"predictive": config.stimuli, "timescales": config.hierarchies, "memory": config.memory_models}
    return [(p, v) for p, v in ALL_RUNS if p in config.parts and v in chosen[p]]


def train_steps(config: Config, part: str) -> int:
    return {"predictive": config.pc_steps, "timescales": config.ts_steps, "memory": config.wm_steps}[part]


def chunk_size(config: Config, part: str) -> int:
    return math.gcd(train_steps(config, part), 50)


def make_trainer(loss: Callable, config: Config, part: str, key: jax.Array):
    """``(params, opt_state, start) -> (params, opt_state, losses[chunk])``: ``chunk`` Adam steps in
    one jitted scan; step ``i`` draws its data from ``fold_in(key, i)``."""
    optimizer = optax.chain(optax.clip_by_global_norm(config.clip_norm), optax.adam(config.learning_rate))
    chunk = chunk_size(config, part)

    def step(state, i):
        params, opt_state = state
        value, grads = jax.value_and_grad(loss)(params, jax.random.fold_in(key, i))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    @jax.jit
    def train_chunk(params, opt_state, start):
        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), start + jnp.arange(chunk))
        return params, opt_state, losses

    return optimizer, train_chunk


def linear(key: jax.Array, d_in: int, d_out: int) -> dict:
    return {"w": jax.random.normal(key, (d_in, d_out)) / math.sqrt(d_in), "b": jnp.zeros(d_out)}


def build(part: str, variant: str, config: Config) -> tuple[Callable, Callable]:
    """``(init(key) -> params, loss(params, key) -> scalar)`` of one training run."""
    if part == "predictive":
        return predictive_init(config), functools.partial(predictive_loss, stimulus=variant, config=config)
    if part == "timescales":
        return functools.partial(hierarchy_init, variant=variant, config=config), \
            functools.partial(hierarchy_loss, variant=variant, config=config)
    return functools.partial(memory_init, model=variant, config=config), \
        functools.partial(memory_loss, model=variant, config=config)


# --- part 2: predictive coding --------------------------------------------------------------


def stimulus_batch(stimulus: str, config: Config, key: jax.Array, batch: int, *, violations: bool,
                   noise: float | None = None, random_phase: bool = True):
    """``(x [batch, pc_length], mask [pc_length])``: the chapter's sine (violation: inverted) or the
    tone motif (violation: the tone two places ahead)."""
    if stimulus == "sine":
        pattern, kind, shift = seed_sine_pattern(config.sine_period), "invert", None
    else:
        pattern, kind, shift = tone_pattern(config.tone_frequencies, config.tone_length), "shift", 2 * config.tone_length
    return periodic_stimulus(
        key, batch, pattern, config.pc_length, noise=config.pc_noise if noise is None else noise,
        violations=config.violation_starts if violations else (), width=config.violation_width,
        kind=kind, shift=shift, random_phase=random_phase)


def predictor_cell(config: Config) -> Cell:
    return {"gru": gru, "lstm": lstm}[config.pc_model]()


def predictive_init(config: Config) -> Callable:
    def init(key):
        k_cell, k_out = jax.random.split(key)
        return {"cell": predictor_cell(config).init(k_cell, 1, config.pc_hidden),
                "readout": linear(k_out, config.pc_hidden, 1)}
    return init


def predict_next(params: dict, x: jax.Array, config: Config) -> jax.Array:
    """``[b, T]`` predictions: entry ``t`` is the prediction of ``x_{t+1}`` from ``x_0 .. x_t``."""
    hs = rnn(predictor_cell(config), params["cell"], x[..., None])
    return (hs @ params["readout"]["w"] + params["readout"]["b"])[..., 0]


def predictive_loss(params: dict, key: jax.Array, *, stimulus: str, config: Config) -> jax.Array:
    """Next-sample squared error on regular sequences (no violations) of random phase."""
    x, _ = stimulus_batch(stimulus, config, key, config.pc_batch, violations=False)
    return jnp.mean(jnp.square(predict_next(params, x, config)[:, :-1] - x[:, 1:]))


def error_summary(sq_err: np.ndarray, mask: np.ndarray, config: Config) -> dict:
    """Squared errors ``[b, T - 1]`` of the predictions of ``x_1 .. x_{T-1}``, split by window."""
    inside = mask[1:]
    after = np.zeros_like(mask)
    for s in config.violation_starts:
        after[s + config.violation_width : s + 2 * config.violation_width] = True
    after = after[1:] & ~inside
    out = {
        "mse": float(sq_err.mean()),
        "mse_inside": float(sq_err[:, inside].mean()),
        "mse_outside": float(sq_err[:, ~inside].mean()),
        "mse_after": float(sq_err[:, after].mean()) if after.any() else None,
        "mse_window_onsets": float(sq_err[:, [s - 1 for s in config.violation_starts]].mean()),
    }
    out["mismatch_ratio"] = out["mse_inside"] / out["mse_outside"]
    return out


def evaluate_predictive(stimulus: str, params: dict, config: Config) -> tuple[dict, dict]:
    """Held-out test sequences with violations (random phase, fresh noise), regular ones, and the
    noiseless phase-0 sequence (for the sine: the chapter's stimulus); the trained RNN against the
    persistence predictor ``x_hat_t = x_{t-1}`` (the chapter's "predictive coding")."""
    @jax.jit
    def held_out(params, key):
        k_test, k_regular = jax.random.split(key)
        sets = {
            "test": stimulus_batch(stimulus, config, k_test, config.pc_test, violations=True)[0],
            "regular": stimulus_batch(stimulus, config, k_regular, config.pc_test, violations=False)[0],
            "noiseless": stimulus_batch(stimulus, config, k_test, 1, violations=True, noise=0.0, random_phase=False)[0],
        }
        return sets, {k: predict_next(params, v, config) for k, v in sets.items()}

    mask = violation_mask(config.pc_length, config.violation_starts, config.violation_width)
    sets, predicted = jax.device_get(held_out(params, eval_key(config, "predictive", stimulus)))
    out, curves = {}, {}
    for name, data in sets.items():
        rnn_pred = predicted[name][:, :-1]
        errors = {"rnn": (rnn_pred - data[:, 1:]) ** 2, "persistence": (data[:, :-1] - data[:, 1:]) ** 2}
        if name == "regular":
            out[name] = {k: {"mse": float(e.mean())} for k, e in errors.items()}
        else:
            out[name] = {k: error_summary(e, mask, config) for k, e in errors.items()}
        if name == "noiseless":
            curves = {"stimulus": data[0], "rnn": rnn_pred[0], "persistence": data[0, :-1], "mask": mask}
        if name == "test":
            curves_test = {k: e.mean(0) for k, e in errors.items()}
    curves["test_mean_sq_error"] = curves_test
    return out, curves


# --- part 3: hierarchical timescales --------------------------------------------------------


def hierarchy_cell(variant: str, config: Config) -> Cell:
    taus = config.ts_taus if variant == "fixed" else (config.ts_learned_init,) * len(config.ts_taus)
    return leaky_stack(taus, learn_tau=variant == "learned", noise_std=config.ts_noise, activation="tanh")


def hierarchy_init(key: jax.Array, *, variant: str, config: Config) -> dict:
    k_cell, k_out = jax.random.split(key)
    layers = len(config.ts_taus)
    return {"cell": hierarchy_cell(variant, config).init(k_cell, 1, config.ts_hidden),
            "readout": linear(k_out, layers * config.ts_hidden, 3)}


def hierarchy_rates(params: dict, u: jax.Array, noise_key: jax.Array, *, variant: str, config: Config) -> jax.Array:
    """``[b, T, L h]`` rates of every layer (layer 1 first) under input ``u`` ``[b, T, 1]``."""
    xs = append_noise(noise_key, u, len(config.ts_taus) * config.ts_hidden) if config.ts_noise else u
    return rnn(hierarchy_cell(variant, config), params["cell"], xs)


def task_batch(config: Config, key: jax.Array, batch: int, length: int):
    return mixed_timescales(key, batch, length, tau_fast=config.ts_tau_fast, tau_slow=config.ts_tau_slow,
                            noise=config.ts_obs_noise, window=config.ts_window)


def hierarchy_loss(params: dict, key: jax.Array, *, variant: str, config: Config) -> jax.Array:
    """Mean squared error on the three targets after a burn-in of ``ts_window`` steps."""
    k_task, k_noise = jax.random.split(key)
    u, y = task_batch(config, k_task, config.ts_batch, config.ts_length)
    rates = hierarchy_rates(params, u, k_noise, variant=variant, config=config)
    pred = rates @ params["readout"]["w"] + params["readout"]["b"]
    return jnp.mean(jnp.square(pred - y)[:, config.ts_window:])


def layer_timescales(rates: np.ndarray, config: Config) -> list[dict]:
    """Per layer: the unit-averaged autocorrelation of the rates (after ``2 max_lag`` steps of
    burn-in) and Murray et al. 2014's fit ``A (exp(-k / tau) + B)`` to lags ``1 .. max_lag``."""
    out = []
    for l in range(len(config.ts_taus)):
        x = rates[:, 2 * config.ts_max_lag :, l * config.ts_hidden : (l + 1) * config.ts_hidden]
        acf = autocorrelation(x, config.ts_max_lag)
        fit = fit_timescale(acf, max_tau=1e4)
        out.append({"acf": acf, "fit": fit._asdict(), "activity_std": float(x.std())})
    return out


def evaluate_hierarchy(variant: str, params: dict, initial: dict, config: Config) -> tuple[dict, dict]:
    """Held-out task MSE per target (after the ``ts_window`` burn-in), and each layer's fitted
    timescale of the trained and the untrained (initial) network, during the task and spontaneous
    (zero input, recurrent noise), all on ``ts_measure_batch`` held-out sequences of
    ``ts_measure_length`` steps (the same noise draws in every condition)."""
    k_measure, k_noise = jax.random.split(eval_key(config, "timescales", variant))
    rates_of = jax.jit(functools.partial(hierarchy_rates, variant=variant, config=config))
    u_long, y = jax.jit(lambda k: task_batch(config, k, config.ts_measure_batch, config.ts_measure_length))(k_measure)
    trained_task = np.asarray(rates_of(params, u_long, k_noise))
    pred = trained_task @ np.asarray(params["readout"]["w"]) + np.asarray(params["readout"]["b"])
    err = (pred - np.asarray(y))[:, config.ts_window:]
    names = ("fast_latent", "slow_latent", "running_mean")
    variance = np.asarray(y)[:, config.ts_window:].var(axis=(0, 1))
    summary = {
        "time_constants": [float(t) for t in time_constants(params["cell"])],
        "initial_time_constants": [float(t) for t in time_constants(initial["cell"])],
        "test_mse": {n: float(v) for n, v in zip(names, np.mean(err**2, axis=(0, 1)))},
        "target_variance": {n: float(v) for n, v in zip(names, variance)},
    }
    curves = {}
    conditions = {"task": u_long, "spontaneous": jnp.zeros_like(u_long)}
    for label, p in (("trained", params), ("untrained", initial)):
        for cond, inputs in conditions.items():
            rates = trained_task if (label, cond) == ("trained", "task") else np.asarray(rates_of(p, inputs, k_noise))
            layers = layer_timescales(rates, config)
            summary[f"{label}_{cond}"] = [
                {"tau": l["fit"]["tau"], "amplitude": l["fit"]["amplitude"], "offset": l["fit"]["offset"],
                 "fit_rmse": l["fit"]["rmse"], "activity_std": l["activity_std"]} for l in layers]
            taus = [l["fit"]["tau"] for l in layers]
            summary[f"{label}_{cond}_rises_with_depth"] = bool(np.all(np.diff(taus) > 0))
            curves[f"{label}_{cond}"] = layers
    return summary, curves


# --- part 4: working memory -----------------------------------------------------------------


def memory_cell(model: str, config: Config) -> Cell:
    if model == "gated":
        return gated_memory()
    if model == "rate":
        return rate("softplus", tau=config.wm_tau, dt=config.wm_dt, noise_std=config.wm_noise)
    return gru()


def memory_init(key: jax.Array, *, model: str, config: Config) -> dict:
    k_cell, k_1, k_2 = jax.random.split(key, 3)
    h, r = config.wm_hidden, config.wm_readout_hidden
    readout = {"out": linear(k_2, r or h, 1)} | ({"hidden": linear(k_1, h, r)} if r else {})
    return {"cell": memory_cell(model, config).init(k_cell, config.wm_features, h), "readout": readout}


def memory_logits(params: dict, xs: jax.Array, noise_key: jax.Array, *, model: str, config: Config,
                  last: jax.Array | None = None) -> jax.Array:
    """``[b]`` match logits from the state after the probe (step ``last`` ``[b]``, default the final
    step) through the readout."""
    cell = memory_cell(model, config)
    if model == "rate" and config.wm_noise:
        xs = append_noise(noise_key, xs, config.wm_hidden)
    states = rnn(cell, params["cell"], xs)
    final = states[:, -1] if last is None else states[jnp.arange(len(states)), last]
    if "hidden" in params["readout"]:
        final = jax.nn.relu(final @ params["readout"]["hidden"]["w"] + params["readout"]["hidden"]["b"])
    return (final @ params["readout"]["out"]["w"] + params["readout"]["out"]["b"])[:, 0]


def memory_loss(params: dict, key: jax.Array, *, model: str, config: Config) -> jax.Array:
    """Binary cross-entropy of match / non-match on the chapter's protocol (sample, distractors,
    probe; p(match) = 1/2), at ``wm_length`` or, with ``wm_min_length``, a length per trial."""
    k_task, k_noise = jax.random.split(key)
    xs, labels = delayed_match_to_sample(k_task, config.wm_batch, config.wm_length, config.wm_features)
    last = None
    if config.wm_min_length:      # the probe moved to step n - 1 of a length-n trial; later steps are never read
        last = jax.random.randint(jax.random.fold_in(key, 1), (config.wm_batch,), config.wm_min_length - 1, config.wm_length)
        xs = xs.at[jnp.arange(config.wm_batch), last].set(xs[:, -1])
    logits = memory_logits(params, xs, k_noise, model=model, config=config, last=last)
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels.astype(jnp.float32)))


def evaluate_memory(model: str, params: dict, config: Config) -> dict:
    """Held-out accuracy (logit > 0 is "match") per sequence length; the trained one is ``wm_length``."""
    lengths = sorted(set(config.wm_eval_lengths) | {config.wm_length})

    @jax.jit
    def held_out(params, key):
        xs, labels = [], []
        for n in lengths:     # right-padded to the longest; each trial is read out at its own probe
            x, y = delayed_match_to_sample(jax.random.fold_in(key, n), config.wm_eval, n, config.wm_features)
            xs.append(jnp.pad(x, ((0, 0), (0, max(lengths) - n), (0, 0))))
            labels.append(y)
        last = jnp.repeat(jnp.asarray(lengths) - 1, config.wm_eval)
        logits = memory_logits(params, jnp.concatenate(xs), jax.random.fold_in(key, 0), model=model, config=config, last=last)
        return logits, jnp.concatenate(labels)

    logits, labels = jax.device_get(held_out(params, eval_key(config, "memory", model)))
    correct = (logits > 0) == (labels == 1)
    by_length = {str(n): float(c.mean()) for n, c in zip(lengths, np.split(correct, len(lengths)))}
    return {"accuracy": by_length[str(config.wm_length)], "accuracy_by_length": by_length,
            "parameters": int(sum(v.size for v in jax.tree.leaves(params["cell"]))),
            "readout_parameters": int(sum(v.size for v in jax.tree.leaves(params["readout"])))}


# --- figures --------------------------------------------------------------------------------


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


def shade(ax, mask) -> None:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):
        ax.axvspan(a - 0.5, b - 0.5, color="tab:red", alpha=0.2, lw=0)


def plot_predictive(curves: dict, summaries: dict, config: Config) -> Figure:
    stimuli = list(curves)
    fig = Figure(figsize=(6.2 * len(stimuli), 8), layout="constrained")
    axes = fig.subplots(3, len(stimuli), squeeze=False)
    for j, stim in enumerate(stimuli):
        c, s = curves[stim], summaries[stim]
        t = np.arange(len(c["stimulus"]))
        a, b, e = axes[:, j]
        a.plot(t, c["stimulus"], color="k", lw=1)
        a.set_title(f"{stim}: noiseless phase-0 test sequence" + (" (the chapter's stimulus)" if stim == "sine" else ""), fontsize=9)
        b.plot(t, c["stimulus"], color="k", lw=0.8, alpha=0.4, label="stimulus")
        b.plot(t[1:], c["rnn"], color="tab:blue", lw=1, label=f"trained {config.pc_model.upper()}")
        b.plot(t[1:], c["persistence"], color="tab:orange", lw=1, ls="--", label="persistence x[t-1]")
        b.legend(fontsize=7)
        b.set_title("next-sample predictions", fontsize=9)
        for name, color in (("rnn", "tab:blue"), ("persistence", "tab:orange")):
            m = s["test"][name]
            e.semilogy(t[1:], c["test_mean_sq_error"][name], color=color,
                       label=f"{'trained ' + config.pc_model.upper() if name == 'rnn' else name}: mismatch ratio {m['mismatch_ratio']:.1f}")
        e.set_title(f"squared error, mean over {config.pc_test} held-out noisy sequences", fontsize=9)
        e.set_xlabel("time step")
        e.legend(fontsize=7)
        for ax in (a, b, e):
            shade(ax, c["mask"])
    fig.suptitle("Predictive coding: violation windows shaded", fontsize=10)
    return fig


def plot_hierarchy(curves: dict, summaries: dict, config: Config) -> Figure:
    variants = list(curves)
    fig = Figure(figsize=(11, 3.6 * len(variants)), layout="constrained")
    axes = fig.subplots(len(variants), 2, squeeze=False)
    lags = np.arange(config.ts_max_lag + 1)
    colors = __import__("matplotlib").colormaps["viridis"](np.linspace(0, 0.85, len(config.ts_taus)))
    for i, variant in enumerate(variants):
        a, b = axes[i]
        for l, layer in enumerate(curves[variant]["trained_task"]):
            f = layer["fit"]
            a.plot(lags, layer["acf"], ".", ms=3, color=colors[l])
            a.plot(lags[1:], f["amplitude"] * (np.exp(-lags[1:] / f["tau"]) + f["offset"]), color=colors[l],
                   label=f"layer {l + 1}: tau = {f['tau']:.1f}")
        a.set_xlabel("lag (steps)")
        a.set_ylabel("autocorrelation")
        a.legend(fontsize=7)
        imposed = summaries[variant]["time_constants"]
        a.set_title(f"{variant} tau (cell: {', '.join(f'{t:.1f}' for t in imposed)}); trained, during the task", fontsize=9)
        conds = ("trained_task", "trained_spontaneous", "untrained_task", "untrained_spontaneous")
        width = 0.8 / len(conds)
        for k, cond in enumerate(conds):
            taus = [m["tau"] for m in summaries[variant][cond]]
            b.bar(np.arange(len(taus)) + k * width, taus, width, label=cond.replace("_", ", "))
        b.plot(np.arange(len(imposed)) + 0.4 - width / 2, imposed, "k_", ms=20, mew=2, label="cell tau")
        b.set_xticks(np.arange(len(imposed)) + 0.4 - width / 2, [f"layer {l + 1}" for l in range(len(imposed))])
        b.set_yscale("log")
        b.set_ylabel("fitted tau (steps)")
        b.legend(fontsize=7)
        b.set_title("fitted timescale per layer, A(exp(-k/tau) + B)", fontsize=9)
    return fig


def plot_memory(results: dict, config: Config) -> Figure:
    fig = Figure(figsize=(5, 3.8), layout="constrained")
    ax = fig.subplots()
    for model, r in results.items():
        n = sorted(int(k) for k in r["accuracy_by_length"])
        ax.plot([k - 2 for k in n], [r["accuracy_by_length"][str(k)] for k in n], "o-", label=f"{model} ({r['parameters']} params)")
    ax.axvline(config.wm_length - 2, color="grey", lw=0.8, ls="--", label="trained")
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_xlabel("distractors between sample and probe")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0.4, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("Delayed match-to-sample with distractors", fontsize=10)
    return fig


def plot_losses(losses: dict, config: Config) -> Figure:
    parts = sorted({p for p, _ in losses}, key=PARTS.index)
    fig = Figure(figsize=(4 * len(parts), 3.2), layout="constrained")
    axes = fig.subplots(1, len(parts), squeeze=False)[0]
    for ax, part in zip(axes, parts):
        for (p, v), curve in losses.items():
            if p == part:
                w = max(1, len(curve) // 50)
                ax.plot(np.convolve(curve, np.ones(w) / w, mode="valid"), label=v)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(part, fontsize=9)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("training loss")
    return fig


# --- main -----------------------------------------------------------------------------------


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    started = time.perf_counter()
    summary = cortical(config, run_dir) if "cortical" in config.parts else {}
    cortical_s = time.perf_counter() - started
    runs = plan(config)
    lengths = [train_steps(config, p) for p, _ in runs]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int).tolist()
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        done = offsets[len(sweep["finished"])] + (sweep["current"]["step"] if sweep["current"] else 0)
        bar = progress(desc="neuro dynamics", total=offsets[-1], initial=done)
        initials = {}
        for index in range(len(sweep["finished"]), len(runs)):
            part, variant = runs[index]
            init, loss = build(part, variant, config)
            optimizer, train_chunk = make_trainer(loss, config, part, run_key(config, part, variant))
            fresh = jax.jit(init)(init_key(config, part, variant))
            initials[(part, variant)] = jax.device_get(fresh)
            current, state = ckpt.sweep_run(sweep, index, {"params": fresh, "opt_state": optimizer.init(fresh)},
                                            lambda index=index: {"run": index, "step": 0, "losses": []})
            params, opt_state = state["params"], state["opt_state"]
            steps, chunk = train_steps(config, part), chunk_size(config, part)
            for start in range(current["step"], steps, chunk):
                params, opt_state, chunk_losses = train_chunk(params, opt_state, start)
                chunk_losses = np.asarray(chunk_losses)
                for i, value in enumerate(chunk_losses):
                    run_dir.log(part=part, variant=variant, step=start + i, loss=value)
                bar.update(len(chunk_losses))
                current["losses"].append(chunk_losses)
                current["step"] = start + chunk
                final = index == len(runs) - 1 and current["step"] == steps
                ckpt.save(offsets[index] + current["step"], {"params": params, "opt_state": opt_state}, sweep, force=final)
            sweep["finished"].append({"params": jax.device_get(params), "losses": np.concatenate(current["losses"])})
            sweep["current"] = None
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions

    trained = {r: f["params"] for r, f in zip(runs, sweep["finished"])}
    losses = {r: np.asarray(f["losses"]) for r, f in zip(runs, sweep["finished"])}
    final_loss = lambda r: float(np.mean(losses[r][-max(1, len(losses[r]) // 10):]))
    pc, pc_curves, ts, ts_curves, wm = {}, {}, {}, {}, {}
    for part, variant in progress(runs, desc="evaluate"):
        params = trained[(part, variant)]
        if part == "predictive":
            pc[variant], pc_curves[variant] = evaluate_predictive(variant, params, config)
            pc[variant]["final_loss"] = final_loss((part, variant))
        elif part == "timescales":
            initial = initials.get((part, variant))
            if initial is None:    # trained in an earlier session: draw the same initial parameters
                initial = jax.device_get(jax.jit(build(part, variant, config)[0])(init_key(config, part, variant)))
            ts[variant], ts_curves[variant] = evaluate_hierarchy(variant, params, initial, config)
            ts[variant]["final_loss"] = final_loss((part, variant))
        else:
            wm[variant] = evaluate_memory(variant, params, config) | {"final_loss": final_loss((part, variant))}
    if pc:
        summary["predictive_coding"] = pc
        run_dir.save_figure(plot_predictive(pc_curves, pc, config), "predictive_coding")
    if ts:
        summary["hierarchical_timescales"] = ts
        run_dir.save_figure(plot_hierarchy(ts_curves, ts, config), "hierarchy_timescales")
    if wm:
        summary["working_memory"] = wm
        run_dir.save_figure(plot_memory(wm, config), "working_memory")
    if runs:
        run_dir.save_figure(plot_losses(losses, config), "training_loss")
    summary["environment"] = environment()
    summary["timings"] = {"runtime_s": round(runtime_s + cortical_s, 1), "cortical_s": round(cortical_s, 2),
                          "sessions": sessions}
    return summary


def format_table(summary: dict) -> str:
    lines = []
    if "chapter" in summary:
        c, f = summary["chapter"], summary["corrected"]
        lines += [
            f"chapter:   radius(A) = {c['spectral_radius_update']:.3f}, max|x| at end = {c['max_abs_x_at'][max(c['max_abs_x_at'], key=int)]:.3g}",
            f"corrected: radius(A) = {f['spectral_radius_update']:.3f}, max|x| overall = {f['max_abs_x']:.3g}",
        ]
    for m in summary.get("corrected", {}).get("timescales", {}).get("modes", []):
        lines.append(f"  mode |mu| = {abs(complex(*m['eigenvalue'])):.4f}: predicted {m['predicted_ms']:.1f} ms, measured {m['measured_ms']:.1f} ms")
    for stim, r in summary.get("predictive_coding", {}).items():
        lines.append(f"predictive coding, {stim}:")
        for name in ("rnn", "persistence"):
            m = r["test"][name]
            lines.append(f"  {name:<12} test MSE {m['mse']:.4f}  inside {m['mse_inside']:.4f}  outside {m['mse_outside']:.4f}"
                         f"  mismatch ratio {m['mismatch_ratio']:.2f}  (regular test MSE {r['regular'][name]['mse']:.4f})")
    for variant, r in summary.get("hierarchical_timescales", {}).items():
        lines.append(f"timescales, {variant} tau (cell {', '.join(f'{t:.1f}' for t in r['time_constants'])}):")
        for cond in ("trained_task", "trained_spontaneous", "untrained_task", "untrained_spontaneous"):
            lines.append(f"  {cond:<22} fitted tau per layer " + ", ".join(f"{m['tau']:.1f}" for m in r[cond])
                         + ("  (rises)" if r[f"{cond}_rises_with_depth"] else ""))
    for model, r in summary.get("working_memory", {}).items():
        lines.append(f"working memory, {model:<6} accuracy {r['accuracy']:.3f}  by length "
                     + ", ".join(f"{k}: {v:.2f}" for k, v in r["accuracy_by_length"].items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
