"""Run a whole analysis from a configuration into a run folder.

=====================  ============================================================
:mod:`.run`            :func:`run`: a configuration -> a run folder
:mod:`.session`        :class:`Session`: one analysis of a series (run and watch), :class:`RunResult`
:mod:`.settings`       the configuration resolved once into each stage's settings
:mod:`.source`         reading, streaming (operando HDF5), hashing, calibration
:mod:`.prepare`        series-wide values: E0, engine, shells, S0^2 (checkpointed)
:mod:`.chunks`         the chunk loop on an executor, checkpoints, plot rows
:mod:`.steps`          one chunk's analysis: normalise, white line, background, fits
:mod:`.outputs`        steps table, tracking, every output file
:mod:`.analyses`       series-wide analyses: PCA/MCR, wavelet lobes, the LCF overlay
:mod:`.figures`        which figures are drawn and how they are saved
:mod:`.store`          the run folder: manifest, checkpoints, atomic outputs
:mod:`.progress`       the progress bar
:mod:`.lock`           one run per folder (flock), the holder named in a refusal
:mod:`.workers`        worker count (capped at the cores), workers that die with the run
:mod:`.checkpoint`     checkpoint files (arrays + metadata, tables without pickling)
:mod:`.follow`         which scans of a growing source are complete
:mod:`.watch`          :func:`watch`: live mode, the batch machinery on what has landed
=====================  ============================================================
"""

from .run import run
from .session import RunInterrupted, RunResult
from .watch import WatchStopped, watch

__all__ = ["run", "watch", "RunResult", "RunInterrupted", "WatchStopped"]
