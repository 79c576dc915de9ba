"""Progress bars for long loops, shown only when asked: the one place the course creates one.

Used by the iterative helpers (training, gradient ascent, style transfer; notebooks 02 and 04-07), which take
``progress=True`` (notebooks pass it when run interactively) so that test output stays clean.
"""

from __future__ import annotations

from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int, desc: str, *, enabled: bool = True) -> Any:
    """A ``tqdm.auto`` bar for ``total`` steps (update with ``bar.update(1)``, close with ``bar.close()`` or use it
    as a context manager); a do-nothing stand-in with the same methods when ``enabled`` is False.

    Example:
        >>> with progress_bar(steps, "train", enabled=progress) as bar:
        ...     bar.update(1)
    """
    if not enabled:
        return _Silent()
    from tqdm.auto import tqdm  # imported on use: a notebook without progress bars never pays for it

    return tqdm(total=total, desc=desc, leave=False)


class _Silent:
    """The bar when none is wanted: accepts the calls a tqdm bar gets and shows nothing."""

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
