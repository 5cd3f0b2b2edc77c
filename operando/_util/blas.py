"""One BLAS thread for the engine's small matrix products.

Kept free of heavy imports so the CLI can pin the thread variables before numpy
loads (see :func:`operando.cli.main`).
"""

from __future__ import annotations

import contextlib
import os
import sys

#: Environment variables that fix the BLAS/OpenMP thread count when numpy loads.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_CONTROLLER = None
#: True once :func:`pin_before_numpy` has fixed one thread *before* numpy loaded.
_PINNED = False


def pin_before_numpy() -> bool:
    """Set the thread variables to 1 (unless the user set them) if numpy is not loaded yet.

    The variables only take effect when numpy (and its BLAS) loads, so once numpy
    is in the process setting them proves nothing; then the per-call limiter
    stays in charge.  Returns whether BLAS is now known to be single-threaded.
    """
    global _PINNED
    if "numpy" not in sys.modules:
        for variable in BLAS_THREAD_VARIABLES:
            os.environ.setdefault(variable, "1")
        _PINNED = all(os.environ.get(v) == "1" for v in BLAS_THREAD_VARIABLES)
    return _PINNED


def single_threaded_blas():
    """Context manager limiting BLAS to one thread.

    The batched engine does many small matrix products (hundreds of rows);
    OpenBLAS's threading costs more than it gains on those (measured 8x slower
    on a loaded 2-core machine).  Parallelism belongs one level up (chunks of
    spectra on separate workers).  One ``ThreadpoolController`` is kept per
    process: building one scans the loaded libraries (~2 ms, ~0.3 s the first
    time), which a pipeline calling the engine chunk after chunk would pay every
    time.  After :func:`pin_before_numpy` there is nothing to limit.
    """
    global _CONTROLLER
    if _PINNED:
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        try:  # threadpoolctl is a declared dependency
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover
            return contextlib.nullcontext()
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")
