"""Deterministic simulated operando XAS series with truth tables.

The simulator makes transmission spectra that look like a beamline's: a
sloped pre-edge line, an arctangent edge with a white line whose height grows
with the number of O/N ligands, a gently decaying (Victoreen-like) post-edge,
and EXAFS oscillations computed by xraylarch from FEFF paths
(:mod:`operando.feffpaths`) for the shells of a truth table.  Every scan also
carries a metal-foil reference channel and a per-scan energy miscalibration,
so that calibration on the reference channel is exercised, plus Gaussian
noise.  Everything is seeded.

Spectrum model
--------------
For a scan of state *s* with energy miscalibration ``delta`` (eV) the recorded
absorption at the recorded energy ``E`` is the true spectrum at ``E - delta``
(a feature at true energy ``T`` appears at ``T + delta`` in the file, so a
calibration must *subtract* ``energy_shift``).  With ``x = E - delta - e0_s``::

    mu(E) = pre_offset + pre_slope * (E - delta - e0)
            + edge_step * mu0(x) * (1 + taper(k) * chi_s(k)),   k = sqrt(max(x, 0) * ETOK)
    mu0(x) = [0.5 + arctan(2 x / core_width) / pi + W_s * pV(x - wl_position)]
             * (e0 / (E - delta)) ** victoreen_power

``e0`` is the tabulated edge energy (xraydb).  ``e0_s`` (``e0_true`` in the
truth) is the arctangent centre and the origin of k: ``e0_metal + chemical
shift``, the shift being ``edge_shift_oxidised * min(N_ligand /
ligand_cn_max, 1)``, where ``e0_metal`` is set so that the noise-free foil's
maximum-derivative point lies exactly at ``e0`` (the white line pulls the
inflection above the arctangent centre: by 0.87 eV for Pt L3).  ``pV`` is a
peak-normalised pseudo-Voigt of FWHM ``wl_fwhm`` and Lorentzian fraction
``wl_eta``; its amplitude ``W_s = wl_base + wl_per_ligand * N_ligand``
(edge-step units) rises with the number of O/N neighbours.
``chi_s(k)`` is ``larch.xafs.ff2chi`` of the state's shells (degeneracy = CN,
``deltar = R - reff``, ``sigma2``, ``e0 = de0``, ``s02``), with ``k`` measured
from ``e0_s``.  ``taper`` is 0 below k = 1, 1 above k = 2 A^-1 (a sin^2 ramp),
because single-scattering chi is not a model of the near edge and would
otherwise distort the white line.  Noise is Gaussian in mu with standard
deviation ``noise * edge_step`` (``noise`` is 5e-4 for the Pt and 8e-4 for the
Cu series, the range of good transmission data), independent at every point.

Energy grid
-----------
:func:`energy_grid`: 10 eV steps from e0-200 to e0-40, 0.4 eV from e0-30 to
e0+39.6, then constant k steps of 0.05 A^-1 from k = 3.25 to 15 A^-1 (428
points for both named series).

Randomness
----------
``simulate_series(spec, seed=...)`` draws the noise from
``numpy.random.default_rng(seed)`` (one child generator each for the sample
and reference channels).  The "experiment" -- per-scan energy drift (an
AR(1) walk of stationary standard deviation ``drift_sd`` eV) and the
per-scan edge-step / pre-edge jitter -- is drawn from
``numpy.random.default_rng(spec.drift_seed)``, so it is part of the truth: two
noise seeds give different noise and the same truth table.

Named series
------------
:data:`PT_CO_OXIDATION` (:func:`pt_co_oxidation`) and :data:`CU_NC_POTENTIAL`
(:func:`cu_nc_potential`); :func:`write_samples` writes both to files
(``python -m operando.simulate sample_spectra``).
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import ConfigError
from .feffpaths import feff_path, parse_label
from .series import Series

log = logging.getLogger(__name__)

#: Seed used for the bundled ``sample_spectra`` (noise).  The drift is set by
#: each spec's ``drift_seed``.
SAMPLE_SEED = 20260

#: Allowed values of the ``state`` column.
STATES = ("isolated", "cluster", "particle")

#: eV -> k^2 (A^-2) factor, the value xraylarch uses (2 m_e / hbar^2).
ETOK = 0.26246842396479836

#: k range (A^-1) over which chi is switched on (sin^2 ramp).
CHI_TAPER = (1.0, 2.0)

#: k step (A^-1) of the table chi is computed on before cubic interpolation
#: (interpolation error < 1e-8 for first shells).
_CHI_TABLE_STEP = 0.01

#: Rows simulated at a time (bounds temporary memory; results do not depend on it).
_CHUNK = 2048


# ----------------------------------------------------------------- the spec
@dataclass(frozen=True)
class Shell:
    """One single-scattering shell of a truth table.

    Parameters
    ----------
    label : str
        ``"Absorber-Scatterer"``, e.g. ``"Pt-O"``.
    cn : float
        Coordination number (0 means the shell is absent).
    r : float
        Distance in Angstrom.
    sigma2 : float
        Mean-square relative displacement in A^2.
    de0 : float
        Energy-origin shift in eV, relative to the state's edge ``e0_true``.
    """

    label: str
    cn: float
    r: float = float("nan")
    sigma2: float = float("nan")
    de0: float = 0.0

    def __post_init__(self):
        parse_label(self.label)
        if not (np.isfinite(self.cn) and self.cn >= 0):
            raise ConfigError(f"shell {self.label}: cn must be >= 0, got {self.cn}")
        if self.cn > 0:
            if not (np.isfinite(self.r) and 1.0 <= self.r <= 5.0):
                raise ConfigError(f"shell {self.label}: r must be 1.0-5.0 A, got {self.r}")
            if not (np.isfinite(self.sigma2) and 0.0 <= self.sigma2 <= 0.05):
                raise ConfigError(f"shell {self.label}: sigma2 must be 0-0.05 A^2, got {self.sigma2}")
            if not (np.isfinite(self.de0) and abs(self.de0) <= 20):
                raise ConfigError(f"shell {self.label}: |de0| must be <= 20 eV, got {self.de0}")


@dataclass(frozen=True)
class Segment:
    """A block of repeated scans under one condition with one structural state.

    Parameters
    ----------
    conditions : dict
        Condition values, e.g. ``{"gas": "O2", "temperature_K": 673.0}`` or
        ``{"potential_V": 0.82}``; ``time_s`` is added by the simulator.
    shells : tuple of Shell
        The true shells (absent shells may be given with ``cn=0`` or left out).
    repeats : int
        Number of scans.
    state : str
        ``"isolated"``, ``"cluster"`` or ``"particle"``, by the definitions of
        :class:`operando.tracking.TrackSettings`: ``particle`` only for a
        near-bulk M-M coordination (CN >= 10, about 3 nm); CN 6-7 is a ~1 nm
        cluster.
    """

    conditions: Mapping[str, Any]
    shells: tuple[Shell, ...]
    repeats: int = 3
    state: str = "isolated"

    def __post_init__(self):
        object.__setattr__(self, "conditions", dict(self.conditions))
        object.__setattr__(self, "shells", tuple(
            s if isinstance(s, Shell) else Shell(**s) for s in self.shells))
        if int(self.repeats) < 1:
            raise ConfigError(f"segment {self.conditions}: repeats must be >= 1, got {self.repeats}")
        object.__setattr__(self, "repeats", int(self.repeats))
        if self.state not in STATES:
            raise ConfigError(f"segment {self.conditions}: state {self.state!r} is not one of {STATES}")

    def __hash__(self):
        return hash((tuple(sorted((str(k), str(v)) for k, v in self.conditions.items())),
                     self.shells, self.repeats, self.state))

    def shell(self, label: str) -> Shell | None:
        for s in self.shells:
            if s.label == label:
                return s
        return None


@dataclass(frozen=True)
class EdgeModel:
    """Shape of the near-edge part of the spectrum (all energies in eV).

    Parameters
    ----------
    core_width : float
        Width of the arctangent edge (the core-hole width, eV).
    wl_position : float
        White-line centre above the state's edge, eV.
    wl_fwhm : float
        White-line full width at half maximum, eV.
    wl_eta : float
        Lorentzian fraction of the pseudo-Voigt white line (0-1).
    wl_base, wl_per_ligand : float
        White-line amplitude (edge-step units) = ``wl_base + wl_per_ligand *
        N_ligand``.
    edge_shift_oxidised : float
        Edge shift (eV) of a fully ligated site (``N_ligand >= ligand_cn_max``).
    ligand_cn_max : float
        Ligand coordination number of the fully oxidised site.
    victoreen_power : float
        Post-edge decay ``(e0 / E) ** victoreen_power``.
    """

    core_width: float
    wl_position: float
    wl_fwhm: float
    wl_eta: float
    wl_base: float
    wl_per_ligand: float
    edge_shift_oxidised: float = 1.0
    ligand_cn_max: float = 4.0
    victoreen_power: float = 2.5


@dataclass(frozen=True)
class SeriesSpec:
    """Everything that defines a simulated series (the truth, not the noise).

    Parameters
    ----------
    name : str
        Series name (used for file names).
    element, edge : str
        Absorber and edge, e.g. ``"Pt"``, ``"L3"``.
    segments : tuple of Segment
        The condition blocks in time order.
    condition_columns : tuple of str
        Condition columns (``time_s`` is always appended).
    shell_labels : tuple of str
        Shells reported in the truth table, in column order.
    ligand_shells : tuple of str
        Shells whose CN counts as "ligands" for the white line and edge shift.
    s02 : float
        Amplitude reduction factor of sample and foil.
    edge_model : EdgeModel
    foil : Shell
        First shell of the bulk metal foil (CN 12).
    edge_step, pre_offset, pre_slope : float
        Sample edge step, pre-edge absorbance at e0 and its slope (1/eV).
    noise : float
        Gaussian noise standard deviation as a fraction of the edge step.
    reference_edge_step, reference_pre_offset, reference_pre_slope, reference_noise : float
        The same for the reference (foil) channel.
    step_jitter : float
        Relative per-scan standard deviation of edge step and pre-edge offset.
    drift_mean : float
        Mean energy miscalibration of the series (a monochromator offset), eV.
    drift_sd : float
        Stationary standard deviation (eV) of the per-scan energy miscalibration
        about ``drift_mean``.
    drift_corr : float
        Scan-to-scan correlation of the miscalibration (AR(1) coefficient).
    drift_seed : int
        Seed of the experiment draws (drift, jitter).
    scan_time_s, settle_time_s : float
        Duration of one scan and the wait before each new segment (s).
    file_pattern : str
        ``str.format`` pattern of the ``file`` column with field ``step``.
    foil_file : str
        File name of the standalone foil reference.
    e0 : float or None
        Tabulated edge energy in eV (None: xraydb).
    kmax : float
        Highest k of the energy grid, A^-1.
    description : str
    """

    name: str
    element: str
    edge: str
    segments: tuple[Segment, ...]
    condition_columns: tuple[str, ...]
    shell_labels: tuple[str, ...]
    ligand_shells: tuple[str, ...]
    s02: float
    edge_model: EdgeModel
    foil: Shell
    edge_step: float = 0.1
    pre_offset: float = 1.0
    pre_slope: float = -2.5e-4
    noise: float = 5e-4
    reference_edge_step: float = 1.2
    reference_pre_offset: float = 0.3
    reference_pre_slope: float = -8e-5
    reference_noise: float = 3e-4
    step_jitter: float = 0.005
    drift_mean: float = 0.0
    drift_sd: float = 0.25
    drift_corr: float = 0.9
    drift_seed: int = 1
    scan_time_s: float = 300.0
    settle_time_s: float = 1200.0
    file_pattern: str = "scan_{step:03d}.xdi"
    foil_file: str = "foil.xdi"
    e0: float | None = None
    kmax: float = 15.0
    description: str = ""

    def __post_init__(self):
        object.__setattr__(self, "segments", tuple(
            s if isinstance(s, Segment) else Segment(**s) for s in self.segments))
        for name in ("condition_columns", "shell_labels", "ligand_shells"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.edge_model, Mapping):
            object.__setattr__(self, "edge_model", EdgeModel(**self.edge_model))
        if isinstance(self.foil, Mapping):
            object.__setattr__(self, "foil", Shell(**self.foil))
        if not self.segments:
            raise ConfigError(f"series spec {self.name!r} has no segments")
        if not 0.1 <= self.s02 <= 1.5:
            raise ConfigError(f"s02 must be 0.1-1.5, got {self.s02}")
        for label in self.shell_labels:
            absorber, _ = parse_label(label)
            if absorber != self.element:
                raise ConfigError(f"shell {label} does not start with the absorber {self.element}")
        for i, segment in enumerate(self.segments):
            unknown = [s.label for s in segment.shells if s.label not in self.shell_labels]
            if unknown:
                raise ConfigError(f"segment {i}: shells {unknown} not in shell_labels {self.shell_labels}")
            missing = [c for c in self.condition_columns if c not in segment.conditions]
            if missing:
                raise ConfigError(f"segment {i}: conditions lack {missing}")
        if self.kmax < 12:
            raise ConfigError(f"kmax must be >= 12 A^-1, got {self.kmax}")
        if not (0 <= self.noise < 0.1 and 0 <= self.reference_noise < 0.1):
            raise ConfigError("noise levels are fractions of the edge step and must be 0-0.1")
        if not 0 <= self.drift_corr < 1:
            raise ConfigError(f"drift_corr must be in [0, 1), got {self.drift_corr}")

    # -------------------------------------------------------------- helpers
    @property
    def n_steps(self) -> int:
        """Total number of scans."""
        return sum(s.repeats for s in self.segments)

    @property
    def e0_tabulated(self) -> float:
        """Tabulated edge energy (eV) used for the grid and as the foil edge."""
        if self.e0 is not None:
            return float(self.e0)
        return _tabulated_e0(self.element, self.edge)

    def scaled(self, n_steps: int) -> "SeriesSpec":
        """The same series with the repeats rescaled to ``n_steps`` scans in total.

        Each segment keeps its share of the scans (at least one each); used to
        make large benchmark series, e.g. ``PT_CO_OXIDATION.scaled(100_000)``.
        """
        n_steps = int(n_steps)
        if n_steps < len(self.segments):
            raise ConfigError(f"need at least {len(self.segments)} steps (one per segment), got {n_steps}")
        weights = np.array([s.repeats for s in self.segments], dtype=float)
        raw = weights / weights.sum() * n_steps
        counts = np.maximum(np.floor(raw).astype(int), 1)
        order = np.argsort(-(raw - np.floor(raw)), kind="stable")
        i = 0
        while counts.sum() < n_steps:
            counts[order[i % counts.size]] += 1
            i += 1
        while counts.sum() > n_steps:
            j = int(np.argmax(counts))
            counts[j] -= 1
        segments = tuple(replace(s, repeats=int(c)) for s, c in zip(self.segments, counts))
        return replace(self, segments=segments)

    def to_dict(self) -> dict:
        """A plain (JSON-able) dict; :meth:`from_dict` inverts it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SeriesSpec":
        """Build a spec from a dict such as :meth:`to_dict` returns.

        Segments may give ``shells`` as a list of dicts or as a dict
        ``{"Pt-O": {"cn": 4, "r": 2.01, "sigma2": 0.0035, "de0": 1.0}}``.
        """
        data = dict(data)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown series spec keys {unknown}; accepted: {sorted(known)}")
        segments = []
        for seg in data.get("segments", ()):
            if isinstance(seg, Segment):
                segments.append(seg)
                continue
            seg = dict(seg)
            shells = seg.get("shells", ())
            if isinstance(shells, Mapping):
                shells = [dict(label=k, **v) for k, v in shells.items()]
            seg["shells"] = tuple(s if isinstance(s, Shell) else Shell(**s) for s in shells)
            segments.append(Segment(**seg))
        data["segments"] = tuple(segments)
        return cls(**data)


@lru_cache(maxsize=None)
def _tabulated_e0(element: str, edge: str) -> float:
    from ._util.elements import edge_energy

    return edge_energy(element, edge)


# ------------------------------------------------------------- named specs
def pt_co_oxidation() -> SeriesSpec:
    """0.3 wt% Pt/gamma-Al2O3 at the Pt L3 edge during CO oxidation.

    O2 calcination (isolated Pt-O4) -> CO+O2 (Pt-O 2, Pt-Pt 4 clusters) ->
    H2 reduction (Pt-Pt 6.5: larger clusters of ~1 nm, Pt-O 0.5) -> CO+O2 again (partial
    redispersion: Pt-Pt 2.5, Pt-O 2.5); 4 scans per condition.
    """
    def pt(cn_o, r_o, s2_o, cn_pt, r_pt, s2_pt, de0=1.0):
        return (Shell("Pt-O", cn_o, r_o if cn_o else np.nan, s2_o if cn_o else np.nan,
                      de0 if cn_o else np.nan),
                Shell("Pt-Pt", cn_pt, r_pt if cn_pt else np.nan, s2_pt if cn_pt else np.nan,
                      de0 if cn_pt else np.nan))

    segments = (
        Segment({"gas": "O2", "temperature_K": 673.0}, pt(4.0, 2.010, 0.0035, 0.0, 0, 0),
                repeats=4, state="isolated"),
        Segment({"gas": "CO+O2", "temperature_K": 473.0}, pt(2.0, 2.015, 0.0036, 4.0, 2.745, 0.0062),
                repeats=4, state="cluster"),
        Segment({"gas": "H2", "temperature_K": 573.0}, pt(0.5, 2.020, 0.0040, 6.5, 2.758, 0.0068),
                repeats=4, state="cluster"),
        Segment({"gas": "CO+O2", "temperature_K": 473.0}, pt(2.5, 2.012, 0.0036, 2.5, 2.740, 0.0064),
                repeats=4, state="cluster"),
    )
    return SeriesSpec(
        name="pt_co_oxidation", element="Pt", edge="L3", segments=segments,
        condition_columns=("gas", "temperature_K"), shell_labels=("Pt-O", "Pt-Pt"),
        ligand_shells=("Pt-O",), s02=0.85,
        edge_model=EdgeModel(core_width=5.3, wl_position=3.0, wl_fwhm=5.0, wl_eta=0.6,
                             wl_base=0.55, wl_per_ligand=0.20, edge_shift_oxidised=1.0,
                             ligand_cn_max=4.0, victoreen_power=2.5),
        foil=Shell("Pt-Pt", 12.0, 2.775, 0.0049, 0.5),
        edge_step=0.08, pre_offset=1.6, pre_slope=-4.2e-4, noise=5e-4,
        reference_edge_step=1.2, reference_pre_offset=0.35, reference_pre_slope=-9e-5,
        reference_noise=3e-4, drift_mean=0.3, drift_sd=0.2, drift_corr=0.8, drift_seed=1101,
        scan_time_s=300.0, settle_time_s=1800.0,
        file_pattern="pt_co_oxidation_{step:03d}.xdi", foil_file="pt_foil.xdi",
        description="0.3 wt% Pt/gamma-Al2O3, Pt L3, CO oxidation cycle (simulated)",
    )


def _iso_time(seconds: float, start: str = "2026-03-01T08:00:00") -> str:
    """XDI ``Scan.start_time`` (ISO 8601) of a scan started ``seconds`` after ``start``."""
    from datetime import datetime, timedelta

    return (datetime.fromisoformat(start) + timedelta(seconds=float(seconds))).isoformat()


def cu_nc_potential() -> SeriesSpec:
    """Cu-N-C single-atom catalyst at the Cu K edge under potential control.

    0.82, 0.50, 0.10 V vs RHE (isolated Cu-N4 -> Cu-N3 -> Cu-N2), then
    -0.2 ... -1.0 V (Cu-Cu grows 1.5 -> 7 while Cu-N falls 1.6 -> 0.5), then
    open circuit ("OCP": Cu-N 4 again); 3 scans per condition.
    """
    def cu(cn_n, cn_cu, r_cu=2.545, s2_cu=0.0088, r_n=1.950, s2_n=0.0045, de0=0.5):
        return (Shell("Cu-N", cn_n, r_n if cn_n else np.nan, s2_n if cn_n else np.nan,
                      de0 if cn_n else np.nan),
                Shell("Cu-Cu", cn_cu, r_cu if cn_cu else np.nan, s2_cu if cn_cu else np.nan,
                      de0 if cn_cu else np.nan))

    table = [  # potential, Cu-N, Cu-Cu, R(Cu-Cu), sigma2(Cu-Cu), R(Cu-N), state
        (0.82, 4.0, 0.0, 0, 0, 1.950, "isolated"),
        (0.50, 3.0, 0.0, 0, 0, 1.952, "isolated"),
        (0.10, 2.0, 0.0, 0, 0, 1.955, "isolated"),
        (-0.2, 1.6, 1.5, 2.530, 0.0095, 1.958, "cluster"),
        (-0.4, 1.2, 3.0, 2.535, 0.0092, 1.960, "cluster"),
        (-0.6, 0.9, 4.5, 2.540, 0.0090, 1.960, "cluster"),
        (-0.8, 0.6, 6.0, 2.545, 0.0088, 1.960, "cluster"),
        (-1.0, 0.5, 7.0, 2.550, 0.0087, 1.960, "cluster"),
        ("OCP", 4.0, 0.0, 0, 0, 1.950, "isolated"),
    ]
    segments = tuple(
        Segment({"potential_V": pot}, cu(n, c, r_cu=rc, s2_cu=s2c, r_n=rn), repeats=3, state=state)
        for pot, n, c, rc, s2c, rn, state in table
    )
    return SeriesSpec(
        name="cu_nc_potential", element="Cu", edge="K", segments=segments,
        condition_columns=("potential_V",), shell_labels=("Cu-N", "Cu-Cu"),
        ligand_shells=("Cu-N",), s02=0.90,
        edge_model=EdgeModel(core_width=2.5, wl_position=6.0, wl_fwhm=8.0, wl_eta=0.5,
                             wl_base=0.05, wl_per_ligand=0.09, edge_shift_oxidised=1.5,
                             ligand_cn_max=4.0, victoreen_power=2.5),
        foil=Shell("Cu-Cu", 12.0, 2.556, 0.0087, 0.5),
        edge_step=0.12, pre_offset=0.8, pre_slope=-2.7e-4, noise=8e-4,
        reference_edge_step=1.5, reference_pre_offset=0.3, reference_pre_slope=-1e-4,
        reference_noise=3e-4, drift_mean=-0.25, drift_sd=0.2, drift_corr=0.8, drift_seed=2202,
        scan_time_s=240.0, settle_time_s=600.0,
        file_pattern="cu_nc_potential.dat#mu_{step:03d}", foil_file="cu_foil.xdi",
        description="Cu-N-C single-atom catalyst, Cu K, potential steps vs RHE (simulated)",
    )


#: The named Pt L3 CO-oxidation series (16 scans).
PT_CO_OXIDATION = pt_co_oxidation()
#: The named Cu K potential series (27 scans).
CU_NC_POTENTIAL = cu_nc_potential()


# ------------------------------------------------------------ energy grid
def energy_grid(e0: float, *, pre_start: float = -200.0, pre_stop: float = -30.0,
                pre_step: float = 10.0, xanes_stop: float = 40.0, xanes_step: float = 0.4,
                kstep: float = 0.05, kmax: float = 15.0) -> np.ndarray:
    """A beamline-like step-scan energy grid.

    Parameters
    ----------
    e0 : float
        Edge energy, eV.
    pre_start, pre_stop, pre_step : float
        Pre-edge region relative to e0 (eV): ``pre_start`` up to but not
        including ``pre_stop``, in ``pre_step`` steps.
    xanes_stop, xanes_step : float
        Edge region from ``pre_stop`` up to but not including ``xanes_stop``
        (eV above e0) in ``xanes_step`` steps.
    kstep, kmax : float
        EXAFS region in constant k steps (A^-1), from the first multiple of
        ``kstep`` at or above ``xanes_stop`` up to ``kmax`` inclusive.

    Returns
    -------
    (n,) array
        Strictly increasing energies in eV.
    """
    n_pre = int(round((pre_stop - pre_start) / pre_step))
    pre = pre_start + pre_step * np.arange(n_pre)
    n_xanes = int(round((xanes_stop - pre_stop) / xanes_step))
    xanes = pre_stop + xanes_step * np.arange(n_xanes)
    i_first = int(math.ceil(math.sqrt(xanes_stop * ETOK) / kstep - 1e-9))
    i_last = int(math.floor(kmax / kstep + 1e-9))
    k = kstep * np.arange(i_first, i_last + 1)
    return e0 + np.concatenate([pre, xanes, k * k / ETOK])


def _grid(spec: SeriesSpec) -> np.ndarray:
    return energy_grid(spec.e0_tabulated, kmax=spec.kmax)


# ------------------------------------------------------------------- chi
def shell_chi(shells: Iterable[Shell], k: np.ndarray, *, s02: float, edge: str | None = None) -> np.ndarray:
    """chi(k) of a set of shells, computed by ``larch.xafs.ff2chi``.

    Parameters
    ----------
    shells : iterable of Shell
        Shells with ``cn > 0`` contribute; each uses the shipped/cached FEFF
        path of its pair (``operando.feffpaths.feff_path``) with degeneracy
        ``cn``, ``deltar = r - reff``, ``sigma2``, ``e0 = de0`` and ``s02``.
    k : array
        Photo-electron wavenumbers, A^-1 (any increasing values).
    s02 : float
        Amplitude reduction factor.
    edge : str, optional
        Absorber edge; default ``operando.feffpaths.default_edge``.

    Returns
    -------
    array
        chi at ``k`` (dimensionless).
    """
    from larch.xafs import feffpath, ff2chi

    k = np.asarray(k, dtype=float)
    paths = []
    for shell in shells:
        if shell.cn <= 0:
            continue
        absorber, scatterer = parse_label(shell.label)
        fp = feff_path(absorber, scatterer, edge=edge)
        paths.append(feffpath(str(fp.file), label=shell.label.replace("-", "_"), degen=float(shell.cn),
                              s02=float(s02), e0=float(shell.de0), deltar=float(shell.r - fp.reff),
                              sigma2=float(shell.sigma2)))
    if not paths:
        return np.zeros_like(k)
    # ff2chi replaces its first point by a linear extrapolation: give it a dummy one.
    kk = np.concatenate([[k[0] - 0.01 if k.size else 0.0], k])
    return np.asarray(ff2chi(paths, k=kk).chi[1:], dtype=float)


def chi_taper(k: np.ndarray) -> np.ndarray:
    """The sin^2 ramp (0 below ``CHI_TAPER[0]``, 1 above ``CHI_TAPER[1]`` A^-1)."""
    lo, hi = CHI_TAPER
    t = np.clip((np.asarray(k, dtype=float) - lo) / (hi - lo), 0.0, 1.0)
    return np.sin(0.5 * np.pi * t) ** 2


class _State:
    """Per-state (segment or foil) constants: edge position, white line, chi table."""

    def __init__(self, spec: SeriesSpec, shells: Sequence[Shell], kmax: float):
        from scipy.interpolate import CubicSpline

        model = spec.edge_model
        n_lig = sum(s.cn for s in shells if s.label in spec.ligand_shells)
        oxidation = min(n_lig / model.ligand_cn_max, 1.0) if model.ligand_cn_max > 0 else 0.0
        self.chem_shift = model.edge_shift_oxidised * oxidation
        # provisional; _states() puts the unligated edge where the foil's inflection
        # point lands on the tabulated energy
        self.e0 = spec.e0_tabulated + self.chem_shift
        self.wl_amplitude = model.wl_base + model.wl_per_ligand * n_lig
        self.shells = tuple(shells)
        k_table = _CHI_TABLE_STEP * np.arange(int(math.ceil((kmax + 1.0) / _CHI_TABLE_STEP)) + 1)
        chi = shell_chi(shells, k_table, s02=spec.s02, edge=spec.edge)
        self.has_chi = bool(np.any(chi))
        self.k_table = k_table
        # cubic-spline coefficients, highest power first: evaluated by direct
        # indexing on the uniform table (much faster than a searchsorted lookup)
        self.coefs = CubicSpline(k_table, chi).c if self.has_chi else None

    def chi(self, k: np.ndarray) -> np.ndarray:
        """Untapered chi at k (A^-1), from the spline of the ff2chi table."""
        if not self.has_chi:
            return np.zeros_like(k)
        n = self.k_table.size
        i = np.clip((k * (1.0 / _CHI_TABLE_STEP)).astype(np.intp), 0, n - 2)
        t = np.minimum(k, self.k_table[-1]) - self.k_table[i]
        c = self.coefs
        return c[3, i] + t * (c[2, i] + t * (c[1, i] + t * c[0, i]))


def _k_of(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(x, 0.0) * ETOK)


#: |2 x / core_width| beyond which arctan is evaluated by its asymptotic series
#: (truncation error < 1e-16).
_ATAN_SERIES = 50.0


def _columns(xlo: np.ndarray, xhi: np.ndarray, lo: float, hi: float) -> slice:
    """Contiguous columns whose x range [xlo, xhi] meets [lo, hi] (x increases with column)."""
    idx = np.flatnonzero((xhi >= lo) & (xlo <= hi))
    return slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0)


def _parts(spec: SeriesSpec, energy: np.ndarray, states: Sequence[_State], state_idx: np.ndarray,
           shift: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free model parts for m rows on the recorded energies (n,).

    Returns ``mu0`` (edge + white line + post-edge decay, edge-step units),
    ``chi`` as applied (tapered) and ``chi_raw`` (untapered; 0 below e0), each (m, n).
    The expensive functions are evaluated only on the columns where they
    matter; elsewhere exact series are used (differences < 1e-15).
    """
    model = spec.edge_model
    e0_rows = np.array([states[i].e0 for i in state_idx])
    wl_rows = np.array([states[i].wl_amplitude for i in state_idx])
    x = energy[None, :] - (shift + e0_rows)[:, None]
    xlo = energy - np.max(shift + e0_rows)
    xhi = energy - np.min(shift + e0_rows)
    n = energy.size

    # arctangent edge: exact near the edge, asymptotic series far from it
    scale = 2.0 / model.core_width
    y = x * scale
    edge = np.empty_like(x)
    near = _columns(xlo, xhi, -_ATAN_SERIES / scale, _ATAN_SERIES / scale)
    edge[:, near] = 0.5 + np.arctan(y[:, near]) / np.pi
    for far in (slice(0, near.start), slice(near.stop, n)) if near.stop > near.start else (slice(0, n),):
        if far.stop > far.start:
            yy = y[:, far]
            inv = 1.0 / yy
            inv2 = inv * inv
            atan = np.sign(yy) * (0.5 * np.pi) - inv * (1.0 - inv2 * (1.0 / 3 - inv2 * (0.2 - inv2 / 7.0)))
            edge[:, far] = 0.5 + atan / np.pi

    # pseudo-Voigt white line: the Gaussian is below 1e-30 beyond 6 FWHM
    u = (x - model.wl_position) * (2.0 / model.wl_fwhm)
    peak = model.wl_eta / (1.0 + u * u)
    wl_cols = _columns(xlo, xhi, model.wl_position - 6 * model.wl_fwhm, model.wl_position + 6 * model.wl_fwhm)
    peak[:, wl_cols] += (1.0 - model.wl_eta) * np.exp(-math.log(2.0) * u[:, wl_cols] ** 2)
    mu0 = edge + wl_rows[:, None] * peak

    # Victoreen-like decay (e0 / (E - shift))^p = (e0 / E)^p (1 - shift / E)^-p
    p = model.victoreen_power
    base = np.exp(-p * np.log(energy / spec.e0_tabulated))
    ratio = shift[:, None] / energy[None, :]
    if np.max(np.abs(shift)) / energy[0] < 1e-3:
        c1, c2 = p, p * (p + 1) / 2
        c3, c4 = c2 * (p + 2) / 3, c2 * (p + 2) * (p + 3) / 12
        decay = 1.0 + ratio * (c1 + ratio * (c2 + ratio * (c3 + ratio * c4)))
    else:
        decay = np.exp(-p * np.log1p(-ratio))
    mu0 *= base[None, :] * decay

    # chi: above the edge only, switched on over CHI_TAPER
    chi_raw = np.zeros_like(x)
    above = _columns(xlo, xhi, 1e-12, np.inf)
    if above.stop > above.start:
        k = _k_of(x[:, above])
        for s in np.unique(state_idx):
            if states[s].has_chi:
                rows = state_idx == s
                chi_raw[rows, above] = states[s].chi(k[rows])
    chi = chi_raw.copy()
    lo, hi = CHI_TAPER
    below = _columns(xlo, xhi, -np.inf, lo * lo / ETOK)
    ramp = _columns(xlo, xhi, lo * lo / ETOK, hi * hi / ETOK)
    chi[:, below] = 0.0
    if ramp.stop > ramp.start:
        chi[:, ramp] = chi_raw[:, ramp] * chi_taper(_k_of(x[:, ramp]))
    return mu0, chi, chi_raw


def _model_rows(spec, energy, states, state_idx, shift, step, offset, slope):
    """Noise-free mu for rows (each row: a state index, shift, edge step, pre-edge)."""
    mu0, chi, _ = _parts(spec, energy, states, state_idx, shift)
    pre = offset[:, None] + slope * (energy[None, :] - shift[:, None] - spec.e0_tabulated)
    return pre + step[:, None] * mu0 * (1.0 + chi)


# ------------------------------------------------------------ simulation
def _experiment(spec: SeriesSpec, n: int):
    """Per-scan drift (eV), edge-step and pre-edge-offset factors from ``drift_seed``."""
    rng = np.random.default_rng(spec.drift_seed)
    eps = rng.standard_normal(n)
    # AR(1) about drift_mean: s_0 ~ N(0, sd^2), s_i = phi s_(i-1) + sd sqrt(1 - phi^2) eps_i.
    phi = spec.drift_corr
    shift = np.zeros(n)
    if n:
        from scipy.signal import lfilter

        shift[0] = spec.drift_sd * eps[0]
        innovation = spec.drift_sd * math.sqrt(1.0 - phi * phi)
        shift[1:] = lfilter([innovation], [1.0, -phi], eps[1:], zi=[phi * shift[0]])[0]
        shift += spec.drift_mean
    jitter = rng.standard_normal((2, n)) * spec.step_jitter
    return shift, 1.0 + jitter[0], 1.0 + jitter[1]


def _times(spec: SeriesSpec) -> np.ndarray:
    times, t = [], 0.0
    for i, segment in enumerate(spec.segments):
        if i:
            t += spec.settle_time_s
        for _ in range(segment.repeats):
            times.append(t)
            t += spec.scan_time_s
    return np.array(times)


def _states(spec: SeriesSpec) -> tuple[list[_State], _State]:
    kmax = spec.kmax + 1.0
    key = (spec.name, spec.element, spec.edge, spec.s02, spec.edge_model, spec.foil,
           spec.ligand_shells, spec.e0, kmax, spec.reference_edge_step,
           spec.reference_pre_offset, spec.reference_pre_slope)
    states = [_cached_state(key, spec, seg.shells) for seg in spec.segments]
    foil = _cached_state(key, spec, (spec.foil,))
    base = _edge_origin(key, spec, foil)
    for state in (*states, foil):
        state.e0 = base + state.chem_shift
    return states, foil


_ORIGIN_CACHE: dict = {}


def _edge_origin(key, spec: SeriesSpec, foil: _State) -> float:
    """Arctangent centre (eV) of an unligated site such that the noise-free foil's
    maximum-derivative point sits exactly at the tabulated edge energy."""
    if key in _ORIGIN_CACHE:
        return _ORIGIN_CACHE[key]
    target = spec.e0_tabulated
    base = target
    for _ in range(3):
        foil.e0 = base + foil.chem_shift
        e = target + np.arange(-10.0, 10.0, 0.002)
        mu = _model_rows(spec, e, [foil], np.zeros(1, dtype=int), np.zeros(1),
                         np.array([spec.reference_edge_step]), np.array([spec.reference_pre_offset]),
                         spec.reference_pre_slope)[0]
        deriv = np.gradient(mu, e)
        i = int(np.argmax(deriv))
        # parabola through the three points around the maximum
        y0, y1, y2 = deriv[i - 1], deriv[i], deriv[i + 1]
        vertex = e[i] + 0.5 * 0.002 * (y0 - y2) / (y0 - 2 * y1 + y2)
        base -= vertex - target
    _ORIGIN_CACHE[key] = base
    return base


_STATE_CACHE: dict = {}


def _cached_state(key, spec, shells) -> _State:
    full = (key, tuple(shells))
    if full not in _STATE_CACHE:
        if len(_STATE_CACHE) > 256:
            _STATE_CACHE.clear()
        _STATE_CACHE[full] = _State(spec, shells, spec.kmax + 1.0)
    return _STATE_CACHE[full]


def _white_line_truth(spec: SeriesSpec, state: _State) -> tuple[float, float, float]:
    """From the noise-free normalised spectrum: white-line peak height, its
    position (eV) and the edge position (maximum derivative, eV), true scale."""
    e = state.e0 + np.arange(-15.0, 30.0, 0.005)
    mu0, chi, _ = _parts(spec, e, [state], np.zeros(1, dtype=int), np.zeros(1))
    norm = (mu0 * (1.0 + chi))[0]
    i = int(np.argmax(norm))
    j = int(np.argmax(np.gradient(norm, e)))
    return float(norm[i]), float(e[i]), float(e[j])


def _as_spec(spec) -> SeriesSpec:
    if isinstance(spec, SeriesSpec):
        return spec
    if isinstance(spec, Mapping):
        return SeriesSpec.from_dict(spec)
    raise ConfigError(f"spec must be a SeriesSpec or a dict, got {type(spec).__name__}")


def truth_table(spec: SeriesSpec | Mapping, *, seed: int = 0) -> pd.DataFrame:
    """The per-step truth table of a spec (no spectra are made).

    Columns: ``step, file, <condition columns>, time_s, segment, state``, then
    per shell S ``cn_S, r_S, sigma2_S, de0_S`` (r, sigma2 and de0 are NaN where
    cn is 0), then ``s02, e0_true`` (eV, true edge: tabulated + chemical
    shift; the origin of k and de0), ``chem_shift`` (eV), ``edge_step``,
    ``energy_shift`` (eV, miscalibration added to the recorded energy axis),
    ``wl_amplitude`` (white-line amplitude parameter, edge-step units),
    ``wl_height_true`` (peak of the noise-free normalised spectrum),
    ``wl_position_true`` (eV, true energy scale; appears at + energy_shift),
    ``edge_position_true`` (eV, maximum derivative of the noise-free
    normalised spectrum, true scale),
    ``noise`` (fraction of the edge step), ``noise_sigma`` (absolute, mu
    units), ``seed`` (noise seed), ``drift_seed``.
    """
    spec = _as_spec(spec)
    n = spec.n_steps
    states, _ = _states(spec)
    shift, step_factor, _ = _experiment(spec, n)
    seg_idx = np.repeat(np.arange(len(spec.segments)), [s.repeats for s in spec.segments])
    rows: dict[str, Any] = {
        "step": np.arange(n),
        "file": [spec.file_pattern.format(step=i) for i in range(n)],
    }
    for col in spec.condition_columns:
        values = [spec.segments[i].conditions[col] for i in seg_idx]
        rows[col] = pd.Series(values, dtype=object if _mixed(values) else None)
    rows["time_s"] = _times(spec)
    rows["segment"] = seg_idx
    rows["state"] = [spec.segments[i].state for i in seg_idx]
    for label in spec.shell_labels:
        per_seg = []
        for segment in spec.segments:
            s = segment.shell(label)
            if s is None or s.cn <= 0:
                per_seg.append((0.0, np.nan, np.nan, np.nan))
            else:
                per_seg.append((s.cn, s.r, s.sigma2, s.de0))
        arr = np.array(per_seg, dtype=float)[seg_idx]
        for j, name in enumerate(("cn", "r", "sigma2", "de0")):
            rows[f"{name}_{label}"] = arr[:, j]
    wl = [_white_line_truth(spec, st) for st in states]
    rows["s02"] = np.full(n, spec.s02)
    rows["e0_true"] = np.array([states[i].e0 for i in seg_idx])
    rows["chem_shift"] = np.array([states[i].chem_shift for i in seg_idx])
    rows["edge_step"] = spec.edge_step * step_factor
    rows["energy_shift"] = shift
    rows["wl_amplitude"] = np.array([states[i].wl_amplitude for i in seg_idx])
    rows["wl_height_true"] = np.array([wl[i][0] for i in seg_idx])
    rows["wl_position_true"] = np.array([wl[i][1] for i in seg_idx])
    rows["edge_position_true"] = np.array([wl[i][2] for i in seg_idx])
    rows["noise"] = np.full(n, spec.noise)
    rows["noise_sigma"] = spec.noise * rows["edge_step"]
    rows["seed"] = np.full(n, int(seed))
    rows["drift_seed"] = np.full(n, int(spec.drift_seed))
    return pd.DataFrame(rows)


def _mixed(values) -> bool:
    return any(isinstance(v, str) for v in values) and not all(isinstance(v, str) for v in values)


def simulate_series(spec: SeriesSpec | Mapping, *, seed: int = 0, noise: bool = True,
                    drift: bool = True, reference: bool = True) -> tuple[Series, pd.DataFrame]:
    """Simulate a series of transmission spectra and its truth table.

    Parameters
    ----------
    spec : SeriesSpec or dict
        The series (e.g. :data:`PT_CO_OXIDATION`, ``CU_NC_POTENTIAL.scaled(100_000)``).
    seed : int
        Noise seed (``numpy.random.default_rng(seed)``).  The truth --
        including the per-scan energy drift -- depends on ``spec.drift_seed``
        only.
    noise : bool
        False: noise-free spectra (the truth's ``noise`` columns become 0).
    drift : bool
        False: no energy miscalibration and no edge-step / pre-edge jitter
        (``energy_shift`` 0 and ``edge_step`` nominal in the truth).
    reference : bool
        Whether to simulate the foil reference channel (False halves the work).

    Returns
    -------
    series : Series
        ``mu`` and ``reference`` (n, n_energy) on :func:`energy_grid`;
        ``conditions`` with ``step, file, <condition columns>, time_s``.
    truth : DataFrame
        See :func:`truth_table`.
    """
    spec = _as_spec(spec)
    energy = _grid(spec)
    truth = truth_table(spec, seed=seed)
    n = len(truth)
    if not drift:
        truth["energy_shift"] = 0.0
        truth["edge_step"] = spec.edge_step
        truth["noise_sigma"] = spec.noise * spec.edge_step
    if not noise:
        truth["noise"] = 0.0
        truth["noise_sigma"] = 0.0
    _, step_factor, offset_factor = _experiment(spec, n)
    if not drift:
        offset_factor = np.ones(n)
    states, foil = _states(spec)
    state_idx = truth["segment"].to_numpy()
    shift = truth["energy_shift"].to_numpy(dtype=float)
    step = truth["edge_step"].to_numpy(dtype=float)
    offset = spec.pre_offset * offset_factor
    rng_mu, rng_ref = np.random.default_rng(seed).spawn(2)

    mu = np.empty((n, energy.size))
    ref = np.empty((n, energy.size)) if reference else None
    ref_step = np.full(n, spec.reference_edge_step)
    ref_offset = np.full(n, spec.reference_pre_offset)
    foil_idx = np.zeros(n, dtype=int)
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        sl = slice(lo, hi)
        mu[sl] = _model_rows(spec, energy, states, state_idx[sl], shift[sl], step[sl], offset[sl],
                             spec.pre_slope)
        if noise and spec.noise > 0:
            mu[sl] += rng_mu.standard_normal((hi - lo, energy.size)) * (spec.noise * step[sl])[:, None]
        if reference:
            ref[sl] = _model_rows(spec, energy, [foil], foil_idx[sl], shift[sl], ref_step[sl],
                                  ref_offset[sl], spec.reference_pre_slope)
            if noise and spec.reference_noise > 0:
                ref[sl] += (rng_ref.standard_normal((hi - lo, energy.size))
                            * spec.reference_noise * spec.reference_edge_step)

    conditions = truth[["step", "file", *spec.condition_columns, "time_s"]].copy()
    series = Series(
        energy=energy, mu=mu, conditions=conditions, element=spec.element, edge=spec.edge,
        reference=ref,
        metadata={"source": f"operando.simulate:{spec.name}", "format": "simulated",
                  "mu_from": "transmission", "interpolated": False, "spec": spec.name,
                  "seed": int(seed), "drift_seed": int(spec.drift_seed), "noise": bool(noise),
                  "drift": bool(drift), "e0_tabulated": spec.e0_tabulated,
                  "description": spec.description},
    )
    return series, truth


def simulate_foil(spec: SeriesSpec | Mapping, *, seed: int = 0, noise: bool = True
                  ) -> tuple[Series, pd.DataFrame]:
    """The standalone metal-foil reference of a series (no miscalibration).

    Bulk fcc metal, ``spec.foil`` shell (CN 12) with ``spec.s02``; edge step
    ``reference_edge_step``, noise ``reference_noise`` of it.  The noise is
    drawn from the third child of ``numpy.random.default_rng(seed)``.

    Returns
    -------
    series : Series
        One spectrum, ``file`` = ``spec.foil_file``, no reference channel.
    truth : DataFrame
        One row: ``file, cn_S, r_S, sigma2_S, de0_S, s02, e0_true, edge_step,
        energy_shift (0), noise, noise_sigma, seed``.
    """
    spec = _as_spec(spec)
    energy = _grid(spec)
    _, foil = _states(spec)
    one = np.ones(1)
    mu = _model_rows(spec, energy, [foil], np.zeros(1, dtype=int), np.zeros(1),
                     spec.reference_edge_step * one, spec.reference_pre_offset * one,
                     spec.reference_pre_slope)
    rng = np.random.default_rng(seed).spawn(3)[2]
    sigma = spec.reference_noise * spec.reference_edge_step if noise else 0.0
    if sigma:
        mu = mu + rng.standard_normal(mu.shape) * sigma
    s = spec.foil
    truth = pd.DataFrame([{
        "file": spec.foil_file, f"cn_{s.label}": s.cn, f"r_{s.label}": s.r,
        f"sigma2_{s.label}": s.sigma2, f"de0_{s.label}": s.de0, "s02": spec.s02,
        "e0_true": foil.e0, "edge_step": spec.reference_edge_step, "energy_shift": 0.0,
        "noise": spec.reference_noise if noise else 0.0, "noise_sigma": sigma, "seed": int(seed),
    }])
    conditions = pd.DataFrame({"step": [0], "file": [spec.foil_file]})
    series = Series(energy=energy, mu=mu, conditions=conditions, element=spec.element,
                    edge=spec.edge, metadata={"source": f"operando.simulate:{spec.name}:foil",
                                              "format": "simulated", "mu_from": "transmission",
                                              "interpolated": False, "seed": int(seed)})
    return series, truth


def model_spectrum(spec: SeriesSpec | Mapping, segment: int | None, *, energy: np.ndarray | None = None,
                   energy_shift: float = 0.0) -> dict[str, np.ndarray]:
    """The noise-free parts of one spectrum, for checks and plots.

    Parameters
    ----------
    spec : SeriesSpec or dict
    segment : int or None
        Segment index; None for the metal foil.
    energy : array, optional
        Recorded energies (eV); default the series grid.
    energy_shift : float
        Miscalibration, eV.

    Returns
    -------
    dict
        ``energy``, ``k`` (A^-1 from ``e0_true``, 0 below it), ``pre_edge``
        (mu units, nominal edge step and offset), ``mu0`` (edge + white line
        + post-edge decay, edge-step units), ``chi`` (tapered, as applied),
        ``chi_untapered`` and ``mu``.
    """
    spec = _as_spec(spec)
    energy = _grid(spec) if energy is None else np.asarray(energy, dtype=float)
    states, foil = _states(spec)
    if segment is None:
        state, step, offset, slope = foil, spec.reference_edge_step, spec.reference_pre_offset, \
            spec.reference_pre_slope
    else:
        state, step, offset, slope = states[segment], spec.edge_step, spec.pre_offset, spec.pre_slope
    mu0, chi, raw = _parts(spec, energy, [state], np.zeros(1, dtype=int), np.array([float(energy_shift)]))
    mu0, chi, raw = mu0[0], chi[0], raw[0]
    e_true = energy - energy_shift
    k = _k_of(e_true - state.e0)
    pre = offset + slope * (e_true - spec.e0_tabulated)
    return {"energy": energy, "k": k, "pre_edge": pre, "mu0": mu0, "chi": chi,
            "chi_untapered": raw, "mu": pre + step * mu0 * (1.0 + chi)}


# ------------------------------------------------------------- file output
def _write_xdi(path: Path, spec: SeriesSpec, energy: np.ndarray, columns: dict[str, np.ndarray],
               extra: Mapping[str, str], comments: Sequence[str]) -> None:
    names = ["energy", *columns]
    units = {"energy": "eV"}
    lines = ["# XDI/1.0 operando-simulate/0.1"]
    for i, name in enumerate(names, 1):
        lines.append(f"# Column.{i}: {name}" + (f" {units[name]}" if name in units else ""))
    lines += [
        f"# Element.symbol: {spec.element}",
        f"# Element.edge: {spec.edge}",
        "# Mono.name: Si(111)",
        "# Mono.d_spacing: 3.13555",
        "# Facility.name: simulated (operando.simulate)",
    ]
    lines += [f"# {k}: {v}" for k, v in extra.items()]
    lines.append("# ///")
    lines += [f"# {c}" for c in comments]
    lines.append("#----")
    lines.append("# " + " ".join(names))
    data = np.column_stack([energy, *columns.values()])
    body = "\n".join(f"{row[0]:.4f} " + " ".join(f"{v:.9g}" for v in row[1:]) for row in data)
    path.write_text("\n".join(lines) + "\n" + body + "\n")


def _i0(energy: np.ndarray, e0: float, scale: float) -> np.ndarray:
    """A smooth ion-chamber i0 (counts): slowly rising with energy."""
    return 1.8e5 * scale * (1.0 + 0.08 * (energy - e0) / 1000.0)


def _summary_table(truth: pd.DataFrame, spec: SeriesSpec) -> str:
    cols = [*spec.condition_columns, "state"]
    head = ["steps", *cols]
    for label in spec.shell_labels:
        head += [f"cn_{label}", f"r_{label}", f"sigma2_{label}"]
    head += ["wl_height_true", "e0_true"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for seg, rows in truth.groupby("segment", sort=True):
        first = rows.iloc[0]
        cells = [f"{rows['step'].min()}-{rows['step'].max()}"] + [str(first[c]) for c in cols]
        for label in spec.shell_labels:
            cells += [f"{first[f'cn_{label}']:g}",
                      "-" if first[f"cn_{label}"] == 0 else f"{first[f'r_{label}']:.3f}",
                      "-" if first[f"cn_{label}"] == 0 else f"{first[f'sigma2_{label}']:.4f}"]
        cells += [f"{first['wl_height_true']:.3f}", f"{first['e0_true']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_samples(directory: str | Path, *, seed: int = SAMPLE_SEED) -> dict[str, list[Path]]:
    """Write both named series (and their foils, truth and README) to files.

    Layout (see the README written there)::

        directory/pt_co_oxidation/pt_co_oxidation_NNN.xdi  energy i0 itrans irefer
                                  conditions.csv (file, gas, temperature_K, time_s)
                                  pt_foil.xdi, truth.csv, foil_truth.csv
        directory/cu_nc_potential/cu_nc_potential.dat      energy + one mu column per step
                                  cu_nc_reference.dat      energy + one reference column per step
                                  conditions.csv (step, potential_V, time_s)
                                  cu_foil.xdi, truth.csv, foil_truth.csv
        directory/README.md

    Parameters
    ----------
    directory : path
        Created if missing; files in it are overwritten.
    seed : int
        Noise seed (default :data:`SAMPLE_SEED`).

    Returns
    -------
    dict
        ``{"pt_co_oxidation": [paths], "cu_nc_potential": [paths], "readme": [path]}``.
    """
    directory = Path(directory)
    written: dict[str, list[Path]] = {}

    # ---- Pt: one XDI file per scan with intensities.
    spec = PT_CO_OXIDATION
    folder = directory / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    series, truth = simulate_series(spec, seed=seed)
    paths = []
    e0 = spec.e0_tabulated
    for i in range(len(series)):
        i0 = _i0(series.energy, e0, 1.0 - 0.002 * i)
        itrans = i0 * np.exp(-series.mu[i])
        irefer = itrans * np.exp(-series.reference[i])
        row = truth.iloc[i]
        path = folder / row["file"]
        _write_xdi(path, spec, series.energy, {"i0": i0, "itrans": itrans, "irefer": irefer},
                   {"Sample.name": "0.3 wt% Pt/gamma-Al2O3",
                    "Sample.temperature": f"{row['temperature_K']:g} K",
                    "Scan.start_time": _iso_time(row["time_s"])},
                   [f"simulated by operando.simulate, series {spec.name}, step {i}, seed {seed}",
                    f"gas {row['gas']}; mu = ln(i0/itrans), reference = ln(itrans/irefer)"])
        paths.append(path)
    cond = truth[["file", "gas", "temperature_K", "time_s"]]
    cond.to_csv(folder / "conditions.csv", index=False)
    truth.to_csv(folder / "truth.csv", index=False, float_format="%.10g")
    foil, foil_truth = simulate_foil(spec, seed=seed)
    i0 = _i0(foil.energy, e0, 1.0)
    _write_xdi(folder / spec.foil_file, spec, foil.energy, {"i0": i0, "itrans": i0 * np.exp(-foil.mu[0])},
               {"Sample.name": "Pt foil (simulated: fcc Pt, CN 12, S0^2 0.85)"},
               [f"simulated by operando.simulate, {spec.name} foil, seed {seed}",
                "mu = ln(i0/itrans); no energy miscalibration"])
    foil_truth.to_csv(folder / "foil_truth.csv", index=False, float_format="%.10g")
    paths += [folder / n for n in ("conditions.csv", "truth.csv", spec.foil_file, "foil_truth.csv")]
    written[spec.name] = paths
    pt_truth = truth

    # ---- Cu: matrix files of mu (one column per step).
    spec = CU_NC_POTENTIAL
    folder = directory / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    series, truth = simulate_series(spec, seed=seed)
    labels = [f"mu_{i:03d}" for i in range(len(series))]
    for name, arr, prefix in (("cu_nc_potential.dat", series.mu, "mu"),
                              ("cu_nc_reference.dat", series.reference, "ref")):
        header = "energy " + " ".join(f"{prefix}_{i:03d}" for i in range(len(series)))
        np.savetxt(folder / name, np.column_stack([series.energy, arr.T]),
                   fmt=["%.4f"] + ["%.7f"] * len(labels), header=header, comments="# ")
    cond = truth[["step", "potential_V", "time_s"]]
    cond.to_csv(folder / "conditions.csv", index=False)
    truth.to_csv(folder / "truth.csv", index=False, float_format="%.10g")
    foil, foil_truth = simulate_foil(spec, seed=seed)
    i0 = _i0(foil.energy, spec.e0_tabulated, 1.0)
    _write_xdi(folder / spec.foil_file, spec, foil.energy, {"i0": i0, "itrans": i0 * np.exp(-foil.mu[0])},
               {"Sample.name": "Cu foil (simulated: fcc Cu, CN 12, S0^2 0.90)"},
               [f"simulated by operando.simulate, {spec.name} foil, seed {seed}",
                "mu = ln(i0/itrans); no energy miscalibration"])
    foil_truth.to_csv(folder / "foil_truth.csv", index=False, float_format="%.10g")
    written[spec.name] = [folder / n for n in ("cu_nc_potential.dat", "cu_nc_reference.dat",
                                               "conditions.csv", "truth.csv", spec.foil_file,
                                               "foil_truth.csv")]

    readme = directory / "README.md"
    readme.write_text(_readme(seed, pt_truth, truth))
    written["readme"] = [readme]
    return written


def _readme(seed: int, pt_truth: pd.DataFrame, cu_truth: pd.DataFrame) -> str:
    pt, cu = PT_CO_OXIDATION, CU_NC_POTENTIAL
    pt_foil_e0 = _states(pt)[1].e0
    cu_foil_e0 = _states(cu)[1].e0
    return f"""# Simulated operando XAS sample series

Generated by `python -m operando.simulate sample_spectra` (equivalently
`operando.simulate.write_samples("sample_spectra", seed={seed})`) with noise seed **{seed}**
(the per-scan energy drift comes from each spec's `drift_seed`: {pt.drift_seed} for Pt,
{cu.drift_seed} for Cu). Regenerating with the same code and seed gives identical files.
The spectrum model, energy grid and noise are documented in the `operando.simulate`
module docstring. These are **simulated** data: EXAFS from FEFF6 first-shell paths
(xraylarch `ff2chi`), a model edge and white line; no multiple scattering, no second shells.

Common to both series
- Energy grid: 10 eV steps e0-200..e0-40, 0.4 eV e0-30..e0+39.6, then constant k steps of
  0.05 A^-1 from k = 3.25 to 15 A^-1 (428 points), e0 = tabulated edge (xraydb).
- Every scan has a metal-foil reference channel and an energy miscalibration `energy_shift`
  (eV, a few tenths: a constant monochromator offset plus an AR(1) drift), applied to sample
  and reference alike: a feature at true energy T appears at T + energy_shift, so calibration
  should subtract it. Pt: energy_shift {pt_truth.energy_shift.min():+.3f} .. {pt_truth.energy_shift.max():+.3f} eV;
  Cu: {cu_truth.energy_shift.min():+.3f} .. {cu_truth.energy_shift.max():+.3f} eV.
- The noise-free foil's maximum-derivative point sits exactly at the tabulated edge energy
  ({pt.e0_tabulated:g} eV Pt L3, {cu.e0_tabulated:g} eV Cu K) on the true scale, so calibrating the
  reference channel to the tabulated energy recovers -energy_shift. `e0_true` (the arctangent
  centre and the origin of k and de0) is lower than that by the white-line pull
  ({pt.e0_tabulated - pt_foil_e0:.3f} eV for Pt, {cu.e0_tabulated - cu_foil_e0:.3f} eV for Cu) and higher by the chemical shift
  (up to +1.0 eV for Pt-O4, +1.5 eV for Cu-N4).
- Noise: Gaussian in mu, sd = `noise` x edge step (Pt 5e-4, Cu 8e-4; reference channel 3e-4).
- `truth.csv` (one row per step): step, file, conditions, time_s, segment, state
  (isolated / cluster / particle), per shell S `cn_S, r_S` (A), `sigma2_S` (A^2), `de0_S` (eV;
  NaN when cn is 0), `s02`, `e0_true` (eV, edge incl. chemical shift; origin of k and de0),
  `chem_shift`, `edge_step`, `energy_shift`, `wl_amplitude` (white-line parameter, edge-step
  units), `wl_height_true` (peak of the noise-free normalised spectrum, i.e. (mu - pre-edge)
  / edge_step), `wl_position_true` and `edge_position_true` (maximum derivative; both on the
  true energy scale, they appear at + energy_shift in the files), `noise` (fraction of the
  edge step), `noise_sigma` (mu units), `seed`, `drift_seed`.
- `foil_truth.csv`: the foil (CN 12, bulk distance, sigma2, de0, S0^2, no miscalibration).

## pt_co_oxidation/ -- 0.3 wt% Pt/gamma-Al2O3, Pt L3, CO oxidation ({len(pt_truth)} scans)

- `pt_co_oxidation_NNN.xdi`: one XDI file per scan, columns `energy i0 itrans irefer`;
  mu = ln(i0/itrans), reference = ln(itrans/irefer); headers Element.symbol Pt, Element.edge L3.
- `conditions.csv`: keyed by `file` (basename): `file, gas, temperature_K, time_s`.
- `pt_foil.xdi`: Pt foil (columns `energy i0 itrans`), fcc Pt CN 12, R 2.775 A, sigma2 0.0049,
  S0^2 0.85; not listed in conditions.csv.
- `truth.csv`, `foil_truth.csv`.

{_summary_table(pt_truth, pt)}

## cu_nc_potential/ -- Cu-N-C single-atom catalyst, Cu K, potential steps ({len(cu_truth)} scans)

- `cu_nc_potential.dat`: matrix file; one `#` header line `energy mu_000 mu_001 ...`, then
  energy (eV) and one mu column per step (step = column order).
- `cu_nc_reference.dat`: the same layout (`energy ref_000 ...`), the foil reference channel.
- `conditions.csv`: keyed by `step`: `step, potential_V` (V vs RHE; the last segment is the
  label `OCP`, open circuit), `time_s`.
- `cu_foil.xdi`: Cu foil (columns `energy i0 itrans`), fcc Cu CN 12, R 2.556 A, sigma2 0.0087,
  S0^2 0.90.
- `truth.csv`, `foil_truth.csv` (the `file` column of truth.csv is `cu_nc_potential.dat#mu_NNN`).

{_summary_table(cu_truth, cu)}
"""


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m operando.simulate DIRECTORY [--seed N]``: write the sample series."""
    parser = argparse.ArgumentParser(prog="python -m operando.simulate",
                                     description="Write the simulated sample spectra.")
    parser.add_argument("directory", nargs="?", default="sample_spectra")
    parser.add_argument("--seed", type=int, default=SAMPLE_SEED)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    written = write_samples(args.directory, seed=args.seed)
    for name, paths in written.items():
        log.info("%s: %d files in %s", name, len(paths), Path(paths[0]).parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
