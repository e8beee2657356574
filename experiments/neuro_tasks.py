"""Trained RNNs on cognitive tasks, opened up: accuracy, psychometrics, memory, fixed points.

What it measures
    A leaky rate RNN (:mod:`seqjax.cells.rate`: ``tau = 100`` ms, ``dt = 20`` ms, recurrent
    noise 0.05, Softplus; Song, Yang & Wang 2016, Yang et al. 2019), and a GRU and an LSTM of the
    same width for comparison, each trained from scratch on each task of
    :mod:`seqjax.data.cognitive` (perceptual and context-dependent decision making, delayed match
    and non-match to sample, go / anti / delayed go, ready-set-go), then:

    * **accuracy per task and model** on held-out trials with input and recurrent noise on, scored
      as Yang et al. 2019 do (fixation held until the go cue and the right response; ready-set-go:
      the produced interval within 15% of the target);
    * the **psychometric curve** of perceptual decision making: P(choose stimulus 1) against the
      signed coherence, with a logistic fit ``P = 1 / (1 + exp(-(b0 + b1 c)))`` (maximum likelihood
      on the single trials), its slope, bias and 75%-threshold;
    * **accuracy against delay** for match and non-match to sample, over the trained delays and
      longer ones the networks never saw;
    * for the rate network, its **dynamics**: fixed and slow points under the input held in
      the task's memory or decision epoch, found by minimising ``q = 1/2 |F(h) - h|^2`` from states
      visited on trials (Sussillo & Barak 2013, :mod:`seqjax.analysis.fixed_points`), their
      stability from the eigenvalues of the Jacobian of the discrete update (stable: all
      ``|lambda| < 1``), the eigenvalue spectra, **PCA** of trial-averaged activity per condition
      (the answer) with the fixed points projected in, and single-unit **choice selectivity**
      ``(r_pref - r_null) / (r_pref + r_null)`` (mean rate of the unit's most and least preferred
      answer, over the decision epoch).

How
    Each (task, model) pair trains with Adam on fresh trials every step (a function of the seed,
    the task and the step), weighted cross-entropy over time (Yang et al. 2019's loss weights:
    1 before the go cue, 0 for 100 ms after it, 5 after; ``--loss mse`` uses their sigmoid
    outputs and squared error instead), gradients clipped by global norm, at a constant learning
    rate or (``--schedule warmup_cosine``) a linear warmup then a cosine decay over the run's
    budget. The rate network's recurrent noise is drawn per trial from the step's key; evaluation
    uses held-out keys. Each run has a step budget (``steps`` for the rate RNN,
    ``comparison_steps`` for the GRU and LSTM, ``task_steps`` per task for every model). After
    every chunk of (at most 50) steps the run scores a fixed validation batch of the training
    distribution (its own key, not the evaluation's); with ``--stop-accuracy A`` a run ends once
    that accuracy reaches ``A``, so tasks that saturate early (go, anti) do not spend the budget
    the hard ones need. The reported accuracy is always on the separate evaluation trials.

Result (default run: 64 units, Adam at peak learning rate 0.01 with 100 warmup steps and a
cosine decay over a budget of 3000 steps per task for the rate RNN and 1000 for the GRU and the
LSTM, each run stopped once its validation accuracy reaches 0.98; 17.5 minutes wall, 14.4 of them
training, on the 2-core machine while the test suite ran beside it (37 minutes at a load average of
15-20; both runs wrote the same ``metrics.json``))
    Held-out accuracy, rate / GRU / LSTM (Adam steps used in brackets): perceptual decision
    0.983 (850) / 0.999 (350) / 0.983 (750), context-dependent decision 0.984 (1350) / 0.949
    (1000) / 0.873 (1000), match to sample 0.972 (850) / 0.968 (350) / 0.988 (850), non-match
    0.981 (1250) / 0.969 (800) / 0.494 (1000), go 0.998 (250) / 1.00 (100) / 1.00 (100), anti
    0.996 (250) / 1.00 (100) / 1.00 (100), delayed go 0.994 (1550) / 1.00 (550) / 0.250 (1000),
    ready-set-go 0.984 (1050) / 0.992 (200) / 1.00 (250). The rate network passes 0.9 on every
    task, on the same trials as before (decision coherences 0.05-0.4). Every GRU run met the
    criterion but context-dependent decisions (budget spent at 0.949); the LSTM did not learn
    non-match or delayed go in its 1000 steps (validation near chance throughout).
    What changed the rate network's results is the learning rate. At the earlier 3e-3 (constant,
    1000 steps) it reached 0.83 on perceptual and 0.79 on context-dependent decisions; at 3e-3 for
    2000 steps, 0.94 / 0.95 (constant) and 0.96 / 0.88 (warmup + cosine); at 0.01 with warmup +
    cosine over 2000 steps, 1.000 / 0.998 (non-match 1.000 against 0.974). A constant 0.01 learns
    as fast but its validation accuracy keeps moving (between 0.96 and 1.00 over the last 750
    steps of 2000); the decay settles it. Early stopping then spends 250 steps on go and anti instead of 1000.
    Perceptual decisions: 0.99 to 1.00 correct from coherence 0.04 to 0.2, but 0.94 at 0.4 (a
    dip at the strongest stimulus that this run does not explain);
    at Yang et al. 2019's coherences, never trained on, 0.70 at 0.01, 0.87 at 0.02, 0.99 at 0.04,
    1.00 at 0.08. Logistic slope 98 per unit coherence, 75% threshold 0.011 (GRU 0.010, LSTM
    0.021); 0.6% broken fixations. Context-dependent decisions: 0.989 congruent, 0.980
    incongruent, so it does ignore the irrelevant modality (the 1000-step network did not: 0.58
    incongruent). Match and non-match to sample hold at delays never trained (match 0.95 at 1.5
    s, 0.94 at 2 s; non-match 0.98, 0.94). Ready-set-go still regresses to the mean, now less:
    482 ms for 480, 754 ms for 800.
    Fixed points under the held input: the match-to-sample delay has 14 points, 8 stable (leading
    ``|lambda|`` 0.96-0.98) and 6 weakly unstable (1.04-1.07); delayed go has 25 along a line, 16
    of them with leading ``|lambda|`` within 0.01 of 1, like a ring attractor; context-dependent
    decisions 19 (18 stable), perceptual decisions 3 (1 stable). Go has 20 points, all weakly
    unstable (1.03), anti 5 marginal ones (1.002). Choice selectivity is near 1 for almost every
    unit of the decision and memory tasks (median 0.95-1.00).

Run::

    python -m experiments.neuro_tasks            # default (8 tasks x 3 models)
    python -m experiments.neuro_tasks --quick    # seconds; used by the tests
    python -m experiments.neuro_tasks --resume RUN_DIR

Resuming: every ``checkpoint_every`` training steps (counted over the whole sweep) the run saves
the current model's parameters and Adam state with the finished runs' parameters and losses;
``--resume RUN_DIR`` continues to the same ``metrics.json`` (evaluation and analysis are recomputed
from the trained parameters; wall-clock numbers are under ``timings``).

Outputs: ``config.json``, ``metrics.jsonl`` (loss per step), ``metrics.json``, ``accuracy.png``,
``psychometric.png``, ``delay_accuracy.png``, ``fixed_points.png``, ``eigenvalues.png``,
``selectivity.png``, ``training_loss.png``, ``analysis.npz``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, ClassVar, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from seqjax.analysis import find_fixed_points, linearise, unique_points
from seqjax.cells import Cell, gru, lstm, rate
from seqjax.cells.rate import append_noise, append_zero_noise
from seqjax.data.cognitive import TASKS, choice_scores, timing_scores
from seqjax.data.cognitive.memory import DELAYS_MS
from seqjax.data.cognitive.trials import cue_channel, fixation_channel, input_features
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.recurrence import rnn

NAME = "neuro_tasks"
MODELS = ("rate", "gru", "lstm")
TIMING_TASKS = ("ready_set_go",)
MEMORY_TASKS = ("delayed_match", "delayed_non_match")
DECISION_TASKS = ("perceptual_decision", "context_decision")
# |lambda| within this of 1 counts as marginal (a line or ring attractor's neutral directions)
MARGINAL = 0.01
# The input held while searching for fixed points: "decision" = fixation off, stimulus off (the
# choice must be held); "delay" = fixation on, nothing else (a memory must be held).
HELD_INPUT = {
    "perceptual_decision": "decision", "context_decision": "decision", "delayed_match": "delay",
    "delayed_non_match": "delay", "go": "delay", "anti": "delay", "delayed_go": "delay",
    "ready_set_go": "delay",
}
# Fixed epoch durations for the analysis trials, so that trial averages align in time.
ANALYSIS_TIMING = {
    "perceptual_decision": {"fixation_ms": 300.0, "stimulus_ms": 600.0},
    "context_decision": {"fixation_ms": 300.0, "stimulus_ms": 600.0},
    "delayed_match": {"fixation_ms": 300.0, "sample_ms": 400.0, "delays_ms": (1000.0,)},
    "delayed_non_match": {"fixation_ms": 300.0, "sample_ms": 400.0, "delays_ms": (1000.0,)},
    "go": {"fixation_ms": 300.0, "stimulus_ms": 400.0},
    "anti": {"fixation_ms": 300.0, "stimulus_ms": 400.0},
    "delayed_go": {"fixation_ms": 300.0, "stimulus_ms": 300.0, "delay_ms": 800.0},
    "ready_set_go": {"fixation_ms": 300.0},
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Train rate RNNs, GRUs and LSTMs on cognitive tasks; measure and analyse them."""

    QUICK: ClassVar[dict[str, Any]] = {
        "tasks": ("perceptual_decision", "delayed_match"),
        "models": ("rate", "gru"),
        "hidden": 16,
        "steps": 20,
        "comparison_steps": 10,
        "stop_accuracy": None,
        "batch_size": 16,
        "eval_batch": 64,
        "psychometric_trials": 16,
        "eval_delays_ms": (200.0, 1000.0, 1600.0),
        "fixed_point_starts": 16,
        "fixed_point_steps": 100,
        "analysis_trials": 32,
    }

    tasks: tuple[str, ...] = option(tuple(TASKS), f"tasks to train on, from {tuple(TASKS)}")
    models: tuple[str, ...] = option(MODELS, "models: rate (leaky rate RNN), gru, lstm")
    hidden: int = option(64, "units per network (Yang et al. 2019 use 256 for 20 tasks at once)")
    steps: int = option(3000, "maximum Adam steps per task for the rate RNN (early stopping may end a task sooner)")
    comparison_steps: int | None = option(1000, "maximum Adam steps per task for the GRU and the LSTM (none: the rate RNN's)")
    task_steps: tuple[str, ...] = option((), "per-task budgets for every model, as task=steps (they override steps and comparison_steps)")
    stop_accuracy: float | None = option(0.98, "end a task's training once its validation accuracy reaches this (none: never)")
    validation_batch: int = option(256, "validation trials, scored after every chunk of steps (early stopping, learning curves)")
    batch_size: int = option(64, "trials per step")
    learning_rate: float = option(1e-2, "Adam (peak) learning rate")
    schedule: Literal["constant", "warmup_cosine"] = option("warmup_cosine", "learning rate: constant, or linear warmup then cosine decay over the task's budget")
    warmup_steps: int = option(100, "warmup_cosine: warmup steps (at most half the budget)")
    final_lr_fraction: float = option(0.05, "warmup_cosine: the learning rate at the end of the budget, as a fraction of the peak")
    clip_norm: float = option(1.0, "clip gradients to this global norm")
    loss: Literal["cross_entropy", "mse"] = option("cross_entropy", "weighted cross-entropy, or Yang et al. 2019's sigmoid + squared error")
    dt: float = option(20.0, "time step (ms)")
    tau: float = option(100.0, "rate RNN time constant (ms)")
    noise_std: float = option(0.05, "rate RNN recurrent noise sigma (Yang et al. 2019: 0.05)")
    activation: Literal["softplus", "relu", "tanh"] = option("softplus", "rate RNN nonlinearity")
    dale: bool = option(False, "rate RNN with Dale's law (80% excitatory units)")
    input_noise: float = option(0.01, "input noise sigma_x of the tasks (Yang et al. 2019: 0.01)")
    n_ring: int = option(8, "direction-tuned input units per modality (= response directions)")
    coherences: tuple[float, ...] = option(
        (0.05, 0.1, 0.2, 0.4), "training coherences of the decision tasks (Yang et al. 2019 use 0.01-0.08 over far longer training)"
    )
    eval_batch: int = option(512, "held-out trials per task and model for accuracy")
    psychometric_coherences: tuple[float, ...] = option(
        (0.0, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16), "coherence magnitudes of the psychometric curve (both signs)"
    )
    psychometric_trials: int = option(200, "trials per signed coherence")
    eval_delays_ms: tuple[float, ...] = option(
        (200.0, 400.0, 600.0, 800.0, 1000.0, 1500.0, 2000.0), "delays of the accuracy-vs-delay curve (trained: 200-1000)"
    )
    fixed_point_starts: int = option(256, "initial states of the fixed-point search (from trajectories)")
    fixed_point_steps: int = option(3000, "Adam steps of the fixed-point search")
    fixed_point_lr: float = option(0.01, "Adam learning rate of the fixed-point search")
    fixed_point_tolerance: float = option(1e-6, "q below this counts as a fixed point (per unit: q / hidden)")
    analysis_trials: int = option(256, "noiseless trials for PCA, selectivity and fixed-point starts")
    seed: int = option(0, "base random seed")
    checkpoint_every: int = option(500, "save a checkpoint every this many training steps (whole sweep)")

    def __post_init__(self):
        for name, allowed in (("tasks", tuple(TASKS)), ("models", MODELS)):
            value = getattr(self, name)
            if not value or any(v not in allowed for v in value) or len(set(value)) != len(value):
                raise ValueError(f"{name} must be distinct values from {allowed}; got {value}.")
        for name in ("hidden", "steps", "batch_size", "eval_batch", "psychometric_trials", "validation_batch",
                     "fixed_point_starts", "fixed_point_steps", "analysis_trials", "checkpoint_every", "n_ring"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.comparison_steps is not None and self.comparison_steps < 1:
            raise ValueError(f"comparison_steps must be at least 1 or none; got {self.comparison_steps}.")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0; got {self.warmup_steps}.")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must be in [0, 1]; got {self.final_lr_fraction}.")
        if self.stop_accuracy is not None and not 0 <= self.stop_accuracy <= 1:
            raise ValueError(f"stop_accuracy must be in [0, 1] or none; got {self.stop_accuracy}.")
        task_budgets(self)      # raises on a malformed task_steps
        for name in ("learning_rate", "clip_norm", "dt", "tau", "fixed_point_lr", "fixed_point_tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}.")
        if self.dt > self.tau:
            raise ValueError(f"dt must be at most tau; got dt={self.dt}, tau={self.tau}.")
        if self.noise_std < 0 or self.input_noise < 0:
            raise ValueError("noise_std and input_noise must be >= 0.")
        if not self.eval_delays_ms or any(d < 0 for d in self.eval_delays_ms):
            raise ValueError(f"eval_delays_ms must be non-empty durations >= 0; got {self.eval_delays_ms}.")
        if not self.coherences or any(c < 0 for c in self.coherences):
            raise ValueError(f"coherences must be magnitudes >= 0; got {self.coherences}.")
        if not self.psychometric_coherences or any(c < 0 for c in self.psychometric_coherences):
            raise ValueError(f"psychometric_coherences must be magnitudes >= 0; got {self.psychometric_coherences}.")


def task_budgets(config: Config) -> dict[str, int]:
    """``config.task_steps`` (``("task=steps", ...)``) as ``{task: steps}``."""
    budgets = {}
    for item in config.task_steps:
        task, _, steps = str(item).partition("=")
        if task not in TASKS or task in budgets or not steps.strip().isdigit() or int(steps) < 1:
            raise ValueError(f"task_steps must be distinct task=steps items (a task from {tuple(TASKS)}, "
                             f"steps >= 1); got {item!r} in {config.task_steps}.")
        budgets[task] = int(steps)
    return budgets


# --- tasks and models -----------------------------------------------------------------------


def task_options(config: Config) -> dict:
    return {"dt": config.dt, "n_ring": config.n_ring, "input_noise": config.input_noise}


def trials(task: str, config: Config, key: jax.Array, batch: int, **overrides):
    options = task_options(config) | ({"coherences": config.coherences} if task in DECISION_TASKS else {})
    return TASKS[task](key, batch, **(options | overrides))


def held_out_trials(task: str, config: Config, key: jax.Array, batch: int, **overrides):
    """:func:`trials` as one jitted program (eagerly, every small op would compile on its own);
    array overrides are arguments, the others static."""
    arrays = {k: v for k, v in overrides.items() if isinstance(v, jax.Array)}
    static = {k: v for k, v in overrides.items() if k not in arrays}
    return jax.jit(lambda key, arrays: trials(task, config, key, batch, **static, **arrays))(key, arrays)


def num_classes(task: str, config: Config) -> int:
    return 2 if task in TIMING_TASKS else 1 + config.n_ring


def make_cell(model: str, config: Config) -> Cell:
    if model == "rate":
        return rate(config.activation, tau=config.tau, dt=config.dt, noise_std=config.noise_std, dale=config.dale)
    return {"gru": gru, "lstm": lstm}[model]()


def init_params(model: str, task: str, config: Config, key: jax.Array) -> dict:
    k_cell, k_out = jax.random.split(key)
    cell = make_cell(model, config)
    c = num_classes(task, config)
    return {
        "cell": cell.init(k_cell, input_features(config.n_ring), config.hidden),
        "readout": {"w": jax.random.normal(k_out, (config.hidden, c)) / math.sqrt(config.hidden), "b": jnp.zeros(c)},
    }


def forward(model: str, cell: Cell, params: dict, inputs: jax.Array, noise_key: jax.Array | None, hidden: int):
    """``(logits [b, t, c], activity [b, t, h])``; the rate network's activity is its rates, and
    its recurrent noise is drawn from ``noise_key`` (``None``: noiseless)."""
    xs = inputs
    if model == "rate" and cell.step_input_features(params["cell"]) != inputs.shape[-1]:
        xs = append_zero_noise(inputs, hidden) if noise_key is None else append_noise(noise_key, inputs, hidden)
    activity = rnn(cell, params["cell"], xs)
    return activity @ params["readout"]["w"] + params["readout"]["b"], activity


@functools.partial(jax.jit, static_argnames=("model", "config"))
def eval_logits(params: dict, inputs: jax.Array, noise_key: jax.Array, *, model: str, config: "Config") -> jax.Array:
    """Held-out logits (one compilation per model, config and input shape)."""
    return forward(model, make_cell(model, config), params, inputs, noise_key, config.hidden)[0]


def loss_fn(logits: jax.Array, batch, kind: str) -> jax.Array:
    """Weighted over steps (``batch.weights``), normalised by the weights' sum."""
    if kind == "cross_entropy":
        per_step = optax.softmax_cross_entropy_with_integer_labels(logits, batch.labels)
    else:
        per_step = jnp.mean(jnp.square(jax.nn.sigmoid(logits) - batch.targets), -1)
    return jnp.sum(per_step * batch.weights) / jnp.sum(batch.weights)


def learning_rate(config: Config, budget: int):
    """The learning rate: ``config.learning_rate``, or with ``schedule="warmup_cosine"`` a linear
    warmup from 0 over ``min(warmup_steps, budget // 2)`` steps, then a cosine decay to
    ``final_lr_fraction * learning_rate`` at step ``budget``."""
    if config.schedule == "constant":
        return config.learning_rate
    warmup = min(config.warmup_steps, budget // 2)
    return optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, warmup, budget, config.learning_rate * config.final_lr_fraction)


def make_trainer(model: str, task: str, config: Config):
    """``(params, opt_state, start) -> (params, opt_state, losses[chunk], validation accuracy)``:
    ``chunk`` Adam steps in one jitted scan, step ``i``'s trials and noise from
    ``fold_in(task key, i)``, then the accuracy on ``validation_batch`` held-out trials of the
    training distribution (one fixed batch and noise, :func:`eval_key` purpose 4) with the
    updated parameters."""
    cell = make_cell(model, config)
    budget = train_steps(config, model, task)
    optimizer = optax.chain(optax.clip_by_global_norm(config.clip_norm), optax.adam(learning_rate(config, budget)))
    task_key = jax.random.fold_in(jax.random.key(config.seed), 1 + list(TASKS).index(task))
    k_val, k_val_noise = jax.random.split(eval_key(config, task, 4))
    chunk = chunk_size(config, model, task)

    def step(state, i):
        params, opt_state = state
        k_trials, k_noise = jax.random.split(jax.random.fold_in(task_key, i))
        batch = trials(task, config, k_trials, config.batch_size)

        def loss(p):
            logits, _ = forward(model, cell, p, batch.inputs, k_noise, config.hidden)
            return loss_fn(logits, batch, config.loss)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    @jax.jit
    def train_chunk(params, opt_state, start):
        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), start + jnp.arange(chunk))
        val = trials(task, config, k_val, config.validation_batch)
        logits, _ = forward(model, cell, params, val.inputs, k_val_noise, config.hidden)
        return params, opt_state, losses, jnp.mean(scores(task, logits, val, config)["correct"])

    return cell, optimizer, train_chunk


def train_steps(config: Config, model: str, task: str) -> int:
    """The step budget of one (task, model) run: ``task_steps``' entry for the task, else
    ``steps`` (rate RNN) or ``comparison_steps`` (GRU, LSTM; ``None``: ``steps``)."""
    budgets = task_budgets(config)
    if task in budgets:
        return budgets[task]
    return config.steps if model == "rate" or config.comparison_steps is None else config.comparison_steps


def chunk_size(config: Config, model: str, task: str) -> int:
    """Steps per jitted chunk (a divisor of the budget, at most 50); validation follows each."""
    return math.gcd(train_steps(config, model, task), 50)


# --- evaluation -----------------------------------------------------------------------------


def eval_key(config: Config, task: str, purpose: int) -> jax.Array:
    """Held-out keys: a different fold than any training step's."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed + 10_000), 1 + list(TASKS).index(task)), purpose)


def scores(task: str, logits, batch, config: Config) -> dict:
    if task in TIMING_TASKS:
        return timing_scores(logits, batch, dt=config.dt)
    return choice_scores(logits, batch)


def evaluate(model: str, task: str, params: dict, config: Config) -> dict:
    """Accuracy on held-out noisy trials, and the task's extra curves.

    Perceptual decision making is evaluated on the psychometric grid (equal trials per signed
    coherence); its accuracy is over the trained coherences (``config.coherences``, uniform, as
    in training). The memory tasks are evaluated over ``eval_delays_ms``; their accuracy is over the
    trained delays (``DELAYS_MS``).
    """
    k_trials, k_noise = jax.random.split(eval_key(config, task, 0))
    extra = {}
    n = config.eval_batch
    if task == "perceptual_decision":
        mags = sorted(set(config.psychometric_coherences) | set(config.coherences))
        levels = np.array(sorted({-m for m in mags} | set(mags)), np.float32)
        c = np.repeat(levels, config.psychometric_trials)
        extra, n = {"signed_coherence": jnp.asarray(c)}, c.size
    elif task in MEMORY_TASKS:
        extra, n = {"delays_ms": config.eval_delays_ms}, config.eval_batch * len(config.eval_delays_ms) // 2
    batch = held_out_trials(task, config, k_trials, n, **extra)
    logits = eval_logits(params, batch.inputs, k_noise, model=model, config=config)
    s = jax.device_get(scores(task, logits, batch, config))
    info = jax.device_get(batch.info)
    correct = np.asarray(s["correct"])
    scored = np.ones(n, bool)
    out = {}
    if task in TIMING_TASKS:
        produced, target = s["produced_ms"], s["target_ms"]
        out["early_fraction"] = float(np.mean(s["early"]))
        out["produced_ms_by_target"] = {
            f"{t:g}": float(np.nanmean(produced[target == t])) if np.isfinite(produced[target == t]).any() else None
            for t in np.unique(target)
        }
    else:
        out["fixation_broken"] = float(np.mean(s["fixation_broken"]))
    if task == "perceptual_decision":
        magnitude = np.abs(info["coherence"])
        scored = np.isin(np.round(magnitude, 6), np.round(np.asarray(config.coherences, np.float32), 6))
        out["accuracy_by_coherence"] = {f"{m:g}": float(np.mean(correct[np.isclose(magnitude, m)]))
                                        for m in np.unique(np.round(magnitude, 6)) if m > 0}
        out["psychometric"] = psychometric(info, s, config)
    if task == "context_decision":
        congruent = np.asarray(info["congruent"])
        out["accuracy_congruent"] = float(np.mean(correct[congruent]))
        out["accuracy_incongruent"] = float(np.mean(correct[~congruent]))
    if task in MEMORY_TASKS:
        delay = np.asarray(info["delay_ms"])
        trained = np.round(np.asarray(DELAYS_MS) / config.dt) * config.dt
        scored = np.isin(delay, trained)
        out["accuracy_by_delay"] = {f"{d:g}": float(np.mean(correct[np.isclose(delay, round(d / config.dt) * config.dt)]))
                                    for d in config.eval_delays_ms}
    out["accuracy"] = float(np.mean(correct[scored]))
    out["eval_trials"] = int(scored.sum())
    return out


def psychometric(info: dict, s: dict, config: Config) -> dict:
    """P(choose stimulus 1) per signed coherence, and the logistic fit over the trials answered."""
    c = np.asarray(info["coherence"])
    levels = np.unique(c)
    chose_first = np.asarray(s["response"]) == 1 + np.asarray(info["direction_1"])
    answered = ~np.asarray(s["fixation_broken"]) & (np.asarray(s["response"]) > 0)
    b0, b1 = logistic_fit(c[answered], chose_first[answered])
    return {
        "signed_coherence": levels.tolist(),
        "p_choose_1": [float(np.mean(chose_first[c == v])) for v in levels],
        "answered_fraction": float(np.mean(answered)),
        "fit_bias": b0, "fit_slope": b1,
        # the coherence at which the fit gives P(correct) = 0.75 (its symmetric part)
        "threshold_75": float(math.log(3.0) / b1) if b1 > 0 else None,
    }


def logistic_fit(x: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """Maximum-likelihood ``P(y=1) = sigmoid(b0 + b1 x)`` by Newton's method (IRLS), with a tiny
    ridge so that perfectly separated data stay finite."""
    X = np.stack([np.ones_like(x, np.float64), x.astype(np.float64)], 1)
    y = y.astype(np.float64)
    beta = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(X @ beta)))
        grad = X.T @ (y - p) - 1e-6 * beta
        hess = (X * (p * (1 - p))[:, None]).T @ X + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[0]), float(beta[1])


# --- analysis of the rate network -----------------------------------------------------------


def held_input(task: str, config: Config, context: int | None = None) -> np.ndarray:
    u = np.zeros(input_features(config.n_ring), np.float32)
    if HELD_INPUT[task] == "delay":
        u[fixation_channel()] = 1.0
    if context is not None:
        u[cue_channel(config.n_ring, context)] = 1.0
    return u


def analyse(task: str, params: dict, config: Config) -> dict:
    """Trajectories, fixed points, eigenvalues, PCA and selectivity of a trained rate network."""
    cell = make_cell("rate", config)
    key = eval_key(config, task, 3)
    batch = held_out_trials(task, config, key, config.analysis_trials, input_noise=0.0, **ANALYSIS_TIMING[task])
    xs = append_zero_noise(batch.inputs, config.hidden) if config.noise_std else batch.inputs
    state_cell = cell._replace(step=lambda p, c, x: (lambda h: (h, h))(cell.step(p, c, x)[0]))
    states = np.asarray(jax.jit(lambda p, x: rnn(state_cell, p, x))(params["cell"], xs))   # [b, t, h]
    rates = np.asarray(jax.nn.softplus(states) if config.activation == "softplus" else
                       (jax.nn.relu(states) if config.activation == "relu" else jnp.tanh(states)))
    condition = np.asarray(batch.info["interval_ms"] if task in TIMING_TASKS else batch.info["choice"])

    # PCA of trial-averaged rates per condition (time-aligned: fixed epoch durations)
    conds = np.unique(condition)
    averages = np.stack([rates[condition == c].mean(0) for c in conds])           # [k, t, h]
    flat = averages.reshape(-1, averages.shape[-1])
    mean = flat.mean(0)
    _, sv, vt = np.linalg.svd(flat - mean, full_matrices=False)
    explained = (sv ** 2) / np.sum(sv ** 2)
    pcs = vt[:3]

    # fixed points under the held input, from visited states plus a little noise
    contexts = (0, 1) if task == "context_decision" else (None,)
    rng = np.random.default_rng(config.seed)
    found = []
    for ctx in contexts:
        u = held_input(task, config, ctx)
        x = np.concatenate([u, np.zeros(config.hidden, np.float32)]) if config.noise_std else u
        F = lambda h, x=jnp.asarray(x): cell.step(params["cell"], h, x)[0]
        visited = states.reshape(-1, config.hidden)
        starts = visited[rng.choice(len(visited), config.fixed_point_starts)]
        starts = starts + 0.05 * rng.standard_normal(starts.shape).astype(np.float32)
        search = find_fixed_points(F, jnp.asarray(starts), num_steps=config.fixed_point_steps,
                                   learning_rate=config.fixed_point_lr)
        q = np.asarray(search.speed)
        fixed = unique_points(np.asarray(search.points)[q < config.fixed_point_tolerance * config.hidden],
                              tolerance=0.05 * math.sqrt(config.hidden))
        lin = linearise(F, fixed)
        found.append({
            "context": ctx, "points": fixed, "eigenvalues": lin.eigenvalues, "stable": lin.stable,
            "unstable_modes": lin.unstable_modes,
            "slow_fraction": float(np.mean(q < 1e-4 * config.hidden)), "speed": q,
        })

    # choice selectivity over the decision epoch (after the grace period)
    window = np.asarray(batch.epochs["decision"] & (batch.weights > 0))
    per_trial = (rates * window[..., None]).sum(1) / np.maximum(window.sum(1), 1)[:, None]   # [b, h]
    by_cond = np.stack([per_trial[condition == c].mean(0) for c in conds])                   # [k, h]
    active = by_cond.max(0) > 1e-2
    r_pref, r_null = by_cond.max(0), by_cond.min(0)
    csi = np.where(active, (r_pref - r_null) / np.maximum(r_pref + r_null, 1e-9), np.nan)

    return {
        "pca": {"explained": explained[:5], "trajectories": (averages - mean) @ pcs.T, "conditions": conds,
                "epochs": {k: np.asarray(v[0]) for k, v in batch.epochs.items()}},
        "fixed_points": [dict(f, projected=(f["points"] - mean) @ pcs.T if len(f["points"]) else np.zeros((0, 3)))
                         for f in found],
        "selectivity": csi,
    }


def summarise_analysis(a: dict) -> dict:
    fps = a["fixed_points"]
    eig = [e for f in fps for e in f["eigenvalues"]]
    return {
        "fixed_points": int(sum(len(f["points"]) for f in fps)),
        "stable_fixed_points": int(sum(int(np.sum(f["stable"])) for f in fps)),
        "unstable_fixed_points": int(sum(int(np.sum(~f["stable"])) for f in fps)),
        # leading |lambda| in [1 - MARGINAL, 1 + MARGINAL]: neutral directions of a continuous attractor
        "marginal_fixed_points": int(sum(int(np.sum(np.abs(np.abs([e[0] for e in f["eigenvalues"]]) - 1) <= MARGINAL))
                                         for f in fps if len(f["eigenvalues"]))),
        "per_context": [{"context": f["context"], "fixed": int(len(f["points"])), "stable": int(np.sum(f["stable"])),
                         "unstable_modes": [int(n) for n in f["unstable_modes"]],
                         "leading_modulus": [float(np.abs(e[0])) for e in f["eigenvalues"]],
                         "slow_fraction": f["slow_fraction"]} for f in fps],
        "max_leading_modulus": float(max(np.abs(e[0]) for e in eig)) if eig else None,
        "pca_explained_top3": [float(v) for v in a["pca"]["explained"][:3]],
        "selectivity_median": float(np.nanmedian(a["selectivity"])) if np.isfinite(a["selectivity"]).any() else None,
        "selective_fraction": float(np.nanmean(a["selectivity"] > 0.5)) if np.isfinite(a["selectivity"]).any() else None,
        "active_units": int(np.isfinite(a["selectivity"]).sum()),
    }


# --- figures --------------------------------------------------------------------------------

COLORS = {"rate": "tab:blue", "gru": "tab:orange", "lstm": "tab:green"}


def plot_accuracy(results: dict, config: Config) -> Figure:
    fig = Figure(figsize=(1.3 * len(config.tasks) + 2, 3.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(config.models)
    for i, model in enumerate(config.models):
        acc = [results[t][model]["accuracy"] for t in config.tasks]
        ax.bar(np.arange(len(config.tasks)) + i * width, acc, width, label=model, color=COLORS[model])
    ax.axhline(0.9, color="grey", ls="--", lw=0.8)
    ax.set_xticks(np.arange(len(config.tasks)) + 0.4 - width / 2, [t.replace("_", "\n") for t in config.tasks], fontsize=8)
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=8)
    for i, model in enumerate(config.models):     # steps trained, over each bar
        for j, task in enumerate(config.tasks):
            ax.text(j + i * width, results[task][model]["accuracy"] + 0.01, str(results[task][model]["steps_trained"]),
                    ha="center", va="bottom", fontsize=5, rotation=90)
    ax.set_title(f"Held-out accuracy per task ({config.hidden} units; over each bar: Adam steps trained; "
                 f"dashed: 90%)", fontsize=9)
    return fig


def plot_psychometric(results: dict, config: Config) -> Figure:
    fig = Figure(figsize=(5, 3.8), layout="constrained")
    ax = fig.subplots()
    for model in config.models:
        p = results["perceptual_decision"][model]["psychometric"]
        c = np.asarray(p["signed_coherence"])
        ax.plot(c, p["p_choose_1"], "o", color=COLORS[model], label=f"{model} (slope {p['fit_slope']:.0f})")
        grid = np.linspace(c.min(), c.max(), 200)
        ax.plot(grid, 1 / (1 + np.exp(-(p["fit_bias"] + p["fit_slope"] * grid))), color=COLORS[model], lw=1)
    ax.set_xlabel("signed coherence (evidence for stimulus 1)")
    ax.set_ylabel("P(choose stimulus 1)")
    ax.set_title("Perceptual decision making: psychometric curve\n(points: held-out trials; lines: logistic fit)", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def plot_delay(results: dict, config: Config) -> Figure:
    tasks = [t for t in config.tasks if t in MEMORY_TASKS]
    fig = Figure(figsize=(4.5 * len(tasks), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(tasks), squeeze=False)[0])
    for ax, task in zip(axes, tasks):
        for model in config.models:
            curve = results[task][model]["accuracy_by_delay"]
            ax.plot([float(d) for d in curve], list(curve.values()), "o-", color=COLORS[model], label=model)
        ax.axvspan(200, 1000, color="grey", alpha=0.12, label="trained delays")
        ax.set_xlabel("delay (ms)")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title(task.replace("_", " "))
        ax.legend(fontsize=8)
    return fig


def plot_fixed_points(analyses: dict, config: Config) -> Figure:
    tasks = list(analyses)
    fig = Figure(figsize=(3.6 * len(tasks), 3.6), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        a = analyses[task]
        traj = a["pca"]["trajectories"]
        cmap = __import__("matplotlib").colormaps["hsv" if len(traj) > 3 else "tab10"]
        for i, tr in enumerate(traj):
            ax.plot(tr[:, 0], tr[:, 1], color=cmap(i / max(1, len(traj))), lw=1, alpha=0.8)
            ax.plot(tr[-1, 0], tr[-1, 1], ".", color=cmap(i / max(1, len(traj))))
        for f in a["fixed_points"]:
            p = f["projected"]
            if len(p):
                ax.scatter(p[f["stable"], 0], p[f["stable"], 1], s=40, c="k", marker="o", zorder=3)
                ax.scatter(p[~f["stable"], 0], p[~f["stable"], 1], s=40, facecolors="none", edgecolors="r", zorder=3)
        ex = a["pca"]["explained"]
        ax.set_title(f"{task.replace('_', ' ')}\nPC1 {ex[0]:.0%}, PC2 {ex[1]:.0%}", fontsize=9)
        ax.set_xlabel("PC1")
        ax.set_ylabel("PC2")
    fig.suptitle("Rate RNN: trial-averaged trajectories per answer, fixed points under the held input "
                 "(black: stable, red: unstable)", fontsize=10)
    return fig


def plot_eigenvalues(analyses: dict) -> Figure:
    tasks = list(analyses)
    fig = Figure(figsize=(3.2 * len(tasks), 3.3), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 200))
    for ax, task in zip(axes, tasks):
        ax.plot(circle.real, circle.imag, color="grey", lw=0.8)
        for f in analyses[task]["fixed_points"]:
            for e, stable in zip(f["eigenvalues"], f["stable"]):
                ax.plot(e.real, e.imag, ".", ms=3, color="k" if stable else "r", alpha=0.6)
        ax.set_aspect("equal")
        ax.set_title(task.replace("_", " "), fontsize=9)
        ax.set_xlabel("Re λ")
    axes[0].set_ylabel("Im λ")
    fig.suptitle("Eigenvalues of dF/dh at the fixed points (unit circle: stability boundary)", fontsize=10)
    return fig


def plot_selectivity(analyses: dict) -> Figure:
    tasks = list(analyses)
    fig = Figure(figsize=(3.0 * len(tasks), 2.8), layout="constrained")
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        csi = analyses[task]["selectivity"]
        ax.hist(csi[np.isfinite(csi)], bins=np.linspace(0, 1, 21), color="tab:blue")
        ax.set_title(task.replace("_", " "), fontsize=9)
        ax.set_xlabel("choice selectivity")
    axes[0].set_ylabel("units")
    return fig


def plot_validation(results: dict, config: Config) -> Figure:
    """Validation accuracy after every chunk of steps, per task and model."""
    fig = Figure(figsize=(3.2 * len(config.tasks), 3.0), layout="constrained")
    axes = fig.subplots(1, len(config.tasks), squeeze=False, sharey=True)[0]
    for ax, task in zip(axes, config.tasks):
        for model in config.models:
            r = results[task][model]
            curve = r["validation_accuracy"]
            ax.plot(np.arange(1, len(curve) + 1) * r["steps_trained"] / len(curve), curve, color=COLORS[model], label=model)
        ax.axhline(0.9, color="grey", ls="--", lw=0.8)
        if config.stop_accuracy is not None:
            ax.axhline(config.stop_accuracy, color="k", ls=":", lw=0.8)
        ax.set_ylim(0, 1.02)
        ax.set_title(task.replace("_", " "), fontsize=9)
        ax.set_xlabel("step")
    axes[0].set_ylabel("validation accuracy")
    axes[-1].legend(fontsize=8)
    return fig


def plot_losses(losses: dict, config: Config) -> Figure:
    fig = Figure(figsize=(3.2 * len(config.tasks), 3.0), layout="constrained")
    axes = fig.subplots(1, len(config.tasks), squeeze=False, sharey=True)[0]
    for ax, task in zip(axes, config.tasks):
        for model in config.models:
            window = max(1, len(losses[task][model]) // 40)
            curve = np.convolve(losses[task][model], np.ones(window) / window, mode="valid")
            ax.plot(curve, color=COLORS[model], label=model)
        ax.set_yscale("log")
        ax.set_title(task.replace("_", " "), fontsize=9)
        ax.set_xlabel("step")
    axes[0].set_ylabel("training loss")
    axes[-1].legend(fontsize=8)
    return fig


# --- main -----------------------------------------------------------------------------------


def plan(config: Config) -> list[tuple[str, str]]:
    return [(task, model) for task in config.tasks for model in config.models]


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    runs = plan(config)
    lengths = [train_steps(config, model, task) for task, model in runs]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        done = offsets[len(sweep["finished"])] + (sweep["current"]["step"] if sweep["current"] else 0)
        bar = progress(desc="neuro tasks", total=offsets[-1], initial=done)
        for index in range(len(sweep["finished"]), len(runs)):
            task, model = runs[index]
            cell, optimizer, train_chunk = make_trainer(model, task, config)
            fresh = init_params(model, task, config, jax.random.fold_in(jax.random.key(config.seed), 100 + index))
            current, state = ckpt.sweep_run(
                sweep, index, {"params": fresh, "opt_state": optimizer.init(fresh)},
                lambda: {"run": index, "step": 0, "losses": [], "validation": [], "stopped": False})
            params, opt_state = state["params"], state["opt_state"]
            steps, chunk = lengths[index], chunk_size(config, model, task)
            for start in range(current["step"], steps if not current["stopped"] else current["step"], chunk):
                params, opt_state, chunk_losses, val = train_chunk(params, opt_state, start)
                chunk_losses, val = np.asarray(chunk_losses), float(val)
                for i, loss in enumerate(chunk_losses[:-1]):
                    run_dir.log(task=task, model=model, step=start + i, loss=loss)
                run_dir.log(task=task, model=model, step=start + chunk - 1, loss=chunk_losses[-1], validation_accuracy=val)
                bar.update(len(chunk_losses))
                current["losses"].append(chunk_losses)
                current["validation"].append(val)
                current["step"] = start + chunk
                # early stopping: the rest of this run's budget is skipped
                current["stopped"] = config.stop_accuracy is not None and val >= config.stop_accuracy
                final = index == len(runs) - 1 and (current["step"] == steps or current["stopped"])
                ckpt.save(offsets[index] + current["step"], {"params": params, "opt_state": opt_state},
                          sweep, force=final)
                if current["stopped"]:
                    bar.update(steps - current["step"])
                    break
            sweep["finished"].append({"params": jax.device_get(params), "losses": np.concatenate(current["losses"]),
                                      "validation": np.asarray(current["validation"]), "steps": current["step"]})
            sweep["current"] = None
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions

    trained = {run: done["params"] for run, done in zip(runs, sweep["finished"])}
    losses, validation = {t: {} for t in config.tasks}, {t: {} for t in config.tasks}
    for (task, model), done in zip(runs, sweep["finished"]):
        losses[task][model] = np.asarray(done["losses"])
        validation[task][model] = np.asarray(done["validation"])
    results = {t: {} for t in config.tasks}
    for index, (task, model) in enumerate(progress(runs, desc="evaluate")):
        results[task][model] = evaluate(model, task, trained[(task, model)], config)
        done = sweep["finished"][index]
        tail = max(1, len(losses[task][model]) // 10)
        results[task][model]["final_loss"] = float(np.mean(losses[task][model][-tail:]))
        results[task][model]["steps_trained"] = int(done["steps"])
        results[task][model]["budget"] = lengths[index]
        results[task][model]["validation_accuracy"] = [float(v) for v in validation[task][model]]
    analyses = {}
    if "rate" in config.models:
        for task in progress(config.tasks, desc="analyse"):
            analyses[task] = analyse(task, trained[(task, "rate")], config)
    summary = {
        "accuracy": {t: {m: results[t][m]["accuracy"] for m in config.models} for t in config.tasks},
        "steps_trained": {t: {m: results[t][m]["steps_trained"] for m in config.models} for t in config.tasks},
        "results": results,
        "rate_dynamics": {t: summarise_analysis(a) for t, a in analyses.items()},
        "environment": environment(),
        "timings": {"runtime_s": round(runtime_s, 1), "sessions": sessions},
    }
    run_dir.save_figure(plot_accuracy(results, config), "accuracy")
    if "perceptual_decision" in config.tasks:
        run_dir.save_figure(plot_psychometric(results, config), "psychometric")
    if any(t in MEMORY_TASKS for t in config.tasks):
        run_dir.save_figure(plot_delay(results, config), "delay_accuracy")
    run_dir.save_figure(plot_losses(losses, config), "training_loss")
    run_dir.save_figure(plot_validation(results, config), "validation")
    if analyses:
        run_dir.save_figure(plot_fixed_points(analyses, config), "fixed_points")
        run_dir.save_figure(plot_eigenvalues(analyses), "eigenvalues")
        run_dir.save_figure(plot_selectivity(analyses), "selectivity")
        arrays = {}
        for task, a in analyses.items():
            arrays[f"{task}_pca_trajectories"] = a["pca"]["trajectories"]
            arrays[f"{task}_selectivity"] = a["selectivity"]
            for i, f in enumerate(a["fixed_points"]):
                arrays[f"{task}_fixed_points_{i}"] = f["points"]
                arrays[f"{task}_eigenvalues_{i}"] = f["eigenvalues"]
        run_dir.save_arrays("analysis", **arrays)
    return summary


def format_table(summary: dict) -> str:
    acc = summary["accuracy"]
    models = list(next(iter(acc.values())))
    lines = [f"{'task':<22}" + "".join(f"{m:>8}" for m in models) + "   rate RNN fixed points (stable/all)"]
    for task, by_model in acc.items():
        dyn = summary["rate_dynamics"].get(task)
        fp = f"{dyn['stable_fixed_points']}/{dyn['fixed_points']}" if dyn else "-"
        lines.append(f"{task:<22}" + "".join(f"{by_model[m]:>8.3f}" for m in models) + f"   {fp}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
