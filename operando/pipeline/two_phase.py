"""``[exafs] two_phase`` in a run: the columns of a chunk's steps.

The isolated state is a ``[components]`` standard: its normalised spectrum (read,
calibrated and normalised once with the series' settings about the series' E0) is
normalised again and its background removed with the chunk's own settings, so chi_iso
is processed exactly as every step.  The fit is :func:`operando.exafs.fit_two_phase`;
the sizes come from the clusters' own CN (:func:`operando.tracking.cluster.size_columns`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..exafs import remove_background
from ..exafs.two_phase import fit_two_phase
from ..schema import SIZE_COLUMNS, TWO_PHASE_COLUMNS
from ..tracking.channels import metal_fraction_column, split_shell
from ..options import TrackSettings
from ..tracking.cluster import two_phase_table
from ..xanes import normalize


def isolated_chi(norm, settings) -> np.ndarray:
    """chi(k) of the ``isolated`` standard, processed as the steps of ``norm``."""
    options = settings.two_phase
    references = (settings.lcf or {}).get("standards") or {}
    name = options["isolated"]
    if name not in references:
        raise ConfigError(f"[exafs] two_phase isolated = {name!r}: not a [components] standard "
                          f"(standards: {', '.join(references) or 'none'})")
    energy, values = references[name]
    grid = np.asarray(norm.series.energy, dtype=float)
    mu = np.interp(grid, np.asarray(energy, float), np.asarray(values, float))
    one = norm.series.take([0]).replace(mu=mu[None, :], reference=None)
    chi = remove_background(normalize(one, **settings.normalize), **settings.background)
    if not bool(chi.ok[0]):
        raise ConfigError(f"[exafs] two_phase isolated = {name!r}: no chi(k) ({chi.reason[0]})")
    return np.asarray(chi.chi[0], dtype=float)


def two_phase_columns(table: pd.DataFrame, norm, chi, settings) -> tuple[pd.DataFrame, dict]:
    """``(columns, settings used)``: the two-phase fit of a chunk's steps, one row per
    row of ``table`` (which holds the LCF fractions)."""
    options = settings.two_phase
    shell = options["shell"]
    element = split_shell(shell)[0]
    fraction = fraction_err = None
    column = metal_fraction_column(table, element, TrackSettings(metal_fraction=options["metal"]))
    if options["fraction"] != "fit":
        if column is None:
            raise ConfigError(f"[exafs] two_phase fraction = \"{options['fraction']}\" needs a "
                              "metallic [components] standard (set [components] metal)")
        fraction = table[column].to_numpy(dtype=float)
        fraction_err = table[f"{column}_err"].to_numpy(dtype=float)
    fit = settings.fit
    result = fit_two_phase(chi, isolated_chi(norm, settings), settings.model, shell=shell,
                           s02=fit["s02"], s02_err=fit.get("s02_err"), fraction=fraction,
                           fraction_err=fraction_err, fraction_mode=options["fraction"],
                           disorder=options["disorder"])
    out = result.table.set_index("step").reindex(table["step"]).reset_index(drop=True)
    cols = two_phase_table(out, element=element)[[*TWO_PHASE_COLUMNS, *SIZE_COLUMNS]]
    return cols, {**result.settings, "isolated": options["isolated"],
                  "fraction_column": column}
