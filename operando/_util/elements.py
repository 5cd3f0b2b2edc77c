"""Element symbols and tabulated absorption-edge energies (from xraydb, shipped as tables).

xraydb is the source (its ``xray_edge`` values, eV); the table exists because
importing xraydb costs about 0.5 s, which would dominate the start of a fast
run.  ``tests/test_feffpaths.py`` checks the table against xraydb, and
:func:`build_table` regenerates it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError

TABLE = Path(__file__).resolve().parents[1] / "data" / "edges.json"
EDGES = ("K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5")


#: Element symbols by atomic number (index 0 unused).  A table rather than xraydb,
#: whose import (via sqlalchemy) would dominate the start of a fast run.
SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge "
    "As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm "
    "Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U "
    "Np Pu Am Cm Bk Cf"
).split()
_Z = {symbol: z for z, symbol in enumerate(SYMBOLS) if z > 0}
_SYMBOL_BY_LOWER_CASE = {symbol.lower(): symbol for symbol in _Z}


def atomic_number(symbol: str) -> int:
    """``"Cu"`` -> 29; :class:`ConfigError` for anything that is not a symbol."""
    try:
        return _Z[str(symbol).strip()]
    except KeyError:
        raise ConfigError(f"{symbol!r} is not an element symbol (H to Cf, e.g. 'Pt', 'O')") from None


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

    table = {}
    for symbol in SYMBOLS[1:]:
        edges = xraydb.xray_edges(symbol)
        table[symbol] = {name: float(edges[name].energy) for name in EDGES if name in edges}
    TABLE.write_text(json.dumps(table, separators=(",", ":")))
    return TABLE


def element_symbol(text) -> str | None:
    """An atomic number or symbol in any case (``29``, ``"cu"``) -> ``"Cu"``; None otherwise.

    Names (``"copper"``) are not in the table; callers fall back to xraydb for them.
    """
    if isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit()):
        z = int(text)
        return SYMBOLS[z] if 0 < z < len(SYMBOLS) else None
    return _SYMBOL_BY_LOWER_CASE.get(str(text).strip().lower())
