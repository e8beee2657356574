"""Sequence labelling: a linear-chain CRF output layer and IOB2 span scoring.

::

    crf.py     log-partition (forward algorithm), log-likelihood and Viterbi decoding of a
               linear-chain CRF over a tagger's emission scores (Lafferty et al. 2001)
    spans.py   strict IOB2 entity spans and span-level precision / recall / F1
"""

from seqjax.tagging.crf import crf_decode, crf_init, crf_log_likelihood, crf_log_partition, crf_score
from seqjax.tagging.spans import iob2_spans, span_f1

__all__ = ["crf_decode", "crf_init", "crf_log_likelihood", "crf_log_partition", "crf_score", "iob2_spans",
           "span_f1"]
