"""The sections of a run configuration: one frozen dataclass per TOML section, and
:class:`Config` holding them (build it with :func:`operando.config.load_config`)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from .._util.jsonsafe import to_json_ready
from .._util.rules import (Rejected, auto_or, boolean, check_fields, choice, number, pair,
                           setting, text)
from .._util.validate import suggest
from ..errors import ConfigError
from ..options import (ENGINES, BackgroundOptions, ComponentOptions, FitOptions, FoilOptions,
                       NormalizeOptions)

EDGES = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")
PLOT_FORMATS = ("png", "svg", "pdf")
#: ``[output] athena = "auto"`` writes the project for series up to this many steps.
ATHENA_AUTO_MAX_STEPS = 500
#: Roles of [series] channels (see operando.io.read_series).
CHANNEL_ROLES = ("i0", "it", "iref", "fluorescence", "icr", "ocr")


# ------------------------------------------------------------ rules of section keys
def _element(v):
    v = text(v)
    if v is not None and not (1 <= len(v) <= 2 and v[0].isupper() and v.isalpha()
                              and (len(v) == 1 or v[1].islower())):
        raise Rejected("an element symbol such as 'Pt' or 'Cu'")
    return v


def _edge(v):
    v = text(v)
    if v is not None and v.upper() not in EDGES:
        raise Rejected(f"one of {', '.join(EDGES)}{suggest(v.upper(), EDGES)}")
    return None if v is None else v.upper()


def _mu(v):
    if isinstance(v, (list, tuple)):
        if not v or not all(isinstance(c, str) and c.strip() for c in v):
            raise Rejected("a list of fluorescence channel names (summed, over i0)")
        return tuple(c.strip() for c in v)
    return text(v)


def _energy_column(v):
    if v is None or (not isinstance(v, bool) and ((isinstance(v, str) and v.strip())
                                                   or (isinstance(v, int) and v >= 0))):
        return v
    raise Rejected("a column label or a 0-based column index")


def _names(accepted: str, *, strict: bool = False):
    """A rule: a list of names kept as a tuple, or None; a single name reads as a list of
    one, and a list may be empty, unless ``strict``."""
    def rule(v):
        v = [v] if isinstance(v, str) and not strict else v
        if v is not None and (not isinstance(v, (list, tuple)) or (not v and strict)
                              or not all(isinstance(c, str) for c in v)):
            raise Rejected(accepted)
        return None if v is None else tuple(v)
    return rule


def _channels(v):
    if v is None or isinstance(v, tuple):
        return v
    roles = ", ".join(CHANNEL_ROLES)
    if not isinstance(v, Mapping) or not all(isinstance(c, str) for c in v.values()):
        raise Rejected(f"a table role = column, roles {roles}")
    for role in v:
        if role not in CHANNEL_ROLES:
            raise Rejected(f"a table role = column with roles {roles} (not '{role}'"
                           f"{suggest(role, CHANNEL_ROLES)})")
    return tuple(sorted(v.items()))


def _merge_repeats(v):
    if v is False or v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        raise Rejected("false or the name of a condition column whose repeated values are "
                       "averaged")
    return v.strip()


def _n_components(v):
    if v is None or v == "auto":
        return None
    return number(1, 10, integer=True, accepted='"auto" or an integer from 1 to 10')(v)


def _plots(v):
    v = [] if v is False else [v] if isinstance(v, str) else v
    if not isinstance(v, (list, tuple)) or not all(isinstance(p, str) and p.lower() in PLOT_FORMATS
                                                   for p in v):
        raise Rejected(f"a list of formats from {list(PLOT_FORMATS)} ([] for no plots)")
    return tuple(dict.fromkeys(p.lower() for p in v))


_TEMPERATURE = number(0, 5000, low_open=True, none=True, accepted="a temperature in K (> 0)")


class Section:
    """A section checks its keys' rules on construction (as the stages' options do)."""

    def __post_init__(self):
        check_fields(self)


# --------------------------------------------------------------------- sections
@dataclass(frozen=True)
class SeriesConfig(Section):
    """``[series]``: what to read and how (see :func:`operando.io.read_series`)."""

    source: tuple[str, ...] = ()
    conditions: str | None = None
    element: str | None = setting(None, _element)
    edge: str | None = setting(None, _edge)
    mu: str | tuple[str, ...] = setting("auto", _mu)
    reference: bool | str = "auto"
    format: str = setting("auto", text)
    pattern: str | None = setting(None, text)
    energy_column: str | int | None = setting(None, _energy_column)
    columns: tuple[str, ...] | None = setting(None, _names(
        "a non-empty list of column names (matrix files)", strict=True))
    on_error: str = setting("skip", choice("skip", "raise"))
    order: str = setting("auto", choice("auto", "name", "time"))
    channels: tuple[tuple[str, str], ...] | None = setting(None, _channels)
    dead_time: bool | str = setting("auto", auto_or(
        boolean, 'true, false or "auto" (where the file has the ICR/OCR columns)'))
    use_project_settings: bool = setting(False, boolean)


@dataclass(frozen=True)
class ConditionsConfig:
    """``[conditions]``: instrument logs aligned by time and header fields as conditions
    (see :func:`operando.io.conditions_from_logs`).  ``logs``: one sorted tuple of
    (key, value) pairs per log (hashable; ``log_specs()`` gives them as dicts)."""

    logs: tuple = ()
    headers: tuple[tuple[str, str], ...] = ()
    timezone: str | None = None

    def log_specs(self) -> list[dict]:
        return [{k: dict(v) if k == "columns" and v and isinstance(v[0], tuple) else
                 (list(v) if isinstance(v, tuple) else v) for k, v in entry} for entry in self.logs]


@dataclass(frozen=True)
class NormalizeConfig(NormalizeOptions):
    """``[normalize]``: the normalisation's options (:class:`NormalizeOptions`), the
    calibration and the white-line window (eV; None: :class:`WhiteLineOptions`')."""

    calibrate: bool = setting(False, boolean)
    edge_energy: float | None = setting(None, number(
        0, 2e5, low_open=True, none=True, accepted="eV in (0, 200000], or unset for the "
                                                   "tabulated edge"))
    wl_window: tuple[float, float] | None = setting(None, pair(
        "a pair [low, high] of numbers (eV relative to e0) with low < high", none=True))


@dataclass(frozen=True)
class FoilConfig(FoilOptions):
    """``[foil]``: S0^2 from a foil (``file``, ``shell``, ``cn``) or fixed (``s02``),
    and what the sample's metal shell takes from the foil fit (:class:`FoilOptions`),
    with an optional temperature correction of sigma2 (K)."""

    file: str | None = None
    shell: str | None = None
    s02: float | None = setting(None, number(0, 1.5, low_open=True, none=True,
                                             accepted="a number > 0 and <= 1.5"))
    temperature_K: float | None = setting(None, _TEMPERATURE)
    sample_temperature_K: float | None = setting(None, _TEMPERATURE)
    debye_temperature_K: float | None = setting(None, _TEMPERATURE)
    #: How mu is made from the foil file; None: as for the series ([series] mu).  A foil
    #: measured in transmission beside a fluorescence series says "transmission".
    mu: str | None = setting(None, text)

    def __post_init__(self):
        super().__post_init__()
        if self.file is not None and self.s02 is not None:
            raise ConfigError("give either file (a foil to calibrate S0^2 on) or s02 (a fixed "
                              "value), not both")
        if (None not in (self.temperature_K, self.sample_temperature_K)
                and self.temperature_K != self.sample_temperature_K
                and self.debye_temperature_K is None):
            raise ConfigError("a sigma2 temperature correction (temperature_K != "
                              "sample_temperature_K) needs debye_temperature_K")

    def shell_options(self) -> dict:
        """:func:`operando.exafs.apply_foil` keyword arguments (a ``sigma2`` in A^2 is
        ``"fix"`` at that value, which replaces the foil's)."""
        return dict(sigma2=self.sigma2 if isinstance(self.sigma2, str) else "fix",
                    deltar=self.deltar, de0=self.de0, sigma2_margin=self.sigma2_margin,
                    temperature_K=self.temperature_K,
                    sample_temperature_K=self.sample_temperature_K,
                    debye_temperature_K=self.debye_temperature_K,
                    disorder_model=self.disorder_model)


def _isolated(v):
    if not isinstance(v, str) or not v:
        raise Rejected("the name of a [components] standard (the isolated state's spectrum)")
    return v


@dataclass(frozen=True)
class TwoPhaseConfig(Section):
    """``[exafs] two_phase``: the isolated state measured, the clusters modelled
    (:mod:`operando.exafs.two_phase`).

    ``isolated``: the ``[components]`` standard that is the isolated state (a file,
    ``"first"``, ``"steps:A-B"`` ... as that section allows); ``fraction``: ``"xanes"``
    (x fixed at the LCF metal fraction, its error propagated), ``"xanes_prior"`` (a
    Gaussian prior) or ``"fit"`` (from the EXAFS alone); ``disorder``: the clusters'
    sigma2, ``"foil"`` (the metal shell's, as [foil] gives it) or ``"free"`` (bounded).
    """

    isolated: str | None = setting(None, _isolated)
    fraction: str = setting("xanes", choice("xanes", "xanes_prior", "fit"))
    disorder: str = setting("foil", choice("foil", "free"))


@dataclass(frozen=True)
class ExafsConfig(FitOptions):
    """``[exafs]``: the shell fits' options (:class:`FitOptions`, k in 1/Angstrom, R in
    Angstrom), the background removal's and the run's EXAFS choices."""

    enabled: bool = setting(False, boolean)
    shells: tuple | None = None          # labels, or tables (dicts) of ShellSpec settings
    rbkg: float = setting(BackgroundOptions.rbkg, number(0, 3, low_open=True))
    # Start of the background spline (Larch autobk kmin).  0 is Larch's default; raising it
    # above a strong white line helps L3 edges of oxidised 5d metals (README, physics).
    bkg_kmin: float = setting(BackgroundOptions.kmin, number(
        0, 5, accepted="a number >= 0 and <= 5 (1/Angstrom)"))
    engine: str = setting(BackgroundOptions.engine, ENGINES)
    merge_repeats: str | None = setting(None, _merge_repeats)
    systematics: bool = setting(False, boolean)
    two_phase: TwoPhaseConfig | None = None

    def background(self) -> BackgroundOptions:
        """The background removal's options (the fits' ``kweight``; the spline from
        ``bkg_kmin``; AUTOBK's own ``dk`` and window)."""
        return BackgroundOptions(rbkg=self.rbkg, kmin=self.bkg_kmin, kweight=self.kweight,
                                 engine=self.engine)


@dataclass(frozen=True)
class ComponentsConfig(ComponentOptions):
    """``[components]``: XANES component analysis (section present = enabled) with the
    options of :class:`ComponentOptions`.

    ``standards``: name -> source (a file, ``"file.prj#group"``, ``"first"``,
    ``"last"``, ``"step:N"``, ``"steps:A-B"`` (their mean) or ``"reference_channel"``); with
    standards the method
    is ``"lcf"``, without ``"mcr"`` (``n_components``: ``None`` = the PCA estimate).
    ``metal``: the name of the metallic component, for tracking.
    """

    enabled: bool = False
    standards: tuple = ()
    method: str = setting("lcf", choice("lcf", "mcr"))
    n_components: int | None = setting(None, _n_components)
    metal: str | None = setting(None, text)


@dataclass(frozen=True)
class TrackConfig(Section):
    """``[track]``: shells to compare and thresholds for :mod:`operando.tracking`.

    ``settings`` holds every other key unchanged: the thresholds of
    :class:`~operando.options.TrackSettings` (checked on loading).
    """

    enabled: bool = setting(True, boolean)
    metal_shell: str | None = None
    ligand_shell: str | None = None
    condition_columns: tuple[str, ...] | None = setting(None, _names(
        "a list of condition column names"))
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputConfig(Section):
    """``[output]``: the run folder and what goes in it."""

    dir: str = "operando-output"
    plots: tuple[str, ...] = setting(("png",), _plots)
    overwrite: bool = setting(False, boolean)
    report: bool = setting(True, boolean)
    athena: bool | str = setting("auto", auto_or(boolean, '"auto" (series up to '
                                                 f'{ATHENA_AUTO_MAX_STEPS} steps), true or false'))

    def athena_for(self, n_steps: int) -> bool:
        """Whether ``athena.prj`` is written for a series of ``n_steps``.

        ``"auto"``: up to :data:`ATHENA_AUTO_MAX_STEPS` steps (Athena and
        Larix list every group; thousands of them cannot usefully be shown).
        """
        if self.athena == "auto":
            return n_steps <= ATHENA_AUTO_MAX_STEPS
        return bool(self.athena)


#: ``[run] chunk_size = "auto"``: bounds of the chunk size of the fast engines.
AUTO_CHUNK_MIN, AUTO_CHUNK_MAX = 256, 2000
#: ``[run] chunk_size = "auto"`` with a larch engine (about 0.2 s per step): a checkpoint
#: every few seconds.
AUTO_CHUNK_LARCH = 16


@dataclass(frozen=True)
class RunConfig(Section):
    """``[run]``: how the work is split (``chunk_size`` steps per checkpoint) and run.

    ``chunk_size = "auto"`` (default) is resolved from the number of steps only
    (never from ``workers``, so results do not depend on the worker count):
    see :meth:`Config.chunk_size_for`.
    """

    chunk_size: int | str = setting("auto", auto_or(number(1, integer=True),
                                                     '"auto" or an integer >= 1'))
    # 0: one process per core.  A series of one chunk (anything up to 2 x 256 steps with the
    # fast engine) still runs inline, so small runs pay no process start-up.
    workers: int = setting(0, number(0, integer=True))


@dataclass(frozen=True)
class Config:
    """A validated run configuration (immutable; build it with :func:`load_config`).

    Attributes
    ----------
    series, conditions, normalize, foil, exafs, components, track, output, run
        One frozen dataclass per TOML section.
    path : str or None
        The configuration file it was read from.
    base_dir : str
        Folder relative paths were resolved against.
    """

    series: SeriesConfig
    conditions: ConditionsConfig = ConditionsConfig()
    normalize: NormalizeConfig = NormalizeConfig()
    foil: FoilConfig = FoilConfig()
    exafs: ExafsConfig = ExafsConfig()
    components: ComponentsConfig = ComponentsConfig()
    track: TrackConfig = TrackConfig()
    output: OutputConfig = OutputConfig()
    run: RunConfig = RunConfig()
    path: str | None = None
    base_dir: str = "."

    def to_dict(self) -> dict:
        """Every setting, resolved (absolute paths, defaults filled), JSON-ready."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = to_json_ready(asdict(value)) if hasattr(value, "__dataclass_fields__") else value
        return out

    def chunk_size_for(self, n_steps: int) -> int:
        """``[run] chunk_size`` resolved for a series of ``n_steps`` steps.

        An integer is used as given.  ``"auto"``: with a larch engine
        (``[normalize]`` or ``[exafs]``), :data:`AUTO_CHUNK_LARCH` steps so
        checkpoints come every few seconds; with the fast engines half the
        series, at least :data:`AUTO_CHUNK_MIN` and at most
        :data:`AUTO_CHUNK_MAX` steps, in an even number of equal chunks.  Each
        chunk has a fixed cost (batched operators, warm-start pass, checkpoint),
        so 16-step chunks ran the fast engine at a third of its speed; two
        chunks keep two workers busy, the cap still checkpoints every few
        seconds on long series, and an even count keeps two (or a multiple of
        two) workers busy to the end (5 chunks of 2,000 steps on two workers
        took as long as 6).  Depends on ``n_steps`` and the engines only, so it
        is stable for a given input (resume) and independent of ``workers``.
        """
        size = self.run.chunk_size
        if size != "auto":
            return int(size)
        larch = self.normalize.engine == "larch" or (self.exafs.enabled
                                                     and self.exafs.engine == "larch")
        if larch:
            return AUTO_CHUNK_LARCH
        n_chunks = 2 * math.ceil(max(n_steps, 1) / (2 * AUTO_CHUNK_MAX))
        return int(max(AUTO_CHUNK_MIN, math.ceil(max(n_steps, 1) / n_chunks)))

    def analysis_dict(self, n_steps: int | None = None) -> dict:
        """The settings that change results (no output folder, no worker count).

        With ``n_steps`` the chunk size is the resolved one
        (:meth:`chunk_size_for`): chunk boundaries change warm starts, so
        they are part of the settings.
        """
        d = self.to_dict()
        for key in ("output", "path", "base_dir"):
            d.pop(key, None)
        size = self.run.chunk_size if n_steps is None else self.chunk_size_for(n_steps)
        d["run"] = {"chunk_size": size}
        return d

    def config_hash(self, n_steps: int | None = None) -> str:
        """SHA-256 (16 hex digits) of :meth:`analysis_dict`: equal hashes, equal results."""
        text = json.dumps(self.analysis_dict(n_steps), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_output(self, **changes: Any) -> "Config":
        """A copy with ``[output]`` fields replaced (``dir`` is resolved to an absolute path)."""
        if "dir" in changes and changes["dir"] is not None:
            changes["dir"] = str(Path(changes["dir"]).expanduser().resolve())
        return replace(self, output=replace(self.output, **changes))

    def with_run(self, **changes: Any) -> "Config":
        """A copy with ``[run]`` fields replaced (checked as in a file)."""
        return replace(self, run=replace(self.run, **changes))

