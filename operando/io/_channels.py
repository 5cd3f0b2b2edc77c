"""Which columns of a scan make mu and the reference channel, and how.

Formulas (rows are data points; every column is a raw counter unless said):

transmission
    mu = ln(i0 / it)
fluorescence
    mu = sum_j F_j * c_j / i0, summed over the fluorescence channels F_j, with
    the dead-time factor c_j = ICR_j / OCR_j (input over output count rate of
    detector element j) when the file has both columns for every channel, else
    c_j = 1 (xraylarch's ``sum_fluor_channels`` uses the same ICR/OCR factor).
    A single total-fluorescence column (``if``, ``iff``, ``pips``...) is the
    one-channel case.
mu
    A column used as written (``mu``, ``xmu``, or any column named with
    ``mu="<column>"``), except that a detector region of interest named alone
    (a label holding ``roi``, e.g. ``mu="xs_roi01"``) is a counter and is
    divided by i0 like any fluorescence channel.
reference
    ln(it / iref) from the reference ion chamber behind the reference foil.

Columns are found by name (case-insensitive, punctuation ignored): i0 from
:data:`I0_NAMES`, it from :data:`IT_NAMES`, iref from :data:`IREF_NAMES`, a
total fluorescence column from :data:`IF_NAMES`.  Detector channels are
columns whose label holds ``roi`` (``xs_ch03_roi01``: ROI 1 of element 3;
``xs_roi01``: ROI 1 summed by the beamline) or ends in ``_mca<N>`` (GSECARS:
``FeKa_mca3``); ICR/OCR columns hold ``icr``/``ocr`` (or ``InputCounts``/
``OutputCounts``) and the element number.  ``channels=`` overrides any of
these: ``{"i0": "vfc01", "it": "vfc02", "iref": "vfc03", "fluorescence":
["sdd1", "sdd2"], "icr": [...], "ocr": [...]}``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ._messages import short_list, warn

log = logging.getLogger(__name__)

I0_NAMES = ("i0", "io", "i_0", "izero", "i00", "mon", "monitor")
IT_NAMES = ("it", "itrans", "i1", "i_t", "itr", "i_1", "trans", "i_trans")
IREF_NAMES = ("iref", "irefer", "ir", "i2", "i_ref", "i_2", "refer", "iref0")
IF_NAMES = ("if", "iff", "ifluor", "fluo", "fluor", "ifl", "pips", "fl", "i_f", "sdd", "ifluo",
            "fluorescence", "ipips")
MU_CHOICES = ("'transmission' (i0 and it), 'fluorescence' (i0 and fluorescence channels), "
              "'mu' (exactly one mu/xmu column), a column name, or a list of fluorescence "
              "channel names (summed, divided by i0)")
ROLES = ("i0", "it", "iref", "fluorescence", "icr", "ocr")

_NOT_KEY = re.compile(r"[^a-z0-9_]")
_ROI = re.compile(r"roi_?(\d*)")
_ELEMENT = re.compile(r"(?:ch|chan|channel|mca|elem|element|det)_?(\d+)")
_MCA_SUFFIX = re.compile(r"^(.*?)_?mca_?(\d+)$")
_ICR = re.compile(r"(?:^|_)(?:icr|inputcounts|input_counts|inputcountrate)(?:_|$|\d)")
_OCR = re.compile(r"(?:^|_)(?:ocr|outputcounts|output_counts|outputcountrate)(?:_|$|\d)")
_DTF = re.compile(r"(?:^|_)(?:dtfactor|dt_factor|dtcfactor|deadtimefactor)(?:_|$|\d)")
#: Per-element detector columns that are not regions of interest (GSECARS, Xspress3).
_NOT_ROI = re.compile(r"^(?:clock|dtfactor|dt_factor|resetticks|allevent|realtime|livetime|"
                      r"ltime|rtime|deadtime|dtc)(?:_|\d|$)")
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def key(label) -> str:
    """A label compared by name: lower case, only letters, digits and ``_``."""
    low = str(label).lower()
    if low.isascii() and low.replace("_", "").isalnum():
        return low
    return _NOT_KEY.sub("", low)


def find_column(labels, names) -> list[int]:
    keys = [key(label) for label in labels]
    return [i for i, k in enumerate(keys) if k in names]


def column_index(path, labels: list[str], wanted, what: str) -> int:
    """Index of a column given by label (case-insensitive) or 0-based position."""
    if isinstance(wanted, (int, np.integer)) and not isinstance(wanted, bool):
        if 0 <= wanted < len(labels):
            return int(wanted)
        raise ConfigError(f"{path}: {what} column index {wanted} out of range; the file has "
                          f"{len(labels)} columns ({short_list(labels, 8, quote=True)})")
    for i, label in enumerate(labels):
        if label == wanted:
            return i
    lowered = [label.lower() for label in labels]
    if str(wanted).lower() in lowered:
        return lowered.index(str(wanted).lower())
    raise ConfigError(f"{path}: no {what} column {wanted!r}; columns are "
                      f"{short_list(labels, 8, quote=True)}")



@dataclass
class MuPlan:
    """How one scan's mu and reference are computed (column indices)."""

    kind: str                                   # "transmission" | "fluorescence" | "mu"
    i0: int | None = None
    it: int | None = None
    column: int | None = None                   # kind "mu"
    fluorescence: list[int] = field(default_factory=list)
    # per channel: (icr, ocr) -> factor icr/ocr, or (dtfactor, None) -> that column
    dead_time: list[tuple[int, int | None]] = field(default_factory=list)
    reference: tuple[int, int] | None = None    # (it, iref)

    def used(self) -> list[int]:
        cols = [self.i0, self.it, self.column, *self.fluorescence,
                *(j for pair in self.dead_time for j in pair if j is not None)]
        return [j for j in cols if j is not None]

    def formula(self, labels) -> str:
        """The formula in column names (``ln(i0/it)``, ``(a*icr/ocr + ...)/i0``)."""
        name = labels.__getitem__
        if self.kind == "transmission":
            return f"ln({name(self.i0)}/{name(self.it)})"
        if self.kind == "mu":
            return name(self.column)
        terms = [name(j) if not self.dead_time else
                 f"{name(j)}*{name(self.dead_time[k][0])}" + (
                     f"/{name(self.dead_time[k][1])}" if self.dead_time[k][1] is not None else "")
                 for k, j in enumerate(self.fluorescence)]
        if len(terms) > 4:
            terms = terms[:3] + [f"... ({len(terms)} channels)"]
        body = terms[0] if len(terms) == 1 else "(" + " + ".join(terms) + ")"
        return f"{body}/{name(self.i0)}"

    def compute(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(mu, reference) for ``rows`` (points x columns); non-finite where counts are bad."""
        with np.errstate(all="ignore"):
            if self.kind == "transmission":
                mu = np.log(rows[:, self.i0] / rows[:, self.it])
            elif self.kind == "fluorescence":
                total = np.zeros(rows.shape[0])
                for k, j in enumerate(self.fluorescence):
                    signal = rows[:, j]
                    if self.dead_time:
                        a, b = self.dead_time[k]
                        factor = rows[:, a] if b is None else rows[:, a] / rows[:, b]
                        signal = signal * factor
                    total = total + signal
                mu = total / rows[:, self.i0]
            else:
                mu = rows[:, self.column].copy()
            ref = None
            if self.reference is not None:
                a, b = self.reference
                ref = np.log(rows[:, a] / rows[:, b])
        return mu, ref


def plan_mu(path, labels: list[str], mu, reference, channels=None, dead_time="auto") -> MuPlan:
    """Decide which columns make mu and the reference channel (see the module docstring).

    Raises
    ------
    ConfigError
        A choice the columns cannot satisfy, an ambiguous automatic choice, a
        channel name not in the file, or dead-time columns that cannot be
        paired with the channels.
    """
    labels = list(labels)
    roles = _roles(path, labels, channels)
    i0, it, iref = roles["i0"], roles["it"], roles["iref"]
    it = [i for i in it if i not in iref]
    total_fl = roles["fluorescence"] if channels and "fluorescence" in channels else \
        find_column(labels, IF_NAMES)
    mus = [i for i, label in enumerate(labels)
           if (key(label).startswith("mu") or key(label).startswith("xmu"))
           and "ref" not in key(label)]
    if isinstance(mu, (list, tuple)):
        if not mu:
            raise ConfigError(f"{path}: mu=[] names no fluorescence channel")
        picked = [column_index(path, labels, c, "fluorescence channel") for c in mu]
        return _fluorescence(path, labels, picked, i0, roles, dead_time,
                             _reference(path, labels, reference, it, iref))
    if not isinstance(mu, str):
        raise ConfigError(f"mu must be a string or a list of column names: {MU_CHOICES}; got "
                          f"{mu!r}")
    choice = mu.lower()
    ref = _reference(path, labels, reference, it, iref)
    if choice == "auto":
        if i0 and it:
            if total_fl:
                log.info("%s: i0 and it present -> transmission (fluorescence %s also present)",
                         path, short_list(labels[i] for i in total_fl))
            choice = "transmission"
        elif i0 and len(total_fl) == 1:
            choice = "fluorescence"
        elif len(mus) == 1 and not total_fl:
            choice = "mu"
        else:
            raise ConfigError(f"{path}: cannot tell which columns make mu (columns: "
                              f"{short_list(labels, 8, quote=True)}); pass mu= one of "
                              f"{MU_CHOICES}")
    if choice == "transmission":
        if not (i0 and it):
            raise ConfigError(f"{path}: mu='transmission' needs i0 and it columns (columns: "
                              f"{short_list(labels, 8, quote=True)}); name them with "
                              "channels={'i0': ..., 'it': ...}")
        return MuPlan("transmission", i0=i0[0], it=it[0], reference=ref)
    if choice == "fluorescence":
        picked = _auto_fluorescence(path, labels, total_fl, roles)
        return _fluorescence(path, labels, picked, i0, roles, dead_time, ref)
    if choice == "mu":
        if len(mus) != 1:
            raise ConfigError(f"{path}: mu='mu' needs exactly one mu/xmu column (columns: "
                              f"{short_list(labels, 8, quote=True)}); name the column with "
                              "mu='<column>'")
        return MuPlan("mu", column=mus[0], reference=ref)
    j = column_index(path, labels, mu, "mu")
    if is_roi(labels[j]):
        return _fluorescence(path, labels, [j], i0, roles, dead_time, ref)
    return MuPlan("mu", column=j, reference=ref)


def _roles(path, labels, channels) -> dict:
    """Column indices per role: from ``channels`` where given, else found by name."""
    found = {"i0": find_column(labels, I0_NAMES), "it": find_column(labels, IT_NAMES),
             "iref": find_column(labels, IREF_NAMES), "fluorescence": [], "icr": [], "ocr": []}
    if channels is None:
        return found
    if not isinstance(channels, dict):
        raise ConfigError(f"channels must be a mapping of role -> column name(s) "
                          f"({', '.join(ROLES)}); got {channels!r}")
    unknown = sorted(set(channels) - set(ROLES))
    if unknown:
        raise ConfigError(f"channels: unknown role(s) {unknown}; roles are {', '.join(ROLES)}")
    for role, names in channels.items():
        names = [names] if isinstance(names, (str, int)) else list(names or [])
        found[role] = [column_index(path, labels, n, f"{role} channel") for n in names]
    return found


def _reference(path, labels, reference, it, iref):
    if reference is True or (isinstance(reference, str) and reference.lower() == "auto"):
        if iref and it:
            return (it[0], iref[0])
        if iref:
            log.info("%s: reference column %s but no it column; no reference channel", path,
                     labels[iref[0]])
        return None
    if isinstance(reference, (str, int)) and not isinstance(reference, bool):
        j = column_index(path, labels, reference, "reference")
        if not it:
            raise ConfigError(f"{path}: reference={reference!r} needs an it column for "
                              f"ln(it/iref) (columns: {short_list(labels, 8, quote=True)})")
        return (it[0], j)
    if reference not in (None, False):
        raise ConfigError(f"reference must be 'auto', True, False, None or a column name; "
                          f"got {reference!r}")
    return None


def is_roi(label) -> bool:
    """True for a column label naming a detector region of interest (``roi``, an MCA
    channel suffix): a fluorescence channel, not a counter."""
    k = key(label)
    return "roi" in k or bool(_MCA_SUFFIX.match(k))


def _channel_groups(labels) -> dict:
    """Detector channels grouped by detector and region of interest:
    ``{group: [(index, element number or None for a beamline-summed ROI)]}``."""
    groups: dict = {}
    for i, label in enumerate(labels):
        k = key(label)
        if _ICR.search(k) or _OCR.search(k) or _DTF.search(k) or _NOT_ROI.match(k):
            continue
        mca = _MCA_SUFFIX.match(k)
        roi = _ROI.search(k)
        if mca:
            group = mca.group(1) or "mca"
        elif roi:
            rest = k[:roi.start()] + k[roi.end():]
            group = _ELEMENT.sub("", rest) + f"roi{roi.group(1)}"
        else:
            continue
        groups.setdefault(group, []).append((i, _channel_number(k)))
    return groups


def _auto_fluorescence(path, labels, total_fl, roles) -> list[int]:
    """The channels ``mu="fluorescence"`` sums: per-element ROIs of one region, else a
    beamline-summed ROI, else the one total-fluorescence column."""
    if roles["fluorescence"]:
        return roles["fluorescence"]
    groups = _channel_groups(labels)
    per_element = {g: [i for i, el in m if el is not None] for g, m in groups.items()}
    per_element = {g: v for g, v in per_element.items() if v}
    summed = {g: [i for i, el in m if el is None] for g, m in groups.items()}
    summed = {g: v for g, v in summed.items() if v}
    for found in (per_element, summed):
        if len(found) > 1:
            listing = "; ".join(f"{g}: {short_list([labels[i] for i in v], 3)}"
                                for g, v in found.items())
            raise ConfigError(f"{path}: mu='fluorescence' is ambiguous: the detector has "
                              f"several regions of interest ({listing}); pass mu= the list of "
                              "channels to sum (one region)")
        if found:
            picked = next(iter(found.values()))
            if len(picked) > 1 and found is summed:
                raise ConfigError(f"{path}: several summed ROI columns "
                                  f"{short_list([labels[i] for i in picked], quote=True)}; "
                                  "pass mu= the one to use")
            if total_fl:
                warn(path, f"mu='fluorescence' sums the detector channels "
                           f"{short_list([labels[i] for i in picked])}; the total "
                           f"fluorescence column {labels[total_fl[0]]!r} is not used "
                           f"(mu={labels[total_fl[0]]!r} uses it as written, "
                           f"mu=[{labels[total_fl[0]]!r}] divides it by i0)")
            return picked
    if len(total_fl) == 1:
        return total_fl
    raise ConfigError(f"{path}: mu='fluorescence' needs i0 and fluorescence channels "
                      f"(if/iff/ifluor/pips, or detector ROI columns); columns are "
                      f"{short_list(labels, 8, quote=True)}; "
                      + ("several total-fluorescence columns: pass mu= a list of them"
                         if total_fl else "name them with mu=[...] or channels="))


def _fluorescence(path, labels, picked, i0, roles, dead_time, ref) -> MuPlan:
    if not i0:
        raise ConfigError(f"{path}: fluorescence channels "
                          f"{short_list([labels[j] for j in picked], quote=True)} need an i0 "
                          f"column to divide by (columns: {short_list(labels, 8, quote=True)}); "
                          "name it with channels={'i0': ...}")
    if dead_time not in ("auto", True, False):
        raise ConfigError(f"dead_time={dead_time!r}; use 'auto', True or False")
    pairs = [] if dead_time is False else _dead_time_pairs(path, labels, picked, roles,
                                                           required=dead_time is True)
    return MuPlan("fluorescence", i0=i0[0], fluorescence=list(picked), dead_time=pairs,
                  reference=ref)


def _dead_time_pairs(path, labels, picked, roles, required: bool) -> list:
    """Dead-time columns per channel, paired by detector element number; [] when absent.

    Per channel: ``(icr, ocr)`` when the file has both count rates, else
    ``(dtfactor, None)`` when it has the factor ICR/OCR itself (GSECARS
    ``DTFactor_mcaN``).  An OCR without ICR or factor cannot correct anything.
    """
    if roles["icr"] or roles["ocr"]:
        icr, ocr = roles["icr"], roles["ocr"]
        if len(icr) != len(picked) or len(ocr) != len(picked):
            raise ConfigError(f"{path}: channels= gives {len(icr)} icr and {len(ocr)} ocr "
                              f"column(s) for {len(picked)} fluorescence channel(s); give one "
                              "of each per channel, in the same order")
        return list(zip(icr, ocr))
    keys = [key(label) for label in labels]
    icr = {_element_number(k): i for i, k in enumerate(keys) if _ICR.search(k)}
    ocr = {_element_number(k): i for i, k in enumerate(keys) if _OCR.search(k)}
    dtf = {_element_number(k): i for i, k in enumerate(keys) if _DTF.search(k)}
    sources = [(icr.keys() & ocr.keys(), lambda n: (icr[n], ocr[n])),
               (set(dtf), lambda n: (dtf[n], None))]
    if not (icr and ocr) and not dtf:
        if required:
            raise ConfigError(f"{path}: dead_time=True but the file has no ICR/OCR or "
                              f"DTFactor columns (columns: {short_list(labels, 8, quote=True)})")
        return []
    numbers = [_channel_number(keys[j]) for j in picked]
    if len(picked) == 1 and numbers[0] is None:
        for found, make in sources:
            if len(found) == 1:
                return [make(next(iter(found)))]
    for found, make in sources:
        if found and all(n in found for n in numbers):
            return [make(n) for n in numbers]
    missing = [labels[j] for j, n in zip(picked, numbers)
               if not any(n in found for found, _ in sources)]
    raise ConfigError(f"{path}: cannot pair fluorescence channel(s) "
                      f"{short_list(missing or [labels[j] for j in picked], quote=True)} with "
                      "ICR/OCR or DTFactor columns by element number; give them with "
                      "channels={'icr': [...], 'ocr': [...]} or pass dead_time=False")


def _channel_number(k: str) -> int | None:
    """The detector element of a channel label (``xs_ch03_roi01`` -> 3, ``feka_mca2`` -> 2)."""
    mca = _MCA_SUFFIX.match(k)
    if mca:
        return int(mca.group(2))
    roi = _ROI.search(k)
    rest = k[:roi.start()] + k[roi.end():] if roi else k
    element = _ELEMENT.search(rest)
    return int(element.group(1)) if element else None


def _element_number(k: str) -> int | None:
    match = _LAST_NUMBER.search(k)
    return int(match.group(1)) if match else None
