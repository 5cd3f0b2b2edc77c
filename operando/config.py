"""Run configuration: a TOML file (or dict) validated once, at the boundary.

A configuration has these sections (all optional except ``[series]``)::

    [series]                      # what to read (operando.io.read_series)
    source = "scans/"             # folder, glob, file, or a list of them ("files" is an alias)
    conditions = "conditions.csv" # per-file conditions table
    element = "Pt"                # absorbing element (default: from the files)
    edge = "L3"
    mu = "auto"                   # "auto", "transmission", "fluorescence", "mu" or a column
    reference = "auto"            # reference channel: "auto"/true, false, the iref column name,
                                  # or a matrix reference file (one column per step)
    format = "auto"

    [normalize]                   # operando.xanes.normalize / calibrate / white_line
    e0 = "first"                  # "first", "each", "reference" or a number (eV)
    pre1 = -150.0                 # eV relative to e0 (unset: Larch defaults)
    pre2 = -30.0
    norm1 = 50.0
    norm2 = 400.0
    nnorm = 2
    nvict = 0
    calibrate = false             # align every scan on its reference-channel edge
    edge_energy = 11564.0         # calibration target (default: tabulated edge)
    wl_window = [-5.0, 15.0]      # white-line window, eV relative to e0

    [reference]                   # amplitude reduction factor S0^2
    file = "pt_foil.xdi"          # a metal foil to calibrate S0^2 on ...
    shell = "Pt-Pt"
    cn = 12
    # s02 = 0.84                  # ... or a fixed value (not both)

    [exafs]                       # operando.exafs (section present = enabled)
    shells = ["Pt-O", "Pt-Pt"]
    kmin = 3.0
    kmax = 12.0
    kweight = 2
    dk = 1.0
    window = "hanning"
    # rmin above rbkg: below rbkg the background spline has flattened chi(R), so a fit
    # window starting at rbkg inflates short ligand shells (Pt-O 4 -> 4.7 on noise-free data)
    rmin = 1.2
    rmax = 3.2
    fit_space = "r"
    rbkg = 1.0
    engine = "fast"

    [track]                       # operando.tracking thresholds (passed through)

    [output]
    dir = "results/run1"
    plots = ["png"]
    overwrite = false
    athena = "auto"               # athena.prj: "auto" (series up to 500 steps), true, false

    [run]
    chunk_size = "auto"           # steps per checkpointed chunk, or "auto" (see RunConfig)
    workers = 0                   # processes; 0 = one per core (default)

Relative paths resolve against the folder of the configuration file (the
current folder for a dict or TOML text).  Every unknown section or key, wrong
type and out-of-range value raises :class:`~operando.errors.ConfigError`
naming the key, the value and what is accepted.
"""

from __future__ import annotations

import difflib
import glob as _glob
import hashlib
import json
import math
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError
from .exafs import ShellModel as _ShellModel  # one source for the fit-window defaults

__all__ = [
    "Config", "SeriesConfig", "NormalizeConfig", "ReferenceConfig", "ExafsConfig",
    "TrackConfig", "OutputConfig", "RunConfig", "load_config",
]

_UNSET = object()
EDGES = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")
WINDOWS = ("hanning", "kaiser", "gaussian", "sine", "parzen", "welch")
PLOT_FORMATS = ("png", "svg", "pdf")


# --------------------------------------------------------------------- sections
@dataclass(frozen=True)
class SeriesConfig:
    """``[series]``: what to read and how (see :func:`operando.io.read_series`)."""

    source: tuple[str, ...] = ()
    conditions: str | None = None
    element: str | None = None
    edge: str | None = None
    mu: str = "auto"
    reference: bool | str = "auto"
    format: str = "auto"
    pattern: str | None = None
    energy_column: str | int | None = None
    columns: tuple[str, ...] | None = None
    on_error: str = "skip"


@dataclass(frozen=True)
class NormalizeConfig:
    """``[normalize]``: edge step normalisation, calibration and white line (eV)."""

    e0: str | float = "first"
    pre1: float | None = None
    pre2: float | None = None
    norm1: float | None = None
    norm2: float | None = None
    nnorm: int | None = None
    nvict: int = 0
    calibrate: bool = False
    edge_energy: float | None = None
    wl_window: tuple[float, float] | None = None
    engine: str = "fast"


@dataclass(frozen=True)
class ReferenceConfig:
    """``[reference]``: S0^2 from a foil (``file``, ``shell``, ``cn``) or fixed (``s02``)."""

    file: str | None = None
    shell: str | None = None
    cn: float = 12.0
    s02: float | None = None


@dataclass(frozen=True)
class ExafsConfig:
    """``[exafs]``: background removal and shell fits (k in 1/Angstrom, R in Angstrom)."""

    enabled: bool = False
    shells: tuple[str, ...] | None = None
    share_e0: bool = _ShellModel.share_e0
    kmin: float = _ShellModel.kmin
    kmax: float = _ShellModel.kmax
    kweight: int = int(_ShellModel.kweight)
    dk: float = _ShellModel.dk
    window: str = _ShellModel.window
    rmin: float = _ShellModel.rmin
    rmax: float = _ShellModel.rmax
    fit_space: str = _ShellModel.fit_space
    rbkg: float = 1.0
    # Start of the background spline (Larch autobk kmin).  0 is Larch's default; raising it
    # above a strong white line helps L3 edges of oxidised 5d metals (README, physics).
    bkg_kmin: float = 0.0
    engine: str = "fast"
    merge_repeats: str | None = None


@dataclass(frozen=True)
class TrackConfig:
    """``[track]``: shells to compare and thresholds for :mod:`operando.tracking`.

    ``settings`` holds every other key unchanged; it is handed to
    ``tracking.TrackSettings.from_config`` (validated there).
    """

    enabled: bool = True
    metal_shell: str | None = None
    ligand_shell: str | None = None
    condition_columns: tuple[str, ...] | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputConfig:
    """``[output]``: the run folder and what goes in it."""

    dir: str = "operando-output"
    plots: tuple[str, ...] = ("png",)
    overwrite: bool = False
    report: bool = True
    athena: bool | str = "auto"

    def athena_for(self, n_steps: int) -> bool:
        """Whether ``athena.prj`` is written for a series of ``n_steps``.

        ``"auto"``: up to :data:`ATHENA_AUTO_MAX_STEPS` steps (Athena and
        Larix list every group; thousands of them cannot usefully be shown).
        """
        if self.athena == "auto":
            return n_steps <= ATHENA_AUTO_MAX_STEPS
        return bool(self.athena)


#: ``[output] athena = "auto"`` writes the project for series up to this many steps.
ATHENA_AUTO_MAX_STEPS = 500
#: ``[run] chunk_size = "auto"``: bounds of the chunk size of the fast engines.
AUTO_CHUNK_MIN, AUTO_CHUNK_MAX = 256, 2000
#: ``[run] chunk_size = "auto"`` with a larch engine (about 0.2 s per step): a checkpoint
#: every few seconds.
AUTO_CHUNK_LARCH = 16


@dataclass(frozen=True)
class RunConfig:
    """``[run]``: how the work is split (``chunk_size`` steps per checkpoint) and run.

    ``chunk_size = "auto"`` (default) is resolved from the number of steps only
    (never from ``workers``, so results do not depend on the worker count):
    see :meth:`Config.chunk_size_for`.
    """

    chunk_size: int | str = "auto"
    # 0: one process per core.  A series of one chunk (anything up to 2 x 256 steps with the
    # fast engine) still runs inline, so small runs pay no process start-up.
    workers: int = 0


@dataclass(frozen=True)
class Config:
    """A validated run configuration (immutable; build it with :func:`load_config`).

    Attributes
    ----------
    series, normalize, reference, exafs, track, output, run
        One frozen dataclass per TOML section.
    path : str or None
        The configuration file it was read from.
    base_dir : str
        Folder relative paths were resolved against.
    """

    series: SeriesConfig
    normalize: NormalizeConfig = NormalizeConfig()
    reference: ReferenceConfig = ReferenceConfig()
    exafs: ExafsConfig = ExafsConfig()
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
            out[f.name] = _jsonable(asdict(value)) if hasattr(value, "__dataclass_fields__") else value
        return out

    def chunk_size_for(self, n_steps: int) -> int:
        """``[run] chunk_size`` resolved for a series of ``n_steps`` steps.

        An integer is used as given.  ``"auto"``: with a larch engine
        (``[normalize]`` or ``[exafs]``), :data:`AUTO_CHUNK_LARCH` steps so
        checkpoints come every few seconds; with the fast engines half the
        series, at least :data:`AUTO_CHUNK_MIN` and at most
        :data:`AUTO_CHUNK_MAX` steps.  Each chunk costs a fixed ~0.1 s
        (batched operators, warm-start pass, checkpoint), so 16-step chunks
        ran the fast engine at a third of its speed; two chunks keep two
        workers busy, and the cap still checkpoints every few seconds on
        long series.  Depends on ``n_steps`` and the engines only, so it is
        stable for a given input (resume) and independent of ``workers``.
        """
        size = self.run.chunk_size
        if size != "auto":
            return int(size)
        larch = self.normalize.engine == "larch" or (self.exafs.enabled
                                                     and self.exafs.engine == "larch")
        if larch:
            return AUTO_CHUNK_LARCH
        return int(min(AUTO_CHUNK_MAX, max(AUTO_CHUNK_MIN, math.ceil(max(n_steps, 1) / 2))))

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
        return _replace(self, output=_replace(self.output, **changes))

    def with_run(self, **changes: Any) -> "Config":
        """A copy with ``[run]`` fields replaced (validated as in a file)."""
        merged = {**asdict(self.run), **changes}
        return _replace(self, run=_build_run(merged))


def _replace(obj, **changes):
    from dataclasses import replace

    return replace(obj, **changes)


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# ----------------------------------------------------------------------- loading
SECTIONS = ("series", "normalize", "reference", "exafs", "track", "output", "run")
_TRACK_OWN_KEYS = ("enabled", "metal_shell", "ligand_shell", "condition_columns")


def _section_keys(name: str) -> tuple[str, ...]:
    cls = {
        "series": SeriesConfig, "normalize": NormalizeConfig, "reference": ReferenceConfig,
        "exafs": ExafsConfig, "output": OutputConfig, "run": RunConfig,
    }[name]
    keys = tuple(f.name for f in fields(cls))
    if name == "series":
        keys = keys + ("files",)
    return keys


def load_config(source: "str | os.PathLike | Mapping | Config", *, base_dir=None) -> Config:
    """Read and validate a run configuration.

    Parameters
    ----------
    source : path, TOML text, dict or Config
        A ``.toml`` file, the TOML text itself, or a dict with the same
        sections.  A :class:`Config` is returned unchanged.
    base_dir : path, optional
        Folder that relative paths resolve against.  Default: the folder of
        the configuration file, or the current folder for text and dicts.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        Unknown section or key (with a "did you mean ...?" suggestion),
        unreadable file, TOML syntax error, or a value of the wrong type or
        out of range (the message names the key, the value and what is accepted).
    """
    if isinstance(source, Config):
        return source
    path = None
    if isinstance(source, Mapping):
        data = dict(source)
    elif isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        looks_like_toml = isinstance(source, str) and ("\n" in text or "=" in text or text.lstrip().startswith("["))
        if looks_like_toml and ("\n" in text or not _is_file(text)):
            data = _parse_toml(text, "<TOML text>")
        else:
            path = Path(text).expanduser()
            if not path.is_file():
                raise ConfigError(f"configuration file not found: {path}")
            try:
                raw = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: cannot read configuration ({exc})") from None
            data = _parse_toml(raw, str(path))
            path = path.resolve()
    else:
        raise ConfigError(
            f"load_config needs a path, TOML text or dict, got {type(source).__name__}"
        )
    if base_dir is None:
        base = path.parent if path is not None else Path.cwd()
    else:
        base = Path(base_dir).expanduser().resolve()
    return _build(data, base, path)


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except OSError:  # e.g. a name too long to be a path
        return False


def _parse_toml(text: str, where: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None


def _suggest(name: str, options) -> str:
    match = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def _check_keys(section: str, values: Mapping, allowed) -> None:
    for key in values:
        if key in allowed:
            continue
        hint = _suggest(key, allowed)
        if not hint:
            for other in SECTIONS:
                if other not in (section, "track") and key in _section_keys(other):
                    hint = f"; '{key}' belongs in [{other}]"
                    break
        raise ConfigError(
            f"unknown key '{key}' in [{section}]{hint} (accepted: {', '.join(allowed)})"
        )


def _build(data: Mapping, base: Path, path: Path | None) -> Config:
    for name, value in data.items():
        if name not in SECTIONS:
            raise ConfigError(
                f"unknown section [{name}]{_suggest(name, SECTIONS)} (accepted: {', '.join(SECTIONS)})"
            )
        if not isinstance(value, Mapping):
            raise ConfigError(f"[{name}] must be a table of settings, got {value!r}")
    if "series" not in data:
        raise ConfigError("the configuration needs a [series] section with source = the files to read")
    for name in SECTIONS:
        if name != "track":
            _check_keys(name, data.get(name, {}), _section_keys(name))
    series = _build_series(data["series"], base)
    normalize = _build_normalize(data.get("normalize", {}))
    reference = _build_reference(data.get("reference", {}), base)
    exafs = _build_exafs(data.get("exafs"), series.element)
    track = _build_track(data.get("track", {}))
    output = _build_output(data.get("output", {}), base, path)
    run = _build_run(data.get("run", {}))
    if exafs.enabled and reference.file is None and reference.s02 is None:
        raise ConfigError(
            "[reference] needs file (a metal foil to calibrate S0^2 on) or s02 (a fixed value, "
            "e.g. 0.85) when [exafs] is enabled"
        )
    if reference.shell is None and exafs.enabled and series.element:
        reference = _replace(reference, shell=f"{series.element}-{series.element}")
    return Config(
        series=series, normalize=normalize, reference=reference, exafs=exafs, track=track,
        output=output, run=run, path=None if path is None else str(path), base_dir=str(base),
    )


# ------------------------------------------------------------ value validators
def _fail(section: str, key: str, value: Any, accepted: str):
    raise ConfigError(f"[{section}] {key} = {value!r}: must be {accepted}")


def _number(section, key, value, *, default=_UNSET, low=None, high=None, low_open=False,
            accepted=None, allow_none=True):
    if key not in value:
        return None if default is _UNSET else default
    v = value[key]
    desc = accepted or _range_text(low, high, low_open)
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        _fail(section, key, v, desc)
    if low is not None and (v < low or (low_open and v == low)):
        _fail(section, key, v, desc)
    if high is not None and v > high:
        _fail(section, key, v, desc)
    return float(v)


def _range_text(low, high, low_open):
    text = "a number"
    if low is not None:
        text += f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        text += f"{' and' if low is not None else ''} <= {high:g}"
    return text


def _integer(section, key, value, *, default, low=None, high=None, allow_none=False):
    if key not in value:
        return default
    v = value[key]
    if v is None and allow_none:
        return None
    desc = "an integer" + (f" from {low} to {high}" if low is not None and high is not None
                           else f" >= {low}" if low is not None else "")
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            _fail(section, key, v, desc)
    if (low is not None and v < low) or (high is not None and v > high):
        _fail(section, key, v, desc)
    return int(v)


def _boolean(section, key, value, *, default):
    if key not in value:
        return default
    v = value[key]
    if not isinstance(v, bool):
        _fail(section, key, v, "true or false")
    return v


def _choice(section, key, value, options, *, default):
    if key not in value:
        return default
    v = value[key]
    if not isinstance(v, str) or v.lower() not in options:
        hint = _suggest(str(v).lower(), options) if isinstance(v, str) else ""
        raise ConfigError(
            f"[{section}] {key} = {v!r}: must be one of {', '.join(repr(o) for o in options)}{hint}"
        )
    return v.lower()


def _string(section, key, value, *, default=None):
    if key not in value:
        return default
    v = value[key]
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        _fail(section, key, v, "a non-empty text string")
    return v.strip()


def _resolve(base: Path, text: str) -> str:
    p = Path(text).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def _resolve_glob(base: Path, text: str) -> str:
    # Keep the wildcard part intact; only anchor it on the config folder.
    if _glob.has_magic(text):
        p = Path(text).expanduser()
        return str(p if p.is_absolute() else base.resolve() / p)
    return _resolve(base, text)


def _element(section, key, value, *, default=None):
    v = _string(section, key, value, default=default)
    if v is None:
        return None
    if not (1 <= len(v) <= 2 and v[0].isupper() and v.isalpha() and (len(v) == 1 or v[1].islower())):
        _fail(section, key, v, "an element symbol such as 'Pt' or 'Cu'")
    return v


def _shell(section, key, v):
    if not isinstance(v, str):
        _fail(section, key, v, "a shell label 'Absorber-Scatterer' such as 'Pt-O'")
    parts = [p.strip() for p in v.split("-")]
    ok = len(parts) == 2 and all(
        1 <= len(p) <= 2 and p.isalpha() and p[0].isupper() and (len(p) == 1 or p[1].islower())
        for p in parts
    )
    if not ok:
        _fail(section, key, v, "a shell label 'Absorber-Scatterer' such as 'Pt-O'")
    return f"{parts[0]}-{parts[1]}"


# ------------------------------------------------------------------- sections
def _build_series(value: Mapping, base: Path) -> SeriesConfig:
    s = "series"
    if "source" in value and "files" in value:
        raise ConfigError("[series] give either source or files (they are the same setting), not both")
    key = "source" if "source" in value else "files"
    raw = value.get(key)
    if raw is None:
        raise ConfigError("[series] source is missing: give a folder, a glob, a file or a list of files")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        _fail(s, key, raw, "a folder, glob or file path, or a non-empty list of them")
    source = tuple(_resolve_glob(base, i.strip()) for i in items)
    conditions = _string(s, "conditions", value)
    if conditions is not None:
        conditions = _resolve(base, conditions)
    edge = _string(s, "edge", value)
    if edge is not None:
        if edge.upper() not in EDGES:
            raise ConfigError(
                f"[series] edge = {edge!r}: must be one of {', '.join(EDGES)}{_suggest(edge.upper(), EDGES)}"
            )
        edge = edge.upper()
    ref = value.get("reference", "auto")
    if isinstance(ref, bool) or ref == "auto":
        reference = ref
    elif isinstance(ref, str) and ref.strip():
        text = ref.strip()
        # A reference file (matrix series) vs the name of the iref column: a path separator,
        # a data-file suffix or an existing file next to the config makes it a file.
        candidate = Path(text).expanduser()
        if not candidate.is_absolute():
            candidate = base / candidate
        if ("/" in text or "\\" in text or candidate.is_file()
                or Path(text).suffix.lower() in (".dat", ".txt", ".xdi", ".xmu", ".csv", ".tsv", ".asc")):
            reference = _resolve(base, text)
        else:
            reference = text
    else:
        _fail(s, "reference", ref, '"auto", true, false, the name of the reference (iref) column, '
                                   'or a reference file (matrix series; relative to the config file)')
    energy_column = value.get("energy_column")
    if energy_column is not None and (isinstance(energy_column, bool) or not (
            (isinstance(energy_column, str) and energy_column.strip())
            or (isinstance(energy_column, int) and energy_column >= 0))):
        _fail(s, "energy_column", energy_column, "a column label or a 0-based column index")
    columns = value.get("columns")
    if columns is not None:
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            _fail(s, "columns", columns, "a non-empty list of column names (matrix files)")
        columns = tuple(columns)
    return SeriesConfig(
        source=source,
        conditions=conditions,
        element=_element(s, "element", value),
        edge=edge,
        mu=_string(s, "mu", value, default="auto"),
        reference=reference,
        format=_string(s, "format", value, default="auto"),
        pattern=_string(s, "pattern", value),
        energy_column=energy_column,
        columns=columns,
        on_error=_choice(s, "on_error", value, ("skip", "raise"), default="skip"),
    )


def _build_normalize(value: Mapping) -> NormalizeConfig:
    s = "normalize"
    e0 = value.get("e0", "first")
    if isinstance(e0, str):
        e0 = _choice(s, "e0", value, ("first", "each", "reference"), default="first")
    else:
        e0 = _number(s, "e0", value, low=0, low_open=True,
                     accepted='"first", "each", "reference" or a number (eV) > 0', allow_none=False)
    pre1 = _number(s, "pre1", value, high=0, accepted="a number <= 0 (eV relative to e0)")
    pre2 = _number(s, "pre2", value, high=0, accepted="a number <= 0 (eV relative to e0)")
    if pre1 is not None and pre2 is not None and not pre1 < pre2:
        _fail(s, "pre1", pre1, f"< pre2 ({pre2:g})")
    norm1 = _number(s, "norm1", value, low=0, accepted="a number >= 0 (eV relative to e0)")
    norm2 = _number(s, "norm2", value, low=0, low_open=True, accepted="a number > 0 (eV relative to e0)")
    if norm1 is not None and norm2 is not None and not norm1 < norm2:
        _fail(s, "norm1", norm1, f"< norm2 ({norm2:g})")
    window = value.get("wl_window")
    if window is not None:
        if (not isinstance(window, list) or len(window) != 2
                or not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in window)
                or not window[0] < window[1]):
            _fail(s, "wl_window", window, "a pair [low, high] of numbers (eV relative to e0) with low < high")
        window = (float(window[0]), float(window[1]))
    return NormalizeConfig(
        e0=e0, pre1=pre1, pre2=pre2, norm1=norm1, norm2=norm2,
        nnorm=_integer(s, "nnorm", value, default=None, low=0, high=3, allow_none=True),
        nvict=_integer(s, "nvict", value, default=0, low=0, high=4),
        calibrate=_boolean(s, "calibrate", value, default=False),
        edge_energy=_number(s, "edge_energy", value, low=0, low_open=True,
                            accepted="a number (eV) > 0, or unset for the tabulated edge energy"),
        wl_window=window,
        engine=_choice(s, "engine", value, ("fast", "larch"), default="fast"),
    )


def _build_reference(value: Mapping, base: Path) -> ReferenceConfig:
    s = "reference"
    file = _string(s, "file", value)
    s02 = _number(s, "s02", value, low=0, high=1.5, low_open=True, accepted="a number > 0 and <= 1.5")
    if file is not None and s02 is not None:
        raise ConfigError(
            "[reference] give either file (a foil to calibrate S0^2 on) or s02 (a fixed value), not both"
        )
    shell = value.get("shell")
    return ReferenceConfig(
        file=None if file is None else _resolve(base, file),
        shell=None if shell is None else _shell(s, "shell", shell),
        cn=_number(s, "cn", value, default=12.0, low=0, high=24, low_open=True,
                   accepted="a number > 0 and <= 24 (coordination number of the reference shell)",
                   allow_none=False),
        s02=s02,
    )


def _build_exafs(value: Mapping | None, element: str | None) -> ExafsConfig:
    s = "exafs"
    if value is None:
        return ExafsConfig(enabled=False)
    shells = value.get("shells")
    if shells is not None:
        if isinstance(shells, str):
            shells = [shells]
        if not isinstance(shells, list) or not shells:
            _fail(s, "shells", shells, 'a non-empty list of shell labels such as ["Pt-O", "Pt-Pt"]')
        shells = tuple(_shell(s, "shells", v) for v in shells)
        if len(set(shells)) != len(shells):
            _fail(s, "shells", list(shells), "a list without repeated shells")
        absorbers = {sh.split("-")[0] for sh in shells}
        if len(absorbers) > 1 or (element and absorbers != {element}):
            want = element or sorted(absorbers)[0]
            _fail(s, "shells", list(shells), f"shells that all start with the absorber ('{want}-...')")
    kmax = _number(s, "kmax", value, default=ExafsConfig.kmax, low=0, low_open=True, high=25, allow_none=False,
                   accepted="a number > 0 and <= 25 (1/Angstrom)")
    kmin_text = f"a number >= 0 and < kmax ({kmax:g}) (1/Angstrom)"
    kmin = _number(s, "kmin", value, default=ExafsConfig.kmin, low=0, allow_none=False, accepted=kmin_text)
    if not kmin < kmax:
        _fail(s, "kmin", value.get("kmin", kmin), kmin_text)
    rmax = _number(s, "rmax", value, default=ExafsConfig.rmax, low=0, low_open=True, high=15, allow_none=False,
                   accepted="a number > 0 and <= 15 (Angstrom)")
    rmin_text = f"a number >= 0 and < rmax ({rmax:g}) (Angstrom)"
    rmin = _number(s, "rmin", value, default=ExafsConfig.rmin, low=0, allow_none=False, accepted=rmin_text)
    if not rmin < rmax:
        _fail(s, "rmin", value.get("rmin", rmin), rmin_text)
    return ExafsConfig(
        enabled=_boolean(s, "enabled", value, default=True),
        shells=shells,
        share_e0=_boolean(s, "share_e0", value, default=ExafsConfig.share_e0),
        kmin=kmin, kmax=kmax,
        kweight=_integer(s, "kweight", value, default=ExafsConfig.kweight, low=0, high=3),
        dk=_number(s, "dk", value, default=ExafsConfig.dk, low=0, high=10, allow_none=False),
        window=_choice(s, "window", value, WINDOWS, default=ExafsConfig.window),
        rmin=rmin, rmax=rmax,
        fit_space=_choice(s, "fit_space", value, ("r", "k", "q"), default=ExafsConfig.fit_space),
        rbkg=_number(s, "rbkg", value, default=ExafsConfig.rbkg, low=0, high=3, low_open=True,
                     allow_none=False),
        bkg_kmin=_number(s, "bkg_kmin", value, default=ExafsConfig.bkg_kmin, low=0, high=5,
                         allow_none=False, accepted="a number >= 0 and <= 5 (1/Angstrom)"),
        engine=_choice(s, "engine", value, ("fast", "larch"), default="fast"),
        merge_repeats=_merge_repeats(value),
    )


def _merge_repeats(value: Mapping) -> str | None:
    v = value.get("merge_repeats", False)
    if v is False or v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        _fail("exafs", "merge_repeats", v,
              "false or the name of a condition column whose repeated values are averaged")
    return v.strip()


def _build_track(value: Mapping) -> TrackConfig:
    s = "track"
    cols = value.get("condition_columns")
    if cols is not None:
        if isinstance(cols, str):
            cols = [cols]
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            _fail(s, "condition_columns", cols, "a list of condition column names")
        cols = tuple(cols)
    settings = {k: v for k, v in value.items() if k not in _TRACK_OWN_KEYS}
    settings = _validate_track_settings(settings)
    return TrackConfig(
        enabled=_boolean(s, "enabled", value, default=True),
        metal_shell=None if value.get("metal_shell") is None else _shell(s, "metal_shell", value["metal_shell"]),
        ligand_shell=None if value.get("ligand_shell") is None else _shell(s, "ligand_shell", value["ligand_shell"]),
        condition_columns=cols,
        settings=settings,
    )


def _validate_track_settings(settings: dict) -> dict:
    """Let ``tracking.TrackSettings.from_config`` judge the thresholds, when it exists."""
    try:
        from . import tracking
    except ImportError:
        return dict(settings)
    builder = getattr(getattr(tracking, "TrackSettings", None), "from_config", None)
    if builder is None:
        return dict(settings)
    try:
        builder(dict(settings))
    except ConfigError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"[track] {exc}") from None
    return dict(settings)


def _build_output(value: Mapping, base: Path, path: Path | None) -> OutputConfig:
    s = "output"
    directory = _string(s, "dir", value)
    if directory is None:
        directory = f"{path.stem}-output" if path is not None else "operando-output"
    plots = value.get("plots", ["png"])
    if isinstance(plots, str):
        plots = [plots]
    if plots is False:
        plots = []
    if not isinstance(plots, list) or not all(isinstance(p, str) and p.lower() in PLOT_FORMATS for p in plots):
        _fail(s, "plots", plots, f"a list of formats from {list(PLOT_FORMATS)} ([] for no plots)")
    return OutputConfig(
        dir=_resolve(base, directory),
        plots=tuple(dict.fromkeys(p.lower() for p in plots)),
        overwrite=_boolean(s, "overwrite", value, default=False),
        report=_boolean(s, "report", value, default=True),
        athena=_bool_or_auto(s, "athena", value,
                             f'"auto" (series up to {ATHENA_AUTO_MAX_STEPS} steps), true or false'),
    )


def _bool_or_auto(section, key, value, accepted):
    v = value.get(key, "auto")
    if isinstance(v, str) and v.strip().lower() == "auto":
        return "auto"
    if not isinstance(v, bool):
        _fail(section, key, v, accepted)
    return v


def _build_run(value: Mapping) -> RunConfig:
    s = "run"
    size = value.get("chunk_size", "auto")
    if isinstance(size, str) and size.strip().lower() == "auto":
        chunk_size = "auto"
    elif isinstance(size, str):
        _fail(s, "chunk_size", size, '"auto" or an integer >= 1')
    else:
        chunk_size = _integer(s, "chunk_size", value, default="auto", low=1)
    return RunConfig(
        chunk_size=chunk_size,
        workers=_integer(s, "workers", value, default=0, low=0),
    )
