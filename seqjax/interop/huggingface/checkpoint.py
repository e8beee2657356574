"""Hugging Face checkpoint directories: read and write ``config.json`` plus the weights.

A checkpoint directory (what ``save_pretrained(dir)`` writes, or a model downloaded from the
Hub) holds ``config.json`` and the weights as ``model.safetensors`` (or shards listed in
``model.safetensors.index.json``) or, in older ones, ``pytorch_model.bin`` (or its shards and
``pytorch_model.bin.index.json``). Safetensors files are read with the ``safetensors`` package's
numpy API, without torch (bfloat16 through ``ml_dtypes``, which jax installs); a ``.bin`` file
is a pickle of torch tensors and needs torch (imported only then; an error names the extra
otherwise). The arrays come back as numpy, in the file's dtype; the converters
(:func:`~seqjax.interop.huggingface.from_hf_bert`, :func:`~seqjax.interop.huggingface.from_hf_gpt2`)
cast them to float32.

:func:`write_hf_checkpoint` writes ``model.safetensors`` (with the ``{"format": "pt"}``
metadata ``transformers`` expects) and ``config.json``, which ``from_pretrained(dir)`` of
``transformers`` loads.

Example::

    >>> import json, tempfile, numpy as np
    >>> from seqjax.interop.huggingface import read_hf_checkpoint, write_hf_checkpoint
    >>> path = tempfile.mkdtemp()
    >>> write_hf_checkpoint(path, {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, {"model_type": "bert"})
    >>> state, config = read_hf_checkpoint(path)
    >>> state["w"].tolist(), config["model_type"]
    ([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], 'bert')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_NAME = "pytorch_model.bin"
TORCH_INDEX = "pytorch_model.bin.index.json"
INSTALL_TORCH = "pip install 'seqjax[torch]' (or save the checkpoint as model.safetensors)"
INSTALL_SAFETENSORS = "pip install 'seqjax[huggingface]' (the safetensors package)"


def _directory(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a directory (str or os.PathLike); got {type(path).__name__}.")
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"path must be an existing checkpoint directory (config.json and the weights); got "
                         f"{str(path)!r}, which is not a directory. Nothing is downloaded: pass a local copy.")
    return path


def read_hf_config(path: Any) -> dict:
    """``config.json`` of the checkpoint directory ``path`` as a dict."""
    path = _directory(path)
    file = path / CONFIG_NAME
    if not file.is_file():
        raise ValueError(f"the checkpoint directory {str(path)!r} has no {CONFIG_NAME}.")
    with open(file, encoding="utf-8") as f:
        config = json.load(f)
    if not isinstance(config, dict):
        raise ValueError(f"{file} must hold a JSON object; got {type(config).__name__}.")
    return config


def _load_safetensors(file: Path) -> dict[str, np.ndarray]:
    try:
        from safetensors.numpy import load_file
    except ImportError as error:  # pragma: no cover - depends on the environment
        from seqjax.data.corpora import MissingOptionalDependency
        raise MissingOptionalDependency(f"reading {file.name} needs the safetensors package: {INSTALL_SAFETENSORS}.") \
            from error
    return load_file(str(file))


def _load_torch(file: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as error:
        from seqjax.data.corpora import MissingOptionalDependency
        raise MissingOptionalDependency(f"{file.name} is a pickle of torch tensors and reading it needs torch: "
                                        f"{INSTALL_TORCH}.") from error
    state = torch.load(str(file), map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{file} must hold a state dict (a mapping of names to tensors); got {type(state).__name__}.")
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{file}[{key!r}] must be a tensor; got {type(value).__name__}.")
        value = value.detach()
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16: float32 holds it exactly
            value = value.float()
        out[key] = value.numpy()
    return out


def _shards(path: Path, index_name: str) -> list[Path]:
    with open(path / index_name, encoding="utf-8") as f:
        index = json.load(f)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise ValueError(f"{path / index_name} must hold a 'weight_map' of names to shard files.")
    return [path / name for name in sorted(set(weight_map.values()))]


def read_hf_state_dict(path: Any) -> dict[str, np.ndarray]:
    """The weights of the checkpoint directory ``path``: ``{name: numpy array}`` from
    ``model.safetensors`` (preferred, or its shards), else ``pytorch_model.bin`` (or its shards;
    needs torch, bfloat16 tensors come back as float32)."""
    path = _directory(path)
    for single, index, load in ((SAFETENSORS_NAME, SAFETENSORS_INDEX, _load_safetensors),
                                (TORCH_NAME, TORCH_INDEX, _load_torch)):
        if (path / single).is_file():
            return load(path / single)
        if (path / index).is_file():
            state: dict[str, np.ndarray] = {}
            for shard in _shards(path, index):
                if not shard.is_file():
                    raise ValueError(f"the shard {shard.name} listed in {index} is missing from {str(path)!r}.")
                state |= load(shard)
            return state
    present = sorted(p.name for p in path.iterdir())
    raise ValueError(f"the checkpoint directory {str(path)!r} has no weights: expected {SAFETENSORS_NAME} or "
                     f"{TORCH_NAME} (or their sharded index files); found {present[:10]}.")


def read_hf_checkpoint(path: Any) -> tuple[dict[str, np.ndarray], dict]:
    """``(state_dict, config)`` of the checkpoint directory ``path``: :func:`read_hf_state_dict`
    and :func:`read_hf_config`."""
    config = read_hf_config(path)
    return read_hf_state_dict(path), config


def write_hf_checkpoint(path: Any, state_dict: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Write ``state_dict`` (``{name: array}``) as ``model.safetensors`` and ``config`` as
    ``config.json`` into the directory ``path`` (created if needed): the layout
    ``save_pretrained`` writes and ``from_pretrained(path)`` of ``transformers`` loads."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a directory (str or os.PathLike); got {type(path).__name__}.")
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise ValueError("state_dict must be a non-empty mapping of names to arrays.")
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a mapping (the config.json fields); got {type(config).__name__}.")
    try:
        from safetensors.numpy import save_file
    except ImportError as error:  # pragma: no cover - depends on the environment
        from seqjax.data.corpora import MissingOptionalDependency
        raise MissingOptionalDependency(f"writing {SAFETENSORS_NAME} needs the safetensors package: "
                                        f"{INSTALL_SAFETENSORS}.") from error
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in state_dict.items()}
    save_file(arrays, str(path / SAFETENSORS_NAME), metadata={"format": "pt"})
    with open(path / CONFIG_NAME, "w", encoding="utf-8") as f:
        json.dump(dict(config), f, indent=2, sort_keys=True)
        f.write("\n")
