"""Tabulated absorption-edge energies, from xraydb, shipped as a small table.

xraydb is the source (its ``xray_edge`` values, eV); the table exists because
importing xraydb costs about 0.5 s, which would dominate the start of a fast
run.  ``tests/test_feffpaths.py`` checks the table against xraydb, and
:func:`build_table` regenerates it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .errors import ConfigError

TABLE = Path(__file__).parent / "data" / "edges.json"
EDGES = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, float]]:
    return json.loads(TABLE.read_text())


def edge_energies(element: str) -> dict[str, float]:
    """All tabulated edges of ``element`` (``{"K": 8979.0, "L3": 932.7, ...}``), eV."""
    try:
        return dict(_table()[str(element).strip()])
    except KeyError:
        raise ConfigError(f"{element!r} is not an element symbol (H to Cf, e.g. 'Pt')") from None


def edge_energy(element: str, edge: str) -> float:
    """Tabulated energy of one edge, eV (same as ``xraydb.xray_edge(element, edge).energy``)."""
    edges = edge_energies(element)
    try:
        return edges[str(edge).strip().upper()]
    except KeyError:
        raise ConfigError(f"{element} has no tabulated {edge!r} edge; it has {sorted(edges)}") from None


def build_table() -> Path:
    """Regenerate the table from xraydb (a maintainer task)."""
    import xraydb

    from .feffpaths import _SYMBOLS

    table = {}
    for symbol in _SYMBOLS[1:]:
        edges = xraydb.xray_edges(symbol)
        table[symbol] = {name: float(edges[name].energy) for name in EDGES if name in edges}
    TABLE.write_text(json.dumps(table, separators=(",", ":")))
    return TABLE


def element_symbol(text) -> str | None:
    """An atomic number or symbol in any case (``29``, ``"cu"``) -> ``"Cu"``; None otherwise.

    Names (``"copper"``) are not in the table; callers fall back to xraydb for them.
    """
    from .feffpaths import _SYMBOL_BY_LOWER_CASE, _SYMBOLS

    if isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit()):
        z = int(text)
        return _SYMBOLS[z] if 0 < z < len(_SYMBOLS) else None
    return _SYMBOL_BY_LOWER_CASE.get(str(text).strip().lower())
