"""Short, uniform messages: one helper for lists of names, one for reader warnings.

A column file can hold a thousand labels and a folder ten thousand files; a
message names at most a few of them and counts the rest, so a warning stays one
readable line (``"a, b, c, d, e and 1,098 more"``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ..errors import OperandoWarning

#: Names a message shows before "and N more".
SHOWN = 5


def short_list(items, shown: int = SHOWN, *, quote: bool = False) -> str:
    """``items`` as ``"a, b, c and 12 more"`` (at most ``shown`` of them named).

    Parameters
    ----------
    items : iterable
        Anything with a useful ``str``.
    shown : int
        How many items to name.
    quote : bool
        Quote each item with ``repr`` (for labels with spaces).

    Returns
    -------
    str
        ``"(none)"`` for an empty list.
    """
    items = list(items)
    if not items:
        return "(none)"
    text = [repr(x) if quote else str(x) for x in items[:shown]]
    rest = len(items) - len(text)
    if rest <= 0:
        return ", ".join(text[:-1]) + (" and " if len(text) > 1 else "") + text[-1]
    return ", ".join(text) + f" and {rest:,} more"


def warn(path, message: str, stacklevel: int = 3) -> None:
    """An :class:`~operando.errors.OperandoWarning` prefixed by the file's name."""
    name = Path(str(path)).name if str(path) else str(path)
    warnings.warn(f"{name}: {message}", OperandoWarning, stacklevel=stacklevel)
