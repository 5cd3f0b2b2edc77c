"""The two-phase figure: how many atoms clustered and how big the clusters are, apart."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..errors import DataError
from ._marks import numbers


def plot_two_phase(tracking) -> Figure:
    """Cluster fraction x, the clusters' own CN N_c and their size versus condition.

    Per segment (the tracker's estimates): x with its error; N_c with its error and the
    bulk CN; atoms per cluster with the band ``n_atoms_lo .. n_atoms_hi``.  A segment
    with clusters whose size is not determinable (x or its error leave N_c meaningless,
    or N_c is bulk-like) is marked with a grey ``x`` on the size panel.  Single steps are
    small points behind the segment values.

    Parameters
    ----------
    tracking : Tracking
        Of a steps table with the two-phase columns (``[exafs] two_phase``).

    Returns
    -------
    Figure
    """
    seg = tracking.segments
    if "cluster_cn" not in seg.columns:
        raise DataError("no two-phase columns to plot: run the two-phase fit ([exafs] "
                        "two_phase) first")
    steps = tracking.steps
    fig = Figure(figsize=(6.4, 7.0))
    axes = fig.subplots(3, 1, sharex=True)
    pos = np.arange(len(seg), dtype=float)
    step_pos = pos[steps["segment"].to_numpy(dtype=int)]
    jitter = (np.arange(len(steps)) % 5 - 2) * 0.06

    ax = axes[0]
    ax.plot(step_pos + jitter, numbers(steps, "cluster_fraction"), ".", color="0.6", ms=3)
    ax.errorbar(pos, numbers(seg, "cluster_fraction"), yerr=numbers(seg, "cluster_fraction_err"),
                fmt="o", color="C0", capsize=3, label="XANES x")
    if "cluster_fraction_exafs" in seg:
        ax.errorbar(pos + 0.15, numbers(seg, "cluster_fraction_exafs"),
                    yerr=numbers(seg, "cluster_fraction_exafs_err"), fmt="s", color="C1", ms=4,
                    capsize=2, label="EXAFS x")
        bad = ~seg["fraction_consistent"].astype(bool).to_numpy()
        ax.plot(pos[bad], np.full(bad.sum(), 1.05), "v", color="C3", ls="none",
                label="x disagree")
    ax.set_ylabel("cluster fraction x")
    ax.set_ylim(-0.05, 1.12)
    ax.legend(fontsize=7, loc="upper left")

    ax = axes[1]
    ax.plot(step_pos + jitter, numbers(steps, "cluster_cn"), ".", color="0.6", ms=3)
    ax.errorbar(pos, numbers(seg, "cluster_cn"), yerr=numbers(seg, "cluster_cn_err"), fmt="o",
                color="C2", capsize=3)
    bulk = tracking.settings.bulk_cn
    ax.axhline(bulk, color="0.5", ls="--", lw=0.8)
    ax.text(pos[-1], bulk, " bulk", va="bottom", ha="right", fontsize=7, color="0.4")
    ax.set_ylabel("cluster CN $N_c$")

    ax = axes[2]
    n, lo, hi = numbers(seg, "n_atoms"), numbers(seg, "n_atoms_lo"), numbers(seg, "n_atoms_hi")
    ok = np.isfinite(n)
    ax.errorbar(pos[ok], n[ok], yerr=[n[ok] - lo[ok], hi[ok] - n[ok]], fmt="o", color="C4",
                capsize=3, label="atoms per cluster")
    nd = np.isfinite(numbers(seg, "cluster_cn")) & ~ok
    if nd.any():
        ax.plot(pos[nd], np.full(nd.sum(), 13.0), "x", color="0.5", ms=8, ls="none",
                label="size not determinable (or bulk-like)")
    ax.set_yscale("log")
    ax.set_ylabel("atoms per cluster")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_xticks(pos)
    ax.set_xticklabels([str(c) for c in seg["condition"]], rotation=45, ha="right", fontsize=7)
    axes[0].set_title(f"{tracking.settings.cluster_model} clusters: fraction and size apart",
                      fontsize=9)
    fig.tight_layout()
    return fig
