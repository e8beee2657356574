"""Fine-tuning methods on pure parameter pytrees (so they work for every model, the NNX ones
through ``nnx.split`` / ``nnx.merge``), one concept per module::

    patterns.py      choosing parameters by path: globs (``*/self_attn/w_q``) or ``re:`` regexes
    lora.py          LoRA (Hu et al. 2021; rsLoRA): init, merge / unmerge, adapter files, named adapters
    adapters.py      Houlsby et al. 2019 bottleneck adapters as a pure transformation of a sublayer
    freezing.py      freezing by pattern, BitFit, discriminative learning rates and gradual
                     unfreezing (ULMFiT, Howard & Ruder 2018) as optax transformations
    distillation.py  knowledge distillation: soft targets at temperature T (Hinton et al. 2015),
                     logit MSE (Tang et al. 2019)
    methods.py       prepare(method, params, optimizer): full, probe, bitfit, lora, adapters behind
                     one interface (what a comparison loops over)

The slanted-triangular schedule of ULMFiT is :func:`seqjax.train.schedules.slanted_triangular`.
"""
