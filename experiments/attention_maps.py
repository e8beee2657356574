"""Attention maps of the tiny BERT and GPT trained here: heatmaps per layer and head, the grid of
every head, a pattern report computed from the weights, and recurrent vs attention "flow".

What it measures
    For the seed visualiser's example sentences, the self-attention weights
    (``return_attention=True``: the softmax of every layer and head, before dropout) of a
    masked-LM encoder and a causal LM pretrained by ``experiments.pretrain_tiny``, and per head:
    the share of attention to the previous token, the next token, itself, the first token
    (``[CLS]`` for BERT, the start token ``[SEP]`` for GPT) and the last (``[SEP]`` for BERT); the
    row entropy (nats) and the mean attention distance; each against what uniform attention over
    the allowed keys would give (:mod:`seqjax.attention.patterns`). The heads that fit each
    pattern best are listed. The flow figure puts an RNN's chain of hidden states (each token
    reaches a later one only through every state in between) against the strongest learned
    links of the trained models (weights averaged over layers and heads; self-links and the
    special tokens left out) for "The quick brown fox jumps over the lazy dog."

Fixed from the seed's visualiser (see its notes)
    BERT's maps are drawn whole: the seed hid the upper triangle of a *bidirectional* encoder
    with a causal mask (and said "the upper triangle is always blank"); only the causal GPT is
    drawn lower-triangular here. The colour scale is 0..1 (not ``center=0.5``). Layer and head
    ranges come from the model. The pattern analyser is new: the seed's scored "decreasing
    attention" from row means (always ``1/n``), had a "long-range" test that could never fire
    and an unreachable branch, and called [CLS] attention "article-word relationships". The flow
    figure's links come from the trained weights, not invented strengths, and its recurrent chain
    runs hidden state to hidden state, with a state for the last word.

Result (the default pretrain_tiny models: 3000 steps, 4 layers x 8 heads)
    GPT: a previous-token head (layer 0, head 0: 0.365 of its weight on the previous token where
    uniform attention gives 0.181), a head with 0.42 on the start token (layer 2, head 1), the
    sharpest head at 0.63 nats (uniform 1.90); its strongest links on the flow sentence join the
    first words to "The" and each word piece to the one before. BERT (ALiBi): heads with 0.21 on
    the previous (layer 2, head 0) and on the next token (layer 3, head 1) where uniform gives
    0.072, 0.22 on [CLS] (layer 1, head 2), entropy down to 1.97 nats (uniform 2.66); its strongest
    flow links join neighbouring word pieces both ways. ALiBi's steep heads prefer near keys from
    the start, so BERT's locality is partly built in (the pretrain_tiny docstring separates the
    prior from what training added). The earlier BERT with a learned position table (600 steps)
    had nearly uniform heads (entropy 2.31-2.65 nats; no score above 0.12) and [MASK] accuracy at
    the unigram level.

Inputs
    ``--bert-run`` / ``--gpt-run``: ``pretrain_tiny`` run directories (or ``pretrained/``
    directories: :func:`seqjax.experiment.pretrained.load_pretrained`). BERT reads
    ``[CLS] sentence [SEP]``, GPT ``[SEP] sentence`` (``[SEP]`` separates the documents it was
    trained on), both with the run's BPE tokenizer. ``--quick`` without runs builds **untrained**
    tiny models (random weights, a BPE vocabulary from a slice of the Lee corpus): it checks the
    plumbing, and its patterns mean nothing.

Outputs (``runs/attention_maps/<UTC timestamp>/`` or ``--out``): ``metrics.json`` (per model:
the pattern scores of every head averaged over the sentences, the uniform references, the best
heads, the flow links), ``attention.npz`` (per model and sentence ``i``: ``{model}/{i}/weights``
``[layers, heads, t, t]`` float32 and ``{model}/{i}/tokens``; ``{model}/causal``; ``sentences``;
what the HTML explorer reads), ``{model}_layer{l}.png`` (every head of layer ``l`` for the heatmap
sentence, with the weights written in), ``{model}_grid.png`` (all layers x heads),
``{model}_patterns.png`` (each pattern score per head), ``flow.png``.

Run::

    python -m experiments.attention_maps --bert-run runs/pretrain_tiny/bert --gpt-run runs/pretrain_tiny/gpt
    python -m experiments.attention_maps --quick

``--resume RUN_DIR`` (from the shared CLI) reruns the measurement with the run's saved config:
nothing here trains (the models are loaded, or built untrained with ``--quick``), the whole run
takes seconds (20 s on a loaded 2-core CPU), and every number is a deterministic function of the
config, so there is no state worth checkpointing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from seqjax.attention.patterns import PATTERNS, average_patterns, best_heads, head_patterns
from seqjax.experiment import RunDir, environment, option, parse, progress, run_experiment
from seqjax.experiment.pretrained import load_pretrained

NAME = "attention_maps"
MODELS = ("bert", "gpt")
# The seed visualiser's examples (its "Local Grammar" default included) and the flow sentence.
SENTENCES = (
    "The cat sits on the mat",
    "The red and blue car drove fast",
    "The dog chased its tail because it was wagging",
    "Q: What is the capital of France? A: Paris",
    "The students studied hard for their final",
    "Although it was expensive, the quality was excellent",
    "The red and blue car",
    "The quick brown fox jumps over the lazy dog.",
)
FLOW_SENTENCE = "The quick brown fox jumps over the lazy dog."
PATTERN_LABELS = {"previous": "previous token", "next": "next token", "self": "self", "first": "first ([CLS] / start)",
                  "last": "last ([SEP])", "entropy": "entropy (nats)", "distance": "mean distance (tokens)"}


@dataclasses.dataclass(frozen=True)
class Config:
    """Attention maps and per-head pattern scores of the pretrained tiny BERT and GPT."""

    # --quick: untrained tiny models built in-process where no run is given (seconds).
    QUICK: ClassVar[dict[str, Any]] = {"untrained_if_missing": True, "top_k": 5}

    bert_run: str | None = option(None, "a pretrain_tiny --model bert run directory (or its pretrained/)")
    gpt_run: str | None = option(None, "a pretrain_tiny --model gpt run directory (or its pretrained/)")
    text: str | None = option(None, "one more sentence to analyse (added after the seed's examples)")
    heatmap_sentence: int = option(0, "which sentence the per-layer heatmaps and the grid show (index)")
    top_k: int = option(8, "links per model in the flow figure")
    best_k: int = option(3, "heads listed per pattern")
    untrained_if_missing: bool = option(False, "build untrained tiny models where no run is given (for --quick)")
    seed: int = option(0, "random seed (untrained models only)")

    def __post_init__(self):
        if self.top_k < 1 or self.best_k < 1:
            raise ValueError(f"top_k and best_k must be at least 1; got {self.top_k}, {self.best_k}.")
        n = len(SENTENCES) + (self.text is not None)
        if not 0 <= self.heatmap_sentence < n:
            raise ValueError(f"heatmap_sentence must lie in [0, {n}); got {self.heatmap_sentence}.")
        if self.text is not None and not self.text.strip():
            raise ValueError("text must not be empty.")
        if not self.untrained_if_missing and (self.bert_run is None or self.gpt_run is None):
            raise ValueError("give --bert-run and --gpt-run (pretrain_tiny run directories), or --quick for "
                             "untrained tiny models.")

    def sentences(self) -> tuple[str, ...]:
        return SENTENCES + (() if self.text is None else (self.text,))


# --- models and inputs ------------------------------------------------------------------------


def untrained(kind: str, seed: int):
    """A tiny untrained model of pretrain_tiny's --quick size and a BPE vocabulary from the
    first 40 Lee documents: ``(model, tokenizer, info)``."""
    from experiments import pretrain_tiny as pt
    from seqjax.data.corpora import lee_corpus

    config = pt.Config(**(pt.Config.QUICK | {"model": kind, "seed": seed, "seq_len": 64}))
    tokenizer = pt.train_tokenizer(list(lee_corpus("background"))[:40], config)
    return pt.build_model(config, len(tokenizer)), tokenizer, {"special_tokens": dict(zip(pt.SPECIALS, range(5)))}


def load(kind: str, run: str | None, config: Config) -> tuple[Any, Any, dict, str]:
    if run is None:
        model, tokenizer, info = untrained(kind, config.seed)
        return model, tokenizer, info, "untrained (--quick)"
    pre = load_pretrained(run)
    expected = "bert_mlm" if kind == "bert" else "gpt"
    if pre.kind != expected:
        raise ValueError(f"--{kind}-run {run} holds a {pre.kind} model, expected {expected}.")
    return pre.model, pre.tokenizer, pre.info, str(pre.path)


def token_label(tokenizer, i: int) -> str:
    """A short display form of token ``i`` (the BPE end-of-word marker and whitespace dropped)."""
    t = tokenizer.vocab.lookup(int(i)).replace("</w>", "")
    return t.strip() or "\u2423"


def encode(kind: str, tokenizer, info: dict, sentence: str, max_len: int) -> np.ndarray:
    """BERT: ``[CLS] sentence [SEP]``; GPT: ``[SEP] sentence`` (its document separator first)."""
    special = info.get("special_tokens", {})
    cls, sep = special.get("[CLS]", 2), special.get("[SEP]", 3)
    ids = tokenizer.encode(sentence).tolist()
    ids = [cls, *ids, sep] if kind == "bert" else [sep, *ids]
    if len(ids) > max_len:
        raise ValueError(f"the sentence {sentence!r} has {len(ids)} tokens; the model takes at most {max_len}.")
    return np.asarray(ids, np.int32)


def attention_of(kind: str, model, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``[layers, heads, t_i, t_i]`` float32 self-attention weights of each input, from one
    batched forward pass: the inputs right-padded, BERT with the padding masked as keys (so the
    weights of the valid tokens are those of the input alone), GPT causal (a valid query never
    reads a later, padded key); the padded rows and columns cropped off."""
    from flax import nnx

    lengths = np.array([len(ids) for ids in inputs])
    batch = np.zeros((len(inputs), lengths.max()), np.int32)
    for b, ids in enumerate(inputs):
        batch[b, : len(ids)] = ids
    graphdef, state = nnx.split(model)

    @jax.jit
    def weights(state, x, lengths):
        m = nnx.merge(graphdef, state)
        if kind == "bert":
            _, att = m(x, seq_lengths=lengths, return_attention=True)
        else:
            _, att = m(x, seq_lengths=lengths, return_attention=True)
        return att["self"]

    w = np.asarray(weights(state, jnp.asarray(batch), jnp.asarray(lengths)), np.float32)  # [l, b, h, t, t]
    return [w[:, b, :, :n, :n] for b, n in enumerate(lengths)]


def top_links(weights: np.ndarray, k: int, exclude: Sequence[int]) -> list[dict[str, Any]]:
    """The ``k`` strongest query->key links of the mean over layers and heads, self-links and
    the ``exclude``d positions (special tokens) left out: ``[{"query", "key", "weight"}]``."""
    mean = weights.mean(axis=(0, 1)).astype(np.float64)
    n = mean.shape[0]
    mask = ~np.eye(n, dtype=bool)
    mask[list(exclude), :] = False
    mask[:, list(exclude)] = False
    flat = np.where(mask, mean, -np.inf).reshape(-1)
    order = [o for o in np.argsort(-flat, kind="stable")[:k] if np.isfinite(flat[o])]
    return [{"query": int(o // n), "key": int(o % n), "weight": float(flat[o])} for o in order]


# --- figures ----------------------------------------------------------------------------------


def _heatmap(ax, w: np.ndarray, tokens: list[str], causal: bool, annotate: bool, ticks: bool = True):
    shown = np.ma.masked_where(np.triu(np.ones_like(w, bool), 1), w) if causal else w
    cmap = __import__("matplotlib").colormaps["Blues"].copy()
    cmap.set_bad("#eeeeee")
    ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=1.0)
    if ticks:
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=6)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=6)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if annotate:
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                if causal and j > i:
                    continue
                ax.text(j, i, f"{w[i, j]:.2f}"[1:] if w[i, j] < 1 else "1", ha="center", va="center", fontsize=4.5,
                        color="white" if w[i, j] > 0.5 else "black")


def plot_layer(w: np.ndarray, tokens: list[str], layer: int, causal: bool, title: str) -> Figure:
    heads = w.shape[0]
    n = len(tokens)
    size = max(2.4, 0.28 * n)
    fig = Figure(figsize=(size * heads, size + 0.8))
    axes = fig.subplots(1, heads, squeeze=False)[0]
    for h, ax in enumerate(axes):
        _heatmap(ax, w[h], tokens, causal, annotate=n <= 16)
        ax.set_title(f"layer {layer}, head {h}", fontsize=8)
    fig.suptitle(title + (" (causal: keys after the query cannot be seen)" if causal else " (bidirectional)"),
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_grid(w: np.ndarray, tokens: list[str], causal: bool, title: str, best: dict) -> Figure:
    layers, heads = w.shape[:2]
    fig = Figure(figsize=(1.6 * heads + 0.5, 1.6 * layers + 0.6))
    axes = fig.subplots(layers, heads, squeeze=False)
    marks = {}
    for key, label in (("previous", "P"), ("next", "N"), ("self", "S"), ("first", "F"), ("last", "L")):
        for entry in best.get(key, [])[:1]:
            marks.setdefault((entry["layer"], entry["head"]), []).append(label)
    for l in range(layers):
        for h in range(heads):
            ax = axes[l, h]
            _heatmap(ax, w[l, h], tokens, causal, annotate=False, ticks=False)
            tag = "".join(marks.get((l, h), []))
            ax.set_title(f"L{l} H{h}" + (f"  [{tag}]" if tag else ""), fontsize=7)
    fig.suptitle(title + "\n[P]revious, [N]ext, [S]elf, [F]irst, [L]ast: the best head of each pattern", fontsize=8)
    fig.tight_layout()
    return fig


def plot_patterns(scores: dict, title: str) -> Figure:
    keys = [k for k in PATTERNS if not np.all(np.isnan(scores[k]))]
    layers, heads = np.asarray(scores[keys[0]]).shape
    fig = Figure(figsize=(2.2 * len(keys), 0.5 * layers + 1.6))
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        s = np.asarray(scores[key])
        vmax = 1.0 if key not in ("entropy", "distance") else max(float(np.nanmax(s)), 1e-6)
        ax.imshow(s, cmap="viridis", vmin=0.0, vmax=vmax)
        for l in range(layers):
            for h in range(heads):
                ax.text(h, l, f"{s[l, h]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if s[l, h] < 0.6 * vmax else "black")
        ax.set_title(f"{PATTERN_LABELS[key]}\nuniform: {scores['uniform'][key]:.2f}", fontsize=7)
        ax.set_xticks(range(heads))
        ax.set_yticks(range(layers))
        ax.set_xlabel("head", fontsize=7)
        ax.set_ylabel("layer", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _nodes(ax, tokens, y, color, size=170):
    xs = np.arange(len(tokens))
    ax.scatter(xs, np.full(len(xs), y), s=size, color=color, zorder=3)
    for x, t in zip(xs, tokens):
        ax.text(x, y - 0.28, t, ha="center", va="top", fontsize=8)


def plot_flow(flows: dict[str, dict]) -> Figure:
    """Top: the recurrent chain over the first model's tokens; below: each model's top links."""
    names = list(flows)
    fig = Figure(figsize=(11, 2.6 + 2.6 * len(names)))
    axes = fig.subplots(1 + len(names), 1)
    tokens = flows[names[0]]["tokens"]
    ax = axes[0]
    n = len(tokens)
    _nodes(ax, tokens, 0.0, "tab:blue")
    ax.scatter(np.arange(n), np.full(n, 1.0), s=110, color="tab:red", zorder=3)
    for i in range(n):
        ax.annotate("", xy=(i, 0.9), xytext=(i, 0.1), arrowprops=dict(arrowstyle="->", color="grey"))
        ax.text(i, 1.18, f"h{i}", ha="center", fontsize=7)
        if i:
            ax.annotate("", xy=(i - 0.08, 1.0), xytext=(i - 0.92, 1.0), arrowprops=dict(arrowstyle="->", color="tab:red"))
    ax.set_title(f"RNN: token 0 reaches token {n - 1} only through {n - 1} state updates h(i-1) -> h(i)", fontsize=9)
    ax.set_xlim(-0.7, n - 0.3)
    ax.set_ylim(-0.9, 1.5)
    ax.axis("off")
    for ax, name in zip(axes[1:], names):
        flow = flows[name]
        toks = flow["tokens"]
        _nodes(ax, toks, 0.0, "tab:blue")
        top = max((link["weight"] for link in flow["links"]), default=1.0)
        for link in flow["links"]:
            q, k, w = link["query"], link["key"], link["weight"]
            sign = 1 if k > q else -1
            arrow = FancyArrowPatch((q, 0.08 * sign), (k, 0.08 * sign), connectionstyle=f"arc3,rad={-0.45 * sign}",
                                    arrowstyle="-|>", mutation_scale=9, lw=0.6 + 3.5 * w / top,
                                    color="tab:green" if k < q else "tab:purple", alpha=0.8)
            ax.add_patch(arrow)
        ax.set_xlim(-0.7, len(toks) - 0.3)
        ax.set_ylim(-2.6, 2.6)
        ax.axis("off")
        ax.set_title(f"{flow['title']}: the {len(flow['links'])} strongest learned links (mean over layers and heads; "
                     "green: to an earlier token, purple: to a later one; width ~ weight)", fontsize=9)
    fig.suptitle("Recurrent chain vs learned attention links: " + FLOW_SENTENCE, fontsize=10)
    fig.tight_layout()
    return fig


# --- run --------------------------------------------------------------------------------------


def analyse(kind: str, model, tokenizer, info: dict, config: Config, run_dir: RunDir, bar) -> tuple[dict, dict]:
    causal = kind == "gpt"
    max_len = model.config.max_position_embeddings if kind == "bert" else model.config.n_positions
    arrays, per_sentence, inputs = {}, [], []
    all_ids = [encode(kind, tokenizer, info, sentence, max_len) for sentence in config.sentences()]
    for i, (sentence, ids, w) in enumerate(zip(config.sentences(), all_ids, attention_of(kind, model, all_ids))):
        tokens = [token_label(tokenizer, t) for t in ids]
        arrays[f"{kind}/{i}/weights"] = w
        arrays[f"{kind}/{i}/tokens"] = np.asarray(tokens)
        arrays[f"{kind}/{i}/ids"] = ids
        per_sentence.append(head_patterns(w, causal=causal))
        inputs.append({"text": sentence, "tokens": tokens})
        bar.update(1)
    arrays[f"{kind}/causal"] = np.asarray(causal)
    scores = average_patterns(per_sentence)
    best = best_heads(scores, config.best_k)
    title = "GPT (causal LM)" if causal else "BERT (masked LM)"
    h = config.heatmap_sentence
    w, tokens = arrays[f"{kind}/{h}/weights"], inputs[h]["tokens"]
    for layer in range(w.shape[0]):
        run_dir.save_figure(plot_layer(w[layer], tokens, layer, causal, f"{title}: {inputs[h]['text']!r}"),
                            f"{kind}_layer{layer}")
    run_dir.save_figure(plot_grid(w, tokens, causal, f"{title}, every layer x head: {inputs[h]['text']!r}", best),
                        f"{kind}_grid")
    run_dir.save_figure(plot_patterns(scores, f"{title}: pattern scores per head, averaged over "
                                      f"{len(inputs)} sentences"), f"{kind}_patterns")
    flow_index = config.sentences().index(FLOW_SENTENCE)
    flow_ids = arrays[f"{kind}/{flow_index}/ids"]
    specials = set(info.get("special_tokens", {}).values())
    exclude = [j for j, t in enumerate(flow_ids.tolist()) if t in specials]
    flow = {"title": title, "tokens": inputs[flow_index]["tokens"],
            "links": top_links(arrays[f"{kind}/{flow_index}/weights"], config.top_k, exclude)}
    layers, heads = w.shape[:2]
    summary = {
        "layers": layers, "heads": heads, "causal": causal, "inputs": inputs,
        "patterns": {k: np.asarray(scores[k]).tolist() for k in PATTERNS}, "uniform": scores["uniform"],
        "best_heads": best,
        "strongest": {k: v[0] for k, v in best.items()},
        "flow_links": flow["links"],
    }
    return summary | {"_arrays": arrays}, flow


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    out: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {"sentences": np.asarray(config.sentences())}
    flows = {}
    bar = progress(desc="attention maps", total=2 * len(config.sentences()))
    for kind, run_path in (("bert", config.bert_run), ("gpt", config.gpt_run)):
        model, tokenizer, info, source = load(kind, run_path, config)
        summary, flow = analyse(kind, model, tokenizer, info, config, run_dir, bar)
        arrays |= summary.pop("_arrays")
        out[kind] = {"source": source, **summary}
        flows[kind] = flow
    bar.close()
    run_dir.save_arrays("attention", **arrays)
    run_dir.save_figure(plot_flow(flows), "flow")
    out["flow_sentence"] = FLOW_SENTENCE
    out["environment"] = environment()
    out["timings"] = {"runtime_s": 0.0}
    return out


def format_report(summary: dict[str, Any]) -> str:
    lines = []
    for kind in MODELS:
        m = summary[kind]
        lines.append(f"{kind} ({m['layers']} layers x {m['heads']} heads; {m['source']}):")
        for key, entry in m["strongest"].items():
            lines.append(f"  {PATTERN_LABELS[key]:<24} best L{entry['layer']} H{entry['head']}: "
                         f"{entry['score']:.3f} (uniform {entry['uniform']:.3f})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(Config, argv, prog=f"python -m experiments.{NAME}", description=__doc__.split("\n")[0])
    return run_experiment(NAME, args, _timed(run), format_report)


def _timed(fn):
    def wrapped(config, run_dir):
        import time

        started = time.perf_counter()
        summary = fn(config, run_dir)
        summary["timings"] = {"runtime_s": round(time.perf_counter() - started, 1),
                              "note": "wall clock on a CPU shared with other jobs"}
        return summary
    return wrapped


if __name__ == "__main__":
    main()
