"""The result of :func:`operando.xanes.normalize`: :class:`NormalizedSeries`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._util.result import Result
from ..series import Series


# --------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class NormalizedSeries(Result):
    """Normalised spectra of a series, with everything needed to reproduce them.

    Attributes
    ----------
    series : Series
        The input series (not copied).
    norm : (n, n_e) array
        Normalised mu, ``(mu - pre_edge) / edge_step`` (Larch ``norm``).  NaN rows
        for steps that are not ok.
    flat : (n, n_e) array
        Flattened normalised mu (Larch ``flat``): above E0 the post-edge
        polynomial (scaled by ``edge_step``) is removed and 1 added back; below
        E0 equal to ``norm``.  NaN rows for steps that are not ok.
    e0 : (n,) array
        Edge energy used for each step, eV.
    edge_step : (n,) array
        Edge jump at E0 in the units of mu.  For steps whose fit gave a
        non-positive step this holds that (raw, signed) value; NaN where no fit
        was possible.
    pre_offset, pre_slope : (n,) arrays
        Pre-edge line ``(pre_offset + pre_slope * E) * E**-nvict`` (Larch's
        ``pre_edge_details.pre_offset/pre_slope``); units of mu (times eV**nvict).
    norm_coefs : (n, k) array
        Post-edge polynomial coefficients in powers of energy,
        ``post_edge - pre_edge = sum_j norm_coefs[:, j] * E**j`` (Larch
        ``norm_c0, norm_c1, ...``); unused higher orders are 0.
    ok : (n,) bool array
    reason : list of str
        ``""`` when ok, else ``"normalize: <problem>"``.
    settings : dict
        Every resolved setting: ``e0`` policy, ``e0_value`` (common E0 or None),
        ``e0_source_step``, ``engine``, ``pre1``, ``pre2``, ``norm1``, ``norm2``
        (eV relative to E0), ``nnorm``, ``nvict``, ``npre``.  A setting that was
        the same for every ok step is a scalar; one that varies (``e0="each"``
        with defaults) is a list with one value per step (None for steps not ok).
    """

    series: Series
    norm: np.ndarray
    flat: np.ndarray
    e0: np.ndarray
    edge_step: np.ndarray
    pre_offset: np.ndarray
    pre_slope: np.ndarray
    norm_coefs: np.ndarray
    ok: np.ndarray
    reason: list
    settings: dict = field(default_factory=dict)

    @property
    def energy(self) -> np.ndarray:
        """Energy grid, eV (that of the series)."""
        return self.series.energy

    def __len__(self) -> int:
        return self.norm.shape[0]

    def title(self) -> str:
        return f"NormalizedSeries: {len(self)} steps, {int(np.sum(self.ok))} ok"

    def _repr_html_(self) -> str:
        from .._util.reprs import normalized_html

        return normalized_html(self)

    def to_xarray(self):
        """An ``xarray.Dataset``: ``mu``, ``norm``, ``flat`` over ``(step, energy)``; ``e0``,
        ``edge_step``, ``ok``, ``reason`` over ``step``; conditions as coordinates;
        settings as JSON in ``attrs["settings"]``."""
        from .._util.xr import normalized_dataset

        return normalized_dataset(self)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per step: ``step, e0, edge_step, ok, reason``."""
        return pd.DataFrame(
            {
                "step": self.series.steps,
                "e0": self.e0,
                "edge_step": self.edge_step,
                "ok": self.ok,
                "reason": list(self.reason),
            }
        )
