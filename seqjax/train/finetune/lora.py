"""LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") on pure parameter
pytrees: any model whose parameters are a pytree of arrays (every seqjax pure function, and every
NNX model through ``nnx.split`` / ``nnx.merge``) gets low-rank adapters on the matrices chosen by
path pattern, without a change to its forward pass.

For an adapted matrix ``W`` ``[..., d_in, d_out]`` (seqjax's ``y = x W`` convention; a leading
``[L]`` axis for scanned layer stacks)::

    W_eff = W + s * A B,     A [..., d_in, r],   B [..., r, d_out],   W frozen
    s     = alpha / r                (Hu et al. 2021)
          = alpha / sqrt(r)          (rsLoRA, Kalajdzievski 2023: rank-stable updates)

``A`` starts random and ``B`` at zero, so ``W_eff = W`` at step 0: the adapted model computes
exactly what the base model computes until the first update. (The paper writes
``h = W_0 x + B A x`` with ``B`` zero; with row vectors ``x W`` the factors swap roles: here ``A``
is the random one, applied first.) Inits of ``A``: ``"kaiming_uniform"`` (peft's default, PyTorch
``nn.Linear``'s ``U(-1/sqrt(d_in), 1/sqrt(d_in))``) or ``"gaussian"`` (``N(0, 1/r^2)``, peft's
``init_lora_weights="gaussian"``). Trainable parameters: ``r (d_in + d_out)`` per adapted matrix
(per layer of a stack), against ``d_in d_out`` for full fine-tuning.

Design: the effective weights, not a new forward pass
    :func:`merge_lora` computes ``W + s A B`` for each adapted matrix and returns a parameter tree
    of the base structure, so the model runs unchanged; inside a loss, that *is* the LoRA
    forward pass, and gradients reach ``A`` and ``B`` through it (:func:`lora_loss`). The
    alternative, ``x W + s (x A) B`` inside every projection, never forms a ``[d_in, d_out]``
    matrix: it saves one weight-sized temporary per adapted matrix and, in the backward pass, the
    weight-sized gradient ``dW_eff = x^T dy`` (then ``dA = dW_eff B^T``, ``dB = A^T dW_eff``),
    at the price of two thin products per call. For the models here (``d`` up to 1024) the
    temporaries are a few MiB and the merged form is as fast; it matters for large models with
    many adapted matrices, and needs the layer to call :func:`lora_dense` (a hook in the layer's
    projections) instead of ``x @ W``.

Flax's ``nnx.LoRA`` / ``nnx.LoRALinear`` are not used: they wrap an ``nnx.Linear`` module (its
``kernel``), while seqjax models keep their projections as plain arrays in the dicts that the pure
layer functions take, so there is no module to wrap; they also have no ``alpha / r`` scaling,
no merge/unmerge, and no adapter-only file.

Merging is exact up to float rounding: :func:`unmerge_lora` subtracts the same ``s A B``
(``(W + D) - D`` differs from ``W`` by at most one rounding of ``W + D``). Adapters save alone
(:func:`save_lora`, a ``.safetensors`` file as peft's ``adapter_model.safetensors``, or ``.npz``)
with their targets, ``r``, ``alpha`` and the base shapes, and :func:`load_lora` refuses a base
they do not fit. Several named adapters over one base: :class:`LoraAdapters`.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.train.finetune.lora import init_lora, merge_lora, unmerge_lora
    >>> params = {"layers": [{"w_q": jnp.ones((4, 6)), "b_q": jnp.zeros(6)}] * 2}
    >>> lora = init_lora(jax.random.key(0), params, ["*/w_q"], r=2, alpha=4.0)
    >>> lora.targets, lora.scale, lora.num_params()      # 2 matrices * r * (4 + 6)
    (('layers/0/w_q', 'layers/1/w_q'), 2.0, 40)
    >>> bool(jnp.array_equal(merge_lora(params, lora)["layers"][0]["w_q"], params["layers"][0]["w_q"]))
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import _checks
from seqjax.train.finetune.patterns import check_patterns, leaf_paths, path_matches
from seqjax.train.optim import path_str

FORMAT = "seqjax.lora/1"
INITS = ("kaiming_uniform", "gaussian")


@dataclasses.dataclass(frozen=True)
class Lora:
    """One LoRA adapter: ``factors[path] = {"a": [..., d_in, r], "b": [..., r, d_out]}`` for each
    adapted matrix (``path`` as :func:`seqjax.train.optim.path_str`), with ``r``, ``alpha`` and
    ``rslora`` as static metadata. A pytree whose leaves are the factors only, so it is what an
    optimiser trains and what ``jax.jit`` traces.
    """

    factors: dict
    r: int
    alpha: float
    rslora: bool = False

    @property
    def scale(self) -> float:
        """``alpha / r``, or ``alpha / sqrt(r)`` with ``rslora``."""
        return self.alpha / (math.sqrt(self.r) if self.rslora else self.r)

    @property
    def targets(self) -> tuple[str, ...]:
        """The adapted parameter paths, sorted."""
        return tuple(sorted(self.factors))

    def num_params(self) -> int:
        """Trainable parameters: ``sum r (d_in + d_out)`` over adapted matrices (and layers)."""
        return sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(self.factors))

    def delta(self, path: str) -> jax.Array:
        """``s A B`` ``[..., d_in, d_out]`` of the matrix at ``path``."""
        f = self.factors[path]
        return self.scale * jnp.matmul(f["a"], f["b"])


jax.tree_util.register_dataclass(Lora, data_fields=["factors"], meta_fields=["r", "alpha", "rslora"])


def lora_targets(params: Any, patterns: Any) -> list[str]:
    """The paths of the leaves of ``params`` matching ``patterns``
    (:mod:`~seqjax.train.finetune.patterns`), each checked to be a matrix (rank >= 2: the last two
    axes are ``[d_in, d_out]``, leading axes are layers of a stack). Raises ``ValueError`` for a
    pattern matching nothing or a matched vector (a bias, a norm gain)."""
    patterns = check_patterns("targets", patterns)
    shapes = dict(zip(leaf_paths(params), (np.shape(x) for x in jax.tree.leaves(params))))
    chosen, unused = set(), []
    for pattern in patterns:
        hits = [p for p in shapes if path_matches(p, pattern)]
        if not hits:
            unused.append(pattern)
        chosen.update(hits)
    if unused:
        raise ValueError(f"targets {unused} match no parameter; the parameter paths are {sorted(shapes)}.")
    vectors = sorted(p for p in chosen if len(shapes[p]) < 2)
    if vectors:
        raise ValueError(
            f"LoRA adapts matrices [..., d_in, d_out]; targets match parameters of rank < 2: "
            f"{[(p, shapes[p]) for p in vectors]}. Narrow the patterns (e.g. '*/self_attn/w_q')."
        )
    return sorted(chosen)


def init_lora(
    key: jax.Array,
    params: Any,
    targets: Any,
    r: int,
    alpha: float | None = None,
    *,
    rslora: bool = False,
    init: str = "kaiming_uniform",
    dtype: Any = jnp.float32,
) -> Lora:
    """A LoRA adapter for the matrices of ``params`` matching ``targets`` (globs or ``re:`` regexes).

    Args:
      key: draws ``A`` (one key per target, in sorted path order).
      params: the base parameter pytree (plain dicts, or an ``nnx.split`` state).
      targets: pattern(s) such as ``"*/self_attn/w_q"`` or ``["*/w_q", "*/w_v"]`` (Hu et al. adapt
        the query and value projections).
      r: the rank, ``>= 1`` (and at most ``min(d_in, d_out)`` of every target).
      alpha: the scale numerator (default ``r``: ``s = 1``).
      rslora: scale by ``alpha / sqrt(r)`` instead of ``alpha / r``.
      init: ``A``'s init, ``"kaiming_uniform"`` or ``"gaussian"`` (module docstring); ``B = 0``.
      dtype: the factors' dtype.
    """
    _checks.positive_int("r", r)
    _checks.choice("init", init, INITS)
    alpha = float(r if alpha is None else alpha)
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive finite number; got {alpha!r}.")
    paths = lora_targets(params, targets)
    leaves = dict(zip(leaf_paths(params), jax.tree.leaves(params)))
    factors = {}
    for k, path in zip(jax.random.split(key, len(paths)), paths):
        *lead, d_in, d_out = np.shape(leaves[path])
        if r > min(d_in, d_out):
            raise ValueError(f"r = {r} exceeds min(d_in, d_out) = {min(d_in, d_out)} of {path} {np.shape(leaves[path])}.")
        if init == "kaiming_uniform":
            bound = 1.0 / math.sqrt(d_in)
            a = jax.random.uniform(k, (*lead, d_in, r), dtype, -bound, bound)
        else:
            a = jax.random.normal(k, (*lead, d_in, r), dtype) / r
        factors[path] = {"a": a, "b": jnp.zeros((*lead, r, d_out), dtype)}
    return Lora(factors, int(r), alpha, bool(rslora))


def check_lora_fits(params: Any, lora: Lora) -> None:
    """Raise ``ValueError`` unless every target of ``lora`` is a matrix of ``params`` whose shape
    the factors fit (``A`` ``[..., d_in, r]``, ``B`` ``[..., r, d_out]``)."""
    shapes = dict(zip(leaf_paths(params), (tuple(np.shape(x)) for x in jax.tree.leaves(params))))
    problems = []
    for path in lora.targets:
        f = lora.factors[path]
        want = (*np.shape(f["a"])[:-1], np.shape(f["b"])[-1])
        if path not in shapes:
            problems.append(f"{path}: not a parameter of this model")
        elif shapes[path] != want:
            problems.append(f"{path}: the adapter is for shape {want}, the model's parameter has {shapes[path]}")
    if problems:
        raise ValueError(
            "this LoRA adapter does not fit the model: " + "; ".join(problems[:6])
            + (f" (and {len(problems) - 6} more)" if len(problems) > 6 else "")
            + ". Was it trained on a model of another configuration?"
        )


def _add_delta(params: Any, lora: Lora, sign: float) -> Any:
    check_lora_fits(params, lora)

    def update(path, w):
        p = path_str(path)
        if p not in lora.factors:
            return w
        return (w + sign * lora.delta(p).astype(w.dtype)).astype(w.dtype)

    return jax.tree_util.tree_map_with_path(update, params)


def merge_lora(params: Any, lora: Lora) -> Any:
    """The effective parameters: ``W + s A B`` at every target, everything else as in ``params``
    (same structure, dtypes kept). Inside a loss this is the LoRA forward pass; outside, it folds
    the adapter into the weights for serving (no extra cost per call)."""
    return _add_delta(params, lora, 1.0)


def unmerge_lora(merged: Any, lora: Lora) -> Any:
    """The inverse of :func:`merge_lora`: ``W_eff - s A B`` at every target."""
    return _add_delta(merged, lora, -1.0)


def switch_lora(merged: Any, current: Lora | None, new: Lora | None) -> Any:
    """Weights merged with ``current`` -> the same base merged with ``new`` (unmerge, then merge;
    ``None`` for no adapter). Use :class:`LoraAdapters` to merge from the base each time instead,
    which accumulates no rounding."""
    base = merged if current is None else unmerge_lora(merged, current)
    return base if new is None else merge_lora(base, new)


def lora_dense(x: jax.Array, w: jax.Array, a: jax.Array, b: jax.Array, scale: float,
               bias: jax.Array | None = None) -> jax.Array:
    """The unmerged adapted projection ``x W + s (x A) B (+ bias)``, never forming ``W + s A B``:
    what a layer would call to avoid the weight-sized temporaries (module docstring).

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from seqjax.train.finetune.lora import lora_dense
        >>> x, w = jnp.ones((3, 4)), jnp.eye(4)
        >>> a, b = jnp.ones((4, 1)), jnp.ones((1, 4))
        >>> bool(jnp.allclose(lora_dense(x, w, a, b, 0.5), x @ (w + 0.5 * a @ b)))
        True
    """
    y = x @ w + scale * ((x @ a) @ b)
    return y if bias is None else y + bias


def lora_loss(loss_fn: Callable[[Any, Any, Any], Any]) -> Callable[[dict, Any, Any], Any]:
    """``loss_fn(params, batch, key)`` -> ``joint_loss({"base": params, "lora": Lora}, batch, key)``,
    the loss of the merged weights with the base behind ``jax.lax.stop_gradient``. Train it with
    :func:`lora_optimizer` (base frozen: no update, no optimiser state), e.g.::

        joint = {"base": params, "lora": init_lora(key, params, ["*/w_q", "*/w_v"], r=4)}
        optimizer = lora_optimizer(adamw(1e-3))
        step = make_train_step(lora_loss(loss_fn), optimizer)
        joint, opt_state, metrics = step(joint, optimizer.init(joint), batch, key)

    The base travels as an argument (not a closed-over constant, which ``jit`` would bake into
    the compiled program).
    """

    def joint_loss(joint, batch, key):
        _check_joint(joint)
        return loss_fn(merge_lora(jax.lax.stop_gradient(joint["base"]), joint["lora"]), batch, key)

    return joint_loss


def lora_optimizer(optimizer: Any) -> Any:
    """``optimizer`` on the ``"lora"`` part of a joint ``{"base", "lora"}`` tree, the base frozen
    (``optax.set_to_zero``, through :func:`seqjax.train.optim.multi_group`)."""
    from seqjax.train.optim import multi_group

    def labels(joint):
        _check_joint(joint)
        return {"base": jax.tree.map(lambda _: "frozen", joint["base"]),
                "lora": jax.tree.map(lambda _: "lora", joint["lora"])}

    return multi_group({"lora": optimizer, "frozen": None}, labels)


def _check_joint(joint):
    if not (isinstance(joint, Mapping) and set(joint) == {"base", "lora"} and isinstance(joint["lora"], Lora)):
        raise ValueError(
            "expected the joint tree {'base': params, 'lora': Lora}; got "
            f"{type(joint).__name__} with keys {sorted(joint) if isinstance(joint, Mapping) else None}."
        )


# --- adapter files ---------------------------------------------------------------------------------


def _metadata(lora: Lora, base_shapes: Mapping[str, tuple] | None) -> dict[str, str]:
    shapes = {p: list(map(int, (*np.shape(f["a"])[:-1], np.shape(f["b"])[-1]))) for p, f in lora.factors.items()}
    if base_shapes is not None:
        shapes = {p: list(map(int, base_shapes[p])) for p in lora.factors}
    return {"format": FORMAT, "r": str(lora.r), "alpha": repr(lora.alpha), "rslora": str(lora.rslora).lower(),
            "targets": json.dumps(list(lora.targets)), "base_shapes": json.dumps(shapes)}


def save_lora(path: str | Path, lora: Lora) -> Path:
    """Write the adapter alone (not the base): ``<target>::a`` / ``<target>::b`` tensors and the
    metadata ``format``, ``r``, ``alpha``, ``rslora``, ``targets`` and ``base_shapes``. The suffix
    chooses the format: ``.safetensors`` (needs the ``safetensors`` package) or ``.npz``."""
    path = Path(path)
    tensors = {f"{p}::{name}": np.asarray(f[name]) for p, f in lora.factors.items() for name in ("a", "b")}
    meta = _metadata(lora, None)
    if path.suffix == ".safetensors":
        save_file, _ = _safetensors()
        save_file(tensors, str(path), metadata=meta)
    elif path.suffix == ".npz":
        np.savez(path, __metadata__=np.array(json.dumps(meta)), **tensors)
    else:
        raise ValueError(f"path must end in .safetensors or .npz; got {str(path)!r}.")
    return path


def load_lora(path: str | Path, params: Any = None) -> Lora:
    """Read an adapter written by :func:`save_lora`; with ``params``, check that it fits them
    (:func:`check_lora_fits`: every target present, of the shape it was trained for)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        _, safe_open = _safetensors()
        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "__metadata__" not in z:
                raise ValueError(f"{path} is not a seqjax LoRA file (no metadata).")
            meta = json.loads(str(z["__metadata__"]))
            tensors = {k: z[k] for k in z.files if k != "__metadata__"}
    else:
        raise ValueError(f"path must end in .safetensors or .npz; got {str(path)!r}.")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a seqjax LoRA file: its format is {meta.get('format')!r}, expected {FORMAT!r}.")
    targets = json.loads(meta["targets"])
    factors = {}
    for p in targets:
        try:
            factors[p] = {"a": jnp.asarray(tensors[f"{p}::a"]), "b": jnp.asarray(tensors[f"{p}::b"])}
        except KeyError as err:
            raise ValueError(f"{path} lists the target {p!r} but lacks its tensor {err.args[0]!r}.") from None
    lora = Lora(factors, int(meta["r"]), float(meta["alpha"]), meta["rslora"] == "true")
    if params is not None:
        check_lora_fits(params, lora)
    return lora


def _safetensors():
    """``(save_file, safe_open)`` of the safetensors package (imported here: an optional extra)."""
    try:
        from safetensors import safe_open
        from safetensors.numpy import save_file
    except ImportError:  # pragma: no cover - exercised only without the package
        from seqjax.data.corpora import MissingOptionalDependency

        raise MissingOptionalDependency(
            "reading or writing .safetensors adapter files needs the safetensors package: pip install "
            "safetensors (or use a .npz path, which needs nothing else)."
        ) from None
    return save_file, safe_open


# --- several named adapters ------------------------------------------------------------------------


class LoraAdapters:
    """Several named adapters over one base, as peft's ``add_adapter`` / ``set_adapter``: the base
    is kept as given, and :meth:`activate` returns it merged with one adapter (or alone), merged
    from the base every time so switching accumulates no rounding.

    Example::

        >>> import jax, jax.numpy as jnp
        >>> from seqjax.train.finetune.lora import LoraAdapters, init_lora
        >>> base = {"w": jnp.ones((3, 3))}
        >>> bank = LoraAdapters(base)
        >>> bank.add("a", init_lora(jax.random.key(0), base, "w", r=1))
        >>> bank.add("b", init_lora(jax.random.key(1), base, "w", r=2))
        >>> effective = bank.activate("b")
        >>> bank.active, bank.names
        ('b', ('a', 'b'))
        >>> bool(jnp.array_equal(bank.activate(None)["w"], base["w"]))
        True
    """

    def __init__(self, base: Any):
        self.base = base
        self._adapters: dict[str, Lora] = {}
        self.active: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._adapters)

    def add(self, name: str, lora: Lora) -> None:
        """Register ``lora`` under ``name`` (checked to fit the base; a taken name is refused)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string; got {name!r}.")
        if name in self._adapters:
            raise ValueError(f"an adapter named {name!r} exists already; remove it first or pick another name.")
        if not isinstance(lora, Lora):
            raise ValueError(f"lora must be a Lora (init_lora / load_lora); got {type(lora).__name__}.")
        check_lora_fits(self.base, lora)
        self._adapters[name] = lora

    def replace(self, name: str, lora: Lora) -> None:
        """Replace the adapter ``name`` (after training it)."""
        self[name]
        check_lora_fits(self.base, lora)
        self._adapters[name] = lora

    def remove(self, name: str) -> None:
        self[name]
        del self._adapters[name]
        if self.active == name:
            self.active = None

    def __getitem__(self, name: str) -> Lora:
        if name not in self._adapters:
            raise ValueError(f"no adapter named {name!r}; the adapters are {list(self._adapters)}.")
        return self._adapters[name]

    def activate(self, name: str | None) -> Any:
        """The base merged with adapter ``name`` (``None``: the base), which becomes :attr:`active`."""
        params = self.base if name is None else merge_lora(self.base, self[name])
        self.active = name
        return params

    def save(self, directory: str | Path, *, suffix: str = ".safetensors") -> list[Path]:
        """Write every adapter to ``directory/<name><suffix>``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return [save_lora(directory / f"{name}{suffix}", lora) for name, lora in self._adapters.items()]


def lora_param_count(shapes: Sequence[tuple[int, ...]], r: int) -> int:
    """``sum r (d_in + d_out) * prod(leading axes)`` for matrices of ``shapes``: the count
    :meth:`Lora.num_params` must equal."""
    return sum(int(np.prod(s[:-2], dtype=np.int64)) * r * (s[-2] + s[-1]) for s in shapes)
