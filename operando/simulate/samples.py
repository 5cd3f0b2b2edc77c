"""The bundled sample spectra: both named series written as XDI / matrix files with truth and README."""

from __future__ import annotations

import argparse
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .named import CU_NC_POTENTIAL, PT_CO_OXIDATION
from .series import simulate_foil, simulate_series
from .spec import SeriesSpec

log = logging.getLogger(__name__)

#: Seed used for the bundled ``sample_spectra`` (noise).  The drift is set by
#: each spec's ``drift_seed``.
SAMPLE_SEED = 20260


# ------------------------------------------------------------- file output
def _iso_time(seconds: float, start: str = "2026-03-01T08:00:00") -> str:
    """XDI ``Scan.start_time`` (ISO 8601) of a scan started ``seconds`` after ``start``."""
    return (datetime.fromisoformat(start) + timedelta(seconds=float(seconds))).isoformat()


def _write_xdi(path: Path, spec: SeriesSpec, energy: np.ndarray, columns: dict[str, np.ndarray],
               extra: Mapping[str, str], comments: Sequence[str]) -> None:
    names = ["energy", *columns]
    units = {"energy": "eV"}
    lines = ["# XDI/1.0 operando-simulate/0.1"]
    for i, name in enumerate(names, 1):
        lines.append(f"# Column.{i}: {name}" + (f" {units[name]}" if name in units else ""))
    lines += [
        f"# Element.symbol: {spec.element}",
        f"# Element.edge: {spec.edge}",
        "# Mono.name: Si(111)",
        "# Mono.d_spacing: 3.13555",
        "# Facility.name: simulated (operando.simulate)",
    ]
    lines += [f"# {k}: {v}" for k, v in extra.items()]
    lines.append("# ///")
    lines += [f"# {c}" for c in comments]
    lines.append("#----")
    lines.append("# " + " ".join(names))
    data = np.column_stack([energy, *columns.values()])
    body = "\n".join(f"{row[0]:.4f} " + " ".join(f"{v:.9g}" for v in row[1:]) for row in data)
    path.write_text("\n".join(lines) + "\n" + body + "\n")


def _i0(energy: np.ndarray, e0: float, scale: float) -> np.ndarray:
    """A smooth ion-chamber i0 (counts): slowly rising with energy."""
    return 1.8e5 * scale * (1.0 + 0.08 * (energy - e0) / 1000.0)


def _write_foil(folder: Path, spec: SeriesSpec, seed: int, sample: str) -> pd.DataFrame:
    """The spec's foil (``energy i0 itrans``) and ``foil_truth.csv``; returns that truth."""
    foil, foil_truth = simulate_foil(spec, seed=seed)
    i0 = _i0(foil.energy, spec.e0_tabulated, 1.0)
    _write_xdi(folder / spec.foil_file, spec, foil.energy, {"i0": i0, "itrans": i0 * np.exp(-foil.mu[0])},
               {"Sample.name": sample},
               [f"simulated by operando.simulate, {spec.name} foil, seed {seed}",
                "mu = ln(i0/itrans); no energy miscalibration"])
    foil_truth.to_csv(folder / "foil_truth.csv", index=False, float_format="%.10g")
    return foil_truth


def _summary_table(truth: pd.DataFrame, spec: SeriesSpec) -> str:
    cols = [*spec.condition_columns, "state"]
    head = ["steps", *cols]
    for label in spec.shell_labels:
        head += [f"cn_{label}", f"r_{label}", f"sigma2_{label}"]
    head += ["wl_height_true", "e0_true"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for seg, rows in truth.groupby("segment", sort=True):
        first = rows.iloc[0]
        cells = [f"{rows['step'].min()}-{rows['step'].max()}"] + [str(first[c]) for c in cols]
        for label in spec.shell_labels:
            cells += [f"{first[f'cn_{label}']:g}",
                      "-" if first[f"cn_{label}"] == 0 else f"{first[f'r_{label}']:.3f}",
                      "-" if first[f"cn_{label}"] == 0 else f"{first[f'sigma2_{label}']:.4f}"]
        cells += [f"{first['wl_height_true']:.3f}", f"{first['e0_true']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_samples(directory: str | Path, *, seed: int = SAMPLE_SEED) -> dict[str, list[Path]]:
    """Write both named series (and their foils, truth and README) to files.

    Layout (see the README written there)::

        directory/pt_co_oxidation/pt_co_oxidation_NNN.xdi  energy i0 itrans irefer
                                  conditions.csv (file, gas, temperature_K, time_s)
                                  pt_foil.xdi, truth.csv, foil_truth.csv
        directory/cu_nc_potential/cu_nc_potential.dat      energy + one mu column per step
                                  cu_nc_reference.dat      energy + one reference column per step
                                  conditions.csv (step, potential_V, time_s)
                                  cu_foil.xdi, truth.csv, foil_truth.csv
        directory/README.md

    Parameters
    ----------
    directory : path
        Created if missing; files in it are overwritten.
    seed : int
        Noise seed (default :data:`SAMPLE_SEED`).

    Returns
    -------
    dict
        ``{"pt_co_oxidation": [paths], "cu_nc_potential": [paths], "readme": [path]}``.
    """
    directory = Path(directory)
    written: dict[str, list[Path]] = {}

    # ---- Pt: one XDI file per scan with intensities.
    spec = PT_CO_OXIDATION
    folder = directory / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    series, truth = simulate_series(spec, seed=seed)
    paths = []
    e0 = spec.e0_tabulated
    for i in range(len(series)):
        i0 = _i0(series.energy, e0, 1.0 - 0.002 * i)
        itrans = i0 * np.exp(-series.mu[i])
        irefer = itrans * np.exp(-series.reference[i])
        row = truth.iloc[i]
        path = folder / row["file"]
        _write_xdi(path, spec, series.energy, {"i0": i0, "itrans": itrans, "irefer": irefer},
                   {"Sample.name": "0.3 wt% Pt/gamma-Al2O3",
                    "Sample.temperature": f"{row['temperature_K']:g} K",
                    "Scan.start_time": _iso_time(row["time_s"])},
                   [f"simulated by operando.simulate, series {spec.name}, step {i}, seed {seed}",
                    f"gas {row['gas']}; mu = ln(i0/itrans), reference = ln(itrans/irefer)"])
        paths.append(path)
    cond = truth[["file", "gas", "temperature_K", "time_s"]]
    cond.to_csv(folder / "conditions.csv", index=False)
    truth.to_csv(folder / "truth.csv", index=False, float_format="%.10g")
    foil_truth = _write_foil(folder, spec, seed, "Pt foil (simulated: fcc Pt, CN 12, S0^2 0.85)")
    paths += [folder / n for n in ("conditions.csv", "truth.csv", spec.foil_file, "foil_truth.csv")]
    written[spec.name] = paths
    pt_truth, pt_foil_truth = truth, foil_truth

    # ---- Cu: matrix files of mu (one column per step).
    spec = CU_NC_POTENTIAL
    folder = directory / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    series, truth = simulate_series(spec, seed=seed)
    for name, arr, prefix in (("cu_nc_potential.dat", series.mu, "mu"),
                              ("cu_nc_reference.dat", series.reference, "ref")):
        header = "energy " + " ".join(f"{prefix}_{i:03d}" for i in range(len(series)))
        np.savetxt(folder / name, np.column_stack([series.energy, arr.T]),
                   fmt=["%.4f"] + ["%.7f"] * len(series), header=header, comments="# ")
    cond = truth[["step", "potential_V", "time_s"]]
    cond.to_csv(folder / "conditions.csv", index=False)
    truth.to_csv(folder / "truth.csv", index=False, float_format="%.10g")
    foil_truth = _write_foil(folder, spec, seed, "Cu foil (simulated: fcc Cu, CN 12, S0^2 0.90)")
    written[spec.name] = [folder / n for n in ("cu_nc_potential.dat", "cu_nc_reference.dat",
                                               "conditions.csv", "truth.csv", spec.foil_file,
                                               "foil_truth.csv")]

    readme = directory / "README.md"
    readme.write_text(_readme(seed, pt_truth, truth, pt_foil_truth, foil_truth))
    written["readme"] = [readme]
    return written


def _readme(seed: int, pt_truth: pd.DataFrame, cu_truth: pd.DataFrame, pt_foil_truth: pd.DataFrame,
            cu_foil_truth: pd.DataFrame) -> str:
    pt, cu = PT_CO_OXIDATION, CU_NC_POTENTIAL
    pt_foil_e0 = float(pt_foil_truth["e0_true"].iloc[0])
    cu_foil_e0 = float(cu_foil_truth["e0_true"].iloc[0])
    return f"""# Simulated operando XAS sample series

Generated by `python -m operando.simulate sample_spectra` (equivalently
`operando.simulate.write_samples("sample_spectra", seed={seed})`) with noise seed **{seed}**
(the per-scan energy drift comes from each spec's `drift_seed`: {pt.drift_seed} for Pt,
{cu.drift_seed} for Cu). Regenerating with the same code and seed gives identical files.
The spectrum model, energy grid and noise are documented in the `operando.simulate`
module docstring. These are **simulated** data: EXAFS from FEFF6 first-shell paths
(xraylarch `ff2chi`), a model edge and white line; no multiple scattering, no second shells.

Common to both series
- Energy grid: 10 eV steps e0-200..e0-40, 0.4 eV e0-30..e0+39.6, then constant k steps of
  0.05 A^-1 from k = 3.25 to 15 A^-1 (428 points), e0 = tabulated edge (xraydb).
- Every scan has a metal-foil reference channel and an energy miscalibration `energy_shift`
  (eV, a few tenths: a constant monochromator offset plus an AR(1) drift), applied to sample
  and reference alike: a feature at true energy T appears at T + energy_shift, so calibration
  should subtract it. Pt: energy_shift {pt_truth.energy_shift.min():+.3f} .. {pt_truth.energy_shift.max():+.3f} eV;
  Cu: {cu_truth.energy_shift.min():+.3f} .. {cu_truth.energy_shift.max():+.3f} eV.
- The noise-free foil's maximum-derivative point sits exactly at the tabulated edge energy
  ({pt.e0_tabulated:g} eV Pt L3, {cu.e0_tabulated:g} eV Cu K) on the true scale, so calibrating the
  reference channel to the tabulated energy recovers -energy_shift. `e0_true` (the arctangent
  centre and the origin of k and de0) is lower than that by the white-line pull
  ({pt.e0_tabulated - pt_foil_e0:.3f} eV for Pt, {cu.e0_tabulated - cu_foil_e0:.3f} eV for Cu) and higher by the chemical shift
  (up to +1.0 eV for Pt-O4, +1.5 eV for Cu-N4).
- Noise: Gaussian in mu, sd = `noise` x edge step (Pt 5e-4, Cu 8e-4; reference channel 3e-4).
- `truth.csv` (one row per step): step, file, conditions, time_s, segment, state
  (isolated / cluster / particle), per shell S `cn_S, r_S` (A), `sigma2_S` (A^2), `de0_S` (eV;
  NaN when cn is 0), `s02`, `e0_true` (eV, edge incl. chemical shift; origin of k and de0),
  `chem_shift`, `edge_step`, `energy_shift`, `wl_amplitude` (white-line parameter, edge-step
  units), `wl_height_true` (peak of the noise-free normalised spectrum, i.e. (mu - pre-edge)
  / edge_step), `wl_position_true` and `edge_position_true` (maximum derivative; both on the
  true energy scale, they appear at + energy_shift in the files), `noise` (fraction of the
  edge step), `noise_sigma` (mu units), `seed`, `drift_seed`.
- `foil_truth.csv`: the foil (CN 12, bulk distance, sigma2, de0, S0^2, no miscalibration).

## pt_co_oxidation/ -- 0.3 wt% Pt/gamma-Al2O3, Pt L3, CO oxidation ({len(pt_truth)} scans)

- `pt_co_oxidation_NNN.xdi`: one XDI file per scan, columns `energy i0 itrans irefer`;
  mu = ln(i0/itrans), reference = ln(itrans/irefer); headers Element.symbol Pt, Element.edge L3.
- `conditions.csv`: keyed by `file` (basename): `file, gas, temperature_K, time_s`.
- `pt_foil.xdi`: Pt foil (columns `energy i0 itrans`), fcc Pt CN 12, R 2.775 A, sigma2 0.0049,
  S0^2 0.85; not listed in conditions.csv.
- `truth.csv`, `foil_truth.csv`.

{_summary_table(pt_truth, pt)}

## cu_nc_potential/ -- Cu-N-C single-atom catalyst, Cu K, potential steps ({len(cu_truth)} scans)

- `cu_nc_potential.dat`: matrix file; one `#` header line `energy mu_000 mu_001 ...`, then
  energy (eV) and one mu column per step (step = column order).
- `cu_nc_reference.dat`: the same layout (`energy ref_000 ...`), the foil reference channel.
- `conditions.csv`: keyed by `step`: `step, potential_V` (V vs RHE; the last segment is the
  label `OCP`, open circuit), `time_s`.
- `cu_foil.xdi`: Cu foil (columns `energy i0 itrans`), fcc Cu CN 12, R 2.556 A, sigma2 0.0087,
  S0^2 0.90.
- `truth.csv`, `foil_truth.csv` (the `file` column of truth.csv is `cu_nc_potential.dat#mu_NNN`).

{_summary_table(cu_truth, cu)}
"""


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m operando.simulate DIRECTORY [--seed N]``: write the sample series."""
    parser = argparse.ArgumentParser(prog="python -m operando.simulate",
                                     description="Write the simulated sample spectra.")
    parser.add_argument("directory", nargs="?", default="sample_spectra")
    parser.add_argument("--seed", type=int, default=SAMPLE_SEED)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    written = write_samples(args.directory, seed=args.seed)
    for name, paths in written.items():
        log.info("%s: %d files in %s", name, len(paths), Path(paths[0]).parent)
    return 0
