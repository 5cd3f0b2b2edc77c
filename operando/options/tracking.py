"""The thresholds of the state and event classification, validated once."""

from __future__ import annotations

from dataclasses import dataclass

from .._util.rules import Rejected, choice, number, setting, text
from ..errors import ConfigError
from .stages import Options

_POSITIVE = number(0, low_open=True, accepted="a positive number")


def _baseline(v):
    if not isinstance(v, str) or not v.strip():
        raise Rejected('"first" or a condition label')
    return v


def _labels(v):
    return tuple(str(x) for x in ((v,) if isinstance(v, str) else v))


@dataclass(frozen=True)
class TrackSettings(Options):
    """Thresholds of the tracker: when a change is an event, when metal is present.

    Every decision compares a combined z (the strongest evidence channel after a
    Bonferroni correction over the channels compared, see
    :func:`operando.tracking.evidence.combine`) with a threshold given as a
    two-sided Gaussian z.

    Parameters
    ----------
    z_event : float
        Two-sided z a condition change needs to be an event (3 -> p = 0.0027 per
        change, after the correction over channels).  A series has tens of
        condition changes; at 3 sigma a noise-only series of 30 changes shows a
        false event about once in 12 series, at 2 sigma nearly every time.
    family_alpha : float
        The chance of any false event in a whole series: with ``n`` comparisons
        (condition changes and trend tests) an event also needs a combined p below
        ``family_alpha / n``.  0.05: a 30-change series keeps ``z_event``'s 3 sigma, a
        360-change cycling series needs about 3.8 sigma, so a fluke of one channel
        in one of hundreds of changes is not an event.
    z_state : float
        Two-sided z that makes metal "present beyond the baseline state" (the
        same correction over the metal channels).  3 for the same reason: a
        false "cluster" is the error this tracker must not make.
    z_high : float
        An event is ``high`` confidence when its strongest channel reaches this z
        and a second, independent kind of evidence (EXAFS vs XANES) agrees.
    particle_cn : float
        Average CN(M-M) at or above which the metal is a bulk-like particle
        (fcc metals, bulk 12: CN 10 is a ~900-atom, ~3 nm cuboctahedron; beyond
        it EXAFS no longer resolves the size).
    bulk_cn : float
        First-shell CN of the bulk metal (12 for fcc).
    cn_floor, wl_floor, edge_floor, frac_floor : float
        Uncertainty of one step's CN, white-line height (edge-step units), edge
        position (eV) and component fraction when the series has no repeats to
        measure it (a condition with a single scan): CN 0.1 (below any published
        EXAFS CN error; a guard against zero errors), white line 0.01 (~1 % of the
        step: how well a post-edge normalisation reproduces), edge 0.1 eV (how well
        a reference-foil calibration reproduces), fraction 0.02 (linear-combination
        fits of repeat scans scatter 3-5 x their own error bars).  With repeats,
        the scatter of the repeats replaces them.
    min_metal_fraction : float
        A metallic fraction from a linear-combination fit counts as metal only from
        this value up (0.05: components below ~5 % are not reliably identified by
        XANES LCF; a reference that matches the sample imperfectly leaves a small,
        significant, spurious weight).
    min_trend_steps : int
        A segment of at least this many usable steps is tested for a trend in time
        (a change within a condition, e.g. a slow reduction in one gas or a time
        series without repeats); fewer cannot show one.
    outlier_z : float
        A step whose value lies more than this many repeat scatters from the
        median of its condition is an ``outlier`` (reported, kept).
    baseline : str
        The state the others are compared with: ``"first"`` (the first segment)
        or the label of a condition (as in the ``condition`` column).
    metal_fraction : str or None
        Column of the metallic fraction (e.g. ``"frac_cu_foil"``); ``None``: a
        ``frac_*`` column whose name says foil/metal/the element, if any.
    changepoint_min_steps, changepoint_min_size, changepoint_z
        Change points inside a constant condition: blocks of at least
        ``changepoint_min_steps`` usable steps are searched (binary segmentation of
        the standardised CUSUM; under Gaussian noise its maximum over 1,000 steps
        stays below ~3.5, so 5 keeps false change points negligible), with at
        least ``changepoint_min_size`` steps on each side.
    potential_decimals : int
        Potentials are compared after rounding to this many decimals of a volt.
    rest_labels : tuple of str
        Labels of a potential column meaning "back to rest" (open circuit): a
        return to one of them is compared with the baseline state.
    cluster_model : str
        ``"cuboctahedron"`` or ``"sphere"`` (:func:`cluster_size_from_cn`).
    """

    z_event: float = setting(3.0, _POSITIVE)
    family_alpha: float = setting(0.05, number(0, 1, low_open=True, high_open=True))
    z_state: float = setting(3.0, _POSITIVE)
    z_high: float = setting(5.0, _POSITIVE)
    particle_cn: float = setting(10.0, _POSITIVE)
    bulk_cn: float = setting(12.0, _POSITIVE)
    cn_floor: float = setting(0.1, _POSITIVE)
    wl_floor: float = setting(0.01, _POSITIVE)
    edge_floor: float = setting(0.1, _POSITIVE)
    frac_floor: float = setting(0.02, _POSITIVE)
    min_metal_fraction: float = setting(0.05, _POSITIVE)
    min_trend_steps: int = setting(4, number(0, integer=True))
    outlier_z: float = setting(5.0, _POSITIVE)
    baseline: str = setting("first", _baseline)
    metal_fraction: str | None = setting(None, text)
    changepoint_min_steps: int = setting(20, number(0, integer=True))
    changepoint_min_size: int = setting(5, number(1, integer=True))
    changepoint_z: float = setting(5.0, _POSITIVE)
    potential_decimals: int = setting(4, number(0, integer=True))
    rest_labels: tuple = setting(("OCP",), _labels)
    cluster_model: str = setting("cuboctahedron", choice("cuboctahedron", "sphere"))

    def __post_init__(self):
        super().__post_init__()
        if self.particle_cn > self.bulk_cn:
            raise ConfigError(f"particle_cn = {self.particle_cn!r}: must not exceed bulk_cn "
                              f"({self.bulk_cn:g})")
        if self.z_high < self.z_event:
            raise ConfigError(f"z_high = {self.z_high!r}: must be >= z_event ({self.z_event:g})")
