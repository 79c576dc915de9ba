"""How much memory a call will allocate, said before it allocates: a warning above 1 GiB, an error above 8 GiB.

Used by every function whose memory grows with its arguments (image sizes, batch sizes, step counts; all
notebooks), and by :mod:`cnn_helpers.core.budget`, which warns about time the same way. A student's laptop must
not start swapping because of a typo (``size=224000``, ``stride=1`` on a 4000 x 4000 photo).
"""

from __future__ import annotations

import warnings

__all__ = ["CostWarning", "check_memory", "WARN_BYTES", "REFUSE_BYTES"]

WARN_BYTES, REFUSE_BYTES = 1 << 30, 8 << 30


class CostWarning(UserWarning):
    """A call will take minutes or allocate gigabytes; the message says how much and how to reduce it."""


def check_memory(nbytes: float, what: str, hint: str = "") -> None:
    """Warn when ``what`` will allocate more than 1 GiB; ValueError with the estimate above 8 GiB.

    Example:
        >>> check_memory(4 * 3 * height * width, "resizing to size=224000", "use a smaller size")
    """
    gib = nbytes / 2**30
    message = f"{what} would allocate about {gib:,.{0 if gib >= 10 else 1}f} GiB" + (f"; {hint}" if hint else "")
    if nbytes > REFUSE_BYTES:
        raise ValueError(message)
    if nbytes > WARN_BYTES:
        warnings.warn(message, CostWarning, stacklevel=3)
