"""Convert ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` state dicts to seqjax parameters and back.

The state dict is given as ``{name: numpy array}`` (``{k: v.detach().numpy() for k, v in
module.state_dict().items()}``), so this module never imports torch. Multi-layer and
bidirectional modules map onto the layer list of :func:`seqjax.recurrence.stacked`: one cell's
params per layer, or ``{"forward": ..., "backward": ...}`` for a bidirectional layer.

PyTorch keeps two bias vectors (``b_ih``, ``b_hh``) where seqjax keeps their sum, except the GRU's
``b_hn``, which sits inside the reset product and stays separate. Converting back therefore puts
the summed bias into ``bias_ih`` and zeros (or ``b_hn``) into ``bias_hh``: the same function,
not the same bytes.

Example::

    >>> import numpy as np
    >>> from seqjax.interop.torch import from_torch
    >>> state = {"weight_ih_l0": np.zeros((8, 3), np.float32), "weight_hh_l0": np.zeros((8, 2), np.float32),
    ...          "bias_ih_l0": np.zeros(8, np.float32), "bias_hh_l0": np.zeros(8, np.float32)}
    >>> cell, layers = from_torch(state, "lstm")
    >>> layers[0]["w_i"].shape
    (3, 8)
"""

from __future__ import annotations

import re
from typing import Mapping

import jax.numpy as jnp
import numpy as np

from seqjax.cells import Cell, elman, gru, lstm
from seqjax.recurrence.layers import is_bidirectional

KINDS = {
    "rnn_tanh": (1, lambda: elman("tanh")),
    "rnn_relu": (1, lambda: elman("relu")),
    "lstm": (4, lambda: lstm()),
    "gru": (3, lambda: gru()),
}
_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _kind(kind: str) -> str:
    kind = kind.lower()
    if kind == "rnn":
        kind = "rnn_tanh"
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS) + ['rnn']}; got {kind!r}.")
    return kind


def from_torch(state_dict: Mapping[str, np.ndarray], kind: str) -> tuple[Cell, list]:
    """Convert a PyTorch recurrent module's state dict; returns ``(cell, layers)``.

    ``kind`` is ``"lstm"``, ``"gru"``, ``"rnn_tanh"`` (or ``"rnn"``) or ``"rnn_relu"``; number of
    layers, bidirectionality and sizes are read from the keys and shapes. Modules built with
    ``bias=False`` give zero biases; ``proj_size > 0`` (LSTM projections) is not supported.
    """
    kind = _kind(kind)
    gates, make_cell = KINDS[kind]
    parsed: dict[tuple[int, bool], dict[str, np.ndarray]] = {}
    for name, value in state_dict.items():
        match = _KEY.match(name)
        if match is None:
            raise ValueError(
                f"state_dict key {name!r} is not a torch.nn.{kind.upper()} parameter "
                "(expected weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k>, "
                "optionally with _reverse)."
            )
        field, layer, reverse = match.group(1), int(match.group(2)), bool(match.group(3))
        if field == "weight_hr":
            raise ValueError("LSTM projections (proj_size > 0, key weight_hr_l<k>) are not supported.")
        parsed.setdefault((layer, reverse), {})[field] = np.asarray(value, np.float32)
    if not parsed:
        raise ValueError("state_dict is empty; expected the parameters of a torch recurrent module.")

    num_layers = 1 + max(layer for layer, _ in parsed)
    bidirectional = any(reverse for _, reverse in parsed)
    layers = []
    for layer in range(num_layers):
        directions = [False, True] if bidirectional else [False]
        converted = []
        for reverse in directions:
            if (layer, reverse) not in parsed:
                raise ValueError(f"state_dict has no parameters for layer {layer}, reverse={reverse}.")
            where = f"layer {layer}" + (" (reverse)" if reverse else "")
            converted.append(_layer_from_torch(parsed[(layer, reverse)], kind, gates, where))
        layers.append(
            {"forward": converted[0], "backward": converted[1]} if bidirectional else converted[0]
        )
    return make_cell(), layers


def _layer_from_torch(tensors: dict[str, np.ndarray], kind: str, gates: int, where: str) -> dict:
    missing = [name for name in ("weight_ih", "weight_hh") if name not in tensors]
    if missing:
        raise ValueError(f"state_dict has no {' or '.join(missing)} for {where}.")
    w_ih, w_hh = tensors["weight_ih"], tensors["weight_hh"]
    hidden = w_hh.shape[1]
    if w_ih.shape[0] != gates * hidden or w_hh.shape[0] != gates * hidden:
        raise ValueError(
            f"torch {kind} weights must have {gates} * hidden = {gates * hidden} rows; got "
            f"weight_ih {w_ih.shape} and weight_hh {w_hh.shape}."
        )
    zeros = np.zeros(gates * hidden, np.float32)
    b_ih, b_hh = tensors.get("bias_ih", zeros), tensors.get("bias_hh", zeros)
    params = {"w_i": jnp.asarray(w_ih.T), "w_h": jnp.asarray(w_hh.T)}
    if kind == "gru":
        # b_hn is multiplied by the reset gate, so it cannot be folded into the input bias.
        params["b"] = jnp.asarray(np.concatenate([b_ih[: 2 * hidden] + b_hh[: 2 * hidden], b_ih[2 * hidden :]]))
        params["b_hn"] = jnp.asarray(b_hh[2 * hidden :])
    else:
        params["b"] = jnp.asarray(b_ih + b_hh)
    return params


def to_torch(layers: list, kind: str) -> dict[str, np.ndarray]:
    """The inverse of :func:`from_torch`: a state dict (numpy arrays) for ``torch.nn.<KIND>``.

    Load it with ``module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``.
    """
    kind = _kind(kind)
    state = {}
    for index, layer in enumerate(layers):
        directions = (
            [("", layer["forward"]), ("_reverse", layer["backward"])]
            if is_bidirectional(layer)
            else [("", layer)]
        )
        for suffix, params in directions:
            extra = set(params) - {"w_i", "w_h", "b", "b_hn"}
            if extra:
                raise ValueError(
                    f"layer {index} has parameters torch.nn.{kind.upper()} cannot hold: {sorted(extra)} "
                    "(peephole and layer-norm variants have no PyTorch equivalent)."
                )
            gates = KINDS[kind][0]
            hidden = params["w_h"].shape[0]
            if params["w_h"].shape[1] != gates * hidden:
                raise ValueError(
                    f"layer {index}: w_h has shape {tuple(params['w_h'].shape)}, but torch.nn."
                    f"{kind.upper()} needs [{hidden}, {gates} * {hidden}]; are these parameters of "
                    "another kind of cell?"
                )
            if (kind == "gru") != ("b_hn" in params):
                raise ValueError(
                    f"layer {index}: torch.nn.GRU is the reset-after GRU and needs b_hn; "
                    + ("the reset-before GRU (gru_cho) has no PyTorch equivalent."
                       if kind == "gru" else f"b_hn belongs to a GRU, not to {kind}.")
                )
            b = np.array(params["b"], np.float32)
            b_hh = np.zeros_like(b)
            if kind == "gru":
                b_hh[2 * hidden :] = np.asarray(params["b_hn"])
            state[f"weight_ih_l{index}{suffix}"] = np.asarray(params["w_i"], np.float32).T.copy()
            state[f"weight_hh_l{index}{suffix}"] = np.asarray(params["w_h"], np.float32).T.copy()
            state[f"bias_ih_l{index}{suffix}"] = b
            state[f"bias_hh_l{index}{suffix}"] = b_hh
    return state
