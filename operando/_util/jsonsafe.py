"""Values made JSON-safe: one converter for settings, manifests, summaries and reports."""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

import numpy as np

__all__ = ["to_json_ready"]


def to_json_ready(obj: Any) -> Any:
    """``obj`` with numpy types, paths, sets and non-finite floats made JSON-safe."""
    if isinstance(obj, Mapping):
        return {str(k): to_json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json_ready(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, (str, int)):
        return obj
    return str(obj)
