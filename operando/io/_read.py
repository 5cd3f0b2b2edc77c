"""From resolved options to a Series: read files, select and order scans, assemble."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError, NoSpectraError, OperandoError, ReadError
from ..series import Series, default_conditions
from ._align import header_columns, header_times
from ._athena import read_athena_scans
from ._compress import inner_name, read_bytes
from ._conditions import attach, order_files
from ._fio import parse_fio
from ._hdf5 import layout_edge, read_hdf5
from ._matrix import REFERENCE_FILE_ONLY_MATRIX, attach_reference_file, is_matrix, read_matrix
from ._messages import short_list, warn
from ._scan import (ANGLE_NAMES, ENERGY_NAMES, Scan, common_grid, find_column, resolve_edge,
                    scan_from_columns)
from ._select import explain_no_overlap, order_by_time, select_scans
from ._sources import ACCEPTED_SOURCE, entry_problem, name_problem, printable_name
from ._spec import read_spec_scans
from ._text import ACCEPTED_TEXT, decode_text, parse_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """The reading options every scan of a source gets."""

    mu: object = "auto"
    reference: object = "auto"
    energy_column: object = None
    channels: dict | None = None
    dead_time: object = "auto"
    limit: int | None = None
    headers: tuple = ()  # (condition column, header field) pairs: [conditions] headers

    def scan_kwargs(self) -> dict:
        return dict(mu=self.mu, reference=self.reference, energy_column=self.energy_column,
                    channels=self.channels, dead_time=self.dead_time)


# ---------------------------------------------------------------- many files
def read_files(source, files, how, table, opts: Options, element, edge, on_error,
               order) -> Series:
    """A folder's, glob's or list's files as one series (bad files skipped or raised)."""
    files, unlisted = order_files(files, table, keep_order=how == "list" or order == "time")
    if order == "name" and how == "list":
        from ._conditions import natural_key

        files = sorted(files, key=lambda p: natural_key(p.name))
    scans, skipped = [], []
    for path in unlisted:
        skipped.append({"file": printable_name(path),
                        "reason": "not listed in the conditions table"})
    if unlisted:
        warn(source, f"skipped {len(unlisted)} file(s) not listed in the conditions table: "
                     f"{short_list(printable_name(p) for p in unlisted)}")
    bad = []
    for path in files:
        if (problem := name_problem(path) or entry_problem(path)) is not None:
            if on_error == "raise":
                raise ReadError(printable_name(path), problem, ACCEPTED_TEXT)
            bad.append({"file": printable_name(path), "reason": problem})
            continue
        try:
            scans.append(read_file_scan(path, opts))
        except (ReadError, DataError, ConfigError) as exc:
            # ConfigError: a file whose columns the reading settings do not fit (a stray
            # note, another beamline's table) is one bad file of the folder, not a bad config
            if on_error == "raise":
                raise
            bad.append({"file": path.name, "reason": _problem(path, exc)})
        except OperandoError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, OverflowError, OSError) as exc:
            log.debug("unexpected failure reading %s", path, exc_info=True)
            if on_error == "raise":
                raise ReadError(path, f"could not be read ({type(exc).__name__}: {exc})",
                                ACCEPTED_TEXT) from None
            bad.append({"file": path.name, "reason": f"{type(exc).__name__}: {exc}"})
    if bad:
        named = [f"{item['file']} ({item['reason']})" for item in bad]
        warn(source, f"skipped {len(bad)} unreadable file(s): {short_list(named, 3)}")
    skipped += bad
    if not scans:
        reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
        raise NoSpectraError(source, f"none of the {len(files)} files could be read ({reasons}"
                                     f"{' ...' if len(skipped) > 3 else ''})", ACCEPTED_TEXT,
                             skipped=skipped)
    scans, off_edge = select_scans(source, scans, element, edge)
    skipped += off_edge
    if order == "time":
        scans = order_by_time(source, scans)
    base = default_conditions(len(scans), [s.file for s in scans])
    if table is not None:
        gone = {s["file"] for s in skipped} | {Path(inner_name(s["file"])).stem for s in skipped}
        table = table[~table["file"].astype(str).str.strip().isin(gone)]
    conditions = attach(base, table, "file")
    if opts.headers:
        conditions = header_columns(conditions, [s.header for s in scans], dict(opts.headers),
                                    source)
    kinds = {s.kind for s in scans}
    fmt = next(iter(kinds)) if len(kinds) == 1 and kinds <= {"xdi", "fio", "9809"} else "columns"
    return assemble(source, scans, conditions, fmt, element, edge, skipped)


def _problem(path: Path, exc: Exception) -> str:
    """The problem of a failed file without its path (the file is named beside it)."""
    text = getattr(exc, "problem", None) or str(exc)
    for prefix in (f"{path}: ", f"{path.name}: "):
        if text.startswith(prefix):
            return text[len(prefix):]
    return text


def read_file_scan(path: Path, opts: Options) -> Scan:
    raw, compressed = read_bytes(path, limit=opts.limit, accepted=ACCEPTED_TEXT)
    table = parse_text(_plain_path(path, compressed), raw)
    scan = scan_from_table(table, opts)
    scan.file = path.name
    scan.times = header_times(scan.header, path)
    if compressed:
        scan.header["compression"] = compressed
    return scan


def _plain_path(path: Path, compressed) -> Path:
    """The name the content goes by (``scan.xdi.gz`` holds an ``.xdi`` file)."""
    return path.with_name(inner_name(path)) if compressed else path


def scan_from_table(table, opts: Options) -> Scan:
    d_spacing = table.d_spacing or table.header.get("_d_spacing_from_mono_name")
    angle_axis = not find_column(table.labels, ENERGY_NAMES) and find_column(table.labels,
                                                                             ANGLE_NAMES)
    if angle_axis and table.d_spacing is None and d_spacing:
        warn(table.path, f"no valid Mono.d_spacing; using {d_spacing} Angstrom for the "
                         f"{table.header.get('Mono.name')!r} crystal")
    scan = scan_from_columns(table.path, table.path.name, table.labels, table.data,
                             table.lines, d_spacing=d_spacing, header=table.header,
                             element=table.element, edge=table.edge,
                             edge_energy=table.edge_energy, **opts.scan_kwargs())
    scan.kind = table.kind
    return scan


def assemble(source, scans, conditions, fmt, element, edge, skipped=None, extra_meta=None):
    """Put the scans on one grid and build the Series with its metadata."""
    try:
        energy, mu, ref, interpolated = common_grid(scans, source)
    except DataError as exc:
        raise explain_no_overlap(source, scans, exc) from None
    el, ed = resolve_edge(source, energy, mu, scans[0], element, edge)
    kinds = sorted({s.mu_from for s in scans})
    formulas = sorted({s.header.get("mu_formula") for s in scans} - {None})
    metadata = {"source": str(source), "format": fmt,
                "mu_from": kinds[0] if len(kinds) == 1 else kinds,
                "interpolated": bool(interpolated), "skipped": list(skipped or []),
                "header": scans[0].header,
                "scan_times": [s.times or header_times(s.header) for s in scans]}
    if formulas:
        metadata["mu_formula"] = formulas[0] if len(formulas) == 1 else formulas
    trimmed = [{"file": s.file, **s.header["trimmed_rows"]} for s in scans
               if "trimmed_rows" in s.header]
    if trimmed:
        metadata["trimmed"] = trimmed
    settings = {s.label or s.file: s.header["project_settings"] for s in scans
                if s.header.get("project_settings")}
    if settings:
        metadata["project_settings"] = settings
    metadata.update(extra_meta or {})
    return Series(energy=energy, mu=mu, conditions=conditions, element=el, edge=ed,
                  reference=ref, metadata=metadata)


# ---------------------------------------------------------------- one file
def read_single(path: Path, raw: bytes, compressed, kind, table, opts: Options, element,
                edge, columns, on_error) -> Series:
    """One file (any format) as a series."""
    meta = {"compression": compressed} if compressed else {}
    if isinstance(opts.reference, Path) and kind not in ("columns", "matrix"):
        raise ConfigError(REFERENCE_FILE_ONLY_MATRIX.format(ref=opts.reference, source=path))
    if kind in ("hdf5", "nexus"):
        return _read_hdf5(path, raw if compressed else None, table, element, edge, meta,
                          opts.headers)
    if kind == "athena":
        _no_headers(path, opts, "an Athena project (its groups keep free-text titles, no "
                                "header fields)")
        text = decode_text(path, raw)
        scans, skipped = read_athena_scans(path, text)
        return _many(path, scans, skipped, table, "athena", "file", element, edge, meta)
    if kind == "spec":
        skipped: list = []
        scans = _spec_scans(path, raw, compressed, opts, on_error, skipped)
        return _many(path, scans, skipped, table, "spec", "step", element, edge, meta,
                     opts.headers)
    plain = _plain_path(path, compressed)
    text = parse_fio(plain, decode_text(plain, raw)) if kind == "fio" else parse_text(plain, raw)
    matrix = kind == "matrix" or (kind == "columns" and text.kind == "columns"
                                  and is_matrix(text))
    if matrix:
        _no_headers(path, opts, "a matrix file (one header for all its spectra)")
        series = _read_matrix(path, text, table, opts, element, edge, columns, meta)
        reference = opts.reference
        if isinstance(reference, Path):
            series = attach_reference_file(series, path, reference, columns,
                                           opts.energy_column)
        return series
    if isinstance(opts.reference, Path):
        raise ConfigError(REFERENCE_FILE_ONLY_MATRIX.format(ref=opts.reference, source=path))
    scan = scan_from_table(text, opts)
    scan.file = path.name
    conditions = attach(default_conditions(1, [scan.file]), table, "file")
    if opts.headers:
        conditions = header_columns(conditions, [scan.header], dict(opts.headers), path)
    return assemble(path, [scan], conditions, text.kind, element, edge, extra_meta=meta)


def _no_headers(path, opts: Options, what: str) -> None:
    """``[conditions] headers`` needs a header per spectrum; refuse a source without."""
    if opts.headers:
        raise ConfigError(f"[conditions] headers: {Path(path).name} is {what}, with no header "
                          "per spectrum; give those conditions as a table or a log")


def _many(path, scans, skipped, table, fmt, key, element, edge, meta, headers=()) -> Series:
    if skipped:
        warn(path, f"skipped {len(skipped)} group(s)/scan(s): "
                   f"{short_list(s['file'] + ' (' + s['reason'] + ')' for s in skipped)}")
    scans, off_edge = select_scans(path, scans, element, edge)
    skipped = list(skipped) + off_edge
    labels = [s.label for s in scans]
    base = default_conditions(len(scans), [s.file for s in scans])
    if fmt == "athena":
        base["label"] = labels
    conditions = attach(base, table, key, labels=labels)
    if headers:  # SPEC scans' and NeXus entries' own header fields
        conditions = header_columns(conditions, [s.header for s in scans], dict(headers), path)
    return assemble(path, scans, conditions, fmt, element, edge, skipped, extra_meta=meta)


def _spec_scans(path, raw, compressed, opts, on_error, skipped):
    kwargs = dict(on_error=on_error, skipped=skipped)
    if not compressed:
        return read_spec_scans(path, opts.scan_kwargs(), **kwargs)
    # silx's SPEC reader opens files by name: give it the decompressed copy.
    with tempfile.TemporaryDirectory(prefix="operando-spec-") as folder:
        plain = Path(folder) / inner_name(path)
        plain.write_bytes(raw)
        return read_spec_scans(plain, opts.scan_kwargs(), **kwargs, display=path)


def _read_matrix(path, text, table, opts, element, edge, columns, meta) -> Series:
    energy, mu, files, labels, trimmed = read_matrix(text, energy_column=opts.energy_column,
                                                     columns=columns, mu=opts.mu)
    base = default_conditions(len(files), files)
    base["label"] = labels
    conditions = attach(base, table, "step", labels=labels)
    scan = Scan(file=path.name, energy=energy, mu=mu[0], element=text.element,
                edge=text.edge, edge_energy=text.edge_energy, header=text.header)
    el, ed = resolve_edge(path, energy, mu, scan, element, edge)
    metadata = {"source": str(path), "format": "matrix", "mu_from": "mu",
                "interpolated": False, "skipped": [], "header": text.header, **meta}
    if trimmed:
        metadata["trimmed"] = [{"file": path.name, **trimmed}]
    return Series(energy=energy, mu=mu, conditions=conditions, element=el, edge=ed,
                  reference=None, metadata=metadata)


def _read_hdf5(path, content, table, element, edge, meta, headers=()) -> Series:
    layout, found = read_hdf5(path, content)
    if layout == "nexus":
        return _many(path, found, [], table, "nexus", "step", element, edge, meta, headers)
    if headers:
        raise ConfigError(f"[conditions] headers: {Path(path).name} is an operando HDF5 file, "
                          "with no header per spectrum (its conditions are in the file)")
    fields = found
    conditions = fields["conditions"]
    if table is not None:
        conditions = attach(conditions, table, "step")
    el, ed = layout_edge(path, fields, fields["mu"], element, edge)
    metadata = dict(fields["metadata"])
    metadata.update(meta)
    return Series(energy=fields["energy"], mu=fields["mu"], conditions=conditions,
                  element=el, edge=ed, reference=fields["reference"], metadata=metadata)


def read_one(path: Path, fmt, detect, opts: Options):
    """``(raw, compression, kind)`` of one file."""
    if not path.exists():
        raise ReadError(path, "file or folder not found", ACCEPTED_SOURCE)
    raw, compressed = read_bytes(path, limit=opts.limit, accepted=ACCEPTED_SOURCE)
    return raw, compressed, fmt if fmt != "auto" else detect(path, raw)
