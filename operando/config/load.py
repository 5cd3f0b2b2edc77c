"""Reading a configuration: TOML file, text or dict -> validated :class:`Config`."""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Mapping

from .._util.rules import text
from .._util.validate import suggest as _suggest
from ..errors import ConfigError
from ..options import TrackSettings
from .conditions import build_conditions
from .sections import (ComponentsConfig, Config, ConditionsConfig, ExafsConfig, FoilConfig,
                       NormalizeConfig, OutputConfig, RunConfig, SeriesConfig, TrackConfig)
from .values import check_shells, get, reject, resolve_glob, resolve_path, shell_label
from .two_phase import two_phase_config


# ----------------------------------------------------------------------- loading
SECTIONS = ("series", "conditions", "normalize", "foil", "exafs", "components", "track", "output", "run")
#: [track]'s own keys; the others are the tracker's thresholds (TrackConfig.settings).
_TRACK_OWN_KEYS = tuple(f.name for f in fields(TrackConfig) if f.name != "settings")


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
    normalize = _section(NormalizeConfig, "normalize", data.get("normalize", {}))
    foil = _build_foil(data.get("foil", {}), base)
    exafs = _build_exafs(data, series.element, base)
    components = _build_components(data.get("components"), base)
    track = _build_track(data.get("track", {}))
    output = _build_output(data.get("output", {}), base, path)
    run = _section(RunConfig, "run", data.get("run", {}))
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
def _section(cls, name: str, table: Mapping, **given):
    """``[name]`` as ``cls``: every key checked by its field's rule (``given``: what the
    builder resolved, such as paths); a refused value is named with its section."""
    try:
        return cls(**{**table, **given})
    except ConfigError as exc:
        raise ConfigError(f"[{name}] {exc}") from None


def _build_series(value: Mapping, base: Path) -> SeriesConfig:
    s = "series"
    raw = value.get("source")
    if raw is None:
        raise ConfigError("[series] source is missing: give a folder, a glob, a file or a list of files")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        reject(s, "source", raw, "a folder, glob or file path, or a non-empty list of them")
    conditions = get(s, "conditions", value, text)
    ref = value.get("reference", "auto")
    if isinstance(ref, bool) or ref == "auto":
        reference = ref
    elif isinstance(ref, str) and ref.strip():
        label = ref.strip()
        # A reference file (matrix series) vs the name of the iref column: a path separator,
        # a data-file suffix or an existing file next to the config makes it a file.
        candidate = Path(label).expanduser()
        if not candidate.is_absolute():
            candidate = base / candidate
        if ("/" in label or "\\" in label or candidate.is_file()
                or Path(label).suffix.lower() in (".dat", ".txt", ".xdi", ".xmu", ".csv", ".tsv", ".asc")):
            reference = resolve_path(base, label)
        else:
            reference = label
    else:
        reject(s, "reference", ref, '"auto", true, false, the name of the reference (iref) column, '
                                   'or a reference file (matrix series; relative to the config file)')
    return _section(SeriesConfig, s, value, source=tuple(resolve_glob(base, i.strip()) for i in items),
                    conditions=None if conditions is None else resolve_path(base, conditions),
                    reference=reference)


def _build_foil(value: Mapping, base: Path) -> FoilConfig:
    file = get("foil", "file", value, text)
    shell = value.get("shell")
    return _section(FoilConfig, "foil", value, file=None if file is None else resolve_path(base, file),
                    shell=None if shell is None else shell_label("foil", "shell", shell))


def _build_exafs(data: Mapping, element: str | None, base: Path) -> ExafsConfig:
    value = data.get("exafs")
    if value is None:
        return ExafsConfig()
    shells = value.get("shells")
    return _section(ExafsConfig, "exafs", value, enabled=value.get("enabled", True),
                    shells=None if shells is None else check_shells(shells, element, base),
                    two_phase=two_phase_config(data))


#: Standards that name part of the series rather than a file.
_SERIES_STANDARDS = ("first", "last", "reference_channel")


def _build_components(value: Mapping | None, base: Path) -> ComponentsConfig:
    s = "components"
    if value is None:
        return ComponentsConfig()
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
        source = source.strip()
        if source not in _SERIES_STANDARDS and not source.startswith(("step:", "steps:")):
            path, _, group = source.partition("#")
            source = resolve_path(base, path) + (f"#{group}" if group else "")
        refs.append((str(name) if name is not None else None, source))
    out = _section(ComponentsConfig, s, value, enabled=True, standards=tuple(refs),
                   method=value.get("method", "lcf" if refs else "mcr"))
    if out.method == "lcf" and len(refs) < 2:   # one weight is the sum_to_one constraint or a scale
        reject(s, "standards", raw, "two or more for method = \"lcf\" (one weight is no fraction)")
    return out


def _build_track(value: Mapping) -> TrackConfig:
    own = {k: v for k, v in value.items() if k in _TRACK_OWN_KEYS}
    settings = {k: v for k, v in value.items() if k not in _TRACK_OWN_KEYS}
    _section(TrackSettings, "track", settings)          # the thresholds, checked here
    shells = {key: shell_label("track", key, own[key]) for key in ("metal_shell", "ligand_shell")
              if own.get(key) is not None}
    return _section(TrackConfig, "track", own, **shells, settings=settings)


def _build_output(value: Mapping, base: Path, path: Path | None) -> OutputConfig:
    directory = get("output", "dir", value, text)
    if directory is None:
        directory = f"{path.stem}-output" if path is not None else OutputConfig.dir
    return _section(OutputConfig, "output", value, dir=resolve_path(base, directory))
