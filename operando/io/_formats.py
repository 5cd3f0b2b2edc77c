"""Multi-spectrum containers: matrix text files, Athena projects, SPEC, HDF5 and NeXus NXxas."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, OperandoError, ReadError
from ..series import Series
from ._scan import (Scan, angle_to_energy, clean_energy, column_index, energy_index,
                    scan_from_columns, to_ev, warn)
from ._headers import TextTable

log = logging.getLogger(__name__)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
LAYOUT_NAME = "operando-series"
LAYOUT_VERSION = 1


# ---------------------------------------------------------------- matrix text
def is_matrix(table: TextTable, energy_column=None) -> bool:
    """A matrix file: an energy column and only mu-like columns (no i0/it/if/iref)."""
    from ._scan import I0_NAMES, IF_NAMES, IREF_NAMES, IT_NAMES, find_column

    labels = table.labels
    counters = find_column(labels, I0_NAMES + IT_NAMES + IF_NAMES + IREF_NAMES)
    return not counters and len(labels) >= 3


def read_matrix(table: TextTable, *, energy_column=None, columns=None, mu="auto"):
    """(energy, mu (n, n_e), files, labels) from a matrix text table.

    Non-finite values in a spectrum column are kept (a dead frame is flagged
    downstream); non-finite energies are refused.
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
    energy = table.data[:, j_energy]
    bad = np.flatnonzero(~np.isfinite(energy))
    if bad.size:
        raise ReadError(path, f"line {table.lines[bad[0]]}: energy is {energy[bad[0]]!r}",
                        "finite energies")
    if axis == "angle":
        energy = angle_to_energy(path, energy, table.d_spacing)
    else:
        energy = to_ev(path, energy)
    energy, rows = clean_energy(path, energy, table.data, table.lines)
    mu_values = rows[:, picked].T.copy()
    labels = [table.labels[j] for j in picked]
    # Dead frame: no finite value, or all zero once NaN counts as zero (one pass, not per column).
    dead_rows = ~np.isfinite(mu_values).any(axis=1) | (np.nan_to_num(mu_values) == 0).all(axis=1)
    dead = [labels[i] for i in np.flatnonzero(dead_rows)]
    if dead:
        log.info("%s: dead frame(s) kept for downstream flagging: %s", path.name, dead)
    files = [f"{path.name}#{label}" for label in labels]
    return energy, mu_values, files, labels


# -------------------------------------------------------------------- Athena
def read_athena_scans(path: Path) -> list[Scan]:
    """Every group of an Athena project, in file order, via larch's read_athena."""
    from larch.io import read_athena

    try:
        project = read_athena(str(path), do_preedge=False, do_bkg=False, do_fft=False)
        names = list(project.groups.keys())
    except OperandoError:
        raise
    except Exception as exc:  # larch raises anything from ValueError to SyntaxError
        raise ReadError(path, f"not a readable Athena project ({type(exc).__name__}: {exc})",
                        "an Athena .prj file (plain or gzipped)") from None
    if not names:
        raise ReadError(path, "Athena project holds no groups", "an Athena .prj with data")
    scans = []
    for name in names:
        group = project.groups[name]
        energy = np.asarray(getattr(group, "energy", []), dtype=float)
        mu = np.asarray(getattr(group, "mu", []), dtype=float)
        if energy.size < 2 or mu.shape != energy.shape:
            raise ReadError(path, f"group {name!r} has no energy/mu arrays",
                            "Athena groups holding mu(E)")
        file = f"{path.name}#{name}"
        if not np.all(np.isfinite(energy)):
            raise ReadError(path, f"group {name!r}: non-finite energy", "finite energies")
        energy, rows = clean_energy(file, to_ev(file, energy), mu[:, None])
        params = getattr(group, "athena_params", None)
        element = edge = None
        try:
            element = str(params.bkg.z).strip() or None
            edge = str(params.fft.edge).strip().upper() or None
        except AttributeError:
            pass
        scans.append(Scan(file=file, energy=energy, mu=rows[:, 0], mu_from="mu",
                          element=element, edge=edge, label=name,
                          header={"label": getattr(group, "label", name)}))
    return scans


# ---------------------------------------------------------------------- SPEC
def looks_like_spec(text_head: bytes) -> bool:
    lines = text_head.splitlines()
    return any(ln.startswith(b"#S ") for ln in lines) and any(ln.startswith(b"#L ")
                                                             for ln in lines)


def read_spec_scans(path: Path, *, mu, reference, energy_column, on_error, skipped) -> list[Scan]:
    """Each ``#S`` scan of a SPEC file is one spectrum (silx.io.specfile)."""
    from silx.io.specfile import SpecFile

    try:
        spec = SpecFile(str(path))
        n = len(spec)
    except Exception as exc:  # silx raises SfError* types not exported uniformly
        raise ReadError(path, f"not a readable SPEC file ({exc})",
                        "a SPEC file with #S and #L lines") from None
    scans = []
    for index in range(n):
        try:
            number = spec.number(index)
            labels = list(spec.labels(index))
            data = np.atleast_2d(np.asarray(spec.data(index), dtype=float))
            if data.shape[1] != len(labels) and data.shape[0] == len(labels):
                data = data.T  # silx gives (points, columns); be safe about old versions
        except Exception as exc:  # silx: malformed scan block
            problem = f"scan #{index + 1} unreadable ({exc})"
            if on_error == "raise":
                raise ReadError(path, problem, "SPEC scans with #L labels and data") from None
            skipped.append({"file": f"{path.name}#S{index + 1}", "reason": problem})
            warn(path, problem + "; skipped")
            continue
        file = f"{path.name}#S{number}"
        try:
            if data.ndim != 2 or data.shape[0] < 2 or data.shape[1] != len(labels):
                raise ReadError(file, f"scan {number} has {data.shape} values for labels "
                                      f"{labels}", "SPEC scans with one label per column")
            lines = np.arange(1, data.shape[0] + 1)
            scan = scan_from_columns(file, file, labels, data, lines, mu=mu,
                                     reference=reference, energy_column=energy_column)
        except ReadError as exc:
            if on_error == "raise":
                raise
            skipped.append({"file": file, "reason": exc.problem})
            warn(path, f"scan {number}: {exc.problem}; skipped")
            continue
        scan.label = f"S{number}"
        scans.append(scan)
    if not scans:
        raise ReadError(path, "no readable scan in the SPEC file",
                        "a SPEC file with #S scans holding energy and counter columns")
    return scans


# ---------------------------------------------------------------------- HDF5
def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def write_hdf5(series: Series, path) -> Path:
    """Write a Series to the operando HDF5 layout (see :mod:`operando.io`).

    Parameters
    ----------
    series : Series
    path : path-like
        Output file (overwritten; written to a temporary name then renamed).

    Returns
    -------
    Path
    """
    import os

    import h5py

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as h5:
        h5.attrs["format"] = LAYOUT_NAME
        h5.attrs["version"] = LAYOUT_VERSION
        if series.element:
            h5.attrs["element"] = series.element
        if series.edge:
            h5.attrs["edge"] = series.edge
        h5.attrs["metadata"] = json.dumps(series.metadata, default=_jsonable)
        h5.create_dataset("energy", data=series.energy).attrs["units"] = "eV"
        h5.create_dataset("mu", data=series.mu)
        if series.reference is not None:
            h5.create_dataset("reference", data=series.reference)
        group = h5.create_group("conditions")
        group.attrs["columns"] = json.dumps([str(c) for c in series.conditions.columns])
        text = h5py.string_dtype("utf-8")
        for i, column in enumerate(series.conditions.columns):
            values = series.conditions[column]
            name = f"c{i:03d}"
            if values.dtype.kind in "biuf":
                ds = group.create_dataset(name, data=values.to_numpy())
                kind = values.dtype.str
            elif all(isinstance(v, str) for v in values):
                ds = group.create_dataset(name, data=[v for v in values], dtype=text)
                kind = "str"
                ds.attrs["pandas_dtype"] = str(values.dtype)
            else:
                ds = group.create_dataset(name, data=[json.dumps(_plain(v)) for v in values],
                                          dtype=text)
                kind = "json"
            ds.attrs["name"] = str(column)
            ds.attrs["kind"] = kind
    os.replace(tmp, path)
    return path


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_hdf5(path: Path):
    """Series fields from an operando-layout or NeXus NXxas HDF5 file.

    Returns
    -------
    ("hdf5", dict of Series fields) or ("nexus", list[Scan])
    """
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise ReadError(path, f"not a readable HDF5 file ({exc})", "an HDF5 file") from None
    try:
        with h5:
            if h5.attrs.get("format") == LAYOUT_NAME:
                return "hdf5", _read_layout(path, h5)
            entries = _nxxas_entries(h5)
            if entries:
                return "nexus", [scan for name in entries for scan in _read_nxxas(path, h5[name])]
            raise ReadError(path, "HDF5 file is neither the operando layout nor NeXus NXxas",
                            "HDF5 written by operando.io.write_hdf5, or NXentry groups with "
                            "definition NXxas")
    except OperandoError:
        raise
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise ReadError(path, f"malformed HDF5 content ({type(exc).__name__}: {exc})",
                        "the layout documented in operando.io") from None


def _text_attr(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def _read_layout(path, h5) -> dict:
    energy = h5["energy"][()]
    mu = h5["mu"][()]
    reference = h5["reference"][()] if "reference" in h5 else None
    group = h5["conditions"]
    columns = json.loads(_text_attr(group.attrs["columns"]))
    data = {}
    for name in sorted(group.keys()):
        ds = group[name]
        kind = _text_attr(ds.attrs["kind"])
        column = _text_attr(ds.attrs["name"])
        if kind == "str":
            values = [v.decode("utf-8") if isinstance(v, bytes) else v for v in ds[()]]
            try:
                data[column] = pd.Series(values, dtype=_text_attr(ds.attrs.get("pandas_dtype",
                                                                               "object")))
            except TypeError:  # a pandas without that string dtype
                data[column] = pd.Series(values, dtype=object)
        elif kind == "json":
            data[column] = pd.Series([json.loads(v.decode("utf-8") if isinstance(v, bytes)
                                                 else v) for v in ds[()]], dtype=object)
        else:
            data[column] = pd.Series(ds[()], dtype=np.dtype(kind))
    conditions = pd.DataFrame({c: data[c] for c in columns})
    return {
        "energy": energy, "mu": mu, "reference": reference, "conditions": conditions,
        "element": _text_attr(h5.attrs.get("element")) or None,
        "edge": _text_attr(h5.attrs.get("edge")) or None,
        "metadata": json.loads(_text_attr(h5.attrs.get("metadata", "{}"))),
    }


def _nxxas_entries(h5) -> list[str]:
    from ._conditions import natural_key

    names = []
    for name, item in h5.items():
        if not hasattr(item, "keys"):
            continue
        definition = item.get("definition")
        if definition is None:
            continue
        value = definition[()]
        value = value.decode() if isinstance(value, bytes) else str(value)
        if value.strip().upper() == "NXXAS":
            names.append(name)
    return sorted(names, key=natural_key)


def _first(entry, *paths):
    for p in paths:
        if p in entry:
            return entry[p][()]
    return None


def _read_nxxas(path, entry) -> list[Scan]:
    """One NXxas entry -> one or more spectra (2-D detector data gives one per row)."""
    name = entry.name.strip("/")
    energy = _first(entry, "data/energy", "monochromator/energy",
                    "instrument/monochromator/energy")
    if energy is None:
        raise ReadError(path, f"NXxas entry {name!r} has no data/energy or monochromator/energy",
                        "NXxas with an energy axis")
    energy = np.asarray(energy, dtype=float).ravel()
    mode = _first(entry, "data/mode", "mode", "instrument/mode")
    mode = (mode.decode() if isinstance(mode, bytes) else str(mode or "")).lower()
    direct = _first(entry, "data/mu", "data/data", "data/absorbance")
    if direct is not None:
        mu, mu_from = np.atleast_2d(np.asarray(direct, dtype=float)), "mu"
    else:
        incoming = _first(entry, "incoming_beam/data", "instrument/incoming_beam/data",
                          "data/incoming_beam")
        absorbed = _first(entry, "absorbed_beam/data", "instrument/absorbed_beam/data",
                          "data/absorbed_beam")
        if incoming is None or absorbed is None:
            raise ReadError(path, f"NXxas entry {name!r} has neither data/mu nor incoming_beam "
                                  "and absorbed_beam data", "NXxas with mu or detector data")
        incoming = np.atleast_2d(np.asarray(incoming, dtype=float))
        absorbed = np.atleast_2d(np.asarray(absorbed, dtype=float))
        with np.errstate(all="ignore"):
            if "fluor" in mode:
                mu, mu_from = absorbed / incoming, "fluorescence"
            else:
                mu, mu_from = np.log(incoming / absorbed), "transmission"
    if mu.shape[-1] != energy.size:
        raise ReadError(path, f"NXxas entry {name!r}: {mu.shape[-1]} data points but "
                              f"{energy.size} energies", "matching energy and data lengths")
    element = _first(entry, "sample/element", "element")
    edge = _first(entry, "edge", "data/edge")
    element = element.decode() if isinstance(element, bytes) else element
    edge = edge.decode() if isinstance(edge, bytes) else edge
    energy = to_ev(path, energy)
    scans = []
    for i, row in enumerate(mu):
        file = f"{Path(path).name}#{name}" + (f"[{i}]" if mu.shape[0] > 1 else "")
        e, rows = clean_energy(file, energy, row[:, None])
        scans.append(Scan(file=file, energy=e, mu=rows[:, 0], mu_from=mu_from,
                          element=str(element) if element else None,
                          edge=str(edge).upper() if edge else None, label=name))
    return scans
