"""Neural decoding and generative models of spiking populations: RNNs vs Wiener and Kalman filters.

What it measures
    1. **Decoding a behavioural variable** from a simulated population, on held-out trials (the
       split is by trial; the comparison of Glaser et al. 2020 and KordingLab's
       ``Neural_Decoding``), with four causal decoders (each reads the activity up to bin ``t``):

       * ``wiener``: ridge regression on the last ``lags`` bins (the ridge chosen on the
         validation trials), :mod:`seqjax.analysis.linear_decoders`; ``wiener_squared``: the
         same on the squared activity (a linear readout of the power, a control for the
         ``two_group`` population, whose variable is in the power);
       * ``kalman``: the Kalman filter with its linear-Gaussian model fitted by least squares on
         the training trials (Wu et al. 2003);
       * ``gru`` and ``lstm``: a one-layer recurrent network (:func:`seqjax.recurrence.rnn` over
         the seqjax cells) with a linear readout at every bin, trained with Adam on the squared
         error; the parameters with the lowest validation loss are kept.

       Two populations (:mod:`seqjax.data.spiking_population`): ``two_group``, the chapter's 50
       neurons in two frequency groups (``sin 5t`` and ``sin t``, weights ``U(0, 1)``, noise 0.3)
       made decodable: a binary motor state (a Markov chain) sets which group oscillates, so the
       state lives in the oscillations' power while every neuron's mean is 0 in both states; and
       ``place_cells``, 50 cells with Gaussian place fields emitting Poisson counts along a 2-D
       Ornstein-Uhlenbeck trajectory (the decoded variable). Score: R^2 per output dimension and
       its mean, over the held-out trials' bins from ``lags - 1`` on (the first bins, where the
       Wiener filter's history is cut by the trial start, are left out for every decoder).

    2. **The chapter's GRU on spike trains**, trained for next-step prediction: the input at bin
       ``t`` is the population's counts at ``t - 1`` (zeros at ``t = 0``), the output a rate per
       neuron through a softplus, the loss the Poisson negative log-likelihood
       (:func:`seqjax.train.poisson_nll`). Scored on held-out trials in nats per bin (per neuron)
       and in bits per spike over a constant rate per neuron (its training mean; Pillow et al.
       2008), beside the same numbers for the true rates that generated the spikes (the ceiling)
       and, on the chapter's data, for the training trials' mean per neuron and bin (a PSTH).
       Two data sets: the place cells' spikes, and the chapter's own spike trains (Bernoulli 0.1,
       neurons 0-9 firing at 0.8 in bins 30-39; 200 trials of 100 bins, 160 for training as the
       chapter splits them). The chapter's model is a GRU of 100 units with a sigmoid readout
       that it never trains (its code raises a TypeError); here it is trained.

    3. **A generative RNN**: the same trained GRU, run freely: at every bin the counts are sampled
       from Poisson(rate) and fed back as the next input. Its samples are compared with the
       held-out trials (:func:`seqjax.analysis.population_statistics.compare`): firing rates,
       pairwise correlations (counts in windows of ``corr_bin`` bins; the correlation between the
       two correlation matrices' off-diagonals), power spectra (mean absolute log10 error). The same
       numbers for: ``independent_poisson`` (each neuron Poisson at its training mean rate),
       ``shuffled`` (each neuron's train from a different, random training trial: each neuron's
       own statistics kept, the coordination destroyed), and ``training_data`` (as many
       training trials as held-out ones: the score of a perfect model with this many trials).

Result (default run: 400 trials x 200 bins x 50 neurons per decoding population, 320 / 40 / 40
train / validation / test; 7.4 minutes on a heavily shared 2-core machine; ``metrics.json``)
    Held-out R^2 (mean over output dimensions):

    ============  ======  ==============  ======  =====  =====
    population    wiener  wiener_squared  kalman  gru    lstm
    ============  ======  ==============  ======  =====  =====
    two_group     -0.006  0.912           -0.145  0.904  0.911
    place_cells   0.621   0.573           0.589   0.853  0.857
    ============  ======  ==============  ======  =====  =====

    The recurrent decoders beat both classical filters on the place cells (0.85 against 0.62 /
    0.59), as Glaser et al. 2020 found on recorded data; the Kalman filter is slightly below the
    Wiener filter, though its fitted dynamics are right (``|eig A|`` 0.951, the trajectory's
    ``exp(-1/20)``): its linear-Gaussian observation model is wrong for place fields. On the
    chapter's two frequency groups no linear decoder of the activity reads the state (R^2 about
    0), because the state is in the oscillations' power; the Wiener filter on the squared activity
    reads it as well as the GRU and LSTM do (0.91), which learn that non-linearity themselves.

    Next-step prediction (held-out nats per bin and neuron, bits per spike over each neuron's
    constant rate): place cells, GRU 0.2231 (0.675 bits/spike), constant 0.2559, true rates
    0.2039 (1.068 bits/spike, the ceiling); the chapter's spike trains, GRU 0.3480 (0.139),
    constant 0.3591, PSTH 0.3463 (0.161), true rates 0.3436 (0.196). On the chapter's data the GRU
    is no better than the PSTH: its validation loss is lowest after 50 steps, and 160 trials are
    over-fitted after that.

    Sampled freely, the place-cell GRU reproduces the population's coordination: its pairwise
    correlations correlate 0.957 with the held-out ones (as many training trials: 0.973;
    independent Poisson -0.002; each neuron from a shuffled trial 0.022), its spectra are within
    0.024 (mean ``|log10|`` error; independent Poisson 0.049, training trials 0.015), its rates
    within 0.013 spikes per bin (the baselines, built from the training rates: 0.005 to 0.008).
    On the chapter's data the samples miss most of the burst (correlation similarity 0.44 against
    0.86 for training trials; the burst neurons at 0.12 instead of 0.17 spikes per bin). Teacher
    forced, the GRU predicts the burst once it has begun (its rate for neurons 0-9 is 0.12 at
    bin 30, the onset, then 0.47, 0.70, 0.84 in bins 31-33, against the true 0.8): it reacts to
    the burst's first spikes instead of timing it from the trial start, so run freely it
    seldom starts one.

Run::

    python -m experiments.neural_decoding            # default
    python -m experiments.neural_decoding --quick    # seconds; used by the tests
    python -m experiments.neural_decoding --resume RUN_DIR

Resuming: the networks train one after another (the decoders, then the generative GRUs); every
``checkpoint_every`` steps (counted over the sweep) the run saves the current network's
parameters, Adam state and best parameters with the finished networks' results. The linear
decoders are deterministic and recomputed after the networks. A resumed run reaches the same
``metrics.json``.

Outputs (``runs/neural_decoding/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl``, ``metrics.json``, ``decoded.png`` (true vs decoded variable on held-out
trials), ``r2.png`` (R^2 per decoder and population), ``raster.png`` (held-out vs generated
spikes), ``statistics.png`` (rates, correlations, spectra of data, samples and baselines),
``predictions.npz`` and ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from seqjax.analysis.linear_decoders import fit_kalman, fit_wiener_path, kalman_filter, lagged, r_squared
from seqjax.analysis.population_statistics import compare, correlation_matrix, firing_rates, power_spectrum
from seqjax.cells import gru, lstm
from seqjax.data.spiking_population import (
    chapter_spike_trains,
    numpy_generator,
    ornstein_uhlenbeck,
    place_cell_population,
    two_group_population,
)
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.recurrence import rnn
from seqjax.train import bits_per_spike, clip_by_global_norm, make_train_step, mse, poisson_nll

NAME = "neural_decoding"
POPULATIONS = ("two_group", "place_cells")
NETWORKS = ("gru", "lstm")
LINEAR = ("wiener", "wiener_squared", "kalman")
DECODERS = (*LINEAR, *NETWORKS)
SPIKE_DATA = ("place_cells", "chapter_spikes")
GENERATIVE_BASELINES = ("independent_poisson", "shuffled", "training_data")
COLORS = {"wiener": "tab:olive", "wiener_squared": "tab:brown", "kalman": "tab:purple", "gru": "tab:orange", "lstm": "tab:blue",
          "generated": "tab:orange", "independent_poisson": "0.6", "shuffled": "tab:green",
          "training_data": "k"}


@dataclasses.dataclass(frozen=True)
class Config:
    """Decode a behavioural variable (Wiener, Kalman, GRU, LSTM); model spike trains with a GRU."""

    QUICK: ClassVar[dict[str, Any]] = {
        "populations": ("place_cells",), "networks": ("lstm",), "spike_data": ("place_cells",),
        "trials": 20, "test_trials": 4, "validation_trials": 4, "time": 40, "neurons": 12,
        "hidden": 8, "steps": 12, "batch_size": 4, "eval_every": 6, "lags": 3,
        "generative_hidden": 8, "generative_steps": 12, "chapter_trials": 20, "chapter_time": 40,
        "checkpoint_every": 1000,
    }

    populations: tuple[str, ...] = option(POPULATIONS, "decoding populations: two_group, place_cells")
    networks: tuple[str, ...] = option(NETWORKS, "recurrent decoders: gru, lstm")
    spike_data: tuple[str, ...] = option(SPIKE_DATA, "generative GRU data sets: place_cells, chapter_spikes")
    trials: int = option(400, "trials per decoding population (all splits)")
    test_trials: int = option(40, "held-out trials (the last ones)")
    validation_trials: int = option(40, "validation trials (before the held-out ones)")
    time: int = option(200, "bins per trial (the chapter's 200 samples)")
    neurons: int = option(50, "neurons per population (the chapter's 50)")
    tau: float = option(20.0, "correlation time of the place cells' 2-D trajectory, in bins")
    hidden: int = option(64, "recurrent decoders' width")
    steps: int = option(800, "AdamW steps per recurrent decoder")
    batch_size: int = option(16, "trials per step")
    learning_rate: float = option(3e-3, "AdamW learning rate (cosine decay to 0)")
    clip_norm: float = option(1.0, "gradient clipping by global norm")
    weight_decay: float = option(1e-2, "AdamW decoupled weight decay")
    eval_every: int = option(50, "validation every this many steps; the best parameters are kept")
    lags: int = option(10, "Wiener filter history in bins; the first lags-1 bins are not scored")
    ridges: tuple[float, ...] = option((0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0), "Wiener ridge grid (validation)")
    generative_hidden: int = option(100, "generative GRU width (the chapter's 100)")
    generative_steps: int = option(1000, "AdamW steps per generative GRU")
    chapter_trials: int = option(200, "trials of the chapter's spike trains (split 80/10/10 train/validation/test)")
    chapter_time: int = option(100, "bins per trial of the chapter's spike trains")
    corr_bin: int = option(5, "bins summed before pairwise correlations")
    seed: int = option(0, "base random seed")
    checkpoint_every: int = option(500, "save a checkpoint every this many steps (all networks counted)")

    def __post_init__(self):
        for name, allowed in (("populations", POPULATIONS), ("networks", NETWORKS), ("spike_data", SPIKE_DATA)):
            values = getattr(self, name)
            if any(v not in allowed for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct values of {allowed}; got {values}.")
        for name in ("trials", "test_trials", "validation_trials", "time", "neurons", "hidden", "steps",
                     "batch_size", "eval_every", "lags", "generative_hidden", "generative_steps",
                     "chapter_trials", "chapter_time", "corr_bin", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.trials - self.test_trials - self.validation_trials < 2:
            raise ValueError(f"trials ({self.trials}) must exceed test_trials + validation_trials "
                             f"({self.test_trials + self.validation_trials}) by at least 2.")
        if self.lags >= self.time:
            raise ValueError(f"lags must be shorter than time ({self.time}); got {self.lags}.")
        if self.chapter_trials < 10:
            raise ValueError(f"chapter_trials must be at least 10 (a 10% split); got {self.chapter_trials}.")
        if self.chapter_time < 40:
            raise ValueError(f"chapter_time must be at least 40 (the burst is in bins 30-39); got {self.chapter_time}.")
        if not self.ridges or any(r < 0 for r in self.ridges):
            raise ValueError(f"ridges must be non-negative values; got {self.ridges}.")
        for name in ("learning_rate", "clip_norm", "tau"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}.")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be non-negative; got {self.weight_decay}.")


# --- data -------------------------------------------------------------------------------------


class Population:
    """One data set with its trial split: ``inputs`` ``[trials, time, n]`` (float), ``targets``
    ``[trials, time, d]`` (decoding) and, for spike data, ``spikes`` and the true ``rates``."""

    def __init__(self, name: str, config: Config):
        key = jax.random.fold_in(jax.random.key(config.seed), (POPULATIONS + SPIKE_DATA).index(name) + 100)
        self.name = name
        self.rates = self.spikes = self.targets = None
        test, val = config.test_trials, config.validation_trials
        if name == "two_group":
            pop = two_group_population(key, config.trials, config.time, config.neurons)
            self.inputs, self.targets = np.asarray(pop.activity), np.asarray(pop.state)[..., None]
            self.target_names = ("motor state",)
        elif name == "place_cells":
            k_traj, k_cells = jax.random.split(key)
            trajectory = ornstein_uhlenbeck(k_traj, config.trials, config.time, 2, tau=config.tau)
            pop = place_cell_population(k_cells, trajectory, config.neurons)
            self.spikes, self.rates = np.asarray(pop.spikes), np.asarray(pop.rates)
            self.inputs, self.targets = self.spikes.astype(np.float32), np.asarray(trajectory)
            self.target_names = ("x", "y")
        else:  # the chapter's spike trains, split 80/10/10 (the chapter: 160 / 40 of 200)
            spikes, prob = chapter_spike_trains(key, config.chapter_trials, config.chapter_time)
            self.spikes, self.rates = np.asarray(spikes), np.asarray(prob)
            self.inputs = self.spikes.astype(np.float32)
            test = val = config.chapter_trials // 10
        total = len(self.inputs)
        self.train = np.arange(0, total - test - val)
        self.val = np.arange(total - test - val, total - test)
        self.test = np.arange(total - test, total)
        train_inputs = self.inputs[self.train]
        self.in_mean, self.in_std = train_inputs.mean((0, 1)), train_inputs.std((0, 1)) + 1e-6
        if self.targets is not None:
            train_targets = self.targets[self.train]
            self.out_mean, self.out_std = train_targets.mean((0, 1)), train_targets.std((0, 1))

    def z_inputs(self, index: np.ndarray) -> jax.Array:
        return jnp.asarray((self.inputs[index] - self.in_mean) / self.in_std, jnp.float32)

    def z_targets(self, index: np.ndarray) -> jax.Array:
        return jnp.asarray((self.targets[index] - self.out_mean) / self.out_std, jnp.float32)

    def next_step(self, index: np.ndarray) -> tuple[jax.Array, jax.Array]:
        """``(inputs, counts)`` for next-step prediction: the counts of bin ``t - 1`` (zeros at 0)
        and of bin ``t``."""
        counts = self.spikes[index].astype(np.float32)
        previous = np.concatenate([np.zeros_like(counts[:, :1]), counts[:, :-1]], axis=1)
        return jnp.asarray(previous), jnp.asarray(counts)


# --- networks ---------------------------------------------------------------------------------


def make_cell(model: str):
    return lstm() if model == "lstm" else gru()


def init_network(model: str, key: jax.Array, n_in: int, hidden: int, n_out: int, bias=None) -> dict:
    """A cell of ``hidden`` units reading ``n_in`` features and a linear readout to ``n_out``
    (bias ``bias``, zeros by default), initialised in one compiled call."""
    b = jnp.zeros((n_out,), jnp.float32) if bias is None else jnp.asarray(bias, jnp.float32)
    return _init_network(model, key, n_in, hidden, n_out, b)


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4))
def _init_network(model, key, n_in, hidden, n_out, bias):
    k_cell, k_out = jax.random.split(key)
    return {"cell": make_cell(model).init(k_cell, n_in, hidden),
            "readout": {"w": jax.random.normal(k_out, (hidden, n_out)) / math.sqrt(hidden), "b": bias}}


def network_outputs(model: str, params: dict, xs: jax.Array) -> jax.Array:
    """``[b, t, out]``: the readout at every bin of ``xs`` ``[b, t, n]``."""
    return rnn(make_cell(model), params["cell"], xs) @ params["readout"]["w"] + params["readout"]["b"]


def softplus_inverse(y):
    y = np.asarray(y, np.float64)
    return np.log(np.expm1(np.maximum(y, 1e-6)))


def decoder_loss(model: str):
    def loss_fn(params, batch, key):
        xs, ys = batch
        return _loss_of_outputs("decode", network_outputs(model, params, xs), ys)

    return loss_fn


def _loss_of_outputs(task: str, outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """The training loss from the network's outputs: squared error (decoding) or the Poisson NLL
    of the counts under softplus rates (next-step prediction)."""
    return mse(outputs, targets) if task == "decode" else poisson_nll(jax.nn.softplus(outputs), targets)


def generative_loss(params, batch, key):
    xs, counts = batch
    return _loss_of_outputs("generate", network_outputs("gru", params, xs), counts)


def sample_spikes(params: dict, key: jax.Array, trials: int, time: int) -> tuple[jax.Array, jax.Array]:
    """``(counts int32, rates float32)``, both ``[trials, time, n]``, sampled from the generative
    GRU step by step: bin ``t`` is drawn from Poisson(rate_t), rate_t = softplus(readout(h_t)),
    and fed back as the input of bin ``t + 1``."""
    cell = make_cell("gru")
    n = params["readout"]["w"].shape[1]
    carry = jax.vmap(lambda _: cell.zero_carry(params["cell"], jnp.float32))(jnp.arange(trials))
    step = jax.vmap(cell.step, in_axes=(None, 0, 0))

    def one_bin(state, k):
        carry, previous = state
        carry, h = step(params["cell"], carry, previous)
        rate = jax.nn.softplus(h @ params["readout"]["w"] + params["readout"]["b"])
        counts = jax.random.poisson(k, rate).astype(jnp.float32)
        return (carry, counts), (counts, rate)

    _, (counts, rates) = jax.lax.scan(one_bin, (carry, jnp.zeros((trials, n))), jax.random.split(key, time))
    return jnp.swapaxes(counts, 0, 1).astype(jnp.int32), jnp.swapaxes(rates, 0, 1)


def make_optimizer(config: Config, steps: int) -> optax.GradientTransformation:
    return optax.chain(clip_by_global_norm(config.clip_norm),
                       optax.adamw(optax.cosine_decay_schedule(config.learning_rate, steps),
                                   weight_decay=config.weight_decay))


def plan(config: Config) -> list[tuple[str, str, str]]:
    """The networks in training order: ``(task, data set, model)``."""
    return ([("decode", p, m) for p in config.populations for m in config.networks]
            + [("generate", d, "gru") for d in config.spike_data])


def steps_of(config: Config, task: str) -> int:
    return config.steps if task == "decode" else config.generative_steps


def run_key(config: Config, index_name: tuple[str, str, str]) -> jax.Array:
    task, data, model = index_name
    key = jax.random.fold_in(jax.random.key(config.seed), ("decode", "generate").index(task))
    return jax.random.fold_in(jax.random.fold_in(key, (POPULATIONS + SPIKE_DATA).index(data)), NETWORKS.index(model))


def train_one(index: int, runs: list, data: Population, config: Config, run_dir: RunDir, bar,
              ckpt: RunCheckpoints, sweep: dict) -> None:
    """Train ``runs[index]`` from where ``sweep["current"]`` left it, keep its best-validation
    parameters, evaluate them on the held-out trials and append the record to ``sweep["finished"]``."""
    task, name, model = runs[index]
    steps = steps_of(config, task)
    key = run_key(config, runs[index])
    n = data.inputs.shape[-1]
    if task == "decode":
        train, val = (data.z_inputs(data.train), data.z_targets(data.train)), (data.z_inputs(data.val), data.z_targets(data.val))
        init = init_network(model, jax.random.fold_in(key, 0), n, config.hidden, data.targets.shape[-1])
        loss_fn = decoder_loss(model)
    else:
        train, val = data.next_step(data.train), data.next_step(data.val)
        mean_rate = data.spikes[data.train].mean((0, 1))
        init = init_network(model, jax.random.fold_in(key, 0), n, config.generative_hidden, n,
                            bias=softplus_inverse(mean_rate))
        loss_fn = generative_loss
    optimizer = make_optimizer(config, steps)
    step = make_train_step(loss_fn, optimizer)
    # One compiled forward pass serves validation and the held-out trials (equal counts by default).
    forward = jax.jit(network_outputs, static_argnums=0)

    def validation_loss(params):
        return float(_loss_of_outputs(task, forward(model, params, val[0]), val[1]))
    template = {"params": init, "opt_state": optimizer.init(init), "best": jax.tree.map(jnp.copy, init)}
    current, state = ckpt.sweep_run(sweep, index, template,
                                    lambda: {"run": index, "step": 0, "best_val": None, "best_step": 0,
                                             "wall_s": 0.0})
    params, opt_state, best = state["params"], state["opt_state"], state["best"]
    started, wall_before = time.perf_counter(), current["wall_s"]
    batch_key = jax.random.fold_in(key, 1)
    m = train[0].shape[0]
    offset = sum(steps_of(config, t) for t, _, _ in runs[:index])
    last_run = index == len(runs) - 1
    for k in range(current["step"], steps):
        idx = jax.random.randint(jax.random.fold_in(batch_key, k), (min(config.batch_size, m),), 0, m)
        params, opt_state, metrics = step(params, opt_state, (train[0][idx], train[1][idx]))
        done = k + 1
        if done % config.eval_every == 0 or done == steps:
            val_loss = validation_loss(params)
            run_dir.log(kind="eval", task=task, data=name, model=model, step=done,
                        train_loss=float(metrics["loss"]), val_loss=val_loss)
            if current["best_val"] is None or val_loss < current["best_val"]:
                current["best_val"], current["best_step"] = val_loss, done
                best = jax.tree.map(jnp.copy, params)
            bar.set_postfix_str(f"{task} {name} {model}: val {val_loss:.4f}")
        bar.update(1)
        current["step"] = done
        final = last_run and done == steps
        if final or ckpt.due(offset + done):
            current["wall_s"] = wall_before + time.perf_counter() - started
            ckpt.save(offset + done, {"params": params, "opt_state": opt_state, "best": best}, sweep, force=final)

    record = {"best_val": current["best_val"], "best_step": current["best_step"],
              "wall_s": round(wall_before + time.perf_counter() - started, 2)}
    if task == "decode":
        z = np.asarray(forward(model, best, data.z_inputs(data.test)))
        record["predictions"] = (z * data.out_std + data.out_mean).astype(np.float32)
    else:
        xs, _ = data.next_step(data.test)
        record["test_rates"] = np.asarray(jax.nn.softplus(forward("gru", best, xs)))
        record["samples"] = np.asarray(jax.jit(sample_spikes, static_argnums=(2, 3))(
            best, jax.random.fold_in(key, 2), len(data.test), data.spikes.shape[1])[0])
    sweep["finished"].append(record)
    sweep["current"] = None


# --- evaluation -------------------------------------------------------------------------------


def select_wiener(features: np.ndarray, data: Population, config: Config):
    """The Wiener filter fitted on the training trials with the ridge of the grid that scores the
    best validation R^2, and that R^2 per ridge."""
    scored = slice(config.lags - 1, None)
    filters = fit_wiener_path(features[data.train], data.targets[data.train], config.ridges)
    val_r2 = {ridge: float(np.mean(r_squared(w.predict(features[data.val])[:, scored], data.targets[data.val][:, scored])))
              for ridge, w in zip(config.ridges, filters)}
    best = max(range(len(filters)), key=lambda i: val_r2[config.ridges[i]])
    return filters[best], config.ridges[best], val_r2


def linear_decoders(data: Population, config: Config) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Test-trial predictions of the Wiener filter (ridge chosen on validation), the same on the
    squared activity (``wiener_squared``: a linear readout of the power), and the Kalman filter
    (fitted on the training trials), with what was chosen."""
    predictions, fitted = {}, {}
    for name, activity in (("wiener", data.inputs), ("wiener_squared", np.square(data.inputs))):
        features = lagged(activity, config.lags)
        wiener, ridge, val_r2 = select_wiener(features, data, config)
        predictions[name] = wiener.predict(features[data.test])
        fitted[f"{name}_ridge"] = ridge
        fitted[f"{name}_validation_r2"] = {str(k): v for k, v in val_r2.items()}
        del features
    kalman = fit_kalman(data.targets[data.train], data.inputs[data.train])
    predictions["kalman"] = kalman_filter(kalman, data.inputs[data.test])[0]
    fitted["kalman_A_eigenvalues"] = np.abs(np.linalg.eigvals(kalman.A)).tolist()
    return predictions, fitted


def decoding_scores(predictions: np.ndarray, data: Population, config: Config) -> dict[str, Any]:
    scored = slice(config.lags - 1, None)
    r2 = r_squared(predictions[:, scored], data.targets[data.test][:, scored])
    return {"r2": [float(v) for v in r2], "r2_mean": float(np.mean(r2))}


def likelihood_scores(test_rates: np.ndarray, data: Population) -> dict[str, Any]:
    """Held-out Poisson NLL per bin and neuron (nats) and bits per spike over the constant-rate
    baseline, for the model, the constant rate, the true rates, and (the chapter's data) the PSTH."""
    counts = data.spikes[data.test].astype(np.float32)
    train = data.spikes[data.train].astype(np.float64)
    shape = counts.shape
    candidates = {
        "gru": test_rates,
        "constant_rate": np.broadcast_to(train.mean((0, 1)), shape),
        "true_rate": data.rates[data.test],
    }
    if data.name == "chapter_spikes":  # time-locked rates: the mean per neuron and bin is a baseline
        candidates["psth"] = np.broadcast_to(train.mean(0), shape)
    total = {k: float(poisson_nll(jnp.asarray(v, jnp.float32), jnp.asarray(counts), reduction="sum"))
             for k, v in candidates.items()}
    spikes = float(counts.sum())
    return {k: {"nats_per_bin": v / counts.size,
                "bits_per_spike": float(bits_per_spike(v, total["constant_rate"], spikes))}
            for k, v in total.items()} | {"spikes": spikes, "bins": int(counts.size)}


def generative_scores(samples: np.ndarray, data: Population, config: Config) -> tuple[dict, dict]:
    """Statistics of the samples and baselines against the held-out trials."""
    test = data.spikes[data.test]
    train = data.spikes[data.train]
    count = len(test)
    rng = numpy_generator(jax.random.fold_in(jax.random.key(config.seed), 7))
    mean_rate = train.mean((0, 1))
    pick = rng.integers(0, len(train), size=(count, train.shape[2]))
    candidates = {
        "generated": samples,
        "independent_poisson": rng.poisson(mean_rate, test.shape),
        "shuffled": train[pick, :, np.arange(train.shape[2])[None, :]].transpose(0, 2, 1),
        "training_data": train[:count],
    }
    return ({k: compare(v, test, bin_size=config.corr_bin) for k, v in candidates.items()}, candidates)


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    runs = plan(config)
    names = dict.fromkeys([d for _, d, _ in runs] + list(config.populations))
    data = {name: Population(name, config) for name in names}
    total = sum(steps_of(config, t) for t, _, _ in runs)
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        bar = progress(desc=NAME, total=total, initial=resumed.step if resumed else 0)
        for index in range(len(sweep["finished"]), len(runs)):
            train_one(index, runs, data[runs[index][1]], config, run_dir, bar, ckpt, sweep)
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions

    finished = dict(zip(runs, sweep["finished"]))
    decoding, fitted, predictions, timings = {}, {}, {}, {"networks": {}}
    for pop in config.populations:
        t0 = time.perf_counter()
        preds, fitted[pop] = linear_decoders(data[pop], config)
        timings[f"linear_{pop}_s"] = round(time.perf_counter() - t0, 2)
        for model in config.networks:
            record = finished[("decode", pop, model)]
            preds[model] = record["predictions"]
            fitted[pop][f"{model}_best_step"] = record["best_step"]
            timings["networks"][f"decode/{pop}/{model}"] = record["wall_s"]
        predictions[pop] = preds
        decoding[pop] = {k: decoding_scores(v, data[pop], config) for k, v in preds.items()}
        run_dir.save_arrays(f"predictions_{pop}", targets=data[pop].targets[data[pop].test], **preds)
    likelihood, generative, samples = {}, {}, {}
    for name in config.spike_data:
        record = finished[("generate", name, "gru")]
        likelihood[name] = likelihood_scores(record["test_rates"], data[name]) | {"best_step": record["best_step"]}
        generative[name], samples[name] = generative_scores(record["samples"], data[name], config)
        timings["networks"][f"generate/{name}/gru"] = record["wall_s"]
        run_dir.save_arrays(f"samples_{name}", held_out=data[name].spikes[data[name].test], **samples[name])
    summary = {
        "decoding": decoding, "fitted": fitted, "likelihood": likelihood, "generative": generative,
        "data": {name: {"trials": len(d.inputs), "train": len(d.train), "validation": len(d.val),
                        "test": len(d.test), "time": int(d.inputs.shape[1]), "neurons": int(d.inputs.shape[2]),
                        **({"mean_rate": float(d.spikes.mean())} if d.spikes is not None else {})}
                 for name, d in data.items()},
        "protocol": "split by trial; R^2 over held-out bins from lags-1 on; networks keep their best-validation "
                    "parameters; Poisson NLL in nats per bin and neuron, bits per spike over each neuron's "
                    "constant training rate",
        "environment": environment(),
        "timings": {"runtime_s": round(runtime_s, 1), "sessions": sessions, **timings},
    }
    if decoding:
        run_dir.save_figure(plot_decoded(predictions, data, config), "decoded")
        run_dir.save_figure(plot_r2(decoding), "r2")
    if generative:
        run_dir.save_figure(plot_raster(samples, data), "raster")
        run_dir.save_figure(plot_statistics(samples, data, config), "statistics")
    return summary


def format_table(summary: dict[str, Any]) -> str:
    lines = []
    if summary["decoding"]:
        header = f"{'population':<12} {'decoder':<8} | {'R^2 per dim':<20} {'R^2 mean':>8}"
        lines += ["Decoding (held-out trials)", header, "-" * len(header)]
        for pop, by in summary["decoding"].items():
            for dec, s in by.items():
                per = " ".join(f"{v:.3f}" for v in s["r2"])
                lines.append(f"{pop:<12} {dec:<8} | {per:<20} {s['r2_mean']:>8.3f}")
        lines.append("")
    if summary["likelihood"]:
        header = f"{'data':<15} {'model':<14} | {'nats/bin':>9} {'bits/spike':>10}"
        lines += ["Next-step Poisson likelihood (held-out)", header, "-" * len(header)]
        for name, by in summary["likelihood"].items():
            for model in ("gru", "constant_rate", "psth", "true_rate"):
                if model not in by:
                    continue
                s = by[model]
                lines.append(f"{name:<15} {model:<14} | {s['nats_per_bin']:>9.4f} {s['bits_per_spike']:>10.4f}")
        lines.append("")
    if summary["generative"]:
        header = (f"{'data':<15} {'sample':<20} | {'rate r':>7} {'rate MAE':>8} {'corr sim':>8} "
                  f"{'corr MAE':>8} {'log spec err':>12}")
        lines += ["Generated vs held-out activity", header, "-" * len(header)]
        for name, by in summary["generative"].items():
            for k, s in by.items():
                lines.append(f"{name:<15} {k:<20} | {s['rate_correlation']:>7.3f} {s['rate_mae']:>8.4f} "
                             f"{s['correlation_similarity']:>8.3f} {s['correlation_mae']:>8.4f} "
                             f"{s['spectrum_log_error']:>12.4f}")
    return "\n".join(lines)


# --- figures ----------------------------------------------------------------------------------


def plot_decoded(predictions: dict, data: dict, config: Config) -> Figure:
    rows = [(pop, dim) for pop in predictions for dim in range(data[pop].targets.shape[-1])]
    fig = Figure(figsize=(11, 2.4 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (pop, dim) in zip(axes, rows):
        d = data[pop]
        t = np.arange(d.targets.shape[1])
        ax.plot(t, d.targets[d.test[0], :, dim], color="k", lw=2, label="true")
        for dec, p in predictions[pop].items():
            ax.plot(t, p[0, :, dim], color=COLORS[dec], lw=1, label=dec)
        ax.axvspan(0, config.lags - 1.5, color="0.9")
        ax.set_title(f"{pop}: {d.target_names[dim]} on a held-out trial (grey: unscored bins)", fontsize=9)
        ax.set_xlabel("bin")
    axes[0].legend(fontsize=8, ncol=5, loc="upper right")
    return fig


def plot_r2(decoding: dict) -> Figure:
    fig = Figure(figsize=(2.6 + 2.2 * len(decoding), 3.6), layout="constrained")
    ax = fig.subplots()
    decoders = list(next(iter(decoding.values())))
    width = 0.8 / len(decoders)
    for i, dec in enumerate(decoders):
        values = [decoding[pop][dec]["r2_mean"] for pop in decoding]
        ax.bar(np.arange(len(decoding)) + (i - (len(decoders) - 1) / 2) * width, values, width,
               color=COLORS[dec], label=dec)
    ax.set_xticks(np.arange(len(decoding)), list(decoding))
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("held-out R^2 (mean over dims)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def plot_raster(samples: dict, data: dict) -> Figure:
    kinds = ("held_out", "generated", "independent_poisson")
    fig = Figure(figsize=(12, 2.6 * len(samples)), layout="constrained")
    axes = fig.subplots(len(samples), len(kinds), squeeze=False)
    for row, (name, cands) in enumerate(samples.items()):
        arrays = {"held_out": data[name].spikes[data[name].test], **cands}
        for ax, kind in zip(axes[row], kinds):
            ax.imshow(arrays[kind][0].T, aspect="auto", cmap="binary", interpolation="nearest", vmin=0, vmax=2)
            ax.set_title(f"{name}: {kind.replace('_', ' ')} (one trial; black: 2+ spikes)", fontsize=9)
            ax.set_xlabel("bin")
            ax.set_ylabel("neuron")
    return fig


def plot_statistics(samples: dict, data: dict, config: Config) -> Figure:
    fig = Figure(figsize=(13, 3.4 * len(samples)), layout="constrained")
    axes = fig.subplots(len(samples), 3, squeeze=False)
    for row, (name, cands) in enumerate(samples.items()):
        test = data[name].spikes[data[name].test]
        ref_rate, ref_corr = firing_rates(test), correlation_matrix(test, config.corr_bin)
        i, j = np.triu_indices(test.shape[2], k=1)
        freq, ref_spec = power_spectrum(test)
        axes[row, 2].semilogy(freq[1:], ref_spec[1:], color="k", lw=2, label="held out")
        for kind in ("generated", "independent_poisson", "shuffled"):
            a = cands[kind]
            axes[row, 0].scatter(ref_rate, firing_rates(a), s=8, color=COLORS[kind], label=kind)
            axes[row, 1].scatter(ref_corr[i, j], correlation_matrix(a, config.corr_bin)[i, j], s=4, alpha=0.5,
                                 color=COLORS[kind], label=kind)
            axes[row, 2].semilogy(freq[1:], power_spectrum(a)[1][1:], color=COLORS[kind], lw=1, label=kind)
        lim = [0, float(max(ref_rate.max(), 1e-3)) * 1.1]
        axes[row, 0].plot(lim, lim, "k:", lw=1)
        axes[row, 1].plot([-1, 1], [-1, 1], "k:", lw=1)
        axes[row, 0].set(title=f"{name}: firing rate per neuron", xlabel="held out (spikes/bin)", ylabel="sample")
        axes[row, 1].set(title=f"pairwise correlations ({config.corr_bin}-bin counts)", xlabel="held out",
                         ylabel="sample")
        axes[row, 2].set(title="power spectrum (mean over neurons)", xlabel="cycles per bin")
        axes[row, 0].legend(fontsize=7)
        axes[row, 2].legend(fontsize=7)
    return fig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
