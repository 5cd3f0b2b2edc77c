"""Checkpoint files: numpy arrays plus JSON metadata in one ``.npz``, written atomically,
and tables stored as plain arrays (no pickling)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .._util.files import write_bytes_atomic
from .._util.jsonsafe import to_json_ready

def save_npz(path: Path, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    payload = {f"a_{k}": np.asarray(v) for k, v in arrays.items()}
    payload["__meta__"] = np.array(json.dumps(to_json_ready(meta)))
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    write_bytes_atomic(path, buffer.getvalue())


def load_npz(path: Path, keys=None) -> tuple[dict[str, np.ndarray], dict]:
    """``(arrays, meta)`` of a checkpoint; with ``keys``, only those arrays are read."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k[2:]: data[k] for k in data.files
                  if k.startswith("a_") and (keys is None or k[2:] in keys)}
        meta = json.loads(str(data["__meta__"])) if "__meta__" in data.files else {}
    return arrays, meta


def table_to_arrays(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Columns of a DataFrame as plain numpy arrays (no pickling), order kept.

    Floats, ints and bools keep their exact values; every other column is
    stored as text (``None`` as an empty string).
    """
    out = {"__columns__": np.array(list(map(str, table.columns)))}
    for i, column in enumerate(table.columns):
        values = table[column]
        if values.dtype.kind in "fiub":
            out[f"col{i}"] = values.to_numpy()
        else:
            out[f"col{i}"] = np.array(["" if v is None or (isinstance(v, float) and math.isnan(v))
                                        else str(v) for v in values], dtype=str)
    return out


def arrays_to_table(arrays: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Inverse of :func:`table_to_arrays`."""
    columns = [str(c) for c in arrays["__columns__"]]
    data = {}
    for i, column in enumerate(columns):
        values = arrays[f"col{i}"]
        data[column] = values.astype(object) if values.dtype.kind == "U" else values
    return pd.DataFrame(data, columns=columns)
