"""Athena project files (``.prj``) read as data, never run as code.

An Athena project is Perl source: one statement per line, e.g.::

    $old_group = 'ozun';
    @args = ('bkg_e0','11918.952','bkg_pre1',-150, ..., 'detectors',[]);
    @x = ('11721.9','11731.9', ...);
    [record]   # create object and set arrays in ifeffit
    %plot_features = ('c4' => 'darkorange', ...);
    1;

xraylarch's ``read_athena`` evaluates those right-hand sides with asteval,
whose ``open()`` works: a project holding
``$old_group = open('/etc/passwd').read()[:200];`` leaks that file into every
output, and ``@x = [1.0]*(10**8);`` takes gigabytes.  This parser accepts only
literal data on the right-hand side: quoted strings, numbers, ``undef`` and
lists of them in ``(...)``, ``[...]`` or ``{...}`` with ``,`` or ``=>``
between items.  Anything else (a name, a call, an operator) is refused with a
:class:`~operando.errors.ReadError` naming the file and line.  Its size is
bounded by the text (itself bounded by :mod:`operando.io._compress`), the
nesting depth by :data:`MAX_DEPTH` and every array by :data:`MAX_POINTS`.
The JSON project format of newer Demeter versions is read with ``json``.

Groups come out as xraylarch names them (``fix_varname`` of the label), in
file order; unlike xraylarch, two groups with the same label are both kept
(the second named ``<name>_2``).  The per-group processing parameters are
returned in Larch's names (:func:`project_settings`).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import ReadError

log = logging.getLogger(__name__)

ACCEPTED = ("an Athena project (.prj, plain or compressed) whose lines assign literal data: "
            "quoted strings, numbers and lists of them")
#: Deepest nesting of lists accepted (Athena writes at most 2).
MAX_DEPTH = 16
#: Most values in one array (@x, @y, ...): ten times the longest QEXAFS scan.
MAX_POINTS = 2_000_000
#: Arrays of a group read as numbers.
ARRAYS = ("x", "y", "i0", "signal", "stddev")

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<sq>'(?:[^'\\]|\\.)*')                       # 'single quoted'
    | (?P<dq>"(?:[^"\\]|\\.)*")                       # "double quoted"
    | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
    | (?P<punct>=>|[,()\[\]{}])
    | (?P<undef>undef)\b
    | (?P<other>\S+)
    )""", re.VERBOSE | re.DOTALL)
_STATEMENT = re.compile(r"^([$@%])([A-Za-z_]\w*)\s*=\s*(.*?)\s*;\s*(#.*)?$", re.DOTALL)
_HEX = re.compile(r"\\x\{([0-9a-fA-F]{1,6})\}")
_FLAT_CHARS = set("0123456789.+-eE', \t")
_CLOSE = {"(": ")", "[": "]", "{": "}"}


@dataclass
class AthenaGroup:
    """One record of a project: its key, arguments and arrays, as written."""

    key: str
    args: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)
    line: int = 0


def parse_project(path, text: str) -> list[AthenaGroup]:
    """Every group of an Athena project text, in file order.

    Parameters
    ----------
    path : path-like
        For messages.
    text : str
        The decompressed project.

    Raises
    ------
    ReadError
        Not an Athena project, a statement that is not literal data, a list
        nested deeper than :data:`MAX_DEPTH`, an array longer than
        :data:`MAX_POINTS` or holding something other than numbers.
    """
    head = text[:500]
    if "Athena project file -- " not in head:
        raise ReadError(path, "not an Athena project (no '# Athena project file --' header)",
                        ACCEPTED)
    if "_____header" in head and text.lstrip().startswith("{"):
        return _parse_json(path, text)
    groups, current = [], AthenaGroup(key="", line=1)
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[record]"):
            groups.append(current)
            current = AthenaGroup(key="", line=number + 1)
            continue
        if stripped == "1;":
            continue
        match = _STATEMENT.match(stripped)
        if not match:
            raise ReadError(path, f"line {number}: {_clip(stripped)!r} is not an assignment of "
                                  "literal data ('$name = ...;', '@name = (...);')", ACCEPTED)
        sigil, name, value = match.group(1), match.group(2), match.group(3)
        if sigil == "@" and name in ARRAYS:
            current.arrays[name] = _numbers(path, number, name, value)
        else:
            parsed = _literal(path, number, value)
            if sigil == "$" and name == "old_group":
                if not isinstance(parsed, str):
                    raise ReadError(path, f"line {number}: $old_group is not a string", ACCEPTED)
                current.key = parsed
            elif sigil == "@" and name == "args":
                current.args = _pairs(path, number, parsed)
    return groups


def _parse_json(path, text: str) -> list[AthenaGroup]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ReadError(path, f"JSON Athena project is not valid JSON ({exc})", ACCEPTED) from None
    order = next((v for k, v in document.items() if k.startswith("_____order")), None)
    if not isinstance(order, list):
        raise ReadError(path, "JSON Athena project has no '_____order' list of groups", ACCEPTED)
    groups = []
    for key in order:
        record = document.get(key)
        if not isinstance(record, dict):
            raise ReadError(path, f"JSON Athena project lists group {key!r} but holds no such "
                                  "record", ACCEPTED)
        args = record.get("args", {})
        group = AthenaGroup(key=str(key), args=dict(args) if isinstance(args, dict) else {})
        for name in ARRAYS:
            if name in record:
                try:
                    values = np.asarray(record[name], dtype=float)
                except (TypeError, ValueError):
                    raise ReadError(path, f"group {key!r}: array {name!r} holds something other "
                                          "than numbers", ACCEPTED) from None
                if values.ndim != 1 or values.size > MAX_POINTS:
                    raise ReadError(path, f"group {key!r}: array {name!r} has shape "
                                          f"{values.shape}", f"1-D arrays of at most "
                                                             f"{MAX_POINTS:,} values")
                group.arrays[name] = values
        groups.append(group)
    return groups


def _clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _numbers(path, number: int, name: str, value: str) -> np.ndarray:
    """``(...)`` of numbers or quoted numbers -> float array (fast path, else the parser)."""
    body = value.strip()
    if len(body) >= 2 and body[0] == "(" and body[-1] == ")" and \
            set(body[1:-1]) <= _FLAT_CHARS:
        tokens = [t.strip() for t in body[1:-1].split(",")]
        if tokens and not tokens[-1]:
            tokens.pop()  # trailing comma
        if len(tokens) > MAX_POINTS:
            raise ReadError(path, f"line {number}: @{name} holds {len(tokens):,} values",
                            f"arrays of at most {MAX_POINTS:,} values")
        plain = []
        for token in tokens:
            if len(token) >= 2 and token[0] == token[-1] == "'":
                token = token[1:-1]
            plain.append(token)
        try:
            if all(plain) and not any("'" in t for t in plain):
                return np.array(plain, dtype=float)
        except ValueError:
            pass  # the parser below names the bad token
    parsed = _literal(path, number, value)
    if not isinstance(parsed, list) or any(isinstance(v, list) for v in parsed):
        raise ReadError(path, f"line {number}: @{name} is not a flat list of numbers", ACCEPTED)
    if len(parsed) > MAX_POINTS:
        raise ReadError(path, f"line {number}: @{name} holds {len(parsed):,} values",
                        f"arrays of at most {MAX_POINTS:,} values")
    out = np.empty(len(parsed))
    for i, v in enumerate(parsed):
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise ReadError(path, f"line {number}: @{name} item {i + 1} is {v!r}, not a number",
                            ACCEPTED) from None
    return out


def _literal(path, number: int, value: str):
    """The literal ``value`` (a string, float, None or nested list), or ReadError."""
    tokens = _TOKEN.finditer(value)
    stack: list[tuple[str, list]] = []
    result = _MISSING = object()
    expect_item = True
    for tok in tokens:
        kind = tok.lastgroup
        text = tok.group(kind)
        if kind == "other":
            raise ReadError(path, f"line {number}: {_clip(text, 40)!r} is not data (a quoted "
                                  "string, a number or a list)", ACCEPTED)
        if kind == "punct" and text in _CLOSE:
            if not expect_item and stack:
                raise _unexpected(path, number, text)
            if len(stack) >= MAX_DEPTH:
                raise ReadError(path, f"line {number}: lists nested deeper than {MAX_DEPTH}",
                                ACCEPTED)
            stack.append((_CLOSE[text], []))
            expect_item = True
            continue
        if kind == "punct" and text in (")", "]", "}"):
            if not stack or stack[-1][0] != text:
                raise _unexpected(path, number, text)
            _, items = stack.pop()
            item = items
        elif kind == "punct":  # "," or "=>"
            if not stack or expect_item:
                raise _unexpected(path, number, text)
            expect_item = True
            continue
        else:
            if not expect_item:
                raise _unexpected(path, number, text)
            item = _scalar(kind, text)
        if stack:
            stack[-1][1].append(item)
            expect_item = False
        elif result is _MISSING:
            result = item
            expect_item = False
        else:
            raise _unexpected(path, number, text)
    if stack or result is _MISSING:
        raise ReadError(path, f"line {number}: unterminated or empty value", ACCEPTED)
    return result


def _unexpected(path, number, text) -> ReadError:
    return ReadError(path, f"line {number}: unexpected {_clip(text, 40)!r} (only literal data: "
                           "strings, numbers and lists are read)", ACCEPTED)


def _scalar(kind: str, text: str):
    if kind == "num":
        return float(text)
    if kind == "undef":
        return None
    body = text[1:-1]
    if kind == "sq":  # Perl single quotes: only \\ and \' are escapes
        body = body.replace("\\\\", "\x00").replace("\\'", "'").replace("\x00", "\\")
    else:
        body = (body.replace("\\\\", "\x00").replace('\\"', '"').replace("\\n", "\n")
                .replace("\\t", "\t").replace("\x00", "\\"))
    # Athena writes non-ASCII characters as \x{e4} (xraylarch decodes them the same way)
    return _HEX.sub(lambda m: chr(int(m.group(1), 16)) if int(m.group(1), 16) < 0x110000
                    else m.group(0), body)


def _pairs(path, number: int, parsed) -> dict:
    if not isinstance(parsed, list) or len(parsed) % 2:
        raise ReadError(path, f"line {number}: @args is not a list of key, value pairs", ACCEPTED)
    out = {}
    for key, value in zip(parsed[0::2], parsed[1::2]):
        if not isinstance(key, str):
            raise ReadError(path, f"line {number}: @args key {key!r} is not a string", ACCEPTED)
        out[key] = value
    return out


# ------------------------------------------------------------- names, settings
def group_names(groups: list[AthenaGroup]) -> list[str]:
    """xraylarch's names for the groups (``fix_varname`` of the label), made unique."""
    from pyshortcuts import fix_varname

    names, seen = [], {}
    for group in groups:
        label = group.args.get("label", group.key)
        label = label if isinstance(label, str) else _number_text(label)
        if label.startswith(" "):
            label = "d_" + label.strip()
        name = fix_varname(label) if label else "unknown"
        if name.startswith("_"):
            name = "d" + name
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


def _number_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


#: Larch name -> (Athena argument, conversion); energies in eV (pre/norm relative to e0),
#: k in 1/Angstrom, rbkg in Angstrom.  Demeter's own Larch template passes
#: nnorm = bkg_nnorm - 1 (Athena counts polynomial terms, Larch gives the degree).
_SETTINGS = (
    ("e0", "bkg_e0", float), ("eshift", "bkg_eshift", float),
    ("pre1", "bkg_pre1", float), ("pre2", "bkg_pre2", float),
    ("norm1", "bkg_nor1", float), ("norm2", "bkg_nor2", float),
    ("nnorm", "bkg_nnorm", lambda v: int(float(v)) - 1),
    ("rbkg", "bkg_rbkg", float), ("bkg_kmin", "bkg_spl1", float),
    ("bkg_kmax", "bkg_spl2", float), ("bkg_kweight", "bkg_kw", float),
    ("kmin", "fft_kmin", float), ("kmax", "fft_kmax", float), ("dk", "fft_dk", float),
    ("kweight", "fft_kw", float), ("window", "fft_win", str), ("window", "fft_kwindow", str),
)


def project_settings(group: AthenaGroup) -> dict:
    """The group's processing parameters in Larch's names (absent ones left out)."""
    out = {}
    for name, key, convert in _SETTINGS:
        value = group.args.get(key)
        if value is None or value == "" or name in out:
            continue
        try:
            out[name] = convert(value)
        except (TypeError, ValueError):
            log.info("Athena argument %s=%r is not a number; not used", key, value)
    return out


# ----------------------------------------------------------------------- scans
#: Athena flags of groups that do not hold mu(E) (chi(k), chi(R), chi(q), differences,
#: backgrounds): such groups are skipped and listed.
_NOT_MU = ("is_chi", "is_rsp", "is_qsp", "is_diff", "is_bkg", "is_pixel")


def read_athena_scans(path, text: str) -> tuple[list, list[dict]]:
    """``(scans, skipped)``: every mu(E) group of a project, in file order.

    Each :class:`~operando.io._scan.Scan` carries ``label`` (xraylarch's group
    name), the element/edge from ``bkg_z``/``fft_edge`` and, in its header,
    the Athena label and the group's processing parameters
    (``project_settings``, Larch names).
    """
    from ._scan import Scan, clean_energy, to_ev

    groups = parse_project(path, text)
    if not groups:
        raise ReadError(path, "Athena project holds no groups", "an Athena .prj with data")
    scans, skipped = [], []
    name = getattr(path, "name", str(path))
    for group, label in zip(groups, group_names(groups)):
        file = f"{name}#{label}"
        flags = [f for f in _NOT_MU if _truthy(group.args.get(f))]
        if flags:
            skipped.append({"file": file, "reason": f"not mu(E) data (Athena {flags[0]})"})
            continue
        energy, mu = group.arrays.get("x"), group.arrays.get("y")
        if energy is None or mu is None or energy.size < 2 or mu.shape != energy.shape:
            raise ReadError(path, f"group {label!r} (line {group.line}) has no matching @x/@y "
                                  "arrays", "Athena groups holding mu(E)")
        if not np.all(np.isfinite(energy)):
            raise ReadError(path, f"group {label!r}: non-finite energy", "finite energies")
        energy, rows = clean_energy(file, to_ev(file, energy), mu[:, None])
        element = str(group.args.get("bkg_z", "")).strip() or None
        edge = str(group.args.get("fft_edge", "")).strip().upper() or None
        athena_label = group.args.get("label", group.key)
        scans.append(Scan(file=file, energy=energy, mu=rows[:, 0], mu_from="mu",
                          element=element, edge=edge, label=label,
                          header={"label": athena_label if isinstance(athena_label, str)
                                  else _number_text(athena_label),
                                  "project_settings": project_settings(group)}))
    if not scans:
        raise ReadError(path, "Athena project holds no mu(E) group", "an Athena .prj with data")
    return scans, skipped


def _truthy(value) -> bool:
    try:
        return bool(float(value))
    except (TypeError, ValueError):
        return False


def looks_like_athena(head: bytes) -> bool:
    """True for the start of an Athena project (Perl or JSON layout, decompressed)."""
    return b"Athena project file -- " in head[:600]
