"""The options of each analysis stage: one frozen dataclass per stage, whose field
defaults are the only defaults of those settings.

The library functions take keyword arguments whose defaults are read from these
fields (``normalize(series, e0=NormalizeOptions.e0, ...)``); the configuration
sections take their defaults from them too, and a run hands each stage its options
object, which unpacks into that stage's keyword arguments (``normalize(series,
**options)``).  Each field's rule (:func:`operando._util.rules.setting`) says what it
accepts; an options object checks its fields on construction, and a configuration
section, built on its stage's options, is checked by the same rules.  Nothing here
imports an analysis stage, so reading a configuration stays cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from .._util.larch_compat import FT_WINDOWS
from .._util.rules import (Rejected, boolean, check_fields, choice, is_number, number, pair,
                           setting)
from .._util.validate import check_keys
from ..errors import ConfigError

ENGINES = choice("fast", "larch")


class Options:
    """What every options dataclass shares: its fields' rules are checked on construction,
    it unpacks into the keyword arguments of its stage's function (``keys`` and item
    access, as a mapping) and serialises to a dict."""

    def __post_init__(self):
        check_fields(self)

    def keys(self) -> list[str]:
        return [f.name for f in fields(self)]

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def replace(self, **changes: Any):
        """A copy with ``changes`` applied."""
        return replace(self, **changes)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None):
        """Options from a mapping (a config table); an unknown key raises
        :class:`~operando.errors.ConfigError` naming it and the closest valid one."""
        config = dict(config or {})
        check_keys(cls.__name__, config, [f.name for f in fields(cls)])
        return cls(**config)

    @classmethod
    def of(cls, source: Any):
        """This stage's options read from ``source``, an object holding (at least) the
        same fields: a configuration section is built on its stage's options."""
        return cls(**{f.name: getattr(source, f.name) for f in fields(cls)})

    def to_dict(self) -> dict:
        """Every field, tuples as lists (as in settings.json)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


_RELATIVE = "a number {} (eV relative to e0)"
_E0_POLICIES = ("median", "first", "each", "reference")


def _e0(v):
    if isinstance(v, str):
        return choice(*_E0_POLICIES)(v)
    return number(0, 2e5, low_open=True, accepted='"median", "first", "each", "reference" or a '
                                                  'number (eV) > 0 (<= 2e5)')(v)


@dataclass(frozen=True)
class NormalizeOptions(Options):
    """:func:`operando.xanes.normalize` (energies in eV relative to E0).

    ``e0``: ``"median"`` (the median of ``find_e0`` over the series, one E0 for every
    step), ``"first"``, ``"each"``, ``"reference"`` (from the reference channel) or a
    number in eV.  ``pre1``/``pre2``/``norm1``/``norm2``/``nnorm`` None: Larch's rules.
    ``min_edge_snr``: an edge step under this many times the point-to-point noise is
    no edge (the step is not ok).
    """

    e0: str | float = setting("median", _e0)
    pre1: float | None = setting(None, number(high=0, none=True, accepted=_RELATIVE.format("<= 0")))
    pre2: float | None = setting(None, number(high=0, none=True, accepted=_RELATIVE.format("<= 0")))
    norm1: float | None = setting(None, number(0, none=True, accepted=_RELATIVE.format(">= 0")))
    norm2: float | None = setting(None, number(0, low_open=True, none=True,
                                               accepted=_RELATIVE.format("> 0")))
    nnorm: int | None = setting(None, number(0, 3, integer=True, none=True))
    nvict: int = setting(0, number(0, 4, integer=True))
    engine: str = setting("fast", ENGINES)
    min_edge_snr: float = setting(10.0, number(0, 1e3))

    def __post_init__(self):
        super().__post_init__()
        for lo, hi in (("pre1", "pre2"), ("norm1", "norm2")):
            low, high = getattr(self, lo), getattr(self, hi)
            if low is not None and high is not None and not low < high:
                raise ConfigError(f"{lo} = {low!r}: must be < {hi} ({high:g})")


@dataclass(frozen=True)
class WhiteLineOptions(Options):
    """:func:`operando.xanes.white_line`: the white-line ``window`` (eV relative to E0)."""

    window: tuple[float, float] = setting((-10.0, 30.0), pair(
        "a pair [low, high] of numbers (eV relative to e0) with low < high"))


@dataclass(frozen=True)
class FTOptions(Options):
    """The k window of chi(R): the Fourier transform, the wavelet and the shell fits
    (k in 1/Angstrom; ``window`` a Larch window name)."""

    kmin: float = 3.0          # (checked with kmax: 0 <= kmin < kmax)
    kmax: float = setting(12.0, number(0, 25, low_open=True,
                                       accepted="a number > 0 and <= 25 (1/Angstrom)"))
    kweight: int = setting(2, number(0, 3, integer=True))
    dk: float = setting(1.0, number(0, 10))
    window: str = setting("hanning", choice(*FT_WINDOWS))

    def __post_init__(self):
        super().__post_init__()
        _check_start(self, "kmin", "kmax", "1/Angstrom")


def _check_start(options, lo: str, hi: str, unit: str) -> None:
    """The start ``lo`` of a window (kmin, rmin): a number from 0 to below its end ``hi``."""
    value, end = getattr(options, lo), getattr(options, hi)
    if not is_number(value) or not 0 <= value < end:
        raise ConfigError(f"{lo} = {value!r}: must be a number >= 0 and < {hi} ({end:g}) ({unit})")
    object.__setattr__(options, lo, float(value))


def _share_e0(v):
    if isinstance(v, (bool, str)) and v in (True, False, "phase"):
        return v
    raise Rejected('true (one dE0), false (one per shell) or "phase"')


@dataclass(frozen=True)
class FitOptions(FTOptions):
    """The shell fit's window and choices beyond the k window
    (:class:`operando.exafs.ShellModel`): R range in Angstrom, fit space, dE0 sharing and
    which shells get the significance tests."""

    # Above the usual rbkg (1.0): chi(R) below rbkg is shaped by the background spline,
    # and a window that starts there inflates short M-O/M-N shells (see the README).
    rmin: float = 1.2          # (checked with rmax: 0 <= rmin < rmax)
    rmax: float = setting(3.2, number(0, 15, low_open=True,
                                      accepted="a number > 0 and <= 15 (Angstrom)"))
    fit_space: str = setting("r", choice("r", "k", "q"))
    share_e0: bool | str = setting(True, _share_e0)
    significance: str = setting("metal", choice("metal", "all", "none"))

    def __post_init__(self):
        super().__post_init__()
        _check_start(self, "rmin", "rmax", "Angstrom")

    def fit_window(self) -> dict:
        """The k window (:class:`FTOptions`' fields), R range and fit space, as keyword
        arguments of :func:`operando.exafs.batch.batch_fit` and
        :func:`operando.exafs.calibrate_s02`."""
        names = [f.name for f in fields(FTOptions)] + ["rmin", "rmax", "fit_space"]
        return {name: getattr(self, name) for name in names}


@dataclass(frozen=True)
class BackgroundOptions(Options):
    """:func:`operando.exafs.remove_background` (Larch's AUTOBK).

    ``rbkg`` (Angstrom); ``kweight`` the fits'; ``kmin`` the start of the spline
    (``[exafs] bkg_kmin``; 0 is Larch's); ``kmax`` None: the data range; ``dk`` and
    ``window`` those of the transform AUTOBK minimises (Larch's autobk defaults, not the
    fits' k window); the end-point clamps.
    """

    rbkg: float = 1.0
    kweight: int = FTOptions.kweight
    kmin: float = 0.0
    kmax: float | None = None
    dk: float = 0.1
    window: str = "hanning"
    nclamp: int = 3
    clamp_lo: float = 0.0
    clamp_hi: float = 1.0
    engine: str = "fast"


def _sigma2(v):
    if isinstance(v, str) and v in ("fix", "bound", "free"):
        return v
    try:
        return number(0, 0.05, low_open=True, high_open=True)(v)
    except Rejected:
        raise Rejected('"fix", "bound", "free", or a value in A^2 (0 < sigma2 < 0.05)') from None


@dataclass(frozen=True)
class FoilOptions(Options):
    """The foil: its CN in the S0^2 calibration (:func:`operando.exafs.calibrate_s02`, 12
    for fcc/hcp metals) and what the sample's metal shell takes from its fit
    (:func:`operando.exafs.apply_foil`): sigma2 ``"fix"``/``"bound"``/``"free"`` (a bound
    reaches ``sigma2_margin`` A^2 above the foil's; a run also takes a value in A^2, which
    replaces the foil's), dR ``"free"``/``"fix"``, dE0
    ``"fix"``/``"free"``, and the disorder model of a temperature correction."""

    cn: float = setting(12.0, number(0, 24, low_open=True, accepted="a number > 0 and <= 24 "
                                     "(coordination number of the reference shell)"))
    sigma2: str | float = setting("fix", _sigma2)
    deltar: str = setting("free", choice("fix", "free"))
    de0: str = setting("fix", choice("fix", "free"))
    # Static disorder of small particles adds ~0.001-0.003 A^2 over the bulk foil's.
    sigma2_margin: float = setting(0.003, number(0, 0.05, low_open=True))
    disorder_model: str = setting("debye", choice("debye", "einstein"))


@dataclass(frozen=True)
class ComponentOptions(Options):
    """:func:`operando.components.lcf` (``erange`` and ``space`` also PCA's and MCR's):
    energy range in eV relative to E0, the spectrum used, closure, and energy shifts of
    the standards (up to ``max_shift`` eV)."""

    # Larix (larch/wxxas/config.py) uses -40..+100; -20..+80 keeps the edge and the first
    # resonances and drops the flat pre-edge, which adds points but no information about
    # the mixture.
    erange: tuple[float, float] = setting((-20.0, 80.0), pair(
        "[low, high] in eV from e0 (|value| < 10000), low < high"))
    space: str = setting("norm", choice("norm", "flat", "dnormde"))
    sum_to_one: bool = setting(True, boolean)
    shifts: bool = setting(False, boolean)
    max_shift: float = setting(3.0, number(0, 50, low_open=True))
