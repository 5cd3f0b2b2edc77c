"""Single atoms <-> clusters: segments, states, events and reversibility.

This stage turns the per-step table of a processed series (``steps.csv``: the
condition of every step, the white line and the EXAFS shell fits) into the
answer the experiment is after: *when*, under which potential or gas, the
single metal atoms aggregated into clusters, and whether they came back.

The steps are grouped into **segments** -- consecutive steps under the same
condition (potential, gas, temperature) -- whose repeats are averaged with
their errors.  Every step and every segment gets a **state** from the
metal-metal coordination number (CN) with its error, the metal-ligand CN and
(as corroborating evidence) the white line:

``isolated``
    CN(M-M) consistent with zero at ``z_significance`` sigma while a ligand
    shell (M-N / M-O) is present: single atoms.
``cluster``
    CN(M-M) significantly above zero but below ``particle_cn``.
``particle``
    CN(M-M) >= ``particle_cn`` (bulk-like, ``bulk_cn`` = 12 for fcc).
``unknown``
    The step failed, or the fit is not interpretable (no M-M and no ligand
    shell, or a significantly negative CN).

**Events** are reported between consecutive segments whose CN(M-M) differs
significantly (``|z| >= z_significance``): ``aggregation``, ``growth``,
``redispersion`` and ``partial_redispersion``.  Long constant-condition
segments (QEXAFS under one gas) are first split at change points found by
binary segmentation of the CN (see :func:`find_change_points`), so a change
under constant conditions is reported too.  **Reversibility** compares a
segment that returns to an earlier condition with the state reached there
before.

Cluster sizes follow from the average CN through the cuboctahedral magic-number
clusters or the spherical-particle model (:func:`cluster_size_from_cn`).

=====================  ==========================================================
:mod:`.track`          :func:`track` -> :class:`Tracking` (segments, states,
                       events, reversibility, ``summary()``)
:mod:`.settings`       :class:`TrackSettings`: every threshold, validated once
:mod:`.states`         :func:`classify`, :func:`detect_shells`
:mod:`.changepoints`   :func:`find_change_points` (binary segmentation, CUSUM)
:mod:`.events`         events between segments, reversibility of returns
:mod:`.cluster`        :func:`cluster_size_from_cn` and the cuboctahedron / sphere
                       relations behind it
=====================  ==========================================================
"""

from .changepoints import find_change_points
from .cluster import ClusterSize, cluster_size_from_cn, cuboctahedron_atoms, cuboctahedron_cn, sphere_cn
from .events import EVENT_COLUMNS, REVERSIBILITY_COLUMNS
from .settings import TrackSettings
from .states import STATES, classify, detect_shells
from .track import DEFAULT_CONDITION_COLUMNS, Tracking, track

__all__ = ["track", "Tracking", "TrackSettings", "classify", "detect_shells", "find_change_points",
           "cluster_size_from_cn", "ClusterSize", "cuboctahedron_atoms", "cuboctahedron_cn",
           "sphere_cn", "STATES", "EVENT_COLUMNS", "REVERSIBILITY_COLUMNS",
           "DEFAULT_CONDITION_COLUMNS"]
