"""Writing figures to files."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure

from .._util.files import atomic_path


def save_figure(fig: Figure, path, *, dpi: int = 150, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write a figure atomically (:func:`operando._util.files.atomic_path`): a reader sees
    the previous file or the new one, never half of one.

    Parameters
    ----------
    fig : Figure
    path : str or Path
        Target file.  With a suffix (``.png``, ``.svg``, ``.pdf``) that one
        format is written; without a suffix one file per entry of ``formats``.
    dpi : int
        Resolution of raster formats, dots per inch.
    formats : sequence of str
        Formats written when ``path`` has no suffix.

    Returns
    -------
    list of Path
        The files written.
    """
    path = Path(path)
    targets = [path] if path.suffix else [path.with_suffix(f".{f.lstrip('.')}") for f in formats]
    written = []
    for target in targets:
        fmt = target.suffix.lstrip(".").lower()
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
        written.append(target)
    return written
