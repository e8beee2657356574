"""Weight converters from and to other frameworks (no framework import needed: numpy arrays in).

Pure functions on plain pytrees, like the rest of the core: nothing here builds or imports an NNX
module. Each converter yields the parameter layout a seqjax model's ``pure_params()`` has; the
``nn`` package writes such a pytree into a model (``load_pure_params``) and offers ready models
(``GPTLanguageModel.from_hf``).

* :mod:`seqjax.interop.torch`: PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` state dicts.
* :mod:`seqjax.interop.torch_attention`: ``nn.MultiheadAttention``; masks.
* :mod:`seqjax.interop.torch_transformer`: ``nn.TransformerEncoderLayer`` / ``DecoderLayer`` and stacks.
* :mod:`seqjax.interop.huggingface`: Hugging Face GPT-2 (``GPT2LMHeadModel``) state dicts ->
  the parameter pytree of seqjax's GPT-2: :func:`from_hf_gpt2`; :func:`check_hf_gpt2_config`
  reads and checks a Hugging Face config; :data:`ACTIVATIONS` maps its activation names.

Example::

    >>> from seqjax.interop import check_hf_gpt2_config
    >>> check_hf_gpt2_config({"vocab_size": 11, "n_positions": 8, "n_embd": 4, "n_layer": 1,
    ...                       "n_head": 2, "add_cross_attention": True})
    Traceback (most recent call last):
    ...
    ValueError: hf_config.add_cross_attention=True is not supported by seqjax's GPT-2 (expected False).
"""

from seqjax.interop.huggingface import ACTIVATIONS, check_hf_gpt2_config, from_hf_gpt2

__all__ = ["ACTIVATIONS", "check_hf_gpt2_config", "from_hf_gpt2"]
