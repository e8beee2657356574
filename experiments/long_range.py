"""Long-range dependencies, measured: the adding problem and the copy-memory task at growing lags.

What it measures
    For the Elman RNN (tanh), the LSTM, the GRU, minGRU and a small causal Transformer, trained
    with the same optimiser, hyperparameters, step budget and training batches, how well each
    solves two synthetic tasks whose answer depends on inputs far in the past, as the distance
    grows:

    * **adding problem** (Hochreiter & Schmidhuber 1997; :func:`seqjax.data.adding_problem`),
      length ``T`` in ``adding_lengths``: two channels (a value ``U(0, 1)`` and a marker), two
      marked steps, one in each half; the target is the sum of the two marked values. Loss: the
      squared error of a linear readout of the *last* step. Baseline: predicting the mean, MSE
      ``1/6 ~ 0.167`` (:func:`seqjax.data.adding_baseline_mse`).
    * **copy memory** (Arjovsky et al. 2016; :func:`seqjax.data.copy_memory`), lag ``L`` in
      ``copy_lags``: ``S = copy_symbols`` (10) symbols from ``1..8``, ``L - 1`` blanks, a
      delimiter, ``S`` blanks; the model must output the ``S`` symbols in the last ``S`` steps
      (blanks elsewhere). Inputs are one-hot over :data:`seqjax.data.COPY_VOCAB` (10 tokens); the
      loss is the per-step cross-entropy of a linear readout at every step. Baselines: the
      memoryless strategy (blanks, then a uniform guess) scores ``S log 8 / (L + 2S)`` nats per
      step (:func:`seqjax.data.copy_baseline`) and recall accuracy ``1/8`` on the ``S`` symbols.

    Every number is a test-set measurement: after ``steps`` Adam steps the model is evaluated on
    ``eval_batch`` fresh sequences drawn with a key that training never uses. A task counts as
    **solved** when the final test metric passes a fixed criterion: adding test MSE below
    ``adding_solved_mse`` (0.01, i.e. 6% of the baseline; Le et al. 2015 use the same cut), copy
    recall accuracy at least ``copy_solved_accuracy`` (0.9). The test metric is also recorded
    ``eval_points`` times during training (the curves in ``training_curves.png``).

How
    Model: one recurrent layer (``hidden`` units; the library's cells run by
    :func:`seqjax.recurrence.rnn`) and a linear readout. The LSTM's forget-gate bias starts at
    ``forget_bias`` (1.0). The Transformer (pre-LN, causal, GELU, no dropout; the pure
    :func:`seqjax.transformer.encoder_stack`) reads a linear projection of the same inputs plus a
    sinusoidal position table, with ``transformer_layers`` layers of width ``d_model``, and the
    same readout. Training: :func:`seqjax.train.make_train_step` with global-norm clipping then
    Adam (optionally a warmup + cosine schedule), batch ``batch_size``. The batches are drawn
    eagerly, outside the jitted step, in chunks, from keys that depend on the task and lag only:
    every model sees exactly the same training sequences (and the same test set).

The ``paper`` preset (``--preset paper``)
    The lengths and budgets of the papers: adding ``T`` in (100, 200, 500, 1000), copy lags
    ``L`` in (10, 20, 50, 100), hidden 128, up to 20000 Adam steps per run (Le et al. 2015 and
    Arjovsky et al. 2016 trained 10^4 - 10^5), a constant learning rate 1e-3 (the rate of
    Arjovsky et al. 2016, who used RMSProp; Adam here, as in every preset) with global-norm
    clipping at 1, batch 64, and the initialisations known to matter for the LSTM: the chrono
    initialisation of Tallec & Ollivier 2018 (``chrono_models``: ``b_f ~ log U[1, T_max - 1]``,
    ``b_i = -b_f``, ``T_max`` the sequence length; :func:`seqjax.cells.base.chrono_bias`) and
    orthogonal recurrent blocks (``orthogonal_models``). Each length is trained from scratch (no
    curriculum). The test set (500 sequences) is evaluated every ``eval_every`` (250) steps and
    with ``early_stop`` a run stops at the first evaluation that meets the criterion: its step is
    ``steps_to_solve`` (to within ``eval_every``). The sweep runs the shortest adding length and
    copy lag first (``sweep_order = length``), and with ``skip_after_failure`` a model that failed
    a task at one length within the budget is not run at the longer ones (recorded under
    ``skipped_after_failure`` as "failed at <lag>": an inference from the shorter run, not a
    measurement). ``metrics.json["longest_solved"]`` (printed as the second table) gives per
    model the longest ``T`` and ``L`` solved with the steps it took.

Why
    This replaces the "Long-range dependencies" demo of the notebook *Introduction to Sequence
    Modeling - Interactive Notebook*, which runs no model: it *simulates* RNN accuracy as ``0.95 * 0.8^(d/5)`` and attention as ``0.95 - 0.01 d/10`` and
    prints "RNN: performance drops significantly with distance". Here the models are trained and
    the drop with distance, where there is one, is what was measured.

Result (default run, seed 0, 2 shared CPU cores, float32; numbers in ``metrics.json``)
    Adding problem, final test MSE (baseline 0.167; solved below 0.01):

    ============  ========  ========  ========  ========
    model         T = 50    T = 100   T = 200   T = 400
    ============  ========  ========  ========  ========
    Elman (tanh)  0.164     0.179     0.165     0.164
    LSTM          0.00025   0.0012    0.165     0.164
    GRU           0.00013   0.00017   0.00018   0.00029
    minGRU        0.0032    0.0041    0.0045    0.0062
    Transformer   0.00007   0.00047   (not run: t > 100)
    ============  ========  ========  ========  ========

    The LSTM solves T = 100 (it leaves the 1/6 plateau near step 700 of 1500) while the Elman
    RNN stays at the baseline at every length; the same budget that suffices at T = 100 leaves
    the LSTM on the plateau at T = 200 and 400. The GRU and minGRU solve every length up to 400
    (with ``--seed 1``, on 500 test sequences, the same at T = 100: LSTM 0.0010, Elman 0.170).

    Copy memory, final recall accuracy on the 10 symbols (chance 0.125; solved at 0.9):

    ============  ========  ========  ========  ========
    model         L = 10    L = 20    L = 50    L = 100
    ============  ========  ========  ========  ========
    Elman (tanh)  0.128     0.132     0.123     0.126
    LSTM          0.193     0.173     0.208     0.145
    GRU           0.374     0.418     0.314     0.320
    minGRU        0.306     0.301     0.289     0.240
    Transformer   1.000     1.000     1.000     (not run: t > 100)
    ============  ========  ========  ========  ========

    No recurrent model solves the copy task at any lag within 1500 steps: the Elman RNN learns
    exactly the memoryless strategy (test cross-entropy equal to the baseline to 3 digits), the
    gated ones get part of the way (GRU best), and their recall accuracy hardly depends on the
    lag between 10 and 100: the limit here is what 1500 steps teach a 64-unit layer, not a decay
    with distance like the notebook's ``0.8^(d/5)``. The Transformer, which reads the symbols back by
    attention, copies perfectly at every lag it was run on (from the first evaluation, step
    150). Where the notebook's claim shows up is the adding problem's LSTM, which fails abruptly
    between T = 100 and 200, and the Elman RNN, which fails everywhere. Runtime: 1348 s on 2
    CPU cores shared with other jobs (load average 5 to 10); ``--preset readme`` 163 s.

Run::

    python -m experiments.long_range                    # default: 4 adding lengths, 4 copy lags
    python -m experiments.long_range --preset readme    # the headline, a few minutes on a CPU
    python -m experiments.long_range --preset paper     # the papers' lengths and budgets: many hours
    python -m experiments.long_range --quick            # seconds; used by the tests
    python -m experiments.long_range --resume RUN_DIR   # continue a stopped or killed run
    python -m experiments.long_range --help             # every config field is a flag

``--preset readme`` and ``--preset paper`` replace some defaults (see ``PRESETS``); explicit
flags still win over them, as they do over ``--quick``.

Resuming: every ``checkpoint_every`` steps (counted over the whole sweep) the run saves the
current model's parameters and Adam state, its position in the sweep, the metrics so far and
the results of the finished runs into ``RUN_DIR/checkpoints/``; ``--resume RUN_DIR`` continues
from the latest one with the saved config, and reaches the same ``metrics.json`` as a run never
stopped (every batch is a function of the seed, task, lag and step; wall-clock numbers are under
``timings``).

Outputs (``runs/long_range/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl`` (training loss and gradient norm per step, and every evaluation, per model,
task and lag), ``metrics.json`` (the table: per task, model and lag the final test metric, its
baseline, solved or not and steps trained (with early stopping also ``steps_to_solve``); the
longest lag solved per model; wall and compile times under ``timings``), ``long_range.png``
(test metric against lag, one line per model, baselines drawn), ``training_curves.png``
(training loss and test metric against step), with ``early_stop`` ``steps_to_solve.png`` (the
steps each model took to solve each length, the runs that failed drawn at the budget) and
``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from seqjax.attention.positional import sinusoidal_table
from seqjax.cells import elman, gru, lstm, min_gru
from seqjax.data import COPY_VOCAB, adding_baseline_mse, adding_problem, copy_baseline, copy_memory
from seqjax.data.synthetic import COPY_SYMBOLS
from seqjax.experiment import (
    RunCheckpoints,
    RunDir,
    config_from_json,
    environment,
    option,
    parse,
    progress,
    run_experiment,
)
from seqjax.experiment.lossless_json import decode
from seqjax.primitives import count_scalars
from seqjax.recurrence import rnn
from seqjax.train import (
    clip_by_global_norm,
    cross_entropy,
    make_eval_step,
    make_train_step,
    mse,
    warmup_cosine_decay,
)
from seqjax.train.checkpoint import Checkpointer
from seqjax.transformer import TransformerSpec, encoder_stack, encoder_stack_init

NAME = "long_range"
MODELS = ("elman", "lstm", "gru", "min_gru", "transformer")
RECURRENT = ("elman", "lstm", "gru", "min_gru")
CHRONO = ("lstm", "gru")  # the cells with a chrono initialisation
ORTHOGONAL = ("elman", "lstm", "gru")  # the cells with a recurrent matrix
TASKS = ("adding", "copy")
TITLES = {"elman": "Elman RNN (tanh)", "lstm": "LSTM", "gru": "GRU", "min_gru": "minGRU",
          "transformer": "Transformer (causal)"}
COLORS = {"elman": "tab:red", "lstm": "tab:blue", "gru": "tab:green", "min_gru": "tab:purple",
          "transformer": "tab:orange"}
CHANCE_ACCURACY = 1.0 / COPY_SYMBOLS

# --preset readme: the headline (LSTM vs Elman on the adding problem at T = 100, and the copy
# task at one lag) in a few minutes on a laptop CPU. Explicit flags win over these.
PRESETS: dict[str, dict[str, Any]] = {
    "full": {},
    "readme": {
        "models": ("elman", "lstm", "gru", "min_gru"),
        "adding_lengths": (50, 100),
        "copy_lags": (20,),
    },
    # --preset paper: the lengths and budgets of the papers (Le et al. 2015 and Arjovsky et al.
    # 2016 trained 10^4-10^5 steps), the initialisations known to matter (chrono LSTM with
    # orthogonal recurrent blocks), a constant Adam rate with clipping, and a stop at "solved".
    # Hours on a CPU (it resumes with --resume).
    "paper": {
        "models": ("elman", "lstm", "gru", "min_gru"),
        "adding_lengths": (100, 200, 500, 1000),
        "copy_lags": (10, 20, 50, 100),
        "hidden": 128,
        "steps": 20000,
        "learning_rate": 1e-3,
        "schedule": "constant",
        "clip_norm": 1.0,
        "chrono_models": ("lstm",),
        "orthogonal_models": ("lstm",),
        "eval_batch": 500,
        "eval_every": 250,
        "chunk": 250,
        "early_stop": True,
        "skip_after_failure": True,
        "sweep_order": "length",
        "checkpoint_every": 500,
    },
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Train Elman, LSTM, GRU, minGRU and a causal Transformer on the adding and copy tasks at growing lags."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = PRESETS
    # --quick: tiny lags and models, a few steps (seconds, for the tests).
    QUICK: ClassVar[dict[str, Any]] = {
        "models": ("elman", "lstm"),
        "adding_lengths": (6, 12),
        "copy_lags": (4,),
        "copy_symbols": 3,
        "hidden": 8,
        "d_model": 8,
        "transformer_layers": 1,
        "transformer_heads": 2,
        "steps": 12,
        "batch_size": 8,
        "eval_batch": 32,
        "eval_points": 2,
        "chunk": 6,
        "warmup_steps": 2,
    }

    preset: Literal["full", "readme", "paper"] = option(
        "full", "full: the defaults below; readme (the README's command, minutes on a CPU): "
        + "; ".join(f"{k}={','.join(map(str, v))}" for k, v in PRESETS["readme"].items())
        + "; paper (the papers' lengths and budgets, early stop at solved; hours): "
        + "; ".join(f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                    for k, v in PRESETS["paper"].items())
        + " (explicit flags win)"
    )
    models: tuple[str, ...] = option(MODELS, "models: elman (tanh), lstm, gru, min_gru, transformer")
    tasks: tuple[str, ...] = option(TASKS, "tasks: adding, copy")
    adding_lengths: tuple[int, ...] = option((50, 100, 200, 400), "adding problem sequence lengths T")
    copy_lags: tuple[int, ...] = option((10, 20, 50, 100), "copy task lags L (sequence length L + 2 * copy_symbols)")
    copy_symbols: int = option(10, "symbols to remember in the copy task")
    hidden: int = option(64, "hidden units of every recurrent model")
    d_model: int = option(32, "Transformer width")
    transformer_layers: int = option(1, "Transformer layers")
    transformer_heads: int = option(4, "Transformer attention heads")
    transformer_max_length: int | None = option(
        100, "run the Transformer only on sequences up to this length (none: always); its cost "
        "grows as t^2 and on a CPU it dominates the run beyond this"
    )
    steps: int = option(1500, "Adam steps per model, task and lag (the same budget for all)")
    batch_size: int = option(64, "training batch size")
    learning_rate: float = option(1e-2, "Adam (peak) learning rate")
    schedule: Literal["constant", "cosine"] = option(
        "cosine", "learning-rate schedule: constant, or linear warmup then cosine decay to 0"
    )
    warmup_steps: int = option(100, "linear warmup steps (cosine schedule only)")
    clip_norm: float = option(1.0, "clip gradients to this global norm")
    forget_bias: float = option(1.0, "LSTM forget-gate bias at initialisation (unless chrono)")
    chrono_models: tuple[str, ...] = option(
        (), "models (lstm, gru) given the chrono initialisation of Tallec & Ollivier 2018 with "
        "T_max = the sequence length: LSTM b_f ~ log U[1, T_max - 1], b_i = -b_f; GRU update-gate "
        "bias b_z ~ log U[1, T_max - 1] (empty: none)"
    )
    orthogonal_models: tuple[str, ...] = option(
        (), "recurrent models (elman, lstm, gru) whose recurrent weights start orthogonal (one "
        "orthogonal block per gate, spectral radius 1) instead of U(+-1/sqrt(h)) (empty: none)"
    )
    eval_batch: int = option(1000, "held-out test sequences per task and lag")
    eval_points: int = option(10, "test evaluations during training (the last one at the end)")
    eval_every: int | None = option(
        None, "evaluate the test set every this many steps (and at the end) instead of at "
        "eval_points evenly spaced steps (none: eval_points)"
    )
    early_stop: bool = option(
        False, "stop a run at the first evaluation that meets the solved criterion (recorded as "
        "steps_to_solve); otherwise every run trains all steps"
    )
    skip_after_failure: bool = option(
        False, "skip a model's longer lags of a task once it failed to solve a shorter one "
        "(recorded as skipped: failed at that lag)"
    )
    sweep_order: Literal["task", "length"] = option(
        "task", "order of the runs: task (every adding length, then every copy lag) or length "
        "(the shortest adding length and copy lag first, then the next ones: informative runs first)"
    )
    chunk: int = option(50, "training steps whose batches are drawn at once (must divide steps)")
    adding_solved_mse: float = option(0.01, "adding problem solved: final test MSE below this")
    copy_solved_accuracy: float = option(0.9, "copy task solved: final recall accuracy at least this")
    seed: int = option(0, "base random seed (init, training data and test data)")
    checkpoint_every: int = option(
        1000, "save a checkpoint (for --resume) every this many training steps, counted over "
        "the whole sweep of models, tasks and lags"
    )

    def __post_init__(self):
        for name, allowed in (("models", MODELS), ("tasks", TASKS)):
            values = getattr(self, name)
            unknown = [v for v in values if v not in allowed]
            if not values or unknown or len(set(values)) != len(values):
                raise ValueError(f"{name} must be a non-empty subset of {allowed} without repeats; got {values}.")
        for name, allowed in (("chrono_models", CHRONO), ("orthogonal_models", ORTHOGONAL)):
            values = getattr(self, name)
            if any(v not in allowed for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{name} must be a subset of {allowed} without repeats; got {values}.")
        for name, low in (("adding_lengths", 2), ("copy_lags", 1)):
            values = getattr(self, name)
            if any(v < low for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct integers >= {low}; got {values}.")
        if "adding" in self.tasks and not self.adding_lengths:
            raise ValueError("adding_lengths is empty but the adding task is selected.")
        if "copy" in self.tasks and not self.copy_lags:
            raise ValueError("copy_lags is empty but the copy task is selected.")
        for name in ("copy_symbols", "hidden", "d_model", "transformer_layers", "transformer_heads",
                     "steps", "batch_size", "eval_batch", "eval_points", "chunk", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.d_model % self.transformer_heads or self.d_model % 2:
            raise ValueError(
                f"d_model ({self.d_model}) must be even and divisible by transformer_heads "
                f"({self.transformer_heads})."
            )
        if self.steps % self.chunk:
            raise ValueError(f"chunk ({self.chunk}) must divide steps ({self.steps}).")
        if self.eval_every is None and self.eval_points > self.steps:
            raise ValueError(f"eval_points ({self.eval_points}) must not exceed steps ({self.steps}).")
        if self.eval_every is not None and not 1 <= self.eval_every <= self.steps:
            raise ValueError(f"eval_every must lie in [1, steps = {self.steps}] or be none; got {self.eval_every}.")
        if self.early_stop and self.eval_every is None:
            raise ValueError("early_stop needs eval_every (how often to test for solved); got eval_every none.")
        if self.schedule == "cosine" and not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must lie in [0, steps); got {self.warmup_steps}.")
        if not (self.learning_rate > 0 and self.clip_norm > 0 and self.adding_solved_mse > 0):
            raise ValueError("learning_rate, clip_norm and adding_solved_mse must be positive.")
        if not 0 < self.copy_solved_accuracy <= 1:
            raise ValueError(f"copy_solved_accuracy must lie in (0, 1]; got {self.copy_solved_accuracy}.")

    def lags(self, task: str) -> tuple[int, ...]:
        return self.adding_lengths if task == "adding" else self.copy_lags


# --- tasks ----------------------------------------------------------------------------------


def baseline(task: str, lag: int, config: Config) -> float:
    """The memoryless baseline of the task's test loss: 1/6 (adding) or ``S log 8 / (L + 2S)``."""
    return adding_baseline_mse() if task == "adding" else copy_baseline(lag, config.copy_symbols)


def fits_transformer(length: int, config: Config) -> bool:
    return config.transformer_max_length is None or length <= config.transformer_max_length


def sequence_length(task: str, lag: int, config: Config) -> int:
    return lag if task == "adding" else lag + 2 * config.copy_symbols


def draw(task: str, key: jax.Array, n: int, lag: int, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """``n`` sequences of the task as host arrays: adding ``xs [n, T, 2]``, ``ys [n]``; copy
    ``tokens [n, t]``, ``targets [n, t]`` (int32). Drawn eagerly: never inside a jitted step."""
    return jax.device_get(_draw(task, key, n, lag, config.copy_symbols))


@jax.jit(static_argnums=(0, 2, 3, 4))
def _draw(task: str, key: jax.Array, n: int, lag: int, copy_symbols: int):
    # One small compiled program per shape: cheaper than dispatching (and compiling) each of the
    # generator's operations eagerly, and it keeps the generator out of the train step.
    if task == "adding":
        return adding_problem(key, n, lag)
    return copy_memory(key, n, lag, num_symbols=copy_symbols)


def task_key(seed: int, task: str, lag: int, split: str) -> jax.Array:
    """The data key of a task, lag and split (``train`` or ``test``): it does not depend on the
    model, so every model trains on the same batches and is tested on the same sequences."""
    key = jax.random.fold_in(jax.random.key(seed), 1 + TASKS.index(task))
    key = jax.random.fold_in(key, lag)
    return jax.random.fold_in(key, {"train": 0, "test": 1}[split])


# --- models ---------------------------------------------------------------------------------


def make_cell(model: str, config: Config, t_max: int | None = None):
    """The cell of ``model`` with the config's initialisation: orthogonal recurrent blocks for
    ``orthogonal_models``, and for ``chrono_models`` the chrono init with ``T_max = t_max`` (the
    sequence length; the step function does not depend on either, so ``t_max`` may be None for
    a cell used only to run)."""
    scale = 1.0 if model in config.orthogonal_models else None
    chrono = t_max if model in config.chrono_models else None
    if model == "elman":
        return elman("tanh", recurrent_scale=scale)
    if model == "lstm":
        return lstm(forget_bias=config.forget_bias, recurrent_scale=scale, chrono=chrono)
    if model == "gru":
        return gru(recurrent_scale=scale, chrono=chrono)
    return min_gru()


def init_model(model: str, key: jax.Array, in_features: int, out_features: int, config: Config,
               t_max: int | None = None) -> dict:
    """Parameters of ``model``: the body (a cell, or a projection + Transformer stack) and a
    linear readout ``[width, out_features]`` (random, scaled by ``1/sqrt(width)``). ``t_max``:
    the chrono initialisation's ``T_max`` (used by ``chrono_models`` only)."""
    k_body, k_out = jax.random.split(key)
    if model == "transformer":
        width = config.d_model
        k_in, k_stack = jax.random.split(k_body)
        body = {
            "w_in": jax.random.normal(k_in, (in_features, width)) / math.sqrt(in_features),
            "b_in": jnp.zeros((width,)),
            "stack": encoder_stack_init(k_stack, config.transformer_layers, width,
                                        config.transformer_heads, 4 * width, final_norm=True),
        }
    else:
        width = config.hidden
        if model in config.chrono_models and t_max is None:
            raise ValueError(f"init_model: {model} is in chrono_models, so t_max is needed; got None.")
        body = {"cell": make_cell(model, config, t_max).init(k_body, in_features, width)}
    readout = {"w": jax.random.normal(k_out, (width, out_features)) / math.sqrt(width),
               "b": jnp.zeros((out_features,))}
    return body | {"readout": readout}


def chrono_t_max(model: str, task: str, lag: int, config: Config) -> int | None:
    """The chrono ``T_max`` of ``model`` at this task and lag: the sequence length (the longest
    dependency the task can have), or None when the model has no chrono init."""
    return sequence_length(task, lag, config) if model in config.chrono_models else None


@functools.lru_cache(maxsize=None)
def initial_params(model: str, task: str, config: Config, t_max: int | None = None) -> dict:
    """The initial parameters of ``model`` for ``task``: their shapes do not depend on the lag,
    so every lag starts from the same draw (and the initialisation is computed once); with a
    chrono init (``t_max``, :func:`chrono_t_max`) the gate biases are drawn for the lag's
    ``T_max``, from the same key."""
    in_features, out_features = (2, 1) if task == "adding" else (COPY_VOCAB, COPY_VOCAB)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), 100), MODELS.index(model))
    return init_model(model, key, in_features, out_features, config, t_max)


def make_features(model: str, config: Config) -> Callable[[dict, jax.Array], jax.Array]:
    """``features(params, xs [b, t, d]) -> [b, t, width]``: the body's output at every step."""
    if model == "transformer":
        spec = TransformerSpec(num_heads=config.transformer_heads, norm_first=True, activation="gelu",
                               causal=True)

        def transformer_features(params, xs):
            t = xs.shape[1]
            x = xs @ params["w_in"] + params["b_in"] + sinusoidal_table(t, config.d_model)
            return encoder_stack(spec, params["stack"], x)  # the spec adds the causal mask

        return transformer_features
    cell = make_cell(model, config)  # to run: the step does not depend on the init options

    def recurrent_features(params, xs):
        return rnn(cell, params["cell"], xs)  # the outputs h_t (for the LSTM, not c_t)

    return recurrent_features


def readout(params: dict, h: jax.Array) -> jax.Array:
    return h @ params["readout"]["w"] + params["readout"]["b"]


def make_loss(model: str, task: str, config: Config):
    """``loss_fn(params, batch, key) -> (loss, aux)`` for :func:`make_train_step` (``has_aux``).

    Adding: MSE of the readout of the last step. Copy: mean cross-entropy over every step and
    sequence (the quantity the baseline ``S log 8 / (L + 2S)`` refers to), with the recall
    accuracy and cross-entropy on the last ``S`` steps as ``aux``.
    """
    features = make_features(model, config)
    s = config.copy_symbols

    def adding_loss(params, batch, key):
        xs, ys = batch
        pred = readout(params, features(params, xs)[:, -1])[:, 0]
        return mse(pred, ys), {}

    def copy_loss(params, batch, key):
        tokens, targets = batch
        logits = readout(params, features(params, jax.nn.one_hot(tokens, COPY_VOCAB)))
        recall_logits, recall_targets = logits[:, -s:], targets[:, -s:]
        accuracy = jnp.mean(jnp.argmax(recall_logits, axis=-1) == recall_targets)
        return cross_entropy(logits, targets), {
            "recall_accuracy": accuracy,
            "recall_cross_entropy": cross_entropy(recall_logits, recall_targets),
        }

    return adding_loss if task == "adding" else copy_loss


def make_optimizer(config: Config) -> optax.GradientTransformation:
    lr = (config.learning_rate if config.schedule == "constant"
          else warmup_cosine_decay(config.learning_rate, config.warmup_steps, config.steps))
    return optax.chain(clip_by_global_norm(config.clip_norm), optax.adam(lr))


# --- one training run -------------------------------------------------------------------------


def eval_steps(config: Config) -> list[int]:
    """Steps (counted after the update, 1-based) at which the test set is evaluated: evenly
    spaced, the last one at ``steps``; with ``eval_every``, every ``eval_every`` steps and
    ``steps``."""
    if config.eval_every is not None:
        return sorted(set(range(config.eval_every, config.steps + 1, config.eval_every)) | {config.steps})
    return sorted({round(config.steps * (i + 1) / config.eval_points) for i in range(config.eval_points)})


def is_solved(task: str, result: dict, config: Config) -> bool:
    """Whether a test evaluation meets the task's criterion: adding MSE below
    ``adding_solved_mse``, copy recall accuracy at least ``copy_solved_accuracy``."""
    if task == "adding":
        return bool(math.isfinite(result["loss"]) and result["loss"] < config.adding_solved_mse)
    return bool(result["recall_accuracy"] >= config.copy_solved_accuracy)


def sweep_pairs(config: Config) -> list[tuple[str, int]]:
    """The ``(task, lag)`` pairs in the order of ``sweep_order``: ``task`` (every lag of the
    first task, then the next task) or ``length`` (the first lag of every task, then the second
    ones, ...)."""
    if config.sweep_order == "task":
        return [(task, lag) for task in config.tasks for lag in config.lags(task)]
    depth = max(len(config.lags(task)) for task in config.tasks)
    return [(task, config.lags(task)[i]) for i in range(depth) for task in config.tasks
            if i < len(config.lags(task))]


def failed_before(finished: list, runs: list, index: int, config: Config) -> int | None:
    """With ``skip_after_failure``: the shorter lag at which the model of ``runs[index]`` failed
    (or was skipped) on the same task, among the finished runs; None if there is none (then
    the run is trained)."""
    if not config.skip_after_failure:
        return None
    task, lag, model = runs[index]
    for (t, l, m), done in zip(runs, finished):
        if (t, m) == (task, model) and l < lag and ("skipped" in done or not done["record"]["solved"]):
            return l
    return None


def plan(config: Config) -> tuple[list[tuple[str, int, str]], dict[str, dict[str, list[int]]]]:
    """The sweep: every ``(task, lag, model)`` to train, in order (:func:`sweep_pairs`), and the
    Transformer runs skipped because the sequence is longer than ``transformer_max_length``.
    (Runs skipped by ``skip_after_failure`` are decided during the sweep: see
    :func:`failed_before`.)"""
    runs, skipped = [], {}
    for task, lag in sweep_pairs(config):
        for model in config.models:
            length = sequence_length(task, lag, config)
            if model == "transformer" and not fits_transformer(length, config):
                skipped.setdefault(task, {}).setdefault(model, []).append(lag)
            else:
                runs.append((task, lag, model))
    return runs, skipped


def train_one(index: int, runs: list, test: tuple, config: Config, run_dir: RunDir, bar,
              ckpt: RunCheckpoints, sweep: dict) -> None:
    """Train run ``runs[index]`` (a model on a task at a lag) for ``config.steps`` steps from
    where ``sweep["current"]`` left it (the start, or a restored checkpoint), evaluate it, and
    append its record, curves and timings to ``sweep["finished"]``. With ``early_stop`` the run
    ends at the first evaluation that meets the criterion (:func:`is_solved`); its step is the
    record's ``steps_to_solve``.

    The sweep's step (what ``--checkpoint-every`` counts) is ``index * steps + done``. Metrics
    are fetched from the device once per chunk (the steps run ahead of the host meanwhile; with
    ``early_stop`` also at every evaluation, whose result decides whether to go on) and logged
    in step order, each evaluation after its step's training record, so the log is the same
    wherever the checkpoints fall. A checkpoint saved at the step that solved the task carries
    ``solved_at``, so a resumed run stops there too.
    """
    task, lag, model = runs[index]
    length = sequence_length(task, lag, config)
    optimizer = make_optimizer(config)
    # The same start at every lag (but the chrono biases, drawn for the lag's T_max).
    init = initial_params(model, task, config, chrono_t_max(model, task, lag, config))
    loss_fn = make_loss(model, task, config)
    # No donation: ``init`` is the cached initialisation, shared by every lag.
    step = make_train_step(loss_fn, optimizer, has_aux=True, donate=False)
    evaluate = make_eval_step(loss_fn, has_aux=True)
    train_key = task_key(config.seed, task, lag, "train")
    eval_at = set(eval_steps(config))

    current, state = ckpt.sweep_run(
        sweep, index, {"params": init, "opt_state": optimizer.init(init)},
        lambda: {"run": index, "step": 0, "losses": [], "evals": [], "wall_s": 0.0, "compile_s": None,
                 "solved_at": None})
    params, opt_state = state["params"], state["opt_state"]
    started, wall_before = time.perf_counter(), current["wall_s"]
    last_run = index == len(runs) - 1

    pending = []  # (step, train metrics, test metrics or None) still on the device

    def flush():
        for done, metrics, result in jax.device_get(pending):
            metrics = {k: float(v) for k, v in metrics.items()}
            current["losses"].append(metrics["loss"])
            run_dir.log(kind="train", model=model, task=task, lag=lag, step=done, **metrics)
            if result is not None:
                result = {k: float(v) for k, v in result.items()}
                current["evals"].append({"step": done, **result})
                run_dir.log(kind="eval", model=model, task=task, lag=lag, step=done, **result)
        bar.update(len(pending))
        if pending:
            bar.set_postfix_str(f"{model} {task} {lag}: loss {np.mean(current['losses'][-config.chunk:]):.4f}")
        pending.clear()

    xs = ys = None
    for k in range(current["step"], config.steps):
        if current.get("solved_at") is not None:
            break  # resumed from the checkpoint of the step that solved it
        c, i = divmod(k, config.chunk)
        if xs is None or i == 0:
            # Chunk c's batches depend on the task, lag and c only: a resumed run draws them again.
            xs, ys = draw(task, jax.random.fold_in(train_key, c), config.chunk * config.batch_size, lag, config)
            xs = xs.reshape(config.chunk, config.batch_size, *xs.shape[1:])
            ys = ys.reshape(config.chunk, config.batch_size, *ys.shape[1:])
        t0 = time.perf_counter()
        params, opt_state, metrics = step(params, opt_state, (xs[i], ys[i]))
        if current["compile_s"] is None:
            jax.block_until_ready(metrics)
            current["compile_s"] = round(time.perf_counter() - t0, 2)
        done = k + 1
        pending.append((done, metrics, evaluate(params, test) if done in eval_at else None))
        stop = False
        if config.early_stop and done in eval_at:
            flush()  # the evaluation decides whether to go on
            stop = done < config.steps and is_solved(task, current["evals"][-1], config)
            if stop:
                current["solved_at"] = done
        sweep_step = index * config.steps + done
        final = last_run and (done == config.steps or stop)
        save = final or ckpt.due(sweep_step)
        if save or i == config.chunk - 1 or done == config.steps:
            flush()
        current["step"] = done
        if save:
            current["wall_s"] = wall_before + time.perf_counter() - started
            ckpt.save(sweep_step, {"params": params, "opt_state": opt_state}, sweep, force=final)
        if stop:
            break
    bar.update(config.steps - current["step"])  # the steps an early stop left out

    final = current["evals"][-1]
    trained = current["step"]
    base = baseline(task, lag, config)
    record = {
        "test_loss": final["loss"],
        "baseline": base,
        "test_loss_over_baseline": final["loss"] / base,
        "final_train_loss": float(np.mean(current["losses"][-max(1, config.steps // 20):])),
        "steps": trained,
        "sequence_length": length,
        "params": count_scalars(params),
    }
    if task == "copy":
        record |= {
            "recall_accuracy": final["recall_accuracy"],
            "chance_accuracy": CHANCE_ACCURACY,
            "recall_cross_entropy": final["recall_cross_entropy"],
            "recall_baseline": math.log(COPY_SYMBOLS),
        }
    record["solved"] = is_solved(task, final, config)
    if config.early_stop:
        # The first evaluation that met the criterion (the run stopped there), else None.
        record["steps_to_solve"] = trained if record["solved"] else None
    sweep["finished"].append({
        "record": record,
        "curves": {"train_loss": np.asarray(current["losses"]), "evals": current["evals"]},
        "timings": {"wall_s": round(wall_before + time.perf_counter() - started, 2),
                    "compile_s": current["compile_s"]},
    })
    sweep["current"] = None


def skip_one(index: int, runs: list, failed_at: int, config: Config, bar, ckpt: RunCheckpoints,
             sweep: dict) -> None:
    """Record run ``runs[index]`` as skipped (``skip_after_failure``: its model failed at the
    shorter lag ``failed_at``). The last run of the sweep saves the final checkpoint here, with
    the initial state (nothing is restored from it: the sweep is finished)."""
    task, lag, model = runs[index]
    sweep["finished"].append({"skipped": f"failed at {failed_at}", "failed_at": failed_at})
    sweep["current"] = None
    bar.update(config.steps)
    if index == len(runs) - 1:
        init = initial_params(model, task, config, chrono_t_max(model, task, lag, config))
        state = {"params": init, "opt_state": make_optimizer(config).init(init)}
        ckpt.save((index + 1) * config.steps, state, sweep, force=True)


# --- main -----------------------------------------------------------------------------------


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """Train every model on every task and lag (from the run's checkpoint, if it has one); write
    metrics and figures into ``run_dir``; return the summary."""
    runs, skipped = plan(config)
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        # sweep["finished"]: one {record, curves, timings} per finished run, in order;
        # sweep["current"]: the run in progress (its step, losses and evaluations so far).
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        bar = progress(desc="long range", total=len(runs) * config.steps,
                       initial=resumed.step if resumed else 0)
        test_sets = {}
        for index in range(len(sweep["finished"]), len(runs)):
            task, lag, _ = runs[index]
            failed_at = failed_before(sweep["finished"], runs, index, config)
            if failed_at is not None:
                skip_one(index, runs, failed_at, config, bar, ckpt, sweep)
                continue
            if (task, lag) not in test_sets:  # one test set at a time: runs are grouped by lag
                test_sets = {(task, lag): draw(task, task_key(config.seed, task, lag, "test"),
                                               config.eval_batch, lag, config)}
            train_one(index, runs, test_sets[(task, lag)], config, run_dir, bar, ckpt, sweep)
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions

    summary, curves, timings = collect(sweep["finished"], runs, skipped, config)
    summary["environment"] = environment()
    summary["timings"] = {"runtime_s": round(runtime_s, 1), "sessions": sessions, "runs": timings}
    save_result_figures(run_dir, summary["results"], config)
    run_dir.save_figure(plot_curves(curves, config), "training_curves")
    return summary


def save_result_figures(run_dir: RunDir, results: dict, config: Config) -> None:
    """``long_range.png`` and, with ``early_stop``, ``steps_to_solve.png`` of these results (a
    finished run's, or the finished part of a run still going) into ``run_dir``."""
    run_dir.save_figure(plot_results(results, config), "long_range")
    if config.early_stop:
        run_dir.save_figure(plot_steps_to_solve(results, config), "steps_to_solve")


def collect(finished: list, runs: list, skipped: dict, config: Config) -> tuple[dict, dict, dict]:
    """``(summary, curves, timings)`` of the finished runs (``finished[i]`` is ``runs[i]``'s; a
    prefix of the sweep when the run is still going): the summary without environment and
    timings, the training curves ``{task: {model: {lag: ...}}}`` and the per-run timings."""
    results = {t: {m: {} for m in config.models} for t in config.tasks}
    curves = {t: {m: {} for m in config.models} for t in config.tasks}
    timings = {t: {m: {} for m in config.models} for t in config.tasks}
    after_failure = {}
    for (task, lag, model), done in zip(runs, finished):
        if "skipped" in done:
            after_failure.setdefault(task, {}).setdefault(model, {})[str(lag)] = done["skipped"]
            continue
        results[task][model][str(lag)] = done["record"]
        curves[task][model][lag] = done["curves"]
        timings[task][model][str(lag)] = done["timings"]
    summary = summarise(results, config) | {"skipped": skipped}
    if skipped:
        summary["skipped_reason"] = (
            f"Transformer not run on sequences longer than transformer_max_length = "
            f"{config.transformer_max_length} (compute cost, not a measured failure)"
        )
    if config.skip_after_failure:
        # {task: {model: {lag: "failed at <shorter lag>"}}}: not run, the model having failed a
        # shorter lag of the task within the budget (an inference, not a measurement).
        summary["skipped_after_failure"] = after_failure
    return summary, curves, timings


def progress_report(path: str | Path, figures: str | Path | None = None) -> str:
    """The tables of a run still going (or stopped), from its latest checkpoint: the finished
    runs as :func:`format_table` prints them, then the run in progress and its latest test
    metric. Reads a copy of the checkpoint's metadata (the live run's directory is not touched).
    ``figures``: a directory (made if missing) to which the finished runs' ``long_range.png``
    and, with ``early_stop``, ``steps_to_solve.png`` are also written.

    Example (the paper run, from a shell)::

        python -c "from experiments.long_range import progress_report as p; print(p('/work/runs/long_range_paper'))"
    """
    path = Path(path)
    directory = path / "checkpoints"
    steps = sorted(int(d.name) for d in directory.iterdir()
                   if d.name.isdigit() and (d / "seqjax_manifest.json").is_file()) if directory.is_dir() else []
    if not steps:
        raise ValueError(f"progress_report: {directory} holds no whole checkpoint yet; expected a run directory with one.")
    config = config_from_json(Config, json.loads((path / "config.json").read_text()))
    with tempfile.TemporaryDirectory() as tmp:  # a copy: a live run may save (and prune) meanwhile
        copy = Path(tmp) / "checkpoints"
        shutil.copytree(directory / str(steps[-1]), copy / str(steps[-1]))
        checkpointer = Checkpointer(copy, save_every=1, max_to_keep=2)
        try:
            extra = checkpointer.restore_metadata(steps[-1]).extra
        finally:
            checkpointer.close()
    sweep = decode(extra["progress"])
    runs, skipped = plan(config)
    summary, _, timings = collect(sweep["finished"], runs, skipped, config)
    summary["timings"] = {"runs": timings}
    if figures is not None:
        Path(figures).mkdir(parents=True, exist_ok=True)
        save_result_figures(RunDir(Path(figures)), summary["results"], config)
    lines = [f"{len(sweep['finished'])} of {len(runs)} runs finished (checkpoint at sweep step "
             f"{steps[-1]}, {extra['elapsed_s'] / 3600:.2f} h of work, {extra['sessions']} session(s))",
             format_table(summary)]
    current = sweep["current"]
    if current is not None and current["run"] < len(runs):
        task, lag, model = runs[current["run"]]
        last = current["evals"][-1] if current["evals"] else {}
        metric = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "step")
        lines.append(f"in progress: {model} {task} {lag}, step {current['step']} of {config.steps}"
                     + (f"; test at step {last['step']}: {metric}" if last else ""))
    return "\n".join(lines)


def summarise(results: dict, config: Config) -> dict[str, Any]:
    """The numbers the experiment reports (see the module docstring)."""
    headline = {}
    if "adding" in results and 100 in config.adding_lengths:
        headline = {f"adding_T100_{m}_test_mse": results["adding"][m]["100"]["test_loss"]
                    for m in config.models if "100" in results["adding"][m]}
    return {
        "results": results,
        "criteria": {
            "adding": f"solved: final test MSE < {config.adding_solved_mse:g} "
                      f"(baseline {adding_baseline_mse():.4f}, predicting the mean)",
            "copy": f"solved: final recall accuracy on the {config.copy_symbols} symbols >= "
                    f"{config.copy_solved_accuracy:g} (chance {CHANCE_ACCURACY:g}); baseline "
                    f"cross-entropy {config.copy_symbols} log 8 / (L + {2 * config.copy_symbols})",
        },
        "solved": {t: {m: [int(lag) for lag, r in by_lag.items() if r["solved"]]
                       for m, by_lag in by_model.items()} for t, by_model in results.items()},
        "longest_solved": longest_solved(results),
        "headline": headline,
        "steps": config.steps,
        "preset": config.preset,
    }


def longest_solved(results: dict) -> dict[str, dict[str, dict[str, Any]]]:
    """Per task and model the longest lag (adding: T) solved, with the steps of that run and,
    with early stopping, the steps it took to solve: ``{task: {model: {"lag", "steps",
    "steps_to_solve"}}}``, ``lag`` None where no lag was solved."""
    out = {}
    for task, by_model in results.items():
        out[task] = {}
        for model, by_lag in by_model.items():
            solved = [int(lag) for lag, r in by_lag.items() if r["solved"]]
            if not solved:
                out[task][model] = {"lag": None, "steps": None, "steps_to_solve": None}
                continue
            r = by_lag[str(max(solved))]
            out[task][model] = {"lag": max(solved), "steps": r["steps"],
                                "steps_to_solve": r.get("steps_to_solve")}
    return out


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text table, one row per task, model and lag (the steps trained, which early
    stopping makes the steps to solve), then per model the longest lag solved."""
    header = (f"{'task':<7} {'model':<12} {'lag':>5} | {'test loss':>10} {'baseline':>9} "
              f"{'ratio':>7} | {'recall acc':>10} | {'solved':>6} | {'steps':>6} | {'wall s':>7}")
    lines = [header, "-" * len(header)]
    after_failure = summary.get("skipped_after_failure", {})
    for task, by_model in summary["results"].items():
        for model, by_lag in by_model.items():
            for lag, r in by_lag.items():
                acc = f"{r['recall_accuracy']:.3f}" if "recall_accuracy" in r else "-"
                wall = summary["timings"]["runs"][task][model][lag]["wall_s"]
                lines.append(
                    f"{task:<7} {model:<12} {lag:>5} | {r['test_loss']:>10.4g} {r['baseline']:>9.4f} "
                    f"{r['test_loss_over_baseline']:>7.3f} | {acc:>10} | "
                    f"{'yes' if r['solved'] else 'no':>6} | {r['steps']:>6} | {wall:>7.1f}"
                )
            for lag, why in after_failure.get(task, {}).get(model, {}).items():
                lines.append(f"{task:<7} {model:<12} {lag:>5} | skipped: {why}")
    lines += ["", longest_solved_table(summary)]
    return "\n".join(lines)


def longest_solved_table(summary: dict[str, Any]) -> str:
    """Per model the longest adding length ``T`` and copy lag ``L`` solved, with the steps it
    took (``summary["longest_solved"]``), as a plain-text table."""
    longest = summary["longest_solved"]
    tasks = [t for t in TASKS if t in longest]
    models = list(next(iter(longest.values())))
    names = {"adding": "adding: longest T solved", "copy": "copy: longest L solved"}
    header = f"{'model':<12} | " + " | ".join(f"{names[t]:>26}" for t in tasks)
    lines = [header, "-" * len(header)]
    for model in models:
        cells = []
        for task in tasks:
            best = longest[task][model]
            if best["lag"] is None:
                cells.append(f"{'none':>26}")
            else:
                steps = best["steps_to_solve"] if best["steps_to_solve"] is not None else best["steps"]
                text = f"{best['lag']} ({steps} steps)"
                cells.append(f"{text:>26}")
        lines.append(f"{model:<12} | " + " | ".join(cells))
    return "\n".join(lines)


# --- figures --------------------------------------------------------------------------------


def _lag_axis(ax, lags: Sequence[int], label: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(lags), [str(v) for v in lags])
    ax.minorticks_off()
    ax.set_xlabel(label)
    ax.grid(True, alpha=0.3)


def _legends(fig: Figure, axes) -> None:
    """Models in one legend for the figure (right); each panel's reference lines (baselines,
    thresholds) in a small legend of its own."""
    handles, labels = [], []
    for ax in axes:
        if not ax.get_visible():
            continue
        panel = [(h, l) for h, l in zip(*ax.get_legend_handles_labels())]
        refs = [(h, l) for h, l in panel if l not in TITLES.values()]
        if refs:
            ax.legend(*zip(*refs), fontsize=7.5, loc="best", framealpha=0.8)
        for handle, label in panel:
            if label in TITLES.values() and label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.legend(handles, labels, loc="outside right center", fontsize=9)


def plot_results(results: dict, config: Config) -> Figure:
    """Final test metric against lag, one line per model, with the memoryless baselines."""
    panels = []
    if "adding" in results:
        panels.append(("adding", "loss"))
    if "copy" in results:
        panels += [("copy", "loss"), ("copy", "recall_accuracy")]
    fig = Figure(figsize=(4.4 * len(panels) + 1.8, 4.0), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (task, metric) in zip(axes, panels):
        lags = list(config.lags(task))
        for model in config.models:
            by_lag = results[task][model]
            key = "test_loss" if metric == "loss" else "recall_accuracy"
            run_lags = [lag for lag in lags if str(lag) in by_lag]  # skipped runs are absent
            values = [by_lag[str(lag)][key] for lag in run_lags]
            ax.plot(run_lags, values, "o-", color=COLORS[model], lw=1.8, label=TITLES[model])
        if task == "adding":
            ax.axhline(adding_baseline_mse(), color="k", ls="--", lw=1, label="predict the mean (1/6)")
            ax.axhline(config.adding_solved_mse, color="grey", ls=":", lw=1.2,
                       label=f"solved: MSE < {config.adding_solved_mse:g}")
            ax.set_yscale("log")
            ax.set_ylabel("test MSE")
            ax.set_title("Adding problem: test MSE")
            _lag_axis(ax, lags, "sequence length T")
        elif metric == "loss":
            base = [baseline("copy", lag, config) for lag in lags]
            ax.plot(lags, base, "k--", lw=1,
                    label=f"memoryless: {config.copy_symbols} log 8 / (L + {2 * config.copy_symbols})")
            ax.plot(lags, base, "k_", ms=16)  # visible even with a single lag
            ax.set_ylim(bottom=0)
            ax.set_ylabel("test cross-entropy (nats per step)")
            ax.set_title("Copy memory: test cross-entropy")
            _lag_axis(ax, lags, "lag L")
        else:
            ax.axhline(CHANCE_ACCURACY, color="k", ls="--", lw=1, label="chance (1/8)")
            ax.axhline(config.copy_solved_accuracy, color="grey", ls=":", lw=1.2,
                       label=f"solved: accuracy >= {config.copy_solved_accuracy:g}")
            ax.set_ylim(0, 1.02)
            ax.set_ylabel(f"accuracy on the {config.copy_symbols} recalled symbols")
            ax.set_title("Copy memory: recall accuracy")
            _lag_axis(ax, lags, "lag L")
    _legends(fig, axes)
    budget = (f"up to {config.steps} Adam steps (stopped when solved)" if config.early_stop
              else f"{config.steps} Adam steps")
    fig.suptitle(
        f"Test metrics on {config.eval_batch} held-out sequences after {budget} "
        f"(batch {config.batch_size}, peak lr {config.learning_rate:g}, hidden {config.hidden}); "
        "the same budget, hyperparameters and data for every model",
        fontsize=10,
    )
    return fig


def plot_steps_to_solve(results: dict, config: Config) -> Figure:
    """With ``early_stop``: the Adam steps each model took to solve each length (filled markers,
    joined), a run that failed drawn as an open marker at the steps it trained (the budget); the
    lengths a failure skipped are left out."""
    tasks = [t for t in TASKS if t in results]
    fig = Figure(figsize=(4.4 * len(tasks) + 1.8, 4.0), layout="constrained")
    # One step axis for both tasks: a panel whose runs all took 16000-20000 steps would
    # otherwise span less than a decade of the log scale and show no tick labels.
    axes = fig.subplots(1, len(tasks), squeeze=False, sharey=True)[0]
    for ax, task in zip(axes, tasks):
        for model in config.models:
            runs = sorted((int(lag), r) for lag, r in results[task][model].items())
            solved = [(lag, r["steps_to_solve"]) for lag, r in runs if r["solved"]]
            failed = [(lag, r["steps"]) for lag, r in runs if not r["solved"]]
            if solved:
                ax.plot(*zip(*solved), "o-", color=COLORS[model], lw=1.8, label=TITLES[model])
            if failed:
                ax.plot(*zip(*failed), "o", mfc="none", mew=1.6, ms=8, color=COLORS[model],
                        label=None if solved else TITLES[model])
        ax.axhline(config.steps, color="grey", ls=":", lw=1.2,
                   label=f"budget: {config.steps} steps (open: not solved)")
        ax.set_yscale("log")
        criterion = (f"test MSE < {config.adding_solved_mse:g}" if task == "adding"
                     else f"recall >= {config.copy_solved_accuracy:g}")
        ax.set_title(f"{'Adding problem' if task == 'adding' else 'Copy memory'}: steps to {criterion}",
                     fontsize=10)
        _lag_axis(ax, list(config.lags(task)), "sequence length T" if task == "adding" else "lag L")
    axes[0].set_ylabel("Adam steps to solve")
    _legends(fig, axes)
    fig.suptitle(f"Steps to solve (test every {config.eval_every} steps on {config.eval_batch} "
                 f"held-out sequences; batch {config.batch_size}, lr {config.learning_rate:g}, "
                 f"hidden {config.hidden})", fontsize=10)
    return fig


def plot_curves(curves: dict, config: Config) -> Figure:
    """Training loss (running mean, lines) and test loss (dots) against step, per task and lag;
    for the copy task also the test recall accuracy."""
    rows = [(t, "loss") for t in TASKS if t in curves]
    if "copy" in curves:
        rows.append(("copy", "recall_accuracy"))
    cols = max(len(config.lags(t)) for t, _ in rows)
    fig = Figure(figsize=(3.5 * cols + 1.8, 2.9 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), cols, squeeze=False)
    window = max(1, config.steps // 40)
    for r, (task, metric) in enumerate(rows):
        lags = config.lags(task)
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(lags):
                ax.set_visible(False)
                continue
            lag = lags[c]
            for model in config.models:
                if lag not in curves[task][model]:
                    continue  # skipped (transformer_max_length)
                curve = curves[task][model][lag]
                ev = curve["evals"]
                if metric == "loss":
                    w = min(window, len(curve["train_loss"]))  # an early-stopped run is shorter
                    loss = np.convolve(curve["train_loss"], np.ones(w) / w, mode="valid")
                    ax.plot(np.arange(w, len(curve["train_loss"]) + 1), loss, color=COLORS[model], lw=1.1,
                            alpha=0.85, label=TITLES[model])
                    ax.plot([e["step"] for e in ev], [e["loss"] for e in ev], "o", ms=3.5,
                            color=COLORS[model])
                else:
                    ax.plot([e["step"] for e in ev], [e["recall_accuracy"] for e in ev], "o-", ms=3.5,
                            lw=1.1, color=COLORS[model], label=TITLES[model])
            name = "T" if task == "adding" else "L"
            if metric == "loss":
                ax.axhline(baseline(task, lag, config), color="k", ls="--", lw=1, label="baseline")
                if task == "adding":
                    ax.axhline(config.adding_solved_mse, color="grey", ls=":", lw=1.2, label="solved")
                ax.set_yscale("log")
                ax.set_title(f"{task}, {name} = {lag}: loss", fontsize=10)
            else:
                ax.axhline(CHANCE_ACCURACY, color="k", ls="--", lw=1, label="chance")
                ax.set_ylim(0, 1.02)
                ax.set_title(f"copy, L = {lag}: test recall accuracy", fontsize=10)
            ax.grid(True, alpha=0.3)
            if r == len(rows) - 1:
                ax.set_xlabel("Adam step")
            if c == 0:
                ax.set_ylabel({"adding": "MSE", "copy": "cross-entropy (nats/step)"}[task]
                              if metric == "loss" else "recall accuracy")
    _legends(fig, axes.ravel())
    fig.suptitle(f"Training loss (lines, running mean over {window} steps) and test metrics (dots)",
                 fontsize=10)
    return fig


# --- CLI ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, run the experiment, print the table; returns the summary (with
    ``run_dir``)."""
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
