"""Write generated series as a beamline would: one XDI file per scan, or one HDF5 file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from operando.errors import ConfigError, DataError
from operando.series import Series

from ._mix import NOMINAL_FLUX, i0_shape


def _truth_rows(series: Series, truth: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(truth, pd.DataFrame) or "step" not in truth.columns:
        raise DataError("truth must be the DataFrame returned with the series (with a 'step' column)")
    rows = truth.set_index("step")
    missing = [int(s) for s in series.steps if s not in rows.index]
    if missing:
        raise DataError(f"truth has no rows for steps {missing[:5]} of the series")
    return rows.loc[series.steps].reset_index()


def _counts(series: Series, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """i0, itrans, irefer counts whose logs give back ``series.mu`` and ``series.reference``."""
    mixture = series.metadata.get("mixture", {})
    e0 = float(mixture.get("e0", series.energy[0]))
    power = float(mixture.get("acquisition", {}).get("i0_power", 0.0))
    flux = rows["i0_flux"].to_numpy(float) if "i0_flux" in rows else np.full(len(rows), NOMINAL_FLUX)
    tilt = rows["i0_tilt"].to_numpy(float) if "i0_tilt" in rows else np.zeros(len(rows))
    i0 = flux[:, None] * i0_shape(series.energy, e0, power, tilt)
    out = {"i0": i0, "itrans": i0 * np.exp(-series.mu)}
    if series.reference is not None:
        out["irefer"] = out["itrans"] * np.exp(-series.reference)
    return out


#: Scan time formats a beamline writes: ISO 8601, NSLS-II ISS (two spaces, microseconds).
TIME_FORMATS = {"iso": "%Y-%m-%dT%H:%M:%S", "iss": "%m/%d/%Y  %H:%M:%S.%f"}


def _times(series: Series, start, time_format: str) -> list[tuple[str, str]]:
    """``Scan.start_time``/``Scan.end_time`` text per scan: ``start`` + ``time_s``, lasting
    the acquisition's ``scan_time_s``."""
    import datetime as dt

    if time_format not in TIME_FORMATS:
        raise ConfigError(f"time_format={time_format!r} is not one of {list(TIME_FORMATS)}")
    if "time_s" not in series.conditions.columns:
        raise DataError("scan times need a time_s condition (every preset has one)")
    origin = start if isinstance(start, dt.datetime) else dt.datetime.fromisoformat(str(start))
    duration = float(series.metadata.get("mixture", {}).get("acquisition", {})
                     .get("scan_time_s", 30.0))
    fmt = TIME_FORMATS[time_format]
    out = []
    for t in series.conditions["time_s"].to_numpy(float):
        begin = origin + dt.timedelta(seconds=float(t))
        end = begin + dt.timedelta(seconds=duration)
        if time_format == "iso":
            out.append((begin.isoformat(timespec="seconds"), end.isoformat(timespec="seconds")))
        else:
            out.append((begin.strftime(fmt), end.strftime(fmt)))
    return out


def _header(series: Series, columns: list[str], row: pd.Series, times=None) -> list[str]:
    mixture = series.metadata.get("mixture", {})
    names = mixture.get("references", [])
    sample = ", ".join(f"{n} {row[f'frac_{n}']:.4f}" for n in names if f"frac_{n}" in row)
    lines = ["# XDI/1.0 operando-mixtures/0.1"]
    lines += [f"# Column.{i}: {c}" + (" eV" if c == "energy" else "") for i, c in enumerate(columns, 1)]
    lines += [f"# Element.symbol: {series.element}", f"# Element.edge: {series.edge}",
              "# Facility.name: simulated from measured references (operando.mixtures)",
              f"# Sample.name: mixture {sample}" if sample else "# Sample.name: mixture"]
    if times is not None:
        lines += [f"# Scan.start_time: {times[0]}", f"# Scan.end_time: {times[1]}"]
    lines += ["# ///",
              "# real reference spectra mixed with known fractions; truth in truth.csv",
              "# references: " + ", ".join(f"{k}={v}" for k, v in mixture.get("files", {}).items()),
              (f"# seed {mixture.get('seed')}, noise {mixture.get('noise')} "
               f"({mixture.get('noise_model')}), foil in irefer: {mixture.get('foil')}"),
              "#----", "# " + " ".join(columns)]
    return lines


def write_folder(series: Series, truth: pd.DataFrame, folder, *, overwrite: bool = False,
                 start=None, time_format: str = "iso") -> Path:
    """One XDI file per scan, ``conditions.csv`` keyed by ``file`` and ``truth.csv``.

    Columns ``energy i0 itrans irefer`` (``irefer`` only with a reference
    channel); headers ``Element.symbol`` and ``Element.edge``.  i0 is rebuilt
    from the truth's ``i0_flux``/``i0_tilt`` (nominal when absent), itrans and
    irefer from mu and the reference, so that ``operando.read_series(folder,
    conditions=folder / "conditions.csv")`` gives back ``series.mu`` and
    ``series.reference`` (to ~1e-9, the 10 significant digits written) and the
    conditions.

    Parameters
    ----------
    series, truth
        From :func:`operando.mixtures.mix_series` or a preset (a ``take`` of the
        series with the whole truth works: rows are matched by ``step``).
    folder : path-like
        Created if needed.
    overwrite : bool
        Allow writing into a folder that already holds files.
    start : datetime or ISO 8601 str, optional
        When given, every header gets ``Scan.start_time`` (``start`` + the
        step's ``time_s``) and ``Scan.end_time`` (+ the acquisition's
        ``scan_time_s``), naive or with the offset ``start`` carries.
    time_format : "iso" or "iss"
        ISO 8601, or NSLS-II ISS's ``03/13/2025  10:00:10.264416``.

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise ConfigError(f"{folder} exists and is not empty; pass overwrite=True to write into it")
    rows = _truth_rows(series, truth)
    folder.mkdir(parents=True, exist_ok=True)
    counts = _counts(series, rows)
    columns = ["energy", *counts]
    times = _times(series, start, time_format) if start is not None else None
    for i, file in enumerate(series.files):
        lines = _header(series, columns, rows.iloc[i], None if times is None else times[i])
        data = np.column_stack([series.energy] + [counts[c][i] for c in counts])
        body = [f"{r[0]:.3f} " + " ".join(f"{v:.10g}" for v in r[1:]) for r in data]
        (folder / file).write_text("\n".join(lines + body) + "\n")
    series.conditions.drop(columns="step").to_csv(folder / "conditions.csv", index=False)
    rows.to_csv(folder / "truth.csv", index=False)
    return folder


def write_hdf5_with_truth(series: Series, truth: pd.DataFrame, path) -> tuple[Path, Path]:
    """:func:`operando.io.write_hdf5` of the series plus ``<stem>_truth.csv`` next to it.

    For long series (``cu_potential_series(cycles=N)``): the operando HDF5
    layout is what ``operando run`` streams.

    Returns
    -------
    (Path, Path)
        The HDF5 file and the truth CSV.
    """
    from operando.io import write_hdf5

    path = Path(path)
    rows = _truth_rows(series, truth)
    h5 = write_hdf5(series, path)
    truth_path = path.with_name(path.stem + "_truth.csv")
    rows.to_csv(truth_path, index=False)
    return h5, truth_path
