"""The options of each analysis stage: one frozen dataclass per stage, whose field
defaults are the only defaults of those settings.

The library functions take keyword arguments whose defaults are read from these
fields (``normalize(series, e0=NormalizeOptions.e0, ...)``); the configuration
sections take their defaults from them too, and a run hands each stage its options
object, which unpacks into that stage's keyword arguments (``normalize(series,
**options)``).  Nothing here imports numpy or an analysis stage, so reading a
configuration stays cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

from .._util.validate import check_keys


class Options:
    """What every options dataclass shares: it unpacks into the keyword arguments of its
    stage's function (``keys`` and item access, as a mapping) and serialises to a dict."""

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


@dataclass(frozen=True)
class NormalizeOptions(Options):
    """:func:`operando.xanes.normalize` (energies in eV relative to E0).

    ``e0``: ``"median"`` (the median of ``find_e0`` over the series, one E0 for every
    step), ``"first"``, ``"each"``, ``"reference"`` (from the reference channel) or a
    number in eV.  ``pre1``/``pre2``/``norm1``/``norm2``/``nnorm`` None: Larch's rules.
    ``min_edge_snr``: an edge step under this many times the point-to-point noise is
    no edge (the step is not ok).
    """

    e0: str | float = "median"
    pre1: float | None = None
    pre2: float | None = None
    norm1: float | None = None
    norm2: float | None = None
    nnorm: int | None = None
    nvict: int = 0
    engine: str = "fast"
    min_edge_snr: float = 10.0


@dataclass(frozen=True)
class WhiteLineOptions(Options):
    """:func:`operando.xanes.white_line`: the white-line ``window`` (eV relative to E0)."""

    window: tuple[float, float] = (-10.0, 30.0)


@dataclass(frozen=True)
class FTOptions(Options):
    """The k window of chi(R): the Fourier transform, the wavelet and the shell fits
    (k in 1/Angstrom; ``window`` a Larch window name)."""

    kmin: float = 3.0
    kmax: float = 12.0
    kweight: int = 2
    dk: float = 1.0
    window: str = "hanning"


@dataclass(frozen=True)
class FitOptions(FTOptions):
    """The shell fit's window and choices beyond the k window
    (:class:`operando.exafs.ShellModel`): R range in Angstrom, fit space, dE0 sharing and
    which shells get the significance tests."""

    # Above the usual rbkg (1.0): chi(R) below rbkg is shaped by the background spline,
    # and a window that starts there inflates short M-O/M-N shells (see the README).
    rmin: float = 1.2
    rmax: float = 3.2
    fit_space: str = "r"
    share_e0: bool | str = True
    significance: str = "metal"


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


@dataclass(frozen=True)
class FoilOptions(Options):
    """The foil: its CN in the S0^2 calibration (:func:`operando.exafs.calibrate_s02`, 12
    for fcc/hcp metals) and what the sample's metal shell takes from its fit
    (:func:`operando.exafs.apply_foil`): sigma2 ``"fix"``/``"bound"``/``"free"`` (a bound
    reaches ``sigma2_margin`` A^2 above the foil's; a run also takes a value in A^2, which
    replaces the foil's), dR ``"free"``/``"fix"``, dE0
    ``"fix"``/``"free"``, and the disorder model of a temperature correction."""

    cn: float = 12.0
    sigma2: str | float = "fix"
    deltar: str = "free"
    de0: str = "fix"
    # Static disorder of small particles adds ~0.001-0.003 A^2 over the bulk foil's.
    sigma2_margin: float = 0.003
    disorder_model: str = "debye"


@dataclass(frozen=True)
class ComponentOptions(Options):
    """:func:`operando.components.lcf` (``erange`` and ``space`` also PCA's and MCR's):
    energy range in eV relative to E0, the spectrum used, closure, and energy shifts of
    the standards (up to ``max_shift`` eV)."""

    # Larix (larch/wxxas/config.py) uses -40..+100; -20..+80 keeps the edge and the first
    # resonances and drops the flat pre-edge, which adds points but no information about
    # the mixture.
    erange: tuple[float, float] = (-20.0, 80.0)
    space: str = "norm"
    sum_to_one: bool = True
    shifts: bool = False
    max_shift: float = 3.0
