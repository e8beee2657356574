"""Load a Hugging Face checkpoint directory as the seqjax model its ``config.json`` names
(as ``transformers``' ``AutoModel``): :func:`load_pretrained`."""

from __future__ import annotations

from typing import Any

from flax import nnx

from seqjax.interop.huggingface import BERT_ARCHITECTURES, read_hf_config
from seqjax.nn.transformer import bert, gpt
from seqjax.nn.transformer.gpt import GPT2_ARCHITECTURES


def load_pretrained(path: Any, *, scan_layers: bool = False, rngs: nnx.Rngs | None = None) -> nnx.Module:
    """The seqjax model for the Hugging Face checkpoint directory ``path``, its class chosen by
    the first of ``config.json``'s ``architectures`` (``BertForPreTraining``, the class of the
    original BERT checkpoints, loads as :class:`BertForMaskedLM`, the NSP head skipped; ``GPT2Model``
    and ``GPT2LMHeadModel`` as :class:`GPTLanguageModel`)."""
    classes = {name: getattr(bert, name) for name in BERT_ARCHITECTURES}
    classes |= {"BertForPreTraining": bert.BertForMaskedLM} | {name: gpt.GPTLanguageModel for name in GPT2_ARCHITECTURES}
    config = read_hf_config(path)
    architectures = config.get("architectures") or []
    if not architectures:
        fallback = {"bert": "BertModel", "gpt2": "GPT2LMHeadModel"}.get(config.get("model_type"))
        architectures = [fallback] if fallback else []
    if not architectures or architectures[0] not in classes:
        raise ValueError(f"config.json's architectures must name one of {sorted(classes)}; got "
                         f"{config.get('architectures')!r} (model_type {config.get('model_type')!r}). Load it with the "
                         "seqjax class that matches instead (e.g. BertModel.from_pretrained(path)).")
    return classes[architectures[0]].from_pretrained(path, scan_layers=scan_layers, rngs=rngs)
