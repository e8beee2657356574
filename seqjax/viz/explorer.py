"""A self-contained, offline HTML explorer of attention weights and recurrent activations.

One HTML file holds everything: the JavaScript and CSS inline, the data as one JSON object
(arrays quantised to ``uint8``, deflated, base64: :mod:`seqjax.viz.payload`). No CDN, no network, no
require.js: it opens from ``file://``, in a plain browser, and in Jupyter classic and JupyterLab
(display an :class:`Explorer`: its ``_repr_html_`` is an ``<iframe srcdoc>``, so each explorer
has its own document, its own scripts and styles, and two in one notebook never collide).

Pages and views:

* **Attention** (one or more named sets, e.g. encoder self-, decoder self- and
  cross-attention, each ``[layers, heads, t, s]`` with its own tokens):

  - *head view*: one layer; every chosen head is a colour, and a line from query token ``i``
    (left) to key token ``j`` (right) has opacity ``w_ij`` (weights below 0.01 are not drawn;
    without a hovered token at most 20,000 lines, the strongest per query and head); hover a
    token to keep only its lines; click head swatches to choose heads (double-click: that head
    alone);
  - *model view*: a thumbnail heatmap of every layer x head (and the rollout per layer), drawn
    on canvases incrementally; click one to open it in the matrix view;
  - *matrix view*: the heatmap of one layer (the mean of the chosen heads) with token labels;
  - *rollout* (Abnar & Zuidema 2020, :func:`seqjax.viz.attention_rollout`, computed here and
    shipped in the file) in place of the raw weights, for self-attention sets;
  - a sentence A/B filter from ``segment_ids`` (BERT inputs); causal sets are drawn
    lower-triangular (only the part the mask lets through);
  - export of the current view as PNG (the canvas) and SVG (a vector document of the view).

* **Activations** (Karpathy, Johnson & Fei-Fei 2015): the input text coloured by one unit's
  activation (blue negative, red positive), or by a gate (0 to 1); hover a character for the
  unit's values at that step; export the coloured text as SVG, the series plot as PNG.

Everything is drawn on canvases; no view creates a DOM node per attention weight.

Input checks (``ValueError`` naming the argument): ``attention`` of rank 4; finite; non-negative;
each query row sums to 1 within ``row_tolerance`` (1e-3 by default; padded queries should be cut
off before, and rows of a fully masked query, all zeros, are also accepted); token counts equal
to ``t`` and ``s``; a causal set square with (near) zero weight above the diagonal.

Example:
    >>> import numpy as np
    >>> from seqjax.viz import attention_html, read_explorer_data
    >>> logits = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    >>> w = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    >>> html = attention_html(w, ["[CLS]", "the", "cat", "[SEP]"])
    >>> html.startswith("<!DOCTYPE html>") and "http" not in html.split("<script")[0]
    True
    >>> data = read_explorer_data(html)
    >>> bool(np.abs(data["attention"]["attention"]["weights"] - w).max() <= 1 / 510 + 1e-7)
    True
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import json
import os
import re
import uuid
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from seqjax.viz.payload import choose_levels, decode_array, encode_array
from seqjax.viz.rollout import attention_rollout

__all__ = [
    "ActivationTrace",
    "AttentionSet",
    "Explorer",
    "activation_html",
    "attention_html",
    "explorer_html",
    "read_explorer_data",
    "write_html",
]

Kind = Literal["encoder", "causal", "cross"]
KINDS = ("encoder", "causal", "cross")
FORMAT = "seqjax-explorer"
VERSION = 1
# Default byte budget for the quantised arrays of one file (the issue asks for < 5 MB).
MAX_BYTES = 4_500_000


def _tokens(name: str, tokens: Any, expected: int, axis: str) -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise ValueError(
            f"{name} must be a sequence of {expected} strings (one per {axis}); got "
            f"{type(tokens).__name__}."
        )
    out = [str(t) for t in tokens]
    if len(out) != expected:
        raise ValueError(
            f"{name} has {len(out)} tokens but the attention has {axis} = {expected}."
        )
    return out


def _float_array(name: str, x: Any, ndim: int, layout: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array with layout {layout}; {exc}") from None
    if a.ndim != ndim:
        raise ValueError(
            f"{name} must have rank {ndim} with layout {layout}; got shape {a.shape} "
            f"(rank {a.ndim})."
        )
    if a.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {a.shape}.")
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise ValueError(f"{name} must be finite; got {bad} NaN or infinite entries.")
    return a


def _segments(name: str, ids: Any, expected: int) -> list[int] | None:
    if ids is None:
        return None
    a = np.asarray(ids)
    if a.shape != (expected,) or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"{name} must be {expected} integers (one per token); got shape {a.shape}, "
            f"dtype {a.dtype}."
        )
    return [int(v) for v in a]


@dataclasses.dataclass(frozen=True)
class AttentionSet:
    """One set of attention weights and its tokens, validated on construction.

    Attributes:
        weights: ``[layers, heads, t, s]``, query rows summing to 1 (float32 after checks).
        tokens: the ``t`` query tokens.
        source_tokens: the ``s`` key tokens; ``None`` means ``tokens`` (self-attention).
        kind: ``"encoder"`` (bidirectional self-attention), ``"causal"`` (masked
            self-attention, drawn lower-triangular) or ``"cross"`` (queries attend a source).
        segment_ids: ``[t]`` integer segments of the queries (0 = sentence A, 1 = B) for the
            A/B filter; ``source_segment_ids`` those of the keys (default: the same).
        row_tolerance: allowed ``|sum_j w_ij - 1|`` per query row (all-zero rows also pass).
    """

    weights: Any
    tokens: Sequence[str]
    source_tokens: Sequence[str] | None = None
    kind: Kind = "encoder"
    segment_ids: Sequence[int] | None = None
    source_segment_ids: Sequence[int] | None = None
    row_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        w = _float_array("attention", self.weights, 4, "[layers, heads, t, s]")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}.")
        _, _, t, s = w.shape
        if (w < 0).any():
            raise ValueError(
                f"attention must be non-negative (softmax weights); its minimum is {w.min():.3g}."
            )
        sums = w.sum(axis=-1)
        bad = (np.abs(sums - 1.0) > self.row_tolerance) & (sums != 0.0)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                "attention rows (over the last axis s) must sum to 1 within "
                f"row_tolerance={self.row_tolerance}; {int(bad.sum())} rows do not, e.g. "
                f"[layer, head, query] = {list(idx)} sums to {sums[idx]:.6g}. Pass softmax "
                "weights, not logits, with padded queries removed."
            )
        tokens = _tokens("tokens", self.tokens, t, "t (queries)")
        if self.source_tokens is None:
            if self.kind == "cross" or s != t:
                raise ValueError(
                    f"source_tokens is required for {self.kind!r} attention with t={t}, s={s}."
                )
            source = list(tokens)
        else:
            source = _tokens("source_tokens", self.source_tokens, s, "s (keys)")
        if self.kind == "causal":
            if t != s:
                raise ValueError(f"causal attention must be square; got t={t}, s={s}.")
            upper = np.triu(np.ones((t, s), bool), k=1)
            leak = float(w[..., upper].max()) if upper.any() else 0.0
            if leak > self.row_tolerance:
                raise ValueError(
                    "causal attention must be zero above the diagonal (key j > query i); its "
                    f"largest such weight is {leak:.3g}. Use kind='encoder' for bidirectional "
                    "attention."
                )
        seg = _segments("segment_ids", self.segment_ids, t)
        src_seg = _segments("source_segment_ids", self.source_segment_ids, s)
        if src_seg is None and seg is not None and s == t and self.kind != "cross":
            src_seg = list(seg)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "source_tokens", source)
        object.__setattr__(self, "segment_ids", seg)
        object.__setattr__(self, "source_segment_ids", src_seg)

    @property
    def rollout(self) -> np.ndarray | None:
        """:func:`attention_rollout` of a self-attention set, ``None`` for cross-attention."""
        if self.kind == "cross":
            return None
        return attention_rollout(self.weights)


@dataclasses.dataclass(frozen=True)
class ActivationTrace:
    """Per-step activations of a recurrent model over its input tokens (characters).

    Attributes:
        tokens: the ``t`` input tokens (characters; ``"\\n"`` breaks the line).
        activations: ``[t, units]`` (e.g. the cell state or hidden state after each step).
        gates: optional ``[t, gates, units]`` gate activations (sigmoid outputs in [0, 1]).
        unit_names: optional ``units`` names; ``gate_names`` optional ``gates`` names.
    """

    tokens: Sequence[str]
    activations: Any
    gates: Any = None
    unit_names: Sequence[str] | None = None
    gate_names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        a = _float_array("activations", self.activations, 2, "[t, units]")
        t, units = a.shape
        tokens = _tokens("tokens", self.tokens, t, "t (time steps)")
        g = None
        if self.gates is not None:
            g = _float_array("gates", self.gates, 3, "[t, gates, units]")
            if g.shape[0] != t or g.shape[2] != units:
                raise ValueError(
                    f"gates must have shape [t, gates, units] = [{t}, *, {units}]; got {g.shape}."
                )
        names = [f"unit {i}" for i in range(units)]
        if self.unit_names is not None:
            names = _tokens("unit_names", self.unit_names, units, "units")
        gate_names = None
        if g is not None:
            gate_names = [f"gate {i}" for i in range(g.shape[1])]
            if self.gate_names is not None:
                gate_names = _tokens("gate_names", self.gate_names, g.shape[1], "gates")
        object.__setattr__(self, "activations", a)
        object.__setattr__(self, "tokens", tokens)
        object.__setattr__(self, "gates", g)
        object.__setattr__(self, "unit_names", names)
        object.__setattr__(self, "gate_names", gate_names)


def _as_sets(attention: Any, kwargs: dict) -> dict[str, AttentionSet]:
    if attention is None:
        return {}
    if isinstance(attention, AttentionSet):
        return {"attention": attention}
    if isinstance(attention, Mapping):
        out = {}
        for name, value in attention.items():
            if isinstance(value, AttentionSet):
                out[str(name)] = value
            elif isinstance(value, Mapping):
                out[str(name)] = AttentionSet(**value)
            else:
                raise ValueError(
                    f"attention[{name!r}] must be an AttentionSet or a mapping of its fields; "
                    f"got {type(value).__name__}."
                )
        if not out:
            raise ValueError("attention must name at least one set; got an empty mapping.")
        return out
    if kwargs.get("tokens") is None:
        raise ValueError("tokens is required when attention is an array [layers, heads, t, s].")
    return {"attention": AttentionSet(attention, **kwargs)}


def _as_traces(activations: Any) -> dict[str, ActivationTrace]:
    if activations is None:
        return {}
    if isinstance(activations, ActivationTrace):
        return {"activations": activations}
    if isinstance(activations, Mapping):
        out = {}
        for name, value in activations.items():
            if not isinstance(value, ActivationTrace):
                value = ActivationTrace(**value)
            out[str(name)] = value
        return out
    raise ValueError(
        "activations must be an ActivationTrace or a mapping of names to them; got "
        f"{type(activations).__name__}."
    )


def _asset(name: str) -> str:
    path = resources.files("seqjax.viz").joinpath(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"seqjax/viz/{name} is missing from this installation: the package data of "
            "seqjax.viz (*.js, *.css) was not installed; reinstall seqjax from its source tree."
        )
    return path.read_text(encoding="utf-8")


def _payload(
    sets: dict[str, AttentionSet],
    traces: dict[str, ActivationTrace],
    title: str,
    max_bytes: int | None,
    levels: int | None,
) -> dict:
    # Attention: one scale per [t, s] matrix (what a heatmap normalises by); activations: one
    # per unit's series over time, stored unit-major ([units, t], [gates, units, t]).
    arrays: list[tuple[np.ndarray, int]] = []
    rollouts = {name: st.rollout for name, st in sets.items()}
    for name, st in sets.items():
        arrays.append((st.weights, 2))
        if rollouts[name] is not None:
            arrays.append((rollouts[name], 2))
    for tr in traces.values():
        arrays.append((tr.activations.T, 1))
        if tr.gates is not None:
            arrays.append((tr.gates.transpose(1, 2, 0), 1))
    if levels is None:
        levels = choose_levels(arrays, max_bytes)
    attention = []
    for name, st in sets.items():
        layers, heads, t, s = st.weights.shape
        attention.append({
            "name": name,
            "kind": st.kind,
            "layers": layers,
            "heads": heads,
            "t": t,
            "s": s,
            "tokens": st.tokens,
            "source_tokens": st.source_tokens,
            "segment_ids": st.segment_ids,
            "source_segment_ids": st.source_segment_ids,
            "weights": encode_array(st.weights, levels, scale_axes=2),
            "rollout": (None if rollouts[name] is None
                        else encode_array(rollouts[name], levels, scale_axes=2)),
        })
    activation = []
    for name, tr in traces.items():
        activation.append({
            "name": name,
            "t": tr.activations.shape[0],
            "units": tr.activations.shape[1],
            "tokens": tr.tokens,
            "unit_names": tr.unit_names,
            "gate_names": tr.gate_names,
            "values": encode_array(tr.activations.T, levels),
            "gates": None if tr.gates is None else encode_array(tr.gates.transpose(1, 2, 0), levels),
        })
    return {
        "format": FORMAT,
        "version": VERSION,
        "title": title,
        "levels": int(levels),
        "attention": attention,
        "activations": activation,
    }


def explorer_html(
    attention: Mapping[str, AttentionSet] | AttentionSet | None = None,
    activations: Mapping[str, ActivationTrace] | ActivationTrace | None = None,
    *,
    title: str = "seqjax explorer",
    max_bytes: int | None = MAX_BYTES,
    levels: int | None = None,
) -> str:
    """The explorer as one self-contained HTML document, with an attention and/or activation page.

    Args:
        attention: named :class:`AttentionSet` s (or mappings of their fields), or one set.
        activations: named :class:`ActivationTrace` s, or one.
        title: the page title.
        max_bytes: byte budget for the encoded arrays; the finest quantisation that fits is
            used (:func:`seqjax.viz.payload.choose_levels`). ``None``: no budget (255 levels).
        levels: force a number of quantisation levels (1 to 255) instead of the budget.

    Returns:
        The HTML text (write it with :func:`write_html`, show it with :class:`Explorer`).
    """
    sets = _as_sets(attention, {}) if attention is not None else {}
    traces = _as_traces(activations)
    if not sets and not traces:
        raise ValueError("explorer_html needs attention, activations, or both; got neither.")
    data = _payload(sets, traces, str(title), max_bytes, levels)
    uid = "sqx-" + uuid.uuid4().hex[:12]
    # "</" inside a <script> element would end it; JSON allows "<\/".
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    css = _asset("explorer.css")
    js = _asset("explorer.js")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html_lib.escape(str(title))}</title>"
        f"<style>{css}</style></head><body>\n"
        f"<div class=\"sqx-explorer\" id=\"{uid}\"></div>\n"
        f"<script type=\"application/json\" id=\"{uid}-data\">{blob}</script>\n"
        f"<script>{js}\nseqjaxExplorer(document.getElementById(\"{uid}\"));</script>\n"
        "</body></html>\n"
    )


def attention_html(
    attention: Any,
    tokens: Sequence[str] | None = None,
    *,
    source_tokens: Sequence[str] | None = None,
    kind: Kind = "encoder",
    segment_ids: Sequence[int] | None = None,
    activations: Mapping[str, ActivationTrace] | ActivationTrace | None = None,
    title: str = "seqjax attention explorer",
    max_bytes: int | None = MAX_BYTES,
    levels: int | None = None,
) -> str:
    """The attention explorer for one array ``[layers, heads, t, s]`` or several named sets.

    Args:
        attention: weights ``[layers, heads, t, s]`` (with ``tokens``), or a mapping of names
            (``"encoder self"``, ``"decoder self"``, ``"cross"``) to :class:`AttentionSet` s.
        tokens: the ``t`` query tokens (for an array).
        source_tokens: the ``s`` key tokens (cross-attention; default ``tokens``).
        kind: ``"encoder"``, ``"causal"`` or ``"cross"`` (for an array).
        segment_ids: ``[t]`` sentence ids (0 = A, 1 = B) for the A/B filter (for an array).
        activations: optionally, a recurrent activation page in the same file.
        title, max_bytes, levels: as :func:`explorer_html`.
    """
    if isinstance(attention, (AttentionSet, Mapping)):
        if tokens is not None or source_tokens is not None or segment_ids is not None:
            raise ValueError(
                "tokens, source_tokens and segment_ids belong inside each AttentionSet when "
                "attention is a set or a mapping of sets."
            )
        sets = _as_sets(attention, {})
    else:
        sets = _as_sets(
            attention,
            {"tokens": tokens, "source_tokens": source_tokens, "kind": kind,
             "segment_ids": segment_ids},
        )
    return explorer_html(sets, activations, title=title, max_bytes=max_bytes, levels=levels)


def activation_html(
    tokens: Sequence[str],
    activations: Any,
    *,
    gates: Any = None,
    unit_names: Sequence[str] | None = None,
    gate_names: Sequence[str] | None = None,
    title: str = "seqjax activation explorer",
    max_bytes: int | None = MAX_BYTES,
    levels: int | None = None,
) -> str:
    """The recurrent-activation page alone: ``tokens`` (``t`` characters), ``activations [t, units]``.

    ``gates`` ``[t, gates, units]`` adds a choice of colouring by a gate. See
    :class:`ActivationTrace`; ``title``, ``max_bytes``, ``levels`` as :func:`explorer_html`.

    Example:
        >>> import numpy as np
        >>> text = list("hello world")
        >>> acts = np.tanh(np.random.default_rng(0).normal(size=(len(text), 8)))
        >>> page = activation_html(text, acts)
        >>> "seqjax-explorer" in page
        True
    """
    trace = ActivationTrace(tokens, activations, gates, unit_names, gate_names)
    return explorer_html(None, trace, title=title, max_bytes=max_bytes, levels=levels)


def write_html(path: str | Path, html: str) -> Path:
    """Write an explorer document to ``path`` (UTF-8; parent folders are created), atomically:
    the text goes to a temporary file beside it, renamed over ``path`` once complete, so a
    killed write never leaves a half-written page."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


_DATA = re.compile(r'<script type="application/json" id="[^"]*-data">(.*?)</script>', re.S)


def read_explorer_data(html: str) -> dict:
    """Decode the data of an explorer document: per set, the dequantised arrays and tokens.

    Returns ``{"title", "levels", "attention": {name: {"weights", "rollout", "tokens",
    "source_tokens", "kind", "segment_ids"}}, "activations": {name: {"activations" [t, units],
    "gates" [t, gates, units] or None, "tokens", ...}}}``.
    """
    match = _DATA.search(html)
    if match is None:
        raise ValueError("html holds no seqjax explorer data (no <script id=...-data> element).")
    data = json.loads(match.group(1).replace("<\\/", "</"))
    if data.get("format") != FORMAT:
        raise ValueError(f"html data has format {data.get('format')!r}; expected {FORMAT!r}.")
    out: dict = {"title": data["title"], "levels": data["levels"], "attention": {},
                 "activations": {}}
    for st in data["attention"]:
        out["attention"][st["name"]] = {
            "kind": st["kind"],
            "tokens": st["tokens"],
            "source_tokens": st["source_tokens"],
            "segment_ids": st["segment_ids"],
            "weights": decode_array(st["weights"]),
            "rollout": None if st["rollout"] is None else decode_array(st["rollout"]),
        }
    for tr in data["activations"]:
        gates = None if tr["gates"] is None else decode_array(tr["gates"]).transpose(2, 0, 1)
        out["activations"][tr["name"]] = {
            "tokens": tr["tokens"],
            "unit_names": tr["unit_names"],
            "gate_names": tr["gate_names"],
            "activations": decode_array(tr["values"]).T,
            "gates": gates,
        }
    return out


class Explorer:
    """An explorer document for notebooks: displays itself in an ``<iframe srcdoc>``.

    The iframe gives the explorer its own document, so its scripts run in Jupyter classic,
    JupyterLab and VS Code alike (no require.js, no global names shared between outputs) and
    several explorers can be shown in one notebook. ``IPython.display.HTML(explorer.html)``
    also works where the front end runs scripts in HTML outputs (classic; trusted JupyterLab).

    >>> ex = Explorer("<!DOCTYPE html><p>hi</p>", height=300)
    >>> ex._repr_html_().startswith("<iframe")
    True
    """

    def __init__(self, html: str, *, height: int = 760) -> None:
        if not isinstance(html, str):
            raise ValueError(f"html must be the explorer document (str); got {type(html).__name__}.")
        self.html = html
        self.height = int(height)

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{html_lib.escape(self.html, quote=True)}" '
            f'style="width:100%;height:{self.height}px;border:1px solid #ddd" '
            'sandbox="allow-scripts allow-downloads allow-popups" '
            'title="seqjax explorer"></iframe>'
        )

    def save(self, path: str | Path) -> Path:
        """Write the standalone document (opens from ``file://``)."""
        return write_html(path, self.html)
