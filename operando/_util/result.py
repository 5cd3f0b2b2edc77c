"""The result protocol: every result type of the package answers the same four calls.

==================  =============================================================
``to_dataframe()``  its numbers as a table (one row per step, component, map ...);
                    each type defines it
``report()``        a plain-text account (default: a title line and the table)
``_repr_html_()``   the same in a notebook (default: the title and a short table)
``to_xarray()``     an ``xarray.Dataset`` (default: the table along its first
                    column, ``step`` where there is one)
==================  =============================================================

A type with spectra, maps or curves overrides the defaults with richer views
(spectra over energy, k or R; an inline chart), as lmfit's results report
themselves and xarray objects carry their coordinates.
"""

from __future__ import annotations

import pandas as pd

_REPORT_ROWS = 40


class Result:
    """Base of the result types: the defaults of the protocol (module docstring)."""

    def to_dataframe(self) -> pd.DataFrame:
        raise NotImplementedError(f"{type(self).__name__} must define to_dataframe()")

    def title(self) -> str:
        """The one-line header of :meth:`report` and the notebook view."""
        return f"{type(self).__name__}: {len(self.to_dataframe())} rows"

    def report(self) -> str:
        """Plain text: :meth:`title` and the table (first and last rows when long)."""
        table = self.to_dataframe()
        return f"{self.title()}\n{table.to_string(index=False, max_rows=_REPORT_ROWS)}"

    def _repr_html_(self) -> str:
        from .reprs import block, table

        return block(self.title(), table(self.to_dataframe()))

    def to_xarray(self):
        """An ``xarray.Dataset`` of :meth:`to_dataframe` (needs xarray)."""
        from .xr import table_dataset

        return table_dataset(self.to_dataframe(), type(self).__name__,
                             getattr(self, "settings", None))
