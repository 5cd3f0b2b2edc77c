"""Fast batched XAFS primitives (array in, array out), each a drop-in for a Larch call.

==========================  ====================================================
:func:`batch_autobk`        ``larch.xafs.autobk`` for many spectra (one linear
                            solve per spectrum instead of an iterative fit)
:func:`batch_xftf`          ``larch.xafs.xftf`` for many chi(k)
:func:`tabulate_path`       FEFF path -> :class:`PathTable` (Larch's path chi and
                            its analytic derivatives for many parameter sets)
:func:`batch_fit`           ``larch.xafs.feffit`` of one-path-per-shell models for
                            many spectra, with Larch's error bars and statistics
:func:`batch_fit_global`    ``feffit`` with several datasets: many spectra in one fit,
                            some parameters shared (block-sparse normal equations)
==========================  ====================================================

None of them imports larch: importing ``larch.xafs`` pulls in lmfit, scipy.stats,
scikit-learn, xraydb and SQLAlchemy in every worker process.  The few Larch
definitions they use are copied in :mod:`operando._util.larch_compat` and tested
equal to Larch's.  Every function is tested against xraylarch on the same input
(tests/exafs/test_batch.py); the implementation notes (why the results are identical)
live in the modules: :mod:`.autobk`, :mod:`.ft`, :mod:`.paths` / :mod:`.stack`,
:mod:`.fit` / :mod:`.problem`.
"""

from .autobk import AutobkResult, batch_autobk
from .fit import batch_fit
from .global_fit import batch_fit_global
from .ft import batch_xftf
from .paths import PathTable, tabulate_path
from .result import BatchFitResult

__all__ = ["batch_autobk", "AutobkResult", "batch_xftf", "PathTable", "tabulate_path",
           "batch_fit", "batch_fit_global", "BatchFitResult"]
