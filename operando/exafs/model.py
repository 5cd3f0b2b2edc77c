"""What a shell fit fits: :class:`ShellSpec`, :class:`ShellModel`, and the checks a
model must pass before any data is fitted (paths, information content)."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

import numpy as np

from .._util.larch_compat import FT_WINDOWS
from .._util.validate import check_choice, check_keys
from ..errors import ConfigError, DataError
from ..feffpaths import FeffPath, parse_label, path_for_shell

log = logging.getLogger(__name__)

FIT_SPACES = ("r", "k", "q")
#: The parameter kinds of every shell, in result-column order.
PAR_KINDS = ("cn", "r", "sigma2", "de0")


_SHELL_KEYS = ("label", "distance", "file", "edge", "cn", "cn_min", "cn_max", "sigma2",
               "absent_sigma2")


@dataclass(frozen=True)
class ShellSpec:
    """One shell of a :class:`ShellModel` (resolved; CN initial value and bounds)."""

    label: str
    distance: float | None = None
    file: str | None = None
    edge: str | None = None
    cn: float | None = None
    cn_min: float = 0.0
    cn_max: float = 16.0
    sigma2: float | None = None
    absent_sigma2: float | None = None

    @property
    def name(self) -> str:
        """Parameter-safe name: ``"Pt-Pt"`` -> ``"pt_pt"``."""
        return self.label.replace("-", "_").lower()

    @property
    def is_metal(self) -> bool:
        absorber, scatterer = parse_label(self.label)
        return absorber == scatterer


@dataclass(frozen=True)
class ShellModel:
    """What to fit: shells, k/R ranges and physical bounds.

    Parameters
    ----------
    shells : list of str or dict
        Shell labels (``"Pt-O"``) or dicts with ``label`` and optionally
        ``distance`` (Angstrom, model path distance), ``file`` (user
        ``feffNNNN.dat``), ``edge``, ``cn`` (initial CN), ``cn_min``,
        ``cn_max``, ``sigma2`` (initial, A^2), ``absent_sigma2`` (A^2).
    share_e0 : bool
        One dE0 for all shells (default) or one per shell.
    kmin, kmax, dk : float
        k window in 1/Angstrom.
    kweight : float
    window : str
        Larch k-window name.
    rmin, rmax : float
        Fit range in R (Angstrom).
    fit_space : {"r", "k", "q"}
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
    share_e0: bool = True
    kmin: float = 3.0
    kmax: float = 12.0
    kweight: float = 2
    dk: float = 1.0
    window: str = "hanning"
    # Above the usual rbkg (1.0): chi(R) below rbkg is shaped by the background spline,
    # and a window that starts there inflates short M-O/M-N shells (see the README).
    rmin: float = 1.2
    rmax: float = 3.2
    fit_space: str = "r"
    cn_max: float = 16.0
    de0_max: float = 10.0
    sigma2_min: float = 0.001
    sigma2_max: float = 0.03
    dr_max: float = 0.25
    absent_sigma2: float = 0.006
    absent_cn_min: float = -2.0

    def __post_init__(self):
        shells = self.shells
        if isinstance(shells, (str, Mapping)):
            shells = [shells]
        specs = []
        for item in shells:
            if isinstance(item, ShellSpec):
                specs.append(item)
                continue
            if isinstance(item, str):
                item = {"label": item}
            if not isinstance(item, Mapping):
                raise ConfigError(f"a shell must be a label such as 'Pt-O' or a dict, got {item!r}")
            for key in item:
                check_keys("shell", [key], _SHELL_KEYS)
            if "label" not in item:
                raise ConfigError(f"shell {dict(item)} needs a 'label' such as 'Pt-O'")
            parse_label(item["label"])
            spec = ShellSpec(**{k: item[k] for k in item if k != "cn_max"},
                             cn_max=float(item.get("cn_max", self.cn_max)))
            specs.append(spec)
        if not specs:
            raise ConfigError("a shell model needs at least one shell")
        labels = [s.label for s in specs]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"shell labels must be unique, got {labels}")
        object.__setattr__(self, "shells", tuple(specs))
        check_choice("window", self.window, FT_WINDOWS)
        check_choice("fit_space", self.fit_space, FIT_SPACES)
        if not 0 <= self.kmin < self.kmax:
            raise ConfigError(f"kmin {self.kmin} must be >= 0 and below kmax {self.kmax} (1/A)")
        if not 0 <= self.rmin < self.rmax:
            raise ConfigError(f"rmin {self.rmin} must be >= 0 and below rmax {self.rmax} (A)")
        if not 0 < self.sigma2_min < self.sigma2_max:
            raise ConfigError("need 0 < sigma2_min < sigma2_max (A^2)")
        if not self.absent_cn_min <= 0:
            raise ConfigError("absent_cn_min must be <= 0")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ShellModel":
        """Build from a config dict (e.g. the ``[exafs]`` section).

        Unknown keys raise :class:`ConfigError` naming the key and the closest
        valid one.
        """
        valid = [f.name for f in fields(cls)]
        for key in config:
            check_keys("shell model", [key], valid)
        return cls(**dict(config))

    @property
    def labels(self) -> list[str]:
        return [s.label for s in self.shells]

    def n_idp(self) -> float:
        """Nyquist number of independent points ``1 + 2 dR dk / pi``."""
        return 1 + 2 * (self.rmax - self.rmin) * (self.kmax - self.kmin) / np.pi

    def to_dict(self) -> dict:
        out = asdict(self)
        out["shells"] = [asdict(s) for s in self.shells]
        return out


def result_columns(model: ShellModel) -> list[str]:
    """The columns of :meth:`ShellFitResult.to_dataframe`, in order."""
    cols = ["step"]
    for label in model.labels:
        for kind in PAR_KINDS:
            cols += [f"{kind}_{label}", f"{kind}_{label}_err"]
    cols += ["s02", "s02_err", "r_factor", "redchi", "chi_square", "n_idp", "n_varys",
             "fit_ok", "fit_quality", "fit_message"]
    return cols


def resolve_paths(model: ShellModel) -> dict[str, FeffPath]:
    return {s.label: path_for_shell(s.label, distance=s.distance, edge=s.edge, file=s.file)
            for s in model.shells}


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
    """Independent points of the fit window, as xraylarch counts them:
    ``1 + 2 (kmax - kmin)(rmax - rmin) / pi``."""
    return 1.0 + 2.0 * (model.kmax - model.kmin) * (model.rmax - model.rmin) / math.pi


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
