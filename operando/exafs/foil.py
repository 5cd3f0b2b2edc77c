"""Disorder from the foil: :func:`apply_foil` fixes or bounds the
metal shell's sigma2 (and optionally dR) at the foil's, fitted in the sample's own
k/R window, optionally corrected for a temperature difference.

Why: with sigma2 free, CN and sigma2 of the metal shell trade off.  On real Cu foil
+ CuO mixtures (k 3-12, R 1-3) the free fit reads CN(Cu-Cu) up to 2 low in the
middle of the trend (sigma2 floats to ~0.005 A^2 while the foil's is 0.0085);
with sigma2 fixed at the foil's (same window, CN 12 fixed) the metal-rich steps
are right (12.08 at x = 1).  See the README's "Physics defaults, and why".

Temperature: the shipped FEFF paths come from a small cluster, so an absolute
correlated-Debye sigma2 from them is off (0.0078 A^2 at 295 K, theta_D 315 K, vs the
measured 0.0085); only the *difference* between the sample's and the foil's
temperature is taken from the model: ``sigma2(T_sample) = sigma2_foil +
model(T_sample) - model(T_foil)`` (``larch.xafs.sigma2_debye`` / ``sigma2_eins``
on the shell's path; larch is imported only then).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace

from .._util.validate import check_choice
from ..errors import ConfigError
from ..options import FoilOptions
from .model import ShellModel, resolve_paths
from .shells import Rule

log = logging.getLogger(__name__)

#: ``sigma2`` policies of :func:`apply_foil`.
SIGMA2_POLICIES = ("fix", "bound", "free")
#: ``deltar`` and ``de0`` policies of :func:`apply_foil`.
DELTAR_POLICIES = ("fix", "free")
DE0_POLICIES = ("fix", "free")
#: Disorder models for the temperature correction.
DISORDER_MODELS = ("debye", "einstein")


@dataclass(frozen=True)
class FoilValues:
    """What a foil fit gives the sample's metal shell (the fields of an
    :class:`~operando.exafs.S02Calibration` that :func:`apply_foil` reads), as plain
    numbers: a run records them and applies them again on resume.

    Attributes
    ----------
    shell : str
    sigma2, sigma2_err : float
        A^2 (NaN: unknown).
    deltar : float
        Angstrom (NaN: unknown).
    edge_energy : float
        The foil's E0 + dE0, eV (NaN: unknown).
    """

    shell: str
    sigma2: float = float("nan")
    sigma2_err: float = float("nan")
    deltar: float = float("nan")
    edge_energy: float = float("nan")

    @classmethod
    def of(cls, calibration) -> "FoilValues":
        return cls(shell=calibration.shell, sigma2=float(calibration.sigma2),
                   sigma2_err=float(calibration.sigma2_err), deltar=float(calibration.deltar),
                   edge_energy=float(calibration.edge_energy))

    def to_dict(self) -> dict:
        return asdict(self)


def shell_path(model: ShellModel, shell: str) -> dict:
    """The FEFF path of ``model``'s shell ``shell`` as :func:`~operando.exafs.calibrate_s02`
    keywords (``file``, ``distance``, ``edge``, ``geometry``; empty when the model has no
    such shell: the shipped default path).

    The foil must be fitted on the path of the shell it calibrates: S0^2, sigma2, dE0 and
    dR are properties of that path (its amplitude, phase and reff), and handing values
    fitted on the default path to a shell with its own ``file`` mixes two paths (on the
    real Cu foil, the shipped Cu-Cu path, reff 2.556 A, and xraylarch's feffcu01.dat,
    reff 2.548 A, give S0^2 0.85 vs 0.93 in the published window).
    """
    if shell not in model.labels:
        return {}
    spec = model.spec(shell)
    return {key: getattr(spec, key) for key in ("file", "distance", "edge", "geometry")
            if getattr(spec, key) is not None}


def apply_foil(model: ShellModel, calibration, *, shell: str | None = None,
                    sigma2: str = FoilOptions.sigma2, deltar: str = FoilOptions.deltar,
                    de0: str = FoilOptions.de0, sigma2_margin: float = FoilOptions.sigma2_margin,
                    temperature_K: float | None = None, sample_temperature_K: float | None = None,
                    debye_temperature_K: float | None = None,
                    disorder_model: str = FoilOptions.disorder_model) -> ShellModel:
    """``model`` with the reference shell's sigma2 / dR taken from a foil fit.

    Parameters
    ----------
    model : ShellModel
    calibration : S02Calibration or FoilValues
        :func:`operando.exafs.calibrate_s02` of the foil, fitted in the sample's own
        k and R window (its sigma2 depends on the window).  A value that is NaN (not
        known) leaves that parameter as it is.
    shell : str, optional
        The shell of ``model`` that takes the foil's values (default: the
        calibration's shell, e.g. ``"Cu-Cu"``).  A shell not in the model: no change.
    sigma2 : {"fix", "bound", "free"}
        ``"fix"`` (default): sigma2 fixed at the foil's; ``"bound"``: varied in
        [foil - its error, foil + ``sigma2_margin``]; ``"free"``: unchanged.  Applies
        when the shell's own sigma2 is free and unbounded; an explicit rule wins, and
        ``sigma2 = "foil"`` on the shell always takes the foil's value.  With
        "fix" or "bound", an absent shell is held at the foil's sigma2.
    deltar : {"fix", "free"}
        ``"fix"``: dR fixed at the foil's (the bulk distance); default free.
    de0 : {"fix", "free"}
        ``"fix"`` (default): the shell's dE0 is held at the foil's energy origin
        (:attr:`S02Calibration.edge_energy` minus each step's E0: the metal in the
        sample is the foil's metal), in a dE0 group of its own.  This needs the foil
        and the series on one energy scale (the pipeline calibrates both when
        ``[normalize] calibrate`` is on); on the Cu foil + CuO mixtures an error of
        3 eV in that origin moves CN(Cu-Cu) by at most 0.5.  ``"free"``: unchanged.
    sigma2_margin : float
        A^2, see ``sigma2``.
    temperature_K, sample_temperature_K : float, optional
        The foil's and the sample's temperature (K); when both are given and differ,
        sigma2 is shifted by ``model(T_sample) - model(T_foil)``.
    debye_temperature_K : float, optional
        Debye (or Einstein) temperature, K; needed for the correction (Cu 315 K,
        Pt 230 K, Au 165 K, Pd 274 K, Ni 375 K are the usual correlated-Debye values).
    disorder_model : {"debye", "einstein"}
        Correlated Debye (``larch.xafs.sigma2_debye``) or Einstein (``sigma2_eins``).

    Returns
    -------
    ShellModel
        A new model; the values used are in the shell's rules (recorded by the fit's
        ``settings["model"]``).
    """
    check_choice("sigma2", sigma2, SIGMA2_POLICIES)
    check_choice("deltar", deltar, DELTAR_POLICIES)
    check_choice("de0", de0, DE0_POLICIES)
    check_choice("disorder_model", disorder_model, DISORDER_MODELS)
    shell = shell or calibration.shell
    if shell not in model.labels:
        _check_no_foil_rules(model, shell)
        return model
    spec = model.spec(shell)
    known = {key: getattr(calibration, key) == getattr(calibration, key)   # not NaN
             for key in ("sigma2", "deltar", "edge_energy")}
    if not known["sigma2"]:
        sigma2 = "free"
    if not known["deltar"]:
        deltar = "free"
    if not known["edge_energy"]:
        de0 = "free"
    s2 = calibration.sigma2 + temperature_shift(
        model, shell, temperature_K, sample_temperature_K, debye_temperature_K, disorder_model)
    new = {}
    rule = spec.sigma2
    if rule.mode == "foil" and known["sigma2"]:
        new["sigma2"] = Rule(mode="fixed", value=s2)
    elif rule.mode == "free" and rule.lo is None and rule.hi is None and sigma2 != "free":
        if sigma2 == "fix":
            new["sigma2"] = Rule(mode="fixed", value=s2)
        else:
            err = calibration.sigma2_err if calibration.sigma2_err == calibration.sigma2_err else 0.0
            new["sigma2"] = Rule(lo=max(model.sigma2_min, s2 - err), hi=s2 + float(sigma2_margin))
    if sigma2 != "free" and spec.absent_sigma2 is None:
        new["absent_sigma2"] = s2
    rule = spec.deltar
    if (rule.mode == "foil" and known["deltar"]) or (deltar == "fix" and rule.mode == "free" and rule.lo is None
                                    and rule.hi is None):
        new["deltar"] = Rule(mode="fixed", value=calibration.deltar)
    rule = spec.de0
    if (rule.mode == "foil" and known["edge_energy"]) or (de0 == "fix" and rule.mode == "free" and rule.lo is None
                                    and rule.hi is None):
        new["de0"] = Rule(mode="edge", value=calibration.edge_energy)
        if len(model.e0_groups()[model.e0_group(shell)]) > 1:
            new["e0_group"] = shell      # its own dE0: the others keep theirs
    shells = [replace(s, **new) if s.label == shell else s for s in model.shells]
    out = replace(model, shells=shells)
    _check_no_foil_rules(out, shell)
    return out


def _check_no_foil_rules(model: ShellModel, shell: str) -> None:
    for spec in model.shells:
        for kind in ("sigma2", "deltar", "de0"):
            if spec.rule(kind).mode == "foil":
                raise ConfigError(f"shell {spec.label!r} {kind} = \"foil\": only the reference "
                                  f"shell ({shell!r}) takes the foil's values, and only those the "
                                  "foil fit gave")


def temperature_shift(model: ShellModel, shell: str, temperature_K, sample_temperature_K,
                      debye_temperature_K, disorder_model: str = FoilOptions.disorder_model) -> float:
    """``model(T_sample) - model(T_foil)`` in A^2 for the shell's path (0 when either
    temperature is not given or they are equal)."""
    if temperature_K is None or sample_temperature_K is None:
        return 0.0
    t_foil, t_sample = float(temperature_K), float(sample_temperature_K)
    if not (t_foil > 0 and t_sample > 0):
        raise ConfigError(f"temperatures must be > 0 K, got foil {t_foil}, sample {t_sample}")
    if t_foil == t_sample:
        return 0.0
    if debye_temperature_K is None or not float(debye_temperature_K) > 0:
        raise ConfigError("a temperature correction of sigma2 needs debye_temperature_K (> 0 K)")
    from larch.xafs import feffpath, sigma2_debye, sigma2_eins

    path = feffpath(str(resolve_paths(model)[shell].file))
    fn = sigma2_debye if disorder_model == "debye" else sigma2_eins
    theta = float(debye_temperature_K)
    shift = float(fn(t_sample, theta, path) - fn(t_foil, theta, path))
    log.info("sigma2 of %s shifted by %.5f A^2 (%s, theta %g K) from %g K to %g K", shell, shift,
             disorder_model, theta, t_foil, t_sample)
    return shift
