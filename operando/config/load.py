"""Reading a configuration: TOML file, text or dict -> validated :class:`Config`."""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields, replace
from functools import partial
from pathlib import Path
from typing import Mapping

from .._util.larch_compat import FT_WINDOWS as WINDOWS
from .._util.validate import suggest as _suggest
from ..errors import ConfigError
from ..options import TrackSettings
from .conditions import build_conditions
from .sections import (ATHENA_AUTO_MAX_STEPS, EDGES, PLOT_FORMATS, ComponentsConfig, Config,
                       ConditionsConfig, ExafsConfig, NormalizeConfig, OutputConfig, FoilConfig,
                       RunConfig, SeriesConfig, TrackConfig, build_run)
from .values import (check_shells, get_boolean, get_choice, get_element, get_integer, get_number,
                     get_pair, get_string, read, reject, resolve_glob, resolve_path, shell_label)
from .two_phase import two_phase_config


# ----------------------------------------------------------------------- loading
SECTIONS = ("series", "conditions", "normalize", "foil", "exafs", "components", "track", "output", "run")
_TRACK_OWN_KEYS = ("enabled", "metal_shell", "ligand_shell", "condition_columns")


def _section_keys(name: str) -> tuple[str, ...]:
    if name == "track":       # its own keys and the tracker's thresholds
        return _TRACK_OWN_KEYS + tuple(f.name for f in fields(TrackSettings))
    cls = {
        "series": SeriesConfig, "conditions": ConditionsConfig, "normalize": NormalizeConfig, "foil": FoilConfig,
        "exafs": ExafsConfig, "components": ComponentsConfig, "output": OutputConfig,
        "run": RunConfig,
    }[name]
    return tuple(f.name for f in fields(cls))


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


def _check_keys(section: str, values: Mapping, allowed) -> None:
    for key in values:
        if key in allowed:
            continue
        hint = _suggest(key, allowed)
        if not hint:
            for other in SECTIONS:
                if other != section and key in _section_keys(other):
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
        if name != "conditions":      # (its log entries have keys of their own)
            _check_keys(name, data.get(name, {}), _section_keys(name))
    series = _build_series(data["series"], base)
    conditions = build_conditions(data.get("conditions", {}), base)
    normalize = _build_normalize(data.get("normalize", {}))
    foil = _build_foil(data.get("foil", {}), base)
    exafs = replace(_build_exafs(data.get("exafs"), series.element, base), two_phase=two_phase_config(data))
    components = _build_components(data.get("components"), base)
    track = _build_track(data.get("track", {}))
    output = _build_output(data.get("output", {}), base, path)
    run = build_run(data.get("run", {}))
    if exafs.enabled and foil.file is None and foil.s02 is None:
        raise ConfigError(
            "[foil] needs file (a metal foil to calibrate S0^2 on) or s02 (a fixed value, "
            "e.g. 0.85) when [exafs] is enabled"
        )
    if foil.shell is None and exafs.enabled and series.element:
        foil = replace(foil, shell=f"{series.element}-{series.element}")
    return Config(
        series=series, conditions=conditions, normalize=normalize, foil=foil, exafs=exafs,
        components=components, track=track,
        output=output, run=run, path=None if path is None else str(path), base_dir=str(base),
    )


# ------------------------------------------------------------------- sections
# Each section's keys and the check of each (``rule(section, key, table)``, from
# :mod:`.values`); a key left out of a table is read by its section's builder, an absent
# key takes its section dataclass's default (the options' for stage options).
_STRING, _BOOLEAN = get_string, get_boolean
_ENGINE = partial(get_choice, options=("fast", "larch"))
_SERIES_RULES = {
    "element": get_element, "format": _STRING, "pattern": _STRING,
    "on_error": partial(get_choice, options=("skip", "raise")),
    "order": partial(get_choice, options=("auto", "name", "time")),
    "use_project_settings": _BOOLEAN,
}
_NORMALIZE_RULES = {
    "pre1": partial(get_number, high=0, accepted="a number <= 0 (eV relative to e0)"),
    "pre2": partial(get_number, high=0, accepted="a number <= 0 (eV relative to e0)"),
    "norm1": partial(get_number, low=0, accepted="a number >= 0 (eV relative to e0)"),
    "norm2": partial(get_number, low=0, low_open=True, accepted="a number > 0 (eV relative to e0)"),
    "nnorm": partial(get_integer, low=0, high=3, allow_none=True),
    "nvict": partial(get_integer, low=0, high=4),
    "engine": _ENGINE,
    "min_edge_snr": partial(get_number, low=0, high=1e3, allow_none=False),
    "calibrate": _BOOLEAN,
    "edge_energy": partial(get_number, low=0, low_open=True, high=2e5,
                           accepted="eV in (0, 200000], or unset for the tabulated edge"),
    "wl_window": partial(get_pair, accepted="a pair [low, high] of numbers (eV relative to e0) "
                                            "with low < high"),
}
_TEMPERATURE = partial(get_number, low=0, low_open=True, high=5000,
                       accepted="a temperature in K (> 0)")
_FOIL_RULES = {
    "cn": partial(get_number, low=0, high=24, low_open=True, allow_none=False,
                  accepted="a number > 0 and <= 24 (coordination number of the reference shell)"),
    "deltar": partial(get_choice, options=("fix", "free")),
    "de0": partial(get_choice, options=("fix", "free")),
    "sigma2_margin": partial(get_number, low=0, low_open=True, high=0.05, allow_none=False),
    "disorder_model": partial(get_choice, options=("debye", "einstein")),
    "s02": partial(get_number, low=0, high=1.5, low_open=True, accepted="a number > 0 and <= 1.5"),
    "temperature_K": _TEMPERATURE, "sample_temperature_K": _TEMPERATURE,
    "debye_temperature_K": _TEMPERATURE,
    "mu": _STRING,
}
_EXAFS_RULES = {
    "kweight": partial(get_integer, low=0, high=3),
    "dk": partial(get_number, low=0, high=10, allow_none=False),
    "window": partial(get_choice, options=WINDOWS),
    "fit_space": partial(get_choice, options=("r", "k", "q")),
    "significance": partial(get_choice, options=("metal", "all", "none")),
    "enabled": _BOOLEAN,
    "rbkg": partial(get_number, low=0, high=3, low_open=True, allow_none=False),
    "bkg_kmin": partial(get_number, low=0, high=5, allow_none=False,
                        accepted="a number >= 0 and <= 5 (1/Angstrom)"),
    "engine": _ENGINE,
    "systematics": _BOOLEAN,
}
_COMPONENTS_RULES = {
    "erange": partial(get_pair, accepted="[low, high] in eV from e0 (|value| < 10000), low < high"),
    "space": partial(get_choice, options=("norm", "flat", "dnormde")),
    "sum_to_one": _BOOLEAN,
    "shifts": _BOOLEAN,
    "max_shift": partial(get_number, low=0, high=50, low_open=True, allow_none=False),
    "metal": _STRING,
}
_OUTPUT_RULES = {"overwrite": _BOOLEAN, "report": _BOOLEAN}


def _build_series(value: Mapping, base: Path) -> SeriesConfig:
    s = "series"
    raw = value.get("source")
    if raw is None:
        raise ConfigError("[series] source is missing: give a folder, a glob, a file or a list of files")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        reject(s, "source", raw, "a folder, glob or file path, or a non-empty list of them")
    out = read(s, value, _SERIES_RULES)
    out["source"] = tuple(resolve_glob(base, i.strip()) for i in items)
    conditions = get_string(s, "conditions", value)
    if conditions is not None:
        out["conditions"] = resolve_path(base, conditions)
    edge = get_string(s, "edge", value)
    if edge is not None:
        if edge.upper() not in EDGES:
            raise ConfigError(
                f"[series] edge = {edge!r}: must be one of {', '.join(EDGES)}{_suggest(edge.upper(), EDGES)}"
            )
        out["edge"] = edge.upper()
    ref = value.get("reference", "auto")
    if isinstance(ref, bool) or ref == "auto":
        out["reference"] = ref
    elif isinstance(ref, str) and ref.strip():
        text = ref.strip()
        # A reference file (matrix series) vs the name of the iref column: a path separator,
        # a data-file suffix or an existing file next to the config makes it a file.
        candidate = Path(text).expanduser()
        if not candidate.is_absolute():
            candidate = base / candidate
        if ("/" in text or "\\" in text or candidate.is_file()
                or Path(text).suffix.lower() in (".dat", ".txt", ".xdi", ".xmu", ".csv", ".tsv", ".asc")):
            out["reference"] = resolve_path(base, text)
        else:
            out["reference"] = text
    else:
        reject(s, "reference", ref, '"auto", true, false, the name of the reference (iref) column, '
                                   'or a reference file (matrix series; relative to the config file)')
    energy_column = value.get("energy_column")
    if energy_column is not None and (isinstance(energy_column, bool) or not (
            (isinstance(energy_column, str) and energy_column.strip())
            or (isinstance(energy_column, int) and energy_column >= 0))):
        reject(s, "energy_column", energy_column, "a column label or a 0-based column index")
    out["energy_column"] = energy_column
    columns = value.get("columns")
    if columns is not None:
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            reject(s, "columns", columns, "a non-empty list of column names (matrix files)")
        out["columns"] = tuple(columns)
    return SeriesConfig(**out, mu=_mu(value), channels=_channels(value),
                        dead_time=_bool_or_auto(s, "dead_time", value, 'true, false or "auto" (where '
                                                'the file has the ICR/OCR columns)'))


#: Roles of [series] channels (see operando.io.read_series).
_CHANNEL_ROLES = ("i0", "it", "iref", "fluorescence", "icr", "ocr")


def _mu(value: Mapping):
    v = value.get("mu", SeriesConfig.mu)
    if isinstance(v, list):
        if not v or not all(isinstance(c, str) and c.strip() for c in v):
            reject("series", "mu", v, "a list of fluorescence channel names (summed, over i0)")
        return tuple(c.strip() for c in v)
    return get_string("series", "mu", value, default=SeriesConfig.mu)


def _channels(value: Mapping):
    v = value.get("channels")
    if v is None:
        return None
    if not isinstance(v, Mapping) or not all(isinstance(c, str) for c in v.values()):
        reject("series", "channels", v, "a table role = column, roles " + ", ".join(_CHANNEL_ROLES))
    for role in v:
        if role not in _CHANNEL_ROLES:
            raise ConfigError(f"[series] channels: unknown role '{role}'{_suggest(role, _CHANNEL_ROLES)}"
                              f" (accepted: {', '.join(_CHANNEL_ROLES)})")
    return tuple(sorted(v.items()))


def _build_normalize(value: Mapping) -> NormalizeConfig:
    s = "normalize"
    out = read(s, value, _NORMALIZE_RULES)
    if isinstance(value.get("e0"), str):
        out["e0"] = get_choice(s, "e0", value, ("median", "first", "each", "reference"))
    elif "e0" in value:
        out["e0"] = get_number(s, "e0", value, low=0, low_open=True, high=2e5, allow_none=False,
                               accepted='"median", "first", "each", "reference" or a number (eV) '
                                        '> 0 (<= 2e5)')
    for lo, hi in (("pre1", "pre2"), ("norm1", "norm2")):
        if out.get(lo) is not None and out.get(hi) is not None and not out[lo] < out[hi]:
            reject(s, lo, out[lo], f"< {hi} ({out[hi]:g})")
    return NormalizeConfig(**out)


def _build_foil(value: Mapping, base: Path) -> FoilConfig:
    s = "foil"
    out = read(s, value, _FOIL_RULES)
    file = get_string(s, "file", value)
    if file is not None and out.get("s02") is not None:
        raise ConfigError(
            "[foil] give either file (a foil to calibrate S0^2 on) or s02 (a fixed value), not both"
        )
    sigma2 = value.get("sigma2", FoilConfig.sigma2)
    if isinstance(sigma2, bool) or not (sigma2 in ("fix", "bound", "free") or (
            isinstance(sigma2, (int, float)) and 0 < sigma2 < 0.05)):
        reject(s, "sigma2", sigma2, '"fix", "bound", "free", or a value in A^2 (0 < sigma2 < 0.05)')
    if (out.get("temperature_K") is not None and out.get("sample_temperature_K") is not None
            and out["temperature_K"] != out["sample_temperature_K"]
            and out.get("debye_temperature_K") is None):
        raise ConfigError("[foil] a sigma2 temperature correction (temperature_K != "
                          "sample_temperature_K) needs debye_temperature_K")
    if value.get("shell") is not None:
        out["shell"] = shell_label(s, "shell", value["shell"])
    return FoilConfig(**out, file=None if file is None else resolve_path(base, file),
                      sigma2=float(sigma2) if isinstance(sigma2, (int, float)) else sigma2)


def _interval(section, value, keys, defaults, ceiling, unit):
    """``(lo, hi)`` of a window such as kmin/kmax: hi in (0, ceiling], 0 <= lo < hi."""
    lo_key, hi_key = keys
    hi = get_number(section, hi_key, value, default=defaults[1], low=0, low_open=True, high=ceiling,
                    allow_none=False, accepted=f"a number > 0 and <= {ceiling} ({unit})")
    lo_text = f"a number >= 0 and < {hi_key} ({hi:g}) ({unit})"
    lo = get_number(section, lo_key, value, default=defaults[0], low=0, allow_none=False,
                    accepted=lo_text)
    if not lo < hi:
        reject(section, lo_key, value.get(lo_key, lo), lo_text)
    return lo, hi


def _build_exafs(value: Mapping | None, element: str | None, base: Path) -> ExafsConfig:
    s = "exafs"
    if value is None:
        return ExafsConfig(enabled=False)
    out = {"enabled": True, **read(s, value, _EXAFS_RULES)}
    if value.get("shells") is not None:
        out["shells"] = check_shells(value["shells"], element, base)
    out["kmin"], out["kmax"] = _interval(s, value, ("kmin", "kmax"),
                                         (ExafsConfig.kmin, ExafsConfig.kmax), 25, "1/Angstrom")
    out["rmin"], out["rmax"] = _interval(s, value, ("rmin", "rmax"),
                                         (ExafsConfig.rmin, ExafsConfig.rmax), 15, "Angstrom")
    share_e0 = value.get("share_e0", ExafsConfig.share_e0)
    if share_e0 not in (True, False, "phase") or not isinstance(share_e0, (bool, str)):
        reject(s, "share_e0", share_e0, 'true (one dE0), false (one per shell) or "phase"')
    return ExafsConfig(**out, share_e0=share_e0, merge_repeats=_merge_repeats(value))


#: Standards that name part of the series rather than a file.
_SERIES_STANDARDS = ("first", "last", "reference_channel")


def _build_components(value: Mapping | None, base: Path) -> ComponentsConfig:
    s = "components"
    if value is None:
        return ComponentsConfig(enabled=False)
    raw = value.get("standards", [])
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, list):
        pairs = [(None, v) for v in raw]
    elif isinstance(raw, Mapping):
        pairs = list(raw.items())
    else:
        reject(s, "standards", raw, "a list of standard files (or \"first\", \"last\", "
               "\"step:N\", \"steps:A-B\", \"reference_channel\"), or a table name = source")
    refs = []
    for name, source in pairs:
        if not isinstance(source, str) or not source.strip():
            reject(s, "standards", raw, "standard sources as text")
        text = source.strip()
        if text not in _SERIES_STANDARDS and not text.startswith(("step:", "steps:")):
            path, _, group = text.partition("#")
            text = resolve_path(base, path) + (f"#{group}" if group else "")
        refs.append((str(name) if name is not None else None, text))
    method = get_choice(s, "method", value, ("lcf", "mcr"), default="lcf" if refs else "mcr")
    if method == "lcf" and len(refs) < 2:   # one weight is the sum_to_one constraint or a scale
        reject(s, "standards", raw, "two or more for method = \"lcf\" (one weight is no fraction)")
    n_comp = value.get("n_components", "auto")
    if n_comp == "auto":
        n_comp = None
    elif isinstance(n_comp, bool) or not isinstance(n_comp, int) or not 1 <= n_comp <= 10:
        reject(s, "n_components", n_comp, '"auto" or an integer from 1 to 10')
    return ComponentsConfig(**read(s, value, _COMPONENTS_RULES), enabled=True,
                            standards=tuple(refs), method=method, n_components=n_comp)


def _merge_repeats(value: Mapping) -> str | None:
    v = value.get("merge_repeats", False)
    if v is False or v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        reject("exafs", "merge_repeats", v,
               "false or the name of a condition column whose repeated values are averaged")
    return v.strip()


def _build_track(value: Mapping) -> TrackConfig:
    s = "track"
    cols = value.get("condition_columns")
    if cols is not None:
        if isinstance(cols, str):
            cols = [cols]
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            reject(s, "condition_columns", cols, "a list of condition column names")
        cols = tuple(cols)
    settings = {k: v for k, v in value.items() if k not in _TRACK_OWN_KEYS}
    try:  # the thresholds, judged by TrackSettings
        TrackSettings(**settings)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[track] {exc}") from None
    return TrackConfig(
        enabled=get_boolean(s, "enabled", value, default=True),
        metal_shell=None if value.get("metal_shell") is None else shell_label(s, "metal_shell", value["metal_shell"]),
        ligand_shell=None if value.get("ligand_shell") is None else shell_label(s, "ligand_shell", value["ligand_shell"]),
        condition_columns=cols,
        settings=settings,
    )


def _build_output(value: Mapping, base: Path, path: Path | None) -> OutputConfig:
    s = "output"
    directory = get_string(s, "dir", value)
    if directory is None:
        directory = f"{path.stem}-output" if path is not None else OutputConfig.dir
    plots = value.get("plots", list(OutputConfig.plots))
    if isinstance(plots, str):
        plots = [plots]
    if plots is False:
        plots = []
    if not isinstance(plots, list) or not all(isinstance(p, str) and p.lower() in PLOT_FORMATS for p in plots):
        reject(s, "plots", plots, f"a list of formats from {list(PLOT_FORMATS)} ([] for no plots)")
    return OutputConfig(
        **read(s, value, _OUTPUT_RULES),
        dir=resolve_path(base, directory),
        plots=tuple(dict.fromkeys(p.lower() for p in plots)),
        athena=_bool_or_auto(s, "athena", value,
                             f'"auto" (series up to {ATHENA_AUTO_MAX_STEPS} steps), true or false'),
    )


def _bool_or_auto(section, key, value, accepted):
    v = value.get(key, "auto")
    if isinstance(v, str) and v.strip().lower() == "auto":
        return "auto"
    if not isinstance(v, bool):
        reject(section, key, v, accepted)
    return v
