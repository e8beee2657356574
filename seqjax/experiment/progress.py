"""Progress bars for long loops (tqdm), written to stderr so that stdout stays the results."""

from __future__ import annotations

from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(
    iterable: Iterable[T] | None = None,
    *,
    desc: str,
    total: int | None = None,
    disable: bool | None = None,
):
    """``iterable`` wrapped in a tqdm bar, or with no iterable a bar advanced by ``bar.update(n)``
    (for loops whose units of work are not one iterable).

    ``disable=None`` (the default) hides the bar when stderr is not a terminal, so logs and CI
    output are not filled with carriage-return updates; pass ``False`` to force it on.
    """
    return tqdm(iterable, desc=desc, total=total, disable=disable, leave=False, dynamic_ncols=True)
