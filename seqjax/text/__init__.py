"""Text: preprocessing steps, a pipeline, word embeddings trained in JAX, their evaluation, n-grams.

One concept per module; nothing heavy is imported here (snowballstemmer, nltk, simplemma, scikit-learn
and gensim are imported by the functions that need them, with an error naming the extra)::

    normalize.py      Unicode forms, case folding, accents, punctuation, symbols, whitespace, NUM/MONEY
    contractions.py   contraction expansion from a documented table
    tokenization.py   whitespace, word/punctuation (the package's one splitter), character, sentence, subword
    stopwords.py      stop-word removal with a named list (scikit-learn's or gensim's)
    stemming.py       Porter and Snowball stemmers (snowballstemmer), Lancaster (nltk)
    lemmatize.py      lemmatisation (simplemma, offline)
    pipeline.py       Pipeline: named pure steps str -> str / str -> list / list -> list
    embeddings/       skip-gram, CBOW, GloVe, FastText, CharNgram in JAX; word vectors and their file format
    evaluation.py     WordSim-353 / SimLex-999 Spearman rho, analogies (3CosAdd, 3CosMul), with coverage
    ngram.py          interpolated Kneser-Ney n-gram language models (the baseline of neural LMs)

The tokenizers with vocabularies (characters, words, BPE, WordPiece) are in
:mod:`seqjax.data.tokenizers`.
"""
