"""The tokenizer of a Hugging Face checkpoint directory (``tokenizer.json``), read with the
``tokenizers`` package (imported lazily) and given seqjax's tokenizer interface.

``tokenizer.json`` holds the whole fast tokenizer (normaliser, pre-tokeniser, WordPiece or BPE
model, the post-processor that adds ``[CLS]`` / ``[SEP]`` and segment ids), so the ids equal
``AutoTokenizer.from_pretrained(dir)``'s. :class:`HFTokenizer` has ``encode(text) -> int32
array`` and ``decode(ids) -> str`` as :mod:`seqjax.data.tokenizers`, ``len()`` the vocabulary
size, and a batch call that returns what the seqjax BERT and GPT models take: right-padded
``input_ids``, ``token_type_ids`` and ``token_mask`` (Hugging Face's ``attention_mask``).

Example::

    >>> import tempfile
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> from seqjax.interop.huggingface import load_hf_tokenizer
    >>> raw = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1, "hello": 2, "world": 3}, unk_token="[UNK]"))
    >>> raw.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> path = tempfile.mkdtemp()
    >>> raw.save(f"{path}/tokenizer.json")
    >>> tok = load_hf_tokenizer(path)
    >>> tok.encode("hello big world").tolist(), len(tok)
    ([2, 0, 3], 4)
    >>> batch = tok(["hello", "world hello world"])
    >>> batch["input_ids"].tolist(), batch["token_mask"].tolist()
    ([[2, 1, 1], [3, 2, 3]], [[True, False, False], [True, True, True]])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

TOKENIZER_NAME = "tokenizer.json"
INSTALL_TOKENIZERS = "pip install 'seqjax[huggingface]' (the tokenizers package)"


class HFTokenizer:
    """A ``tokenizers.Tokenizer`` with seqjax's tokenizer interface.

    Attributes:
      tokenizer: the wrapped ``tokenizers.Tokenizer``.
      pad_id: the id padded batches are filled with: ``pad_token``'s id if the vocabulary has it
        (default ``"[PAD]"``, else ``"<pad>"``), else 0.
    """

    def __init__(self, tokenizer: Any, *, pad_token: str | None = None):
        self.tokenizer = tokenizer
        candidates = [pad_token] if pad_token is not None else ["[PAD]", "<pad>"]
        ids = [tokenizer.token_to_id(t) for t in candidates]
        found = [i for i in ids if i is not None]
        if pad_token is not None and not found:
            raise ValueError(f"pad_token {pad_token!r} is not in the tokenizer's vocabulary.")
        self.pad_id = found[0] if found else 0

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, pair: str | None = None, *, add_special_tokens: bool = True) -> np.ndarray:
        """``text`` (and a second segment ``pair``) -> ids ``[n]`` int32, with the special tokens
        of the post-processor unless ``add_special_tokens=False``."""
        if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
            raise ValueError(f"text (and pair) must be str; got {type(text).__name__} and {type(pair).__name__}.")
        return np.asarray(self.tokenizer.encode(text, pair, add_special_tokens=add_special_tokens).ids, np.int32)

    def decode(self, ids: Any, *, skip_special_tokens: bool = True) -> str:
        """Ids -> text (the special tokens left out unless ``skip_special_tokens=False``)."""
        return self.tokenizer.decode([int(i) for i in np.asarray(ids).reshape(-1)],
                                     skip_special_tokens=skip_special_tokens)

    def __call__(self, texts: Sequence[str], pairs: Sequence[str] | None = None, *,
                 add_special_tokens: bool = True, max_length: int | None = None) -> dict[str, np.ndarray]:
        """A batch, right-padded to its longest member (or cut to ``max_length``):
        ``{"input_ids", "token_type_ids": [b, t] int32, "token_mask": [b, t] bool,
        "seq_lengths": [b] int32}``."""
        if isinstance(texts, str) or not len(texts):
            raise ValueError("texts must be a non-empty sequence of str (one text: wrap it in a list).")
        if pairs is not None and (isinstance(pairs, str) or len(pairs) != len(texts)):
            raise ValueError(f"pairs must be a sequence of {len(texts)} str, one per text.")
        inputs = list(texts) if pairs is None else list(zip(texts, pairs))
        encodings = self.tokenizer.encode_batch(inputs, add_special_tokens=add_special_tokens)
        lengths = [len(e.ids) if max_length is None else min(len(e.ids), max_length) for e in encodings]
        t = max(max(lengths), 1)
        ids = np.full((len(inputs), t), self.pad_id, np.int32)
        types = np.zeros((len(inputs), t), np.int32)
        for row, (e, n) in enumerate(zip(encodings, lengths)):
            ids[row, :n] = e.ids[:n]
            types[row, :n] = e.type_ids[:n]
        lengths = np.asarray(lengths, np.int32)
        return {"input_ids": ids, "token_type_ids": types, "token_mask": np.arange(t)[None] < lengths[:, None],
                "seq_lengths": lengths}


def load_hf_tokenizer(path: Any, *, pad_token: str | None = None) -> HFTokenizer:
    """The tokenizer of the checkpoint directory ``path`` (its ``tokenizer.json``), or of a
    ``tokenizer.json`` file, as an :class:`HFTokenizer`; needs the ``tokenizers`` package."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a directory or a tokenizer.json file; got {type(path).__name__}.")
    path = Path(path)
    file = path / TOKENIZER_NAME if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"no {TOKENIZER_NAME} at {str(path)!r}: the fast tokenizer file that save_pretrained writes "
                         "(older checkpoints with only vocab.txt: convert them once with transformers' "
                         "AutoTokenizer.from_pretrained(dir).save_pretrained(dir)).")
    try:
        from tokenizers import Tokenizer
    except ImportError as error:
        from seqjax.data.corpora import MissingOptionalDependency
        raise MissingOptionalDependency(f"reading {TOKENIZER_NAME} needs the tokenizers package: "
                                        f"{INSTALL_TOKENIZERS}.") from error
    return HFTokenizer(Tokenizer.from_file(str(file)), pad_token=pad_token)
