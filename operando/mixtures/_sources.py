"""Where the reference spectra come from: shorthands, the shared data folder, reading, the grid."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from operando._util.validate import suggest
from operando.errors import ConfigError, DataError, ReadError

from ._noise import ETOK

log = logging.getLogger(__name__)

#: Environment variable naming the shared data folder (the one holding ``references/``).
DATA_ENV = "OPERANDO_SHARED_DATA"

#: Shorthand -> (file under the shared data folder, first-shell truth {shell: CN}, description).
#: The CNs are the *first coordination shell* of the pure compound: fcc Cu and Pt 12,
#: bcc Fe 8 (the 6 next neighbours at 2.87 A are not counted), CuO 4 short Cu-O
#: (not the 2 apical O at 2.78 A), FeO 6, Fe2O3 6 (3 + 3), Fe3O4 16/3 (1/3 tetrahedral
#: Fe with 4 O, 2/3 octahedral with 6).
SHORTHANDS = {
    "cu_foil": ("references/cu_foil_rt.xdi", {"Cu-Cu_metal": 12.0}, "Cu foil, RT, APS 13-ID-C"),
    "cuo": ("references/cuo_tenorite_13K.xdi", {"Cu-O": 4.0}, "CuO tenorite powder, 13 K, SSRL 4-3"),
    "fe_foil": ("references/fe_foil_rt_2016foils.xdi", {"Fe-Fe_metal": 8.0}, "Fe foil, RT, APS 13-ID-E"),
    "feo": ("references/feo_rt_01.xdi", {"Fe-O": 6.0}, "FeO powder, RT, APS 20-BM"),
    "fe2o3": ("references/fe2o3_rt_01.xdi", {"Fe-O": 6.0}, "Fe2O3 powder, RT, APS 20-BM"),
    "fe3o4": ("references/fe3o4_rt_01.xdi", {"Fe-O": 16.0 / 3.0}, "Fe3O4 powder, RT, APS 13-BM"),
    "pt_foil": ("references/pt_foil_rt.xdi", {"Pt-Pt_metal": 12.0}, "Pt foil, RT, APS 13-ID-C"),
}

#: The metal foil used for the reference channel of each edge.
FOIL_OF = {("Cu", "K"): "cu_foil", ("Fe", "K"): "fe_foil", ("Pt", "L3"): "pt_foil"}


def shared_data_dir(data_dir=None) -> Path:
    """The shared data folder (the one holding ``references/``).

    Looked up in this order: ``data_dir``; the environment variable
    ``OPERANDO_SHARED_DATA``; ``shared/data`` next to any parent folder of this
    file or of the working directory (the repository's ``../shared/data``).

    Raises
    ------
    ReadError
        None of them holds a ``references`` folder.
    """
    tried = []
    if data_dir is not None:
        candidates = [Path(data_dir)]
    else:
        candidates = [Path(os.environ[DATA_ENV])] if os.environ.get(DATA_ENV) else []
        for base in (Path(__file__).resolve(), Path.cwd().resolve()):
            candidates += [parent / "shared" / "data" for parent in base.parents]
    for candidate in candidates:
        tried.append(str(candidate))
        if (candidate / "references").is_dir():
            return candidate
    raise ReadError(tried[0] if tried else "shared data", "no shared data folder with a "
                    "'references' subfolder found (tried: " + ", ".join(tried[:4]) + ")",
                    f"data_dir=... or the environment variable {DATA_ENV}")


def energy_grid(e0: float, start: float, stop: float, *, pre_step: float = 2.0,
                xanes: tuple = (-30.0, 50.0), xanes_step: float = 0.5,
                kstep: float = 0.05) -> np.ndarray:
    """A QEXAFS-like grid from ``start`` to ``stop`` (absolute eV), rounded to 1 meV.

    ``pre_step`` eV below ``e0 + xanes[0]``, ``xanes_step`` eV from ``e0 + xanes[0]``
    to below ``e0 + xanes[1]``, then constant ``kstep`` (A^-1) steps in k from the
    first multiple of ``kstep`` at or above ``xanes[1]``.
    """
    x0, x1 = (float(v) for v in xanes)
    n_pre = int(np.floor((e0 + x0 - start) / pre_step + 1e-9))
    pre = e0 + x0 - pre_step * np.arange(n_pre, 0, -1)
    mid = e0 + x0 + xanes_step * np.arange(int(np.ceil((x1 - x0) / xanes_step - 1e-9)))
    k = kstep * np.arange(np.ceil(np.sqrt(x1 * ETOK) / kstep - 1e-9),
                          np.floor(np.sqrt(max(stop - e0, 0.0) * ETOK) / kstep + 1e-9) + 1)
    grid = np.round(np.concatenate([pre, mid, e0 + k * k / ETOK]), 3)
    return grid[(grid >= start - 1e-9) & (grid <= stop + 1e-9)]


def resolve_sources(references, data_dir) -> list[tuple[str, Path, str | None]]:
    """``(name, path, shorthand or None)`` for each reference given to load_references."""
    if isinstance(references, (str, os.PathLike)):
        references = [references]
    items = list(references.items()) if isinstance(references, dict) else \
        [(None, ref) for ref in references]
    if not items:
        raise ConfigError("load_references needs at least one reference name or file")
    out = []
    for name, ref in items:
        key = str(ref)
        if key in SHORTHANDS:
            path = shared_data_dir(data_dir) / SHORTHANDS[key][0]
            out.append((name or key, path, key))
        elif Path(key).is_file():
            out.append((name or Path(key).stem, Path(key), None))
        else:
            raise ConfigError(f"unknown reference {key!r}{suggest(key, SHORTHANDS)}; give a "
                              f"shorthand ({', '.join(SHORTHANDS)}) or the path of a spectrum file")
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"reference names must be unique, got {names}")
    return out


def read_reference(name, path, element, edge):
    """The one-spectrum Series of a reference file and the reader's warnings (as notes).

    Raises DataError when the file holds several spectra or another element/edge.
    """
    from operando import read_series

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        series = read_series(path)
    notes = [str(w.message) for w in caught]
    for note in notes:
        log.debug("%s: %s", path, note)
    if series.n_steps != 1:
        raise DataError(f"{path}: a reference must hold one spectrum, it holds {series.n_steps}")
    if element is not None and series.element != element or edge is not None and series.edge != edge:
        raise DataError(f"{path} ({name}) is a {series.element} {series.edge} spectrum, but the "
                        f"references are {element} {edge}; all must be of one element and edge")
    return series, notes
