"""``[exafs] two_phase`` in a run: the columns of a chunk's steps.

The isolated state is a ``[components]`` standard: its normalised spectrum (read,
calibrated and normalised once with the series' settings about the series' E0) is
normalised again and its background removed with the chunk's own settings, so chi_iso
is processed exactly as every step.  The fit is :func:`operando.exafs.fit_two_phase`;
the sizes come from the clusters' own CN (:func:`operando.tracking.cluster.size_columns`).
A cluster model of more than one shell (bcc metals) takes the foil calibrated on those
shells (:func:`cluster_calibration`, once per run, recorded in settings.json).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..exafs import ShellModel, remove_background
from ..exafs.cluster_shells import ClusterCalibration, calibrate_cluster, cluster_model
from ..exafs.foil import temperature_shift
from ..exafs.two_phase import fit_two_phase
from ..schema import SIZE_COLUMNS, TWO_PHASE_COLUMNS
from ..tracking.channels import metal_fraction_column, split_shell
from ..options import TrackSettings
from ..tracking.cluster import two_phase_table
from ..xanes import normalize

log = logging.getLogger(__name__)


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


def cluster_calibration(foil_chi, model, shell: str, max_relative_error: float,
                        foil=None) -> tuple | None:
    """``(calibration, record)``: the foil's chi(k) (a one-step ChiSeries) fitted with the
    cluster model of ``shell`` (:func:`~operando.exafs.cluster_shells.calibrate_cluster`;
    first-shell CN ``foil.cn``) when that model has more than one shell, else None (one
    shell: :func:`~operando.exafs.calibrate_s02` on that shell's path is the same fit).
    ``record`` is JSON-ready, with each shell's sigma2 shifted for the ``[foil]``
    temperatures (``foil``: its config) as :func:`~operando.exafs.apply_foil` shifts one
    shell's, on its own path; ``calibration`` holds the foil's own values."""
    shells = cluster_model(model, shell)
    if len(shells.shells) == 1:
        return None
    cn = None if foil is None else foil.cn
    if cn is not None and cn != shells.bulk_cn:
        log.warning("[foil] cn = %g on the %s cluster model of %s, whose bulk first-shell CN "
                    "is %g", cn, shells.structure, shell, shells.bulk_cn)
    cal = calibrate_cluster(foil_chi.chi[0], float(foil_chi.e0[0]), model, shells, cn=cn)
    if not (cal.s02_err / cal.s02 <= max_relative_error) or cal.at_bound:
        raise DataError(f"[foil]: S0^2 = {cal.s02:.3g} +/- {cal.s02_err:.3g} on the "
                        f"{len(shells.shells)}-shell {shells.structure} cluster model of {shell} "
                        f"is not determined (on a bound: {', '.join(cal.at_bound) or 'none'}); "
                        "check the foil's k range against [exafs] kmin/kmax, or its [foil] cn")
    shifts = [0.0] * len(shells.shells)
    if foil is not None and foil.temperature_K is not None:
        shifts = [temperature_shift(ShellModel(shells=[{"label": shell, "file": str(s.path.file)}]),
                                    shell, foil.temperature_K, foil.sample_temperature_K,
                                    foil.debye_temperature_K, foil.disorder_model)
                  for s in shells.shells]
    sigma2 = tuple(v + d for v, d in zip(cal.sigma2, shifts))
    return cal, {**replace(cal, sigma2=sigma2).to_dict(), "sigma2_temperature_shift": shifts}


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
    amplitude = {"s02": settings.fit["s02"], "s02_err": settings.fit["s02_err"]}
    if options.get("cluster") is not None:
        amplitude = {"cluster": ClusterCalibration.from_dict(
            options["cluster"], cluster_model(settings.model, shell))}
    result = fit_two_phase(chi, isolated_chi(norm, settings), settings.model, shell=shell,
                           fraction=fraction, fraction_err=fraction_err,
                           fraction_mode=options["fraction"], disorder=options["disorder"],
                           **amplitude)
    out = result.table.set_index("step").reindex(table["step"]).reset_index(drop=True)
    cols = two_phase_table(out, element=element)[[*TWO_PHASE_COLUMNS, *SIZE_COLUMNS]]
    return cols, {**result.settings, "isolated": options["isolated"],
                  "fraction_column": column}
