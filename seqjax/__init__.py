"""seqjax: functional JAX/Flax sequence models, from the Elman RNN to the transformer.

Data flows one way, from the experiments down to pure functions::

    seqjax.experiment   experiment plumbing: config dataclass -> CLI, run directories,
                        checkpoint/resume of a run, progress bars
    seqjax.train        the training core: jitted train/eval steps, losses, schedules, clipping,
                        optimisers (weight decay by parameter role, groups, freezing),
                        checkpoints, data-parallel sharding, early stopping, stateful
                        truncated BPTT, forecast metrics, finetune/ (LoRA, adapters, BitFit,
                        freezing, ULMFiT, distillation)
    seqjax.nn           Flax NNX modules that own parameters and call the pure cores: recurrent
                        layers and stacks, recurrent encoder-decoders, transformer stacks,
                        the encoder-decoder Transformer, BERT, GPT
    -- pure cores (functions of parameter pytrees; they import nothing from above) --
    seqjax.cells        recurrent cells as (init, step, zero_carry): Elman, LSTM, GRU, minGRU/minLSTM,
                        the leaky rate RNN
    seqjax.recurrence   the sequence engine: scan over time, vmap over the batch, padding,
                        bidirectional and stacked layers, truncated BPTT
    seqjax.attention    score functions, scaled dot-product and multi-head attention, chunked
                        (memory-efficient) attention, masks, positional encodings
    seqjax.transformer  transformer layers (one code path for training and KV-cached decoding),
                        stacks, caches, the masked-language-model rule
    seqjax.seq2seq      recurrent encoder-decoders with Bahdanau / Luong attention
    seqjax.decoding     greedy, sampling and beam search over any step function
    seqjax.interop      weight converters: PyTorch modules, Hugging Face checkpoints
    seqjax.export       serving artifacts: jax.export StableHLO, ONNX
    seqjax.analysis     dynamical-systems analysis of trained networks (fixed points)
    seqjax.tagging      sequence labelling: linear-chain CRF, IOB2 spans and span F1
    seqjax.text         text processing and models of text (Kneser-Ney n-grams)
    seqjax.data         synthetic tasks, batching and padding, tokenizers, shipped corpora,
                        real time series, cross-validation splits
    seqjax.viz          figures and the offline HTML explorer, from arrays (numpy only)
    seqjax.primitives   dense, dropout, layer norm, key splitting: written once, used everywhere

Conventions: sequences are ``[batch, time, features]`` with right padding given as
``seq_lengths``; attention masks are boolean (True = may attend) of explicit rank 4
``[batch, heads, q_len, kv_len]``; randomness is an explicit ``jax.random`` key; parameters are
float32 with a computation ``dtype``.
"""

__version__ = "0.1.0"
