"""One shell of a shell model (:class:`ShellSpec`) and how each of its parameters is
treated (:class:`Rule`: free, bounded, fixed, tied to another shell, or taken from the
foil), parsed from Python values or the TOML tables of ``[exafs] shells``.

Parameter values (``cn``, ``deltar``, ``sigma2``, ``de0`` of a shell)::

    None / "free"          varied within the model's bounds (the default)
    [lo, hi]               varied within lo..hi
    0.0085                 fixed at that value
    "0.5 * Cu-O"           tied: 0.5 x the same parameter of shell Cu-O (also
                           "Cu-O" for factor 1, or {shell = "Cu-O", factor = 0.5})
    "foil"            sigma2, deltar, de0: from the [foil] fit
                           (:func:`operando.exafs.apply_foil`; dE0 becomes an
                           "edge" rule: the foil's absolute E0 + dE0 in eV, so each
                           step's dE0 = that energy - the step's E0)

Units: cn 1, deltar Angstrom, sigma2 Angstrom^2, de0 eV.  dE0 is shared through
``e0_group`` (shells with the same group share one dE0), not through ties.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from .._util.validate import check_keys
from ..errors import ConfigError
from ..feffpaths import parse_label

#: The parameter kinds of a shell (Larch's names: ``deltar``; results report ``r``).
KINDS = ("cn", "deltar", "sigma2", "de0")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_LABEL = r"[A-Z][a-z]?-[A-Z][a-z]?(?:_[A-Za-z0-9]+)?"
_TIE = re.compile(rf"^\s*(?:(?P<f1>{_NUMBER})\s*\*\s*)?(?P<label>{_LABEL})"
                  rf"(?:\s*\*\s*(?P<f2>{_NUMBER}))?\s*$")


@dataclass(frozen=True)
class Rule:
    """How one parameter of one shell is treated.

    Attributes
    ----------
    mode : {"free", "fixed", "tied", "foil", "edge"}
    value : float or None
        The fixed value (``"fixed"``); for ``"edge"`` (dE0 only) an absolute energy
        (eV): the parameter is held at ``value - E0`` of each step.
    lo, hi : float or None
        Bounds of a free parameter (None: the model's default bound).
    source : str or None
        ``"tied"``: the label of the shell whose same parameter this one follows.
    factor : float
        ``"tied"``: value = factor x the source's value.
    """

    mode: str = "free"
    value: float | None = None
    lo: float | None = None
    hi: float | None = None
    source: str | None = None
    factor: float = 1.0

    @classmethod
    def parse(cls, kind: str, value: Any, label: str) -> "Rule":
        """A rule from a config value (see the module docstring); ConfigError names the
        shell, the parameter and what is accepted."""
        where = f"shell {label!r} {kind}"
        accepted = ("a number (fixed), [min, max] (bounded), \"free\", "
                    + ("\"foil\", " if kind in ("sigma2", "deltar", "de0") else "")
                    + ("\"<factor> * <shell>\" (tied)" if kind != "de0" else "use e0_group to share dE0"))
        if isinstance(value, Rule):
            return value
        if value is None:
            return cls()
        if isinstance(value, bool):
            raise ConfigError(f"{where}: {value!r} is not accepted; give {accepted}")
        if isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise ConfigError(f"{where}: {value!r} is not finite; give {accepted}")
            return cls(mode="fixed", value=float(value))
        if isinstance(value, (list, tuple)):
            if (len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                       for v in value) or not value[0] < value[1]):
                raise ConfigError(f"{where}: {list(value)!r} is not [min, max] with min < max")
            return cls(lo=float(value[0]), hi=float(value[1]))
        if isinstance(value, Mapping) and set(value) == {"edge"} and kind == "de0":
            edge = value["edge"]
            if isinstance(edge, bool) or not isinstance(edge, (int, float)) or not edge > 0:
                raise ConfigError(f"{where}: edge {edge!r} is not an energy > 0 (eV)")
            return cls(mode="edge", value=float(edge))
        if isinstance(value, Mapping):
            unknown = set(value) - {"shell", "factor"}
            if unknown or "shell" not in value:
                raise ConfigError(f"{where}: a tie table needs shell (and optionally factor), "
                                  f"got {dict(value)!r}")
            return cls._tie(kind, where, str(value["shell"]), value.get("factor", 1.0), accepted)
        if isinstance(value, str):
            text = value.strip()
            if text.lower() == "free":
                return cls()
            if text.lower() == "foil":
                if kind == "cn":
                    raise ConfigError(f"{where}: \"foil\" is accepted for sigma2, deltar "
                                      "and de0 only (the foil fit gives those)")
                return cls(mode="foil")
            match = _TIE.match(text)
            if match is None:
                raise ConfigError(f"{where}: {value!r} is not accepted; give {accepted}")
            factor = float(match.group("f1") or 1.0) * float(match.group("f2") or 1.0)
            return cls._tie(kind, where, match.group("label"), factor, accepted)
        raise ConfigError(f"{where}: {value!r} is not accepted; give {accepted}")

    @classmethod
    def _tie(cls, kind, where, source, factor, accepted):
        if kind == "de0":
            raise ConfigError(f"{where}: dE0 is shared through e0_group, not tied; {accepted}")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor):
            raise ConfigError(f"{where}: tie factor {factor!r} is not a number")
        return cls(mode="tied", source=source, factor=float(factor))

    def to_value(self):
        """The config value that parses back to this rule."""
        if self.mode == "fixed":
            return self.value
        if self.mode == "tied":
            return f"{self.factor:g} * {self.source}"
        if self.mode == "foil":
            return "foil"
        if self.mode == "edge":
            return {"edge": self.value}
        if self.lo is not None or self.hi is not None:
            return [self.lo, self.hi]
        return None


_SHELL_KEYS = ("label", "distance", "file", "edge", "geometry", "cn", "deltar", "sigma2", "de0",
               "e0_group", "cn_start", "sigma2_start", "absent_sigma2")


@dataclass(frozen=True)
class ShellSpec:
    """One shell of a :class:`~operando.exafs.ShellModel`.

    Attributes
    ----------
    label : str
        ``"Absorber-Scatterer"`` (``"Cu-O"``), optionally with a tag for a further
        shell of the same pair (``"Cu-Cu_ox1"``: CuO's Cu...Cu at 2.90 A).  Result
        columns are named after it (``cn_Cu-Cu_ox1``).
    distance : float, optional
        Model path distance (Angstrom) for :func:`operando.feffpaths.feff_path`.
    file : str, optional
        A user ``feffNNNN.dat`` (overrides distance and geometry).
    edge, geometry : str, optional
        FEFF edge and model cluster (``"fcc"``, ``"square_planar"``, ``"octahedral"``).
    cn, deltar, sigma2, de0 : Rule
        How each parameter is treated (module docstring).
    e0_group : str, optional
        Shells with the same group share one dE0; None: the model's ``share_e0`` decides.
    cn_start, sigma2_start : float, optional
        Starting values (default: CN 8 for a metal shell, 4 otherwise; sigma2 0.007 /
        0.005 A^2).
    absent_sigma2 : float, optional
        sigma2 (A^2) at which this shell is held when its CN is consistent with zero
        (default: the model's ``absent_sigma2``).
    """

    label: str
    distance: float | None = None
    file: str | None = None
    edge: str | None = None
    geometry: str | None = None
    cn: Rule = field(default_factory=Rule)
    deltar: Rule = field(default_factory=Rule)
    sigma2: Rule = field(default_factory=Rule)
    de0: Rule = field(default_factory=Rule)
    e0_group: str | None = None
    cn_start: float | None = None
    sigma2_start: float | None = None
    absent_sigma2: float | None = None

    @classmethod
    def from_value(cls, item, *, cn_max: float = 16.0) -> "ShellSpec":
        """A shell from a label, a dict (the TOML table) or a ShellSpec."""
        if isinstance(item, ShellSpec):
            return item
        if isinstance(item, str):
            item = {"label": item}
        if not isinstance(item, Mapping):
            raise ConfigError(f"a shell must be a label such as 'Pt-O' or a table, got {item!r}")
        check_keys("shell", item, _SHELL_KEYS)
        if "label" not in item:
            raise ConfigError(f"shell {dict(item)} needs a 'label' such as 'Pt-O'")
        label = str(item["label"]).strip()
        if not re.fullmatch(_LABEL, label):
            raise ConfigError(f"shell label {label!r} is not 'Absorber-Scatterer' with an optional "
                              "tag, e.g. 'Cu-O' or 'Cu-Cu_ox1'")
        parse_label(label.split("_")[0])
        rules = {kind: Rule.parse(kind, item.get(kind), label) for kind in KINDS}
        cn = rules["cn"]
        if cn.mode == "free" and cn.lo is None:   # a free CN: 0 .. the model's cn_max
            rules["cn"] = replace(cn, lo=0.0, hi=float(cn_max))
        kw = {k: item[k] for k in ("distance", "file", "edge", "geometry", "cn_start",
                                   "sigma2_start", "absent_sigma2") if item.get(k) is not None}
        for k in ("distance", "cn_start", "sigma2_start", "absent_sigma2"):
            if k in kw:
                if isinstance(kw[k], bool) or not isinstance(kw[k], (int, float)):
                    raise ConfigError(f"shell {label!r} {k}: {kw[k]!r} is not a number")
                kw[k] = float(kw[k])
        if "file" in kw:
            kw["file"] = str(kw["file"])
        group = item.get("e0_group")
        if group is not None and (not isinstance(group, str) or not group.strip()):
            raise ConfigError(f"shell {label!r} e0_group: {group!r} is not a name")
        return cls(label=label, e0_group=None if group is None else group.strip(), **rules, **kw)

    @property
    def pair(self) -> str:
        """``"Cu-Cu_ox1"`` -> ``"Cu-Cu"``."""
        return self.label.split("_")[0]

    @property
    def tag(self) -> str | None:
        parts = self.label.split("_", 1)
        return parts[1] if len(parts) > 1 else None

    @property
    def name(self) -> str:
        """Parameter-safe name: ``"Pt-Pt"`` -> ``"pt_pt"``."""
        return re.sub(r"[^0-9a-z_]", "_", self.label.replace("-", "_").lower())

    @property
    def is_metal(self) -> bool:
        """A metal-metal first shell (``"Pt-Pt"``; a tagged ``"Cu-Cu_ox1"`` is not)."""
        absorber, scatterer = self.pair.split("-")     # validated when the spec was made
        return absorber == scatterer and self.tag is None

    def rule(self, kind: str) -> Rule:
        return getattr(self, kind)

    def to_dict(self) -> dict:
        """The table that :meth:`from_value` reads back to this shell (None entries dropped)."""
        out: dict = {"label": self.label}
        for key in ("distance", "file", "edge", "geometry"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for kind in KINDS:
            value = self.rule(kind).to_value()
            if value is not None:
                out[kind] = value
        for key in ("e0_group", "cn_start", "sigma2_start", "absent_sigma2"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out
