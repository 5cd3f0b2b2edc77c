"""Readers: files -> :class:`operando.series.Series`.

``read_series`` recognises these layouts (``format="auto"``):

``"columns"`` / ``"xdi"``
    A folder, glob or list of per-scan text column files (XDI, plain columns
    with a ``#`` label line, NSLS-II QAS/ISS headers), one spectrum per file;
    or a single such file (a 1-step series).  Conditions CSV keyed by ``file``
    (basename); the spectra follow its row order, else natural sort of names.
``"matrix"``
    One text file: an energy column plus one mu column per spectrum (no
    i0/it/if/iref counter columns).  Conditions keyed by ``step`` (0-based).
    A dead frame (all-zero or NaN column) is kept; the stages flag it.
``"athena"``
    An Athena project (``.prj``) via ``larch.io.read_athena``: every group in
    order; ``file`` is ``project.prj#group`` and a ``label`` column holds the
    group name.
``"spec"``
    A SPEC file: every ``#S`` scan is one spectrum (``file`` ``name#S<n>``).
``"hdf5"``
    The operando layout written by :func:`write_hdf5`:

    ======================  ==================================================
    ``/`` attrs             ``format="operando-series"``, ``version=1``,
                            ``element``, ``edge`` (absent when unknown),
                            ``metadata`` (JSON text)
    ``/energy``             (n_e,) float64, eV (attr ``units="eV"``)
    ``/mu``                 (n, n_e) float64
    ``/reference``          (n, n_e) float64, optional
    ``/conditions``         group; attr ``columns`` = JSON list of column
                            names in order; one dataset ``cNNN`` per column
                            with attrs ``name`` and ``kind``: a numpy dtype
                            string (numbers/bools), ``"str"`` (UTF-8
                            strings) or ``"json"`` (mixed numbers and labels,
                            one JSON value per row)
    ======================  ==================================================

    :func:`open_hdf5` opens such a file lazily (:class:`LazySeries`: energy,
    conditions and metadata in memory, rows of ``/mu`` and ``/reference`` read
    per chunk); :func:`operando.run` streams operando HDF5 sources this way.
``"nexus"``
    NeXus files whose top-level ``NXentry`` groups have ``definition`` =
    ``NXxas``.  Supported: energy from ``data/energy`` or
    ``[instrument/]monochromator/energy``; mu from ``data/mu`` (or
    ``data/data``), else from ``[instrument/]incoming_beam/data`` and
    ``[instrument/]absorbed_beam/data`` as ln(incoming/absorbed), or
    absorbed/incoming when ``data/mode`` (or ``mode``) says fluorescence;
    2-D detector data gives one spectrum per row; entries in natural name
    order; optional ``sample/element`` and ``edge``.  Nothing else of NXxas
    is read.

mu (``mu="auto"``): ``i0`` and ``it``/``itrans``/``i1`` -> transmission
ln(i0/it); else ``i0`` and one fluorescence column (``if``/``iff``/
``ifluor``/``pips``) -> if/i0; else a single ``mu``/``xmu`` column; anything
else is ambiguous and raises :class:`~operando.errors.ConfigError` listing the
columns and choices.  Reference channel (``reference="auto"``): ln(it/iref)
when an ``iref``/``irefer``/``ir``/``i2`` column exists.  For a matrix series
the reference channel can come from a separate matrix file of the same layout
(``reference="cu_nc_reference.dat"``: an energy column plus one reference mu
column per spectrum, in step order), interpolated onto the sample grid when
the grids differ.

All spectra are put on the first spectrum's energy grid restricted to the
common overlap (linear interpolation); ``metadata["interpolated"]`` says
whether any was.  Energies below 100 are taken as keV and converted to eV with
a warning.
"""

from __future__ import annotations

import glob as _glob
import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, OperandoError, ReadError
from ..series import Series, default_conditions
from ._conditions import attach, load_conditions, order_files
from ._formats import (HDF5_SIGNATURE, is_matrix, looks_like_spec, read_athena_scans,
                       read_hdf5, read_matrix, read_spec_scans, write_hdf5)
from ._scan import (ANGLE_NAMES, ENERGY_NAMES, Scan, common_grid, find_column, resolve_edge,
                    scan_from_columns, warn)
from ._lazy import LazySeries, is_operando_hdf5, open_hdf5
from ._text import ACCEPTED_TEXT, parse_text

__all__ = ["read_series", "write_hdf5", "open_hdf5", "LazySeries"]

log = logging.getLogger(__name__)

FORMATS = ("auto", "columns", "xdi", "matrix", "athena", "spec", "hdf5", "nexus")
#: Files in a folder that are never spectra.
NOT_DATA = {".csv", ".json", ".toml", ".yaml", ".yml", ".md", ".png", ".pdf", ".log", ".ini",
            ".cfg", ".html", ".py", ".ipynb", ".h5", ".hdf5", ".prj", ".nxs"}
ACCEPTED_SOURCE = ("a folder, glob or list of column files, or one .xdi/.dat/.txt column "
                   "file, matrix file, Athena .prj, SPEC file or .h5/.nxs file")


def read_series(source, *, conditions=None, mu="auto", element=None, edge=None,
                energy_column=None, columns=None, reference="auto", format="auto",
                pattern=None, on_error="skip") -> Series:
    """Read XAS spectra into a :class:`~operando.series.Series`.

    Parameters
    ----------
    source : path-like, str glob, or list of path-like
        A folder, a glob (``"scans/*.dat"``), a list of files, or one file
        (column/XDI, matrix, Athena ``.prj``, SPEC, HDF5/NeXus).
    conditions : path-like or DataFrame, optional
        Conditions table.  Keyed by ``file`` (basename) for per-file sources
        (and then giving the order of the spectra), by ``step`` (0-based) for
        matrix files; either key for the other formats.  Columns mixing
        numbers and labels (``potential_V`` with ``"OCP"``) stay object
        columns with the numbers as floats.
    mu : str
        ``"auto"``, ``"transmission"`` (ln(i0/it)), ``"fluorescence"``
        (if/i0), ``"mu"`` (the single mu column) or a column name.
    element, edge : str, optional
        Used when the file header does not say; checked against the data's
        energy range (DataError when the tabulated edge lies outside it).
        Guessed with ``xraydb.guess_edge`` when neither header nor argument
        gives them.
    energy_column : str or int, optional
        Energy column label or 0-based index (default: a column named
        energy, else an angle column with the mono d-spacing, else the first).
    columns : list of str, optional
        For matrix files, the spectrum columns to read (default all).
    reference : "auto", True, False, None, str or path-like
        Reference channel: ``"auto"``/True -> ln(it/iref) when an iref
        column exists; a column name -> that column as iref; False/None -> none.
        A path (a :class:`~pathlib.Path`, or a string naming an existing file,
        containing a path separator or ending in a data-file suffix such as
        ``.dat``) -> the reference channel from that file; matrix series only.
        The file must be a matrix file (energy + one column holding the
        reference mu per spectrum, e.g. ``energy ref_000 ref_001 ...``) with
        exactly one column per spectrum read (the ``columns=`` selection, when
        given, picks the same positions from it); it is interpolated linearly
        onto the sample's energy grid when the grids differ and must cover it.
        ``metadata["reference_source"]`` names the file.
    format : str
        One of ``"auto"``, ``"columns"``, ``"xdi"``, ``"matrix"``,
        ``"athena"``, ``"spec"``, ``"hdf5"``, ``"nexus"``.
    pattern : str, optional
        Glob filter for the files of a folder (e.g. ``"*.dat"``).
    on_error : "skip" or "raise"
        For multi-spectrum sources: skip a bad file/scan with an
        OperandoWarning (recorded in ``metadata["skipped"]`` as
        ``{"file", "reason"}``) or raise.

    Returns
    -------
    Series
        ``metadata`` holds ``source``, ``format``, ``mu_from``,
        ``interpolated``, ``skipped`` and ``header`` (the first file's header).

    Raises
    ------
    ReadError
        A file cannot be read, or every file of a multi-file source is bad.
    ConfigError
        Ambiguous or impossible settings (mu choice, conditions table keys).
    DataError
        The given element/edge lies outside the data's energy range, or the
        scans share no energy range.
    """
    if format not in FORMATS:
        raise ConfigError(f"format={format!r} is not one of {FORMATS}")
    if on_error not in ("skip", "raise"):
        raise ConfigError(f"on_error={on_error!r}; use 'skip' or 'raise'")
    table = load_conditions(conditions)
    reference_file = _reference_file(reference)
    options = dict(mu=mu, reference=False if reference_file else reference,
                   energy_column=energy_column)

    files = _expand(source, pattern, conditions)
    if files is not None:
        if reference_file:
            raise ConfigError(_REFERENCE_FILE_ONLY_MATRIX.format(ref=reference_file,
                                                                 source=source))
        return _read_files(source, files, table, options, element, edge, on_error)

    path = Path(source)
    if not path.exists():
        raise ReadError(path, "file or folder not found", ACCEPTED_SOURCE)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReadError(path, f"cannot read ({exc.strerror or exc})", ACCEPTED_SOURCE) from None
    kind = format if format != "auto" else _detect(path, raw)
    try:
        series = _read_single(path, raw, kind, table, options, element, edge, columns, on_error)
        if reference_file:
            if series.metadata.get("format") != "matrix":
                raise ConfigError(_REFERENCE_FILE_ONLY_MATRIX.format(ref=reference_file,
                                                                     source=path))
            series = _attach_reference_file(series, path, reference_file, columns,
                                            options["energy_column"])
        return series
    except OperandoError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeError,
            OSError, MemoryError) as exc:
        # Safety net: bad input must end in an OperandoError, never a raw traceback.
        log.debug("unexpected failure reading %s", path, exc_info=True)
        raise ReadError(path, f"could not be read as {kind} ({type(exc).__name__}: {exc})",
                        ACCEPTED_SOURCE) from None


# ------------------------------------------------------------ reference file
#: Suffixes that make a ``reference=`` string a file rather than a column name.
_DATA_SUFFIXES = {".dat", ".txt", ".xdi", ".xmu", ".csv", ".tsv", ".asc", ".nor", ".chik"}
_REFERENCE_FILE_ONLY_MATRIX = (
    "reference={ref!s}: a reference file is supported for matrix series only (one file with "
    "an energy column and one mu column per spectrum); {source!s} is not a matrix file. For "
    "per-scan files give the reference (iref) column name or \"auto\"")


def _reference_file(reference) -> Path | None:
    """The reference file named by ``reference=``, or None when it is a mode or a column."""
    if isinstance(reference, Path):
        return reference
    if not isinstance(reference, str) or reference.strip().lower() == "auto":
        return None
    text = reference.strip()
    path = Path(text).expanduser()
    # A column label never holds a path separator or a data-file suffix; an existing file
    # wins so that a reference file without a suffix still works.
    if path.is_file() or "/" in text or "\\" in text or path.suffix.lower() in _DATA_SUFFIXES:
        return path
    return None


def _attach_reference_file(series: Series, sample: Path, ref_path: Path, columns,
                           energy_column) -> Series:
    """``series`` with its reference channel read from the matrix file ``ref_path``."""
    accepted = ("a matrix file (energy column + one reference mu column per spectrum, same "
                "layout as the sample file) covering the sample's energy range")
    if not ref_path.is_file():
        raise ReadError(ref_path, f"reference file for {sample.name} not found", accepted)
    try:
        raw = ref_path.read_bytes()
    except OSError as exc:
        raise ReadError(ref_path, f"cannot read ({exc.strerror or exc})", accepted) from None
    text = parse_text(ref_path, raw)
    energy, ref, _, labels = read_matrix(text, energy_column=energy_column)
    n = len(series)
    if columns is not None and ref.shape[0] != n:
        # The sample columns were picked by name; take the same positions of the reference.
        full = parse_text(sample, sample.read_bytes())
        _, _, _, all_labels = read_matrix(full, energy_column=energy_column)
        if ref.shape[0] == len(all_labels):
            pos = [all_labels.index(c) for c in series.conditions["label"]]
            ref, labels = ref[pos], [labels[i] for i in pos]
    if ref.shape[0] != n:
        raise ReadError(ref_path, f"holds {ref.shape[0]} reference column(s) but the sample file "
                                  f"{sample.name} has {n} spectra; one reference column per "
                                  f"spectrum is needed", accepted)
    grid = series.energy
    interpolated = not (energy.shape == grid.shape and np.allclose(energy, grid, rtol=0,
                                                                   atol=1e-6))
    if interpolated:
        # Tolerance: 1e-3 eV absorbs rounding of energies written with 3-4 decimals.
        if energy[0] > grid[0] + 1e-3 or energy[-1] < grid[-1] - 1e-3:
            raise ReadError(ref_path, f"energy range {energy[0]:.2f}-{energy[-1]:.2f} eV does not "
                                      f"cover the sample file {sample.name} "
                                      f"({grid[0]:.2f}-{grid[-1]:.2f} eV)", accepted)
        ref = np.vstack([np.interp(grid, energy, row) for row in ref])
    metadata = dict(series.metadata)
    metadata.update(reference_source=str(ref_path), reference_columns=list(labels),
                    reference_interpolated=bool(interpolated))
    return series.replace(reference=np.ascontiguousarray(ref, dtype=float), metadata=metadata)


# --------------------------------------------------------------------- sources
def _expand(source, pattern, conditions) -> list[Path] | None:
    """Files of a multi-file source, or None for a single file."""
    if isinstance(source, (list, tuple)):
        if not source:
            raise ReadError("[]", "empty list of files", ACCEPTED_SOURCE)
        return [Path(s) for s in source]
    if not isinstance(source, (str, Path)):
        raise ConfigError(f"source must be a path, glob or list of paths, got "
                          f"{type(source).__name__}")
    text = str(source)
    path = Path(source)
    if path.is_dir():
        skip = Path(conditions).resolve() if isinstance(conditions, (str, Path)) else None
        found = [p for p in (path.glob(pattern) if pattern else path.iterdir())
                 if p.is_file() and not p.name.startswith(".")
                 and (pattern or p.suffix.lower() not in NOT_DATA)
                 and p.resolve() != skip]
        if not found:
            raise ReadError(path, "folder holds no data files"
                            + (f" matching {pattern!r}" if pattern else ""), ACCEPTED_SOURCE)
        return found
    if not path.exists() and any(ch in text for ch in "*?["):
        found = [Path(p) for p in _glob.glob(text) if Path(p).is_file()]
        if not found:
            raise ReadError(text, "glob matches no files", ACCEPTED_SOURCE)
        return found
    return None


def _detect(path: Path, raw: bytes) -> str:
    suffix = path.suffix.lower()
    if raw.startswith(HDF5_SIGNATURE) or suffix in (".h5", ".hdf5", ".nxs", ".nx5", ".hdf"):
        return "hdf5"
    if suffix == ".prj" or raw.startswith(b"\x1f\x8b") or raw.startswith(b"# Athena project"):
        return "athena"
    if looks_like_spec(raw[:200000]):
        return "spec"
    return "columns"


# --------------------------------------------------------------------- readers
def _read_file_scan(path: Path, options, format="columns") -> Scan:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReadError(path, f"cannot read ({exc.strerror or exc})", ACCEPTED_TEXT) from None
    table = parse_text(path, raw)
    return _scan_from_table(table, options)


def _scan_from_table(table, options) -> Scan:
    d_spacing = table.d_spacing or table.header.get("_d_spacing_from_mono_name")
    angle_axis = not find_column(table.labels, ENERGY_NAMES) and find_column(table.labels,
                                                                             ANGLE_NAMES)
    if angle_axis and table.d_spacing is None and d_spacing:
        warn(table.path, f"no valid Mono.d_spacing; using {d_spacing} Angstrom for the "
                         f"{table.header.get('Mono.name')!r} crystal")
    scan = scan_from_columns(table.path, table.path.name, table.labels, table.data,
                             table.lines, d_spacing=d_spacing, header=table.header,
                             element=table.element, edge=table.edge,
                             edge_energy=table.edge_energy, **options)
    scan.kind = table.kind
    return scan


def _read_files(source, files, table, options, element, edge, on_error) -> Series:
    files, unlisted = order_files(files, table)
    scans, skipped = [], []
    for path in unlisted:
        reason = "not listed in the conditions table"
        skipped.append({"file": path.name, "reason": reason})
        warn(path, f"skipped: {reason}")
    for path in files:
        try:
            scans.append(_read_file_scan(path, options))
        except (ReadError, DataError) as exc:
            if on_error == "raise":
                raise
            reason = getattr(exc, "problem", str(exc))
            skipped.append({"file": path.name, "reason": reason})
            warn(path, f"skipped: {reason}")
        except OperandoError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, OverflowError, OSError) as exc:
            log.debug("unexpected failure reading %s", path, exc_info=True)
            if on_error == "raise":
                raise ReadError(path, f"could not be read ({type(exc).__name__}: {exc})",
                                ACCEPTED_TEXT) from None
            skipped.append({"file": path.name, "reason": f"{type(exc).__name__}: {exc}"})
            warn(path, f"skipped: {type(exc).__name__}: {exc}")
    if not scans:
        reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:5])
        raise ReadError(source, f"none of the {len(files)} files could be read ({reasons})",
                        ACCEPTED_TEXT)
    base = default_conditions(len(scans), [s.file for s in scans])
    if table is not None:
        table = table[~table["file"].astype(str).str.strip().isin(
            [s["file"] for s in skipped] + [Path(s["file"]).stem for s in skipped])]
    conditions = attach(base, table, "file")
    fmt = "xdi" if all(s.kind == "xdi" for s in scans) else "columns"
    return _assemble(source, scans, conditions, fmt, element, edge, skipped)


def _assemble(source, scans, conditions, fmt, element, edge, skipped=None, extra_meta=None):
    energy, mu, ref, interpolated = common_grid(scans, source)
    el, ed = resolve_edge(source, energy, mu, scans[0], element, edge)
    kinds = sorted({s.mu_from for s in scans})
    metadata = {"source": str(source), "format": fmt,
                "mu_from": kinds[0] if len(kinds) == 1 else kinds,
                "interpolated": bool(interpolated), "skipped": list(skipped or []),
                "header": scans[0].header}
    metadata.update(extra_meta or {})
    return Series(energy=energy, mu=mu, conditions=conditions, element=el, edge=ed,
                  reference=ref, metadata=metadata)


def _read_single(path, raw, kind, table, options, element, edge, columns, on_error) -> Series:
    if kind == "hdf5" or kind == "nexus":
        layout, content = read_hdf5(path)
        if layout == "nexus":
            scans = content
            base = default_conditions(len(scans), [s.file for s in scans])
            base["label"] = [s.label for s in scans]
            conditions = attach(base, table, "step", labels=[s.label for s in scans])
            return _assemble(path, scans, conditions, "nexus", element, edge)
        fields = content
        conditions = fields["conditions"]
        if table is not None:
            conditions = attach(conditions, table, "step")
        el, ed = fields["element"], fields["edge"]
        if el is None or ed is None or element or edge:
            el, ed = resolve_edge(path, fields["energy"], fields["mu"],
                                  Scan(file=path.name, energy=fields["energy"], mu=fields["mu"],
                                       element=el, edge=ed), element, edge)
        metadata = dict(fields["metadata"])
        return Series(energy=fields["energy"], mu=fields["mu"], conditions=conditions,
                      element=el, edge=ed, reference=fields["reference"], metadata=metadata)
    if kind == "athena":
        scans = read_athena_scans(path)
        base = default_conditions(len(scans), [s.file for s in scans])
        base["label"] = [s.label for s in scans]
        conditions = attach(base, table, "file", labels=[s.label for s in scans])
        return _assemble(path, scans, conditions, "athena", element, edge)
    if kind == "spec":
        skipped: list = []
        scans = read_spec_scans(path, on_error=on_error, skipped=skipped, **options)
        base = default_conditions(len(scans), [s.file for s in scans])
        conditions = attach(base, table, "step", labels=[s.label for s in scans])
        return _assemble(path, scans, conditions, "spec", element, edge, skipped)
    text = parse_text(path, raw)
    if kind == "matrix" or (kind == "columns" and is_matrix(text)):
        energy, mu, files, labels = read_matrix(text, energy_column=options["energy_column"],
                                                columns=columns, mu=options["mu"])
        base = default_conditions(len(files), files)
        base["label"] = labels
        conditions = attach(base, table, "step", labels=labels)
        scan = Scan(file=path.name, energy=energy, mu=mu[0], element=text.element,
                    edge=text.edge, edge_energy=text.edge_energy, header=text.header)
        el, ed = resolve_edge(path, energy, mu, scan, element, edge)
        metadata = {"source": str(path), "format": "matrix", "mu_from": "mu",
                    "interpolated": False, "skipped": [], "header": text.header}
        return Series(energy=energy, mu=mu, conditions=conditions, element=el, edge=ed,
                      reference=None, metadata=metadata)
    scan = _scan_from_table(text, options)
    base = default_conditions(1, [scan.file])
    conditions = attach(base, table, "file")
    return _assemble(path, [scan], conditions, text.kind, element, edge)
