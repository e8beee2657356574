"""Inside trained recurrent networks: per-unit activations over text, gate activations over time,
gate saturation, and hidden-state trajectories, from a character LSTM and from an LSTM and a GRU
trained on the adding problem.

What it measures
    Three models are trained here: a character-level LSTM language model on the Lee corpus
    (gensim's ``lee_background.cor``; the last 10% held out), with the stateful truncated-BPTT
    loop of ``experiments.char_rnn``; and an LSTM and a GRU that read the adding problem
    (:func:`seqjax.data.adding_problem`: values and two markers, target the sum of the two marked
    values; predicting 1 gives MSE 1/6) and answer from their last state. Then, on held-out
    text and on test sequences:

    * **gates from the model's own step**: every gate activation comes from ``cell.gates``
      (:func:`seqjax.cells.lstm_gates`, :func:`seqjax.cells.gru_gates`), the function the cell's
      ``step`` calls, scanned over the inputs; the states it gives are checked against
      :func:`seqjax.recurrence.rnn` (``states_max_abs_diff`` in ``metrics.json``);
    * **saturation** as Karpathy, Johnson & Fei-Fei (2015, "Visualizing and understanding
      recurrent networks", Fig. 3) measure it: per unit, the fraction of time steps at which a
      gate is left-saturated (< 0.1) or right-saturated (> 0.9);
    * **interpretable cells**: the char LSTM's units whose cell state ``tanh(c)`` correlates most
      with simple text features (inside quotation marks, position within the word, position
      within the line since the last full stop, a space), drawn as a colour overlay of the
      characters (Karpathy et al. 2015, Fig. 2);
    * **trajectories**: hidden states projected on their first two principal components (numpy
      SVD of the centred states), with the explained variance.

Outputs (``runs/recurrent_internals/<UTC timestamp>/`` or ``--out``): ``metrics.json``
(held-out bpc, adding MSE, saturation fractions per gate, the chosen units and their
correlations, PCA variance), ``activations.npz`` (``char/text``, ``char/ids``, ``char/h``,
``char/c`` ``[t, units]``, ``char/gate_<name>`` ``[t, units]``; ``adding_<cell>/xs`` ``[n, T, 2]``
and its states and gates ``[n, T, units]``: what the HTML explorer's second page reads),
``char_units.png`` (the overlay), ``char_gates.png`` and ``adding_gates.png`` (gates over time),
``saturation.png`` (per-unit left vs right saturation and their histograms), ``trajectories.png``
(PCA), ``training.png``, ``checkpoints/``.

Result (default run, 8 minutes on 2 shared CPU cores; ``metrics.json``)
    Char LSTM (128 units, 1000 steps): held-out 2.71 bits per character (unigram 4.43). Its
    forget gate is right-saturated (> 0.9) at 73% of steps on average and left-saturated at 4%,
    the input gate 35% / 0.2%, the output gate 34% / 29% (the pattern of Karpathy et al. 2015,
    Fig. 3: forget gates mostly on, output gates spread over both ends). Unit 5's ``tanh(c)``
    follows the position within the word (r = -0.70), unit 124 spaces (r = -0.68); no unit tracks
    quotation marks (best |r| = 0.04). Adding problem at T = 50 (32 units, 1200 steps): LSTM
    test MSE 0.0014, GRU 0.0022 (baseline 0.167), and **no gate of either ever saturates** (no
    step below 0.1 or above 0.9, except 3% of the GRU's update-gate steps above 0.9): the task is
    solved with graded gates; the LSTM's forget gate drops at the marked steps (0.62 vs 0.71).
    The states from ``cell.gates`` equal ``rnn``'s exactly (0.0 difference).

Fixed from the seeds' figures
    The seeds drew one step of gates from a cell initialised at 0.01 with zero biases (every gate
    about 0.5, the "forget gate ~ 0.5 keeps half" remark an artefact of the init) and
    trajectories from a diverging linear rate model. Here the gates and states are those of
    trained models over real sequences.

Run::

    python -m experiments.recurrent_internals            # default (minutes on CPU)
    python -m experiments.recurrent_internals --quick    # seconds; used by the tests
    python -m experiments.recurrent_internals --resume RUN_DIR
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

from experiments import char_rnn as cr
from seqjax.cells import gru, lstm
from seqjax.data import CharTokenizer, adding_problem, stream_batches
from seqjax.data.corpora import load_text, split_held_out
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.recurrence import rnn
from seqjax.train import clip_by_global_norm, make_eval_step, make_train_step, stateful, warmup_cosine_decay

NAME = "recurrent_internals"
SATURATION_LOW, SATURATION_HIGH = 0.1, 0.9
ADDING_CELLS = ("lstm", "gru")
FEATURES = ("in_quotes", "word_position", "sentence_position", "is_space")


@dataclasses.dataclass(frozen=True)
class Config:
    """Gates, saturation, interpretable units and PCA trajectories of trained LSTMs and GRUs."""

    # --quick: a 20k-character slice, hidden 32, 20 steps; the adding problem at T = 20 with
    # hidden 16 for 20 steps per cell (seconds, for the tests).
    QUICK: ClassVar[dict[str, Any]] = {
        "corpus_chars": 20_000, "char_hidden": 32, "char_embed": 16, "char_batch": 8,
        "bptt": 32, "adding_length": 20, "adding_hidden": 16, "adding_batch": 16,
        "overlay_chars": 48, "gate_chars": 32, "analysis_chars": 800, "test_sequences": 8,  # figures draw one label per char
        "checkpoint_every": 30, "char_steps": 20, "adding_steps": 20,
    }

    corpus: str = option("lee_background", "the character LM's corpus (seqjax.data.corpora.load_text)")
    corpus_chars: int | None = option(None, "use only the first N characters (none: all)")
    char_hidden: int = option(128, "char LSTM hidden units")
    char_embed: int = option(32, "char LSTM embedding size")
    char_steps: int = option(1000, "char LSTM optimiser steps (one truncated-BPTT window each)")
    char_batch: int = option(32, "char LSTM parallel streams")
    bptt: int = option(64, "char LSTM truncated-BPTT window")
    char_learning_rate: float = option(5e-3, "char LSTM peak Adam learning rate")
    adding_length: int = option(50, "adding problem sequence length T")
    adding_hidden: int = option(32, "adding problem hidden units (LSTM and GRU)")
    adding_steps: int = option(1200, "adding problem optimiser steps per cell")
    adding_batch: int = option(64, "adding problem batch size")
    adding_learning_rate: float = option(3e-3, "adding problem peak Adam learning rate")
    overlay_chars: int = option(480, "held-out characters in the unit overlay figure")
    gate_chars: int = option(200, "held-out characters in the gate heatmaps")
    analysis_chars: int = option(5000, "held-out characters the saturation and correlations are measured on")
    units_shown: int = option(4, "interpretable units drawn (the best per feature)")
    test_sequences: int = option(256, "adding problem test sequences")
    seed: int = option(0, "base random seed")
    checkpoint_every: int = option(200, "save a checkpoint (for --resume) every this many steps")

    def __post_init__(self):
        for name in ("char_hidden", "char_embed", "char_steps", "char_batch", "bptt", "adding_hidden",
                     "adding_steps", "adding_batch", "overlay_chars", "gate_chars", "analysis_chars",
                     "units_shown", "test_sequences", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.adding_length < 4:
            raise ValueError(f"adding_length must be at least 4; got {self.adding_length}.")
        if self.corpus_chars is not None and self.corpus_chars < 2000:
            raise ValueError(f"corpus_chars must be at least 2000 (or none); got {self.corpus_chars}.")
        if self.char_learning_rate <= 0 or self.adding_learning_rate <= 0:
            raise ValueError("learning rates must be positive.")


# --- measurements -----------------------------------------------------------------------------


def gates_over_time(cell, params: dict, xs: jax.Array, carry: Any = None) -> tuple[Any, Any]:
    """Scan ``cell.gates`` (the function the cell's step calls) over ``xs`` ``[t, d]``:
    ``(carries [t, ...], gates [t, ...])``, each a pytree of ``[t, h]`` arrays."""
    if cell.gates is None:
        raise ValueError(f"cell {cell.name!r} has no gates (only gated cells do: lstm, gru, gru_cho).")
    carry = cell.zero_carry(params, jnp.float32) if carry is None else carry

    def body(c, x):
        c, g = cell.gates(params, c, x)
        return c, (c, g)

    _, (carries, gates) = jax.lax.scan(body, carry, xs)
    return carries, gates


def saturation(gate: np.ndarray, low: float = SATURATION_LOW, high: float = SATURATION_HIGH) -> dict[str, Any]:
    """Per unit, the fraction of steps with the gate below ``low`` (left-saturated) and above
    ``high`` (right-saturated), over every leading axis of ``gate`` ``[..., units]``."""
    g = np.asarray(gate).reshape(-1, np.asarray(gate).shape[-1])
    left, right = (g < low).mean(0), (g > high).mean(0)
    return {"left": left, "right": right, "mean_left": float(left.mean()), "mean_right": float(right.mean()),
            "mean_value": float(g.mean())}


def pca_2d(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project ``states`` ``[n, d]`` on their first two principal components (SVD of the centred
    states): ``(projection [n, 2], explained variance ratio of every component [min(n, d)])``."""
    x = np.asarray(states, np.float64)
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    var = s**2
    return x @ vt[:2].T, var / var.sum()


def text_features(text: str) -> dict[str, np.ndarray]:
    """Per character: inside double quotation marks (0/1), position within the word (0 at a
    space), position since the last full stop or newline, and whether it is a space."""
    quote, word, sentence = 0, 0, 0
    out = {k: np.zeros(len(text)) for k in FEATURES}
    for t, ch in enumerate(text):
        if ch == '"':
            quote = 1 - quote
        word = 0 if ch.isspace() else word + 1
        sentence = 0 if ch in ".\n" else sentence + 1
        out["in_quotes"][t], out["word_position"][t] = quote, word
        out["sentence_position"][t], out["is_space"][t] = sentence, float(ch == " ")
    return out


def correlations(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson correlation of each unit ``values[:, u]`` with ``feature`` (0 for a constant)."""
    v = values - values.mean(0)
    f = feature - feature.mean()
    denom = np.sqrt((v**2).sum(0) * (f**2).sum())
    return np.where(denom > 0, (v * f[:, None]).sum(0) / np.where(denom > 0, denom, 1.0), 0.0)


# --- training -----------------------------------------------------------------------------------


def char_setup(config: Config) -> dict[str, Any]:
    text = load_text(config.corpus)
    if config.corpus_chars is not None:
        text = text[: config.corpus_chars]
    train_text, held_text = split_held_out(text, 0.1)
    tokenizer = CharTokenizer.fit(train_text, unk_token=cr.UNK)
    cell = lstm()
    fresh = cr.init_params(jax.random.fold_in(jax.random.key(config.seed), 1), cell, len(tokenizer),
                           config.char_embed, config.char_hidden)
    schedule = warmup_cosine_decay(config.char_learning_rate, min(100, config.char_steps // 10), config.char_steps,
                                   end_value=0.1 * config.char_learning_rate)
    optimizer = optax.chain(clip_by_global_norm(1.0), optax.adam(schedule))
    windows = stream_batches(tokenizer.encode(train_text), config.char_batch, config.bptt)
    if len(windows) == 0:
        raise ValueError("the training text is too short for one window.")
    return {"text": text, "train_text": train_text, "held_text": held_text, "tokenizer": tokenizer, "cell": cell,
            "fresh": fresh, "optimizer": optimizer, "windows": windows,
            "train": stateful.make_stateful_trainer(functools.partial(cr.forward, cell), optimizer)}


def adding_setup(config: Config, name: str) -> dict[str, Any]:
    cell = lstm() if name == "lstm" else gru()
    k = jax.random.fold_in(jax.random.key(config.seed), 10 + ADDING_CELLS.index(name))
    k_cell, k_out = jax.random.split(k)
    h = config.adding_hidden
    fresh = {"cell": cell.init(k_cell, 2, h),
             "out": {"w": jax.random.normal(k_out, (h,)) / math.sqrt(h), "b": jnp.ones(())}}
    schedule = warmup_cosine_decay(config.adding_learning_rate, min(50, config.adding_steps // 10),
                                   config.adding_steps, end_value=0.1 * config.adding_learning_rate)
    optimizer = optax.chain(clip_by_global_norm(1.0), optax.adam(schedule))

    def predict(params, xs):
        hs = rnn(cell, params["cell"], xs)
        return hs[:, -1] @ params["out"]["w"] + params["out"]["b"]

    def loss_fn(params, batch, key):
        del key
        return jnp.mean((predict(params, batch[0]) - batch[1]) ** 2)

    return {"cell": cell, "fresh": fresh, "optimizer": optimizer, "step": make_train_step(loss_fn, optimizer),
            "predict": jax.jit(predict), "loss": make_eval_step(loss_fn)}


def adding_batch(config: Config, name: str, step: int):
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), 20 + ADDING_CELLS.index(name)), step)
    return adding_problem(key, config.adding_batch, config.adding_length)


def adding_test(config: Config):
    return adding_problem(jax.random.fold_in(jax.random.key(config.seed), 99), config.test_sequences,
                          config.adding_length)


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    char = char_setup(config)
    adding = {name: adding_setup(config, name) for name in ADDING_CELLS}
    template = {"char": {"params": char["fresh"], "opt_state": char["optimizer"].init(char["fresh"]),
                         "carry": cr.zero_carry(char["cell"], char["fresh"], config.char_batch)}}
    for name, a in adding.items():
        template[name] = {"params": a["fresh"], "opt_state": a["optimizer"].init(a["fresh"])}
    total = config.char_steps + len(ADDING_CELLS) * config.adding_steps

    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        if resumed is None:
            state, prog = template, {"done": 0, "losses": {"char": [], **{n: [] for n in ADDING_CELLS}}, "train_s": 0.0}
        else:
            state, prog = ckpt.state(template), resumed.progress
        bar = progress(desc="recurrent internals", total=total, initial=prog["done"])
        started, before = time.perf_counter(), prog["train_s"]
        windows = char["windows"]
        while prog["done"] < total:
            done = prog["done"]
            if done < config.char_steps:
                s = state["char"]
                w = done % len(windows)
                carry = cr.zero_carry(char["cell"], s["params"], config.char_batch) if w == 0 else s["carry"]
                x, y = windows[w]
                params, opt_state, loss, carry = char["train"](s["params"], s["opt_state"], jnp.asarray(x)[None],
                                                               jnp.asarray(y)[None], carry)
                state = {**state, "char": {"params": params, "opt_state": opt_state, "carry": carry}}
                loss, part = float(loss[0]), "char"
            else:
                k = done - config.char_steps
                part, step = ADDING_CELLS[k // config.adding_steps], k % config.adding_steps
                s = state[part]
                params, opt_state, metrics = adding[part]["step"](s["params"], s["opt_state"],
                                                                  adding_batch(config, part, step))
                state = {**state, part: {"params": params, "opt_state": opt_state}}
                loss = float(metrics["loss"])
            prog["losses"][part].append(loss)
            prog["done"] = done + 1
            run_dir.log(part=part, step=len(prog["losses"][part]), loss=loss)
            bar.update(1)
            prog["train_s"] = before + time.perf_counter() - started
            ckpt.save(prog["done"], state, prog, force=prog["done"] == total)
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions

    arrays: dict[str, np.ndarray] = {}
    summary: dict[str, Any] = {"char": analyse_char(config, char, state["char"]["params"], arrays, run_dir)}
    for name in ADDING_CELLS:
        summary[f"adding_{name}"] = analyse_adding(config, name, adding[name], state[name]["params"], arrays)
    run_dir.save_arrays("activations", **arrays)
    run_dir.save_figure(plot_saturation(summary), "saturation")
    run_dir.save_figure(plot_trajectories(summary, arrays, config), "trajectories")
    run_dir.save_figure(plot_training(prog["losses"]), "training")
    for s in summary.values():
        s.pop("_plot", None)
    summary["environment"] = environment()
    summary["timings"] = {"runtime_s": round(runtime_s, 1), "train_s": round(prog["train_s"], 1), "sessions": sessions,
                          "note": "wall clock on a CPU shared with other jobs"}
    return summary


def _sat_summary(gates: dict[str, np.ndarray], names: Sequence[str]) -> dict[str, Any]:
    out = {}
    for g in names:
        s = saturation(gates[g])
        out[g] = {"mean_left": s["mean_left"], "mean_right": s["mean_right"], "mean_value": s["mean_value"],
                  "left": s["left"].tolist(), "right": s["right"].tolist()}
    return out


def analyse_char(config: Config, char: dict, params: dict, arrays: dict, run_dir: RunDir) -> dict[str, Any]:
    cell, tok = char["cell"], char["tokenizer"]
    text = char["held_text"][: config.analysis_chars]
    ids = tok.encode(text)
    carries, gates = jax.jit(functools.partial(gates_over_time, cell))(params["cell"], params["embed"][ids])
    h, c = np.asarray(carries.h), np.asarray(carries.c)
    g = {k: np.asarray(v) for k, v in gates._asdict().items()}
    # the gates' states are the model's: rnn (fused LSTM path) over the same input
    hs = np.asarray(rnn(cell, params["cell"], params["embed"][ids][None])[0])
    diff = float(np.max(np.abs(hs - h)))
    eval_step = make_eval_step(cr.window_loss(cell, reduction="sum"), has_aux=True)
    held = stream_batches(tok.encode(char["held_text"]), 8, 256, drop_last=False)
    bpc = cr.evaluate_bpc(eval_step, cell, params, held)
    arrays |= {"char/text": np.asarray(text), "char/ids": ids, "char/h": h.astype(np.float32),
               "char/c": c.astype(np.float32), **{f"char/gate_{k}": v.astype(np.float32) for k, v in g.items()}}
    feats = text_features(text)
    tc = np.tanh(c)
    units, used = {}, set()
    for f in FEATURES:  # the best unit per feature, each unit drawn once
        r = correlations(tc, feats[f])
        order = [int(u) for u in np.argsort(-np.abs(r), kind="stable")]
        u = next((u for u in order if u not in used), order[0])
        used.add(u)
        units[f] = {"unit": u, "correlation": float(r[u]), "best_unit": order[0],
                    "best_correlation": float(r[order[0]])}
    shown = [units[f]["unit"] for f in FEATURES][: config.units_shown]
    run_dir.save_figure(plot_overlay(text[: config.overlay_chars], tc[: config.overlay_chars], shown,
                                     [f for f in FEATURES][: config.units_shown], units), "char_units")
    run_dir.save_figure(plot_gates(g, text[: config.gate_chars], "char LSTM on held-out text",
                                   ("i", "f", "o", "g")), "char_gates")
    proj, var = pca_2d(h)
    return {"cell": "lstm", "hidden": config.char_hidden, "held_out_bpc": bpc,
            "unigram_bpc": cr.unigram_bpc(tok.encode(char["train_text"]), tok.encode(char["held_text"]), len(tok)),
            "analysis_chars": len(text), "states_max_abs_diff": diff,
            "saturation": _sat_summary(g, ("i", "f", "o")), "interpretable_units": units,
            "pca_explained_variance": var[:5].tolist(),
            "_plot": {"gates": g, "proj": proj}}


def analyse_adding(config: Config, name: str, a: dict, params: dict, arrays: dict) -> dict[str, Any]:
    cell = a["cell"]
    xs, ys = adding_test(config)
    mse = float(a["loss"](params, (xs, ys))["loss"])
    carries, gates = jax.jit(jax.vmap(functools.partial(gates_over_time, cell), in_axes=(None, 0)))(params["cell"], xs)
    h = np.asarray(carries.h if name == "lstm" else carries)
    hs = np.asarray(rnn(cell, params["cell"], xs))
    g = {k: np.asarray(v) for k, v in gates._asdict().items()}
    arrays |= {f"adding_{name}/xs": np.asarray(xs), f"adding_{name}/ys": np.asarray(ys),
               f"adding_{name}/h": h.astype(np.float32),
               **{f"adding_{name}/gate_{k}": v.astype(np.float32) for k, v in g.items()}}
    if name == "lstm":
        arrays[f"adding_{name}/c"] = np.asarray(carries.c, np.float32)
    proj, var = pca_2d(h.reshape(-1, h.shape[-1]))
    sigmoid_gates = ("i", "f", "o") if name == "lstm" else ("r", "z")
    # gates at the marked steps against the others (the two inputs that matter)
    marked = np.asarray(xs[..., 1]) > 0.5
    at_marks = {k: {"marked": float(g[k][marked].mean()), "unmarked": float(g[k][~marked].mean())}
                for k in sigmoid_gates}
    return {"cell": name, "hidden": config.adding_hidden, "length": config.adding_length, "test_mse": mse,
            "baseline_mse": 1 / 6, "states_max_abs_diff": float(np.max(np.abs(hs - h))),
            "saturation": _sat_summary(g, sigmoid_gates), "gates_at_markers": at_marks,
            "pca_explained_variance": var[:5].tolist(),
            "_plot": {"gates": {k: v[0] for k, v in g.items()}, "proj": proj.reshape(h.shape[0], h.shape[1], 2),
                      "marks": marked}}


# --- figures ----------------------------------------------------------------------------------


def plot_overlay(text: str, values: np.ndarray, units: list[int], features: list[str], info: dict) -> Figure:
    """Karpathy-style overlay: each character on a cell coloured by ``tanh(c)`` of one unit
    (blue -1 ... white 0 ... red +1)."""
    import matplotlib

    cmap = matplotlib.colormaps["bwr"]
    width = 80
    lines = [text[i: i + width] for i in range(0, len(text), width)]
    fig = Figure(figsize=(12, 0.55 + len(units) * (0.22 * len(lines) + 0.45)))
    axes = fig.subplots(len(units), 1, squeeze=False)[:, 0]
    for ax, u, f in zip(axes, units, features):
        for row, line in enumerate(lines):
            for col, ch in enumerate(line):
                t = row * width + col
                v = float(values[t, u])
                ax.add_patch(matplotlib.patches.Rectangle((col, -row - 0.5), 1, 1, color=cmap((v + 1) / 2), lw=0))
                ax.text(col + 0.5, -row, ch if ch != "\n" else "\u21b5", ha="center", va="center", fontsize=6,
                        family="monospace")
        ax.set_xlim(0, width)
        ax.set_ylim(-len(lines) + 0.5, 0.5)
        ax.axis("off")
        ax.set_title(f"unit {u}: tanh(c), the unit (not shown above) most correlated with '{f}' "
                     f"(r = {info[f]['correlation']:+.2f})",
                     fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def plot_gates(gates: dict, text: str | None, title: str, names: Sequence[str], marks=None) -> Figure:
    fig = Figure(figsize=(12, 1.9 * len(names) + 0.6))
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    n = len(text) if text is not None else gates[names[0]].shape[0]
    for ax, k in zip(axes, names):
        g = np.asarray(gates[k])[:n].T
        lo = -1.0 if k in ("g", "n") else 0.0
        im = ax.imshow(g, aspect="auto", cmap="viridis", vmin=lo, vmax=1.0, interpolation="nearest")
        ax.set_ylabel(f"{k}\nunit", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
        if text is not None:
            ax.set_xticks(range(n), [c if c != "\n" else "\u21b5" for c in text], fontsize=4.5, family="monospace")
        if marks is not None:
            for t in np.flatnonzero(marks):
                ax.axvline(t, color="red", lw=0.8)
    axes[-1].set_xlabel("time step" + (" (red: marked steps)" if marks is not None else ""))
    fig.suptitle(title + ": gate activations over time (tanh candidates in [-1, 1], sigmoid gates in [0, 1])",
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_saturation(summary: dict) -> Figure:
    models = ["char", "adding_lstm", "adding_gru"]
    fig = Figure(figsize=(13, 7))
    axes = fig.subplots(2, len(models))
    for col, m in enumerate(models):
        sat = summary[m]["saturation"]
        ax = axes[0, col]
        for k, v in sat.items():
            ax.scatter(v["left"], v["right"], s=12, alpha=0.7, label=f"{k} (mean {v['mean_left']:.2f} / {v['mean_right']:.2f})")
        ax.plot([0, 1], [1, 0], color="grey", lw=0.5)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("fraction left-saturated (< 0.1)")
        ax.set_ylabel("fraction right-saturated (> 0.9)")
        ax.set_title(f"{m}: one dot per unit", fontsize=9)
        ax.legend(fontsize=7)
        ax = axes[1, col]
        bins = np.linspace(0, 1, 21)
        for k, v in sat.items():
            ax.hist(np.asarray(v["left"]) + np.asarray(v["right"]), bins=bins, alpha=0.5, label=k)
        ax.set_xlabel("fraction of steps saturated (either side)")
        ax.set_ylabel("units")
        ax.legend(fontsize=7)
    fig.suptitle("Gate saturation per unit (Karpathy, Johnson & Fei-Fei 2015)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_trajectories(summary: dict, arrays: dict, config: Config) -> Figure:
    fig = Figure(figsize=(14, 4.6))
    axes = fig.subplots(1, 3)
    char = summary["char"]
    proj = char["_plot"]["proj"][: config.overlay_chars]
    ax = axes[0]
    ax.plot(proj[:, 0], proj[:, 1], color="lightgrey", lw=0.5, zorder=1)
    text = str(arrays["char/text"])[: len(proj)]
    spaces = np.array([ch == " " for ch in text])
    sc = ax.scatter(proj[:, 0], proj[:, 1], c=np.arange(len(proj)), cmap="viridis", s=6, zorder=2)
    ax.scatter(proj[spaces, 0], proj[spaces, 1], facecolors="none", edgecolors="red", s=14, lw=0.5, zorder=3,
               label="just read a space")
    fig.colorbar(sc, ax=ax, label="character index")
    ev = char["pca_explained_variance"]
    ax.set_title(f"char LSTM h over {len(proj)} held-out characters\nPC1 {ev[0]:.0%}, PC2 {ev[1]:.0%} of the variance",
                 fontsize=9)
    ax.legend(fontsize=7)
    for ax, name in zip(axes[1:], ADDING_CELLS):
        s = summary[f"adding_{name}"]
        proj, marks = s["_plot"]["proj"], s["_plot"]["marks"]
        for b in range(min(6, proj.shape[0])):
            line, = ax.plot(proj[b, :, 0], proj[b, :, 1], lw=0.8, alpha=0.8)
            ax.scatter(proj[b, marks[b], 0], proj[b, marks[b], 1], color=line.get_color(), marker="*", s=60)
            ax.scatter(proj[b, -1, 0], proj[b, -1, 1], color=line.get_color(), marker="s", s=20)
        ev = s["pca_explained_variance"]
        ax.set_title(f"adding problem {name.upper()} (T = {s['length']}, test MSE {s['test_mse']:.4f})\n"
                     f"6 sequences; * marked steps, square: last step; PC1 {ev[0]:.0%}, PC2 {ev[1]:.0%}", fontsize=9)
    for ax in axes:
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    fig.tight_layout()
    return fig


def plot_training(losses: dict) -> Figure:
    fig = Figure(figsize=(11, 3.8))
    axes = fig.subplots(1, 2)
    c = np.asarray(losses["char"])
    if len(c):
        axes[0].plot(np.arange(1, len(c) + 1), c / math.log(2), lw=0.8)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training bits per character")
    axes[0].set_title("char LSTM")
    for name in ADDING_CELLS:
        v = np.asarray(losses[name])
        if len(v):
            axes[1].plot(np.arange(1, len(v) + 1), v, lw=0.8, label=name.upper())
    axes[1].axhline(1 / 6, color="grey", ls="--", lw=0.8, label="predict 1 (MSE 1/6)")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("training MSE")
    axes[1].set_title("adding problem")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def format_report(summary: dict) -> str:
    c = summary["char"]
    lines = [f"char LSTM: held-out {c['held_out_bpc']:.3f} bpc (unigram {c['unigram_bpc']:.3f}); "
             f"states from the gates vs rnn: {c['states_max_abs_diff']:.1e}"]
    for k, v in c["saturation"].items():
        lines.append(f"  gate {k}: left {v['mean_left']:.3f}, right {v['mean_right']:.3f}")
    for f, u in c["interpretable_units"].items():
        lines.append(f"  {f}: unit {u['unit']} r = {u['correlation']:+.2f}")
    for name in ADDING_CELLS:
        s = summary[f"adding_{name}"]
        sat = ", ".join(f"{k} {v['mean_left']:.2f}/{v['mean_right']:.2f}" for k, v in s["saturation"].items())
        lines.append(f"adding {name}: test MSE {s['test_mse']:.4f} (baseline 0.167); saturation left/right: {sat}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_report)


if __name__ == "__main__":
    main()
