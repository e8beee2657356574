"""Hugging Face checkpoints: BERT and GPT-2 weights, configs and tokenizers, without torch or
``transformers`` (numpy arrays in and out; ``safetensors`` and ``tokenizers`` imported lazily).

One concept per module:

* :mod:`~seqjax.interop.huggingface.gpt2`: ``GPT2LMHeadModel`` / ``GPT2Model`` state dicts <->
  the pytree of seqjax's ``GPTLanguageModel``: :func:`from_hf_gpt2`, :func:`to_hf_gpt2`,
  :func:`check_hf_gpt2_config` (refuses what the model does not compute), :func:`to_hf_gpt2_config`.
* :mod:`~seqjax.interop.huggingface.bert`: ``BertModel``, ``BertForMaskedLM``,
  ``BertForSequenceClassification``, ``BertForTokenClassification``,
  ``BertForNextSentencePrediction`` state dicts <-> the pytrees of the seqjax classes of the same
  names: :func:`from_hf_bert`, :func:`to_hf_bert`, :func:`check_hf_bert_config`,
  :func:`to_hf_bert_config`.
* :mod:`~seqjax.interop.huggingface.checkpoint`: checkpoint directories (``config.json`` plus
  ``model.safetensors`` or ``pytorch_model.bin``, sharded or not): :func:`read_hf_checkpoint`,
  :func:`write_hf_checkpoint`.
* :mod:`~seqjax.interop.huggingface.tokenizer`: ``tokenizer.json``: :func:`load_hf_tokenizer`.

The models themselves load with one call on the NNX side,
``BertForMaskedLM.from_pretrained(dir)`` / ``model.save_pretrained(dir)`` or
:func:`seqjax.nn.transformer.load_pretrained` (:mod:`seqjax.nn.transformer.pretrained`).
"""

from seqjax.interop.huggingface.bert import (
    ARCHITECTURES as BERT_ARCHITECTURES,
    HIDDEN_ACTIVATIONS,
    check_hf_bert_config,
    from_hf_bert,
    hf_bert_shapes,
    to_hf_bert,
    to_hf_bert_config,
)
from seqjax.interop.huggingface.checkpoint import (
    read_hf_checkpoint,
    read_hf_config,
    read_hf_state_dict,
    write_hf_checkpoint,
)
from seqjax.interop.huggingface.gpt2 import (
    ACTIVATIONS,
    HF_DEFAULTS,
    SIZE_FIELDS,
    check_hf_gpt2_config,
    from_hf_gpt2,
    to_hf_gpt2,
    to_hf_gpt2_config,
)
from seqjax.interop.huggingface.tokenizer import HFTokenizer, load_hf_tokenizer

__all__ = [
    "ACTIVATIONS", "BERT_ARCHITECTURES", "HF_DEFAULTS", "HIDDEN_ACTIVATIONS", "HFTokenizer", "SIZE_FIELDS",
    "check_hf_bert_config", "check_hf_gpt2_config", "from_hf_bert", "from_hf_gpt2", "hf_bert_shapes",
    "load_hf_tokenizer", "read_hf_checkpoint", "read_hf_config", "read_hf_state_dict", "to_hf_bert",
    "to_hf_bert_config", "to_hf_gpt2", "to_hf_gpt2_config", "write_hf_checkpoint",
]
