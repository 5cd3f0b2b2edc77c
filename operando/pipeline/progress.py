"""The run's progress report: a tqdm bar on a terminal or in Jupyter, a callback, or nothing."""

from __future__ import annotations

import sys
import warnings


class _NoBar:
    def __init__(self, callback=None, total=0):
        self.callback, self.total, self.n = callback, total, 0

    def update(self, k):
        self.n += k
        if self.callback is not None and k:
            self.callback(self.n, self.total)

    def close(self):
        pass


def progress_bar(progress, total: int, desc: str = "operando"):
    """A bar over steps: tqdm when ``progress`` is True, or None on a terminal / in a notebook.

    A callable ``progress`` gets ``(steps_done, steps_total)`` instead; False: nothing.
    """
    if callable(progress):
        return _NoBar(progress, total)
    show = _interactive() if progress is None else bool(progress)
    if not show:
        return _NoBar(None, total)
    with warnings.catch_warnings():
        # Without ipywidgets tqdm.auto falls back to the text bar, with a warning.
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm(total=total, unit="step", desc=desc, dynamic_ncols=True)


def _interactive() -> bool:
    """stderr is a terminal, or we run in a Jupyter kernel."""
    stream = sys.stderr
    if stream is not None and hasattr(stream, "isatty") and stream.isatty():
        return True
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if get is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"
