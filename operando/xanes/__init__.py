"""XANES stage: energy calibration, pre-edge subtraction / normalisation, white line.

Three public functions, each taking the previous stage's object and returning
a new one (nothing is changed in place):

* :func:`calibrate` shifts every scan so that its reference-channel edge sits
  at the tabulated (or given) edge energy.
* :func:`normalize` does Larch's ``pre_edge`` (same defaults, same maths) on
  every spectrum of a :class:`~operando.series.Series` and returns a
  :class:`NormalizedSeries`.
* :func:`white_line` measures white-line height, position, area and the
  half-step edge position on a :class:`NormalizedSeries`.
* :func:`merge_repeats` merges repeated scans of a condition (aligned on the
  reference channel, outliers rejected, noise kept) and :func:`deglitch`
  removes glitches (Wallace et al. 2021); each returns the new Series and a
  report of what it merged or replaced.

Two engines compute the normalisation.  ``engine="larch"`` loops over the
spectra calling :func:`larch.xafs.pre_edge` and is the oracle.
``engine="fast"`` exploits that, once E0 and the fit ranges are fixed, the
pre-edge line and the post-edge polynomial are linear least-squares fits:
every spectrum sharing the same index ranges is solved with one precomputed
pseudo-inverse (a matrix product).  Larch's ``find_e0`` is reproduced in a
batched form too (the smoothing of the derivative is linear, so it becomes a
precomputed matrix per window), so ``e0="each"`` is also batched.  The fast
engine agrees with Larch to rounding error (the tests hold it to 1e-3 on real
spectra; in practice the difference is ~1e-12).

Per-step failures (dead frame, non-finite values, no edge) never raise: the
step gets ``ok=False`` and a ``reason`` naming the stage and the problem; its
``norm``/``flat`` rows are NaN and every other step is unaffected.
"""

from .calibrate import calibrate
from .deglitch import DeglitchReport, deglitch
from .merge import MergeReport, merge_repeats
from .normalize import normalize
from .result import NormalizedSeries
from .whiteline import white_line

__all__ = ["NormalizedSeries", "normalize", "calibrate", "white_line", "merge_repeats",
           "MergeReport", "deglitch", "DeglitchReport"]
