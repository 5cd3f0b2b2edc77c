"""Which scans of a multi-scan source make the series, and in which order.

Edges
    A folder may hold scans of several edges (Cu K and Pt L3 on one NSLS-II
    ISS proposal).  With ``element``/``edge`` given, a scan is kept when its
    header names that element and edge, or, without such a header, when its
    energy range holds the tabulated edge energy; the others are skipped and
    listed with the reason.  Without a selection, headers naming more than one
    edge (or scans sharing no energy range whose edges differ) are an error
    that names the edges found and how to choose.
Time
    ``order="time"`` sorts the scans by the start time their headers give
    (XDI ``Scan.start_time``, NSLS-II ``Start time``, DESY .fio ``acquisition
    started at`` / ``Start_time``); a scan without one is an error naming it.
"""

from __future__ import annotations

import datetime as _dt
import logging

from ..errors import DataError, ReadError
from ._align import START_KEYS
from ._logbase import parse_datetime, to_utc_naive
from ._messages import short_list, warn

log = logging.getLogger(__name__)


def select_scans(source, scans, element=None, edge=None) -> tuple[list, list[dict]]:
    """``(kept, skipped)``: the scans of the asked edge, or all when none is asked.

    Raises
    ------
    DataError
        No selection asked and the headers name several edges.
    ReadError
        A selection that no scan matches (the edges found are named).
    """
    from ._scan import asked_element_edge

    asked_el, asked_ed = asked_element_edge(element, edge)
    if not asked_el and not asked_ed:
        _refuse_mixed(source, scans)
        return list(scans), []
    kept, skipped = [], []
    for scan in scans:
        reason = _mismatch(scan, asked_el, asked_ed)
        if reason:
            skipped.append({"file": scan.file, "reason": reason})
        else:
            kept.append(scan)
    asked = " ".join(x for x in (asked_el, asked_ed) if x)
    if not kept:
        raise ReadError(source, f"none of the {len(scans)} scans is the {asked} edge asked "
                                f"(found: {describe_edges(scans)})",
                        "element=/edge= naming the edge of the scans to read")
    if skipped:
        named = [f"{s['file']} ({s['reason']})" for s in skipped]
        warn(source, f"skipped {len(skipped)} scan(s) that are not the {asked} edge: "
                     f"{short_list(named, 3)}")
    return kept, skipped


def _mismatch(scan, asked_el, asked_ed) -> str | None:
    """Why ``scan`` is not the asked edge, or None when it is (or cannot be told)."""
    from .._util.elements import edge_energies

    emin, emax = float(scan.energy[0]), float(scan.energy[-1])
    if scan.element:
        if asked_el and scan.element != asked_el:
            return f"{scan.element} {scan.edge or ''} per its header".replace("  ", " ")
        if asked_ed and scan.edge and scan.edge != asked_ed:
            return f"{scan.element} {scan.edge} per its header"
        element = scan.element
    else:
        if asked_ed and scan.edge and scan.edge != asked_ed:
            return f"{scan.edge} edge per its header"
        element = asked_el
    if element is None or (scan.element and scan.edge):
        return None
    edges = edge_energies(element)
    targets = {asked_ed: edges[asked_ed]} if asked_ed and asked_ed in edges else edges
    if any(emin <= e <= emax for e in targets.values()):
        return None
    name, energy = min(targets.items(), key=lambda kv: abs(kv[1] - 0.5 * (emin + emax)))
    return (f"its energy range {emin:.0f}-{emax:.0f} eV does not hold the {element} {name} "
            f"edge ({energy:.0f} eV)")


def _refuse_mixed(source, scans) -> None:
    pairs = {(s.element, s.edge) for s in scans if s.element}
    if len(pairs) > 1:
        raise DataError(f"{source}: the scans are of several edges ({describe_edges(scans)}); "
                        "choose one with element= and edge= (e.g. element="
                        f"{sorted(pairs)[0][0]!r}, edge={sorted(pairs)[0][1] or 'K'!r}); the "
                        "others are then skipped and listed")


def describe_edges(scans, guess: bool = False) -> str:
    """``"Cu K (12: a.dat, b.dat ...), Pt L3 (3: ...)"`` from headers (or guessed)."""
    groups: dict = {}
    for scan in scans:
        el, ed = scan.element, scan.edge
        if guess and not el:
            el, ed = _guess(scan)
        label = " ".join(x for x in (el, ed) if x) or "edge not in header"
        groups.setdefault(label, []).append(scan.file)
    return "; ".join(f"{label} ({len(files)}: {short_list(files, 3)})"
                     for label, files in sorted(groups.items()))


def _guess(scan) -> tuple[str | None, str | None]:
    from ._scan import estimate_edge_energy

    try:
        import xraydb

        return xraydb.guess_edge(estimate_edge_energy(scan.energy, scan.mu))
    except Exception:  # xraydb raises various types for energies it cannot place
        return None, None


def explain_no_overlap(source, scans, error: DataError) -> DataError:
    """The error for scans sharing no energy range: several edges when that is the cause."""
    found = {(s.element, s.edge) if s.element else _guess(s) for s in scans}
    if len(found) > 1:
        return DataError(f"{source}: the scans share no common energy range because they are "
                         f"of several edges ({describe_edges(scans, guess=True)}); choose one "
                         "with element= and edge=; the others are then skipped and listed")
    return error


# ------------------------------------------------------------------------ time
def start_time(header: dict) -> _dt.datetime | None:
    """A scan's start time from its header (naive UTC when it has an offset), or None."""
    lower = {str(k).lower(): v for k, v in (header or {}).items()}
    for name in START_KEYS:
        parsed = parse_datetime(lower[name]) if isinstance(lower.get(name), str) else None
        if parsed is not None:
            return to_utc_naive(parsed, None)[0]
    return None


def order_by_time(source, scans) -> list:
    """``scans`` sorted by header start time (stable for equal times)."""
    times = [start_time(s.header) for s in scans]
    missing = [s.file for s, t in zip(scans, times) if t is None]
    if missing:
        raise ReadError(source, f"order='time' needs a start time in every header; "
                                f"{short_list(missing)} ha{'s' if len(missing) == 1 else 've'} "
                                "none", "headers with Scan.start_time (XDI), 'Start time' "
                                        "(NSLS-II) or 'acquisition started at' (.fio), or "
                                        "order='name'")
    order = sorted(range(len(scans)), key=lambda i: times[i])
    return [scans[i] for i in order]
