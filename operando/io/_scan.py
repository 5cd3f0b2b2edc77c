"""From a table of labelled columns to one spectrum: energy, mu, reference channel.

Also the shared helpers every format uses: energy clean-up (keV, duplicates,
ordering), the common grid of several scans and the element/edge decision.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError, OperandoWarning, ReadError
from ._channels import MuPlan, column_index, find_column, key as _key, plan_mu
from ._headers import element_symbol, valid_edge
from ._messages import short_list, warn

log = logging.getLogger(__name__)

ENERGY_NAMES = ("energy", "energie", "e", "en", "ener", "energy_ev", "mono_energy", "monoe",
                "enc", "e_ev", "ev", "energy_enc", "nrg", "energyfmb", "fmbenergy",
                "qexafs_energy")
ANGLE_NAMES = ("angle", "theta", "th", "bragg", "mono_angle", "dcm_bragg")
#: Fewest rows of two unnamed columns read as energy and mu: a spectrum needs a pre-edge
#: line, the edge's derivative and a post-edge curve, each from several points, while a
#: stray note with two number columns (a calibration list) has a few rows.
PLAIN_MIN_POINTS = 10
#: Largest backward energy step (in median steps) still treated as a jitter to sort.
MAX_JITTER_STEPS = 5.0
#: Largest fraction of backward steps still treated as jitter (more is a second sweep).
MAX_JITTER_FRACTION = 0.05


@dataclass
class Scan:
    """One spectrum as read, before the common grid."""

    file: str
    energy: np.ndarray
    mu: np.ndarray
    reference: np.ndarray | None = None
    mu_from: str = "mu"
    element: str | None = None
    edge: str | None = None
    edge_energy: float | None = None
    header: dict = field(default_factory=dict)
    label: str | None = None
    kind: str = "columns"
    times: list | None = None  # [start, end, how] text (see io._align.header_times)


#: The names a column table without a label line gets for two columns
#: (:func:`operando.io._headers.parse_plain_header`): read as energy and mu.
PLAIN_LABELS = ["col1", "col2"]


def energy_index(path, labels, energy_column) -> tuple[int, str]:
    """(column index, "energy" | "angle") of the energy axis."""
    if energy_column is not None:
        i = column_index(path, labels, energy_column, "energy")
        return i, "angle" if _key(labels[i]) in ANGLE_NAMES else "energy"
    hits = find_column(labels, ENERGY_NAMES)
    if hits:
        return hits[0], "energy"
    angles = find_column(labels, ANGLE_NAMES)
    if angles:
        return angles[0], "angle"
    warn(path, f"no column named energy among {short_list(labels, 8, quote=True)}; using the "
               f"first column {labels[0]!r} as energy (pass energy_column= to choose)")
    return 0, "energy"


def angle_to_energy(path, angle_deg: np.ndarray, d_spacing: float | None) -> np.ndarray:
    if d_spacing is None or not d_spacing > 0:
        raise ReadError(path, "the energy axis is a mono angle but no Mono.d_spacing is given",
                        "an energy column in eV, or an angle column with Mono.d_spacing")
    return 12398.419843 / (2.0 * d_spacing * np.sin(np.deg2rad(angle_deg)))


def to_ev(path, energy: np.ndarray) -> np.ndarray:
    """Energies whose maximum is below 100 are taken as keV and converted to eV."""
    finite = energy[np.isfinite(energy)]
    if finite.size and np.max(finite) < 100.0:
        warn(path, f"energy runs {finite.min():g}-{finite.max():g}: taken as keV and converted "
                   "to eV")
        return energy * 1000.0
    return energy


def clean_energy(path, energy: np.ndarray, rows: np.ndarray, lines=None):
    """Make ``energy`` strictly increasing, repairing only what is unambiguous.

    Parameters
    ----------
    path : path-like
        For messages.
    energy : (n,) array
        Energies in eV, in file order.
    rows : (n, m) array
        The data rows that travel with each energy.
    lines : (n,) int array, optional
        Line numbers of the rows, for messages.

    Returns
    -------
    energy, rows
        Sorted, strictly increasing energy and matching rows.

    Raises
    ------
    ReadError
        When the energy doubles back (a second sweep in one file) or one energy
        carries two different rows.
    """
    n = energy.size
    lines = np.arange(1, n + 1) if lines is None else np.asarray(lines)
    diffs = np.diff(energy)
    if n > 1 and np.all(diffs < 0):
        log.info("%s: energy decreases; reversed to increasing order", path)
        return energy[::-1].copy(), rows[::-1].copy()
    back = np.flatnonzero(diffs < 0)
    if back.size:
        positive = np.abs(diffs[diffs != 0])
        typical = np.median(positive) if positive.size else 0.0
        worst = back[np.argmax(-diffs[back])]
        jump = -diffs[worst]
        if jump > MAX_JITTER_STEPS * typical or back.size > max(2, MAX_JITTER_FRACTION * n):
            raise ReadError(path, f"energy doubles back at line {lines[worst + 1]} "
                                  f"({energy[worst]:g} -> {energy[worst + 1]:g} eV, "
                                  f"{back.size} backward steps): this looks like more than one "
                                  "sweep in one file, which is ambiguous",
                            "one monotonic sweep per file (split the sweeps into files)")
        warn(path, f"{back.size} energy point(s) out of order (largest step back "
                   f"{jump:g} eV at line {lines[worst + 1]}); sorted")
        order = np.argsort(energy, kind="stable")
        energy, rows, lines = energy[order], rows[order], lines[order]
    same = np.flatnonzero(np.diff(energy) == 0)
    if same.size:
        identical = np.array([np.array_equal(rows[i], rows[i + 1], equal_nan=True)
                              for i in same])
        if not np.all(identical):
            i = same[~identical][0]
            raise ReadError(path, f"energy {energy[i]:g} eV appears twice (lines {lines[i]} and "
                                  f"{lines[i + 1]}) with different values, which is ambiguous",
                            "each energy once, or exact duplicate rows (which are dropped)")
        warn(path, f"{same.size} exact duplicate row(s) dropped (first at line "
                   f"{lines[same[0] + 1]}, {energy[same[0]]:g} eV)")
        keep = np.ones(energy.size, dtype=bool)
        keep[same + 1] = False
        energy, rows = energy[keep], rows[keep]
    if energy.size < 2:
        raise ReadError(path, "fewer than 2 distinct energy points", "a spectrum")
    return energy, rows


def _first_nonfinite(path, data, labels, lines, columns) -> None:
    for j in columns:
        bad = np.flatnonzero(~np.isfinite(data[:, j]))
        if bad.size:
            i = int(bad[0])
            raise ReadError(path, f"line {lines[i]}: column {labels[j]!r} is {float(data[i, j])}",
                            "finite numbers only in the data table")


def trim_dead_ends(path, dead: np.ndarray, data: np.ndarray, lines: np.ndarray, what: str,
                   why: str, no_live: tuple[str, str]):
    """``(data, lines, trimmed)`` without the ``dead`` rows at the ends of the table.

    The rows dropped are named in a warning ("dropped N ``what`` (lines ...: ``why``)")
    and returned as ``trimmed`` (``{"start", "end", "lines"}``, or None); ReadError
    ``no_live`` (problem, accepted) when at most one row lives.
    """
    lead = int(np.argmin(dead)) if not dead.all() else dead.size
    trail = int(np.argmin(dead[::-1])) if not dead.all() else 0
    if lead + trail >= dead.size - 1:
        raise ReadError(path, *no_live)
    if not (lead or trail):
        return data, lines, None
    stop = dead.size - trail
    trimmed = {"start": lead, "end": trail,
               "lines": [int(x) for x in lines[:lead]] + [int(x) for x in lines[stop:]]}
    warn(path, f"dropped {lead + trail} {what} (lines {short_list(trimmed['lines'])}: {why})")
    return data[lead:stop], lines[lead:stop], trimmed


def scan_from_columns(path, file: str, labels, data, lines, *, mu="auto", reference="auto",
                      energy_column=None, channels=None, dead_time="auto", d_spacing=None,
                      header=None, element=None, edge=None, edge_energy=None) -> Scan:
    """One spectrum from a column table (see :mod:`operando.io._channels` for mu).

    Dead rows at the ends (see :func:`trim_dead_ends`) are dropped with a warning
    and noted in the header (``trimmed_rows``); any other non-finite value is
    refused naming its line and column.
    """
    labels = list(labels)
    if (labels == PLAIN_LABELS and energy_column is None and mu == "auto" and not channels
            and reference in ("auto", False, None)):
        # two columns without names: energy and mu (the plain export of Athena, Larix, ...)
        j_energy, axis, plan = 0, "energy", MuPlan("mu", column=1)
        if data.shape[0] < PLAIN_MIN_POINTS:
            raise ReadError(path, f"two unnamed columns of only {data.shape[0]} rows: not a "
                                  "spectrum", f"energy and mu in at least {PLAIN_MIN_POINTS} "
                                  "rows, or named columns")
    else:
        j_energy, axis = energy_index(path, labels, energy_column)
        plan = plan_mu(path, labels, mu, reference, channels=channels, dead_time=dead_time)
    used = plan.used()
    # A row is dead when every counter used for mu reads zero or is not finite (the empty
    # first frame of many QEXAFS scans, a beam dump at the end).  A single bad value among
    # live counters is not a dead row: it is refused with its line, as the XDI project's
    # bad-data set asks.
    signal = data[:, used]
    data, lines, trimmed = trim_dead_ends(
        path, np.all(~np.isfinite(signal) | (signal == 0), axis=1), data, np.asarray(lines),
        "dead row(s) at the ends of the scan", "zero or non-finite counts",
        (f"no live data: every row but at most one has only zero or non-finite counts in "
         f"{short_list([labels[j] for j in used])}", "a scan with positive counts"))
    _first_nonfinite(path, data, labels, lines, range(len(labels)))
    energy = data[:, j_energy]
    if axis == "angle":
        warn(path, f"energy axis is the mono angle {labels[j_energy]!r}; converted with "
                   f"d = {d_spacing} Angstrom")
        energy = angle_to_energy(path, energy, d_spacing)
    else:
        energy = to_ev(path, energy)
    energy, rows = clean_energy(path, energy, data, lines)
    mu_values, ref = plan.compute(rows)
    bad = np.flatnonzero(~np.isfinite(mu_values))
    if bad.size:
        raise ReadError(path, f"mu = {plan.formula(labels)} is not finite at {bad.size} "
                              f"point(s) (first at {energy[bad[0]]:g} eV): zero or negative "
                              "counts", "positive counts in the columns that make mu")
    if ref is not None and not np.all(np.isfinite(ref)):
        warn(path, "reference channel ln(it/iref) is not finite everywhere (zero or negative "
                   "counts); reference dropped")
        ref = None
    header = dict(header or {})
    header["columns"] = labels
    header["mu_formula"] = plan.formula(labels)
    if trimmed:
        header["trimmed_rows"] = trimmed
    return Scan(file=file, energy=energy, mu=mu_values, reference=ref, mu_from=plan.kind,
                element=element, edge=edge, edge_energy=edge_energy, header=header)


def common_grid(scans: list[Scan], source) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                                     bool]:
    """Put every scan on the first scan's grid restricted to the common overlap.

    Returns
    -------
    energy, mu, reference, interpolated
        ``reference`` is None unless every scan has one; ``interpolated`` is
        True when any scan had to be interpolated (linear, ``numpy.interp``).
    """
    low = max(s.energy[0] for s in scans)
    high = min(s.energy[-1] for s in scans)
    first = scans[0].energy
    grid = first[(first >= low) & (first <= high)]
    if grid.size < 2:
        worst = min(scans, key=lambda s: s.energy[-1] - s.energy[0])
        raise DataError(f"{source}: the scans share no common energy range (e.g. {worst.file} "
                        f"covers {worst.energy[0]:g}-{worst.energy[-1]:g} eV, the first scan "
                        f"{first[0]:g}-{first[-1]:g} eV)")
    if grid.size < first.size:
        log.info("%s: common energy range %g-%g eV keeps %d of %d points", source, grid[0],
                 grid[-1], grid.size, first.size)
    with_ref = [s.reference is not None for s in scans]
    if any(with_ref) and not all(with_ref):
        warnings.warn(f"{source}: only {sum(with_ref)} of {len(scans)} scans have a reference "
                      "channel; reference dropped", OperandoWarning, stacklevel=3)
    keep_ref = all(with_ref)
    mu = np.empty((len(scans), grid.size))
    ref = np.empty((len(scans), grid.size)) if keep_ref else None
    interpolated = False
    for i, scan in enumerate(scans):
        start = np.searchsorted(scan.energy, grid[0])
        piece = scan.energy[start:start + grid.size]
        if piece.size == grid.size and np.array_equal(piece, grid):
            mu[i] = scan.mu[start:start + grid.size]
            if keep_ref:
                ref[i] = scan.reference[start:start + grid.size]
        else:
            interpolated = True
            mu[i] = np.interp(grid, scan.energy, scan.mu)
            if keep_ref:
                ref[i] = np.interp(grid, scan.energy, scan.reference)
    return grid, mu, ref, interpolated


def estimate_edge_energy(energy: np.ndarray, mu: np.ndarray) -> float:
    """A rough edge energy (eV): the steepest point of the mean of the finite rows of
    ``mu``; the median energy when there is too little to differentiate."""
    if mu.ndim == 2:
        finite = np.all(np.isfinite(mu), axis=1)
        rows = mu if finite.all() else mu[finite]      # no copy of a whole finite matrix
    else:
        rows = mu[None, :]
    if rows.size == 0 or energy.size < 3:
        return float(np.median(energy))
    deriv = np.gradient(np.mean(rows, axis=0), energy)
    return float(energy[int(np.argmax(np.abs(deriv)))])


def asked_element_edge(element, edge) -> tuple[str | None, str | None]:
    """The user's element and edge in normal form (None where not given); ConfigError
    for a symbol that is not an element or an edge."""
    asked_el = element_symbol(str(element)) if element else None
    asked_ed = valid_edge(str(edge)) if edge else None
    if element and asked_el is None:
        raise ConfigError(f"element={element!r} is not an element symbol (e.g. 'Pt', 'Cu')")
    if edge and asked_ed is None:
        raise ConfigError(f"edge={edge!r} is not an X-ray edge (K, L1, L2, L3, M1..M5)")
    return asked_el, asked_ed


def resolve_edge(source, energy, mu, scan: Scan | None, element=None, edge=None):
    """Choose (element, edge): file header, then arguments, then xraydb.guess_edge."""
    from .._util.elements import edge_energies, edge_energy

    user_element, user_edge = asked_element_edge(element, edge)
    head_element = scan.element if scan else None
    head_edge = scan.edge if scan else None
    for what, head, user in (("element", head_element, user_element),
                             ("edge", head_edge, user_edge)):
        if head and user and head != user:
            # A header naming another element than asked means the wrong file or the wrong
            # setting; fitting the asked element's paths to it would give nonsense.
            raise DataError(f"{source}: the file header says {what} {head} but {what}="
                            f"{user!r} was asked; read it with {what}={head!r} (or without "
                            f"{what}=), or pick the files of the {user} {what}")
    final_element = head_element or user_element
    final_edge = head_edge or user_edge
    emin, emax = float(energy[0]), float(energy[-1])

    def hint() -> float:   # only when the edge or the element must be found
        return scan.edge_energy if scan and scan.edge_energy else estimate_edge_energy(energy, mu)

    if final_element and not final_edge:
        edges = edge_energies(final_element)
        inside = {k: e for k, e in edges.items() if emin <= e <= emax}
        if not inside and not user_element and edges:
            # Element from the header only: take its edge nearest the header's edge
            # energy (or the steepest point) rather than refusing a partial scan.
            inside = dict(edges)
        if not inside:
            raise DataError(f"{source}: {final_element} has no X-ray edge within the data's "
                            f"energy range {emin:g}-{emax:g} eV")
        near = hint()
        final_edge = min(inside, key=lambda k: abs(inside[k] - near))
    elif not final_element:
        import xraydb  # only to guess the element from the edge energy (a slow import: only when needed)

        edges = [final_edge] if final_edge else None
        near = hint()
        try:
            final_element, guessed_edge = xraydb.guess_edge(near, edges=edges) if edges else \
                xraydb.guess_edge(near)
        except Exception as exc:  # xraydb gives no single exception type
            raise DataError(f"{source}: could not guess the element from the edge near "
                            f"{near:g} eV ({exc}); pass element= and edge=") from None
        final_edge = final_edge or guessed_edge
        log.info("%s: element/edge guessed from %g eV: %s %s", source, near, final_element,
                 final_edge)
    if user_element or user_edge:
        try:
            e_edge = edge_energy(final_element, final_edge)
        except ConfigError:
            raise DataError(f"{source}: {final_element} has no {final_edge} edge") from None
        if (user_element == final_element or user_edge == final_edge) and \
                not (emin <= e_edge <= emax):
            raise DataError(f"{source}: the {final_element} {final_edge} edge ({e_edge:g} eV) "
                            f"lies outside the data's energy range {emin:g}-{emax:g} eV; "
                            "check element= and edge=")
    return final_element, final_edge
