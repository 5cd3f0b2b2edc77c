"""The thresholds of the state and event classification, validated once."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from .._util.validate import suggest
from ..errors import ConfigError


@dataclass(frozen=True)
class TrackSettings:
    """Thresholds of the state and event classification.

    Parameters
    ----------
    z_significance : float
        A quantity is *significant* when it exceeds this many standard errors
        (2 -> ~95 % two-sided for Gaussian errors).  Used for "CN(M-M)
        consistent with zero", for "ligand shell present" and for the CN
        change between segments that makes an event.  EXAFS CN errors from
        the fit covariance are honest to within a factor of ~1.5, so a
        one-sigma rule would flag noise and a three-sigma rule would miss
        real sub-nanometre clusters (CN 2-3 with errors ~0.8).
    z_high : float
        An event is ``high`` confidence when its CN change reaches this z
        (3 -> ~0.3 % false-alarm rate per comparison) *and* the XANES agrees.
    particle_cn : float
        Average CN(M-M) at or above which the metal is a (bulk-like) particle.
        For fcc metals (bulk 12) CN 10 corresponds to cuboctahedra of ~900
        atoms, ~3 nm for Pt: beyond this EXAFS can no longer resolve the size
        (CN saturates while the error stays ~0.5).
    bulk_cn : float
        First-shell CN of the bulk metal (12 for fcc: Pt, Pd, Cu, Au, Ag, Ni,
        Rh, Ir).
    min_ligand_cn : float
        A ligand shell (M-N, M-O) is *present* when its CN is at least this and
        significant.  A single-atom site carries 2-6 light neighbours (M-N4 in
        M-N-C catalysts, Pt-O4 on oxides); a fitted ligand CN below 1 is not a
        defined coordination, so an M-M-free step without it is ``unknown``
        rather than ``isolated``.
    min_cn_err : float
        Floor on every CN error (dimensionless).  Fits sometimes return
        unrealistically small errors; 0.1 is below any published EXAFS CN
        uncertainty, so it only guards against zero or tiny errors.
    wl_err : float
        Floor on the error of a segment's mean white-line height (normalised
        units).  Normalisation (post-edge line choice) reproduces the white
        line to ~1 % of the edge step.
    edge_err : float
        Floor on the error of a segment's mean edge position in eV:
        reference-foil calibration reproduces edges to ~0.1 eV.
    changepoint_min_steps : int
        Constant-condition segments with at least this many successful steps
        are searched for change points.  Shorter segments are repeats whose
        scatter is already in the segment error.
    changepoint_min_size : int
        Minimum number of steps on each side of a change point.
    changepoint_z : float
        Threshold of the standardised CUSUM statistic (mean difference over its
        error, the noise estimated robustly from the median absolute
        first-difference).  Under pure Gaussian noise the maximum of this
        statistic over 1,000 steps stays below ~3.5; 5 keeps false change
        points negligible while a CN step of 1 with per-step noise 0.5 over 50
        steps is still found (z ~ 10).
    potential_decimals : int
        Potentials are compared after rounding to this many decimals of a volt
        (4 -> 0.1 mV), so 0.1 and 0.10000001 are the same condition.
    rest_labels : tuple of str
        Text labels of a potential column that mean "back to rest" (open
        circuit).  Returning to one of them is compared with the first segment
        when no earlier segment carried that label.
    cluster_model : str
        ``"cuboctahedron"`` or ``"sphere"`` (see :func:`cluster_size_from_cn`).
    """

    z_significance: float = 2.0
    z_high: float = 3.0
    particle_cn: float = 10.0
    bulk_cn: float = 12.0
    min_ligand_cn: float = 1.0
    min_cn_err: float = 0.1
    wl_err: float = 0.01
    edge_err: float = 0.1
    changepoint_min_steps: int = 20
    changepoint_min_size: int = 5
    changepoint_z: float = 5.0
    potential_decimals: int = 4
    rest_labels: tuple = ("OCP",)
    cluster_model: str = "cuboctahedron"

    def __post_init__(self):
        positive = ("z_significance", "z_high", "particle_cn", "bulk_cn", "min_cn_err",
                    "wl_err", "edge_err", "changepoint_z")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"track setting '{name}' must be a positive number, got {value!r}")
        if self.min_ligand_cn < 0:
            raise ConfigError(f"track setting 'min_ligand_cn' must be >= 0, got {self.min_ligand_cn!r}")
        for name in ("changepoint_min_steps", "changepoint_min_size", "potential_decimals"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"track setting '{name}' must be a non-negative integer, got {value!r}")
        if self.changepoint_min_size < 1:
            raise ConfigError("track setting 'changepoint_min_size' must be at least 1")
        if self.particle_cn > self.bulk_cn:
            raise ConfigError(
                f"track setting 'particle_cn' ({self.particle_cn}) must not exceed 'bulk_cn' ({self.bulk_cn})")
        if self.z_high < self.z_significance:
            raise ConfigError(
                f"track setting 'z_high' ({self.z_high}) must be >= 'z_significance' ({self.z_significance})")
        labels = self.rest_labels
        if isinstance(labels, str):
            labels = (labels,)
        object.__setattr__(self, "rest_labels", tuple(str(x) for x in labels))
        if self.cluster_model not in ("cuboctahedron", "sphere"):
            raise ConfigError(
                f"track setting 'cluster_model' must be 'cuboctahedron' or 'sphere', got {self.cluster_model!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> "TrackSettings":
        """Settings from a ``[track]`` config section.

        Unknown keys raise :class:`~operando.errors.ConfigError` naming the key
        and the closest valid one.
        """
        config = dict(config or {})
        known = [f.name for f in fields(cls)]
        for key in config:
            if key not in known:
                raise ConfigError(
                    f"unknown [track] setting '{key}'{suggest(key, known)} (valid: {', '.join(known)})")
        return cls(**config)

    def to_dict(self) -> dict:
        """Every setting, JSON-serialisable (for settings.json)."""
        out = asdict(self)
        out["rest_labels"] = list(self.rest_labels)
        return out
