"""The parameters of one fit, resolved once from a model: :func:`build_plan`.

Both engines translate a :class:`Plan` into their own parameters (lmfit parameters
with expressions for the larch engine, ``batch_fit``'s vary / bounds / ties for the
fast engine), so a rule -- fixed, bounded, tied, dE0 groups, an absent shell's pinned
geometry, a shell removed for the F-test, a CN held for the detection-limit profile
-- is decided in one place.

Parameter names are engine-neutral: ``"cn:Cu-O"``, ``"deltar:Cu-O"``,
``"sigma2:Cu-O"`` and ``"de0:<group>"`` (one per dE0 group, :meth:`ShellModel.e0_group`).
Values may be floats or arrays of one value per spectrum (the fast engine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import ConfigError
from .model import ShellModel
from .shells import ShellSpec

#: Result-column kind (:data:`operando.schema.SHELL_KINDS`) of each parameter kind.
COLUMN_KIND = {"cn": "cn", "deltar": "r", "sigma2": "sigma2", "de0": "de0"}
#: Parameter kind of each result-column kind.
PLAN_KIND = {column: kind for kind, column in COLUMN_KIND.items()}

#: Start-value defaults: CN of a metal shell / other shells, sigma2 (A^2) of the same.
START_CN = {True: 8.0, False: 4.0}
START_SIGMA2 = {True: 0.007, False: 0.005}


@dataclass
class Par:
    """One parameter of a fit.

    Attributes
    ----------
    name : str
        ``"<kind>:<shell label>"`` or ``"de0:<group>"``.
    kind : {"cn", "deltar", "sigma2", "de0"}
    value : float or ndarray
        Start value (varied), the value (fixed) or the tie's current value.
    vary : bool
    lo, hi : float
        Bounds of a varied parameter (-inf / inf when unbounded).
    tie : (str, float) or None
        ``(source parameter name, factor)``: value = factor x source.
    """

    name: str
    kind: str
    value: Any
    vary: bool = False
    lo: float = -np.inf
    hi: float = np.inf
    tie: tuple[str, float] | None = None


@dataclass
class Plan:
    """The parameters of one fit and which of them each shell uses.

    Attributes
    ----------
    pars : dict name -> Par
    of_shell : dict label -> {"cn", "deltar", "sigma2", "de0"} -> parameter name
    groups : dict dE0-parameter name -> the shells using it
    """

    pars: dict
    of_shell: dict
    groups: dict

    @property
    def n_varys(self) -> int:
        return sum(p.vary for p in self.pars.values())


def default_start(spec: ShellSpec) -> dict:
    """Default start of one shell: ``{"cn", "dr", "sigma2", "de0"}``."""
    cn = spec.cn_start if spec.cn_start is not None else START_CN[spec.is_metal]
    ss = spec.sigma2_start if spec.sigma2_start is not None else START_SIGMA2[spec.is_metal]
    return {"cn": float(cn), "dr": 0.0, "sigma2": float(ss), "de0": 0.0}


def absent_sigma2(spec: ShellSpec, model: ShellModel) -> float:
    """sigma2 (A^2) at which an absent shell is held while only its CN varies."""
    return spec.absent_sigma2 if spec.absent_sigma2 is not None else model.absent_sigma2


def build_plan(model: ShellModel, start: Mapping | None = None, *, absent: Iterable[str] = (),
               fixed_cn: Mapping[str, Any] | None = None, removed: Iterable[str] = (),
               e0=None) -> Plan:
    """The parameters of one fit of ``model``.

    Parameters
    ----------
    model : ShellModel
    start : dict label -> {"cn", "dr", "sigma2", "de0"}, optional
        Start values (floats or per-spectrum arrays); default :func:`default_start`.
    absent : iterable of str
        Shells consistent with zero: CN varied down to ``absent_cn_min``, a free dR
        held at 0 and a free sigma2 at :func:`absent_sigma2`; a dE0 group left with
        absent shells only follows the first group with a present shell.
    fixed_cn : dict label -> value, optional
        CNs held at these values (floats or arrays): the foil calibration, the
        detection-limit profile.  The shell's geometry follows ``absent``.
    removed : iterable of str
        Shells taken out of the model (CN 0, their own parameters fixed): the null
        hypothesis of the F-test.  Shells whose CN is tied to a removed shell vanish too.
    e0 : float or array, optional
        E0 (eV) of the data of each spectrum: a dE0 ``"edge"`` rule (the foil's absolute
        edge, :func:`operando.exafs.apply_foil`) is held at ``edge - e0``.

    Raises
    ------
    ConfigError
        A ``"foil"`` rule not yet resolved (:func:`operando.exafs.apply_foil`).
    """
    absent, removed = set(absent), set(removed)
    fixed_cn = dict(fixed_cn or {})
    start = dict(start or {})
    pars: dict[str, Par] = {}
    of_shell: dict[str, dict[str, str]] = {}
    inits = {s.label: {**default_start(s), **(start.get(s.label) or {})} for s in model.shells}

    for spec in model.shells:
        lab, init = spec.label, inits[spec.label]
        names = of_shell[lab] = {}
        # ---- cn
        rule = spec.cn
        name = names["cn"] = f"cn:{lab}"
        if lab in removed:
            pars[name] = Par(name, "cn", 0.0)
        elif lab in fixed_cn:
            pars[name] = Par(name, "cn", fixed_cn[lab])
        elif rule.mode == "fixed":
            pars[name] = Par(name, "cn", rule.value)
        elif rule.mode == "tied":
            pars[name] = Par(name, "cn", rule.factor * inits[rule.source]["cn"],
                             tie=(f"cn:{rule.source}", rule.factor))
        else:
            lo = 0.0 if rule.lo is None else rule.lo
            hi = spec_cn_max(spec, model) if rule.hi is None else rule.hi
            if lab in absent:
                pars[name] = Par(name, "cn", np.clip(init["cn"], max(lo, 0.0), lo + 0.9 * (hi - lo)),
                                 True, min(model.absent_cn_min, lo), hi)
            else:
                pars[name] = Par(name, "cn", np.clip(init["cn"], lo + min(0.3, 0.1 * (hi - lo)),
                                                     lo + 0.9 * (hi - lo)), True, lo, hi)
        # ---- deltar, sigma2
        for kind, key, bound, pin in (
                ("deltar", "dr", (-model.dr_max, model.dr_max), 0.0),
                ("sigma2", "sigma2", (model.sigma2_min, model.sigma2_max), absent_sigma2(spec, model))):
            rule = spec.rule(kind)
            name = names[kind] = f"{kind}:{lab}"
            if rule.mode == "foil":
                raise ConfigError(f"shell {lab!r} {kind} = \"foil\" needs the foil "
                                  "fit: apply_foil(model, calibration) or [foil] file")
            if rule.mode == "fixed":
                pars[name] = Par(name, kind, rule.value)
            elif rule.mode == "tied":
                pars[name] = Par(name, kind, rule.factor * inits[rule.source][key],
                                 tie=(f"{kind}:{rule.source}", rule.factor))
            elif lab in absent or lab in removed:
                pars[name] = Par(name, kind, pin)
            else:
                lo = bound[0] if rule.lo is None else rule.lo
                hi = bound[1] if rule.hi is None else rule.hi
                pars[name] = Par(name, kind, _start_inside(kind, init[key], lo, hi, rule.lo is None
                                                           and rule.hi is None), True, lo, hi)

    # ---- dE0: one parameter per group
    groups: dict[str, list[str]] = {}
    by_group = model.e0_groups()
    gone = absent | removed
    active = [g for g, labs in by_group.items() if any(lab not in gone for lab in labs)]
    for group, labs in by_group.items():
        name = f"de0:{group}"
        groups[name] = list(labs)
        for lab in labs:
            of_shell[lab]["de0"] = name
        rule = next((model.spec(lab).de0 for lab in labs if model.spec(lab).de0.mode != "free"
                     or model.spec(lab).de0.lo is not None), model.spec(labs[0]).de0)
        value = np.mean([np.asarray(inits[lab]["de0"], float) for lab in labs], axis=0)
        if rule.mode == "foil":
            raise ConfigError(f"shells {labs} de0 = \"foil\" needs the foil fit: "
                              "apply_foil(model, calibration) or [foil] file")
        if rule.mode == "edge":
            if e0 is None:
                raise ConfigError(f"shells {labs}: dE0 held at the reference edge "
                                  f"{rule.value:g} eV needs the E0 of the data")
            pars[name] = Par(name, "de0", rule.value - np.asarray(e0, float))
        elif rule.mode == "fixed":
            pars[name] = Par(name, "de0", rule.value)
        elif group in active:
            lo = -model.de0_max if rule.lo is None else rule.lo
            hi = model.de0_max if rule.hi is None else rule.hi
            span = (hi - lo) / 2
            pars[name] = Par(name, "de0", np.clip(value, lo + 0.1 * span, hi - 0.1 * span), True, lo, hi)
        elif active and any(lab in absent for lab in labs):
            pars[name] = Par(name, "de0", value, tie=(f"de0:{active[0]}", 1.0))
        else:
            pars[name] = Par(name, "de0", value)
    # ties to a parameter that is itself tied (a dE0 group following another) resolve once
    for par in pars.values():
        if par.tie is not None and pars[par.tie[0]].tie is not None:
            src, f = pars[par.tie[0]].tie
            par.tie = (src, par.tie[1] * f)
    return Plan(pars=pars, of_shell=of_shell, groups=groups)


def _start_inside(kind, value, lo, hi, default_bounds):
    """A start value moved inside its bounds (the model's default bounds keep the
    engines' historical margins: dR within 0.8 dr_max, sigma2 in 1.2 min .. 0.9 max)."""
    if kind == "deltar":
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        return np.clip(value, mid - 0.8 * half, mid + 0.8 * half)
    if default_bounds:
        return np.clip(value, 1.2 * lo, 0.9 * hi)
    return np.clip(value, lo + 0.05 * (hi - lo), lo + 0.9 * (hi - lo))


def spec_cn_max(spec: ShellSpec, model: ShellModel) -> float:
    return model.cn_max if spec.cn.hi is None else spec.cn.hi


def param_names(model: ShellModel, plan: Plan) -> dict:
    """Plan name -> the larch engine's parameter name (``cn_cu_o``, ``dr_cu_o``,
    ``ss_cu_o``, ``de0`` for a single dE0, else ``de0_<group>``); both engines report
    parameters under these names."""
    one = len(plan.groups) == 1
    out = {}
    for name in plan.pars:
        kind, ref = name.split(":", 1)
        if kind == "de0":
            out[name] = "de0" if one else "de0_" + re.sub(r"[^0-9a-z_]", "_",
                                                           ref.replace("-", "_").lower())
        else:
            out[name] = {"cn": "cn_", "deltar": "dr_", "sigma2": "ss_"}[kind] + model.spec(ref).name
    return out


def allow_negative_cn(plan: Plan, model: ShellModel) -> Plan:
    """The plan with every varied CN allowed down to ``model.absent_cn_min`` (in place).

    Joint fits use it: a phase absent from some steps reads CN ~ 0 there, with an
    error bar not truncated at a bound (the per-step fits get the same from the
    absent-shell refit).
    """
    for par in plan.pars.values():
        if par.kind == "cn" and par.vary:
            par.lo = min(par.lo, model.absent_cn_min)
    return plan


def plan_structure(model: ShellModel, **kw) -> Plan:
    """A plan for its structure only (what varies, what is tied: counts and names),
    with placeholder values (E0 = 0 for dE0 held at the reference edge)."""
    return build_plan(model, e0=0.0, **kw)
