"""What a simulated series is: shells, segments, the edge model and the series spec.

These dataclasses hold the truth of a simulation (not the noise); they validate
themselves on construction, so a wrong value is refused where it is written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

import numpy as np

from .._util.elements import edge_energy
from ..errors import ConfigError
from ..feffpaths import parse_label

#: Allowed values of the ``state`` column.
STATES = ("isolated", "cluster", "particle")


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
        return edge_energy(self.element, self.edge)

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
        segments = []   # the dataclasses convert nested dicts; shells may be given by label
        for seg in data.get("segments", ()):
            if not isinstance(seg, Segment):
                shells = seg.get("shells", ())
                seg = {**seg, "shells": [dict(label=k, **v) for k, v in shells.items()]
                       if isinstance(shells, Mapping) else shells}
            segments.append(seg)
        data["segments"] = tuple(segments)
        return cls(**data)


def as_spec(spec) -> SeriesSpec:
    """``spec`` as a :class:`SeriesSpec` (a dict goes through :meth:`SeriesSpec.from_dict`)."""
    if isinstance(spec, SeriesSpec):
        return spec
    if isinstance(spec, Mapping):
        return SeriesSpec.from_dict(spec)
    raise ConfigError(f"spec must be a SeriesSpec or a dict, got {type(spec).__name__}")
