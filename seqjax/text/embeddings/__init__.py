"""Word embeddings trained in JAX: word2vec skip-gram and CBOW, GloVe, FastText and CharNgram.

``corpus`` (vocabulary, subsampling, noise, windows, schedule), ``sgns`` (the shared negative-
sampling step), ``word2vec``, ``glove``, ``fasttext``, ``charngram``, ``vectors`` (lookup,
neighbours, word2vec text format). Evaluation: :mod:`seqjax.text.evaluation`.
"""
