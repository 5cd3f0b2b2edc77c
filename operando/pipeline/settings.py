"""The run's settings: the configuration resolved once, at the start of a run, into
what each stage takes.

A stage never sees the :class:`~operando.config.Config`: reading gets
:func:`read_kwargs`, a chunk of steps gets a :class:`StepSettings` (the keyword
arguments of normalise, white line, background and fit, with the series-wide
values E0 and S0^2 filled in), tracking, figures and outputs get their own parts
of the :class:`RunPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Config, ReferenceConfig, sections
from ..exafs import ShellModel


@dataclass(frozen=True)
class StepSettings:
    """Everything analysing a chunk of steps needs (picklable: it travels to workers).

    Attributes
    ----------
    normalize : dict
        :func:`operando.xanes.normalize` keyword arguments, ``e0`` resolved for the series.
    white_line : dict
        :func:`operando.xanes.white_line` keyword arguments.
    background : dict or None
        :func:`operando.exafs.remove_background` keyword arguments; None: no EXAFS.
    model : ShellModel or None
        The shells and fit window.
    fit : dict or None
        :func:`operando.exafs.fit_shells` keyword arguments (``s02``, ``engine``, ...).
    """

    normalize: dict
    white_line: dict
    background: dict | None = None
    model: Any = None
    fit: dict | None = None


@dataclass(frozen=True)
class RunPlan:
    """A configuration resolved for a series of ``n_steps`` steps.

    Attributes
    ----------
    calibrate : dict or None
        :func:`operando.xanes.calibrate` keyword arguments; None: no calibration.
    normalize : dict
        :func:`operando.xanes.normalize` keyword arguments with the E0 *policy*
        (``"first"``, ``"each"``, ``"reference"`` or eV), resolved by the run.
    white_line : dict
    background : dict or None
        None when ``[exafs]`` is off.
    window : dict
        :class:`~operando.exafs.ShellModel` arguments other than the shells.
    shells : tuple or None
        The configured shells (None: the element's oxide and metal shells).
    fit_engine : str
    merge_repeats : str or None
    reference : ReferenceConfig
        Where S0^2 comes from.
    track : dict or None
        :func:`operando.tracking.track` keyword arguments; None: no tracking.
    plots : tuple of str
        Figure formats (empty: no figures).
    ft : dict
        The chi(R) transform of the figures (kmin, kmax, dk, window, kweight).
    report : bool
    athena : bool
        Whether ``athena.prj`` is written for this series.
    athena_limit : int or None
        With ``athena = "auto"``, the step count above which it is skipped.
    chunk_size, workers : int
    """

    calibrate: dict | None
    normalize: dict
    white_line: dict
    background: dict | None
    window: dict
    shells: tuple | None
    fit_engine: str
    merge_repeats: str | None
    reference: ReferenceConfig
    track: dict | None
    plots: tuple
    ft: dict
    report: bool
    athena: bool
    athena_limit: int | None
    chunk_size: int
    workers: int

    @property
    def exafs(self) -> bool:
        return self.background is not None

    def model(self, shells) -> ShellModel:
        return ShellModel(shells=list(shells), **self.window)

    def step_settings(self, *, e0, s02=None, shells=None) -> StepSettings:
        """The settings of every chunk, once E0 (and with EXAFS, S0^2 and the shells)
        are known for the series."""
        normalize = {**self.normalize, "e0": e0}
        if not self.exafs:
            return StepSettings(normalize=normalize, white_line=dict(self.white_line))
        fit = {"s02": s02, "engine": self.fit_engine}
        if self.merge_repeats:
            fit["merge_repeats"] = self.merge_repeats
        return StepSettings(normalize=normalize, white_line=dict(self.white_line),
                            background=dict(self.background), model=self.model(shells), fit=fit)


def read_kwargs(config: Config) -> dict:
    """:func:`operando.io.read_series` arguments: ``source`` and the keyword arguments."""
    s = config.series
    kwargs = dict(source=list(s.source) if len(s.source) > 1 else s.source[0],
                  conditions=s.conditions, mu=s.mu, element=s.element, edge=s.edge,
                  reference=s.reference, format=s.format, pattern=s.pattern,
                  energy_column=s.energy_column, on_error=s.on_error)
    if s.columns is not None:
        kwargs["columns"] = list(s.columns)
    return kwargs


def calibrate_kwargs(config: Config) -> dict | None:
    """:func:`operando.xanes.calibrate` keyword arguments; None: no calibration."""
    n = config.normalize
    if not n.calibrate:
        return None
    return {} if n.edge_energy is None else {"edge_energy": n.edge_energy}


def resolve(config: Config, n_steps: int) -> RunPlan:
    """The :class:`RunPlan` of ``config`` for a series of ``n_steps`` steps."""
    n, x, t, out = config.normalize, config.exafs, config.track, config.output
    track = None
    if t.enabled and x.enabled:
        track = dict(metal_shell=t.metal_shell, ligand_shell=t.ligand_shell,
                     settings=dict(t.settings))
        if t.condition_columns is not None:
            track["condition_columns"] = list(t.condition_columns)
    return RunPlan(
        calibrate=calibrate_kwargs(config),
        normalize=dict(e0=n.e0, pre1=n.pre1, pre2=n.pre2, norm1=n.norm1, norm2=n.norm2,
                       nnorm=n.nnorm, nvict=n.nvict, engine=n.engine),
        white_line={} if n.wl_window is None else {"window": tuple(n.wl_window)},
        background=(dict(rbkg=x.rbkg, kmin=x.bkg_kmin, kweight=x.kweight, engine=x.engine)
                    if x.enabled else None),
        window=dict(share_e0=x.share_e0, kmin=x.kmin, kmax=x.kmax, kweight=x.kweight, dk=x.dk,
                    window=x.window, rmin=x.rmin, rmax=x.rmax, fit_space=x.fit_space),
        shells=None if x.shells is None else tuple(x.shells),
        fit_engine=x.engine,
        merge_repeats=x.merge_repeats,
        reference=config.reference,
        track=track,
        plots=tuple(out.plots),
        ft=dict(kmin=x.kmin, kmax=x.kmax, dk=x.dk, window=x.window, kweight=x.kweight),
        report=out.report,
        athena=out.athena_for(n_steps),
        athena_limit=_athena_limit(config),
        chunk_size=config.chunk_size_for(n_steps),
        workers=config.run.workers,
    )


def _athena_limit(config: Config) -> int | None:
    return sections.ATHENA_AUTO_MAX_STEPS if config.output.athena == "auto" else None
