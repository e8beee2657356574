"""Cognitive tasks as vectorised, seedable JAX trial generators (no gym dependency).

The tasks of Yang et al. 2019 and neurogym that trained-RNN studies use, in one layout
(:mod:`seqjax.data.cognitive.trials`: epochs, ring inputs, labels, loss weights, trial info):

=========================  ===================================================  ==================
name (:data:`TASKS`)        what it needs                                         module
=========================  ===================================================  ==================
``perceptual_decision``     integrate noisy evidence, pick the stronger stimulus  ``decision``
``context_decision``        the same on the modality a context cue names          ``decision``
``delayed_match``           hold a sample over a delay, go on a match             ``memory``
``delayed_non_match``       the same, go on a non-match                           ``memory``
``go``, ``anti``            respond toward / away from a stimulus                 ``reaching``
``delayed_go``              remember a direction over a delay                     ``reaching``
``ready_set_go``            measure an interval and reproduce it                  ``timing``
=========================  ===================================================  ==================

Every generator is ``task(key, batch, *, dt=20.0, ...) -> Trials``; :func:`choice_scores` and
:func:`timing_scores` score a network's outputs.
"""

from seqjax.data.cognitive.decision import YANG_COHERENCES, context_decision, perceptual_decision
from seqjax.data.cognitive.memory import delayed_match, delayed_match_to_sample, delayed_non_match
from seqjax.data.cognitive.reaching import anti, delayed_go, go, reaching
from seqjax.data.cognitive.scoring import choice_scores
from seqjax.data.cognitive.timing import ready_set_go, timing_scores
from seqjax.data.cognitive.trials import EPOCHS, Trials, input_features

TASKS = {
    "perceptual_decision": perceptual_decision,
    "context_decision": context_decision,
    "delayed_match": delayed_match_to_sample,
    "delayed_non_match": delayed_non_match,
    "go": go,
    "anti": anti,
    "delayed_go": delayed_go,
    "ready_set_go": ready_set_go,
}

__all__ = [
    "EPOCHS", "TASKS", "Trials", "YANG_COHERENCES", "anti", "choice_scores", "context_decision",
    "delayed_go", "delayed_match", "delayed_match_to_sample", "delayed_non_match", "go",
    "input_features", "perceptual_decision", "reaching", "ready_set_go", "timing_scores",
]
