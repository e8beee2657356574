"""The training core: optax steps, losses, schedules, clipping, optimisers, checkpoints, sharding.

Each module is one idea, small enough to read at once::

    step.py            make_train_step / make_eval_step: pure jitted updates of a parameter pytree
                       (accumulation, bfloat16 mixed precision, remat, donation)
    losses.py          masked cross-entropy with label smoothing, MSE, bits per character
    schedules.py       inverse-sqrt (Transformer) warmup, warmup + linear/cosine decay, ULMFiT's STLR
    finetune/          LoRA, adapters, freezing/BitFit/ULMFiT, distillation on pure pytrees, one
                       interface over them (finetune/methods.py)
    clipping.py        global-norm, value, AGC and running-average-norm clipping
    metrics.py         corpus BLEU (Papineni et al. 2002; sacreBLEU's defaults)
    optim.py           AdamW with a decay mask by parameter role, per-group learning rates, freezing
    early_stopping.py  patience / min_delta as a pure function
    checkpoint.py      Orbax checkpoints: bit-exact resume, manifests, corrupt-file fallback
    sharding.py        device meshes (1-D data, 2-D data x model, --mesh "4x2"), batch and tree placement
    partitioning.py    regex rules: transformer parameter -> PartitionSpec (dp, fsdp, tp, fsdp+tp),
                       optimiser state sharded like the parameters, per-device bytes
    stateful.py        stateful truncated BPTT for recurrent language models (carry across windows)
    forecast_metrics.py RMSE / MAE / MASE per forecast horizon

A loop::

    graphdef, params, rest = split_params(model)
    loss_fn = module_loss(graphdef, lambda m, batch, key: cross_entropy(m(batch["x"]), batch["y"]), rest)
    optimizer = optax.chain(clip_by_global_norm(1.0), adamw(warmup_linear_decay(1e-3, 100, 1000)))
    step = make_train_step(loss_fn, optimizer, accumulate=2, compute_dtype=jnp.bfloat16)
    opt_state = optimizer.init(params)
    for i in range(1000):
        key, sub = jax.random.split(key)
        params, opt_state, metrics = step(params, opt_state, batch_at(i), sub)

Experiment plumbing (command lines, run directories, progress bars, TensorBoard) is not here: it
is :mod:`seqjax.experiment`, which uses this package and is not used by it.
"""

from seqjax.train.checkpoint import Checkpointer, Restored, verify_checkpoint
from seqjax.train.clipping import (
    adaptive_clip,
    clip_by_global_norm,
    clip_by_value,
    ema_norm_clip,
    make_clipping,
)
from seqjax.train.early_stopping import EarlyStopping, early_stopping
from seqjax.train.metrics import corpus_bleu
from seqjax.train.losses import bits_per_character, cross_entropy, mse, perplexity, smoothed_targets
from seqjax.train.losses import bits_per_spike, poisson_nll
from seqjax.train.optim import (
    adamw,
    decay_mask,
    discriminative,
    multi_group,
    param_paths,
    param_role,
    path_labels,
)
from seqjax.train.schedules import (
    inverse_sqrt_warmup,
    slanted_triangular,
    warmup_constant,
    warmup_cosine_decay,
    warmup_linear_decay,
)
from seqjax.train.sharding import batch_sharding, data_mesh, replicate, replicated, shard_batch
from seqjax.train.sharding import mesh, parse_mesh, shard_tree
from seqjax.train.partitioning import opt_state_specs, param_specs, per_device_bytes
from seqjax.train.step import (
    cast_floating,
    make_eval_step,
    make_train_step,
    module_loss,
    split_params,
)

__all__ = [
    "Checkpointer", "EarlyStopping", "Restored", "adamw", "adaptive_clip", "batch_sharding",
    "bits_per_character", "bits_per_spike", "poisson_nll", "cast_floating", "corpus_bleu", "clip_by_global_norm", "clip_by_value", "cross_entropy",
    "data_mesh", "decay_mask", "discriminative", "early_stopping", "ema_norm_clip",
    "inverse_sqrt_warmup", "make_clipping", "make_eval_step", "make_train_step", "module_loss",
    "mse", "multi_group", "param_paths", "param_role", "path_labels", "perplexity", "replicate", "replicated",
    "shard_batch", "slanted_triangular", "smoothed_targets", "split_params", "verify_checkpoint", "warmup_constant",
    "warmup_cosine_decay", "warmup_linear_decay",
    "mesh", "parse_mesh", "shard_tree",
    "opt_state_specs", "param_specs", "per_device_bytes",
]
