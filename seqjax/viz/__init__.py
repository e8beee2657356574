"""Figures and the self-contained HTML explorer, from arrays (numpy only; no model code inside).

* :func:`attention_html` / :func:`activation_html` / :func:`explorer_html`: one offline HTML
  file (inline JavaScript, CSS and data) with the attention head, model and matrix views,
  rollout, the sentence A/B filter, PNG/SVG export, and a recurrent-activation page;
  :class:`Explorer` shows one in a notebook; :func:`read_explorer_data` decodes a file's data.
* :func:`attention_rollout`: Abnar & Zuidema's (2020) attention rollout.
"""

from seqjax.viz.explorer import (
    ActivationTrace,
    AttentionSet,
    Explorer,
    activation_html,
    attention_html,
    explorer_html,
    read_explorer_data,
    write_html,
)
from seqjax.viz.rollout import attention_rollout

__all__ = [
    "ActivationTrace",
    "AttentionSet",
    "Explorer",
    "activation_html",
    "attention_html",
    "attention_rollout",
    "explorer_html",
    "read_explorer_data",
    "write_html",
]
