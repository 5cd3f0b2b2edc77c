"""FEFF scattering paths for single-scattering shells (absorber-scatterer pairs).

Paths are computed by the FEFF6 (``feff6l``) that ships inside xraylarch, on a
small model cluster:

* metal-metal (``"Pt-Pt"``, ``"Cu-Cu"``): an fcc cluster of three shells
  (12 + 6 + 24 neighbours) with the given nearest-neighbour distance, or a bcc one
  (``geometry="bcc"``: 8 + 6 + 12 neighbours, Fe, Cr, Mo, W ...);
* metal-light atom (``"Cu-N"``, ``"Pt-O"``, ``"Cu-C"``): a square-planar (4)
  or octahedral (6) cluster of the ligand at the given distance.

Only one single-scattering path is kept: the first shell's, or with ``shell=2`` the
second shell's (a metal cluster model of two shells, :mod:`operando.exafs.cluster_shells`).  Results are cached on disk
under a key made of every FEFF input, so the same request never runs FEFF
twice.  Paths for the common pairs at their usual distances ship with the
package (``operando/data/paths``) so those run without FEFF at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._util.elements import atomic_number
from ._util.files import write_bytes_atomic
from .errors import ConfigError, DataError, ReadError

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).parent / "data" / "paths"

#: Bond lengths used when no distance is given (Angstrom).  Metal-metal values
#: are the fcc nearest-neighbour distances of the bulk metals; metal-ligand
#: values are typical first-shell distances of oxidised / N-coordinated sites.
DEFAULT_DISTANCES = {
    ("Pt", "Pt"): 2.775,
    ("Cu", "Cu"): 2.556,
    ("Pd", "Pd"): 2.751,
    ("Ni", "Ni"): 2.492,
    ("Au", "Au"): 2.884,
    ("Ag", "Ag"): 2.889,
    ("Rh", "Rh"): 2.690,
    ("Ir", "Ir"): 2.715,
    ("Ru", "Ru"): 2.650,
    ("Co", "Co"): 2.507,
    ("Fe", "Fe"): 2.482,
}
LIGAND_DISTANCES = {"O": 2.00, "N": 1.95, "C": 2.90, "S": 2.30, "Cl": 2.30}
#: Per-pair overrides of the ligand distance.
PAIR_DISTANCES = {("Cu", "O"): 1.95, ("Cu", "N"): 1.95, ("Pt", "O"): 2.00, ("Pt", "N"): 2.02}

#: The pairs whose paths ship with the package.
SHIPPED_PAIRS = [
    ("Pt", "Pt"), ("Pt", "O"), ("Pt", "N"), ("Pt", "C"),
    ("Cu", "Cu"), ("Cu", "N"), ("Cu", "O"), ("Cu", "C"),
]

#: Cluster geometries FEFF paths are computed on.
GEOMETRIES = ("fcc", "bcc", "square_planar", "octahedral")
#: Second-shell over first-shell distance of the metal lattices.
LATTICE_RATIOS = {"fcc": float(np.sqrt(2.0)), "bcc": float(2.0 / np.sqrt(3.0))}

_HOLES = {"K": 1, "L1": 2, "L2": 3, "L3": 4}


@dataclass(frozen=True)
class FeffPath:
    """One FEFF single-scattering path file and what it describes.

    Attributes
    ----------
    label : str
        ``"Absorber-Scatterer"``, e.g. ``"Pt-Pt"``.
    absorber, scatterer : str
        Element symbols.
    edge : str
        Absorption edge of the absorber (``"K"``, ``"L3"`` ...).
    reff : float
        Half path length in Angstrom (the model distance).
    degeneracy : float
        Path degeneracy in the model cluster (informational: fits set the
        degeneracy to 1 and fit the coordination number instead).
    file : Path
        The ``feffNNNN.dat`` file, readable by ``larch.xafs.feffpath``.
    """

    label: str
    absorber: str
    scatterer: str
    edge: str
    reff: float
    degeneracy: float
    file: Path

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "file": str(self.file)}


def default_edge(element: str) -> str:
    """The edge usually measured for an element: K up to Sn (Z = 50), L3 above."""
    return "K" if atomic_number(element) <= 50 else "L3"


def default_distance(absorber: str, scatterer: str) -> float:
    """Model distance (Angstrom) used when none is given."""
    if (absorber, scatterer) in DEFAULT_DISTANCES:
        return DEFAULT_DISTANCES[(absorber, scatterer)]
    if (absorber, scatterer) in PAIR_DISTANCES:
        return PAIR_DISTANCES[(absorber, scatterer)]
    if scatterer in LIGAND_DISTANCES:
        return LIGAND_DISTANCES[scatterer]
    if absorber == scatterer:
        raise ConfigError(
            f"no default nearest-neighbour distance for {absorber}-{scatterer}; "
            "give distance= in Angstrom"
        )
    raise ConfigError(f"no default distance for {absorber}-{scatterer}; give distance= in Angstrom")


def parse_label(label: str) -> tuple[str, str]:
    """``"Pt-O"`` -> ``("Pt", "O")`` with element symbols validated."""
    parts = [p.strip() for p in str(label).split("-")]
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"shell {label!r} is not of the form 'Absorber-Scatterer', e.g. 'Pt-O'")
    for symbol in parts:
        atomic_number(symbol)
    return parts[0], parts[1]


def feff_path(
    absorber: str,
    scatterer: str,
    distance: float | None = None,
    edge: str | None = None,
    geometry: str | None = None,
    cache_dir: str | Path | None = None,
    shell: int = 1,
) -> FeffPath:
    """The first-shell FEFF path of an absorber-scatterer pair.

    Parameters
    ----------
    absorber, scatterer : str
        Element symbols, e.g. ``"Pt"``, ``"O"``.
    distance : float, optional
        Bond length in Angstrom; default :func:`default_distance`.
    edge : str, optional
        ``"K"``, ``"L1"``, ``"L2"`` or ``"L3"``; default :func:`default_edge`.
    geometry : str, optional
        ``"fcc"`` (default when absorber == scatterer), ``"bcc"``, ``"square_planar"``
        (default for a ligand) or ``"octahedral"``.
    cache_dir : path, optional
        Where computed paths are kept; default ``$OPERANDO_CACHE`` or
        ``~/.cache/operando``.
    shell : {1, 2}
        The path of the first shell (at ``distance``) or, for ``"fcc"`` / ``"bcc"``, of
        the second shell of the same lattice (at ``sqrt(2)`` resp. ``2/sqrt(3)`` times
        ``distance``).

    Returns
    -------
    FeffPath
    """
    atomic_number(absorber)
    atomic_number(scatterer)
    edge = (edge or default_edge(absorber)).upper()
    if edge not in _HOLES:
        raise ConfigError(f"edge {edge!r} is not one of {sorted(_HOLES)}")
    if geometry is None:
        geometry = "fcc" if absorber == scatterer else "square_planar"
    if geometry not in GEOMETRIES:
        raise ConfigError(f"geometry {geometry!r} is not one of {', '.join(GEOMETRIES)}")
    if shell not in (1, 2) or (shell == 2 and geometry not in LATTICE_RATIOS):
        raise ConfigError(f"shell {shell}: only shell 1, or shell 2 of an fcc or bcc lattice")
    if distance is None:
        distance = default_distance(absorber, scatterer)
    distance = float(distance)
    if not 1.0 <= distance <= 5.0:
        raise ConfigError(f"distance {distance} A for {absorber}-{scatterer} is outside 1.0-5.0 A")

    key = _cache_key(absorber, scatterer, distance, edge, geometry, shell)
    suffix = "" if shell == 1 else f"_shell{shell}"
    shipped = SHIPPED_DIR / f"{absorber}-{scatterer}_{edge}_{geometry}_{distance:.4f}{suffix}.dat"
    if shipped.exists():
        return load_path(shipped, absorber=absorber, scatterer=scatterer, edge=edge)

    cache = Path(cache_dir or os.environ.get("OPERANDO_CACHE") or Path.home() / ".cache" / "operando")
    target = cache / "feff" / f"{absorber}-{scatterer}_{key}.dat"
    if target.exists():
        return load_path(target, absorber=absorber, scatterer=scatterer, edge=edge)
    target.parent.mkdir(parents=True, exist_ok=True)
    produced = _run_feff(absorber, scatterer, distance, edge, geometry, shell)
    write_bytes_atomic(target, produced.read_bytes())  # a parallel run never reads half a file
    shutil.rmtree(produced.parent, ignore_errors=True)
    return load_path(target, absorber=absorber, scatterer=scatterer, edge=edge)


def path_for_shell(label: str, distance: float | None = None, edge: str | None = None,
                   file: str | Path | None = None, **kws) -> FeffPath:
    """The path for a shell label, from a user file when given, else :func:`feff_path`."""
    absorber, scatterer = parse_label(label)
    if file is not None:
        return load_path(file, absorber=absorber, scatterer=scatterer, edge=edge)
    return feff_path(absorber, scatterer, distance=distance, edge=edge, **kws)


def load_path(file: str | Path, absorber: str | None = None, scatterer: str | None = None,
              edge: str | None = None) -> FeffPath:
    """Read the header of a ``feffNNNN.dat`` file into a :class:`FeffPath`."""
    file = Path(file)
    try:
        text = file.read_text(errors="replace")
    except OSError as exc:
        raise ReadError(file, f"cannot read FEFF path file ({exc.strerror})") from None
    match = re.search(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+\S+\s+\S+\s+nleg, deg, reff", text, re.M)
    if not match:
        raise ReadError(file, "not a FEFF path file (no 'nleg, deg, reff' line)",
                        "feffNNNN.dat files written by FEFF6/FEFF8")
    nleg, degen, reff = int(match.group(1)), float(match.group(2)), float(match.group(3))
    if nleg != 2:
        log.warning("%s is a %d-leg path; shells are meant for single scattering", file, nleg)
    atoms = re.findall(r"^\s*[-\d.]+\s+[-\d.]+\s+[-\d.]+\s+\d+\s+\d+\s+([A-Z][a-z]?)", text, re.M)
    if absorber is None and atoms:
        absorber = atoms[0]
    if scatterer is None and len(atoms) > 1:
        scatterer = atoms[1]
    hole = re.search(r"(K|L1|L2|L3|LI|LII|LIII)\s+shell", text)
    if edge is None:
        edge = {"LI": "L1", "LII": "L2", "LIII": "L3"}.get(hole.group(1), hole.group(1)) if hole else "K"
    absorber = absorber or "X"
    scatterer = scatterer or "X"
    return FeffPath(label=f"{absorber}-{scatterer}", absorber=absorber, scatterer=scatterer,
                    edge=edge, reff=reff, degeneracy=degen, file=file)


def shipped_paths() -> dict[str, FeffPath]:
    """The paths that ship with the package, by label (``"Pt-Pt"`` ...)."""
    out = {}
    for file in sorted(SHIPPED_DIR.glob("*.dat")):
        label = file.name.split("_")[0]
        absorber, scatterer = label.split("-")
        edge = file.name.split("_")[1]
        out[label] = load_path(file, absorber=absorber, scatterer=scatterer, edge=edge)
    return out


def build_shipped_paths() -> list[Path]:
    """Recompute the shipped paths with FEFF6 (a maintainer task)."""
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for absorber, scatterer in SHIPPED_PAIRS:
        edge = default_edge(absorber)
        geometry = "fcc" if absorber == scatterer else "square_planar"
        distance = default_distance(absorber, scatterer)
        produced = _run_feff(absorber, scatterer, distance, edge, geometry)
        target = SHIPPED_DIR / f"{absorber}-{scatterer}_{edge}_{geometry}_{distance:.4f}.dat"
        shutil.copyfile(produced, target)
        shutil.rmtree(produced.parent, ignore_errors=True)
        written.append(target)
    return written


# ----------------------------------------------------------------- internals
def _cache_key(absorber, scatterer, distance, edge, geometry, shell=1) -> str:
    parts = [absorber, scatterer, round(distance, 4), edge, geometry, "feff6l", 1]
    payload = json.dumps(parts if shell == 1 else parts + [shell])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _cluster(distance: float, geometry: str) -> np.ndarray:
    """Scatterer positions (Angstrom) around an absorber at the origin."""
    if geometry == "fcc":
        a = distance * np.sqrt(2.0)
        half = a / 2.0
        sites = []
        for i in range(-2, 3):
            for j in range(-2, 3):
                for k in range(-2, 3):
                    if (i + j + k) % 2 == 0 and (i, j, k) != (0, 0, 0):
                        sites.append((i * half, j * half, k * half))
        sites = np.array(sites)
        radius = np.linalg.norm(sites, axis=1)
        # three shells: 12 at d, 6 at sqrt(2) d, 24 at sqrt(3) d
        return sites[radius < distance * np.sqrt(3.0) * 1.01]
    if geometry == "bcc":
        half = distance / np.sqrt(3.0)                          # a / 2, a = 2 d / sqrt(3)
        sites = [(i * half, j * half, k * half) for i in range(-2, 3) for j in range(-2, 3)
                 for k in range(-2, 3) if (i % 2 == j % 2 == k % 2) and (i, j, k) != (0, 0, 0)]
        sites = np.array(sites)
        radius = np.linalg.norm(sites, axis=1)
        # three shells: 8 at d, 6 at a = 2 d / sqrt(3), 12 at sqrt(2) a
        return sites[radius < 2.0 * half * np.sqrt(2.0) * 1.01]
    if geometry == "square_planar":
        return distance * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=float)
    return distance * np.array(
        [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float
    )


def _run_feff(absorber, scatterer, distance, edge, geometry, shell=1) -> Path:
    """Run feff6l in a fresh folder; return the path file of shell ``shell``."""
    from larch.xafs import feff6l

    z_abs, z_sc = atomic_number(absorber), atomic_number(scatterer)
    positions = _cluster(distance, geometry)
    lines = [
        f"TITLE operando model: {absorber}-{scatterer} {geometry} {distance:.4f} A",
        f"HOLE {_HOLES[edge]} 1.0",
        "CONTROL 1 1 1 1",
        "PRINT 0 0 0 0",
        f"RMAX {distance * (1.10 if shell == 1 else LATTICE_RATIOS[geometry] * 1.05):.4f}",
        "NLEG 2",
        "POTENTIALS",
        f" 0 {z_abs} {absorber}",
        f" 1 {z_sc} {scatterer}",
        "ATOMS",
        "   0.00000   0.00000   0.00000  0",
    ]
    lines += [f"  {x:9.5f} {y:9.5f} {z:9.5f}  1" for x, y, z in positions]
    lines.append("END")
    folder = Path(tempfile.mkdtemp(prefix="operando-feff-"))
    (folder / "feff.inp").write_text("\n".join(lines) + "\n")
    try:
        feff6l(folder=str(folder), feffinp="feff.inp", verbose=False)
    except Exception as exc:  # larch raises plain Exceptions for FEFF failures
        raise DataError(f"FEFF6 failed for {absorber}-{scatterer} at {distance} A: {exc}") from exc
    produced = folder / f"feff{shell:04d}.dat"
    if not produced.exists():
        raise DataError(
            f"FEFF6 produced no path for {absorber}-{scatterer} at {distance} A "
            f"(see {folder / 'feffrun_feff6l.log'})"
        )
    return produced
