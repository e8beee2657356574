"""Tokenizer training and encoding: seqjax (pure Python) vs Hugging Face ``tokenizers`` (Rust).

    python -m benchmarks.tokenizers                  # 3 alternating rounds
    python -m benchmarks.tokenizers --rounds 5 --out runs/benchmarks/tokenizers.json
    python -m benchmarks.tokenizers --rounds 1 --reps 1 --max-documents 20 --vocab-size 200   # tiny (tests)

What is timed, on the Lee background corpus that gensim ships (300 documents, ~60k words):
training a vocabulary of ``vocab_size`` (2000) tokens, and encoding the Lee test corpus (50
documents) 20 times, for BPE (our :class:`seqjax.data.tokenizers.BPETokenizer` vs HF's
``BpeTrainer`` with the same pre-tokenisation, ``Split(\\s*\\S+|\\s+)`` and ``</w>``) and WordPiece
(:class:`seqjax.data.tokenizers.WordPieceTokenizer` vs HF's ``WordPieceTrainer`` with
``Lowercase`` + ``BertPreTokenizer``). As :mod:`benchmarks.harness` does, every contender runs
in a fresh process (``--worker NAME``), in the same order each round, and reports the median of
its repetitions; the report gives each contender's median over rounds and the seqjax / HF ratio.
HF runs with its defaults (Rust threads: ``RAYON_NUM_THREADS`` unset), encoding one document at a
time (``encode``, not ``encode_batch``), as our tokenizers do.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONTENDERS = ("seqjax_bpe_train", "hf_bpe_train", "seqjax_wordpiece_train", "hf_wordpiece_train",
              "seqjax_bpe_encode", "hf_bpe_encode", "seqjax_wordpiece_encode", "hf_wordpiece_encode")
VOCAB_SIZE = 2000


def _hf_bpe(train_docs, vocab_size=VOCAB_SIZE):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(unk_token="[UNK]", end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s*\S+|\s+"), behavior="isolated")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=["[UNK]"],
                                  end_of_word_suffix="</w>", show_progress=False)
    tok.train_from_iterator(["\n".join(train_docs)], trainer)
    return tok


def _hf_wordpiece(train_docs, vocab_size=VOCAB_SIZE):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=["[UNK]"],
                                        show_progress=False)
    tok.train_from_iterator(train_docs, trainer)
    return tok


def build(name: str, *, vocab_size: int = VOCAB_SIZE, max_documents: int | None = None):
    """A zero-argument callable doing what contender ``name`` times (``max_documents``: only the
    first N training and test documents; the default is the whole corpus)."""
    from seqjax.data.corpora import lee_corpus

    if name not in CONTENDERS:
        raise ValueError(f"name must be one of {CONTENDERS}; got {name!r}.")
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be an integer >= 1; got {vocab_size!r}.")
    if max_documents is not None and max_documents < 1:
        raise ValueError(f"max_documents must be at least 1 (or None); got {max_documents!r}.")
    train_docs, test_docs = lee_corpus("background")[:max_documents], lee_corpus("test")[:max_documents] * 20
    if name.startswith("seqjax"):
        from seqjax.data.tokenizers import BPETokenizer
        from seqjax.data.tokenizers import WordPieceTokenizer

        def train_bpe():
            return BPETokenizer.train("\n".join(train_docs), vocab_size=vocab_size, min_frequency=2)

        def train_wp():
            return WordPieceTokenizer.train(train_docs, vocab_size=vocab_size, min_frequency=2)

        if name.endswith("train"):
            return train_bpe if "bpe" in name else train_wp
        tok = train_bpe() if "bpe" in name else train_wp()

        def encode():
            tok._cache.clear()  # each call encodes from scratch
            return [tok.encode(d) for d in test_docs]
        return encode
    make = _hf_bpe if "bpe" in name else _hf_wordpiece
    if name.endswith("train"):
        return lambda: make(train_docs, vocab_size)
    tok = make(train_docs, vocab_size)
    return lambda: [tok.encode(d).ids for d in test_docs]


def worker(name: str, reps: int, *, vocab_size: int = VOCAB_SIZE, max_documents: int | None = None) -> dict:
    fn = build(name, vocab_size=vocab_size, max_documents=max_documents)
    fn()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"contender": name, "median_s": statistics.median(times), "times_s": times}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tokenizers", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    p.add_argument("--vocab-size", type=int, default=VOCAB_SIZE)
    p.add_argument("--max-documents", type=int, default=None, help="only the first N documents (default: all)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        result = worker(args.worker, args.reps, vocab_size=args.vocab_size, max_documents=args.max_documents)
        print("RESULT " + json.dumps(result), flush=True)
        return {}
    rounds: dict[str, list[float]] = {c: [] for c in args.contenders}
    root = Path(__file__).resolve().parent.parent
    sizes = ["--vocab-size", str(args.vocab_size)]
    if args.max_documents is not None:
        sizes += ["--max-documents", str(args.max_documents)]
    for r in range(args.rounds):
        for c in args.contenders:
            out = subprocess.run([sys.executable, "-m", "benchmarks.tokenizers", "--worker", c, "--reps", str(args.reps),
                                  *sizes], cwd=root, capture_output=True, text=True, check=True).stdout
            line = next(l for l in out.splitlines() if l.startswith("RESULT "))
            rounds[c].append(json.loads(line[7:])["median_s"])
            print(f"round {r + 1}: {c} {rounds[c][-1]:.4f} s", file=sys.stderr, flush=True)
    report = {"rounds": rounds, "median_s": {c: statistics.median(v) for c, v in rounds.items()},
              "vocab_size": args.vocab_size, "max_documents": args.max_documents}
    lines = ["| task | seqjax (s) | HF tokenizers (s) | seqjax / HF |", "|---|---|---|---|"]
    for task in ("bpe_train", "wordpiece_train", "bpe_encode", "wordpiece_encode"):
        ours, hf = report["median_s"].get(f"seqjax_{task}"), report["median_s"].get(f"hf_{task}")
        if ours is not None and hf is not None:
            lines.append(f"| {task} | {ours:.4f} | {hf:.4f} | {ours / hf:.1f}x |")
    print("\n".join(lines))
    report["table"] = "\n".join(lines)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
