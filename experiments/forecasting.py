"""Forecasting real series: LSTM and GRU against persistence, seasonal naive, AR and (S)ARIMA.

What it measures
    On three series that statsmodels ships (:mod:`seqjax.data.time_series`: yearly sunspots,
    monthly Mauna Loa CO2, the yearly Nile flow), the last stretch of each is held out and
    forecast from every origin in it (rolling origin: from origin ``o`` only ``y[:o]`` is known),
    1 to ``H`` steps ahead. Per horizon: RMSE, MAE and MASE (Hyndman & Koehler 2006; the scale is
    the in-sample error of the one-step seasonal-naive forecast,
    :mod:`seqjax.train.forecast_metrics`). Contenders, all fitted on the training part only:

    * ``persistence`` (the last value) and ``seasonal_naive`` (the last value of the same season:
      period 11 years for the sunspots' solar cycle, 12 months for CO2; the Nile has none);
    * ``ar``: statsmodels ``AutoReg``, lags chosen by AIC (``ar_select_order``), with a constant
      (and a linear trend for CO2), iterated for multi-step forecasts;
    * ``arima``: statsmodels ``ARIMA(p, d, q)`` chosen by AIC over a small grid; for CO2 a
      seasonal ``SARIMA(p, 1, q)(P, 1, Q, 12)``, also by AIC. The models are fitted once on the
      training part and applied with their fitted parameters to the data before each origin
      (``results.apply``), as the neural models are;
    * ``lstm`` and ``gru``: a one-layer recurrent network (:func:`seqjax.recurrence.rnn` over the
      seqjax cells) reads the last ``window`` values and predicts the next one; multi-step
      forecasts are **recursive** (each prediction is appended to the window and fed back);
    * ``lstm_direct``: the same LSTM with an ``H``-value head trained on all horizons at once
      (the *direct* strategy), to separate the model from the recursion.

    The networks see the series standardised with the training part's mean and standard
    deviation; CO2, whose trend leaves the training range, is modelled in first differences
    (standardised), forecasts summed back onto the last known level, as the ARIMA models do
    with ``d = 1``. Each network is trained with Adam on random mini-batches of training windows;
    the parameters with the lowest loss on a validation stretch (the last ``validation`` fraction
    of the training windows, by time) are kept. Every network is trained with ``seeds`` seeds:
    the tables give the mean over seeds and, for the mean RMSE, the spread (standard deviation).

Result
    See the README's experiment table and ``metrics.json`` (``results[series][model]``: per
    horizon ``rmse``, ``mae``, ``mase``, ``count`` and their means over horizons).

Run::

    python -m experiments.forecasting            # default (minutes on 2 CPU cores)
    python -m experiments.forecasting --quick    # seconds; used by the tests
    python -m experiments.forecasting --resume RUN_DIR

Resuming: the networks are trained one after another (series x model x seed); every
``checkpoint_every`` steps the run saves the current network's parameters, Adam state and best
parameters so far, with the finished networks' forecasts. The statsmodels fits are deterministic
and are recomputed after the networks. A resumed run reaches the same ``metrics.json``.

Outputs (``runs/forecasting/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl`` (training and validation losses), ``metrics.json``, ``forecasts.png`` (the
held-out stretch with one-step forecasts and recursive fans from a few origins),
``horizons.png`` (MASE against horizon per model and series), ``forecasts.npz`` and
``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from seqjax.cells import gru, lstm
from seqjax.data.time_series import (
    forecast_targets,
    load_series,
    rolling_origins,
    sliding_windows,
)
from seqjax.data.forecasting import seasonal_naive
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.recurrence import rnn
from seqjax.train import clip_by_global_norm, make_eval_step, make_train_step, mse
from seqjax.train.forecast_metrics import forecast_scores, mase_scale

NAME = "forecasting"
NEURAL = ("lstm", "gru", "lstm_direct")
BASELINES = ("persistence", "seasonal_naive", "ar", "arima")
# Per series: held-out values, forecast horizon, input window, how the networks see the series.
SETTINGS = {
    "sunspots": {"holdout": 50, "horizon": 10, "window": 30, "transform": "level"},
    "co2": {"holdout": 72, "horizon": 12, "window": 36, "transform": "difference"},
    "nile": {"holdout": 20, "horizon": 5, "window": 15, "transform": "level"},
}
# ARIMA / SARIMA candidates, chosen by AIC on the training part.
ARIMA_GRID = tuple((p, d, q) for p in (0, 1, 2) for d in (0, 1) for q in (0, 1))
SARIMA_GRID = (((0, 1, 1), (0, 1, 1, 12)), ((1, 1, 1), (0, 1, 1, 12)),
               ((1, 1, 0), (0, 1, 1, 12)), ((1, 1, 1), (1, 1, 1, 12)))
COLORS = {"persistence": "0.55", "seasonal_naive": "0.3", "ar": "tab:olive", "arima": "tab:purple",
          "lstm": "tab:blue", "gru": "tab:orange", "lstm_direct": "tab:green"}


@dataclasses.dataclass(frozen=True)
class Config:
    """Forecast real series with LSTM/GRU against persistence, seasonal naive, AR and (S)ARIMA."""

    QUICK: ClassVar[dict[str, Any]] = {
        "series": ("nile",), "models": ("lstm", "lstm_direct"), "seeds": 1, "steps": 60,
        "eval_every": 30, "arima_search": False,
    }

    series: tuple[str, ...] = option(tuple(SETTINGS), "series: sunspots, co2, nile")
    models: tuple[str, ...] = option(NEURAL, "networks: lstm, gru (recursive), lstm_direct")
    seeds: int = option(3, "training seeds per network")
    hidden: int = option(32, "recurrent width")
    steps: int = option(1500, "Adam steps per network")
    batch_size: int = option(32, "training windows per step")
    learning_rate: float = option(3e-3, "Adam learning rate (cosine decay to 0)")
    clip_norm: float = option(1.0, "gradient clipping by global norm")
    validation: float = option(0.15, "fraction of the training windows (the last ones) used for validation")
    eval_every: int = option(50, "validation every this many steps; the best parameters are kept")
    arima_search: bool = option(True, "choose (S)ARIMA orders by AIC (else ARIMA(1,1,1), SARIMA(1,1,1)(0,1,1,12))")
    seed: int = option(0, "base random seed")
    checkpoint_every: int = option(500, "save a checkpoint every this many steps (all networks counted)")

    def __post_init__(self):
        for name, allowed in (("series", SETTINGS), ("models", NEURAL)):
            values = getattr(self, name)
            if not values or any(v not in allowed for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct values of {tuple(allowed)}; got {values}.")
        for name in ("seeds", "hidden", "steps", "batch_size", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if not 0.0 < self.validation < 0.5:
            raise ValueError(f"validation must lie in (0, 0.5); got {self.validation}.")
        for name in ("learning_rate", "clip_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}.")


# --- data -------------------------------------------------------------------------------------


class Prepared:
    """A series with its split, the networks' view of it and the forecast targets."""

    def __init__(self, name: str):
        settings = SETTINGS[name]
        self.name = name
        self.series = load_series(name)
        self.y = self.series.values
        self.horizon, self.window = settings["horizon"], settings["window"]
        self.transform = settings["transform"]
        self.origins = rolling_origins(len(self.y), settings["holdout"])
        self.n_train = int(self.origins[0])
        self.targets = forecast_targets(self.y, self.origins, self.horizon)
        train = self.y[:self.n_train]
        base = np.diff(train) if self.transform == "difference" else train
        self.mean, self.std = float(base.mean()), float(base.std())
        self.z = self.encode(self.y)

    def encode(self, y: np.ndarray) -> np.ndarray:
        """The standardised series (its differences for ``"difference"``; one value shorter)."""
        base = np.diff(y) if self.transform == "difference" else y
        return (base - self.mean) / self.std

    def windows_before(self, origins: np.ndarray) -> np.ndarray:
        """``[origins, window]``: the encoded values just before each origin."""
        shift = 1 if self.transform == "difference" else 0  # z[i] is the change y[i+1] - y[i]
        index = (origins - shift)[:, None] - self.window + np.arange(self.window)[None, :]
        return self.z[index]

    def decode(self, z_forecast: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """Forecasts of ``y`` ``[origins, H]`` from encoded forecasts ``[origins, H]``."""
        values = np.asarray(z_forecast, np.float64) * self.std + self.mean
        if self.transform == "difference":
            return self.y[origins - 1][:, None] + np.cumsum(values, axis=1)
        return values

    def training_windows(self, horizon: int, validation: float):
        """``(train, val)`` pairs of ``(inputs [m, window, 1], targets [m, horizon])`` from the
        windows that end inside the training part; the last ``validation`` fraction by time is
        validation."""
        stop = self.n_train - (1 if self.transform == "difference" else 0)
        xs, ys = sliding_windows(self.z, self.window, horizon, stop=stop)
        cut = len(xs) - max(1, int(round(validation * len(xs))))
        to = lambda a: jnp.asarray(a, jnp.float32)
        return ((to(xs[:cut, :, None]), to(ys[:cut])), (to(xs[cut:, :, None]), to(ys[cut:])))


# --- networks ---------------------------------------------------------------------------------


def make_cell(model: str):
    return gru() if model == "gru" else lstm()


def outputs(model: str, horizon: int) -> int:
    return horizon if model == "lstm_direct" else 1


def init_model(model: str, key: jax.Array, hidden: int, out: int) -> dict:
    k_cell, k_out = jax.random.split(key)
    return {"cell": make_cell(model).init(k_cell, 1, hidden),
            "readout": {"w": jax.random.normal(k_out, (hidden, out)) / math.sqrt(hidden),
                        "b": jnp.zeros((out,))}}


def predict(model: str, params: dict, xs: jax.Array) -> jax.Array:
    """``[b, out]``: the readout of the last hidden state for windows ``xs`` ``[b, window, 1]``."""
    h = rnn(make_cell(model), params["cell"], xs)[:, -1]
    return h @ params["readout"]["w"] + params["readout"]["b"]


def recursive_forecast(model: str, params: dict, windows: jax.Array, horizon: int) -> jax.Array:
    """``[b, horizon]``: one-step predictions fed back into the window ``[b, window]``."""

    def step(window, _):
        nxt = predict(model, params, window[:, :, None])[:, 0]
        return jnp.concatenate([window[:, 1:], nxt[:, None]], axis=1), nxt

    _, preds = jax.lax.scan(step, windows, None, length=horizon)
    return preds.T


def forecast(model: str, params: dict, windows: jax.Array, horizon: int) -> jax.Array:
    if model == "lstm_direct":
        return predict(model, params, windows[:, :, None])
    return recursive_forecast(model, params, windows, horizon)


def make_loss(model: str):
    def loss_fn(params, batch, key):
        xs, ys = batch
        return mse(predict(model, params, xs), ys)

    return loss_fn


def make_optimizer(config: Config) -> optax.GradientTransformation:
    return optax.chain(clip_by_global_norm(config.clip_norm),
                       optax.adam(optax.cosine_decay_schedule(config.learning_rate, config.steps)))


def plan(config: Config) -> list[tuple[str, str, int]]:
    return [(s, m, seed) for s in config.series for m in config.models for seed in range(config.seeds)]


def run_key(config: Config, series: str, model: str, seed: int) -> jax.Array:
    key = jax.random.fold_in(jax.random.key(config.seed), list(SETTINGS).index(series))
    return jax.random.fold_in(jax.random.fold_in(key, NEURAL.index(model)), seed)


def train_one(index: int, runs: list, data: Prepared, config: Config, run_dir: RunDir, bar,
              ckpt: RunCheckpoints, sweep: dict) -> None:
    """Train ``runs[index]`` from where ``sweep["current"]`` left it, keep its best-validation
    parameters, forecast the held-out origins and append the record to ``sweep["finished"]``."""
    series, model, seed = runs[index]
    out = outputs(model, data.horizon)
    (train_x, train_y), val = data.training_windows(out, config.validation)
    key = run_key(config, series, model, seed)
    init = init_model(model, jax.random.fold_in(key, 0), config.hidden, out)
    optimizer = make_optimizer(config)
    loss_fn = make_loss(model)
    step = make_train_step(loss_fn, optimizer)
    evaluate = make_eval_step(loss_fn)
    # The step donates its parameters: "best" must not share their buffers.
    template = {"params": init, "opt_state": optimizer.init(init), "best": jax.tree.map(jnp.copy, init)}
    current, state = ckpt.sweep_run(sweep, index, template,
                                    lambda: {"run": index, "step": 0, "best_val": None, "best_step": 0,
                                             "wall_s": 0.0})
    params, opt_state, best = state["params"], state["opt_state"], state["best"]
    started, wall_before = time.perf_counter(), current["wall_s"]
    batch_key = jax.random.fold_in(key, 1)
    m = train_x.shape[0]
    last_run = index == len(runs) - 1
    for k in range(current["step"], config.steps):
        idx = jax.random.randint(jax.random.fold_in(batch_key, k), (config.batch_size,), 0, m)
        params, opt_state, metrics = step(params, opt_state, (train_x[idx], train_y[idx]))
        done = k + 1
        if done % config.eval_every == 0 or done == config.steps:
            val_loss = float(evaluate(params, val)["loss"])
            train_loss = float(metrics["loss"])
            run_dir.log(kind="eval", series=series, model=model, seed=seed, step=done,
                        train_loss=train_loss, val_loss=val_loss)
            if current["best_val"] is None or val_loss < current["best_val"]:
                current["best_val"], current["best_step"] = val_loss, done
                best = jax.tree.map(jnp.copy, params)
            bar.set_postfix_str(f"{series} {model} s{seed}: val {val_loss:.4f}")
        bar.update(1)
        current["step"] = done
        sweep_step = index * config.steps + done
        final = last_run and done == config.steps
        if final or ckpt.due(sweep_step):
            current["wall_s"] = wall_before + time.perf_counter() - started
            ckpt.save(sweep_step, {"params": params, "opt_state": opt_state, "best": best}, sweep, force=final)

    windows = jnp.asarray(data.windows_before(data.origins), jnp.float32)
    z_forecast = np.asarray(jax.jit(forecast, static_argnums=(0, 3))(model, best, windows, data.horizon))
    sweep["finished"].append({
        "forecasts": data.decode(z_forecast, data.origins),
        "best_val": current["best_val"], "best_step": current["best_step"],
        "wall_s": round(wall_before + time.perf_counter() - started, 2),
    })
    sweep["current"] = None


# --- statistical baselines -----------------------------------------------------------------


def _statsmodels():
    from seqjax.data.time_series import _statsmodels_datasets  # the clear error when missing

    _statsmodels_datasets()
    from statsmodels.tsa.ar_model import AutoReg, ar_select_order
    from statsmodels.tsa.arima.model import ARIMA
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    return AutoReg, ar_select_order, ARIMA, SARIMAX


def fit_baselines(data: Prepared, config: Config) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Forecasts ``[origins, H]`` of every baseline, and what was fitted (orders, AIC)."""
    AutoReg, ar_select_order, ARIMA, SARIMAX = _statsmodels()
    y, origins, h = data.y, data.origins, data.horizon
    train = y[:data.n_train]
    forecasts = {"persistence": seasonal_naive(y, origins, h, 1)}
    period = data.series.period
    if period > 1:
        forecasts["seasonal_naive"] = seasonal_naive(y, origins, h, period)
    fitted: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' convergence and frequency warnings
        trend = "ct" if data.transform == "difference" else "c"
        maxlag = min(2 * max(period, 6) + 2, data.n_train // 4)
        lags = ar_select_order(train, maxlag=maxlag, trend=trend, ic="aic").ar_lags or [1]
        ar = AutoReg(train, lags=lags, trend=trend).fit()
        forecasts["ar"] = np.stack([ar.apply(y[:o]).forecast(h) for o in origins])
        fitted["ar"] = {"lags": [int(v) for v in lags], "trend": trend, "aic": float(ar.aic)}

        if data.transform == "difference":  # the seasonal series
            grid = SARIMA_GRID if config.arima_search else SARIMA_GRID[1:2]
            fits = [(SARIMAX(train, order=o, seasonal_order=s).fit(disp=False), (o, s)) for o, s in grid]
        else:
            grid = ARIMA_GRID if config.arima_search else ((1, 1, 1),)
            fits = [(ARIMA(train, order=o, trend="c" if o[1] == 0 else "n").fit(), (o, None)) for o in grid]
        best, (order, seasonal) = min(fits, key=lambda f: f[0].aic)
        forecasts["arima"] = np.stack([best.apply(y[:o]).forecast(h) for o in origins])
        fitted["arima"] = {"order": list(order), "seasonal_order": list(seasonal) if seasonal else None,
                           "aic": float(best.aic), "candidates": len(grid)}
    return forecasts, fitted


# --- main -------------------------------------------------------------------------------------


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    runs = plan(config)
    prepared = {name: Prepared(name) for name in config.series}
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        bar = progress(desc="forecasting", total=len(runs) * config.steps, initial=resumed.step if resumed else 0)
        for index in range(len(sweep["finished"]), len(runs)):
            train_one(index, runs, prepared[runs[index][0]], config, run_dir, bar, ckpt, sweep)
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions

    results, fitted, arrays, timings = {}, {}, {}, {"networks": {}, "baselines_s": {}}
    for name, data in prepared.items():
        t0 = time.perf_counter()
        forecasts, fitted[name] = fit_baselines(data, config)
        timings["baselines_s"][name] = round(time.perf_counter() - t0, 2)
        scale = mase_scale(data.y[:data.n_train], data.series.period)
        results[name] = {model: forecast_scores(f, data.targets, scale) for model, f in forecasts.items()}
        for model in config.models:
            done = [d for (s, m, _), d in zip(runs, sweep["finished"]) if s == name and m == model]
            per_seed = [forecast_scores(d["forecasts"], data.targets, scale) for d in done]
            results[name][model] = mean_over_seeds(per_seed) | {
                "best_step": [d["best_step"] for d in done]}
            forecasts[model] = np.mean([d["forecasts"] for d in done], axis=0)
            timings["networks"][f"{name}/{model}"] = [d["wall_s"] for d in done]
        arrays[name] = forecasts
        run_dir.save_arrays(f"forecasts_{name}", targets=data.targets, origins=data.origins,
                            **{k: v for k, v in forecasts.items()})
    summary = summarise(results, fitted, prepared, config)
    summary["environment"] = environment()
    summary["timings"] = {"runtime_s": round(runtime_s, 1), "sessions": sessions, **timings}
    run_dir.save_figure(plot_forecasts(prepared, arrays, config), "forecasts")
    run_dir.save_figure(plot_horizons(results, prepared), "horizons")
    return summary


def mean_over_seeds(scores: list[dict]) -> dict[str, Any]:
    """Per-horizon means over seeds, with the spread of the mean RMSE and MASE."""
    out = {k: [float(v) for v in np.mean([s[k] for s in scores], axis=0)] for k in ("rmse", "mae", "mase")}
    out["count"] = scores[0]["count"]
    for k in ("rmse_mean", "mae_mean", "mase_mean"):
        values = [s[k] for s in scores]
        out[k] = float(np.mean(values))
        out[k.replace("_mean", "_mean_std")] = float(np.std(values))
    out["seeds"] = len(scores)
    return out


def summarise(results: dict, fitted: dict, prepared: dict, config: Config) -> dict[str, Any]:
    best = {}
    for name, by_model in results.items():
        ranked = sorted(by_model, key=lambda m: by_model[m]["mase_mean"])
        best[name] = {"model": ranked[0], "mase_mean": by_model[ranked[0]]["mase_mean"],
                      "ranking": ranked}
    return {
        "results": results,
        "fitted": fitted,
        "best": best,
        "series": {name: {"length": len(d.y), "train": d.n_train, "holdout": len(d.origins),
                          "horizon": d.horizon, "window": d.window, "period": d.series.period,
                          "transform": d.transform, "start": d.series.start,
                          "frequency": d.series.frequency, "description": d.series.description}
                   for name, d in prepared.items()},
        "protocol": "rolling origin over the held-out stretch; networks keep their best-validation parameters; "
                    "network scores are means over seeds (forecast_scores per seed, then averaged)",
        "steps": config.steps,
    }


def format_table(summary: dict[str, Any]) -> str:
    lines = []
    for name, by_model in summary["results"].items():
        h = summary["series"][name]["horizon"]
        header = (f"{name:<9} {'model':<15} | {'RMSE h=1':>9} {f'RMSE h={h}':>10} {'RMSE mean':>10} "
                  f"{'MAE mean':>9} {'MASE h=1':>9} {'MASE mean':>10}")
        lines += [header, "-" * len(header)]
        for model, s in sorted(by_model.items(), key=lambda kv: kv[1]["mase_mean"]):
            spread = f" ±{s['rmse_mean_std']:.2f}" if "rmse_mean_std" in s else ""
            lines.append(f"{'':<9} {model:<15} | {s['rmse'][0]:>9.3f} {s['rmse'][-1]:>10.3f} "
                         f"{s['rmse_mean']:>10.3f} {s['mae_mean']:>9.3f} {s['mase'][0]:>9.3f} "
                         f"{s['mase_mean']:>10.3f}{spread}")
        lines.append("")
    return "\n".join(lines)


# --- figures ----------------------------------------------------------------------------------


def plot_forecasts(prepared: dict, forecasts: dict, config: Config) -> Figure:
    """Per series: the held-out stretch, one-step forecasts of the best baseline and networks,
    and the full-horizon fans from three origins."""
    fig = Figure(figsize=(12, 3.2 * len(prepared)), layout="constrained")
    axes = fig.subplots(len(prepared), 1, squeeze=False)[:, 0]
    for ax, (name, data) in zip(axes, prepared.items()):
        t0 = data.n_train - 3 * data.horizon
        t = np.arange(t0, len(data.y))
        ax.plot(t, data.y[t0:], color="k", lw=1.6, label="series")
        ax.axvline(data.n_train - 0.5, color="k", ls=":", lw=1)
        fans = data.origins[np.linspace(0, len(data.origins) - data.horizon, 3).astype(int)]
        for model, f in forecasts[name].items():
            ax.plot(data.origins, f[:, 0], color=COLORS[model], lw=1, alpha=0.8, label=f"{model} (h=1)")
            for o in fans:
                i = int(o - data.origins[0])
                ax.plot(o + np.arange(data.horizon), f[i], color=COLORS[model], lw=1, ls="--", alpha=0.7)
        ax.set_title(f"{name}: held-out stretch (after the dotted line), one-step forecasts and "
                     f"{data.horizon}-step fans from 3 origins")
        ax.set_xlabel(f"{data.series.frequency}s since {data.series.start}")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    return fig


def plot_horizons(results: dict, prepared: dict) -> Figure:
    fig = Figure(figsize=(4.2 * len(results) + 1.6, 3.6), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (name, by_model) in zip(axes, results.items()):
        h = np.arange(1, prepared[name].horizon + 1)
        for model, s in by_model.items():
            ax.plot(h, s["mase"], "o-", ms=3, color=COLORS[model], label=model)
        ax.set_title(f"{name}: MASE by horizon")
        ax.set_xlabel("horizon h")
        ax.set_ylabel("MASE (lower is better)")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    return fig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
