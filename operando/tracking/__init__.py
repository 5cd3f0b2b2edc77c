"""Single atoms <-> clusters: segments, states, events and reversibility from all the evidence.

This stage turns the per-step table of a processed series (``steps.csv``: the
condition of every step, the white line and edge, the component fractions, the
EXAFS shell fits) into the answer the experiment is after: *when*, under which
potential or gas, the single metal atoms aggregated into clusters, and whether
they came back.  It uses what the table holds: a XANES-only series is tracked
from its white line, edge and fractions; with EXAFS the shells join in.

1. **Conditions and segments** (:mod:`.conditions`, :mod:`.segments`): every user
   column of the conditions table defines the condition; consecutive steps under
   one condition form a block, split at change points when long.
2. **Evidence channels** (:mod:`.channels`): CN(M-M) and CN(M-L) from good fits,
   the metallic and other fractions, white-line height and edge position; per
   segment an estimate and an uncertainty that includes the scatter of repeat
   scans as a systematic floor.
3. **States** (:mod:`.states`): ``isolated`` / ``cluster`` / ``particle`` judged
   against the baseline (first) state and the detection limits, so a bias common
   to all steps (an oxide's own Cu...Cu leaking into the metal path) does not make
   clusters; ``xanes_state`` oxidised / mixed / reduced.
4. **Events** (:mod:`.events`): a condition change (or a trend within one) is an
   event when the strongest channel, Bonferroni-corrected over the channels
   (:mod:`.evidence`), reaches ``z_event``; per-channel z in the evidence.
   **Reversibility** compares returns like with like.
5. **Cluster size** (:mod:`.cluster`) where the CN means one; bulk-like otherwise.

=====================  ==========================================================
:mod:`.track`          :func:`track` -> :class:`Tracking`
:mod:`.settings`       :class:`TrackSettings`: every threshold, validated once
:mod:`.conditions`     condition columns, keys, labels, blocks
:mod:`.channels`       the evidence channels of a steps table
:mod:`.segments`       change points, per-segment estimates, trends, outliers
:mod:`.evidence`       combining channels (strongest after Bonferroni)
:mod:`.states`         states relative to the baseline and detection limits
:mod:`.events`         events, reversibility
:mod:`.changepoints`   :func:`find_change_points` (binary segmentation, CUSUM)
:mod:`.cluster`        :func:`cluster_size_from_cn`; :func:`two_phase_table` (sizes
                       from the two-phase ``cluster_cn``)
=====================  ==========================================================
"""

from .changepoints import find_change_points
from .channels import detect_shells
from .cluster import (ClusterSize, cluster_size_from_cn, cuboctahedron_atoms, cuboctahedron_cn,
                      size_columns, size_determinable, sphere_cn, two_phase_table)
from .conditions import default_condition_columns
from .events import EVENT_COLUMNS, REVERSIBILITY_COLUMNS
from ..options import TrackSettings
from .states import STATES, XANES_STATES
from .track import Tracking, check_baseline, track

__all__ = ["track", "Tracking", "TrackSettings", "detect_shells", "find_change_points",
           "cluster_size_from_cn", "two_phase_table", "size_columns", "size_determinable",
           "ClusterSize", "cuboctahedron_atoms", "cuboctahedron_cn",
           "sphere_cn", "STATES", "XANES_STATES", "EVENT_COLUMNS", "REVERSIBILITY_COLUMNS",
           "default_condition_columns", "check_baseline"]
