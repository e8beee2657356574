"""Character-level RNN language models: a notebook's "hello world!" CharRNN, then a real corpus.

What it measures
    Part 1 (``hello``) reproduces the section "Training a character-level RNN" of the notebook
    *Introduction to Sequence Modeling - Interactive Notebook* (PyTorch; "the notebook" below):
    the text ``"hello world! " * 20`` (260 characters,
    9 distinct), an embedding -> Elman RNN (tanh) -> linear model with ``hidden = 32``, Adam 0.01,
    100 epochs of stateful truncated BPTT over windows of 10 characters (25 windows per epoch, the
    state carried from window to window and reset each epoch). Reported: the epoch loss (the
    notebook's *sum* of the 25 window-mean losses; ~25 ln 9 = 54.9 for a uniform guess), and
    whether greedy decoding from ``"h"`` regenerates the text (``"hello world! hello world!"``);
    samples from ``"h"``, ``"w"`` and ``" "`` of 50 characters as in the notebook.

    Part 2 (``lm``): the same code (embedding -> cell -> linear, the same stateful loop and
    sampler) as an LSTM (or GRU / Elman) language model on real English text: by default the Lee
    news corpus that gensim ships as test data (``lee_background.cor``: 300 Australian news
    articles, ~360k characters; see :mod:`seqjax.data.corpora`). Without gensim installed,
    ``--corpus auto`` falls back to CPython's own reference-manual text (``pydoc_data``), and says
    so in ``metrics.json``. The last 10% of the corpus is held out and never trained on; the
    character vocabulary comes from the training part only (unseen held-out characters map to
    ``[UNK]`` and are scored like any other). Reported: bits per character on the held-out text
    (every held-out character after the first of each of ``eval_batch`` parallel streams, the
    state carried through the whole stream), the same measured on an equally long stretch of the
    training text, the training loss, and samples at temperatures 0.5, 1.0, 1.5 (and greedy).

How
    Training is stateful truncated BPTT (as in the notebook, and in the "stateful training" part
    of the course notes *S-3: RNNs and Transformers*): the token stream is split into
    ``batch_size`` contiguous streams (:func:`seqjax.data.stream_batches`) and cut into windows of
    ``bptt`` characters; the carry at the end of window ``i`` is the initial carry of window
    ``i + 1``, passed through :func:`jax.lax.stop_gradient`, so the forward pass sees each stream
    unbroken while gradients stay inside one window. Steps come from
    :func:`seqjax.train.make_train_step` (the loss returns the new carry as its aux output) with
    :func:`seqjax.train.cross_entropy` and :func:`seqjax.train.bits_per_character`, gradient clipping
    from :mod:`seqjax.train.clipping` and a warmup + cosine schedule. Sampling is one jitted
    :func:`jax.lax.scan` that carries the RNN state: feed the prompt, then draw each next character
    from ``softmax(logits / T)`` (greedy = argmax when ``T = 0``) and feed it back.

Fixed from the notebook
    The notebook builds its vocabulary with ``list(set(text))``, whose order depends on
    ``PYTHONHASHSEED``, so the character ids (and the samples) change from one Python process to
    the next: here it is sorted. The notebook samples only at temperature 1; here greedy decoding
    is what the test checks.

Result (default run, 2 shared CPU cores, float32; numbers in ``metrics.json``)
    Part 1 reproduces the curve the notebook's code gives: the summed epoch loss goes 16.43 (epoch 0) ->
    0.0125 (20) -> 0.0042 (40) -> 0.0021 (60) -> 0.0013 (80) -> 0.0008 (99), and greedy decoding
    from ``"h"``, ``"w"`` and ``" "`` gives the periodic text (``"hello world! hello world! hello
    world! hello world"``); so do the temperature-1 samples. Part 2 (LSTM, 256 units, 355k
    parameters, lee_background: 324k training and 36k held-out characters, 82-character
    vocabulary, 2000 steps = 12.7 epochs): held-out **2.02 bits per character** (unigram 4.43,
    uniform 6.36), still falling slowly at the end; the same measurement on training text gives
    1.72, so the model has begun to overfit this small corpus. Samples at T = 0.5 are fluent
    news-like English with invented words ("The spokesman says the first economic promised a
    board the president will be ..."), T = 1 mixes words and non-words, T = 1.5 is mostly noise;
    greedy decoding loops ("the statement in the statement in ..."). 6.5 minutes wall clock on
    2 cores shared with other jobs (150 s of CPU time).

Run::

    python -m experiments.char_rnn            # default: both parts (minutes on CPU)
    python -m experiments.char_rnn --quick    # seconds; used by the tests
    python -m experiments.char_rnn --resume RUN_DIR   # continue a stopped or killed run
    python -m experiments.char_rnn --help     # every config field is a flag

Resuming: every ``checkpoint_every`` optimiser steps (part 1's 25 per epoch counted first, saved at
the end of an epoch; part 2's one per window) the run saves the parameters and Adam state, the
recurrent carry between windows, the position in the text (epoch, window), the losses and
evaluations so far and part 1's results into ``RUN_DIR/checkpoints/``; ``--resume RUN_DIR``
continues from the latest one with the saved config and reaches the same ``metrics.json`` as a run
never stopped: part 2's epoch offsets are functions of the config seed and the epoch, the
sampling keys of the config seed (wall-clock numbers are under ``timings``).

Outputs (``runs/char_rnn/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl`` (per step: part 1 epoch losses; part 2 training loss and evaluations),
``metrics.json`` (the summary: losses, regeneration, held-out bpc, samples), ``samples.txt``
(every sample), ``hello_loss.png`` (part 1 loss per epoch), ``bpc.png`` (part 2 train/held-out
bpc against step), ``curves.npz`` (part 2's per-step training loss and evaluations),
``tokenizer.json`` (part 2's character vocabulary) and ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, ClassVar, Literal, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from seqjax.primitives import count_scalars
from seqjax.cells import Cell, elman, gru, lstm
from seqjax.data import CharTokenizer, StreamBatches, stream_batches
from seqjax.data.corpora import CORPORA, gensim_available, load_text, split_held_out
from seqjax.recurrence import rnn
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.train import stateful
from seqjax.train import (
    bits_per_character,
    make_clipping,
    make_eval_step,
    warmup_cosine_decay,
)

NAME = "char_rnn"
PARTS = ("hello", "lm")
CELLS = {"elman": lambda: elman("tanh"), "lstm": lstm, "gru": gru}
UNK = "[UNK]"


@dataclasses.dataclass(frozen=True)
class Config:
    """Character-level RNN LMs: a notebook's "hello world!" CharRNN, then an LSTM on a real corpus."""

    # --quick: part 1 shortened to what still regenerates the text; part 2 a small model on a
    # 30k-character slice of the corpus for a few steps (seconds, for the tests).
    QUICK: ClassVar[dict[str, Any]] = {
        "hello_epochs": 30,
        "corpus_chars": 30_000,
        "embed": 16,
        "hidden": 64,
        "batch_size": 8,
        "bptt": 32,
        "train_steps": 40,
        "warmup_steps": 5,
        "eval_every": 20,
        "eval_batch": 4,
        "eval_window": 128,
        "sample_length": 60,
    }

    parts: tuple[str, ...] = option(PARTS, "which parts to run: hello (the notebook's CharRNN), lm (real corpus)")
    # Part 1: the notebook's "Training a character-level RNN" ("notebook: ": its value).
    hello_text: str = option("hello world! ", "part 1: the repeated text")
    hello_repeats: int = option(20, "part 1: how many times the text is repeated (notebook: 20)")
    hello_hidden: int = option(32, "part 1: embedding and hidden size (notebook: 32)")
    hello_epochs: int = option(100, "part 1: epochs; the state is reset at the start of each (notebook: 100)")
    hello_window: int = option(10, "part 1: truncated-BPTT window in characters (notebook: 10)")
    hello_learning_rate: float = option(0.01, "part 1: Adam learning rate (notebook: 0.01)")
    hello_sample_length: int = option(50, "part 1: sample length including the start character (notebook: 50)")
    hello_starts: tuple[str, ...] = option(("h", "w", " "), "part 1: start characters to sample from")
    # Part 2: a real corpus.
    corpus: str = option("auto", "part 2 corpus: auto (lee_background if gensim is installed, else "
                         "python_docs) or one of " + ", ".join(CORPORA))
    corpus_chars: int | None = option(None, "part 2: use only the first N characters (none: all)")
    held_out_fraction: float = option(0.1, "part 2: the last fraction of the corpus, never trained on")
    cell: Literal["lstm", "gru", "elman"] = option("lstm", "part 2: recurrent cell")
    embed: int = option(64, "part 2: character embedding size")
    hidden: int = option(256, "part 2: hidden units")
    batch_size: int = option(32, "part 2: parallel streams per batch")
    bptt: int = option(64, "part 2: truncated-BPTT window (characters per stream per step)")
    train_steps: int = option(2000, "part 2: optimiser steps")
    learning_rate: float = option(1e-2, "part 2: peak Adam learning rate")
    warmup_steps: int = option(100, "part 2: linear warmup steps, then cosine decay to a tenth of the peak")
    clipping: Literal["none", "global_norm", "value", "agc", "ema_norm"] = option(
        "global_norm", "part 2: gradient clipping (seqjax.train.make_clipping)")
    clip_threshold: float = option(1.0, "part 2: the clipping threshold")
    shift_windows: bool = option(True, "part 2: start each epoch at a random offset in [0, bptt)")
    eval_every: int = option(250, "part 2: evaluate held-out bpc every this many steps (and at the end)")
    eval_batch: int = option(16, "part 2: parallel streams for evaluation")
    eval_window: int = option(256, "part 2: characters per evaluation window")
    sample_prompt: str = option("The ", "part 2: the text samples start from")
    sample_length: int = option(300, "part 2: characters generated per sample")
    temperatures: tuple[float, ...] = option((0.5, 1.0, 1.5), "part 2: sampling temperatures (0: greedy)")
    seed: int = option(0, "base random seed")
    checkpoint_every: int = option(
        250, "save a checkpoint (for --resume) every this many optimiser steps, part 1's counted "
        "first (in part 1 at the next epoch boundary)"
    )

    def __post_init__(self):
        if not self.parts or any(p not in PARTS for p in self.parts) or len(set(self.parts)) != len(self.parts):
            raise ValueError(f"parts must be a non-empty subset of {PARTS} without repeats; got {self.parts}.")
        if self.corpus != "auto" and self.corpus not in CORPORA:
            raise ValueError(f"corpus must be 'auto' or one of {tuple(CORPORA)}; got {self.corpus!r}.")
        if not self.hello_text:
            raise ValueError("hello_text must not be empty.")
        for name in ("hello_repeats", "hello_hidden", "hello_epochs", "hello_window", "hello_sample_length",
                     "embed", "hidden", "batch_size", "bptt", "train_steps", "eval_every", "eval_batch",
                     "eval_window", "sample_length", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if len(self.hello_text) * self.hello_repeats < self.hello_window + 1:
            raise ValueError("the repeated hello text must be longer than one window.")
        if any(len(s) != 1 or s not in self.hello_text for s in self.hello_starts):
            raise ValueError(f"hello_starts must be single characters of hello_text; got {self.hello_starts}.")
        if self.corpus_chars is not None and self.corpus_chars < 1000:
            raise ValueError(f"corpus_chars must be at least 1000 (or none); got {self.corpus_chars}.")
        if not 0.0 < self.held_out_fraction < 0.5:
            raise ValueError(f"held_out_fraction must lie in (0, 0.5); got {self.held_out_fraction}.")
        if not 0 <= self.warmup_steps < self.train_steps:
            raise ValueError(f"warmup_steps must lie in [0, train_steps); got {self.warmup_steps}.")
        if not (self.learning_rate > 0 and self.hello_learning_rate > 0 and self.clip_threshold > 0):
            raise ValueError("learning rates and clip_threshold must be positive.")
        if any(not (t >= 0 and math.isfinite(t)) for t in self.temperatures):
            raise ValueError(f"temperatures must be finite and >= 0; got {self.temperatures}.")
        if not self.sample_prompt:
            raise ValueError("sample_prompt must not be empty.")


# --- model: embedding -> cell -> linear -------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def init_params(key: jax.Array, cell: Cell, vocab_size: int, embed: int, hidden: int) -> dict:
    """PyTorch's defaults, as the notebook's CharRNN: embedding N(0, 1), cell and readout
    U(+-1/sqrt(hidden)) (the cell's own init). Jitted: one compilation instead of one per
    random draw."""
    k_embed, k_cell, k_w, k_b = jax.random.split(key, 4)
    bound = 1.0 / math.sqrt(hidden)
    return {
        "embed": jax.random.normal(k_embed, (vocab_size, embed)),
        "cell": cell.init(k_cell, embed, hidden),
        "out": {
            "w": jax.random.uniform(k_w, (hidden, vocab_size), minval=-bound, maxval=bound),
            "b": jax.random.uniform(k_b, (vocab_size,), minval=-bound, maxval=bound),
        },
    }


def zero_carry(cell: Cell, params: dict, batch: int) -> Any:
    zero = cell.zero_carry(params["cell"], jnp.float32)
    return jax.tree.map(lambda z: jnp.zeros((batch, *z.shape), z.dtype), zero)


def readout(params: dict, h: jax.Array) -> jax.Array:
    return h @ params["out"]["w"] + params["out"]["b"]


def forward(cell: Cell, params: dict, tokens: jax.Array, carry: Any) -> tuple[Any, jax.Array]:
    """``tokens`` ``[b, t]`` and the carry before them -> (carry after them, logits ``[b, t, V]``)."""
    xs = params["embed"][tokens]
    carry, hs = rnn(cell, params["cell"], xs, initial_carry=carry, return_carry=True)
    return carry, readout(params, hs)


def window_loss(cell: Cell, reduction: str = "mean"):
    """The window loss of :mod:`seqjax.train.stateful` for this model (embedding -> cell -> linear)."""
    return stateful.window_loss(functools.partial(forward, cell), reduction)


def make_sampler(cell: Cell, length: int):
    """A jitted ``sample(params, prompt_ids [p], key, temperature) -> ids [length]``.

    One :func:`jax.lax.scan` feeds the prompt through the cell (carrying the state), a second
    generates ``length`` characters: each is drawn from ``softmax(logits / temperature)``
    (``jax.random.categorical``), or is the argmax when ``temperature == 0`` (greedy), and is fed
    back as the next input.
    """

    @jax.jit
    def sample(params, prompt_ids, key, temperature):
        cell_params = params["cell"]

        def feed(carry, token):
            carry, h = cell.step(cell_params, carry, params["embed"][token])
            return carry, h

        carry, hs = jax.lax.scan(feed, cell.zero_carry(cell_params, jnp.float32), prompt_ids)
        logits = readout(params, hs[-1])

        def generate(state, step_key):
            carry, logits = state
            scaled = logits / jnp.maximum(temperature, 1e-6)
            token = jnp.where(temperature > 0, jax.random.categorical(step_key, scaled), jnp.argmax(logits))
            carry, h = cell.step(cell_params, carry, params["embed"][token])
            return (carry, readout(params, h)), token

        _, tokens = jax.lax.scan(generate, (carry, logits), jax.random.split(key, length))
        return tokens

    return sample


def evaluate_bpc(eval_step, cell: Cell, params: dict, windows: StreamBatches) -> float:
    """Bits per character over every window of ``windows``, the state carried through each
    stream from zeros (:func:`seqjax.train.stateful.evaluate_stream`)."""
    nats = stateful.evaluate_stream(eval_step, params, windows, zero_carry(cell, params, windows.batch))
    return float(bits_per_character(nats))


# --- part 1: the notebook's CharRNN on "hello world! " --------------------------------------


def hello_data(config: Config) -> tuple[str, CharTokenizer, StreamBatches]:
    """The repeated text, its (sorted) character tokenizer and its windows: one stream, windows
    of ``hello_window`` inputs with next-character targets, the notebook's
    ``for i in range(0, len(text) - window, window)`` (25 windows of 260 characters)."""
    text = config.hello_text * config.hello_repeats
    tokenizer = CharTokenizer.fit(text)  # sorted: deterministic ids (the notebook's list(set) is not)
    return text, tokenizer, stream_batches(tokenizer.encode(text), batch=1, window=config.hello_window)


def hello_steps(config: Config) -> int:
    """Optimiser steps of part 1 (windows per epoch times epochs; 0 if it is not run)."""
    return len(hello_data(config)[2]) * config.hello_epochs if "hello" in config.parts else 0


def run_hello(config: Config, run_dir: RunDir, ckpt: RunCheckpoints, sweep: dict) -> dict[str, Any]:
    """Train the notebook's CharRNN on the repeated text (from ``sweep["hello"]``, the
    checkpoint's progress, if it is there); greedy regeneration and samples. The summary is kept
    in ``sweep["hello_result"]``: a checkpoint taken in part 2 has no part-1 parameters."""
    if sweep["hello_result"] is not None:
        return sweep["hello_result"]
    text, tokenizer, windows = hello_data(config)
    cell = elman("tanh")
    key = jax.random.fold_in(jax.random.key(config.seed), 1)
    fresh = init_params(key, cell, len(tokenizer), config.hello_hidden, config.hello_hidden)
    optimizer = optax.adam(config.hello_learning_rate)  # the notebook's optimiser, no clipping
    train = stateful.make_stateful_trainer(functools.partial(forward, cell), optimizer)
    xs = jnp.asarray(np.stack([x for x, _ in windows]))  # [25, 1, 10]: one epoch per call
    ys = jnp.asarray(np.stack([y for _, y in windows]))

    hello = sweep["hello"]
    if hello is None:
        hello = {"epoch": 0, "epoch_losses": []}
        params, opt_state = fresh, optimizer.init(fresh)
    else:
        state = ckpt.state({"params": fresh, "opt_state": optimizer.init(fresh)})
        params, opt_state = state["params"], state["opt_state"]
    sweep["hello"] = hello
    epochs = range(hello["epoch"], config.hello_epochs)
    for epoch in progress(epochs, desc="hello world", total=config.hello_epochs, initial=hello["epoch"]):
        carry = zero_carry(cell, params, 1)  # the notebook resets the state every epoch
        params, opt_state, losses, _ = train(params, opt_state, xs, ys, carry)
        summed = float(np.sum(losses))
        hello["epoch_losses"].append(summed)
        run_dir.log(part="hello", epoch=epoch, summed_loss=summed, mean_bpc=float(bits_per_character(summed / len(windows))))
        if epoch % 20 == 0:
            print(f"hello: epoch {epoch:3d}  summed loss {summed:.4f}")
        hello["epoch"] = epoch + 1
        last = hello["epoch"] == config.hello_epochs and "lm" not in config.parts
        ckpt.save(hello["epoch"] * len(windows), {"params": params, "opt_state": opt_state}, sweep, force=last)
    epoch_losses = hello["epoch_losses"]

    sampler = make_sampler(cell, config.hello_sample_length - 1)
    sample_key = jax.random.fold_in(jax.random.key(config.seed), 2)

    def complete(start: str, temperature: float, key: jax.Array) -> str:
        out = sampler(params, jnp.asarray(tokenizer.encode(start)), key, temperature)
        return start + tokenizer.decode(np.asarray(out))

    greedy = {s: complete(s, 0.0, sample_key) for s in config.hello_starts}
    sampled = {s: complete(s, 1.0, jax.random.fold_in(sample_key, i)) for i, s in enumerate(config.hello_starts)}
    regenerate_target = (config.hello_text * 2).rstrip()
    greedy_h = complete(regenerate_target[0], 0.0, sample_key)[: len(regenerate_target)]
    expected = {s: (text[text.index(s):] + text)[: config.hello_sample_length] for s in config.hello_starts}
    sweep["hello_result"] = {
        "text_length": len(text),
        "vocab": list(tokenizer.vocab.tokens),
        "windows_per_epoch": len(windows),
        "steps": len(windows) * config.hello_epochs,
        "uniform_summed_loss": len(windows) * math.log(len(tokenizer)),
        "summed_loss_by_epoch": {str(e): epoch_losses[e] for e in range(0, config.hello_epochs, 20)}
        | {str(config.hello_epochs - 1): epoch_losses[-1]},
        "final_summed_loss": epoch_losses[-1],
        "regenerate_target": regenerate_target,
        "regenerated": greedy_h,
        "regenerates": greedy_h == regenerate_target,
        "greedy_samples": greedy,
        "greedy_matches_text": {s: greedy[s] == expected[s] for s in config.hello_starts},
        "temperature_1_samples": sampled,
        "epoch_losses": epoch_losses,
    }
    sweep["hello"] = None
    return sweep["hello_result"]


# --- part 2: a character LM on a real corpus --------------------------------------------------


def resolve_corpus(name: str) -> tuple[str, str]:
    """(corpus name, why): ``auto`` is lee_background with gensim installed, else python_docs."""
    if name != "auto":
        return name, "chosen with --corpus"
    if gensim_available():
        return "lee_background", "auto: gensim is installed, so its Lee news corpus"
    return "python_docs", ("auto: gensim is not installed (pip install 'seqjax[corpora]'), so the "
                           "best text available offline: CPython's reference-manual topics")


def epoch_offset(config: Config, epoch: int) -> int:
    """Where epoch ``epoch`` of part 2 starts in the training text: 0 for the first epoch (or
    without ``shift_windows``), then the ``epoch``-th draw from ``[0, bptt)`` of a NumPy
    generator seeded with the config seed. A function of the seed and the epoch only (the draws
    are replayed), so a resumed run cuts the same windows."""
    if not config.shift_windows or epoch == 0:
        return 0
    rng = np.random.default_rng(config.seed)
    for _ in range(epoch):
        offset = int(rng.integers(config.bptt))
    return offset


def run_lm(config: Config, run_dir: RunDir, ckpt: RunCheckpoints, sweep: dict) -> tuple[dict[str, Any], np.ndarray]:
    """Stateful TBPTT training on the corpus (from ``sweep["lm"]``, the checkpoint's progress,
    if it is there); returns the summary (held-out bpc, samples) and the training loss (nats) of
    every step."""
    corpus, why = resolve_corpus(config.corpus)
    text = load_text(corpus)
    if config.corpus_chars is not None:
        text = text[: config.corpus_chars]
    train_text, held_out_text = split_held_out(text, config.held_out_fraction)
    tokenizer = CharTokenizer.fit(train_text, unk_token=UNK)  # vocabulary from training text only
    tokenizer.save(run_dir.path / "tokenizer.json")
    train_ids = tokenizer.encode(train_text)
    held_ids = tokenizer.encode(held_out_text)
    # The same number of characters from the end of the training text: bpc measured the same way
    # on seen text, so the gap to the held-out bpc is overfitting, not a measurement difference.
    train_probe_ids = train_ids[-len(held_ids):]
    held_windows = stream_batches(held_ids, config.eval_batch, config.eval_window, drop_last=False)
    train_probe_windows = stream_batches(train_probe_ids, config.eval_batch, config.eval_window, drop_last=False)

    cell = CELLS[config.cell]()
    key = jax.random.fold_in(jax.random.key(config.seed), 3)
    fresh = init_params(key, cell, len(tokenizer), config.embed, config.hidden)
    schedule = warmup_cosine_decay(config.learning_rate, config.warmup_steps, config.train_steps,
                                   end_value=0.1 * config.learning_rate)
    optimizer = optax.chain(
        make_clipping(config.clipping, None if config.clipping == "none" else config.clip_threshold),
        optax.adam(schedule),
    )
    train = stateful.make_stateful_trainer(functools.partial(forward, cell), optimizer)
    eval_step = make_eval_step(window_loss(cell, reduction="sum"), has_aux=True)

    def evaluate(params, at_step: int, train_losses: list[float]) -> dict[str, Any]:
        record = {
            "step": at_step,
            "held_out_bpc": evaluate_bpc(eval_step, cell, params, held_windows),
            "train_probe_bpc": evaluate_bpc(eval_step, cell, params, train_probe_windows),
            "train_bpc": float(bits_per_character(np.mean(train_losses))) if train_losses else None,
        }
        run_dir.log(part="lm", **record)
        return record

    # lm: where training is (epoch, next window in it, steps done), the losses and evaluations
    # so far and the seconds spent training; the carry between windows is device state.
    lm = sweep["lm"]
    carry = None
    if lm is None:
        params, opt_state = fresh, optimizer.init(fresh)
        lm = {"epoch": 0, "window": 0, "done": 0, "losses": [], "since_eval": [], "train_s": 0.0,
              "evals": [evaluate(fresh, 0, [])]}
    else:
        template = {"params": fresh, "opt_state": optimizer.init(fresh),
                    "carry": zero_carry(cell, fresh, config.batch_size)}
        state = ckpt.state(template)
        params, opt_state, carry = state["params"], state["opt_state"], state["carry"]
    sweep["lm"] = lm
    offset_steps = hello_steps(config)  # the run's step counts part 1's steps first
    bar = progress(desc=f"char LM ({corpus})", total=config.train_steps, initial=lm["done"])
    started, train_s_before = time.perf_counter(), lm["train_s"]
    while lm["done"] < config.train_steps:
        windows = stream_batches(train_ids, config.batch_size, config.bptt, offset=epoch_offset(config, lm["epoch"]))
        if len(windows) == 0:
            raise ValueError(f"the training text ({len(train_ids)} characters) is too short for "
                             f"batch_size={config.batch_size} streams of bptt={config.bptt}.")
        if lm["window"] == 0:
            carry = zero_carry(cell, params, config.batch_size)
        for w in range(lm["window"], len(windows)):
            x, y = windows[w]
            # One window per call: at this size the step's compute dominates the dispatch.
            params, opt_state, loss, carry = train(params, opt_state, jnp.asarray(x)[None], jnp.asarray(y)[None], carry)
            loss = float(loss[0])
            lm["losses"].append(loss)
            lm["since_eval"].append(loss)
            lm["done"] += 1
            done = lm["done"]
            run_dir.log(part="lm", step=done, epoch=lm["epoch"], loss=loss, bpc=float(bits_per_character(loss)))
            bar.update(1)
            if done % config.eval_every == 0 or done == config.train_steps:
                lm["evals"].append(evaluate(params, done, lm["since_eval"]))
                lm["since_eval"] = []
                bar.set_postfix(held_out_bpc=f"{lm['evals'][-1]['held_out_bpc']:.3f}")
            lm["window"] = w + 1
            lm["train_s"] = train_s_before + time.perf_counter() - started
            state = {"params": params, "opt_state": opt_state, "carry": carry}
            ckpt.save(offset_steps + done, state, sweep, force=done == config.train_steps)
            if done == config.train_steps:
                break
        else:  # the epoch's windows are used up: the next epoch starts at a new offset
            lm["epoch"] += 1
            lm["window"] = 0
    bar.close()
    losses, evals, done = lm["losses"], lm["evals"], lm["done"]

    sampler = make_sampler(cell, config.sample_length)
    prompt = jnp.asarray(tokenizer.encode(config.sample_prompt))
    sample_key = jax.random.fold_in(jax.random.key(config.seed), 4)
    samples = {}
    for temperature in (0.0, *config.temperatures):
        ids = sampler(params, prompt, jax.random.fold_in(sample_key, int(temperature * 1000)), temperature)
        samples["greedy" if temperature == 0 else f"T={temperature:g}"] = config.sample_prompt + tokenizer.decode(np.asarray(ids))

    best = min(evals[1:], key=lambda r: r["held_out_bpc"])
    final = evals[-1]
    held_unknown = int(np.sum(held_ids == tokenizer.vocab.unk_id))
    return {
        "corpus": corpus,
        "corpus_source": CORPORA[corpus][2],
        "corpus_choice": why,
        "corpus_chars": len(text),
        "train_chars": len(train_text),
        "held_out_chars": len(held_out_text),
        "held_out_chars_scored": held_windows.num_tokens,
        "held_out_unknown_chars": held_unknown,
        "vocab_size": len(tokenizer),
        "cell": config.cell,
        "parameters": count_scalars(params),
        "steps": done,
        "epochs": round(done * config.batch_size * config.bptt / len(train_ids), 2),
        "uniform_bpc": math.log2(len(tokenizer)),
        "unigram_bpc": unigram_bpc(train_ids, held_ids, len(tokenizer)),
        "initial_held_out_bpc": evals[0]["held_out_bpc"],
        "final_held_out_bpc": final["held_out_bpc"],
        "final_train_probe_bpc": final["train_probe_bpc"],
        "final_train_bpc": final["train_bpc"],
        "best_held_out_bpc": best["held_out_bpc"],
        "best_step": best["step"],
        "evaluations": evals,
        "samples": samples,
    }, np.asarray(losses, np.float32)


def unigram_bpc(train_ids: np.ndarray, held_ids: np.ndarray, vocab_size: int) -> float:
    """Held-out bpc of character frequencies from the training text (add-one smoothed): the
    baseline a model with no context would reach."""
    counts = np.bincount(train_ids, minlength=vocab_size) + 1.0
    log2p = np.log2(counts / counts.sum())
    return float(-log2p[held_ids].mean())


# --- figures ----------------------------------------------------------------------------------


def plot_hello(hello: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    epoch_losses, uniform = hello["epoch_losses"], hello["uniform_summed_loss"]
    ax.plot(np.arange(len(epoch_losses)), epoch_losses, lw=1.5)
    ax.axhline(uniform, color="grey", ls="--", lw=0.8)
    ax.text(0, uniform, f"uniform guess ({hello['windows_per_epoch']} ln {len(hello['vocab'])})",
            fontsize=8, va="bottom", color="grey")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("summed window loss (nats)")
    ax.set_title(f"The notebook's CharRNN (Elman, {hello['text_length']} characters of repeated text)")
    return fig


def plot_bpc(lm: dict[str, Any], losses_bpc: np.ndarray) -> Figure:
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    evals = lm["evaluations"]
    steps = [r["step"] for r in evals]
    if len(losses_bpc):
        window = max(1, min(50, len(losses_bpc) // 10))
        smooth = np.convolve(losses_bpc, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, len(losses_bpc) + 1), smooth, color="tab:blue", lw=1, alpha=0.6,
                label=f"training windows (running mean of {window})")
    ax.plot(steps, [r["train_probe_bpc"] for r in evals], "o-", color="tab:blue", ms=3,
            label="training text (last 10%-sized stretch)")
    ax.plot(steps, [r["held_out_bpc"] for r in evals], "o-", color="tab:red", ms=3,
            label="held-out text (last 10% of corpus)")
    ax.axhline(lm["unigram_bpc"], color="grey", ls="--", lw=0.8)
    ax.text(steps[-1], lm["unigram_bpc"], "unigram (character frequencies)", fontsize=8, va="bottom",
            ha="right", color="grey")
    # Down to the best curve, up to just above the unigram baseline (step 0, at about
    # log2(vocabulary), is off the top).
    ax.set_ylim(max(0.0, min(r["train_probe_bpc"] for r in evals) - 0.3), lm["unigram_bpc"] + 0.4)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("bits per character")
    ax.set_title(f"{lm['cell'].upper()} character LM on {lm['corpus']} ({lm['parameters']:,} parameters)")
    ax.legend(fontsize=8)
    return fig


# --- main -----------------------------------------------------------------------------------


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """Part 1, then part 2 (from the run's checkpoint, if it has one); write metrics, samples and
    figures into ``run_dir``; return the summary."""
    summary: dict[str, Any] = {}
    sample_lines = []
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        # hello / lm: the progress of a part while it trains; hello_result: part 1's summary.
        sweep = resumed.progress if resumed else {"hello": None, "hello_result": None, "lm": None}
        if "hello" in config.parts:
            hello = run_hello(config, run_dir, ckpt, sweep)
            run_dir.save_figure(plot_hello(hello), "hello_loss")
            sample_lines.append("== part 1: the notebook's CharRNN on 'hello world! ' ==")
            sample_lines += [f"greedy from {s!r}: {t!r}" for s, t in hello["greedy_samples"].items()]
            sample_lines += [f"T=1 from {s!r}: {t!r}" for s, t in hello["temperature_1_samples"].items()]
            summary["hello"] = hello
        if "lm" in config.parts:
            lm, train_losses = run_lm(config, run_dir, ckpt, sweep)
            run_dir.save_arrays("curves", train_loss_nats=train_losses,
                                eval_steps=[r["step"] for r in lm["evaluations"]],
                                held_out_bpc=[r["held_out_bpc"] for r in lm["evaluations"]],
                                train_probe_bpc=[r["train_probe_bpc"] for r in lm["evaluations"]])
            run_dir.save_figure(plot_bpc(lm, bits_per_character(train_losses)), "bpc")
            sample_lines.append(f"\n== part 2: {config.cell} on {lm['corpus']} (held-out bpc {lm['final_held_out_bpc']:.3f}) ==")
            for name, sample in lm["samples"].items():
                sample_lines += [f"--- {name} ---", sample]
            summary["lm"] = lm
        timings = {"runtime_s": round(ckpt.elapsed_s(), 1), "sessions": ckpt.sessions}
        if "lm" in config.parts:
            timings["lm_train_s"] = round(sweep["lm"]["train_s"], 1)
    (run_dir.path / "samples.txt").write_text("\n".join(sample_lines) + "\n", encoding="utf-8")
    summary["environment"] = environment()
    summary["timings"] = timings
    return summary


def format_report(summary: dict[str, Any]) -> str:
    lines = []
    if "hello" in summary:
        h = summary["hello"]
        lines.append(f"part 1 (hello): summed loss {h['summed_loss_by_epoch']['0']:.3f} -> {h['final_summed_loss']:.4f} "
                     f"over {h['steps']} steps; greedy from 'h': {h['greedy_samples'].get('h', h['regenerated'])!r} "
                     f"(regenerates: {h['regenerates']})")
    if "lm" in summary:
        m = summary["lm"]
        lines.append(f"part 2 ({m['cell']} on {m['corpus']}, {m['parameters']:,} params, {m['steps']} steps, "
                     f"{m['epochs']} epochs): held-out bpc {m['final_held_out_bpc']:.3f} "
                     f"(best {m['best_held_out_bpc']:.3f} at step {m['best_step']}; train-text probe "
                     f"{m['final_train_probe_bpc']:.3f}; unigram {m['unigram_bpc']:.3f}, uniform {m['uniform_bpc']:.3f})")
        for name, sample in m["samples"].items():
            lines.append(f"  {name:>7}: {sample[:160]!r}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, run the experiment, print the results; returns the summary (with
    ``run_dir``)."""
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_report)


if __name__ == "__main__":
    main()
