"""Matrix text files (an energy column plus one mu column per spectrum) and their
reference-channel companion files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ReadError
from ..series import Series
from ._compress import inner_name, read_bytes
from ._headers import TextTable
from ._messages import short_list
from ._channels import column_index
from ._scan import angle_to_energy, clean_energy, energy_index, to_ev, trim_dead_ends
from ._text import parse_text

log = logging.getLogger(__name__)


def is_matrix(table: TextTable) -> bool:
    """A matrix file: an energy column and only mu-like columns (no i0/it/if/iref)."""
    from ._channels import I0_NAMES, IF_NAMES, IREF_NAMES, IT_NAMES, find_column, is_roi

    labels = table.labels
    counters = find_column(labels, I0_NAMES + IT_NAMES + IF_NAMES + IREF_NAMES)
    return not counters and not any(is_roi(label) for label in labels) and len(labels) >= 3


def read_matrix(table: TextTable, *, energy_column=None, columns=None, mu="auto"):
    """(energy, mu (n, n_e), files, labels, trimmed) from a matrix text table.

    Non-finite values in a spectrum column are kept (a dead frame is flagged
    downstream).  Dead energy rows at the ends of the table (a non-finite
    energy, or every spectrum zero or non-finite) are dropped with a warning
    and returned as ``trimmed`` (``{"start", "end", "lines"}``, or None);
    other non-finite energies are refused.
    """
    path = table.path
    if not (isinstance(mu, str) and mu.lower() in ("auto", "mu")):
        raise ConfigError(f"{path}: a matrix file holds one mu column per spectrum; mu must be "
                          f"'auto' or 'mu', got {mu!r} (choose spectra with columns=)")
    j_energy, axis = energy_index(path, table.labels, energy_column)
    if columns is None:
        picked = [j for j in range(len(table.labels)) if j != j_energy]
    else:
        picked = [column_index(path, table.labels, c, "spectrum") for c in columns]
    data, lines = table.data, np.asarray(table.lines)
    if picked and picked == list(range(picked[0], picked[-1] + 1)):
        picked = slice(picked[0], picked[-1] + 1)  # a view of the table, not a copy
    data, lines, trimmed = trim_dead_ends(
        path, ~np.isfinite(data[:, j_energy]) | _all_zero(data, picked), data, lines,
        "dead energy row(s) at the ends of the table", "every spectrum zero or non-finite",
        ("no live data: every energy row is empty or non-finite", "a matrix file with spectra"))
    energy = data[:, j_energy]
    bad = np.flatnonzero(~np.isfinite(energy))
    if bad.size:
        raise ReadError(path, f"line {lines[bad[0]]}: energy is {energy[bad[0]]!r}",
                        "finite energies")
    if axis == "angle":
        energy = angle_to_energy(path, energy, table.d_spacing)
    else:
        energy = to_ev(path, energy)
    energy, rows = clean_energy(path, energy, data, lines)
    mu_values = rows[:, picked].T.copy()
    labels = (table.labels[picked] if isinstance(picked, slice)
              else [table.labels[j] for j in picked])
    # Dead frame: no finite value, or all zero once NaN counts as zero (one pass, not per column).
    dead_rows = _by_rows(mu_values, lambda block: ~np.isfinite(block).any(axis=1)
                         | _zero_or_nan(block).all(axis=1))
    dead_frames = [labels[i] for i in np.flatnonzero(dead_rows)]
    if dead_frames:
        log.info("%s: dead frame(s) kept for downstream flagging: %s", path.name,
                 short_list(dead_frames))
    files = [f"{path.name}#{label}" for label in labels]
    return energy, mu_values, files, labels, trimmed


def _all_zero(data: np.ndarray, columns) -> np.ndarray:
    """Per row: every value of ``columns`` zero once NaN counts as zero."""
    return _by_rows(data, lambda block: _zero_or_nan(block[:, columns]).all(axis=1))


def _zero_or_nan(block: np.ndarray) -> np.ndarray:
    """Zero once NaN counts as zero (``nan_to_num(block) == 0`` without its copies)."""
    return (block == 0) | np.isnan(block)


def _by_rows(data: np.ndarray, test) -> np.ndarray:
    """``test`` (a block of rows -> one bool per row) over blocks of rows: no copy of the table."""
    out = np.empty(data.shape[0], dtype=bool)
    step = max(1, (1 << 22) // max(data.shape[1], 1))
    for a in range(0, data.shape[0], step):
        out[a:a + step] = test(data[a:a + step])
    return out


# ------------------------------------------------------------ reference file
#: Suffixes that make a ``reference=`` string a file rather than a column name.
_DATA_SUFFIXES = {".dat", ".txt", ".xdi", ".xmu", ".csv", ".tsv", ".asc", ".nor", ".chik"}
REFERENCE_FILE_ONLY_MATRIX = (
    "reference={ref!s}: a reference file is supported for matrix series only (one file with "
    "an energy column and one mu column per spectrum); {source!s} is not a matrix file. For "
    "per-scan files give the reference (iref) column name or \"auto\"")


def reference_file(reference) -> Path | None:
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


def attach_reference_file(series: Series, sample: Path, ref_path: Path, columns,
                           energy_column) -> Series:
    """``series`` with its reference channel read from the matrix file ``ref_path``."""
    accepted = ("a matrix file (energy column + one reference mu column per spectrum, same "
                "layout as the sample file) covering the sample's energy range")
    if not ref_path.is_file():
        raise ReadError(ref_path, f"reference file for {sample.name} not found", accepted)
    raw, compressed = read_bytes(ref_path, accepted=accepted)
    text = parse_text(ref_path.with_name(inner_name(ref_path)) if compressed else ref_path, raw)
    energy, ref, _, labels, _ = read_matrix(text, energy_column=energy_column)
    n = len(series)
    if columns is not None and ref.shape[0] != n:
        # The sample columns were picked by name; take the same positions of the reference.
        raw, compressed = read_bytes(sample, accepted=accepted)
        full = parse_text(sample.with_name(inner_name(sample)) if compressed else sample, raw)
        _, _, _, all_labels, _ = read_matrix(full, energy_column=energy_column)
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

