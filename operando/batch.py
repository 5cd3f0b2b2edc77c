"""Fast batched XAFS primitives (array in, array out), each a drop-in for a Larch call.

==========================  ====================================================
:func:`batch_autobk`        ``larch.xafs.autobk`` for many spectra (one linear
                            solve per spectrum instead of an iterative fit)
:func:`batch_xftf`          ``larch.xafs.xftf`` for many chi(k)
:func:`tabulate_path`       FEFF path -> :class:`PathTable` (Larch's path chi and
                            its analytic derivatives for many parameter sets)
:func:`batch_fit`           ``larch.xafs.feffit`` of one-path-per-shell models for
                            many spectra, with Larch's error bars and statistics
==========================  ====================================================

None of them imports larch (the few Larch definitions they use are copied in
``_batch_larch`` and tested equal to Larch's), so a fast run starts in well under a
second.  Every function is tested against xraylarch on the same input (tests/test_batch.py);
the implementation notes (why the results are identical) live in the private
modules ``_batch_autobk``, ``_batch_ft``, ``_batch_paths`` and ``_batch_fit``.
"""

from ._batch_autobk import AutobkResult, batch_autobk
from ._batch_fit import BatchFitResult, batch_fit
from ._batch_ft import batch_xftf
from ._batch_paths import PathTable, tabulate_path

__all__ = ["batch_autobk", "AutobkResult", "batch_xftf", "PathTable", "tabulate_path",
           "batch_fit", "BatchFitResult"]
