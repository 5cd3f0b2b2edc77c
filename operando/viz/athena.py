"""Export a processed series for other programs: an Athena project (.prj).

The project is written by Larch's own writer (:class:`larch.io.athena_project.AthenaProject`),
so Athena, Larix and :func:`larch.io.read_athena` read it back with the same
group names and arrays.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .._util.files import atomic_path
from ..errors import DataError, OperandoWarning

log = logging.getLogger(__name__)


def _hashkey(index: int) -> str:
    """A deterministic five-letter Athena group key (aaaaa, aaaab, ...)."""
    letters = []
    for _ in range(5):
        index, rem = divmod(index, 26)
        letters.append(chr(97 + rem))
    return "".join(reversed(letters))


def athena_group_names(names: Sequence[str]) -> list[str]:
    """The group names Athena / ``read_athena`` will use for ``names``
    (Larch makes each a valid identifier; a leading underscore becomes ``d_``)."""
    from pyshortcuts import fix_varname

    out = []
    for name in names:
        label = str(name)
        if label.startswith(" "):
            label = "d_" + label.strip()
        fixed = fix_varname(label)
        out.append("d" + fixed if fixed.startswith("_") else fixed)
    return out


def write_athena(path, energy, mu_rows, names: Sequence[str], *, element: str, edge: str,
                 e0s=None) -> Path:
    """Write spectra of one series as an Athena project file.

    Parameters
    ----------
    path : str or Path
        Target ``.prj`` file (gzipped, as Athena writes it).  Written
        atomically (:func:`operando._util.files.atomic_path`).
    energy : (n_e,) array
        Common energy grid in eV.
    mu_rows : (n, n_e) array
        One spectrum per row (raw or normalised mu; calibrated energies).
        Rows with non-finite values (failed steps) are skipped with an
        :class:`~operando.errors.OperandoWarning`, since Athena cannot hold NaN.
    names : sequence of str
        One group label per row (e.g. file names or ``step_0012_OCP``).  They
        must stay distinct once made valid identifiers (see
        :func:`athena_group_names`), which is how they are read back.
    element, edge : str
        Absorber and edge (``"Pt"``, ``"L3"``), stored as Athena's ``atsym`` and
        ``edge``.
    e0s : (n,) array, optional
        Edge energy per row in eV; Larch's ``pre_edge`` finds it when omitted.
        Normalisation parameters (pre1, pre2, norm1, norm2) are those of
        Larch's ``pre_edge`` around that e0.

    Returns
    -------
    Path
    """
    from larch import Group
    from larch.io.athena_project import AthenaProject
    from larch.xafs import pre_edge

    path = Path(path)
    energy = np.asarray(energy, dtype=float)
    mu = np.atleast_2d(np.asarray(mu_rows, dtype=float))
    if energy.ndim != 1 or mu.shape[1] != energy.size:
        raise DataError(f"mu_rows must have shape (n, {energy.size}) to match energy, got {mu.shape}")
    if len(names) != mu.shape[0]:
        raise DataError(f"{len(names)} names given for {mu.shape[0]} spectra")
    e0s = None if e0s is None else np.asarray(e0s, dtype=float)
    if e0s is not None and e0s.shape != (mu.shape[0],):
        raise DataError(f"e0s must have one value per spectrum ({mu.shape[0]}), got shape {e0s.shape}")
    labels = athena_group_names(names)
    seen = {}
    for name, label in zip(names, labels):
        if label in seen:
            raise DataError(f"names '{seen[label]}' and '{name}' both become Athena group '{label}'; "
                            "give distinct names")
        seen[label] = name

    project = AthenaProject()
    skipped = []
    for i, label in enumerate(labels):
        if not np.all(np.isfinite(mu[i])):
            skipped.append(str(names[i]))
            continue
        group = Group(__name__=label, energy=energy.copy(), mu=mu[i].copy(), filename=label,
                      atsym=element, edge=edge, id=_hashkey(i), groupname=label)
        kws = {}
        if e0s is not None and np.isfinite(e0s[i]):
            kws["e0"] = float(e0s[i])
        pre_edge(group, **kws)
        project.add_group(group)
        # Larch writes each value with '%s': Python floats format several times faster
        # than numpy scalars, with the same text (both the shortest round-trip repr).
        added = project.groups[_hashkey(i)]
        # Athena (Demeter) keeps the absorber and edge in bkg_z and fft_edge; Larch's
        # writer guesses bkg_z from e0 and leaves fft_edge at its default "k", so a Pt L3
        # project read back said K (#15).
        added.args["bkg_z"] = element
        added.args["fft_edge"] = str(edge).lower()
        added.x = added.energy.tolist()
        added.y = added.signal = added.mu.tolist()
    if skipped:
        warnings.warn(f"Athena export skipped {len(skipped)} spectra with non-finite values: "
                      f"{', '.join(skipped[:10])}{' ...' if len(skipped) > 10 else ''}",
                      OperandoWarning, stacklevel=2)
    if not project.groups:
        raise DataError("no spectrum with finite values to export")
    with atomic_path(path) as tmp:
        project.save(str(tmp), use_gzip=True)
    log.info("Athena project with %d groups written to %s", len(project.groups), path)
    return path
