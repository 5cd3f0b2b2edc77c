"""One BLAS thread for the engine's small matrix products.

Kept free of heavy imports so the CLI can pin the thread variables before numpy
loads (see :func:`operando.cli.main`).
"""

from __future__ import annotations

import contextlib
import os

#: Environment variables that fix the BLAS/OpenMP thread count when numpy loads.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

_CONTROLLER = None


def single_threaded_blas():
    """Context manager limiting BLAS to one thread.

    The batched engine does many small matrix products (hundreds of rows);
    OpenBLAS's threading costs more than it gains on those (measured 8x slower
    on a loaded 2-core machine).  Parallelism belongs one level up (chunks of
    spectra on separate workers).  One ``ThreadpoolController`` is kept per
    process: building one scans the loaded libraries (~2 ms, ~0.3 s the first
    time), which a pipeline calling the engine chunk after chunk would pay every
    time.  When the thread variables already say 1 (the CLI sets them before
    numpy loads) there is nothing to limit.
    """
    global _CONTROLLER
    if all(os.environ.get(v) == "1" for v in BLAS_THREAD_VARIABLES):
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        try:  # threadpoolctl is a declared dependency
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover
            return contextlib.nullcontext()
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")
