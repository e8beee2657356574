"""Weight converters from and to other frameworks (no framework import needed: numpy arrays in).

* :mod:`seqjax.interop.torch`: PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` state dicts.
* :mod:`seqjax.interop.torch_attention`: ``nn.MultiheadAttention``; masks.
* :mod:`seqjax.interop.torch_transformer`: ``nn.TransformerEncoderLayer`` / ``DecoderLayer`` and stacks.
* :mod:`seqjax.interop.huggingface`: Hugging Face GPT-2 (``GPT2LMHeadModel``) ->
  :class:`seqjax.nn.GPTLanguageModel`: :func:`from_hf_gpt2`, :func:`gpt2_config_from_hf`,
  :func:`load_gpt2_params`, :func:`gpt2_from_hf`.
"""

from seqjax.interop.huggingface import from_hf_gpt2, gpt2_config_from_hf, gpt2_from_hf, load_gpt2_params

__all__ = ["from_hf_gpt2", "gpt2_config_from_hf", "gpt2_from_hf", "load_gpt2_params"]
