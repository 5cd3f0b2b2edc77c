"""The bridge to xarray: ``to_xarray()`` of the package's objects and reading a Series back.

Dimensions are named after what they index: ``step`` (one per spectrum; its values
are the step labels), ``energy`` (eV), ``k`` (1/Angstrom), ``r`` (Angstrom),
``component``.  Every condition column becomes a coordinate along ``step``, so
``ds.sel(step=ds.gas == "H2")`` or ``ds.where(ds.potential_V < 0)`` select by
condition.  Settings travel as a JSON string in ``attrs["settings"]`` (netCDF
attributes hold only numbers and strings).  xarray is an optional dependency
(``pip install "operando[notebook]"``), imported only here, on first use.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd

from ..errors import DataError
from .jsonsafe import to_json_ready

#: Series metadata kept as attributes (the rest, e.g. whole file headers, stays behind).
_META = ("source", "format", "mu_from", "interpolated")


def xarray():
    """The xarray module, or an ImportError saying how to install it."""
    try:
        import xarray as xr
    except ImportError as exc:  # an optional extra
        raise ImportError("to_xarray() needs xarray: pip install \"operando[notebook]\" "
                          "(or pip install xarray)") from exc
    return xr


def _condition_coords(conditions: pd.DataFrame) -> dict:
    coords = {}
    for col in conditions.columns:
        if col == "step":
            continue
        values = conditions[col]
        if values.dtype == object:
            # Mixed columns (potential 0.5 / "OCP") become text: one dtype per coordinate.
            values = values.map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else str(v))
        coords[col] = ("step", values.to_numpy())
    return coords


def _attrs(kind: str, settings=None, **extra) -> dict:
    out = {"operando_type": kind}
    if settings is not None:
        out["settings"] = json.dumps(to_json_ready(dict(settings)))
    for key, value in extra.items():
        if value is None:
            continue
        out[key] = int(value) if isinstance(value, (bool, np.bool_)) else value
    return out


def series_dataset(s):
    """A Series as a Dataset: ``mu`` (and ``reference``) over ``(step, energy)``."""
    xr = xarray()
    data = {"mu": (("step", "energy"), np.asarray(s.mu))}
    if s.reference is not None:
        data["reference"] = (("step", "energy"), np.asarray(s.reference))
    meta = {k: s.metadata.get(k) for k in _META if s.metadata.get(k) is not None}
    coords = {"step": s.steps, "energy": ("energy", np.asarray(s.energy), {"units": "eV"}),
              **_condition_coords(s.conditions)}
    return xr.Dataset(data, coords=coords,
                      attrs=_attrs("Series", element=s.element, edge=s.edge,
                                   **{k: (str(v) if not isinstance(v, (bool, int, float)) else v)
                                      for k, v in meta.items()}))


def normalized_dataset(nz):
    """A NormalizedSeries: ``mu``, ``norm``, ``flat`` over ``(step, energy)``; ``e0``,
    ``edge_step``, ``ok``, ``reason`` over ``step``."""
    ds = series_dataset(nz.series)
    ds["norm"] = (("step", "energy"), np.asarray(nz.norm))
    ds["flat"] = (("step", "energy"), np.asarray(nz.flat))
    ds["e0"] = ("step", np.asarray(nz.e0, float), {"units": "eV"})
    ds["edge_step"] = ("step", np.asarray(nz.edge_step, float))
    ds["ok"] = ("step", np.asarray(nz.ok, bool))
    ds["reason"] = ("step", np.asarray(nz.reason, dtype=str))
    ds.attrs.update(_attrs("NormalizedSeries", nz.settings))
    return ds


def _base(conditions: pd.DataFrame, n: int, steps=None) -> dict:
    if conditions is not None and len(conditions) == n:
        return {"step": conditions["step"].to_numpy(), **_condition_coords(conditions)}
    return {"step": np.arange(n) if steps is None else np.asarray(steps)}


def chi_dataset(c):
    """A ChiSeries: ``chi`` over ``(step, k)``; ``e0``, ``edge_step``, ``ok`` over ``step``."""
    xr = xarray()
    coords = {**_base(c.conditions, len(c)), "k": ("k", np.asarray(c.k), {"units": "1/Angstrom"})}
    return xr.Dataset({"chi": (("step", "k"), np.asarray(c.chi)),
                       "e0": ("step", np.asarray(c.e0, float), {"units": "eV"}),
                       "edge_step": ("step", np.asarray(c.edge_step, float)),
                       "ok": ("step", np.asarray(c.ok, bool)),
                       "reason": ("step", np.asarray(c.reason, dtype=str))},
                      coords=coords, attrs=_attrs("ChiSeries", c.settings))


def rseries_dataset(rs, conditions=None):
    """An RSeries: ``chir_mag``, ``chir_re``, ``chir_im`` over ``(step, r)``."""
    xr = xarray()
    chir = np.asarray(rs.chir)
    coords = {**_base(conditions, chir.shape[0]), "r": ("r", np.asarray(rs.r), {"units": "Angstrom"})}
    return xr.Dataset({"chir_mag": (("step", "r"), np.abs(chir)), "chir_re": (("step", "r"), chir.real),
                       "chir_im": (("step", "r"), chir.imag), "ok": ("step", np.asarray(rs.ok, bool))},
                      coords=coords, attrs=_attrs("RSeries", rs.settings))


def fit_dataset(fr):
    """A ShellFitResult: every column of its table over ``step``; ``data_chi`` and
    ``model_chi`` over ``(step, k)``."""
    ds = table_dataset(fr.table, "ShellFitResult", fr.settings)
    ds.coords["k"] = ("k", np.asarray(fr.k), {"units": "1/Angstrom"})
    ds["data_chi"] = (("step", "k"), np.asarray(fr.data_chi))
    ds["model_chi"] = (("step", "k"), np.asarray(fr.model_chi))
    return ds


def lcf_dataset(r):
    """An LCFResult: ``weight``, ``weight_err`` over ``(step, component)``; ``rfactor``,
    ``redchi``, ``chi_square``, ``ok`` over ``step``."""
    xr = xarray()
    data = {"weight": (("step", "component"), np.asarray(r.weights)),
            "weight_err": (("step", "component"), np.asarray(r.errors)),
            "rfactor": ("step", np.asarray(r.rfactor)), "redchi": ("step", np.asarray(r.redchi)),
            "chi_square": ("step", np.asarray(r.chi_square)), "ok": ("step", np.asarray(r.ok, bool))}
    if r.shifts is not None:
        data["shift"] = (("step", "component"), np.asarray(r.shifts))
        data["shift_err"] = (("step", "component"), np.asarray(r.shift_errors))
    return xr.Dataset(data, coords={"step": np.asarray(r.steps), "component": list(r.names)},
                      attrs=_attrs("LCFResult", r.settings))


def table_dataset(table: pd.DataFrame, kind: str, settings=None):
    """A result table as a Dataset: every column a variable along the table's ``step``
    column (``row`` when it has none); text columns as strings."""
    xr = xarray()
    dim = "step" if "step" in table.columns else "row"
    index = table["step"].to_numpy() if dim == "step" else np.arange(len(table))
    data = {}
    for col in table.columns:
        if col == dim:
            continue
        values = table[col]
        data[str(col)] = (dim, values.to_numpy() if values.dtype != object
                          else values.map(lambda v: "" if v is None else str(v)).to_numpy())
    if dataclasses.is_dataclass(settings):
        settings = dataclasses.asdict(settings)
    return xr.Dataset(data, coords={dim: index}, attrs=_attrs(kind, settings))


def wavelet_dataset(wt):
    """A WaveletTransform: ``modulus`` over ``(map, r, k)``; ``label``, ``n_steps`` per map."""
    xr = xarray()
    return xr.Dataset({"modulus": (("map", "r", "k"), np.abs(np.asarray(wt.wt))),
                       "n_steps": ("map", np.asarray(wt.n_steps))},
                      coords={"map": np.arange(len(wt)),
                              "label": ("map", np.asarray([str(x) for x in wt.labels])),
                              "r": ("r", np.asarray(wt.r), {"units": "Angstrom"}),
                              "k": ("k", np.asarray(wt.k), {"units": "1/Angstrom"})},
                      attrs=_attrs("WaveletTransform", wt.settings))


def series_fields(obj) -> dict:
    """Series fields from a Dataset (``mu``, optional ``reference``) or a DataArray of mu,
    dims ``(step, energy)``: conditions from the coordinates along ``step``."""
    xr = xarray()
    if isinstance(obj, xr.DataArray):
        obj = obj.to_dataset(name="mu")
    if not isinstance(obj, xr.Dataset) or "mu" not in obj:
        raise DataError("from_xarray needs a Dataset with a 'mu' variable, or a DataArray of mu "
                        f"(got {type(obj).__name__})")
    mu = obj["mu"]
    if set(mu.dims) != {"step", "energy"}:
        raise DataError(f"mu must have dims ('step', 'energy'), got {mu.dims}")
    obj = obj.transpose("step", "energy", ...)
    conditions = pd.DataFrame({"step": np.asarray(obj["step"].values)})
    for name, coord in obj.coords.items():
        if name not in ("step", "energy") and coord.dims == ("step",):
            conditions[name] = coord.values
    if "file" not in conditions:
        conditions["file"] = ""
    for col in conditions.columns:
        if conditions[col].dtype.kind in "US":
            conditions[col] = conditions[col].astype(object)
    attrs = obj.attrs
    metadata = {k: attrs[k] for k in _META if k in attrs}
    if "interpolated" in metadata:
        metadata["interpolated"] = bool(metadata["interpolated"])
    metadata["from_xarray"] = True
    return {"energy": np.asarray(obj["energy"].values, float), "mu": np.asarray(obj["mu"].values, float),
            "conditions": conditions, "element": attrs.get("element"), "edge": attrs.get("edge"),
            "reference": (np.asarray(obj["reference"].values, float) if "reference" in obj else None),
            "metadata": metadata}
