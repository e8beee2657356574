"""Checkpoints with Orbax that resume a run bit for bit, and refuse corrupt files with a clear error.

What a checkpoint holds: a *state* pytree (whatever the loop needs: parameters, optimiser state,
PRNG keys, ...) and, as JSON, the step (updates done), the data position (where the data stream
resumes: an int or any JSON value) and free-form ``extra``. A run that restores all of these and
continues reaches parameters bit-identical to a run never interrupted, provided every batch and key
is a function of (data position, restored keys) and nothing else; the tests check exactly that.

Layout of ``directory``::

    <step>/                       one checkpoint per saved step (Orbax CheckpointManager)
        state/                    the pytree (Orbax StandardSave: OCDBT + Zarr)
        meta/                     {"step", "data_position", "extra", "format"} (Orbax JsonSave)
        _CHECKPOINT_METADATA ...  Orbax's own files
        seqjax_manifest.json      every file above with its size and SHA-256, written last
    <step>.orbax-checkpoint-tmp-<t>/   a save in progress (or one killed mid-way): never read
    corrupt/<step>-<UTC time>/    corrupt checkpoints moved aside by restore_latest

Why each piece
    * **Atomic saves.** Orbax writes a step into ``<step>.orbax-checkpoint-tmp-<t>`` and renames it
      to ``<step>`` when complete (``AtomicRenameTemporaryPath``, its default on local and
      network file systems; cloud buckets use a commit file instead). A run killed while saving
      leaves only a temporary directory, which is never listed as a checkpoint.
    * **Manifest.** Orbax's reader does not notice every damaged file (deleting or truncating a
      data file of an earlier write can go unnoticed) and reports others as pytree-structure
      errors. The manifest, written after Orbax has finished and renamed, lists every file's size
      and SHA-256; :func:`verify_checkpoint` compares them and raises ``ValueError`` naming the
      file and what is wrong. A step directory without a manifest is a save that stopped before
      its end and is treated as incomplete.
    * **Keep the previous one.** ``max_to_keep >= 2``, so the checkpoint before the latest is
      always there to fall back on; :meth:`Checkpointer.restore_latest` skips a corrupt latest
      checkpoint (with a warning), restores the newest valid one and moves the corrupt ones to
      ``corrupt/``: otherwise Orbax, seeing a later step on disk, would refuse every save until the
      resumed run passed that step.
    * **Typed PRNG keys** (``jax.random.key``) are not arrays Orbax can write: they are saved as
      ``jax.random.key_data`` (uint32) and rebuilt with ``jax.random.wrap_key_data`` and the
      template's key implementation. Legacy ``uint32`` keys are plain arrays and need nothing.
    * **Synchronous saves**: the save has finished when ``save`` returns, so the caller may donate
      or overwrite the arrays at once.
    * **Metadata first**: where the state's structure depends on how far the run had got (a sweep
      of different models), :meth:`Checkpointer.latest_valid` and
      :meth:`Checkpointer.restore_metadata` give the step and ``extra`` without a template; build
      the template from them, then :meth:`Checkpointer.restore`.

Example::

    >>> import tempfile, jax, jax.numpy as jnp
    >>> from seqjax.train.checkpoint import Checkpointer
    >>> state = {"params": {"w": jnp.ones(3)}, "key": jax.random.key(0)}
    >>> with Checkpointer(tempfile.mkdtemp(), save_every=10) as ckpt:
    ...     ckpt.maybe_save(10, state, data_position=10)
    ...     restored = ckpt.restore_latest(template=state)
    True
    >>> restored.step, restored.data_position
    (10, 10)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax

from seqjax import _checks

MANIFEST = "seqjax_manifest.json"
CORRUPT_DIR = "corrupt"
FORMAT = 1


class Restored(NamedTuple):
    """What a restore returns: the state (the template's structure and shardings), the step,
    the data position, ``extra``, and the checkpoint directory it came from."""

    state: Any
    step: int
    data_position: Any
    extra: dict
    path: Path


class Checkpointer:
    """Save every ``save_every`` steps (and at the end), keep ``max_to_keep``, restore the newest
    valid checkpoint. A thin wrapper over ``orbax.checkpoint.CheckpointManager``."""

    def __init__(self, directory: str | os.PathLike, *, save_every: int, max_to_keep: int = 3):
        _checks.positive_int("save_every", save_every)
        if not isinstance(max_to_keep, int) or max_to_keep < 2:
            raise ValueError(
                f"max_to_keep must be an integer >= 2 (the previous checkpoint is the fallback "
                f"when the latest is corrupt); got {max_to_keep!r}."
            )
        ocp = _orbax()
        self.directory = Path(directory).absolute()
        self.save_every = save_every
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    # --- saving ---------------------------------------------------------------------------

    def maybe_save(
        self, step: int, state: Any, *, data_position: Any = None, extra: dict | None = None,
        force: bool = False,
    ) -> bool:
        """Save if ``step`` is a multiple of ``save_every`` (or ``force``); True if it saved.

        A step already on disk is not saved again (so a final ``save`` that falls on a periodic
        step is a no-op).
        """
        _checks.nonnegative_int("step", step)
        if not force and step % self.save_every:
            return False
        if step in self._manager.all_steps():
            return False
        ocp = _orbax()
        meta = {"format": FORMAT, "step": step, "data_position": data_position, "extra": extra or {}}
        try:
            json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"data_position and extra must be JSON-serialisable: {err}") from None
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(_keys_to_data(state)), meta=ocp.args.JsonSave(meta)
        )
        self._manager.save(step, args=args, force=True)
        self._manager.wait_until_finished()
        if jax.process_index() == 0:  # several hosts: Orbax finalises on the primary; so do we
            _write_manifest(self.step_dir(step), step)
        return True

    def save(self, step: int, state: Any, *, data_position: Any = None, extra: dict | None = None) -> bool:
        """Save now, whatever the step (the end of a run)."""
        return self.maybe_save(step, state, data_position=data_position, extra=extra, force=True)

    # --- restoring ------------------------------------------------------------------------

    def steps(self) -> list[int]:
        """The steps on disk, oldest first (valid or not: see :meth:`verify`)."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def step_dir(self, step: int) -> Path:
        return self.directory / str(step)

    def verify(self, step: int) -> None:
        """Raise ``ValueError`` (naming the path and the problem) unless checkpoint ``step`` is whole."""
        verify_checkpoint(self.step_dir(step))

    def restore(self, template: Any, step: int) -> Restored:
        """Verify and restore checkpoint ``step`` into ``template``'s structure, dtypes and shardings.

        ``template``: a state of the same structure as the one saved (for example a freshly
        initialised one); its values are not used. Training on from an *older* step leaves the
        newer checkpoints on disk: saves at their steps are skipped and :meth:`restore_latest`
        still returns the newest. Delete them (or use a new directory) first.
        """
        ocp = _orbax()
        path = self.step_dir(step)
        verify_checkpoint(path)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _keys_to_data(template))
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        try:
            out = self._manager.restore(step, args=args)
        except Exception as err:  # Orbax raises many types; say which checkpoint and why
            raise ValueError(
                f"could not restore checkpoint {path} into the given template (is it the same "
                f"model and optimiser as the saved run?): {type(err).__name__}: {err}"
            ) from err
        meta = out["meta"]
        state = _data_to_keys(out["state"], template)
        return Restored(state, int(meta["step"]), meta["data_position"], meta.get("extra", {}), path)

    def restore_latest(self, template: Any, *, fallback: bool = True) -> Restored | None:
        """Restore the newest valid checkpoint, or return ``None`` if there is none on disk.

        A corrupt or incomplete newer checkpoint is skipped with a warning and moved to
        ``corrupt/`` (``fallback=True``), or raises ``ValueError`` naming the problem and the
        newest valid older checkpoint (``fallback=False``): see :meth:`latest_valid`.
        """
        step = self.latest_valid(fallback=fallback)
        return None if step is None else self.restore(template, step)

    def latest_valid(self, *, fallback: bool = True) -> int | None:
        """The newest step whose checkpoint is whole, or ``None`` if there is none on disk.

        Newer corrupt or incomplete checkpoints are skipped with a warning and moved to
        ``corrupt/`` (``fallback=True``; otherwise a save at their step would be refused), or
        raise ``ValueError`` naming the problem and the newest valid older step
        (``fallback=False``). ``ValueError`` too when no checkpoint on disk is valid.
        """
        steps = self.steps()[::-1]
        if not steps:
            return None
        problems = []
        for i, step in enumerate(steps):
            try:
                self.verify(step)
            except ValueError as err:
                problems.append((step, str(err)))
                if not fallback:
                    older = self._newest_valid(steps[i + 1:])
                    offer = (
                        f"The newest valid checkpoint is step {older} ({self.step_dir(older)}): "
                        "restore_latest(..., fallback=True) uses it and moves the corrupt one aside."
                        if older is not None else "No older valid checkpoint exists."
                    )
                    raise ValueError(f"{err} {offer}") from None
                warnings.warn(f"skipping checkpoint step {step}: {err}", stacklevel=3)
                continue
            for bad, _ in problems:
                self._quarantine(bad)
            return step
        details = "; ".join(f"step {s}: {msg}" for s, msg in problems)
        raise ValueError(f"no valid checkpoint in {self.directory}: {details}")

    def restore_metadata(self, step: int) -> Restored:
        """Verify checkpoint ``step`` and read its step, data position and ``extra``, not its state
        (``state`` is ``None``): what a caller needs to build the template of a state whose
        structure depends on how far the run had got."""
        ocp = _orbax()
        path = self.step_dir(step)
        verify_checkpoint(path)
        try:
            meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as err:  # Orbax raises many types; say which checkpoint and why
            raise ValueError(f"could not read the metadata of checkpoint {path}: {type(err).__name__}: {err}") from err
        return Restored(None, int(meta["step"]), meta["data_position"], meta.get("extra", {}), path)

    def _newest_valid(self, steps: list[int]) -> int | None:
        for step in steps:
            try:
                self.verify(step)
                return step
            except ValueError:
                continue
        return None

    def _quarantine(self, step: int) -> None:
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.directory / CORRUPT_DIR / f"{step}-{stamp}"
        target.parent.mkdir(exist_ok=True)
        shutil.move(str(self.step_dir(step)), str(target))
        warnings.warn(f"moved corrupt checkpoint {self.step_dir(step)} to {target}", stacklevel=3)
        self._manager.reload()

    # --- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Check a step directory against its manifest; raise ``ValueError`` naming what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"checkpoint {path} does not exist (or is not a directory).")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(
            f"checkpoint {path} is incomplete: it has no {MANIFEST}, which is written last (the run "
            "probably stopped while saving, or this directory was not written by seqjax)."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"checkpoint {path} has an unreadable {MANIFEST}: {err}") from None
    for name, expected in sorted(files.items()):
        file = path / name
        if not file.is_file():
            raise ValueError(f"checkpoint {path} is corrupt: file {file} is missing.")
        size = file.stat().st_size
        if size != expected["size"]:
            raise ValueError(
                f"checkpoint {path} is corrupt: file {file} has {size} bytes, expected "
                f"{expected['size']} (truncated or overwritten)."
            )
        if _sha256(file) != expected["sha256"]:
            raise ValueError(
                f"checkpoint {path} is corrupt: file {file} does not match its SHA-256 checksum."
            )


def _write_manifest(path: Path, step: int) -> None:
    files = {
        str(f.relative_to(path)): {"size": f.stat().st_size, "sha256": _sha256(f)}
        for f in sorted(path.rglob("*")) if f.is_file() and f.name != MANIFEST
    }
    tmp = path / (MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"format": FORMAT, "step": step, "files": files}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())  # the manifest's presence claims the files are complete: make it durable
    os.replace(tmp, path / MANIFEST)


def _orbax():
    # Imported on first use: `import seqjax.train` (every experiment's --help) stays fast.
    import orbax.checkpoint as ocp

    return ocp


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()  # chunked, not hashlib.file_digest: that needs Python 3.11
    with open(file, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_typed_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _keys_to_data(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_typed_key(x) else x, tree)


def _data_to_keys(tree: Any, template: Any) -> Any:
    def rebuild(saved, like):
        if _is_typed_key(like):
            return jax.random.wrap_key_data(saved, impl=jax.random.key_impl(like))
        return saved

    return jax.tree.map(rebuild, tree, template)
