"""Reference-phase shells: the outer shells of a known starting phase (an oxide, an
M-N-C site), tied to its ligand CN, so that they do not leak into the metal path.

A two-shell model (M-O + M-M) reads CuO's own Cu...Cu at 2.90-3.17 A and its long
Cu-O at 2.78 A as metallic Cu-Cu: on real Cu foil + CuO mixtures pure CuO reads
CN(Cu-Cu) 1.4.  Modelling those shells as part of the oxide -- their CN the crystal
value times CN(M-O) / CN_crystal(M-O), so they grow and vanish with the oxide and add
no parameter -- brings every fraction within 0.2 of the truth (README, "Physics
defaults").

Recipe (an oxide)::

    from operando import exafs

    paths = exafs.phases.phase_paths(exafs.phases.cluster(CUO_CELL, CUO_SITES, absorber="Cu"))
    outer = exafs.phases.tied_shells(paths, ligand="Cu-O", ligand_cn=4, tag="ox", rmax=3.3)
    outer, ref = exafs.phases.fit_phase_reference(cuo_chi, "Cu-O", outer, s02=cal.s02,
                                                  ligand_cn=4, kmin=3, kmax=12, rmin=1, rmax=3)
    model = exafs.ShellModel(shells=["Cu-O", "Cu-Cu", *outer], kmin=3, kmax=12, rmin=1, rmax=3)

``cuo_chi``: a spectrum of the pure starting phase (a reference file, or the first
segment of the series before anything happens).  Without one,
``tied_shells(..., sigma2=0.005, deltar=0.0)`` takes generic disorder (bias <= 0.5
instead of <= 0.2 on the mixtures).

Recipe (Cu-N-C: Cu-N4 with the Cu-C second shell, 8 C at ~2.9-3.0 A)::

    shells = ["Cu-N",
              {"label": "Cu-C", "distance": 2.95, "cn": "2 * Cu-N", "e0_group": "site"},
              "Cu-Cu"]
    outer, ref = exafs.phases.fit_phase_reference(pristine_chi, "Cu-N", shells[1:2],
                                                  s02=cal.s02, ligand_cn=4, ...)

The same in a run configuration: ``[exafs] shells = [..., {label = "Cu-Cu_ox1", file =
"feff_cuo/feff0004.dat", cn = "1.0 * Cu-O", sigma2 = 0.0043, deltar = -0.01,
e0_group = "oxide"}, ...]`` with the numbers printed by :func:`fit_phase_reference`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, ReadError
from ..feffpaths import default_edge, load_path, parse_label
from ..options import BackgroundOptions

log = logging.getLogger(__name__)

_HOLES = {"K": 1, "L1": 2, "L2": 3, "L3": 4}
_NLEG = re.compile(r"^\s*(\d+)\s+[\d.]+\s+[\d.]+\s+\S+\s+\S+\s+nleg, deg, reff", re.M)

#: CuO (tenorite, C2/c; a, b, c in Angstrom, angles in degrees) and the full contents of
#: its unit cell (fractional), for :func:`cluster`: the worked example of the docs/tests.
CUO_CELL = (4.684, 3.423, 5.129, 90.0, 99.54, 90.0)
CUO_SITES = [("Cu", (0.25, 0.25, 0.0)), ("Cu", (0.75, 0.25, 0.5)), ("Cu", (0.75, 0.75, 0.0)),
             ("Cu", (0.25, 0.75, 0.5)), ("O", (0.0, 0.4184, 0.25)), ("O", (0.0, 0.5816, 0.75)),
             ("O", (0.5, 0.9184, 0.25)), ("O", (0.5, 0.0816, 0.75))]


@dataclass(frozen=True)
class PhasePath:
    """One single-scattering FEFF path of a phase.

    Attributes
    ----------
    file : str
        The ``feffNNNN.dat``.
    absorber, scatterer : str
    reff : float
        Half path length, Angstrom.
    degeneracy : float
        Number of equivalent scatterers (the crystal CN of this shell).
    """

    file: str
    absorber: str
    scatterer: str
    reff: float
    degeneracy: float


def cluster(cell, sites, *, absorber: str, rmax: float = 6.0) -> list[tuple[str, np.ndarray]]:
    """Atoms within ``rmax`` (Angstrom) of an ``absorber`` site of a crystal.

    Parameters
    ----------
    cell : (a, b, c, alpha, beta, gamma)
        Lattice constants (Angstrom) and angles (degrees).
    sites : list of (symbol, (x, y, z))
        Every atom of the unit cell in fractional coordinates (symmetry applied).
    absorber : str
        Element of the absorbing atom (its first site is the centre).
    rmax : float

    Returns
    -------
    list of (symbol, xyz)
        Sorted by distance; the absorber first, at the origin.
    """
    a, b, c, al, be, ga = (float(v) for v in cell)
    al, be, ga = np.radians([al, be, ga])
    va = np.array([a, 0.0, 0.0])
    vb = np.array([b * np.cos(ga), b * np.sin(ga), 0.0])
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    vc = np.array([cx, cy, np.sqrt(max(c * c - cx * cx - cy * cy, 0.0))])
    lattice = np.array([va, vb, vc])
    centre = next((np.asarray(f, float) for s, f in sites if s == absorber), None)
    if centre is None:
        raise ConfigError(f"no {absorber} site among {[s for s, _ in sites]}")
    reach = int(np.ceil(rmax / min(a, b, c))) + 1
    shifts = np.array(np.meshgrid(*[np.arange(-reach, reach + 1)] * 3)).reshape(3, -1).T
    atoms = []
    for symbol, frac in sites:
        xyz = (np.asarray(frac, float)[None, :] + shifts - centre) @ lattice
        d = np.linalg.norm(xyz, axis=1)
        for p, dist in zip(xyz[d < rmax], d[d < rmax]):
            atoms.append((dist, symbol, p))
    atoms.sort(key=lambda t: t[0])
    return [(s, p) for _, s, p in atoms]


def phase_paths(atoms, *, edge: str | None = None, rmax: float = 3.6,
                cache_dir: str | Path | None = None) -> list[PhasePath]:
    """Single-scattering paths of a cluster up to ``rmax`` (Angstrom), from xraylarch's
    FEFF6 (``feff6l``), cached on disk by the FEFF input.

    Parameters
    ----------
    atoms : list of (symbol, xyz)
        The absorber first (at the origin), e.g. :func:`cluster`.
    edge : str, optional
        Default: K up to Sn, L3 above.
    rmax : float
        Longest path half-length kept.
    cache_dir : path, optional
        Default ``$OPERANDO_CACHE`` or ``~/.cache/operando``.
    """
    if len(atoms) < 2:
        raise ConfigError("a phase cluster needs the absorber and at least one neighbour")
    absorber = atoms[0][0]
    edge = (edge or default_edge(absorber)).upper()
    if edge not in _HOLES:
        raise ConfigError(f"edge {edge!r} is not one of {sorted(_HOLES)}")
    from .._util.elements import atomic_number

    elements = list(dict.fromkeys(s for s, _ in atoms[1:]))
    ipot = {s: i + 1 for i, s in enumerate(elements)}
    lines = ["TITLE operando reference phase", f"HOLE {_HOLES[edge]} 1.0", "CONTROL 1 1 1 1",
             "PRINT 1 0 0 0", f"RMAX {rmax:.4f}", "NLEG 2", "POTENTIALS",
             f"  0 {atomic_number(absorber)} {absorber}"]
    lines += [f"  {ipot[s]} {atomic_number(s)} {s}" for s in elements]
    lines.append("ATOMS")
    for i, (s, p) in enumerate(atoms):
        lines.append(f"  {p[0]:10.5f} {p[1]:10.5f} {p[2]:10.5f} {0 if i == 0 else ipot[s]} {s}")
    lines.append("END")
    text = "\n".join(lines) + "\n"
    key = hashlib.sha256((text + "feff6l-1").encode()).hexdigest()[:16]
    cache = Path(cache_dir or os.environ.get("OPERANDO_CACHE") or Path.home() / ".cache" / "operando")
    folder = cache / "feff" / f"phase_{absorber}_{key}"
    if not (folder / "files.dat").exists():
        from larch.xafs import feff6l

        work = Path(tempfile.mkdtemp(prefix="operando-phase-"))
        (work / "feff.inp").write_text(text)
        try:
            feff6l(folder=str(work), feffinp="feff.inp", verbose=False)
        except Exception as exc:  # larch raises plain Exceptions for FEFF failures
            raise DataError(f"FEFF6 failed for the {absorber} phase cluster: {exc}") from exc
        if not (work / "files.dat").exists():
            raise DataError(f"FEFF6 produced no paths for the {absorber} phase cluster "
                            f"(see {work / 'feffrun_feff6l.log'})")
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(work, folder)        # atomic: a parallel run sees all or nothing
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
    return read_phase_paths(folder)


def read_phase_paths(folder_or_files) -> list[PhasePath]:
    """The single-scattering paths of a FEFF run (a folder of ``feffNNNN.dat``, or a
    list of those files), in path order; multiple-scattering paths are skipped."""
    if isinstance(folder_or_files, (str, Path)) and Path(folder_or_files).is_dir():
        files = sorted(Path(folder_or_files).glob("feff[0-9][0-9][0-9][0-9].dat"))
        if not files:
            raise ReadError(folder_or_files, "no feffNNNN.dat files", "a FEFF6/FEFF8 output folder")
    else:
        files = [Path(f) for f in ([folder_or_files] if isinstance(folder_or_files, (str, Path))
                                   else folder_or_files)]
    out = []
    for f in files:
        match = _NLEG.search(Path(f).read_text(errors="replace"))
        if match is None or int(match.group(1)) != 2:
            continue      # not a single-scattering path (or not a path file: load_path says)
        p = load_path(f)
        out.append(PhasePath(file=str(f), absorber=p.absorber, scatterer=p.scatterer,
                             reff=float(p.reff), degeneracy=float(p.degeneracy)))
    return out


def tied_shells(paths, *, ligand: str, ligand_cn: float, tag: str = "ph", rmax: float = 3.3,
                first_shell: float = 0.2, share_within: float = 0.1, sigma2=None, deltar=None,
                e0_group: str | None = None) -> list[dict]:
    """The outer shells of a phase as shell tables tied to the ligand's CN.

    Parameters
    ----------
    paths : list of PhasePath
        :func:`phase_paths` or :func:`read_phase_paths`.
    ligand : str
        The model's ligand shell, e.g. ``"Cu-O"``: the paths of that pair within
        ``first_shell`` Angstrom of the shortest one are its first shell and are left
        out (the ligand shell models them).
    ligand_cn : float
        The crystal CN of the ligand's first shell (4 for CuO): shell i gets
        ``cn = degeneracy_i / ligand_cn * CN(ligand)``.
    tag : str
        Labels are ``"<absorber>-<scatterer>_<tag><n>"`` (``"Cu-Cu_ox1"``).
    rmax : float
        Longest path kept, Angstrom (about the fit's rmax plus 0.3).
    share_within : float
        A path of the same pair within this (Angstrom) of the previous one shares its
        sigma2 and dR (tied): CuO's Cu...Cu at 3.08 and 3.17 A cannot be told apart in
        a k 3-12 fit, and left free the weaker one runs to its bounds.
    sigma2, deltar : optional
        Rules for every outer shell (:mod:`operando.exafs.shells`); default free, for
        :func:`fit_phase_reference`; ``0.005`` and ``0.0`` are generic values when
        there is no reference spectrum of the phase.
    e0_group : str, optional
        dE0 group of the outer shells (default ``tag``).

    Returns
    -------
    list of dict
    """
    absorber, scatterer = parse_label(ligand)
    if not ligand_cn > 0:
        raise ConfigError(f"ligand_cn must be > 0, got {ligand_cn}")
    first = [p for p in paths if p.scatterer == scatterer]
    rmin_first = min((p.reff for p in first), default=np.inf)
    out, count, last = [], {}, {}
    for p in paths:
        if p.absorber != absorber or p.reff > rmax:
            continue
        if p.scatterer == scatterer and p.reff <= rmin_first + first_shell:
            continue
        pair = f"{absorber}-{p.scatterer}"
        count[pair] = count.get(pair, 0) + 1
        shell = {"label": f"{pair}_{tag}{count[pair]}", "file": p.file,
                 "cn": f"{p.degeneracy / ligand_cn:.6g} * {ligand}",
                 "e0_group": e0_group or tag}
        if sigma2 is not None:
            shell["sigma2"] = sigma2
        if deltar is not None:
            shell["deltar"] = deltar
        prev = last.get(pair)
        if prev is not None and p.reff - prev[1] <= share_within:
            if sigma2 is None:
                shell["sigma2"] = prev[0]
            if deltar is None:
                shell["deltar"] = prev[0]
        else:
            last[pair] = (shell["label"], p.reff)
        out.append(shell)
    if not out:
        raise ConfigError(f"no {absorber} path beyond the {ligand} first shell up to {rmax} A")
    return out


def fit_phase_reference(chi_series, ligand: str, shells, *, s02: float, ligand_cn: float,
                        step: int = 0, de0: str = "edge", engine: str = BackgroundOptions.engine,
                        **window):
    """Fit a spectrum of the pure phase with its crystal CNs, and return its outer shells
    with their disorder fixed at the fitted values.

    The model is the ligand shell with CN ``ligand_cn`` fixed plus ``shells`` (their CN
    tied to the ligand's, as :func:`tied_shells` makes them), one dE0 for the phase;
    free sigma2 / dR of the outer shells are fitted, fixed or tied ones kept.

    Parameters
    ----------
    chi_series : ChiSeries
        Holds the reference spectrum (``step``).
    ligand : str
        The ligand shell (``"Cu-O"``).
    shells : list of dict
        Outer shells (:func:`tied_shells`).
    s02, ligand_cn : float
    de0 : {"edge", "ligand"}
        ``"edge"`` (default): the outer shells' dE0 is held at the reference's
        energy origin (its E0 + fitted dE0) in their own group; ``"ligand"``: they
        share the ligand shell's dE0 in the sample fit.
    engine : {"fast", "larch"}
    **window
        ShellModel window settings (kmin, kmax, rmin, rmax, kweight, dk, window); use
        the sample's.

    Returns
    -------
    (list of dict, ShellFitResult)
        The shells for the sample model, and the reference fit.
    """
    from .fit import fit_shells
    from .model import ShellModel

    if de0 not in ("edge", "ligand"):
        raise ConfigError(f"de0 {de0!r} is not one of 'edge', 'ligand'")
    ref_shells = [{"label": ligand, "cn": float(ligand_cn), "e0_group": "phase"}]
    ref_shells += [{**dict(s), "e0_group": "phase"} for s in shells]
    model = ShellModel(shells=ref_shells, significance="none", **window)
    steps = np.asarray(chi_series.steps)
    if step not in steps:
        raise DataError(f"reference step {step} is not in the series (steps {steps.tolist()})")
    i = int(np.flatnonzero(steps == step)[0])
    one = chi_series.__class__(k=chi_series.k, chi=chi_series.chi[i:i + 1],
                               e0=np.atleast_1d(np.asarray(chi_series.e0, float))[i:i + 1],
                               edge_step=np.atleast_1d(chi_series.edge_step)[i:i + 1],
                               ok=np.atleast_1d(chi_series.ok)[i:i + 1],
                               reason=[chi_series.reason[i]], settings=chi_series.settings)
    result = fit_shells(one, model, s02=s02, engine=engine, warm_start=False)
    row = result.table.iloc[0]
    if not np.isfinite(row["chi_square"]):
        raise DataError(f"the reference fit of the {ligand} phase failed: {row['fit_message']}")
    reff = {lab: p["reff"] for lab, p in result.settings["paths"].items()}
    edge = float(one.e0[0]) + float(row[f"de0_{ligand}"])
    out = []
    for s in shells:
        lab = s["label"]
        shell = dict(s)
        shell["sigma2"] = round(float(row[f"sigma2_{lab}"]), 6)
        shell["deltar"] = round(float(row[f"r_{lab}"]) - reff[lab], 5)
        if de0 == "edge":
            shell["de0"] = {"edge": round(edge, 3)}
            shell["e0_group"] = s.get("e0_group") or "phase"
        else:
            shell.pop("de0", None)
            shell.pop("e0_group", None)
        out.append(shell)
    log.info("reference phase %s: R-factor %.4f, dE0 %.2f eV", ligand, row["r_factor"],
             row[f"de0_{ligand}"])
    if row["fit_quality"] != "good":
        # e.g. a shell the reference does not have runs to its bounds: say so, keep going
        log.warning("the reference fit of the %s phase is %s (%s): check its outer shells",
                    ligand, row["fit_quality"], row["fit_message"])
    return out, result
