"""HDF5: the operando layout (written by :func:`write_hdf5`) and NeXus NXxas entries."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import OperandoError, ReadError
from ..series import Series
from ._conditions import check_known_columns
from ._messages import warn
from ._scan import Scan, clean_energy, resolve_edge, to_ev

log = logging.getLogger(__name__)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
LAYOUT_NAME = "operando-series"
LAYOUT_VERSION = 1


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
                ds = group.create_dataset(name, data=[json.dumps(v, default=_jsonable)
                                                      for v in values], dtype=text)
                kind = "json"
            ds.attrs["name"] = str(column)
            ds.attrs["kind"] = kind
    os.replace(tmp, path)
    return path


def read_hdf5(path: Path, content: bytes | None = None):
    """Series fields from an operando-layout or NeXus NXxas HDF5 file.

    Parameters
    ----------
    path : Path
        The file (opened unless ``content`` is given; named in messages).
    content : bytes, optional
        The file's bytes (a decompressed ``.h5.gz``), read from memory.

    Returns
    -------
    ("hdf5", dict of Series fields) or ("nexus", list[Scan])
    """
    import io

    import h5py

    try:
        h5 = h5py.File(io.BytesIO(content) if content is not None else path, "r")
    except OSError as exc:
        raise ReadError(path, f"not a readable HDF5 file ({exc})", "an HDF5 file") from None
    with malformed_content(path), h5:
        if h5.attrs.get("format") == LAYOUT_NAME:
            return "hdf5", read_layout(path, h5)
        entries = nxxas_entries(h5)
        if entries:
            return "nexus", [scan for name in entries for scan in _read_nxxas(path, h5[name])]
        raise ReadError(path, "HDF5 file is neither the operando layout nor NeXus NXxas",
                        "HDF5 written by operando.io.write_hdf5, or NXentry groups with "
                        "definition NXxas")


@contextmanager
def malformed_content(path):
    """What h5py raises on content not in the expected layout, as one ReadError."""
    try:
        yield
    except OperandoError:
        raise
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise ReadError(path, f"malformed HDF5 content ({type(exc).__name__}: {exc})",
                        "the layout documented in operando.io") from None


def layout_edge(path, fields: dict, mu, element, edge) -> tuple:
    """A layout file's element and edge: its own, else (or if asked) by ``resolve_edge``."""
    el, ed = fields["element"], fields["edge"]
    if el is None or ed is None or element or edge:
        el, ed = resolve_edge(path, fields["energy"], mu,
                              Scan(file=Path(path).name, energy=fields["energy"],
                                   mu=np.atleast_2d(mu)[0], element=el, edge=ed), element, edge)
    return el, ed


def _text_attr(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def numeric_dataset(path, name: str, dataset) -> np.ndarray | None:
    """``dataset`` read as float64 after :func:`check_numeric_dtype` (None for a placeholder
    of data left on disk by :class:`~operando.io.LazySeries`)."""
    dtype = getattr(dataset, "dtype", None)
    if dtype is None:
        return None
    check_numeric_dtype(path, name, dtype)
    return np.asarray(dataset[()], dtype=np.float64)


def check_numeric_dtype(path, name: str, dtype) -> None:
    """Refuse a dataset that is not numbers; warn about integers.

    Integers are converted (mu is a ratio or a logarithm of counts; integer values
    usually mean raw counts were stored as mu).  Strings, booleans, complex and
    compound data are refused naming the dataset.
    """
    accepted = f"/{name} as floating-point numbers (float32/float64)"
    if dtype.kind in "iu":
        warn(path, f"/{name} holds integers ({dtype}); converted to float (integer values "
                   "usually mean raw counts were stored where absorption belongs: check the "
                   "writer)")
    elif dtype.kind != "f":
        what = {"S": "byte strings", "U": "strings", "O": "strings or objects", "b": "booleans",
                "c": "complex numbers", "V": "compound records"}.get(dtype.kind, str(dtype))
        raise ReadError(path, f"/{name} holds {what} ({dtype}), not numbers", accepted)


def read_layout(path, h5) -> dict:
    """The fields of a file in the operando HDF5 layout (energy in eV, mu, reference,
    conditions, element, edge, metadata) from an open ``h5`` (or a stand-in holding its
    small datasets, as :class:`~operando.io._lazy.LazySeries` passes); ``path`` names the
    file in messages."""
    energy = numeric_dataset(path, "energy", h5["energy"])
    units = _text_attr(h5["energy"].attrs.get("units", "eV")) if hasattr(h5["energy"], "attrs") \
        else "eV"
    if str(units).strip().lower() == "kev":
        energy = energy * 1000.0
    else:
        energy = to_ev(path, energy)
    mu = numeric_dataset(path, "mu", h5["mu"])
    reference = numeric_dataset(path, "reference", h5["reference"]) if "reference" in h5 \
        else None
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
    conditions = check_known_columns(pd.DataFrame({c: data[c] for c in columns}), path)
    return {
        "energy": energy, "mu": mu, "reference": reference, "conditions": conditions,
        "element": _text_attr(h5.attrs.get("element")) or None,
        "edge": _text_attr(h5.attrs.get("edge")) or None,
        "metadata": json.loads(_text_attr(h5.attrs.get("metadata", "{}"))),
    }


def nxxas_entries(h5) -> list[str]:
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
    p = _where(entry, *paths)
    return None if p is None else entry[p][()]


def _where(entry, *paths):
    return next((p for p in paths if p in entry), None)


def describe_nxxas(path, entry) -> dict:
    """What an NXxas entry holds, without reading its spectra: ``name``, ``energy`` (eV,
    file order), ``mu_from``, ``datasets`` (the paths mu is computed from), ``n`` (rows),
    ``element``, ``edge``, ``times`` (per row) and ``fields`` (its one-value datasets)."""
    name = entry.name.strip("/")
    energy = _first(entry, "data/energy", "monochromator/energy",
                    "instrument/monochromator/energy")
    if energy is None:
        raise ReadError(path, f"NXxas entry {name!r} has no data/energy or monochromator/energy",
                        "NXxas with an energy axis")
    energy = np.asarray(energy, dtype=float).ravel()
    mode = _first(entry, "data/mode", "mode", "instrument/mode")
    mode = (mode.decode() if isinstance(mode, bytes) else str(mode or "")).lower()
    direct = _where(entry, "data/mu", "data/data", "data/absorbance")
    if direct is not None:
        datasets, mu_from = (direct,), "mu"
    else:
        incoming = _where(entry, "incoming_beam/data", "instrument/incoming_beam/data",
                          "data/incoming_beam")
        absorbed = _where(entry, "absorbed_beam/data", "instrument/absorbed_beam/data",
                          "data/absorbed_beam")
        if incoming is None or absorbed is None:
            raise ReadError(path, f"NXxas entry {name!r} has neither data/mu nor incoming_beam "
                                  "and absorbed_beam data", "NXxas with mu or detector data")
        datasets = (incoming, absorbed)
        mu_from = "fluorescence" if "fluor" in mode else "transmission"
    shapes = [entry[p].shape for p in datasets]
    if any(len(s) > 2 for s in shapes) or shapes[-1][-1:] != (energy.size,):
        raise ReadError(path, f"NXxas entry {name!r}: data of shape {shapes[-1]} for "
                              f"{energy.size} energies", "matching energy and data lengths")
    n = max(s[0] if len(s) == 2 else 1 for s in shapes)
    element = _first(entry, "sample/element", "element")
    edge = _first(entry, "edge", "data/edge")
    element = element.decode() if isinstance(element, bytes) else element
    edge = edge.decode() if isinstance(edge, bytes) else edge
    return {"name": name, "energy": to_ev(path, energy), "mu_from": mu_from,
            "datasets": datasets, "n": n, "element": str(element) if element else None,
            "edge": str(edge).upper() if edge else None,
            "times": _frame_times(path, entry, n), "fields": _scalar_fields(entry)}


def nxxas_rows(entry, described: dict, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of an entry's mu (direct, ln(I0/It) or If/I0 by its mode), in
    file energy order: the one place NXxas data become mu."""
    parts = []
    for p in described["datasets"]:
        ds = entry[p]
        parts.append(np.atleast_2d(np.asarray(ds[start:stop] if ds.ndim == 2 else ds[()],
                                              dtype=float)))
    if described["mu_from"] == "mu":
        return parts[0]
    incoming, absorbed = parts
    with np.errstate(all="ignore"):
        if described["mu_from"] == "fluorescence":
            return absorbed / incoming
        return np.log(incoming / absorbed)


def _read_nxxas(path, entry) -> list[Scan]:
    """One NXxas entry -> one or more spectra (2-D detector data gives one per row)."""
    d = describe_nxxas(path, entry)
    mu, name = nxxas_rows(entry, d, 0, d["n"]), d["name"]
    scans = []
    for i, row in enumerate(mu):
        file = f"{Path(path).name}#{name}" + (f"[{i}]" if mu.shape[0] > 1 else "")
        e, rows = clean_energy(file, d["energy"], row[:, None])
        scans.append(Scan(file=file, energy=e, mu=rows[:, 0], mu_from=d["mu_from"],
                          element=d["element"], edge=d["edge"], label=name,
                          header=dict(d["fields"]), times=d["times"][i]))
    return scans


def _text(value) -> str:
    value = value.item() if isinstance(value, np.ndarray) and value.size == 1 else value
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _frame_times(path, entry, n: int) -> list:
    """``[start, end, how]`` per spectrum of an NXxas entry (ISO 8601 text or None).

    NXentry ``start_time``/``end_time`` time a one-spectrum entry.  Several
    spectra (QEXAFS frames) take their times from ``data/time`` (or ``time``):
    one value per frame, in s (``units`` "ms" also), counted from its ``start``
    attribute (NeXus's convention for relative times, as in NXlog) or else from
    ``start_time``; each frame lasts until the next starts.  Without it the
    frames share ``[start_time, end_time]`` in equal parts (a continuous scan's
    fixed period), said in a warning.
    """
    import datetime as _dt

    from ._logbase import parse_datetime

    start = _text(entry["start_time"][()]) if "start_time" in entry else None
    end = _text(entry["end_time"][()]) if "end_time" in entry else None
    if n == 1:
        return [[start, end, "nexus"]]
    frame = next((entry[p] for p in ("data/time", "time") if p in entry), None)
    origin = parse_datetime(_text(frame.attrs["start"])) if frame is not None \
        and "start" in frame.attrs else (parse_datetime(start) if start else None)
    if frame is not None and origin is not None:
        seconds = np.asarray(frame[()], dtype=float).ravel()
        if seconds.size != n:
            raise ReadError(path, f"NXxas entry {entry.name}: {seconds.size} frame times for "
                                  f"{n} spectra", "one data/time value per spectrum")
        if _text(frame.attrs.get("units", "s")).strip().lower() == "ms":
            seconds = seconds / 1000.0
        stamps = [(origin + _dt.timedelta(seconds=float(t))).isoformat() for t in seconds]
        return [[stamps[i], stamps[i + 1] if i + 1 < n else None, "nexus"] for i in range(n)]
    first, last = (parse_datetime(start) if start else None), (parse_datetime(end) if end else None)
    if first is None or last is None:
        return [[None, None, "nexus"] for _ in range(n)]
    warn(path, f"NXxas entry {entry.name}: no data/time per frame; its {n} spectra share "
               "start_time..end_time in equal parts")
    step = (last - first) / n
    return [[(first + i * step).isoformat(), (first + (i + 1) * step).isoformat(), "nexus"]
            for i in range(n)]


def _scalar_fields(entry) -> dict:
    """Every one-value dataset of an entry by its path (``sample/temperature``): the
    fields ``[conditions] headers`` can take."""
    fields = {}

    def visit(name, item):
        shape = getattr(item, "shape", None)
        if shape is not None and int(np.prod(shape)) == 1 and item.dtype.kind in "iufSUO":
            value = item[()]
            value = value.reshape(-1)[0] if isinstance(value, np.ndarray) else value
            value = value.item() if isinstance(value, np.generic) else value  # plain, for JSON
            fields[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) \
                else value

    entry.visititems(visit)
    return fields
