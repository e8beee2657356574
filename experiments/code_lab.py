"""The textbook chapter's code lab and the sequence-modelling notebook's exercises, trained and measured.

What it measures
    Each exercise is a short training run scored on held-out data against honest baselines
    (numbers in ``metrics.json["exercises"]``, one figure each):

    * ``lstm_sine`` (code lab 11.6.1): an LSTM built from the seqjax cell
      (:func:`seqjax.cells.lstm` scanned by :func:`seqjax.recurrence.rnn`, ``fused=False``) forecasts the
      next value of the chapter's noisy two-tone sine ``0.8 sin(0.1 t) + 0.2 sin(0.05 t) + 0.2 N(0, 1)``
      from windows of 20 (:func:`seqjax.data.noisy_sines`, a random phase per window, so test
      windows are new draws, not neighbours of training windows); next-step MSE against
      persistence, a least-squares AR(20) (:mod:`seqjax.data.forecasting`) and the noise floor
      ``0.2**2``. Then the chapter's "built-in vs from components" comparison, timed in one process
      after compilation (medians over repeats, forms alternated): ``seqjax.nn.LSTM`` (the engine,
      fused gates and a fused derivative rule) against the teaching version written here, four
      gates each with its own input and hidden matrices composed in Python and scanned with
      :func:`jax.lax.scan` (the chapter's ``LSTMCell``), with the same weights: outputs and
      gradients checked equal.
    * ``attention_sentence`` (11.6.2): one multi-head self-attention layer
      (:func:`seqjax.attention.self_attention`, 4 heads, sinusoidal positions) on the chapter's
      sentence "The quick brown fox jumps over the lazy dog .", untrained (random projections) and
      after training on a task whose right attention is known: from each position, name the
      previous and the next token (two readouts of the attention output, no residual path, iid
      random sentences over the sentence's 9 words). Per head: the attention mass on key ``i - 1``,
      ``i + 1`` and ``i`` on held-out sequences; per-head heatmaps on the sentence.
    * ``transformer_sine`` (11.6.3): the chapter's encoder-only Transformer (post-LN, ReLU, 2
      layers, d = 32, 4 heads, FFN 64) on its random sines (:func:`seqjax.data.random_sines`),
      trained to predict the next noisy value at every position, once with the causal mask passed
      (the fix) and once without it (the chapter's code builds the mask and never passes it).
      Measured: teacher-forced MSE on held-out sequences (where the leak helps) and a 20-step
      autoregressive forecast from 20 observed values (each prediction fed back; the model sees
      only the positions generated so far, ``seq_lengths``), against the clean future; baselines
      persistence and a least-squares AR(10).
    * ``neural_forecast`` (11.6.4): LSTM -> multi-head self-attention -> last step -> a linear head
      for 10 future steps of the chapter's 20-unit oscillatory population
      (:mod:`seqjax.data.neural_activity`), windows of 50, split *by trial* (80 / 20 trials; the
      chapter split windows at random, so one trial's oscillators were in both sets). Trained
      twice: on the chapter's windows (every 88 samples: 6 per trial) and on windows every 10
      samples of the same training trials; the test windows are the chapter's. MSE per horizon
      step against persistence, the zero and the training-mean predictors and an iterated AR(20)
      shared by all units.
    * ``elman_pattern`` (the chapter's first example): an Elman RNN deciding whether a sequence of
      10 tokens ends with ``[1, 2, 3]``, on the balanced task (:func:`seqjax.data.ends_with_pattern`;
      the chapter's iid data has 1 positive in 125, so "always no" scores 99.2%: measured here
      too). Held-out accuracy against the majority class and the rules "last token is 3" and
      "last two tokens are 2, 3".
    * ``clipping`` (notebook exercise 1): an Elman RNN with recurrent weights 2 x orthogonal on the
      adding problem (T = 50), plain SGD, with and without :func:`seqjax.train.clip_by_global_norm`;
      loss and gradient norm per step, held-out MSE against the mean predictor's 1/6.
    * ``bidirectional`` (exercise 2): GRU tagging where the tag of step ``t`` is
      ``[x_{t+1} > x_{t-1}]`` over 4 tokens (:func:`seqjax.data.neighbour_comparison_tagging`): a
      bidirectional GRU against a unidirectional one with about the same parameter count (both
      with a one-hidden-layer readout per step); the majority class scores 0.625 and the best a
      left-to-right reader can do is 0.75 (:func:`seqjax.data.left_to_right_ceiling`).
    * ``gru_gates`` (exercise 3): a GRU trained on the adding problem (T = 30); its reset and update
      gates over held-out sequences, recomputed from the cell's parameters by the documented
      equations and checked against :func:`seqjax.cells.gru`'s step; the update gate at the two
      marked steps against the others. Parameter counts against LSTM and Elman.
    * ``attention_preview`` (exercise 4): the notebook's similarity ``E E^T`` with a softmax per row
      on 5 random word vectors (diagonal dominance measured), then a tiny alignment task: 8 keys,
      a query that is a fixed unknown rotation of one of them plus noise, and the dot (Luong,
      no parameters), general (Luong) and additive (Bahdanau, with and without its bias) scores
      of :mod:`seqjax.attention` trained to put the weight on the right key.

Why
    The chapter's code lab reports no number: exercise 1 fits a scaler on all data and splits
    overlapping windows at random, exercise 3's mask is never passed (so its "forecast" copies the
    future), exercise 4 splits windows of one trial between training and test, the first example's
    accuracy is a class prior, and every attention heatmap is of an untrained module.

Result (default run, seed 0, 2 CPU cores shared with other jobs, 1027 s; ``metrics.json``)
    ==================  ===========================================  ==========================================
    exercise            model (held out)                             baselines (same data)
    ==================  ===========================================  ==========================================
    lstm_sine           next-step MSE 0.0456                         AR(20) 0.0468, persistence 0.0847,
                                                                     noise floor 0.0400
    attention_sentence  trained heads: mass 0.55 on i-1 (head 2),    untrained 0.09-0.11 on every offset
                        0.66 on i+1 (head 1); accuracy 1.00 / 1.00   (uniform 0.10); chance 0.11
    transformer_sine    causal: teacher-forced 0.0050, 20-step       persistence 0.0080 / 0.364,
                        forecast 0.049; leaking: 0.0040 / 0.673      AR(10) 0.0042 (positions >= 9) / 0.081
    neural_forecast     chapter's windows 1.00, dense windows 0.83   zero / train mean 0.88, persistence 1.85,
                        (MSE over 10 steps, 20 test trials)          AR(20) 0.137
    elman_pattern       accuracy 1.00                                majority 0.50, "last = 3" 0.89,
                                                                     "last two = 2, 3" 0.99
    clipping            clipped: test MSE 0.267, no non-finite step  unclipped: infinite from step 31 (970 of
                                                                     1000 steps non-finite); mean predictor 0.167
    bidirectional       accuracy 1.00 (3170 parameters)             unidirectional 0.744 (3173), its ceiling
                                                                     0.75, majority 0.62
    gru_gates           MSE 0.0020; update gate 0.61 at the marked   mean predictor 0.167
                        steps, 0.70 elsewhere
    attention_preview   additive (with bias) 1.00, general 0.92      dot 0.04, additive without bias 0.13,
                                                                     chance 0.125
    ==================  ===========================================  ==========================================

    What the chapter claims and what was measured: the LSTM beats persistence by 46% but a
    least-squares AR(20) only by 2.5%, both near the noise floor. The leak of the unmasked
    Transformer is visible exactly as predicted: it is the better model teacher-forced (0.0040
    against 0.0050, 0.0016 against 0.0025 on the clean target) and by far the worse forecaster
    (0.67 against 0.049, worse than persistence), because what it learned was to read the next
    input; the masked model beats AR(10) at 20 steps (0.049 against 0.081; AR is better for the
    first 2-3 steps). The chapter's 11.6.4 model, trained on its 480 windows and split by trial,
    is *worse than predicting zero* (1.00 against 0.88; train loss 0.48: it memorises the training
    trials), and with 3600 windows of the same trials barely better (0.83); a linear AR(20) shared
    by all units gets 0.137. More steps make it worse, not better (``--exercise neural_forecast
    --neural-steps 4000``: 1.34 and 0.92, train loss 0.25 and 0.46): the model overfits the
    training trials' oscillators instead of learning to continue a sine. The chapter's first example, on its iid data, is 99.2% "accurate" by
    always answering no (0.79% positives, measured); on the balanced task the Elman RNN scores
    1.00 where the rule "the last two tokens are 2, 3" already scores 0.99. Clipping: without it,
    SGD at this learning rate diverges (the first gradient norm is 3.2e3; the loss is 1e5 at step
    6, 5e35 at step 30, infinite from step 31); clipped, training stays finite but the Elman RNN does not solve the adding problem
    at T = 50 in 1000 steps (0.267, above the mean predictor's 0.167): clipping cures the
    explosion, not the learning problem. The GRU's update gate opens (z falls) at the two marked
    steps, where the state must take the new value in. The additive score *without* its bias
    cannot learn the alignment at all (0.13 = chance): ``tanh`` of a sum of zero-mean projections
    has no bilinear ``q k`` term at second order, which the bias supplies. The notebook's
    diagonal dominance of ``softmax(E E^T)`` holds for 3 of its 5 random word vectors (diagonal
    weights 0.51, 0.99, 0.99, 0.16, 0.19): with 4 dimensions a neighbour is often larger.
    Speed, built-in ``seqjax.nn.LSTM`` against the gate-by-gate teaching version (taken on a
    machine shared with other jobs: not trustworthy): outputs equal to the last bit, gradients to
    7.5e-7 relative; forward+backward 1.44x and 1.60x slower from components at b 32, t 20, h 32
    in two runs, 1.18x and 0.96x at b 64, t 200, h 128; forward within noise.

Run::

    python -m experiments.code_lab                        # every exercise
    python -m experiments.code_lab --exercise transformer_sine,clipping
    python -m experiments.code_lab --quick                # seconds; used by the tests
    python -m experiments.code_lab --resume RUN_DIR       # continue a stopped or killed run

Resuming: the exercises' training runs form one sweep; every ``checkpoint_every`` steps
(counted over the sweep) the current run's parameters and optimiser state, its position and the
finished runs' results are saved; every batch is a function of the seed, the exercise and the
step, so ``--resume`` reaches the same ``metrics.json`` (wall-clock numbers, the LSTM timing
included, under ``timings``).

Outputs (``runs/code_lab/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl``, ``metrics.json``, one PNG per exercise, ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, ClassVar, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from matplotlib.figure import Figure

from seqjax.attention import (additive, attend_sequence, causal_mask, dot, general, multi_head_init,
                              scaled_dot, self_attention, sinusoidal_table)
from seqjax.cells import elman, gru, lstm
from seqjax.data import (adding_baseline_mse, adding_problem, ends_with_pattern, left_to_right_ceiling,
                         neighbour_comparison_tagging,
                         noisy_sines, random_sines)
from seqjax.data.forecasting import autoregressive_forecast, fit_autoregressive, persistence_forecast
from seqjax.data.neural_activity import forecast_windows, oscillatory_population
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.nn import LSTM
from seqjax.primitives import dense, init_weights
from seqjax.recurrence import bidirectional, rnn
from seqjax.train import clip_by_global_norm, cross_entropy, make_train_step, mse, warmup_cosine_decay
from seqjax.transformer import TransformerSpec, encoder_stack, encoder_stack_init

NAME = "code_lab"
EXERCISES = ("lstm_sine", "attention_sentence", "transformer_sine", "neural_forecast", "elman_pattern",
             "clipping", "bidirectional", "gru_gates", "attention_preview")
TITLES = {
    "lstm_sine": "11.6.1 LSTM from the cell, noisy two-tone sine",
    "attention_sentence": "11.6.2 self-attention on the sentence",
    "transformer_sine": "11.6.3 encoder-only Transformer, random sines",
    "neural_forecast": "11.6.4 LSTM -> attention -> 10-step head, 20-unit activity",
    "elman_pattern": "first example: Elman RNN, ends with [1, 2, 3]",
    "clipping": "exercise 1: clipping an exploding RNN",
    "bidirectional": "exercise 2: bidirectional vs unidirectional GRU",
    "gru_gates": "exercise 3: GRU gates",
    "attention_preview": "exercise 4: attention preview",
}
SENTENCE = ("The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", ".")
PREVIEW_WORDS = ("The", "cat", "sat", "on", "mat")


@dataclasses.dataclass(frozen=True)
class Config:
    """The chapter's code lab and the notebook's exercises, each trained and scored on held-out data against baselines."""

    QUICK: ClassVar[dict[str, Any]] = {
        "lstm_steps": 20, "lstm_hidden": 8, "speed_repeats": 3, "speed_large": False,
        "attention_steps": 20, "attention_d_model": 16,
        "transformer_steps": 20, "transformer_d_model": 16, "transformer_layers": 1, "transformer_ff": 32,
        "neural_trials": 10, "neural_time": 100, "neural_hidden": 16, "neural_steps": 20, "neural_stride": 20,
        "elman_steps": 20, "clip_steps": 20, "clip_length": 20, "clip_hidden": 8,
        "bidir_steps": 20, "bidir_hidden": 8, "gru_steps": 20, "gru_hidden": 8, "gru_length": 12,
        "preview_steps": 20, "eval_batch": 256, "batch_size": 16, "checkpoint_every": 40,
    }

    exercise: tuple[str, ...] = option(EXERCISES, "exercises to run: " + ", ".join(EXERCISES))
    batch_size: int = option(32, "training batch size (every exercise)")
    eval_batch: int = option(2048, "held-out sequences per evaluation")
    learning_rate: float = option(3e-3, "Adam peak learning rate (warmup 5%, cosine decay) where the "
                                  "exercise does not say otherwise")
    lstm_hidden: int = option(32, "11.6.1 LSTM hidden size (the chapter's 32)")
    lstm_steps: int = option(1500, "11.6.1 Adam steps")
    lstm_learning_rate: float = option(1e-2, "11.6.1 peak learning rate (the chapter's 0.01)")
    ar_order: int = option(20, "11.6.1 AR order (the window length)")
    speed_repeats: int = option(30, "11.6.1 timed calls per form and round (3 rounds)")
    speed_large: bool = option(True, "11.6.1 also time a larger LSTM (b 64, t 200, d 16, h 128)")
    attention_d_model: int = option(32, "11.6.2 embedding width")
    attention_heads: int = option(4, "11.6.2 heads")
    attention_steps: int = option(1500, "11.6.2 Adam steps")
    transformer_d_model: int = option(32, "11.6.3 d_model (the chapter's 32)")
    transformer_heads: int = option(4, "11.6.3 heads")
    transformer_layers: int = option(2, "11.6.3 layers")
    transformer_ff: int = option(64, "11.6.3 feed-forward width")
    transformer_length: int = option(40, "11.6.3 positions per sequence (the chapter's 40)")
    transformer_context: int = option(20, "11.6.3 observed values before the autoregressive forecast")
    transformer_ar_order: int = option(10, "11.6.3 AR baseline order")
    transformer_steps: int = option(2000, "11.6.3 Adam steps per model")
    neural_trials: int = option(100, "11.6.4 trials (80% train, 20% test, by trial)")
    neural_time: int = option(500, "11.6.4 samples per trial")
    neural_neurons: int = option(20, "11.6.4 units")
    neural_hidden: int = option(64, "11.6.4 LSTM hidden size")
    neural_heads: int = option(4, "11.6.4 attention heads")
    neural_input: int = option(50, "11.6.4 input window")
    neural_horizon: int = option(10, "11.6.4 forecast horizon")
    neural_stride: int = option(88, "11.6.4 window stride (the chapter's 88; the test windows always)")
    neural_dense_stride: int = option(10, "11.6.4 training-window stride of the second run (more windows "
                                      "from the same training trials)")
    neural_ar_order: int = option(20, "11.6.4 AR baseline order")
    neural_steps: int = option(1500, "11.6.4 Adam steps")
    elman_hidden: int = option(10, "first example: Elman hidden size (the chapter's 10)")
    elman_steps: int = option(1000, "first example: Adam steps (learning rate 0.01, the chapter's)")
    clip_hidden: int = option(32, "exercise 1: Elman hidden size")
    clip_length: int = option(50, "exercise 1: adding-problem length")
    clip_radius: float = option(2.0, "exercise 1: spectral radius of the orthogonal recurrent init")
    clip_learning_rate: float = option(0.1, "exercise 1: SGD learning rate")
    clip_norm: float = option(1.0, "exercise 1: global-norm threshold")
    clip_steps: int = option(1000, "exercise 1: SGD steps per run")
    bidir_hidden: int = option(16, "exercise 2: GRU hidden size per direction (the unidirectional "
                               "GRU gets the size with the closest parameter count)")
    bidir_head: int = option(32, "exercise 2: tanh units of the per-step readout (both models)")
    bidir_length: int = option(12, "exercise 2: sequence length")
    bidir_vocab: int = option(4, "exercise 2: vocabulary")
    bidir_steps: int = option(1500, "exercise 2: Adam steps per model")
    gru_hidden: int = option(32, "exercise 3: GRU hidden size")
    gru_length: int = option(30, "exercise 3: adding-problem length")
    gru_steps: int = option(1500, "exercise 3: Adam steps")
    preview_keys: int = option(8, "exercise 4: keys per alignment example")
    preview_features: int = option(8, "exercise 4: key features")
    preview_noise: float = option(0.1, "exercise 4: query noise")
    preview_attention_features: int = option(64, "exercise 4: hidden units a of the additive score")
    preview_steps: int = option(1000, "exercise 4: Adam steps per score")
    seed: int = option(0, "base random seed")
    checkpoint_every: int = option(500, "save a checkpoint every this many steps, counted over the sweep")

    def __post_init__(self):
        if not self.exercise or any(e not in EXERCISES for e in self.exercise) or len(set(self.exercise)) != len(self.exercise):
            raise ValueError(f"exercise must be a non-empty subset of {EXERCISES} without repeats; got {self.exercise}.")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_steps") and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{f.name} must be a positive integer; got {value!r}.")
        for name in ("batch_size", "eval_batch", "lstm_hidden", "ar_order", "speed_repeats", "attention_d_model",
                     "attention_heads", "transformer_d_model", "transformer_heads", "transformer_layers",
                     "transformer_ff", "transformer_ar_order", "neural_trials", "neural_time", "neural_neurons",
                     "neural_hidden", "neural_heads", "neural_input", "neural_horizon", "neural_stride", "neural_dense_stride",
                     "neural_ar_order", "elman_hidden", "clip_hidden", "clip_length", "bidir_hidden", "bidir_head",
                     "bidir_length", "bidir_vocab", "gru_hidden", "gru_length", "preview_keys",
                     "preview_features", "preview_attention_features", "checkpoint_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}.")
        if self.attention_d_model % self.attention_heads or self.attention_d_model % 2:
            raise ValueError(f"attention_d_model ({self.attention_d_model}) must be even and divisible by "
                             f"attention_heads ({self.attention_heads}).")
        if self.transformer_d_model % self.transformer_heads or self.transformer_d_model % 2:
            raise ValueError(f"transformer_d_model ({self.transformer_d_model}) must be even and divisible by "
                             f"transformer_heads ({self.transformer_heads}).")
        if self.neural_hidden % self.neural_heads:
            raise ValueError(f"neural_hidden ({self.neural_hidden}) must be divisible by neural_heads "
                             f"({self.neural_heads}).")
        if not self.transformer_ar_order <= self.transformer_context < self.transformer_length:
            raise ValueError(f"need transformer_ar_order <= transformer_context < transformer_length; got "
                             f"{self.transformer_ar_order}, {self.transformer_context}, {self.transformer_length}.")
        if self.neural_ar_order > self.neural_input or self.neural_input + self.neural_horizon > self.neural_time:
            raise ValueError(f"need neural_ar_order <= neural_input and neural_input + neural_horizon <= "
                             f"neural_time; got {self.neural_ar_order}, {self.neural_input}, "
                             f"{self.neural_horizon}, {self.neural_time}.")
        if self.neural_trials < 5:
            raise ValueError(f"neural_trials must be at least 5 (an 80/20 split by trial); got {self.neural_trials}.")
        if self.bidir_length < 3 or self.bidir_vocab < 2 or self.gru_length < 2 or self.clip_length < 2:
            raise ValueError("bidir_length >= 3, bidir_vocab >= 2, gru_length >= 2 and clip_length >= 2 are needed.")
        for name in ("learning_rate", "lstm_learning_rate", "clip_radius", "clip_learning_rate", "clip_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}.")
        if not self.preview_noise >= 0:
            raise ValueError(f"preview_noise must be non-negative; got {self.preview_noise!r}.")


# --- shared pieces ---------------------------------------------------------------------------


class Job(NamedTuple):
    """One training run: initial parameters, pure loss, optimiser, batches, and the evaluation
    of the trained parameters (numbers and small arrays for the figure)."""

    init: Callable[[], Any]
    loss: Callable[[Any, Any, Any], jax.Array]
    optimizer: optax.GradientTransformation
    batch_at: Callable[[int], Any]
    evaluate: Callable[[Any], dict]
    forward: Callable[..., Any] | None = None  # the model's forward pass (params, inputs) (tests use it)
    jit_batches: bool = True  # False: the generator validates concrete values (ends_with_pattern)


def keys_for(config: Config, exercise: str) -> dict[str, jax.Array]:
    """The exercise's keys: ``init``, ``train`` (folded with the step), ``test``, ``extra``."""
    base = jax.random.fold_in(jax.random.key(config.seed), EXERCISES.index(exercise))
    return {name: jax.random.fold_in(base, i) for i, name in enumerate(("init", "train", "test", "extra"))}


def linear_init(key: jax.Array, d_in: int, d_out: int) -> dict:
    """A readout: Xavier-uniform ``w`` ``[d_in, d_out]``, zero ``b``."""
    return {"w": init_weights(key, [(d_in, d_out)])[0], "b": jnp.zeros((d_out,), jnp.float32)}


def linear(params: dict, x: jax.Array) -> jax.Array:
    return dense(x, params["w"], params["b"])


def adam(config: Config, steps: int, peak: float | None = None) -> optax.GradientTransformation:
    lr = config.learning_rate if peak is None else peak
    return optax.chain(clip_by_global_norm(1.0), optax.adam(warmup_cosine_decay(lr, max(1, steps // 20), steps)))


def num_params(tree: Any) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


def f(x) -> float:
    return float(np.asarray(x))


@functools.lru_cache(maxsize=None)
def _compiled(generator: Callable, batch: int, length: int, options: tuple) -> Callable:
    return jax.jit(lambda key: generator(key, batch, length, **dict(options)))


def draw(generator: Callable, key: jax.Array, batch: int, length: int, **options: Any):
    """``generator(key, batch, length, **options)`` compiled once per shape (evaluation data:
    eager calls would compile every operation separately)."""
    return _compiled(generator, batch, length, tuple(sorted(options.items())))(key)


# --- 11.6.1: LSTM from the cell on the noisy two-tone sine -----------------------------------


def lstm_sine_job(variant: str, config: Config) -> Job:
    keys, cell, window = keys_for(config, "lstm_sine"), lstm(), 20

    def init():
        k_cell, k_out = jax.random.split(keys["init"])
        return {"cell": cell.init(k_cell, 1, config.lstm_hidden), "out": linear_init(k_out, config.lstm_hidden, 1)}

    def predict(params, xs):
        h = rnn(cell, params["cell"], xs, fused=False)[:, -1]  # the cell's step, scanned
        return linear(params["out"], h)[:, 0]

    def loss(params, batch, key):
        return mse(predict(params, batch[0]), batch[1])

    def batch_at(step):
        return noisy_sines(jax.random.fold_in(keys["train"], step), config.batch_size, window)

    def evaluate(params):
        if variant == "speed":
            return lstm_speed(config)
        xs, ys = draw(noisy_sines, keys["test"], config.eval_batch, window)
        hist, target = np.asarray(xs[..., 0]), np.asarray(ys)
        ar_x, ar_y = draw(noisy_sines, keys["extra"], 8192, window)
        ar = fit_autoregressive(np.concatenate([np.asarray(ar_x[..., 0]), np.asarray(ar_y)[:, None]], 1),
                                config.ar_order)
        pred = np.asarray(jax.jit(predict)(params, xs))
        # One continuous stretch, predicted window by window (in time order).
        trace_x, trace_y = draw(noisy_sines, jax.random.fold_in(keys["extra"], 1), 1, 220)
        series = np.concatenate([np.asarray(trace_x[0, :, 0]), np.asarray(trace_y)])
        windows = np.stack([series[i:i + window] for i in range(series.size - window)])
        trace_model = np.asarray(jax.jit(predict)(params, jnp.asarray(windows[..., None], jnp.float32)))
        return {
            "test_mse": {
                "lstm": float(np.mean((pred - target) ** 2)),
                "persistence": float(np.mean((persistence_forecast(hist, 1)[:, 0] - target) ** 2)),
                f"ar{config.ar_order}": float(np.mean((autoregressive_forecast(ar, hist, 1)[:, 0] - target) ** 2)),
                "noise_floor": 0.2 ** 2,
            },
            "params": num_params(params),
            "trace": {"truth": series[window:].astype(np.float32), "lstm": trace_model.astype(np.float32),
                      "ar": autoregressive_forecast(ar, windows, 1)[:, 0].astype(np.float32),
                      "persistence": windows[:, -1].astype(np.float32)},
        }

    return Job(init, loss, adam(config, config.lstm_steps, config.lstm_learning_rate), batch_at, evaluate, predict)


GATES = ("input", "forget", "cell", "output")  # the fused layout's order: i, f, g, o


def teaching_lstm_params(fused: dict) -> dict:
    """The chapter's lab ``LSTMCell`` layout, one input matrix (no bias) and one hidden matrix
    with a bias per gate, holding the same numbers as the fused ``{"w_i", "w_h", "b"}``."""
    h = fused["w_h"].shape[0]
    return {gate: {"w_x": fused["w_i"][:, k * h:(k + 1) * h], "w_h": fused["w_h"][:, k * h:(k + 1) * h],
                   "b": fused["b"][k * h:(k + 1) * h]} for k, gate in enumerate(GATES)}


def teaching_lstm(params: dict, xs: jax.Array) -> jax.Array:
    """The LSTM written out gate by gate, as the chapter's lab does (the teaching version):

    ``f = sigma(x W_fx + h W_fh + b_f)``, ``i = sigma(..)``, ``g = tanh(..)``, ``o = sigma(..)``,
    ``c' = f c + i g``, ``h' = o tanh(c')``; a Python-level composition scanned over time with
    :func:`jax.lax.scan`. ``xs`` ``[b, t, d]`` -> ``[b, t, h]``.
    """
    def gate(name, x, h):
        p = params[name]
        return x @ p["w_x"] + h @ p["w_h"] + p["b"]

    def step(carry, x):
        h, c = carry
        f_t = jax.nn.sigmoid(gate("forget", x, h))
        i_t = jax.nn.sigmoid(gate("input", x, h))
        g_t = jnp.tanh(gate("cell", x, h))
        o_t = jax.nn.sigmoid(gate("output", x, h))
        c = f_t * c + i_t * g_t
        h = o_t * jnp.tanh(c)
        return (h, c), h

    hidden = params["forget"]["w_h"].shape[0]
    zeros = jnp.zeros((xs.shape[0], hidden), xs.dtype)
    _, hs = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(xs, 0, 1))
    return jnp.swapaxes(hs, 0, 1)


def _time(fn, args, repeats: int) -> list[float]:
    jax.block_until_ready(fn(*args))
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out.append(time.perf_counter() - t0)
    return out


def lstm_speed(config: Config) -> dict:
    """Forward and forward+backward wall time of ``seqjax.nn.LSTM`` and :func:`teaching_lstm` with
    the same weights (compile excluded, 3 rounds alternating the forms, medians), and the largest
    difference of their outputs and gradients."""
    sizes = [(32, 20, 1, 32)] + ([(64, 200, 16, 128)] if config.speed_large else [])
    out = {}
    for b, t, d, h in sizes:
        module = LSTM(d, h, rngs=nnx.Rngs(config.seed))
        graphdef, state = nnx.split(module)
        fused = module.pure_params()
        teach = teaching_lstm_params(fused)
        xs = jax.random.normal(jax.random.key(config.seed + 1), (b, t, d))

        def builtin(state, xs):
            return nnx.merge(graphdef, state)(xs)

        def builtin_loss(state, xs):
            return jnp.sum(builtin(state, xs) ** 2)

        def teaching_loss(p, xs):
            return jnp.sum(teaching_lstm(p, xs) ** 2)

        forms = {
            "builtin_forward": (jax.jit(builtin), (state, xs)),
            "components_forward": (jax.jit(teaching_lstm), (teach, xs)),
            "builtin_forward_backward": (jax.jit(jax.grad(builtin_loss)), (state, xs)),
            "components_forward_backward": (jax.jit(jax.grad(teaching_loss)), (teach, xs)),
        }
        times = {name: [] for name in forms}
        repeats = config.speed_repeats if t * h <= 1000 else max(3, config.speed_repeats // 6)
        for _ in range(3):
            for name, (fn, args) in forms.items():
                times[name] += _time(fn, args, repeats)
        g_builtin = forms["builtin_forward_backward"][0](state, xs)
        g_teach = teaching_lstm_params(nnx.to_pure_dict(g_builtin))
        g_comp = forms["components_forward_backward"][0](teach, xs)
        grad_diff = max(float(jnp.max(jnp.abs(a - c)) / jnp.max(jnp.abs(a)))
                        for a, c in zip(jax.tree.leaves(g_teach), jax.tree.leaves(g_comp)))
        medians = {name: float(np.median(v)) for name, v in times.items()}
        out[f"b{b}_t{t}_d{d}_h{h}"] = {
            "max_abs_output_difference": float(jnp.max(jnp.abs(builtin(state, xs) - teaching_lstm(teach, xs)))),
            "max_rel_gradient_difference": grad_diff,
            "median_s": medians,
            "components_over_builtin": {
                "forward": medians["components_forward"] / medians["builtin_forward"],
                "forward_backward": medians["components_forward_backward"] / medians["builtin_forward_backward"]},
        }
    return {"speed": out}


# --- 11.6.2: self-attention on the sentence ---------------------------------------------------


def attention_vocab() -> tuple[list[str], list[int]]:
    words = []
    for w in SENTENCE:
        if w.lower() not in words:
            words.append(w.lower())
    return words, [words.index(w.lower()) for w in SENTENCE]


def attention_sentence_job(variant: str, config: Config) -> Job:
    keys = keys_for(config, "attention_sentence")
    words, sentence = attention_vocab()
    v, d, heads, t = len(words), config.attention_d_model, config.attention_heads, len(SENTENCE)

    def init():
        k_e, k_a, k_p, k_n = jax.random.split(keys["init"], 4)
        return {"embed": jax.random.normal(k_e, (v, d)), "attn": multi_head_init(k_a, d, heads),
                "prev": linear_init(k_p, d, v), "next": linear_init(k_n, d, v)}

    def forward(params, tokens):
        x = params["embed"][tokens] + sinusoidal_table(tokens.shape[1], d)
        out, weights = self_attention(params["attn"], x, num_heads=heads, return_weights=True)
        return linear(params["prev"], out), linear(params["next"], out), weights

    def loss(params, tokens, key):
        prev, nxt, _ = forward(params, tokens)
        return cross_entropy(prev[:, 1:], tokens[:, :-1]) + cross_entropy(nxt[:, :-1], tokens[:, 1:])

    def batch_at(step):
        return jax.random.randint(jax.random.fold_in(keys["train"], step), (config.batch_size, t), 0, v)

    def scores(params):
        tokens = jax.random.randint(keys["test"], (config.eval_batch, t), 0, v)
        prev, nxt, w = jax.jit(forward)(params, tokens)
        w = np.asarray(w)  # [b, h, t, t]
        q = np.arange(t)
        per_head = {
            "previous": w[:, :, q[1:], q[1:] - 1].mean(axis=(0, 2)),
            "next": w[:, :, q[:-1], q[:-1] + 1].mean(axis=(0, 2)),
            "self": w[:, :, q, q].mean(axis=(0, 2)),
        }
        _, _, w_sentence = jax.jit(forward)(params, jnp.asarray([sentence]))
        return {
            "accuracy_previous": f(jnp.mean(jnp.argmax(prev[:, 1:], -1) == tokens[:, :-1])),
            "accuracy_next": f(jnp.mean(jnp.argmax(nxt[:, :-1], -1) == tokens[:, 1:])),
            "mass_per_head": {k: [float(x) for x in m] for k, m in per_head.items()},
            "sentence_weights": np.asarray(w_sentence[0], np.float32),
        }

    def evaluate(params):
        return {"untrained": scores(jax.jit(init)()), "trained": scores(params), "chance_accuracy": 1.0 / v,
                "uniform_mass": 1.0 / t, "vocab": words}

    return Job(init, loss, adam(config, config.attention_steps), batch_at, evaluate, forward)


# --- 11.6.3: encoder-only Transformer on random sines, masked and leaking -----------------------


def transformer_sine_job(variant: str, config: Config) -> Job:
    keys = keys_for(config, "transformer_sine")  # both variants: the same init and data
    d, length, context = config.transformer_d_model, config.transformer_length, config.transformer_context
    spec = TransformerSpec(num_heads=config.transformer_heads, norm_first=False, activation="relu")
    causal = variant == "causal"

    def init():
        k_in, k_stack, k_out = jax.random.split(keys["init"], 3)
        return {"w_in": jax.random.normal(k_in, (1, d)), "b_in": jnp.zeros((d,)),
                "stack": encoder_stack_init(k_stack, config.transformer_layers, d, config.transformer_heads,
                                            config.transformer_ff, final_norm=False),
                "out": linear_init(k_out, d, 1)}

    def forward(params, xs, seq_lengths=None):
        t = xs.shape[1]
        x = xs[..., None] @ params["w_in"] + params["b_in"] + sinusoidal_table(t, d)
        y = encoder_stack(spec, params["stack"], x, mask=causal_mask(t) if causal else None,
                          seq_lengths=seq_lengths)
        return linear(params["out"], y)[..., 0]

    def loss(params, batch, key):
        noisy = batch
        return mse(forward(params, noisy[:, :length]), noisy[:, 1:])

    def batch_at(step):
        return random_sines(jax.random.fold_in(keys["train"], step), config.batch_size, length + 1)[1]

    @jax.jit
    def generate(params, observed):
        """Autoregressive forecast of positions ``context .. length - 1`` from the first
        ``context`` values: each step sees only the values so far (keys beyond are padding)."""
        b = observed.shape[0]
        buf = jnp.zeros((b, length)).at[:, :context].set(observed[:, :context])

        def body(pos, buf):
            pred = forward(params, buf, seq_lengths=jnp.full((b,), pos))[:, pos - 1]
            return buf.at[:, pos].set(pred)

        buf = jax.lax.fori_loop(context, length, body, buf)
        return buf[:, context:]

    def evaluate(params):
        clean, noisy = draw(random_sines, keys["test"], config.eval_batch, length + 1)
        pred = np.asarray(jax.jit(forward)(params, noisy[:, :length]))
        clean, noisy = np.asarray(clean), np.asarray(noisy)
        forecast = np.asarray(generate(params, jnp.asarray(noisy)))
        truth = clean[:, context:length]
        return {
            "teacher_forced_per_position": np.mean((pred - noisy[:, 1:]) ** 2, axis=0).astype(np.float32),
            "teacher_forced_vs_clean_per_position": np.mean((pred - clean[:, 1:]) ** 2, axis=0).astype(np.float32),
            "forecast_per_horizon": np.mean((forecast - truth) ** 2, axis=0).astype(np.float32),
            "example": {"noisy": noisy[0].astype(np.float32), "clean": clean[0].astype(np.float32),
                        "teacher_forced": pred[0].astype(np.float32), "forecast": forecast[0].astype(np.float32)},
        }

    return Job(init, loss, adam(config, config.transformer_steps, 1e-3), batch_at, evaluate, forward)


def transformer_baselines(config: Config) -> dict:
    """Persistence and a least-squares AR on the same held-out sequences, teacher-forced and as a
    recursive forecast from the same ``context`` values."""
    keys = keys_for(config, "transformer_sine")
    length, context, p = config.transformer_length, config.transformer_context, config.transformer_ar_order
    clean, noisy = (np.asarray(a) for a in draw(random_sines, keys["test"], config.eval_batch, length + 1))
    ar = fit_autoregressive(np.asarray(draw(random_sines, keys["extra"], 4096, length + 1)[1]), p)
    # Teacher-forced one-step predictions for positions p-1 .. length-1 (AR needs p values).
    hist = np.stack([noisy[:, i - p + 1:i + 1] for i in range(p - 1, length)], axis=1)   # [b, n, p]
    ar_tf = autoregressive_forecast(ar, hist, 1)[..., 0]
    truth = clean[:, context:length]
    return {
        "persistence_teacher_forced_per_position": np.mean((noisy[:, :length] - noisy[:, 1:]) ** 2, 0).astype(np.float32),
        "ar_teacher_forced_per_position": np.concatenate(
            [np.full(p - 1, np.nan), np.mean((ar_tf - noisy[:, p:]) ** 2, 0)]).astype(np.float32),
        "persistence_forecast_per_horizon": np.mean(
            (persistence_forecast(noisy[:, :context], length - context) - truth) ** 2, 0).astype(np.float32),
        "ar_forecast_per_horizon": np.mean(
            (autoregressive_forecast(ar, noisy[:, :context], length - context) - truth) ** 2, 0).astype(np.float32),
        "ar_coefficients": ar.coef.astype(np.float32),
        "ar_forecast_example": autoregressive_forecast(ar, noisy[:1, :context], length - context)[0].astype(np.float32),
    }


# --- 11.6.4: LSTM -> self-attention -> multi-horizon head on the population ------------------


def neural_data(config: Config, train_stride: int | None = None) -> dict:
    """The population, split by trial (the first 80% of trials train); test windows every
    ``neural_stride`` samples, training windows every ``train_stride`` (default the same)."""
    keys = keys_for(config, "neural_forecast")
    activity = np.asarray(draw(oscillatory_population, keys["extra"], config.neural_trials, config.neural_time,
                               neurons=config.neural_neurons))
    n_train = int(round(0.8 * config.neural_trials))
    window = (config.neural_input, config.neural_horizon)
    x_train, y_train, _ = forecast_windows(activity[:n_train], *window, train_stride or config.neural_stride)
    x_test, y_test, _ = forecast_windows(activity[n_train:], *window, config.neural_stride)
    return {"activity": activity, "n_train": n_train, "x_train": x_train, "y_train": y_train,
            "x_test": x_test, "y_test": y_test}


def neural_forecast_job(variant: str, config: Config) -> Job:
    keys = keys_for(config, "neural_forecast")
    n, hidden, horizon, heads = config.neural_neurons, config.neural_hidden, config.neural_horizon, config.neural_heads
    cell = lstm()
    data = neural_data(config, config.neural_stride if variant == "chapter_windows" else config.neural_dense_stride)
    x_train, y_train = jnp.asarray(data["x_train"]), jnp.asarray(data["y_train"])

    def init():
        k_l, k_a, k_h = jax.random.split(keys["init"], 3)
        return {"lstm": cell.init(k_l, n, hidden), "attn": multi_head_init(k_a, hidden, heads),
                "head": linear_init(k_h, hidden, n * horizon)}

    def forward(params, xs):
        hs = rnn(cell, params["lstm"], xs)
        attended = self_attention(params["attn"], hs, num_heads=heads)
        return linear(params["head"], attended[:, -1]).reshape(xs.shape[0], horizon, n)

    def loss(params, batch, key):
        return mse(forward(params, batch[0]), batch[1])

    def batch_at(step):
        idx = jax.random.randint(jax.random.fold_in(keys["train"], step), (config.batch_size,), 0, x_train.shape[0])
        return x_train[idx], y_train[idx]

    def evaluate(params):
        pred = np.asarray(jax.jit(forward)(params, jnp.asarray(data["x_test"])))
        return {"model_per_horizon": np.mean((pred - data["y_test"]) ** 2, axis=(0, 2)).astype(np.float32),
                "example_prediction": pred[0].astype(np.float32), "train_windows": int(x_train.shape[0])}

    return Job(init, loss, adam(config, config.neural_steps, 1e-3), batch_at, evaluate)


def neural_baselines(config: Config) -> dict:
    data = neural_data(config)
    x_test, y_test, horizon = data["x_test"], data["y_test"], config.neural_horizon
    train_activity = data["activity"][:data["n_train"]]
    ar = fit_autoregressive(np.swapaxes(train_activity, 1, 2), config.neural_ar_order)  # every unit's series
    hist = np.swapaxes(x_test, 1, 2)                                                      # [w, n, t]
    per = lambda pred: np.mean((pred - y_test) ** 2, axis=(0, 2)).astype(np.float32)  # noqa: E731
    mean = train_activity.mean(axis=(0, 1))
    return {
        "persistence": per(np.swapaxes(persistence_forecast(hist, horizon), 1, 2)),
        "zero": per(np.zeros_like(y_test)),
        "train_mean": per(np.broadcast_to(mean, y_test.shape)),
        f"ar{config.neural_ar_order}": per(np.swapaxes(autoregressive_forecast(ar, hist, horizon), 1, 2)),
        "windows": {"train": int(data["x_train"].shape[0]), "test": int(x_test.shape[0])},
        "trials": {"train": data["n_train"], "test": config.neural_trials - data["n_train"]},
        "example": {"input": x_test[0].astype(np.float32), "target": y_test[0].astype(np.float32)},
    }


# --- the chapter's first example: Elman RNN, ends with [1, 2, 3] ------------------------------

PATTERN, VOCAB, PATTERN_LENGTH = (1, 2, 3), 5, 10


def elman_pattern_job(variant: str, config: Config) -> Job:
    keys, cell = keys_for(config, "elman_pattern"), elman("tanh")

    def init():
        k_c, k_o = jax.random.split(keys["init"])
        return {"cell": cell.init(k_c, VOCAB, config.elman_hidden), "out": linear_init(k_o, config.elman_hidden, 2)}

    def logits(params, tokens):
        return linear(params["out"], rnn(cell, params["cell"], jax.nn.one_hot(tokens, VOCAB))[:, -1])

    def loss(params, batch, key):
        return cross_entropy(logits(params, batch[0]), batch[1])

    def batch_at(step):
        return ends_with_pattern(jax.random.fold_in(keys["train"], step), config.batch_size, PATTERN_LENGTH,
                                 vocab_size=VOCAB, pattern=PATTERN)

    def evaluate(params):
        tokens, labels = ends_with_pattern(keys["test"], config.eval_batch, PATTERN_LENGTH, vocab_size=VOCAB,
                                           pattern=PATTERN)
        pred = jnp.argmax(jax.jit(logits)(params, tokens), -1)
        tokens, labels = np.asarray(tokens), np.asarray(labels)
        iid = np.asarray(jax.random.randint(keys["extra"], (100_000, PATTERN_LENGTH), 0, VOCAB))
        iid_positive = np.all(iid[:, -3:] == PATTERN, axis=1).mean()
        return {
            "accuracy": f(jnp.mean(pred == labels)),
            "majority": float(max(labels.mean(), 1 - labels.mean())),
            "rule_last_token_is_3": float(np.mean((tokens[:, -1] == 3) == labels)),
            "rule_last_two_are_2_3": float(np.mean(np.all(tokens[:, -2:] == (2, 3), axis=1) == labels)),
            "chapter_iid_positive_rate": float(iid_positive),
            "chapter_iid_majority_accuracy": float(1 - iid_positive),
        }

    return Job(init, loss, optax.adam(1e-2), batch_at, evaluate, logits, jit_batches=False)


# --- exercise 1: clipping an exploding RNN -----------------------------------------------------


def clipping_job(variant: str, config: Config) -> Job:
    keys = keys_for(config, "clipping")  # both runs: the same init and batches
    cell = elman("tanh", recurrent_scale=config.clip_radius)

    def init():
        k_c, k_o = jax.random.split(keys["init"])
        return {"cell": cell.init(k_c, 2, config.clip_hidden), "out": linear_init(k_o, config.clip_hidden, 1)}

    def predict(params, xs):
        return linear(params["out"], rnn(cell, params["cell"], xs)[:, -1])[:, 0]

    def loss(params, batch, key):
        return mse(predict(params, batch[0]), batch[1])

    def batch_at(step):
        return adding_problem(jax.random.fold_in(keys["train"], step), config.batch_size, config.clip_length)

    sgd = optax.sgd(config.clip_learning_rate)
    optimizer = optax.chain(clip_by_global_norm(config.clip_norm), sgd) if variant == "clipped" else sgd

    def evaluate(params):
        xs, ys = draw(adding_problem, keys["test"], config.eval_batch, config.clip_length)
        return {"test_mse": f(mse(jax.jit(predict)(params, xs), ys)), "baseline_mse": adding_baseline_mse()}

    return Job(init, loss, optimizer, batch_at, evaluate)


# --- exercise 2: bidirectional vs unidirectional ---------------------------------------------


def gru_count(d: int, h: int, out: int, directions: int, head: int) -> int:
    """Parameters of a (bi)directional reset-after GRU with ``d`` inputs and a one-hidden-layer
    (``head`` tanh units) readout."""
    return directions * (3 * h * (d + h) + 3 * h + h) + (directions * h + 1) * head + (head + 1) * out


def unidirectional_hidden(config: Config) -> int:
    v, head = config.bidir_vocab, config.bidir_head
    target = gru_count(v, config.bidir_hidden, 2, 2, head)
    return min(range(1, 8 * config.bidir_hidden), key=lambda h: abs(gru_count(v, h, 2, 1, head) - target))


def bidirectional_job(variant: str, config: Config) -> Job:
    keys, cell, v = keys_for(config, "bidirectional"), gru(), config.bidir_vocab
    bi = variant == "bidirectional"
    h = config.bidir_hidden if bi else unidirectional_hidden(config)

    def init():
        k_f, k_b, k_m, k_o = jax.random.split(keys["init"], 4)
        body = {"forward": cell.init(k_f, v, h), "backward": cell.init(k_b, v, h)} if bi else cell.init(k_f, v, h)
        return {"rnn": body, "mlp": linear_init(k_m, (2 if bi else 1) * h, config.bidir_head),
                "out": linear_init(k_o, config.bidir_head, 2)}

    def logits(params, tokens):
        xs = jax.nn.one_hot(tokens, v)
        hs = bidirectional(cell, params["rnn"], xs) if bi else rnn(cell, params["rnn"], xs)
        # A hidden layer per step: the comparison of the two directions' tokens is not linear in them.
        return linear(params["out"], jnp.tanh(linear(params["mlp"], hs)))

    def loss(params, batch, key):
        tokens, tags, mask = batch
        return cross_entropy(logits(params, tokens), tags, mask=mask)

    def batch_at(step):
        return neighbour_comparison_tagging(jax.random.fold_in(keys["train"], step), config.batch_size,
                                     config.bidir_length, vocab_size=v)

    def evaluate(params):
        tokens, tags, mask = draw(neighbour_comparison_tagging, keys["test"], config.eval_batch, config.bidir_length, vocab_size=v)
        correct = jnp.argmax(jax.jit(logits)(params, tokens), -1) == tags
        return {"accuracy": f(jnp.sum(correct & mask) / jnp.sum(mask)), "hidden": h, "params": num_params(params),
                "majority": f(jnp.sum((tags == 0) & mask) / jnp.sum(mask))}

    return Job(init, loss, adam(config, config.bidir_steps), batch_at, evaluate, logits)


# --- exercise 3: GRU gates -------------------------------------------------------------------


def gru_gates_over_time(params: dict, xs: jax.Array) -> dict:
    """Reset gate ``r``, update gate ``z`` and state ``h`` ``[t, h]`` of the reset-after GRU
    (:func:`seqjax.cells.gru`) on one sequence ``xs`` ``[t, d]``, from the documented equations::

        r = sigmoid(x W_ir + h W_hr + b_r),  z = sigmoid(x W_iz + h W_hz + b_z)
        n = tanh(x W_in + b_in + r * (h W_hn + b_hn)),  h' = (1 - z) n + z h

    (``z`` near 1 keeps the old state) and, alongside, the cell's own step (``cell_h``) so that
    the two can be checked equal."""
    step = gru().step

    def body(h, x):
        x_r, x_z, x_n = jnp.split(x @ params["w_i"] + params["b"], 3)
        h_r, h_z, h_n = jnp.split(h @ params["w_h"], 3)
        r = jax.nn.sigmoid(x_r + h_r)
        z = jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * (h_n + params["b_hn"]))
        new = (1 - z) * n + z * h
        return new, {"r": r, "z": z, "h": new, "cell_h": step(params, h, x)[0]}

    _, out = jax.lax.scan(body, jnp.zeros(params["w_h"].shape[0]), xs)
    return out


def gru_gates_job(variant: str, config: Config) -> Job:
    keys, cell = keys_for(config, "gru_gates"), gru()

    def init():
        k_c, k_o = jax.random.split(keys["init"])
        return {"cell": cell.init(k_c, 2, config.gru_hidden), "out": linear_init(k_o, config.gru_hidden, 1)}

    def predict(params, xs):
        return linear(params["out"], rnn(cell, params["cell"], xs)[:, -1])[:, 0]

    def loss(params, batch, key):
        return mse(predict(params, batch[0]), batch[1])

    def batch_at(step):
        return adding_problem(jax.random.fold_in(keys["train"], step), config.batch_size, config.gru_length)

    def evaluate(params):
        xs, ys = draw(adding_problem, keys["test"], config.eval_batch, config.gru_length)
        gates = jax.jit(jax.vmap(gru_gates_over_time, (None, 0)))(params["cell"], xs[:256])
        marked = np.asarray(xs[:256, :, 1]) > 0.5
        z, r = np.asarray(gates["z"]).mean(-1), np.asarray(gates["r"]).mean(-1)  # [b, t], mean over units
        d, h = 2, config.gru_hidden
        return {
            "test_mse": f(mse(jax.jit(predict)(params, xs), ys)), "baseline_mse": adding_baseline_mse(),
            "update_gate_marked": float(z[marked].mean()), "update_gate_unmarked": float(z[~marked].mean()),
            "reset_gate_marked": float(r[marked].mean()), "reset_gate_unmarked": float(r[~marked].mean()),
            "max_abs_difference_to_cell": float(jnp.max(jnp.abs(gates["h"] - gates["cell_h"]))),
            "params_cell": {"gru": num_params(params["cell"]), "lstm": 4 * h * (d + h) + 4 * h,
                            "elman": h * (d + h) + h},
            "example": {"x": np.asarray(xs[0]), "z": np.asarray(gates["z"][0]).T, "r": np.asarray(gates["r"][0]).T},
        }

    return Job(init, loss, adam(config, config.gru_steps), batch_at, evaluate)


# --- exercise 4: attention preview -------------------------------------------------------------

SCORES = {"dot": dot, "general": general, "additive": additive}


def preview_similarity(config: Config) -> dict:
    """The notebook's preview: 5 word vectors ``E`` ``[5, 4]``, similarity ``E E^T``, softmax per
    row (the dot score of :mod:`seqjax.attention`), and the same with the ``1 / sqrt(d)`` scale."""
    e = jax.random.normal(keys_for(config, "attention_preview")["extra"], (len(PREVIEW_WORDS), 4))
    out = {"similarity": np.asarray(e @ e.T, np.float32)}
    for name, score in (("dot", dot()), ("scaled_dot", scaled_dot())):
        _, w = attend_sequence(score, {}, e[None], e[None], e[None])
        w = np.asarray(w[0], np.float32)
        out[name] = {"weights": w, "diagonal": np.diag(w).astype(np.float32),
                     "argmax_on_diagonal": float(np.mean(np.argmax(w, -1) == np.arange(len(w)))),
                     "row_sums_max_error": float(np.max(np.abs(w.sum(-1) - 1)))}
    return out


def preview_job(variant: str, config: Config) -> Job:
    keys = keys_for(config, "attention_preview")
    s, d = config.preview_keys, config.preview_features
    score = SCORES[variant.replace("_no_bias", "")]()
    rotation = jnp.linalg.qr(jax.random.normal(jax.random.fold_in(keys["extra"], 1), (d, d)))[0]

    def examples(key, b):
        k_keys, k_target, k_noise = jax.random.split(key, 3)
        ks = jax.random.normal(k_keys, (b, s, d))
        target = jax.random.randint(k_target, (b,), 0, s)
        q = ks[jnp.arange(b), target] @ rotation + config.preview_noise * jax.random.normal(k_noise, (b, d))
        return q, ks, target

    def init():
        if variant.startswith("additive"):  # without a bias, tanh has no bilinear term at second order
            return score.init(keys["init"], d, d, attention_features=config.preview_attention_features,
                              bias=variant == "additive")
        return score.init(keys["init"], d, d) if variant != "dot" else {}

    def logits(params, q, ks):
        return jax.vmap(lambda qq, kk: score(params, qq, kk))(q, ks)

    def loss(params, batch, key):
        q, ks, target = batch
        return cross_entropy(logits(params, q, ks), target)

    def batch_at(step):
        return examples(jax.random.fold_in(keys["train"], step), config.batch_size)

    def evaluate(params):
        q, ks, target = jax.jit(examples, static_argnums=1)(keys["test"], config.eval_batch)
        _, w = attend_sequence(score, params, q[:, None], ks, ks)
        w = np.asarray(w[:, 0])
        target = np.asarray(target)
        # One alignment matrix: queries are rotated, noisy copies of the keys in a shuffled order.
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(keys["extra"], 2), s))
        ks1 = ks[:1]
        q1 = ks1[0, perm] @ rotation + config.preview_noise * jax.random.normal(jax.random.fold_in(keys["extra"], 3), (s, d))
        _, w1 = attend_sequence(score, params, q1[None], ks1, ks1)
        out = {"accuracy": float(np.mean(np.argmax(w, -1) == target)),
               "weight_on_target": float(np.mean(w[np.arange(len(w)), target])),
               "chance": 1.0 / s, "params": num_params(params),
               "alignment": np.asarray(w1[0], np.float32), "permutation": perm}
        if variant == "dot":
            out["similarity_preview"] = preview_similarity(config)
        return out

    return Job(init, loss, adam(config, config.preview_steps, 1e-2), batch_at, evaluate)


# --- the sweep ---------------------------------------------------------------------------------

JOBS = {"lstm_sine": lstm_sine_job, "attention_sentence": attention_sentence_job,
        "transformer_sine": transformer_sine_job, "neural_forecast": neural_forecast_job,
        "elman_pattern": elman_pattern_job, "clipping": clipping_job, "bidirectional": bidirectional_job,
        "gru_gates": gru_gates_job, "attention_preview": preview_job}


def plan(config: Config) -> list[tuple[str, str, int]]:
    """The sweep: ``(exercise, variant, steps)`` in order; 0 steps = evaluation only."""
    variants = {
        "lstm_sine": [("model", config.lstm_steps), ("speed", 0)],
        "attention_sentence": [("model", config.attention_steps)],
        "transformer_sine": [("causal", config.transformer_steps), ("leaky", config.transformer_steps)],
        "neural_forecast": [("chapter_windows", config.neural_steps), ("dense_windows", config.neural_steps)],
        "elman_pattern": [("model", config.elman_steps)],
        "clipping": [("clipped", config.clip_steps), ("unclipped", config.clip_steps)],
        "bidirectional": [("bidirectional", config.bidir_steps), ("unidirectional", config.bidir_steps)],
        "gru_gates": [("model", config.gru_steps)],
        "attention_preview": [("dot", 0), ("general", config.preview_steps), ("additive", config.preview_steps),
                              ("additive_no_bias", config.preview_steps)],
    }
    return [(ex, variant, steps) for ex in config.exercise for variant, steps in variants[ex]]


def train_one(index: int, units, config: Config, run_dir: RunDir, bar, ckpt: RunCheckpoints, sweep: dict) -> None:
    exercise, variant, steps = units[index]
    job = JOBS[exercise](variant, config)
    init = jax.jit(job.init)()           # one compilation each, not one per eager operation
    batch_at = jax.jit(job.batch_at) if job.jit_batches else job.batch_at
    step_fn = make_train_step(job.loss, job.optimizer)
    offset = sum(u[2] for u in units[:index])
    current, state = ckpt.sweep_run(
        sweep, index, {"params": init, "opt_state": job.optimizer.init(init)},
        lambda: {"run": index, "step": 0, "losses": [], "grad_norms": [], "wall_s": 0.0})
    params, opt_state = state["params"], state["opt_state"]
    started, wall_before = time.perf_counter(), current["wall_s"]
    for k in range(current["step"], steps):
        params, opt_state, metrics = step_fn(params, opt_state, batch_at(k))
        loss, grad_norm = float(metrics["loss"]), float(metrics["grad_norm"])
        current["losses"].append(loss)
        current["grad_norms"].append(grad_norm)
        current["step"] = k + 1
        run_dir.log(exercise=exercise, variant=variant, step=k + 1, loss=loss, grad_norm=grad_norm)
        bar.update(1)
        if ckpt.due(offset + k + 1) or k + 1 == steps:
            current["wall_s"] = wall_before + time.perf_counter() - started
            ckpt.save(offset + k + 1, {"params": params, "opt_state": opt_state}, sweep, force=True)
    train_s = wall_before + time.perf_counter() - started
    bar.set_postfix_str(f"{exercise} {variant}: evaluating")
    t0 = time.perf_counter()
    result = job.evaluate(params)
    result["losses"] = np.asarray(current["losses"], np.float32)
    result["grad_norms"] = np.asarray(current["grad_norms"], np.float32)
    sweep["finished"].append({"exercise": exercise, "variant": variant, "result": result,
                              "timings": {"train_s": round(train_s, 2), "eval_s": round(time.perf_counter() - t0, 2)}})
    sweep["current"] = None


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    units = plan(config)
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        done = sum(u[2] for u in units[:len(sweep["finished"])]) + (sweep["current"] or {"step": 0})["step"]
        bar = progress(desc="code_lab", total=sum(u[2] for u in units), initial=done)
        for index in range(len(sweep["finished"]), len(units)):
            train_one(index, units, config, run_dir, bar, ckpt, sweep)
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions
    results: dict[str, dict] = {}
    unit_timings: dict[str, dict] = {}
    for finished in sweep["finished"]:
        results.setdefault(finished["exercise"], {})[finished["variant"]] = finished["result"]
        unit_timings.setdefault(finished["exercise"], {})[finished["variant"]] = finished["timings"]
    exercises, timings = {}, {"runtime_s": round(runtime_s, 1), "sessions": sessions, "runs": unit_timings}
    for exercise in config.exercise:
        metrics, extra_timings, fig = SUMMARIES[exercise](results[exercise], config)
        exercises[exercise] = metrics
        if extra_timings:
            timings[exercise] = extra_timings
        run_dir.save_figure(fig, exercise)
    return {"exercises": exercises, "table": table_rows(exercises), "environment": environment(),
            "timings": timings}


# --- summaries and figures ---------------------------------------------------------------------


def _curve(ax, losses, label, **kw):
    losses = np.asarray(losses, np.float64)
    steps = np.arange(1, losses.size + 1)
    window = max(1, losses.size // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.plot(steps[window - 1:], smooth, label=label, **kw)


def summarise_lstm_sine(res: dict, config: Config):
    model, speed = res["model"], res["speed"]["speed"]
    metrics = {"test_mse": model["test_mse"], "params": model["params"],
               "final_train_loss": float(np.mean(model["losses"][-max(1, len(model["losses"]) // 20):])),
               "equality": {k: {"max_abs_output_difference": v["max_abs_output_difference"],
                                "max_rel_gradient_difference": v["max_rel_gradient_difference"]}
                            for k, v in speed.items()}}
    timings = {"speed_loaded_machine": {k: {"median_s": v["median_s"], "components_over_builtin": v["components_over_builtin"]}
                                        for k, v in speed.items()}}
    fig = Figure(figsize=(15, 4), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=(1, 2.2, 1))
    _curve(ax1, model["losses"], "LSTM (train)")
    for name, style in (("persistence", "r--"), (f"ar{config.ar_order}", "g--"), ("noise_floor", "k:")):
        ax1.axhline(model["test_mse"][name], ls=style[1:], color=style[0], label=f"{name} (test)")
    ax1.axhline(model["test_mse"]["lstm"], color="tab:blue", ls="-.", label="LSTM (test)")
    ax1.set(yscale="log", xlabel="step", ylabel="MSE", title="next-step MSE")
    ax1.legend(fontsize=7)
    tr = model["trace"]
    ax2.plot(tr["truth"], "k.", ms=3, label="observed next value")
    ax2.plot(tr["lstm"], "-", color="tab:blue", label="LSTM")
    ax2.plot(tr["ar"], "-", color="tab:green", alpha=0.7, label=f"AR({config.ar_order})")
    ax2.plot(tr["persistence"], "-", color="tab:red", alpha=0.4, label="persistence")
    ax2.set(xlabel="time step (one held-out stretch, in order)", title="one-step forecasts")
    ax2.legend(fontsize=7, ncol=4)
    names = list(speed)
    xs = np.arange(len(names))
    for j, (kind, label) in enumerate((("forward", "forward"), ("forward_backward", "forward+backward"))):
        ax3.bar(xs + 0.4 * j, [speed[n]["components_over_builtin"][kind] for n in names], 0.4, label=label)
    ax3.axhline(1, color="k", lw=0.8)
    ax3.set_xticks(xs + 0.2, [n.replace("_", " ") for n in names], fontsize=7)
    ax3.set(ylabel="time, from components / seqjax.nn.LSTM", title="speed (loaded machine)")
    ax3.legend(fontsize=7)
    fig.suptitle(TITLES["lstm_sine"])
    return metrics, timings, fig


def summarise_attention_sentence(res: dict, config: Config):
    r = res["model"]
    metrics = {k: {kk: vv for kk, vv in r[k].items() if kk != "sentence_weights"} for k in ("untrained", "trained")}
    for k in ("untrained", "trained"):
        m = r[k]["mass_per_head"]
        metrics[k]["best_head_previous_mass"] = max(m["previous"])
        metrics[k]["best_head_next_mass"] = max(m["next"])
    metrics |= {"chance_accuracy": r["chance_accuracy"], "uniform_mass": r["uniform_mass"], "vocab": r["vocab"],
                "final_train_loss": float(np.mean(r["losses"][-max(1, len(r["losses"]) // 20):]))}
    heads = config.attention_heads
    fig = Figure(figsize=(3.3 * heads, 6.6), layout="constrained")
    axes = fig.subplots(2, heads, squeeze=False)
    for row, k in enumerate(("untrained", "trained")):
        w = np.asarray(r[k]["sentence_weights"])
        for h in range(heads):
            ax = axes[row, h]
            ax.imshow(w[h], cmap="viridis", vmin=0, vmax=1)
            ax.set_xticks(range(len(SENTENCE)), SENTENCE, rotation=90, fontsize=7)
            ax.set_yticks(range(len(SENTENCE)), SENTENCE, fontsize=7)
            m = r[k]["mass_per_head"]
            ax.set_title(f"{k}, head {h}: prev {m['previous'][h]:.2f}, next {m['next'][h]:.2f}", fontsize=8)
    fig.suptitle(TITLES["attention_sentence"] + " (rows: queries, columns: keys; mass on i-1 / i+1 over "
                 "held-out sequences)", fontsize=10)
    return metrics, None, fig


def summarise_transformer_sine(res: dict, config: Config):
    base = transformer_baselines(config)
    p = config.transformer_ar_order
    metrics: dict[str, Any] = {"teacher_forced_mse_all_positions": {}, f"teacher_forced_mse_positions_{p - 1}_on": {},
                               "teacher_forced_mse_last_position": {}, "teacher_forced_mse_vs_clean": {},
                               "forecast_mse_mean": {}, "forecast_mse_per_horizon": {}}
    contenders = {v: (np.asarray(res[v]["teacher_forced_per_position"]), np.asarray(res[v]["forecast_per_horizon"]))
                  for v in ("causal", "leaky")}
    contenders["persistence"] = (np.asarray(base["persistence_teacher_forced_per_position"]),
                                 np.asarray(base["persistence_forecast_per_horizon"]))
    contenders[f"ar{p}"] = (np.asarray(base["ar_teacher_forced_per_position"]), np.asarray(base["ar_forecast_per_horizon"]))
    for name, (tf, fc) in contenders.items():
        if not name.startswith("ar"):
            metrics["teacher_forced_mse_all_positions"][name] = float(tf.mean())
        metrics[f"teacher_forced_mse_positions_{p - 1}_on"][name] = float(tf[p - 1:].mean())
        metrics["teacher_forced_mse_last_position"][name] = float(tf[-1])
        metrics["forecast_mse_mean"][name] = float(fc.mean())
        metrics["forecast_mse_per_horizon"][name] = [float(x) for x in fc]
    for v in ("causal", "leaky"):
        metrics["teacher_forced_mse_vs_clean"][v] = float(np.mean(res[v]["teacher_forced_vs_clean_per_position"]))
    metrics["noise_variance"] = 0.05 ** 2
    metrics["forecast_context"], metrics["forecast_horizon"] = config.transformer_context, config.transformer_length - config.transformer_context
    fig = Figure(figsize=(16, 4), layout="constrained")
    ax1, ax2, ax3, ax4 = fig.subplots(1, 4)
    colors = {"causal": "tab:blue", "leaky": "tab:red", "persistence": "tab:gray", f"ar{p}": "tab:green"}
    for v in ("causal", "leaky"):
        _curve(ax1, res[v]["losses"], f"{v} (train)", color=colors[v])
    ax1.set(yscale="log", xlabel="step", ylabel="teacher-forced MSE", title="training loss")
    ax1.legend(fontsize=7)
    for name, (tf, _) in contenders.items():
        ax2.plot(np.arange(1, tf.size + 1), tf, "o-", ms=2.5, color=colors[name], label=name)
    ax2.set(yscale="log", xlabel="position (predicting the next value)", ylabel="held-out MSE",
            title="teacher-forced, held-out")
    ax2.legend(fontsize=7)
    for name, (_, fc) in contenders.items():
        ax3.plot(np.arange(1, fc.size + 1), fc, "o-", ms=2.5, color=colors[name], label=name)
    ax3.set(yscale="log", xlabel="forecast horizon", ylabel="MSE vs clean future",
            title=f"autoregressive forecast from {config.transformer_context} values")
    ax3.legend(fontsize=7)
    ex = res["causal"]["example"]
    c, length = config.transformer_context, config.transformer_length
    ax4.plot(np.asarray(ex["noisy"]), "k.", ms=3, label="observed")
    ax4.plot(np.asarray(ex["clean"]), "k-", lw=0.8, alpha=0.5, label="clean")
    for v in ("causal", "leaky"):
        ax4.plot(np.arange(c, length), np.asarray(res[v]["example"]["forecast"]), "-", color=colors[v], label=f"{v} forecast")
    ax4.plot(np.arange(c, length), np.asarray(base["ar_forecast_example"]), "--", color=colors[f"ar{p}"], label=f"AR({p})")
    ax4.axvline(c - 0.5, color="k", lw=0.6, ls=":")
    ax4.set(xlabel="position", title="one held-out sequence")
    ax4.legend(fontsize=7)
    fig.suptitle(TITLES["transformer_sine"] + ": causal mask passed vs not (the chapter's leak)")
    return metrics, None, fig


def summarise_neural_forecast(res: dict, config: Config):
    base = neural_baselines(config)
    names = {"chapter_windows": np.asarray(res["chapter_windows"]["model_per_horizon"]),
             "dense_windows": np.asarray(res["dense_windows"]["model_per_horizon"]),
             "persistence": base["persistence"], "zero": base["zero"], "train_mean": base["train_mean"],
             f"ar{config.neural_ar_order}": base[f"ar{config.neural_ar_order}"]}
    metrics = {"mse_per_horizon": {k: [float(x) for x in v] for k, v in names.items()},
               "mse_mean": {k: float(np.mean(v)) for k, v in names.items()},
               "windows": {"test": base["windows"]["test"],
                           **{f"train_{v}": res[v]["train_windows"] for v in ("chapter_windows", "dense_windows")}},
               "trials": base["trials"], "noise_variance": 0.2 ** 2,
               "final_train_loss": {v: float(np.mean(res[v]["losses"][-max(1, len(res[v]["losses"]) // 20):]))
                                    for v in ("chapter_windows", "dense_windows")}}
    fig = Figure(figsize=(16, 4.2), layout="constrained")
    ax1, ax2, ax3, ax4 = fig.subplots(1, 4)
    h = np.arange(1, config.neural_horizon + 1)
    for k, v in names.items():
        ax1.plot(h, v, "o-", ms=3, label=k)
    ax1.axhline(0.04, color="k", ls=":", lw=0.8, label="noise floor")
    ax1.set(xlabel="horizon step", ylabel="held-out MSE (test trials)", yscale="log", title="MSE per horizon")
    ax1.legend(fontsize=7)
    for v in ("chapter_windows", "dense_windows"):
        _curve(ax2, res[v]["losses"], f"{v} ({res[v]['train_windows']} windows), train")
        ax2.axhline(float(np.mean(res[v]["model_per_horizon"])), ls="--", lw=0.8, color=ax2.lines[-1].get_color(),
                    label=f"{v}, test")
    ax2.set(yscale="log", xlabel="step", ylabel="MSE", title="training loss vs test")
    ax2.legend(fontsize=7)
    x_in, target = base["example"]["input"], base["example"]["target"]
    pred = np.asarray(res["dense_windows"]["example_prediction"])
    t_in = np.arange(x_in.shape[0])
    t_out = np.arange(x_in.shape[0], x_in.shape[0] + target.shape[0])
    ax3.plot(t_in, x_in[:, 0], "k-", lw=1, label="input (unit 0)")
    ax3.plot(t_out, target[:, 0], "k.", label="true future")
    ax3.plot(t_out, pred[:, 0], "o-", ms=3, color="tab:blue", label="predicted (dense_windows)")
    ax3.set(xlabel="time step", title="one test window, unit 0")
    ax3.legend(fontsize=7)
    full = np.concatenate([x_in, target])
    ax4.imshow(np.abs(np.concatenate([x_in, pred]) - full).T, aspect="auto", cmap="YlOrRd")
    ax4.axvline(x_in.shape[0] - 0.5, color="r", ls="--")
    ax4.set(xlabel="time step", ylabel="unit", title="|prediction - truth| (0 on the input)")
    fig.suptitle(TITLES["neural_forecast"] + f" (split by trial: {base['trials']['train']} / {base['trials']['test']})")
    return metrics, None, fig


def summarise_elman_pattern(res: dict, config: Config):
    r = res["model"]
    metrics = {k: v for k, v in r.items() if k not in ("losses", "grad_norms")}
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    _curve(ax1, r["losses"], "train cross-entropy")
    ax1.axhline(math.log(2), color="k", ls=":", label="chance (ln 2)")
    ax1.set(xlabel="step", ylabel="cross-entropy", title="training")
    ax1.legend(fontsize=7)
    names = ["accuracy", "majority", "rule_last_token_is_3", "rule_last_two_are_2_3"]
    ax2.bar(range(len(names)), [r[n] for n in names], color=["tab:blue", "tab:gray", "tab:olive", "tab:olive"])
    ax2.set_xticks(range(len(names)), ["Elman RNN", "majority", "last = 3", "last two = 2, 3"], fontsize=8)
    ax2.set(ylim=(0, 1.05), ylabel="held-out accuracy (balanced)", title="accuracy vs baselines")
    fig.suptitle(TITLES["elman_pattern"])
    return metrics, None, fig


def summarise_clipping(res: dict, config: Config):
    metrics = {}
    for v in ("clipped", "unclipped"):
        r = res[v]
        losses, norms = np.asarray(r["losses"], np.float64), np.asarray(r["grad_norms"], np.float64)
        finite = np.isfinite(losses)
        metrics[v] = {"test_mse": r["test_mse"], "max_grad_norm": float(np.nanmax(norms)),
                      "median_grad_norm": float(np.nanmedian(norms)),
                      "steps_grad_norm_over_10x_threshold": int(np.sum(norms > 10 * config.clip_norm)),
                      "non_finite_steps": int(np.sum(~finite)),
                      "max_train_loss": float(np.nanmax(losses)) if finite.any() else float("nan"),
                      "final_train_loss": float(np.mean(losses[-max(1, losses.size // 10):]))}
    metrics["baseline_mse"] = adding_baseline_mse()
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for v, color in (("unclipped", "tab:red"), ("clipped", "tab:blue")):
        steps = np.arange(1, len(res[v]["losses"]) + 1)
        ax1.plot(steps, res[v]["losses"], color=color, lw=0.8, label=v)
        ax2.plot(steps, res[v]["grad_norms"], color=color, lw=0.8, label=f"{v} (before clipping)")
    ax1.axhline(adding_baseline_mse(), color="k", ls=":", label="mean predictor (1/6)")
    ax1.set(yscale="log", xlabel="SGD step", ylabel="train MSE", title="loss")
    ax2.axhline(config.clip_norm, color="k", ls=":", label="threshold")
    ax2.set(yscale="log", xlabel="SGD step", ylabel="global gradient norm", title="gradient norm")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.suptitle(TITLES["clipping"] + f" (Elman, recurrent radius {config.clip_radius}, adding T = {config.clip_length})")
    return metrics, None, fig


def summarise_bidirectional(res: dict, config: Config):
    metrics = {v: {"accuracy": res[v]["accuracy"], "hidden": res[v]["hidden"], "params": res[v]["params"]}
               for v in ("bidirectional", "unidirectional")}
    metrics["majority"] = res["bidirectional"]["majority"]
    metrics["left_to_right_ceiling"] = left_to_right_ceiling(config.bidir_vocab)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for v, color in (("bidirectional", "tab:blue"), ("unidirectional", "tab:red")):
        _curve(ax1, res[v]["losses"], f"{v} ({res[v]['params']} params)", color=color)
    ax1.axhline(math.log(2), color="k", ls=":", label="chance (ln 2)")
    ax1.set(xlabel="step", ylabel="cross-entropy", title="training")
    ax1.legend(fontsize=7)
    ax2.bar([0, 1], [res["bidirectional"]["accuracy"], res["unidirectional"]["accuracy"]], color=["tab:blue", "tab:red"])
    ax2.axhline(metrics["majority"], color="k", ls=":", label="majority class")
    ax2.axhline(metrics["left_to_right_ceiling"], color="tab:red", ls="--", label="best left-to-right")
    ax2.set_xticks([0, 1], ["bidirectional GRU", "unidirectional GRU"])
    ax2.set(ylim=(0, 1.05), ylabel="held-out tag accuracy", title="tag_t = [x_{t+1} > x_{t-1}]")
    ax2.legend(fontsize=7)
    fig.suptitle(TITLES["bidirectional"])
    return metrics, None, fig


def summarise_gru_gates(res: dict, config: Config):
    r = res["model"]
    metrics = {k: v for k, v in r.items() if k not in ("losses", "grad_norms", "example")}
    ex = r["example"]
    fig = Figure(figsize=(13, 5.5), layout="constrained")
    axes = fig.subplots(3, 1, height_ratios=(1, 2, 2), sharex=True)
    x = np.asarray(ex["x"])
    axes[0].bar(np.arange(x.shape[0]), x[:, 0], color=np.where(x[:, 1] > 0.5, "tab:red", "tab:gray"))
    axes[0].set(ylabel="value", title="input (red: the two marked steps)")
    for ax, name in ((axes[1], "z"), (axes[2], "r")):
        im = ax.imshow(np.asarray(ex[name]), aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set(ylabel="unit", title="update gate z (z near 1 keeps the state)" if name == "z"
               else "reset gate r (how much of h enters the candidate)")
        fig.colorbar(im, ax=ax)
    axes[2].set_xlabel("time step")
    fig.suptitle(TITLES["gru_gates"] + f": mean z at marked steps {r['update_gate_marked']:.2f}, elsewhere "
                 f"{r['update_gate_unmarked']:.2f}; test MSE {r['test_mse']:.4f} (baseline 1/6)")
    return metrics, None, fig


def summarise_attention_preview(res: dict, config: Config):
    sim = res["dot"]["similarity_preview"]
    metrics = {"similarity_preview": {k: {"diagonal": [float(x) for x in sim[k]["diagonal"]],
                                          "argmax_on_diagonal": sim[k]["argmax_on_diagonal"],
                                          "row_sums_max_error": sim[k]["row_sums_max_error"]}
                                      for k in ("dot", "scaled_dot")}}
    metrics["alignment"] = {v: {"accuracy": res[v]["accuracy"], "weight_on_target": res[v]["weight_on_target"],
                                "params": res[v]["params"]} for v in ("dot", "general", "additive", "additive_no_bias")}
    metrics["chance"] = 1.0 / config.preview_keys
    fig = Figure(figsize=(20, 3.8), layout="constrained")
    axes = fig.subplots(1, 6)
    axes[0].imshow(sim["dot"]["weights"], cmap="viridis", vmin=0, vmax=1)
    axes[0].set_xticks(range(5), PREVIEW_WORDS)
    axes[0].set_yticks(range(5), PREVIEW_WORDS)
    axes[0].set_title("softmax(E E^T): diagonal dominance", fontsize=9)
    for ax, v in zip(axes[1:5], ("dot", "general", "additive", "additive_no_bias")):
        ax.imshow(res[v]["alignment"], cmap="viridis", vmin=0, vmax=1)
        perm = np.asarray(res[v]["permutation"])
        ax.plot(perm, np.arange(perm.size), "rx", ms=6)
        ax.set_title(f"{v}: acc {res[v]['accuracy']:.2f} (x = right key)", fontsize=9)
        ax.set(xlabel="key", ylabel="query")
    for v, color in (("general", "tab:green"), ("additive", "tab:purple"), ("additive_no_bias", "tab:olive")):
        _curve(axes[5], res[v]["losses"], v, color=color)
    axes[5].axhline(math.log(config.preview_keys), color="k", ls=":", label="uniform")
    axes[5].set(xlabel="step", ylabel="cross-entropy", title="training")
    axes[5].legend(fontsize=7)
    fig.suptitle(TITLES["attention_preview"] + ": queries are rotated, noisy keys")
    return metrics, None, fig


SUMMARIES = {"lstm_sine": summarise_lstm_sine, "attention_sentence": summarise_attention_sentence,
             "transformer_sine": summarise_transformer_sine, "neural_forecast": summarise_neural_forecast,
             "elman_pattern": summarise_elman_pattern, "clipping": summarise_clipping,
             "bidirectional": summarise_bidirectional, "gru_gates": summarise_gru_gates,
             "attention_preview": summarise_attention_preview}


def table_rows(ex: dict) -> list[dict]:
    """One row per exercise: the held-out metric of the model and of each baseline."""
    rows = []
    if "lstm_sine" in ex:
        m = ex["lstm_sine"]["test_mse"]
        rows.append({"exercise": "lstm_sine", "metric": "next-step test MSE", "model": {"LSTM": m["lstm"]},
                     "baselines": {k: v for k, v in m.items() if k != "lstm"}})
    if "attention_sentence" in ex:
        m = ex["attention_sentence"]
        rows.append({"exercise": "attention_sentence", "metric": "best head's mass on the target key (prev / next)",
                     "model": {"trained": [m["trained"]["best_head_previous_mass"], m["trained"]["best_head_next_mass"]]},
                     "baselines": {"untrained": [m["untrained"]["best_head_previous_mass"], m["untrained"]["best_head_next_mass"]],
                                   "uniform": m["uniform_mass"]}})
    if "transformer_sine" in ex:
        m = ex["transformer_sine"]
        rows.append({"exercise": "transformer_sine", "metric": "teacher-forced MSE (all positions) / 20-step forecast MSE",
                     "model": {v: [m["teacher_forced_mse_all_positions"][v], m["forecast_mse_mean"][v]] for v in ("causal", "leaky")},
                     "baselines": {k: [m["teacher_forced_mse_all_positions"].get(k), m["forecast_mse_mean"][k]]
                                   for k in m["forecast_mse_mean"] if k not in ("causal", "leaky")}})
    if "neural_forecast" in ex:
        m = ex["neural_forecast"]["mse_mean"]
        models = ("chapter_windows", "dense_windows")
        rows.append({"exercise": "neural_forecast", "metric": "test MSE, mean over the 10 horizon steps",
                     "model": {f"LSTM+attention, {k}": m[k] for k in models},
                     "baselines": {k: v for k, v in m.items() if k not in models}})
    if "elman_pattern" in ex:
        m = ex["elman_pattern"]
        rows.append({"exercise": "elman_pattern", "metric": "held-out accuracy (balanced)", "model": {"Elman": m["accuracy"]},
                     "baselines": {k: m[k] for k in ("majority", "rule_last_token_is_3", "rule_last_two_are_2_3")}})
    if "clipping" in ex:
        m = ex["clipping"]
        rows.append({"exercise": "clipping", "metric": "held-out MSE after SGD / max gradient norm",
                     "model": {"clipped": [m["clipped"]["test_mse"], m["clipped"]["max_grad_norm"]]},
                     "baselines": {"unclipped": [m["unclipped"]["test_mse"], m["unclipped"]["max_grad_norm"]],
                                   "mean predictor": m["baseline_mse"]}})
    if "bidirectional" in ex:
        m = ex["bidirectional"]
        rows.append({"exercise": "bidirectional", "metric": "held-out tag accuracy",
                     "model": {"bidirectional": m["bidirectional"]["accuracy"]},
                     "baselines": {"unidirectional": m["unidirectional"]["accuracy"], "majority": m["majority"],
                                   "best left-to-right": m["left_to_right_ceiling"]}})
    if "gru_gates" in ex:
        m = ex["gru_gates"]
        rows.append({"exercise": "gru_gates", "metric": "test MSE; mean update gate at marked / other steps",
                     "model": {"GRU": [m["test_mse"], m["update_gate_marked"], m["update_gate_unmarked"]]},
                     "baselines": {"mean predictor": m["baseline_mse"]}})
    if "attention_preview" in ex:
        m = ex["attention_preview"]["alignment"]
        rows.append({"exercise": "attention_preview", "metric": "held-out alignment accuracy",
                     "model": {"general (Luong)": m["general"]["accuracy"], "additive (Bahdanau)": m["additive"]["accuracy"],
                               "additive without bias": m["additive_no_bias"]["accuracy"]},
                     "baselines": {"dot (no parameters)": m["dot"]["accuracy"], "chance": ex["attention_preview"]["chance"]}})
    return rows


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, (list, tuple)):
        return " / ".join(_fmt(x) for x in v)
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"


def format_table(summary: dict[str, Any]) -> str:
    lines = ["exercise | metric | model | baselines"]
    for row in summary["table"]:
        model = ", ".join(f"{k} {_fmt(v)}" for k, v in row["model"].items())
        base = ", ".join(f"{k} {_fmt(v)}" for k, v in row["baselines"].items())
        lines.append(f"{row['exercise']} | {row['metric']} | {model} | {base}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
