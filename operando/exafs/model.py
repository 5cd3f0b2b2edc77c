"""What a shell fit fits: :class:`ShellModel` (shells from :mod:`.shells`, window, bounds,
dE0 sharing, which shells are tested), and the checks a model must pass before any data
is fitted (ties, paths, information content)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Mapping

import numpy as np

from ..errors import ConfigError, DataError
from ..feffpaths import FeffPath, path_for_shell
from ..options import FitOptions
from ..schema import shell_columns
from .shells import KINDS, Rule, ShellSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShellModel(FitOptions):
    """What to fit: shells, the fit's options (:class:`~operando.options.FitOptions`: k/R
    window, fit space, dE0 sharing, which shells are tested) and physical bounds.

    Parameters
    ----------
    shells : list of str, dict or ShellSpec
        Shell labels (``"Pt-O"``) or tables with ``label`` and optionally
        ``distance``, ``file``, ``edge``, ``geometry`` (the FEFF path), ``cn``,
        ``deltar``, ``sigma2``, ``de0`` (each free, bounded, fixed, tied or from the
        reference: :mod:`operando.exafs.shells`), ``e0_group``, ``cn_start``,
        ``sigma2_start``, ``absent_sigma2``.  Labels may carry a tag for further
        shells of one pair (``"Cu-Cu_ox1"``).
    share_e0 : True, False or "phase"
        Shells without an ``e0_group`` share one dE0 (True, the default), have one
        each (False), or share one per phase (``"phase"``: the metal shell(s) one,
        every other shell another).
    kmin, kmax, dk, kweight, window, rmin, rmax, fit_space
        The k window (1/Angstrom, Larch window name) and the fit range in R (Angstrom)
        and space (``"r"``, ``"k"``, ``"q"``).
    significance : {"metal", "all", "none"}
        Which shells with a varied CN get the F-test and the detection limit
        (:mod:`operando.exafs.significance`): the metal shell(s) (default), every
        shell with a varied CN, or none.
    cn_max : float
        Upper CN bound (default 16, above any close-packed first shell).
    de0_max : float
        ``|dE0| <= de0_max`` eV.
    sigma2_min, sigma2_max : float
        sigma2 bounds in A^2.
    dr_max : float
        ``|dR| <= dr_max`` Angstrom.
    absent_sigma2 : float
        sigma2 (A^2) at which an absent shell is held while only its CN varies.
        0.006 A^2 is typical of room-temperature first shells (metal-ligand
        0.003-0.006, metal-metal in nanoparticles 0.005-0.008).
    absent_cn_min : float
        Lower CN bound in that refit; negative so the CN error bar of an absent
        shell is not truncated at 0.
    """

    shells: tuple = ("Pt-O", "Pt-Pt")
    cn_max: float = 16.0
    de0_max: float = 10.0
    sigma2_min: float = 0.001
    sigma2_max: float = 0.03
    dr_max: float = 0.25
    absent_sigma2: float = 0.006
    absent_cn_min: float = -2.0

    def __post_init__(self):
        super().__post_init__()            # the window's and choices' rules (FitOptions)
        shells = self.shells
        if isinstance(shells, (str, Mapping, ShellSpec)):
            shells = [shells]
        specs = [ShellSpec.from_value(item, cn_max=self.cn_max) for item in shells]
        if not specs:
            raise ConfigError("a shell model needs at least one shell")
        labels = [s.label for s in specs]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"shell labels must be unique, got {labels}")
        absorbers = {s.pair.split("-")[0] for s in specs}
        if len(absorbers) > 1:
            raise ConfigError(f"shells {labels} must all start with one absorber")
        object.__setattr__(self, "shells", tuple(specs))
        if not 0 < self.sigma2_min < self.sigma2_max:
            raise ConfigError("need 0 < sigma2_min < sigma2_max (A^2)")
        if not self.absent_cn_min <= 0:
            raise ConfigError("absent_cn_min must be <= 0")
        self._check_rules()

    def _check_rules(self):
        """Ties point at another shell that is not itself tied; de0 rules agree in a group."""
        labels = self.labels
        for spec in self.shells:
            for kind in KINDS:
                rule = spec.rule(kind)
                if rule.mode != "tied":
                    continue
                if rule.source not in labels:
                    raise ConfigError(f"shell {spec.label!r} {kind} is tied to {rule.source!r}, "
                                      f"which is not a shell of the model {labels}")
                if rule.source == spec.label:
                    raise ConfigError(f"shell {spec.label!r} {kind} is tied to itself")
                if self.spec(rule.source).rule(kind).mode == "tied":
                    raise ConfigError(f"shell {spec.label!r} {kind} is tied to {rule.source!r}, "
                                      f"whose {kind} is tied too; tie both to the same shell")
        groups: dict[str, Rule] = {}
        for spec in self.shells:
            group = self.e0_group(spec.label)
            if spec.de0.mode != "free" or spec.de0.lo is not None:
                if group in groups and groups[group] != spec.de0:
                    raise ConfigError(f"shells of e0_group {group!r} give different de0 rules")
                groups[group] = spec.de0

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.shells]

    def spec(self, label: str) -> ShellSpec:
        for s in self.shells:
            if s.label == label:
                return s
        raise ConfigError(f"no shell {label!r} in the model {self.labels}")

    def e0_group(self, label: str) -> str:
        """The dE0 group of a shell (``share_e0`` for shells without ``e0_group``)."""
        spec = self.spec(label)
        if spec.e0_group is not None:
            return spec.e0_group
        if self.share_e0 is True:
            return "all"
        if self.share_e0 == "phase":
            return "metal" if spec.is_metal else "ligand"
        return spec.label

    def e0_groups(self) -> dict[str, list[str]]:
        """Group name -> its shells, in shell order."""
        out: dict[str, list[str]] = {}
        for label in self.labels:
            out.setdefault(self.e0_group(label), []).append(label)
        return out

    def tested_shells(self) -> list[str]:
        """Shells that get the F-test and the detection limit (``significance``): only
        shells whose CN is varied (not fixed or tied)."""
        if self.significance == "none":
            return []
        return [s.label for s in self.shells if s.cn.mode == "free"
                and (self.significance == "all" or s.is_metal)]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["shells"] = [s.to_dict() for s in self.shells]
        return out


def result_columns(model: ShellModel) -> list[str]:
    """The columns of :meth:`ShellFitResult.to_dataframe`, in order (documented in
    :class:`~operando.exafs.ShellFitResult`): per shell ``cn, r, sigma2, de0`` with errors,
    per shell ``cn_S_err_s02``, per tested shell ``cn_S_limit, p_S, sig_S``, then the
    statistics."""
    return ["step"] + shell_columns(model.labels, model.tested_shells())


def resolve_paths(model: ShellModel) -> dict[str, FeffPath]:
    """The FEFF path of every shell (label -> :class:`~operando.feffpaths.FeffPath`)."""
    out = {}
    for s in model.shells:
        kw = {} if s.geometry is None or s.file is not None else {"geometry": s.geometry}
        out[s.label] = path_for_shell(s.pair, distance=s.distance, edge=s.edge, file=s.file, **kw)
    return out


def clip_kmax(model: ShellModel, k: np.ndarray) -> ShellModel:
    kend = float(k[-1])
    if model.kmax > kend + 1e-9:
        if model.kmin >= kend - 1.0:
            raise DataError(f"data end at k = {kend:.2f} 1/A, below kmin {model.kmin} + 1")
        log.warning("kmax %.2f beyond the data (k <= %.2f 1/A); using kmax = %.2f",
                    model.kmax, kend, kend)
        return replace(model, kmax=kend)
    return model


def n_independent(model: ShellModel) -> float:
    """Independent points of the fit window, as xraylarch counts them (the Nyquist
    number ``1 + 2 (rmax - rmin)(kmax - kmin) / pi``, in the order
    :mod:`operando.exafs.batch.evaluate` computes it)."""
    return 1 + 2 * (model.rmax - model.rmin) * (model.kmax - model.kmin) / np.pi


def check_information(model: ShellModel, n_varys: int) -> None:
    """Refuse a fit with no more independent points than parameters.

    Such a fit is underdetermined: it still "converges", but shells trade
    amplitude freely and the error bars mean nothing (k 3-4.5 with two shells
    returned CN(Cu-N) consistent with 0 for a Cu-N4 site).
    """
    n_idp = n_independent(model)
    if n_idp <= n_varys:  # a setting, not the data: ConfigError stops a run with one message
        labels = [s.label for s in model.shells]
        raise ConfigError(
            f"the fit window k {model.kmin:g}-{model.kmax:g} 1/A, R {model.rmin:g}-{model.rmax:g} A "
            f"holds {n_idp:.1f} independent points, not more than the {n_varys} parameters of "
            f"shells {labels}; widen kmax or rmax, or fit fewer shells")
