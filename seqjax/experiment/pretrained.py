"""Pretrained models saved by an experiment and loaded back in one call.

A pretrained model is a directory (by default ``<run dir>/pretrained/``, written by
``python -m experiments.pretrain_tiny``)::

    model.json       {"format": 1, "kind": "bert_mlm" | "gpt", "config": {...}, "info": {...}}
    tokenizer.json   the tokenizer (seqjax.data.tokenizers; any kind load_tokenizer reads)
    params/          the parameters, model.pure_params(), as one Orbax checkpoint
                     (seqjax.train.checkpoint: atomic, with a SHA-256 manifest)

``kind`` says which NNX module the ``config`` (the dataclass's fields) builds:

=============  =============================================  =====================================
kind           module                                         config
=============  =============================================  =====================================
``bert_mlm``   :class:`seqjax.nn.BertForMaskedLM`             :class:`seqjax.nn.BertConfig`
``gpt``        :class:`seqjax.nn.GPTLanguageModel`            :class:`seqjax.nn.GPT2Config`
=============  =============================================  =====================================

:func:`load_pretrained` rebuilds the module from the config, restores the checkpoint into its
``pure_params()`` (shapes and dtypes checked by Orbax) and writes them in with
:func:`seqjax.nn.load_pure_params`, so the loaded model gives the saved model's logits exactly.
To fine-tune the encoder of a BERT, take ``pretrained.model.bert`` (a
:class:`~seqjax.nn.BertModel` without pooler) or copy its ``pure_params()`` into a
:class:`~seqjax.nn.BertForSequenceClassification` of the same config.

It lives in the experiment plumbing (not in :mod:`seqjax.nn`) because it reads Orbax checkpoints
(:mod:`seqjax.train.checkpoint`), and :mod:`seqjax.nn` imports nothing from :mod:`seqjax.train`.

Example::

    >>> import tempfile, jax.numpy as jnp
    >>> from flax import nnx
    >>> from seqjax.data import CharTokenizer
    >>> from seqjax.nn import GPT2Config, GPTLanguageModel
    >>> from seqjax.experiment.pretrained import load_pretrained, save_pretrained
    >>> tokenizer = CharTokenizer.fit("hello world")
    >>> model = GPTLanguageModel(GPT2Config(vocab_size=len(tokenizer), n_positions=16, n_embd=8,
    ...                                     n_layer=1, n_head=2), rngs=nnx.Rngs(0))
    >>> path = save_pretrained(tempfile.mkdtemp(), model, tokenizer, info={"note": "untrained"})
    >>> loaded = load_pretrained(path)
    >>> ids = jnp.asarray(loaded.tokenizer.encode("hello"))[None]
    >>> loaded.kind, bool(jnp.array_equal(loaded.model(ids), model(ids)))
    ('gpt', True)
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from seqjax.data.tokenizers import load_tokenizer

FORMAT = 1
MODEL_FILE = "model.json"
TOKENIZER_FILE = "tokenizer.json"
PARAMS_DIR = "params"
DEFAULT_SUBDIR = "pretrained"


def _kinds() -> dict[str, tuple[type, type]]:
    from seqjax.nn import BertConfig, BertForMaskedLM, GPT2Config, GPTLanguageModel

    return {"bert_mlm": (BertForMaskedLM, BertConfig), "gpt": (GPTLanguageModel, GPT2Config)}


class Pretrained(NamedTuple):
    """What :func:`load_pretrained` returns: the NNX ``model`` with the saved weights, its
    ``tokenizer``, the ``kind`` (``"bert_mlm"`` or ``"gpt"``), the model ``config`` dataclass,
    ``info`` (what the saving run recorded: special-token ids, corpus, held-out scores ...) and
    the directory ``path`` it came from."""

    model: Any
    tokenizer: Any
    kind: str
    config: Any
    info: dict
    path: Path


def kind_of(model: Any) -> str:
    """``"bert_mlm"`` or ``"gpt"`` for a model :func:`save_pretrained` can save (``ValueError``
    for another type)."""
    for kind, (cls, _) in _kinds().items():
        if type(model) is cls:
            return kind
    names = ", ".join(cls.__name__ for cls, _ in _kinds().values())
    raise ValueError(f"model must be one of {names}; got {type(model).__name__}.")


def save_pretrained(directory: str | os.PathLike, model: Any, tokenizer: Any, *, info: dict | None = None) -> Path:
    """Write ``model`` (its config and ``pure_params()``) and ``tokenizer`` into ``directory``
    (created if needed) in the layout of the module docstring; returns the directory.

    ``info``: JSON-serialisable facts to keep beside the model (special-token ids, the corpus
    and its held-out split, scores). A tokenizer whose vocabulary size differs from the model's
    is refused.
    """
    from seqjax.train.checkpoint import Checkpointer

    kind = kind_of(model)
    vocab = model.config.vocab_size
    if len(tokenizer) > vocab:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {vocab}.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    params_dir = directory / PARAMS_DIR
    if params_dir.exists() and any(params_dir.iterdir()):
        raise ValueError(f"{directory} already holds a saved model ({params_dir}); choose another directory.")
    with Checkpointer(params_dir, save_every=1, max_to_keep=2) as ckpt:
        ckpt.save(0, model.pure_params())
    tokenizer.save(directory / TOKENIZER_FILE)
    meta = {"format": FORMAT, "kind": kind, "config": dataclasses.asdict(model.config), "info": info or {}}
    text = json.dumps(meta, indent=1, allow_nan=False)
    with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
        f.write(text)
    os.replace(f.name, directory / MODEL_FILE)  # written last: a directory with model.json is whole
    return directory


def resolve(path: str | os.PathLike) -> Path:
    """The pretrained-model directory of ``path``: ``path`` itself if it holds ``model.json``,
    else ``path/pretrained`` (a run directory of ``experiments.pretrain_tiny``)."""
    path = Path(path)
    for candidate in (path, path / DEFAULT_SUBDIR):
        if (candidate / MODEL_FILE).is_file():
            return candidate
    raise ValueError(
        f"{path} holds no pretrained model: expected {path / MODEL_FILE} or {path / DEFAULT_SUBDIR / MODEL_FILE} "
        "(written by save_pretrained at the end of python -m experiments.pretrain_tiny; an unfinished "
        "run has none yet: resume it with --resume)."
    )


def load_pretrained(path: str | os.PathLike, *, scan_layers: bool | None = None) -> Pretrained:
    """Load a model saved by :func:`save_pretrained` (or a ``pretrain_tiny`` run directory).

    Args:
      path: the pretrained directory, or a run directory holding ``pretrained/``.
      scan_layers: override the config's ``scan_layers`` (stacked, scanned layers or a list;
        the weights are the same, restacked). Default: as saved.

    Returns:
      :class:`Pretrained` ``(model, tokenizer, kind, config, info, path)``.
    """
    from flax import nnx

    from seqjax.nn import load_pure_params
    from seqjax.train.checkpoint import Checkpointer
    from seqjax.transformer.layout import stack_layers, unstack_layers

    directory = resolve(path)
    meta = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT or meta.get("kind") not in _kinds():
        raise ValueError(
            f"{directory / MODEL_FILE}: expected format {FORMAT} and kind one of {sorted(_kinds())}; "
            f"got format {meta.get('format')!r}, kind {meta.get('kind')!r}."
        )
    cls, config_cls = _kinds()[meta["kind"]]
    saved_config = config_cls(**meta["config"])
    saved = cls(saved_config, rngs=nnx.Rngs(0))
    with Checkpointer(directory / PARAMS_DIR, save_every=1, max_to_keep=2) as ckpt:
        step = ckpt.latest_valid(fallback=False)
        if step is None:
            raise ValueError(f"{directory / PARAMS_DIR} holds no checkpoint.")
        params = ckpt.restore(saved.pure_params(), step).state
    config = saved_config
    if scan_layers is not None and bool(scan_layers) != saved_config.scan_layers:
        config = dataclasses.replace(saved_config, scan_layers=bool(scan_layers))
        params = _restack(params, stack_layers if scan_layers else unstack_layers)
    model = cls(config, rngs=nnx.Rngs(0)) if config is not saved_config else saved
    load_pure_params(model, params)
    return Pretrained(model, load_tokenizer(directory / TOKENIZER_FILE), meta["kind"], config, meta.get("info", {}),
                      directory)


def _restack(tree: Any, convert) -> Any:
    """Apply ``convert`` (stack or unstack) to every ``"layers"`` entry of a parameter tree."""
    if isinstance(tree, dict):
        return {k: convert(v) if k == "layers" else _restack(v, convert) for k, v in tree.items()}
    return tree
