"""Readers: files -> :class:`operando.series.Series`.

``read_series`` recognises these layouts (``format="auto"``):

``"columns"`` / ``"xdi"`` / ``"fio"``
    A folder, glob or list of per-scan text column files (XDI, plain columns
    with a ``#`` label line, NSLS-II QAS/ISS headers, DESY ``.fio`` with its
    ``Col N NAME TYPE`` lines, the KEK-PF/SPring-8 "9809" format with its
    angle columns and channel modes), one spectrum per file; or a single such file
    (a 1-step series).  Conditions CSV keyed by ``file`` (basename).  Order:
    an explicit list keeps its order; a folder or glob follows the conditions
    table's rows when given, else natural name order (``scan_2`` before
    ``scan_10``); ``order="time"`` sorts by the start time in the headers.
``"matrix"``
    One text file: an energy column plus one mu column per spectrum (no
    i0/it/if/iref counter columns).  Conditions keyed by ``step`` (0-based).
    A dead frame (all-zero or NaN column) is kept; the stages flag it.
``"athena"``
    An Athena project (``.prj``, Perl or JSON layout) read as data by
    :mod:`operando.io._athena` (never evaluated: a project holding code is
    refused): every mu(E) group in order; ``file`` is ``project.prj#group``
    and a ``label`` column holds xraylarch's group name.  Each group's Athena
    parameters (e0, pre/post-edge ranges, rbkg, k-range...) are returned in
    Larch's names in ``metadata["project_settings"][label]``.
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
    per chunk); :func:`operando.run` streams operando HDF5 sources this way, and
    NeXus files whose NXxas entries share one energy axis (:func:`open_nexus`).
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

Compressed files: any of these may be gzip, bzip2 or xz compressed; the
content's magic bytes decide, and decompression stops with a ReadError beyond
``max_decompressed_bytes`` (512 MiB) or a 200x expansion (a decompression bomb).

mu (``mu="auto"``): ``i0`` and ``it``/``itrans``/``i1`` -> transmission
ln(i0/it); else ``i0`` and one fluorescence column (``if``/``iff``/
``ifluor``/``pips``) -> if/i0; else a single ``mu``/``xmu`` column; anything
else is ambiguous and raises :class:`~operando.errors.ConfigError` listing the
columns and choices.  ``mu="fluorescence"`` sums the detector's channels of
one region of interest (``xs_ch01_roi01`` ... or GSECARS ``FeKa_mca1`` ...)
with the dead-time factor ICR/OCR per channel when the file has those
columns, and divides by i0: mu = sum_j ROI_j * ICR_j / OCR_j / i0; a list
``mu=["sdd1", "sdd2"]`` sums those columns the same way; a single ROI column
(``mu="xs_roi01"``) is divided by i0; any other named column is used as
written.  ``channels={"i0": ..., "it": ..., "iref": ..., "fluorescence":
[...], "icr": [...], "ocr": [...]}`` names columns whose labels are not
recognised (``.fio`` counters such as ``vfc01``).  Details:
:mod:`operando.io._channels`.  ``metadata["mu_formula"]`` records the formula
in column names.  Reference channel (``reference="auto"``): ln(it/iref)
when an ``iref``/``irefer``/``ir``/``i2`` column exists.

Several edges: a folder, glob, list, project or SPEC file holding scans of
several edges needs ``element=``/``edge=``; the scans of other edges (by their
headers, else by their energy range) are skipped and listed in
``metadata["skipped"]``.  Without a selection the error names the edges found.

Dead rows: rows at either end of a scan whose counters are all zero or whose
mu is not finite (the empty first frame of many QEXAFS scans) are dropped with
a warning and listed in ``metadata["trimmed"]`` ({file, start, end, lines}).  For a matrix series
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

import logging
from pathlib import Path

from ..errors import ConfigError, OperandoError, ReadError
from ..series import Series
from ._align import LogConditions, conditions_from_logs
from ._conditions import load_conditions, natural_key, order_files, read_growing_conditions
from ._logs import LogSpec, read_log
from ._lazy import LazySeries, RowSlice, is_operando_hdf5, open_hdf5, open_nexus
from ._hdf5 import write_hdf5
from ._matrix import REFERENCE_FILE_ONLY_MATRIX, reference_file
from ._read import Options, read_files, read_one, read_single
from ._sources import ACCEPTED_SOURCE, ORDERS, detect, expand

__all__ = ["read_series", "write_hdf5", "open_hdf5", "open_nexus", "LazySeries", "RowSlice",
           "is_operando_hdf5",
           "conditions_from_logs", "LogConditions", "LogSpec", "read_log",
           "read_growing_conditions"]

log = logging.getLogger(__name__)

FORMATS = ("auto", "columns", "xdi", "fio", "matrix", "athena", "spec", "hdf5", "nexus")


def read_series(source, *, conditions=None, mu="auto", element=None, edge=None,
                energy_column=None, columns=None, reference="auto", format="auto",
                pattern=None, on_error="skip", order="auto", channels=None,
                dead_time="auto", max_decompressed_bytes=None, logs=None) -> Series:
    """Read XAS spectra into a :class:`~operando.series.Series`.

    Parameters
    ----------
    source : path-like, str glob, or list of path-like
        A folder, a glob (``"scans/*.dat"``), a list of files, or one file
        (column/XDI/.fio, matrix, Athena ``.prj``, SPEC, HDF5/NeXus), any of
        them possibly gzip/bzip2/xz compressed.
    conditions : path-like or DataFrame, optional
        Conditions table (CSV separated by ``,``, or by ``;`` when the header
        line has no comma).  Keyed by ``file`` (basename) for per-file
        sources, by ``step`` (0-based whole numbers) for matrix files; either
        key for the other formats.  Columns mixing numbers and labels
        (``potential_V`` with ``"OCP"``) stay object columns with the numbers
        as floats.  A decimal comma (``"0,5"``) in ``potential_V``,
        ``temperature_K`` or ``time_s`` is read as 0.5 with a warning; other
        text is refused in ``temperature_K``/``time_s`` and kept as a label,
        with a warning unless it is a usual one (OCP, OCV), in ``potential_V``.
    mu : str or list of str
        ``"auto"``, ``"transmission"`` (ln(i0/it)), ``"fluorescence"``
        (channels summed, dead-time corrected, / i0), ``"mu"`` (the single
        mu column), a column name (used as written; a ROI column is divided
        by i0), or a list of fluorescence columns (summed, / i0).
    element, edge : str, optional
        Used when the file header does not say; checked against the data's
        energy range (DataError when the tabulated edge lies outside it, or
        when a file header names another element or edge).  For a source of
        several scans they select the scans of that edge (see above).
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
        One of ``"auto"``, ``"columns"``, ``"xdi"``, ``"fio"``, ``"matrix"``,
        ``"athena"``, ``"spec"``, ``"hdf5"``, ``"nexus"``.
    pattern : str, optional
        Glob filter for the files of a folder (e.g. ``"*.dat"``).
    on_error : "skip" or "raise"
        For multi-spectrum sources: skip a bad file/scan with an
        OperandoWarning (recorded in ``metadata["skipped"]`` as
        ``{"file", "reason"}``) or raise.
    order : "auto", "name" or "time"
        Order of the files of a multi-file source: ``"auto"`` keeps a list's
        order and sorts a folder or glob by the conditions table, else by
        natural name order; ``"name"`` natural name order always; ``"time"``
        the start time in the headers (ReadError naming files without one).
    channels : dict, optional
        Column names per role (``"i0"``, ``"it"``, ``"iref"``,
        ``"fluorescence"``, ``"icr"``, ``"ocr"``) overriding recognition by name.
    dead_time : "auto", True or False
        Fluorescence dead-time correction ICR/OCR: where the file has the
        columns (``"auto"``), required (True) or never (False).
    max_decompressed_bytes : int, optional
        Largest decompressed size of a compressed file (default 512 MiB).
    logs : LogConditions, optional
        Conditions from time (the ``[conditions]`` section): header fields taken
        as condition columns (per-file sources) and instrument logs aligned to
        the scan times by :func:`conditions_from_logs`.

    Returns
    -------
    Series
        ``metadata`` holds ``source``, ``format``, ``mu_from``,
        ``mu_formula``, ``interpolated``, ``skipped``, ``header`` (the first
        file's header) and, when they apply, ``trimmed``,
        ``project_settings`` (Athena) and ``compression``.

    Raises
    ------
    ReadError
        A file cannot be read, is refused (a hostile Athena project, a
        decompression bomb), or every file of a multi-file source is bad.
    ConfigError
        Ambiguous or impossible settings (mu choice, channels, conditions
        table keys and values).
    DataError
        The given element/edge lies outside the data's energy range, a header
        names another element, the scans are of several edges and none was
        chosen, or the scans share no energy range.
    """
    if format not in FORMATS:
        raise ConfigError(f"format={format!r} is not one of {FORMATS}")
    if on_error not in ("skip", "raise"):
        raise ConfigError(f"on_error={on_error!r}; use 'skip' or 'raise'")
    if order not in ORDERS:
        raise ConfigError(f"order={order!r} is not one of {ORDERS}")
    if dead_time not in ("auto", True, False):
        raise ConfigError(f"dead_time={dead_time!r}; use 'auto', True or False")
    if max_decompressed_bytes is not None and not (
            isinstance(max_decompressed_bytes, int) and max_decompressed_bytes > 0):
        raise ConfigError(f"max_decompressed_bytes={max_decompressed_bytes!r}; give a positive "
                          "number of bytes")
    if logs is not None and not isinstance(logs, LogConditions):
        raise ConfigError(f"logs must be a LogConditions, got {type(logs).__name__}")
    table = load_conditions(conditions)
    ref_file = reference_file(reference)
    opts = Options(mu=mu, reference=ref_file if ref_file else reference,
                   energy_column=energy_column, channels=channels, dead_time=dead_time,
                   limit=max_decompressed_bytes,
                   headers=tuple(logs.headers.items()) if logs is not None else ())
    found = expand(source, pattern, conditions)
    if found is not None:
        if ref_file:
            raise ConfigError(REFERENCE_FILE_ONLY_MATRIX.format(ref=ref_file, source=source))
        files, how = found
        series = read_files(source, files, how, table, opts, element, edge, on_error, order)
        return _with_logs(series, logs)
    if order == "time":
        raise ConfigError("order='time' sorts the files of a folder, glob or list; "
                          f"{source} is one file")
    path = Path(source)
    raw, compressed, kind = read_one(path, format, detect, opts)
    try:
        series = read_single(path, raw, compressed, kind, table, opts, element, edge, columns,
                             on_error)
    except OperandoError:
        raise
    except (ValueError, IndexError, KeyError, TypeError, OverflowError, UnicodeError,
            OSError, MemoryError) as exc:
        # Safety net: bad input must end in an OperandoError, never a raw traceback.
        log.debug("unexpected failure reading %s", path, exc_info=True)
        raise ReadError(path, f"could not be read as {kind} ({type(exc).__name__}: {exc})",
                        ACCEPTED_SOURCE) from None
    return _with_logs(series, logs)


def _with_logs(series: Series, logs) -> Series:
    """The series with its conditions aligned from the logs (the one place a run does it)."""
    if logs is None or not logs.logs:
        return series
    metadata = {**series.metadata, "condition_logs": logs}
    return series.replace(conditions=conditions_from_logs(series, logs), metadata=metadata)
