"""The run's settings: the configuration resolved once, at the start of a run, into
what each stage takes.

A stage never sees the :class:`~operando.config.Config`: reading gets
:func:`read_kwargs`, a chunk of steps gets a :class:`StepSettings` (the options
objects of normalise, white line, background and LCF (:mod:`operando.options`), the
shell model and the fit's keyword arguments, with the series-wide values E0 and S0^2
filled in), tracking, figures and outputs get their own parts of the :class:`RunPlan`.
An options object unpacks into its stage's keyword arguments (``normalize(series,
**settings.normalize)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from .._util.elements import edge_energy
from .._util.larch_compat import ETOK
from ..config import Config, ExafsConfig, FoilConfig, sections
from ..errors import ConfigError
from ..exafs import ShellModel
from ..io import LogConditions
from ..options import (BackgroundOptions, ComponentOptions, FitOptions, FTOptions, NormalizeOptions,
                       WhiteLineOptions)
from ..tracking import check_baseline


@dataclass(frozen=True)
class StepSettings:
    """Everything analysing a chunk of steps needs (picklable: it travels to workers).

    Attributes
    ----------
    normalize : NormalizeOptions
        ``e0`` resolved for the series.
    white_line : WhiteLineOptions
    background : BackgroundOptions or None
        None: no EXAFS.
    model : ShellModel or None
        The shells (reference values applied) and fit window.
    fit : dict or None
        :func:`operando.exafs.fit_shells` keyword arguments (``s02``, ``s02_err``,
        ``engine``, ...).
    systematics : dict or None
        :func:`operando.exafs.cn_systematics` keyword arguments (``[exafs] systematics``);
        None: off.
    lcf : dict or None
        LCF references and keyword arguments.
    two_phase : dict or None
        ``[exafs] two_phase`` (``isolated, fraction, disorder``, the metal component and
        shell; :mod:`operando.pipeline.two_phase`); None: off.
    """

    normalize: NormalizeOptions
    white_line: WhiteLineOptions
    background: BackgroundOptions | None = None
    model: Any = None
    fit: dict | None = None
    systematics: dict | None = None
    lcf: dict | None = None
    two_phase: dict | None = None


@dataclass(frozen=True)
class RunPlan:
    """A configuration resolved for a series of ``n_steps`` steps.

    Attributes
    ----------
    calibrate : dict or None
        :func:`operando.xanes.calibrate` keyword arguments; None: no calibration.
    normalize : NormalizeOptions
        With the E0 *policy* (``"median"``, ``"first"``, ``"each"``, ``"reference"`` or
        eV), resolved by the run.
    white_line : WhiteLineOptions
    fit : ExafsConfig or None
        The ``[exafs]`` section (its fit window and choices are the
        :class:`~operando.options.FitOptions` of the :class:`~operando.exafs.ShellModel`;
        its :meth:`~operando.config.ExafsConfig.background` the background removal's);
        None when ``[exafs]`` is off.
    foil : FoilConfig
        Where S0^2 comes from.
    read_options : dict
        How a file becomes mu (:func:`spectrum_kwargs`), for every file the run reads.
    components : dict or None
        ``[components]``: ``standards`` (name, source) pairs, ``method``, ``space``,
        ``n_components``, ``metal`` and the :func:`operando.components.lcf` ``kwargs``
        (:class:`~operando.options.ComponentOptions`);
        None when the section is absent.
    track : dict or None
        :func:`operando.tracking.track` keyword arguments; None: no tracking.
    plots : tuple of str
        Figure formats (empty: no figures).
    ft : FTOptions
        The chi(R) transform of the figures and the wavelet.
    report : bool
    athena : bool
        Whether ``athena.prj`` is written for this series.
    athena_limit : int or None
        With ``athena = "auto"``, the step count above which it is skipped.
    chunk_size, workers : int
    two_phase : dict or None
        ``[exafs] two_phase`` with the ``[components]`` metal and the ``[foil]`` shell.
    """

    calibrate: dict | None
    normalize: NormalizeOptions
    white_line: WhiteLineOptions
    fit: ExafsConfig | None
    foil: FoilConfig
    read_options: dict
    components: dict | None
    track: dict | None
    plots: tuple
    ft: FTOptions
    report: bool
    athena: bool
    athena_limit: int | None
    chunk_size: int
    workers: int
    two_phase: dict | None = None

    @property
    def exafs(self) -> bool:
        return self.fit is not None

    @property
    def shells(self) -> tuple | None:
        """The configured shells (None: the element's oxide and metal shells)."""
        return None if self.fit is None or self.fit.shells is None else tuple(self.fit.shells)

    def model(self, shells) -> ShellModel:
        return ShellModel(shells=list(shells), **FitOptions.of(self.fit))

    def options_record(self) -> dict:
        """Each stage's options as run (E0 as the policy), for settings.json."""
        stages = {"normalize": self.normalize, "white_line": self.white_line,
                  "background": None if self.fit is None else self.fit.background(),
                  "fit": None if self.fit is None else FitOptions.of(self.fit), "ft": self.ft,
                  "components": None if self.components is None else self.components["kwargs"]}
        return {name: None if opts is None else opts.to_dict() for name, opts in stages.items()}

    def step_settings(self, *, e0, s02=None, shells=None, standards=None, s02_err=None,
                      systematics=None, two_phase_cluster=None) -> StepSettings:
        """The settings of every chunk, once E0 (with EXAFS S0^2, its error, the shells with
        the reference values applied and, with ``[exafs] systematics``, the per-variant
        foil fits; with ``[exafs] two_phase`` the foil's calibration on a cluster model of
        several shells; with LCF the standards' arrays) are known for the series."""
        normalize = self.normalize.replace(e0=e0)
        lcf = None
        if standards is not None:
            lcf = {"standards": standards, "kwargs": self.components["kwargs"]}
        if not self.exafs:
            return StepSettings(normalize=normalize, white_line=self.white_line, lcf=lcf)
        fit = {"s02": s02, "s02_err": s02_err, "engine": self.fit.engine,
               "merge_repeats": self.fit.merge_repeats}
        return StepSettings(normalize=normalize, white_line=self.white_line,
                            background=self.fit.background(), model=self.model(shells), fit=fit,
                            lcf=lcf, systematics=systematics,
                            two_phase=None if self.two_phase is None else
                            {**self.two_phase, "cluster": two_phase_cluster})


def read_kwargs(config: Config) -> dict:
    """:func:`operando.io.read_series` arguments: ``source`` and the keyword arguments."""
    s = config.series
    kwargs = dict(source=list(s.source) if len(s.source) > 1 else s.source[0],
                  conditions=s.conditions, element=s.element, edge=s.edge,
                  reference=s.reference, format=s.format, pattern=s.pattern,
                  on_error=s.on_error, order=s.order, **spectrum_kwargs(config))
    if s.columns is not None:
        kwargs["columns"] = list(s.columns)
    c = config.conditions
    if c.logs or c.headers:
        kwargs["logs"] = LogConditions(logs=tuple(c.log_specs()), headers=dict(c.headers),
                                       timezone=c.timezone)
    return kwargs


def spectrum_kwargs(config: Config) -> dict:
    """The :func:`operando.io.read_series` options that say how one file becomes mu: the
    same for the series, the foil and the LCF standards, so a foil or a standard
    is read as the series is (fluorescence channels, dead time, energy column)."""
    s = config.series
    return dict(mu=list(s.mu) if isinstance(s.mu, tuple) else s.mu,
                energy_column=s.energy_column, dead_time=s.dead_time,
                channels=None if s.channels is None else dict(s.channels))


def calibrate_kwargs(config: Config) -> dict | None:
    """:func:`operando.xanes.calibrate` keyword arguments; None: no calibration."""
    n = config.normalize
    if not n.calibrate:
        return None
    return {} if n.edge_energy is None else {"edge_energy": n.edge_energy}


def resolve(config: Config, n_steps: int) -> RunPlan:
    """The :class:`RunPlan` of ``config`` for a series of ``n_steps`` steps."""
    n, x, t, out = config.normalize, config.exafs, config.track, config.output
    c = config.components
    components = None
    if c.enabled:
        components = {"standards": tuple(c.standards), "method": c.method, "space": c.space,
                      "n_components": c.n_components, "metal": c.metal,
                      "kwargs": ComponentOptions.of(c)}
    track = None
    if t.enabled:
        settings = dict(t.settings)
        if c.enabled and c.metal and "metal_fraction" not in settings:
            settings["metal_fraction"] = c.metal
        track = dict(metal_shell=t.metal_shell, ligand_shell=t.ligand_shell, settings=settings)
        if t.condition_columns is not None:
            track["condition_columns"] = list(t.condition_columns)
    return RunPlan(
        calibrate=calibrate_kwargs(config),
        normalize=NormalizeOptions.of(n),
        white_line=(WhiteLineOptions() if n.wl_window is None
                    else WhiteLineOptions(window=n.wl_window)),
        fit=x if x.enabled else None,
        foil=config.foil,
        read_options=spectrum_kwargs(config),
        components=components,
        track=track,
        plots=tuple(out.plots),
        ft=FTOptions.of(x),
        report=out.report,
        athena=out.athena_for(n_steps),
        athena_limit=sections.ATHENA_AUTO_MAX_STEPS if out.athena == "auto" else None,
        chunk_size=config.chunk_size_for(n_steps),
        workers=config.run.workers,
        two_phase=(None if not (x.enabled and x.two_phase) else
                   dict(isolated=x.two_phase.isolated, fraction=x.two_phase.fraction,
                        disorder=x.two_phase.disorder, metal=c.metal, shell=config.foil.shell)),
    )


def check_against_series(plan: RunPlan, series, *, live: bool = False) -> str | None:
    """The settings that name parts of the series, checked once it is read and before
    any work: ``[track] baseline`` must name a condition (and ``condition_columns``
    columns of the table; tracking would find out only after every fit), ``[exafs]
    kmin`` must lie inside the scans' k reach.

    ``live`` (a watch, whose conditions grow): a baseline label not among the
    conditions yet is no error; its message is returned (tracking waits for it).
    Returns None otherwise."""
    waiting = None
    if plan.track is not None:
        try:
            check_baseline(series.conditions,
                           condition_columns=plan.track.get("condition_columns"),
                           settings=plan.track["settings"])
        except ConfigError as exc:  # the baseline matches no condition (check_baseline)
            if not live:
                raise
            waiting = str(exc)
    if plan.exafs and series.element and series.edge:
        # the fit window must start inside the scans' k reach (clip_kmax's rule, which
        # otherwise fails every step only after all of them were read and normalised)
        above = float(series.energy[-1]) - edge_energy(series.element, series.edge)
        kend = math.sqrt(max(above, 0.0) * ETOK)
        kmin = plan.fit.kmin
        if kmin >= kend - 1.0:
            raise ConfigError(f"[exafs] kmin = {kmin:g} 1/A: the scans reach k = {kend:.1f} 1/A "
                              f"({above:.0f} eV above the {series.element} {series.edge} edge); "
                              "kmin must be at least 1 1/A below that")
    return waiting


#: Athena project parameters a run honours with [series] use_project_settings = true, by
#: the section whose key of the same name they set.
PROJECT_KEYS = {"normalize": ("e0", "pre1", "pre2", "norm1", "norm2", "nnorm"),
                "exafs": ("rbkg", "kmin", "kmax", "dk")}


def project_settings(series) -> tuple[dict, list[str]]:
    """``(settings, notes)``: the Athena project's own processing parameters, as one set
    for the series (the first group's), and notes on groups that differ."""
    groups = (series.metadata or {}).get("project_settings") or {}
    if not groups:
        return {}, []
    first_name, first = next(iter(groups.items()))
    chosen = {k: first[k] for keys in PROJECT_KEYS.values() for k in keys
              if first.get(k) is not None}
    differ = sorted({k for g in groups.values() for k in chosen if g.get(k) != chosen[k]})
    notes = []
    if differ:
        notes.append(f"project groups differ in {', '.join(differ)}; the run uses group "
                     f"{first_name}'s values for the whole series")
    return chosen, notes


def with_project_settings(config: Config, chosen: dict) -> Config:
    """``config`` with the project's parameters in place of the configured ones."""
    def taken(section: str) -> dict:
        return {k: int(v) if k == "nnorm" else float(v) for k, v in chosen.items()
                if k in PROJECT_KEYS[section]}

    exafs = replace(config.exafs, **taken("exafs")) if config.exafs.enabled else config.exafs
    return replace(config, normalize=replace(config.normalize, **taken("normalize")), exafs=exafs)
