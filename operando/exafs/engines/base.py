"""What an EXAFS engine declares and does.

An engine computes the same things by its own means: chi(k) of many steps
(AUTOBK) and shell fits of many steps.  It declares what it supports (fit spaces,
joint fits of several steps, the smallest useful chunk), and
:func:`operando.exafs.engines.get_engine` is the one place that checks a request
against it.
"""

from __future__ import annotations

from typing import Mapping


class Engine:
    """Base of the engines; subclasses set the attributes and implement the methods.

    Attributes
    ----------
    name : str
        The ``engine=`` value that selects it.
    fit_spaces : tuple of str
        Fit spaces it fits in (of ``"r"``, ``"k"``, ``"q"``).
    joint_fits : bool
        Whether it fits several steps in one fit (:meth:`fit_joint`).
    min_chunk : int
        Smallest number of steps worth handing to a worker at once.
    """

    name: str = ""
    fit_spaces: tuple[str, ...] = ("r", "k", "q")
    joint_fits: bool = False
    min_chunk: int = 1

    def unsupported(self, *, model=None, joint: bool = False) -> str | None:
        """What of the request this engine cannot do (``None``: everything)."""
        if model is not None and model.fit_space not in self.fit_spaces:
            return f"fit_space={model.fit_space!r}"
        if joint and not self.joint_fits:
            return "joint fits of several steps"
        return None

    def background(self, energy, mu, e0, edge_step, rows, settings: Mapping):
        """chi(k) of the steps ``rows``.

        Returns ``(chi_rows, problems, e0_used, extra_settings)``: a dict step index ->
        chi(k) on the 0.05 grid from k = 0 for the steps that worked, a dict step index
        -> why not for the others, the e0 of every step as used (eV), and the settings
        this engine adds to the record.
        """
        raise NotImplementedError

    def fit_rows(self, k, chi, ok, reasons, steps, model, paths, s02: float, opts: Mapping
                 ) -> list[dict]:
        """The result row of every step (:func:`operando.exafs.model.result_columns`
        plus ``_model_chi`` and ``_params``), fitted with the robust procedure."""
        raise NotImplementedError

    def calibrate_row(self, k, chi, model, paths, cn: Mapping[str, float]) -> dict:
        """One fit with the CNs ``cn`` fixed and S0^2 free (a foil)."""
        raise NotImplementedError

    def fit_joint(self, k, chis, steps, model, paths, s02: float, shared) -> list[dict]:
        """Several steps in one fit, sharing the parameter kinds ``shared``."""
        raise NotImplementedError
