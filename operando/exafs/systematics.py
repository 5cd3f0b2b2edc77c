"""The spread of the CN trend over the processing choices analysts make by hand:
:func:`cn_systematics` re-runs background removal and the shell fit over a small grid
(k range, rbkg, E0 policy, R window) and reports, per step and shell, the band the
CN moves in -- a systematic error bar beside the statistical one.

Every variant is processed like the base: when a reference foil is given it is
calibrated again in the variant's own window (S0^2, and the sigma2 / dR / dE0 the
metal shell takes from it), since a fixed S0^2 from another window would add its own
bias.  On the Cu foil + CuO mixtures (0.3 % noise, 5 seeds) the half-width of the
CN(Cu-Cu) band over the default grid was at most 0.35 with the default model (sigma2 and
dE0 of Cu-Cu from the foil; largest at zero metal) and 0.19 with the oxide's outer shells
tied to CN(Cu-O).  A k weight of 1 or 3 moves CNs much more (the research that set these
defaults saw up to 3 at zero metal) but changes what is fitted; it is not in the grid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import pandas as pd

from .._util.result import Result
from ..errors import ConfigError
from ..options import BackgroundOptions, FoilOptions, NormalizeOptions
from .model import ShellModel

log = logging.getLogger(__name__)


def processing_variants(model: ShellModel, *, rbkg: float = BackgroundOptions.rbkg,
                        e0: str | float = NormalizeOptions.e0,
                        kmax_shifts: Sequence[float] = (-2.0, 1.0),
                        rbkg_values: Sequence[float] = (0.8, 1.2),
                        rmin_shifts: Sequence[float] = (0.2,), rmax_shifts: Sequence[float] = (0.2,),
                        e0_policies: Sequence = ("each",)) -> list[dict]:
    """The default grid: the base, then one change at a time.

    Returns
    -------
    list of dict
        ``{"name", "kmax", "rmin", "rmax", "rbkg", "e0"}``; the first is ``"base"``.
        ``kmax`` shifts (1/Angstrom), ``rbkg`` values (Angstrom), ``rmin`` / ``rmax``
        shifts (Angstrom) and E0 policies different from the base's.
    """
    base = {"name": "base", "kmax": model.kmax, "rmin": model.rmin, "rmax": model.rmax,
            "rbkg": float(rbkg), "e0": e0}
    out = [base]
    for d in kmax_shifts:
        out.append({**base, "name": f"kmax{d:+g}", "kmax": model.kmax + d})
    for r in rbkg_values:
        if r != rbkg:
            out.append({**base, "name": f"rbkg{r:g}", "rbkg": float(r)})
    for d in rmin_shifts:
        out.append({**base, "name": f"rmin{d:+g}", "rmin": model.rmin + d})
    for d in rmax_shifts:
        out.append({**base, "name": f"rmax{d:+g}", "rmax": model.rmax + d})
    for p in e0_policies:
        if p != e0:
            out.append({**base, "name": f"e0 {p}", "e0": p})
    for v in out:
        if not (model.kmin < v["kmax"] and v["rmin"] < v["rmax"]):
            raise ConfigError(f"processing variant {v['name']}: empty k or R window")
    return out


@dataclass(frozen=True, eq=False)
class Systematics(Result):
    """CN of every step under each processing variant and the band they span.

    Attributes
    ----------
    table : DataFrame
        One row per step: ``step``, and per shell S with a varied CN ``cn_S`` (base),
        ``cn_S_err`` (statistical, base), ``cn_S_sys`` (half the range over the
        variants), ``cn_S_sys_min``, ``cn_S_sys_max``, ``cn_S_sys_sd``.
    by_variant : DataFrame
        Long table: ``variant, step, shell, cn, cn_err, fit_quality`` and the variant's
        ``s02``.
    variants : list of dict
        The processing choices (:func:`processing_variants`).
    settings : dict
    """

    table: pd.DataFrame
    by_variant: pd.DataFrame
    variants: list
    settings: dict

    def to_dataframe(self) -> pd.DataFrame:
        """The per-step band (``table``, a copy)."""
        return self.table.copy()

    def title(self) -> str:
        return f"Systematics: {len(self.table)} steps over {len(self.variants)} processing variants"

    def plot(self, shell: str, x=None, *, truth=None):
        """CN of ``shell`` per step: the base with its statistical error bars and the
        systematic band (min to max over the variants).

        Parameters
        ----------
        shell : str
        x : array, optional
            Values for the horizontal axis (default: step).
        truth : array, optional
            True CN per step, drawn as a line.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from matplotlib.figure import Figure

        t = self.table
        if f"cn_{shell}" not in t:
            raise ConfigError(f"no systematics for shell {shell!r}; shells: "
                              f"{[c[3:-4] for c in t.columns if c.endswith('_sys')]}")
        xs = t["step"].to_numpy() if x is None else np.asarray(x)
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        ax.fill_between(xs, t[f"cn_{shell}_sys_min"], t[f"cn_{shell}_sys_max"], color="C0",
                        alpha=0.25, lw=0, label="processing choices (min-max)")
        ax.errorbar(xs, t[f"cn_{shell}"], yerr=t[f"cn_{shell}_err"], fmt="o", color="C0",
                    ms=4, capsize=2, label="base (statistical error)")
        if truth is not None:
            ax.plot(xs, truth, "k--", lw=1, label="truth")
        ax.set_xlabel("step" if x is None else "")
        ax.set_ylabel(f"CN({shell})")
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        return fig


def cn_systematics(normalized, model: ShellModel, *, s02: float | None = None,
                   s02_err: float | None = None, foil=None, foil_shell: str | None = None,
                   foil_cn: float = FoilOptions.cn, foil_options: dict | None = None,
                   foil_fits_by_variant: dict | None = None, variants: list | None = None,
                   rbkg: float = BackgroundOptions.rbkg, bkg_kmin: float = BackgroundOptions.kmin,
                   engine: str = BackgroundOptions.engine) -> Systematics:
    """Re-run background removal and the shell fit over the processing variants.

    Parameters
    ----------
    normalized : NormalizedSeries
        The series as normalised for the base (its ``series`` is normalised again for
        E0-policy variants, with the same ranges).
    model : ShellModel
        The model *before* reference values are applied.
    s02, s02_err : float, optional
        S0^2 of every variant when there is no foil.
    foil : NormalizedSeries, optional
        The reference foil (first step): calibrated again in each variant's window;
        its S0^2 and the values :func:`~operando.exafs.apply_foil` gives the
        ``foil_shell`` (with ``foil_options``) are used in that variant.
    foil_fits_by_variant : dict, optional
        Instead of ``foil``: per variant name ``{"s02", "s02_err", "values"}`` with
        ``values`` a :class:`~operando.exafs.FoilValues` dict (a run computes
        them once and passes them to every chunk).
    variants : list of dict, optional
        Default :func:`processing_variants` of ``model`` around ``rbkg`` and the
        series' E0 policy.
    rbkg, bkg_kmin : float
        The base background settings (Angstrom, 1/Angstrom).
    engine : {"fast", "larch"}

    Returns
    -------
    Systematics
    """
    from .background import remove_background
    from .fit import fit_shells
    from .foil import FoilValues, apply_foil

    e0_base = normalized.settings["e0"]
    variants = variants or processing_variants(model, rbkg=rbkg, e0=e0_base)
    options = dict(foil_options or {})
    if foil_fits_by_variant is None:
        if foil is not None:
            foil_fits_by_variant = foil_fits(foil, model, variants, shell=foil_shell,
                                        cn=foil_cn, bkg_kmin=bkg_kmin, engine=engine)
        elif s02 is None:
            raise ConfigError("cn_systematics needs s02, a foil or foil_fits_by_variant")
    tested = [s.label for s in model.shells if s.cn.mode == "free"]
    rows = []
    norm_kw = dict(normalized.settings.get("requested", {}),
                   engine=normalized.settings["engine"])
    cache = {}
    for v in variants:
        key = (v["e0"], v["rbkg"])
        if key not in cache:
            norm = normalized if v["e0"] == e0_base else _renormalize(normalized, v["e0"], norm_kw)
            cache[key] = remove_background(norm, rbkg=v["rbkg"], kweight=model.kweight,
                                           kmin=bkg_kmin, engine=engine)
        chi = cache[key]
        m = replace(model, kmax=v["kmax"], rmin=v["rmin"], rmax=v["rmax"], significance="none")
        if foil_fits_by_variant is not None:
            ref = foil_fits_by_variant[v["name"]]
            vs02, verr = ref["s02"], ref.get("s02_err")
            if ref.get("values"):
                m = apply_foil(m, FoilValues(**ref["values"]), **options)
        else:
            vs02, verr = s02, s02_err
        try:
            fit = fit_shells(chi, m, s02=vs02, s02_err=verr, engine=engine).to_dataframe()
        except Exception as exc:        # a variant that cannot run is reported, not fatal
            log.warning("processing variant %s failed: %s", v["name"], exc)
            continue
        for lab in tested:
            rows.append(pd.DataFrame({"variant": v["name"], "step": fit["step"], "shell": lab,
                                      "cn": fit[f"cn_{lab}"], "cn_err": fit[f"cn_{lab}_err"],
                                      "fit_quality": fit["fit_quality"], "s02": vs02}))
    if not rows:
        raise ConfigError("no processing variant could be fitted")
    long = pd.concat(rows, ignore_index=True)
    return Systematics(table=_band(long, tested), by_variant=long, variants=variants,
                       settings={"variants": variants, "rbkg": rbkg, "bkg_kmin": bkg_kmin,
                                 "engine": engine, "foil_options": options,
                                 "spread": "cn_S_sys = (max - min) / 2 over the variants"})


def _renormalize(normalized, e0, kw):
    from ..xanes import normalize

    return normalize(normalized.series, e0=e0, **kw)


def _band(long: pd.DataFrame, shells) -> pd.DataFrame:
    steps = long["step"].drop_duplicates().sort_values().to_numpy()
    out = pd.DataFrame({"step": steps})
    for lab in shells:
        sub = long[long["shell"] == lab]
        wide = sub.pivot_table(index="step", columns="variant", values="cn", aggfunc="first")
        wide = wide.reindex(steps)
        base = sub[sub["variant"] == "base"].set_index("step").reindex(steps)
        lo, hi = wide.min(axis=1).to_numpy(), wide.max(axis=1).to_numpy()
        out[f"cn_{lab}"] = base["cn"].to_numpy()
        out[f"cn_{lab}_err"] = base["cn_err"].to_numpy()
        out[f"cn_{lab}_sys"] = (hi - lo) / 2
        out[f"cn_{lab}_sys_min"] = lo
        out[f"cn_{lab}_sys_max"] = hi
        out[f"cn_{lab}_sys_sd"] = wide.std(axis=1, ddof=1).to_numpy()
    return out


def foil_fits(foil, model: ShellModel, variants, *, shell: str | None = None,
                   cn: float = FoilOptions.cn, bkg_kmin: float = BackgroundOptions.kmin,
                   engine: str = BackgroundOptions.engine) -> dict:
    """Per variant, the foil calibrated in that variant's window: ``{name: {"s02",
    "s02_err", "values"}}`` (``values``: :class:`~operando.exafs.FoilValues` as a
    dict), for :func:`cn_systematics` ``foil_fits_by_variant``."""
    from .background import remove_background
    from .fit import calibrate_s02
    from .foil import FoilValues, shell_path

    shell = shell or next((s.label for s in model.shells if s.is_metal), None)
    if shell is None:
        raise ConfigError("no metal shell to calibrate the foil on; give foil_shell")
    e0_base = foil.settings["e0"]
    kw = dict(foil.settings.get("requested", {}), engine=foil.settings["engine"])
    out = {}
    for v in variants:
        norm = foil if v["e0"] == e0_base or v["e0"] in ("first", "each") else _renormalize(
            foil, v["e0"], kw)
        chi = remove_background(norm, rbkg=v["rbkg"], kweight=model.kweight, kmin=bkg_kmin,
                                engine=engine)
        window = replace(model, kmax=v["kmax"], rmin=v["rmin"], rmax=v["rmax"]).fit_window()
        cal = calibrate_s02(chi, shell=shell, cn=cn, step=int(chi.steps[0]),
                            **shell_path(model, shell), **window, engine=engine)
        out[v["name"]] = {"s02": float(cal.s02), "s02_err": float(cal.s02_err),
                          "values": FoilValues.of(cal).to_dict()}
    return out


def systematics_columns(normalized, spec: dict) -> pd.DataFrame:
    """``step`` and, per shell with a varied CN, ``cn_S_sys``, ``cn_S_sys_min``,
    ``cn_S_sys_max``: :func:`cn_systematics` with the settings a run resolved once
    (``spec``: ``shells``, ``window``, ``variants``, ``foil_fits_by_variant`` or ``s02`` /
    ``s02_err``, ``foil_options``, ``rbkg``, ``bkg_kmin``, ``engine``)."""
    model = ShellModel(shells=list(spec["shells"]), **spec["window"])
    sy = cn_systematics(normalized, model, s02=spec.get("s02"), s02_err=spec.get("s02_err"),
                        foil_fits_by_variant=spec.get("foil_fits_by_variant"), variants=spec["variants"],
                        foil_options=spec.get("foil_options"), rbkg=spec["rbkg"],
                        bkg_kmin=spec["bkg_kmin"], engine=spec["engine"])
    keep = ["step"] + [c for c in sy.table.columns
                       if c.endswith(("_sys", "_sys_min", "_sys_max"))]
    return sy.table[keep]
