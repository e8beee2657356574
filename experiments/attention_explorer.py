"""Write the offline attention explorer (:mod:`seqjax.viz`) for saved attention weights.

    python -m experiments.attention_explorer --run RUN_DIR --text "..." [--out explorer.html]
    python -m experiments.attention_explorer --attention-npz attn.npz [--out explorer.html]
    python -m experiments.attention_explorer --demo [--layers 4 --heads 4] [--out demo.html]

One HTML file, opened from ``file://`` with the network off: head view, model view, matrix view,
rollout (Abnar & Zuidema 2020), sentence A/B filter, PNG/SVG export, and (where the ``.npz``
holds them) a recurrent-activation page.

``--attention-npz``: a ``.npz`` written with :func:`numpy.savez`, holding either one set,

* ``attention`` ``[layers, heads, t, s]`` (softmax weights), ``tokens`` ``[t]`` (strings),
  optionally ``source_tokens`` ``[s]``, ``kind`` (``"encoder"``, ``"causal"``, ``"cross"``),
  ``segment_ids`` ``[t]``;

or several named sets, each key prefixed by the set's name and a slash
(``"encoder self/attention"``, ``"encoder self/tokens"``, ``"cross/source_tokens"``, ...);
and optionally a recurrent trace: ``activations`` ``[t, units]``, ``activation_tokens`` ``[t]``,
``gates`` ``[t, gates, units]``, ``gate_names``, ``unit_names``.

``--demo``: **synthetic** weights (no model): per head, the softmax of Gaussian logits plus one
pattern bias (previous token, next token, self, [CLS]/[SEP], or none), for an encoder
self-attention set over a BERT-style sentence pair (segment ids), a causal decoder set and a
cross-attention set, and a synthetic activation trace (a smoothed random walk through tanh,
gates through a sigmoid). It exists to try the viewer and to test it; pictures of trained
models come from their own attention.

``--run``: a run directory of ``experiments.pretrain_tiny`` (or its ``pretrained/`` folder),
loaded with :func:`seqjax.experiment.pretrained.load_pretrained`; ``--text`` is encoded as that
model was trained (BERT ``[CLS] text [SEP]``, GPT ``[SEP] text``) and its self-attention of every
layer and head is drawn (GPT's lower-triangular). :func:`attention_for_text` is the interface
(``model, tokenizer, text -> {name: AttentionSet}``).

Nothing to resume: the command trains nothing and takes seconds (a 12 x 12 x 256 file about 6 s
to encode on a loaded 2-core CPU); the file is written atomically, so a killed run leaves either
no page or the whole one, and running it again gives the same file.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from seqjax.viz import ActivationTrace, AttentionSet, explorer_html, write_html

DEMO_PAIR = ("the cat sat on the mat .", "the dog chased its tail because it was wagging")
DEMO_TARGET = "le chat est assis sur le tapis ."
DEMO_TEXT = "The quick brown fox jumps over the lazy dog.\nThe cat sat on the mat.\n"
PATTERNS = ("previous", "next", "self", "special", "none")


def softmax(logits: np.ndarray, causal: bool = False) -> np.ndarray:
    """Row softmax over the last axis; ``causal`` masks keys after the query (``j > i``)."""
    z = np.asarray(logits, np.float64)
    if causal:
        t, s = z.shape[-2:]
        z = np.where(np.tril(np.ones((t, s), bool)), z, -np.inf)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def synthetic_attention(
    layers: int,
    heads: int,
    t: int,
    s: int | None = None,
    *,
    causal: bool = False,
    noise: float = 1.0,
    bias: float = 4.0,
    special: tuple[int, ...] = (0,),
    seed: int = 0,
) -> np.ndarray:
    """Synthetic attention ``[layers, heads, t, s]``: softmax(noise * N(0, 1) + bias * pattern).

    Head ``h`` of layer ``l`` gets pattern ``PATTERNS[(l + h) % 5]``: a bias on key ``i - 1``
    (previous token), ``i + 1`` (next), ``i`` (self), the ``special`` key columns, or none. With
    ``bias=0`` it is plain softmax of random logits. ``causal`` zeroes keys after the query.
    """
    s = t if s is None else s
    rng = np.random.default_rng(seed)
    logits = noise * rng.standard_normal((layers, heads, t, s))
    i = np.arange(t)[:, None]
    j = np.arange(s)[None, :]
    masks = {
        "previous": j == i - 1,
        "next": j == i + 1,
        "self": j == i,
        "special": np.isin(j, special) & (i >= 0),
        "none": np.zeros((t, s), bool),
    }
    for layer in range(layers):
        for head in range(heads):
            logits[layer, head] += bias * masks[PATTERNS[(layer + head) % len(PATTERNS)]]
    return softmax(logits, causal=causal)


def demo_sets(layers: int = 4, heads: int = 4, seed: int = 0) -> dict[str, AttentionSet]:
    """The three synthetic sets of ``--demo``: encoder pair, causal decoder, cross-attention."""
    a, b = (x.split() for x in DEMO_PAIR)
    enc = ["[CLS]", *a, "[SEP]", *b, "[SEP]"]
    seg = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    sep = (0, len(a) + 1, len(enc) - 1)
    dec = ["<s>", *DEMO_TARGET.split()]
    src = ["<s>", *DEMO_PAIR[0].split(), "</s>"]
    return {
        "encoder self (synthetic)": AttentionSet(
            synthetic_attention(layers, heads, len(enc), special=sep, seed=seed),
            enc, segment_ids=seg),
        "decoder self (synthetic)": AttentionSet(
            synthetic_attention(layers, heads, len(dec), causal=True, seed=seed + 1),
            dec, kind="causal"),
        "cross (synthetic)": AttentionSet(
            synthetic_attention(layers, heads, len(dec), len(src), special=(len(src) - 1,),
                                seed=seed + 2),
            dec, source_tokens=src, kind="cross"),
    }


def demo_trace(text: str = DEMO_TEXT, units: int = 16, seed: int = 0) -> ActivationTrace:
    """A synthetic LSTM-like trace over ``text``: tanh of smoothed random walks, sigmoid gates."""
    rng = np.random.default_rng(seed)
    t = len(text)
    walk = np.cumsum(rng.standard_normal((t, units)), axis=0) * 0.4
    walk -= walk.mean(axis=0)
    gates = 1.0 / (1.0 + np.exp(-2.0 * rng.standard_normal((t, 3, units))))
    return ActivationTrace(list(text), np.tanh(walk), gates, gate_names=("input", "forget", "output"))


def attention_for_text(model, tokenizer, text: str,
                       capture: Callable | None = None) -> dict[str, AttentionSet]:
    """The interface a trained model provides: ``text -> {name: AttentionSet}``.

    ``tokenizer(text)`` must return ``(token_ids, tokens)``; ``capture(model, token_ids)`` must
    return a mapping of set names to ``(weights [layers, heads, t, s], kind)`` for one example
    (the transformer stacks' attention capture). Both come with the model's run directory.
    """
    if capture is None:
        raise ValueError(
            "capture is required: a function (model, token_ids) -> {name: (weights, kind)} "
            "returning the model's attention weights for one example."
        )
    ids, tokens = tokenizer(text)
    out = {}
    for name, (weights, kind) in capture(model, ids).items():
        out[name] = AttentionSet(np.asarray(weights), list(tokens), kind=kind)
    return out


def sets_from_run(run: str | Path, text: str) -> dict[str, AttentionSet]:
    """The self-attention of the pretrained model in ``run`` over ``text`` (module docstring)."""
    from experiments import attention_maps
    from seqjax.experiment.pretrained import load_pretrained

    loaded = load_pretrained(run)
    kind = loaded.kind.replace("_mlm", "")
    max_len = loaded.config.max_position_embeddings if kind == "bert" else loaded.config.n_positions

    def tokenizer(t):
        ids = attention_maps.encode(kind, loaded.tokenizer, loaded.info, t, max_len)
        return ids, [attention_maps.token_label(loaded.tokenizer, i) for i in ids]

    def capture(model, ids):
        weights = attention_maps.attention_of(kind, model, [ids])[0]
        return {f"{kind} self-attention": (weights, "causal" if kind == "gpt" else "encoder")}

    return attention_for_text(loaded.model, tokenizer, text, capture)


def _strings(a) -> list[str]:
    return [str(x) for x in np.asarray(a).tolist()]


def sets_from_npz(path: str | Path) -> tuple[dict[str, AttentionSet], ActivationTrace | None]:
    """Read the attention sets (and optional activation trace) of an ``.npz`` (module docstring)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    groups: dict[str, dict] = {}
    for key, value in arrays.items():
        name, _, field = key.rpartition("/")
        groups.setdefault(name, {})[field] = value
    sets: dict[str, AttentionSet] = {}
    for name, g in groups.items():
        if "attention" not in g:
            continue
        kind = str(g["kind"]) if "kind" in g else "encoder"
        sets[name or "attention"] = AttentionSet(
            g["attention"],
            _strings(g["tokens"]) if "tokens" in g else None,
            source_tokens=_strings(g["source_tokens"]) if "source_tokens" in g else None,
            kind=kind,
            segment_ids=g["segment_ids"] if "segment_ids" in g else None,
        )
    top = groups.get("", {})
    trace = None
    if "activations" in top:
        trace = ActivationTrace(
            _strings(top["activation_tokens"]) if "activation_tokens" in top else None,
            top["activations"],
            top.get("gates"),
            unit_names=_strings(top["unit_names"]) if "unit_names" in top else None,
            gate_names=_strings(top["gate_names"]) if "gate_names" in top else None,
        )
    if not sets and trace is None:
        raise ValueError(
            f"{path} holds no 'attention' array (nor '<name>/attention', nor 'activations'); "
            f"its keys are {sorted(arrays)}."
        )
    return sets, trace


BROWSER_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync")


def _palette_png(path: Path) -> None:
    """Re-save a screenshot as a 256-colour PNG (a quarter of the size; for docs)."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def screenshots(html_path: str | Path, out_dir: str | Path, *, width: int = 1000) -> list[Path]:
    """PNG screenshots of the head view (first three heads) and the model view of an explorer file.

    Uses the system Chromium through playwright (``pip install playwright``; ``apt-get install
    chromium``), headless and offline. Writes ``explorer_head_view.png`` and
    ``explorer_model_view.png`` into ``out_dir``.
    """
    import shutil

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("--screenshots needs the Python package playwright: pip install playwright")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("--screenshots needs Chromium: apt-get install -y chromium")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    api = "document.querySelector('.sqx-explorer')._sqx"
    paths = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=list(BROWSER_ARGS))
        page = browser.new_context(offline=True, viewport={"width": width, "height": 900}).new_page()
        page.goto(Path(html_path).resolve().as_uri())
        page.wait_for_function(f"{api} && {api}.rendered === true", timeout=120_000)
        # The head view with its first three heads (all heads at once are a thicket).
        page.evaluate(f"{api}.set({{heads: {api}.state.heads.map((_, i) => i < 3)}})")
        for view in ("head", "model"):
            page.evaluate(f"{api}.set({{view: '{view}', hover: null}})")
            if view == "model":
                page.wait_for_function(f"{api}.thumbsDone === true", timeout=120_000)
            path = out_dir / f"explorer_{view}_view.png"
            page.locator(".sqx-explorer").screenshot(path=str(path))
            _palette_png(path)
            paths.append(path)
        browser.close()
    return paths


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.attention_explorer",
        description="Write the self-contained HTML attention explorer (seqjax.viz).",
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a pretrain_tiny run directory (with --text)")
    src.add_argument("--attention-npz", type=Path, help="a .npz of attention weights and tokens")
    src.add_argument("--demo", action="store_true", help="synthetic weights (no model)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the HTML file (default runs/attention_explorer/<UTC time>.html)")
    parser.add_argument("--text", default=None, help="--run: the text to look at")
    parser.add_argument("--title", default=None, help="page title")
    parser.add_argument("--layers", type=int, default=4, help="--demo: layers")
    parser.add_argument("--heads", type=int, default=4, help="--demo: heads")
    parser.add_argument("--seed", type=int, default=0, help="--demo: random seed")
    parser.add_argument("--max-bytes", type=int, default=4_500_000,
                        help="byte budget for the quantised weights")
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="also save PNGs of the head and model views into this folder "
                             "(needs playwright and the system Chromium)")
    args = parser.parse_args(argv)
    for flag in ("layers", "heads"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1; got {getattr(args, flag)}.")
    start = time.perf_counter()
    try:
        if args.run is not None:
            if not args.text:
                parser.error("--run needs --text: the text whose attention to draw.")
            sets, trace = sets_from_run(args.run, args.text), None
            title = args.title or f"seqjax explorer: {args.run.name}"
        elif args.demo:
            sets, trace = demo_sets(args.layers, args.heads, args.seed), demo_trace(seed=args.seed)
            title = args.title or "seqjax explorer: synthetic demo"
        else:
            sets, trace = sets_from_npz(args.attention_npz)
            title = args.title or f"seqjax explorer: {args.attention_npz.name}"
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    html = explorer_html(sets or None, trace, title=title, max_bytes=args.max_bytes)
    out = args.out
    if out is None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        out = Path("runs") / "attention_explorer" / f"{stamp}.html"
    path = write_html(out, html)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, "
          f"{time.perf_counter() - start:.1f} s); open it in a browser", file=sys.stderr)
    if args.screenshots is not None:
        for shot in screenshots(path, args.screenshots):
            print(f"wrote {shot}", file=sys.stderr)
    return path


if __name__ == "__main__":
    main()
