"""Progress bars for long loops (tqdm), written to stderr so that stdout stays the results.

Example::

    >>> from seqjax.experiment.progress import progress
    >>> bar = progress(desc="train", total=100, initial=40, disable=False)  # resumed at step 40
    >>> bar.update(10); bar.n
    50
    >>> bar.close()
"""

from __future__ import annotations

from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(
    iterable: Iterable[T] | None = None,
    *,
    desc: str,
    total: int | None = None,
    initial: int = 0,
    disable: bool | None = None,
):
    """``iterable`` wrapped in a tqdm bar, or with no iterable a bar advanced by ``bar.update(n)``
    (for loops whose units of work are not one iterable).

    ``initial``: where the bar starts (a resumed run starts at the units its checkpoint had done;
    ``total`` stays the whole run's). ``disable=None`` (the default) hides the bar when stderr is
    not a terminal, so logs and CI output are not filled with carriage-return updates; pass
    ``False`` to force it on.
    """
    return tqdm(
        iterable, desc=desc, total=total, initial=initial, disable=disable, leave=False,
        dynamic_ncols=True,
    )
