"""A word-level LSTM language model, tied or untied embeddings, against Kneser-Ney n-grams.

What it measures
    On the English Wikipedia excerpt that gensim ships (:func:`seqjax.data.corpora.wikipedia_excerpt`,
    106 articles, ~480k words; ``--corpus`` picks another shipped text), the last
    ``held_out_fraction`` of the text is held out. Words are lower-cased and split from
    punctuation (:class:`seqjax.data.WordTokenizer`); each line (a paragraph or heading) ends with
    ``<eos>``; the vocabulary is the ``vocab_size`` most frequent training words, the rest
    ``[UNK]`` (scored like any word, by every model). Models:

    * ``tied``: embedding -> LSTM -> logits ``h E^T + b`` with the output matrix *tied* to the
      input embedding ``E`` (Press & Wolf 2017; Inan et al. 2017), so ``hidden = embed``;
    * ``untied``: the same with its own output matrix (``V x hidden`` more parameters);
    * Kneser-Ney n-grams of order 1 to ``ngram_order`` (:class:`seqjax.text.ngram.KneserNey`,
      interpolated, fitted on the same training tokens and vocabulary).

    The LSTMs train by stateful truncated BPTT (:mod:`seqjax.train.stateful`: ``batch_size``
    streams, windows of ``bptt`` words, the carry passed on) with Adam, clipping and a cosine
    schedule. Reported: held-out perplexity of every model over the same tokens (one stream, the
    state or the n-gram context carried through; every token after the first is scored), the
    training-text perplexity of the LSTMs measured the same way (the overfitting gap), the curve
    of held-out perplexity against steps, and samples of each LSTM at temperatures 0.7, 1.0 and
    1.3 from the same prompts (:func:`seqjax.decoding.sample`).

Run::

    python -m experiments.word_lm            # default (tens of minutes on 2 CPU cores)
    python -m experiments.word_lm --quick    # seconds; used by the tests
    python -m experiments.word_lm --resume RUN_DIR

Resuming: every ``checkpoint_every`` steps the run saves the current model's parameters, Adam
state and carry, the position in the text, the losses and evaluations; ``--resume`` continues
to the same ``metrics.json``. The n-grams are refitted (deterministic).

Outputs (``runs/word_lm/<UTC timestamp>/`` or ``--out``): ``config.json``, ``run.json``,
``metrics.jsonl``, ``metrics.json``, ``perplexity.png``, ``samples.txt``, ``tokenizer.json`` and
``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from seqjax.primitives import count_scalars
from seqjax.cells import lstm
from seqjax.data import WordTokenizer, stream_batches
from seqjax.data.corpora import CORPORA, load_text, split_held_out
from seqjax.decoding import sample
from seqjax.experiment import RunCheckpoints, RunDir, environment, option, parse, progress, run_experiment
from seqjax.recurrence import rnn
from seqjax.text.ngram import KneserNey
from seqjax.train import clip_by_global_norm, make_eval_step, warmup_cosine_decay
from seqjax.train import stateful

NAME = "word_lm"
MODELS = ("tied", "untied")
EOS = "<eos>"
PROMPTS = ("the history of", "in the early", "anarchism is")
TEMPERATURES = (0.7, 1.0, 1.3)
COLORS = {"tied": "tab:blue", "untied": "tab:orange"}


@dataclasses.dataclass(frozen=True)
class Config:
    """Word-level LSTM LMs (tied and untied embeddings) against Kneser-Ney n-grams."""

    QUICK: ClassVar[dict[str, Any]] = {
        "corpus": "lee_background", "max_chars": 40_000, "vocab_size": 800, "hidden": 32, "epochs": 1,
        "eval_every": 20, "ngram_order": 2, "sample_length": 12, "models": ("tied",),
    }

    corpus: str = option("wikipedia", f"text: one of {sorted(CORPORA)}")
    max_chars: int = option(0, "use only the first this many characters of the corpus (0: all)")
    held_out_fraction: float = option(0.1, "the last fraction of the text, never trained on")
    models: tuple[str, ...] = option(MODELS, "LSTMs: tied, untied")
    vocab_size: int = option(10_000, "vocabulary (most frequent training words; the rest [UNK])")
    hidden: int = option(256, "LSTM width (= embedding width)")
    bptt: int = option(35, "truncated-BPTT window in words")
    batch_size: int = option(32, "parallel training streams")
    epochs: int = option(4, "passes over the training text per LSTM")
    learning_rate: float = option(3e-3, "Adam peak learning rate (warmup then cosine decay)")
    clip_norm: float = option(0.5, "gradient clipping by global norm")
    eval_every: int = option(200, "held-out perplexity every this many steps")
    eval_window: int = option(256, "evaluation window in words (the carry crosses windows)")
    ngram_order: int = option(3, "highest Kneser-Ney order (1..order are reported)")
    sample_length: int = option(30, "words per sample")
    seed: int = option(0, "random seed")
    checkpoint_every: int = option(300, "save a checkpoint every this many steps (all models counted)")

    def __post_init__(self):
        if self.corpus not in CORPORA:
            raise ValueError(f"corpus must be one of {sorted(CORPORA)}; got {self.corpus!r}.")
        if not self.models or any(m not in MODELS for m in self.models) or len(set(self.models)) != len(self.models):
            raise ValueError(f"models must be distinct values of {MODELS}; got {self.models}.")
        for name in ("vocab_size", "hidden", "bptt", "batch_size", "epochs", "eval_every", "eval_window",
                     "ngram_order", "sample_length", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)}.")
        if self.max_chars < 0:
            raise ValueError(f"max_chars must be >= 0; got {self.max_chars}.")
        if not 0.0 < self.held_out_fraction < 0.5:
            raise ValueError(f"held_out_fraction must lie in (0, 0.5); got {self.held_out_fraction}.")
        for name in ("learning_rate", "clip_norm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)}.")


# --- data -------------------------------------------------------------------------------------


def encode_lines(tokenizer: WordTokenizer, text: str) -> np.ndarray:
    """Token ids of every non-empty line, each followed by ``<eos>``."""
    eos = tokenizer.vocab.token_to_id(EOS)
    ids = []
    for line in text.splitlines():
        if line.strip():
            ids.extend(tokenizer.encode(line).tolist())
            ids.append(eos)
    return np.asarray(ids, np.int32)


def prepare(config: Config):
    text = load_text(config.corpus)
    if config.max_chars:
        text = text[: config.max_chars]
    train_text, held_text = split_held_out(text, config.held_out_fraction)
    tokenizer = WordTokenizer.fit(train_text.splitlines(), max_size=config.vocab_size,
                                  special_tokens=("[PAD]", "[UNK]", EOS), unk_token="[UNK]")
    return tokenizer, encode_lines(tokenizer, train_text), encode_lines(tokenizer, held_text)


# --- model ------------------------------------------------------------------------------------


def init_model(model: str, key: jax.Array, vocab: int, hidden: int) -> dict:
    k_e, k_c, k_o = jax.random.split(key, 3)
    bound = 0.1
    params = {"embed": jax.random.uniform(k_e, (vocab, hidden), minval=-bound, maxval=bound),
              "cell": lstm().init(k_c, hidden, hidden), "bias": jnp.zeros((vocab,))}
    if model == "untied":
        params["out"] = jax.random.uniform(k_o, (hidden, vocab), minval=-bound, maxval=bound)
    return params


def logits_of(params: dict, h: jax.Array) -> jax.Array:
    out = params["out"] if "out" in params else params["embed"].T  # tied: the input embedding
    return h @ out + params["bias"]


def forward(params: dict, tokens: jax.Array, carry: Any) -> tuple[Any, jax.Array]:
    """``tokens`` ``[b, t]`` and the carry before them -> (carry after them, logits ``[b, t, V]``)."""
    carry, hs = rnn(lstm(), params["cell"], params["embed"][tokens], initial_carry=carry, return_carry=True)
    return carry, logits_of(params, hs)


def zero_carry(params: dict, batch: int) -> Any:
    zero = lstm().zero_carry(params["cell"], jnp.float32)
    return jax.tree.map(lambda z: jnp.zeros((batch, *z.shape), z.dtype), zero)


def step_fn(params: dict):
    """The decoding step ``(carry, tokens [b]) -> (carry, logits [b, V])`` of the model."""

    def step(carry, tokens):
        carry, logits = forward(params, tokens[:, None], carry)
        return carry, logits[:, 0]

    return step


# --- training ---------------------------------------------------------------------------------


def train_model(index: int, model: str, data, config: Config, run_dir: RunDir, bar, ckpt: RunCheckpoints,
                sweep: dict) -> None:
    tokenizer, train_ids, held_ids = data
    vocab = len(tokenizer)
    windows = stream_batches(train_ids, config.batch_size, config.bptt)
    steps_per_epoch = len(windows)
    total = steps_per_epoch * config.epochs
    xs_all = np.stack([x for x, _ in windows])
    ys_all = np.stack([y for _, y in windows])
    schedule = warmup_cosine_decay(config.learning_rate, min(200, total // 10 + 1), total,
                                   end_value=0.05 * config.learning_rate)
    optimizer = optax.chain(clip_by_global_norm(config.clip_norm), optax.adam(schedule))
    train = stateful.make_stateful_trainer(forward, optimizer)
    eval_step = make_eval_step(stateful.window_loss(forward, reduction="sum"), has_aux=True)
    held_windows = stream_batches(held_ids, 1, config.eval_window, drop_last=False)
    probe = train_ids[-len(held_ids):]
    probe_windows = stream_batches(probe, 1, config.eval_window, drop_last=False)

    def perplexity(params, w) -> float:
        return math.exp(stateful.evaluate_stream(eval_step, params, w, zero_carry(params, 1)))

    fresh = init_model(model, jax.random.fold_in(jax.random.key(config.seed), MODELS.index(model)), vocab,
                       config.hidden)
    template = {"params": fresh, "opt_state": optimizer.init(fresh), "carry": zero_carry(fresh, config.batch_size)}
    current, state = ckpt.sweep_run(sweep, index, template, lambda: {
        "run": index, "step": 0, "losses": [], "evals": [], "wall_s": 0.0})
    params, opt_state, carry = state["params"], state["opt_state"], state["carry"]
    started, wall_before = time.perf_counter(), current["wall_s"]
    last_run = index == len(config.models) - 1
    while current["step"] < total:
        step = current["step"]
        epoch, pos = divmod(step, steps_per_epoch)
        if pos == 0:
            carry = zero_carry(params, config.batch_size)  # each epoch starts the streams afresh
        # Up to the next evaluation, checkpoint or epoch end, in one jitted scan.
        stop = min((step // config.eval_every + 1) * config.eval_every, (epoch + 1) * steps_per_epoch,
                   (step // config.checkpoint_every + 1) * config.checkpoint_every, total)
        sl = slice(pos, pos + stop - step)
        params, opt_state, losses, carry = train(params, opt_state, jnp.asarray(xs_all[sl]), jnp.asarray(ys_all[sl]),
                                                 carry)
        losses = [float(v) for v in np.asarray(losses)]
        current["losses"] += losses
        current["step"] = stop
        bar.update(stop - step)
        if stop % config.eval_every == 0 or stop == total:
            record = {"step": stop, "held_out_ppl": perplexity(params, held_windows),
                      "train_loss": float(np.mean(losses))}
            current["evals"].append(record)
            run_dir.log(kind="eval", model=model, **record)
            bar.set_postfix_str(f"{model}: held-out ppl {record['held_out_ppl']:.1f}")
        sweep_step = index * total + stop
        final = last_run and stop == total
        if final or ckpt.due(sweep_step):
            current["wall_s"] = wall_before + time.perf_counter() - started
            ckpt.save(sweep_step, {"params": params, "opt_state": opt_state, "carry": carry}, sweep, force=final)

    samples = {}
    for p_i, prompt in enumerate(PROMPTS):
        ids = tokenizer.encode(prompt)
        carry0, _ = forward(params, jnp.asarray(ids[None, :-1]), zero_carry(params, 1)) if len(ids) > 1 else (
            zero_carry(params, 1), None)
        for temperature in TEMPERATURES:
            key = jax.random.fold_in(jax.random.key(config.seed + 1), 100 * p_i + int(temperature * 10))
            gen = sample(step_fn(params), carry0, jnp.asarray(ids[-1:]), config.sample_length, key,
                         temperature=temperature)
            samples[f"{prompt} | T={temperature}"] = prompt + " " + tokenizer.decode(np.asarray(gen.sequences[0]))
    sweep["finished"].append({
        "model": model,
        "held_out_ppl": perplexity(params, held_windows),
        "train_probe_ppl": perplexity(params, probe_windows),
        "evals": current["evals"],
        "final_train_loss": float(np.mean(current["losses"][-max(1, steps_per_epoch // 4):])),
        "params": count_scalars(params),
        "steps": total,
        "samples": samples,
        "wall_s": round(wall_before + time.perf_counter() - started, 2),
    })
    sweep["current"] = None


def ngram_perplexities(data, config: Config) -> dict[str, float]:
    """Held-out perplexity of Kneser-Ney orders 1..N over the tokens the LSTMs score (every
    held-out token after the first, the context carried through the stream)."""
    tokenizer, train_ids, held_ids = data
    vocab = list(range(len(tokenizer)))
    out = {}
    for order in range(1, config.ngram_order + 1):
        lm = KneserNey.fit(train_ids.tolist(), order, vocab=vocab)
        scored = stream_batches(held_ids, 1, config.eval_window, drop_last=False).num_tokens
        out[str(order)] = lm.perplexity(held_ids[1:1 + scored].tolist(), context=held_ids[:1].tolist())
    return out


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    data = prepare(config)
    tokenizer, train_ids, held_ids = data
    tokenizer.save(run_dir.path / "tokenizer.json")
    steps = len(stream_batches(train_ids, config.batch_size, config.bptt)) * config.epochs
    with RunCheckpoints(run_dir, every=config.checkpoint_every) as ckpt:
        resumed = ckpt.restore()
        sweep = resumed.progress if resumed else {"finished": [], "current": None}
        bar = progress(desc="word lm", total=len(config.models) * steps, initial=resumed.step if resumed else 0)
        for index in range(len(sweep["finished"]), len(config.models)):
            train_model(index, config.models[index], data, config, run_dir, bar, ckpt, sweep)
        bar.close()
        runtime_s, sessions = ckpt.elapsed_s(), ckpt.sessions
    t0 = time.perf_counter()
    ngrams = ngram_perplexities(data, config)
    ngram_s = time.perf_counter() - t0
    lstms = {d["model"]: {k: v for k, v in d.items() if k not in ("model", "samples", "wall_s")} for d in sweep["finished"]}
    samples = {d["model"]: d["samples"] for d in sweep["finished"]}
    lines = []
    for model, by_prompt in samples.items():
        lines.append(f"== {model}")
        lines += [f"[{k}] {v}" for k, v in by_prompt.items()]
    (run_dir.path / "samples.txt").write_text("\n".join(lines) + "\n")
    oov = float(np.mean(held_ids == tokenizer.vocab.token_to_id("[UNK]")))
    summary = {
        "held_out_perplexity": {**{m: r["held_out_ppl"] for m, r in lstms.items()},
                                **{f"kneser_ney_{n}": p for n, p in ngrams.items()}},
        "lstm": lstms,
        "samples": samples,
        "corpus": {"name": config.corpus, "train_tokens": int(len(train_ids)), "held_out_tokens": int(len(held_ids)),
                   "vocabulary": len(tokenizer), "held_out_unk_rate": oov},
        "environment": environment(),
        "timings": {"runtime_s": round(runtime_s, 1), "sessions": sessions, "ngram_s": round(ngram_s, 1),
                    "lstm_s": {d["model"]: d["wall_s"] for d in sweep["finished"]}},
    }
    run_dir.save_figure(plot(lstms, ngrams), "perplexity")
    return summary


def format_table(summary: dict[str, Any]) -> str:
    lines = [f"{'model':<14} {'params':>10} {'held-out ppl':>13} {'train ppl':>10}", "-" * 50]
    for name, ppl in sorted(summary["held_out_perplexity"].items(), key=lambda kv: kv[1]):
        lstm_record = summary["lstm"].get(name)
        params = f"{lstm_record['params']:>10}" if lstm_record else f"{'-':>10}"
        train = f"{lstm_record['train_probe_ppl']:>10.1f}" if lstm_record else f"{'-':>10}"
        lines.append(f"{name:<14} {params} {ppl:>13.1f} {train}")
    return "\n".join(lines)


def plot(lstms: dict, ngrams: dict) -> Figure:
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for model, r in lstms.items():
        ax.plot([e["step"] for e in r["evals"]], [e["held_out_ppl"] for e in r["evals"]], "o-", ms=3,
                color=COLORS[model], label=f"LSTM, {model} embeddings")
    for order, p in ngrams.items():
        ax.axhline(p, ls="--", lw=1, color=str(0.2 + 0.2 * int(order)), label=f"Kneser-Ney, order {order}")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out perplexity")
    ax.set_title("Word-level language models: held-out perplexity")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, run, format_table)


if __name__ == "__main__":
    main()
