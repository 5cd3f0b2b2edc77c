"""The two-phase fit's cost per spectrum beside the per-step two-shell fit, on a series of
real-data mixtures (Cu foil + CuO).

Run ``python benchmarks/bench_two_phase.py --help``; see benchmarks/README.md.  Prints,
never asserts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

WINDOW = dict(kmin=3.0, kmax=12.0, rmin=1.0, rmax=3.2, kweight=2, dk=1.0, window="hanning")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="series length (default 10,000)")
    ap.add_argument("--two-phase-n", type=int, default=None,
                    help="spectra given to the two-phase fit (default: all --n)")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)

    import operando as op
    from operando import mixtures
    from operando.exafs import FoilValues, apply_foil, fit_two_phase

    print(f"two-phase vs per-step shell fit: Cu foil + CuO mixtures (real references), k 3-12 "
          f"1/A, R 1-3.2 A; {os.cpu_count()} CPUs; python {sys.version.split()[0]}; the machine "
          "may be shared: compare the two lines of one run, not runs")
    refs = mixtures.load_references(["cu_foil", "cuo"])
    t = np.arange(args.n) / max(args.n, 1)
    frac = 0.5 - 0.5 * np.cos(2 * np.pi * 5 * t)
    rows = np.vstack([[0.0, 1.0], np.column_stack([frac, 1 - frac])])
    t0 = time.perf_counter()
    series, truth = mixtures.mix_series(refs, rows, noise="qexafs", seed=args.seed,
                                        energy_jitter=0.2)
    foil, _ = mixtures.mix_series(refs, [[1.0, 0.0]], noise="qexafs", seed=args.seed + 1)
    norm = op.normalize(series, e0="first")
    chi = op.remove_background(norm, rbkg=1.0, kweight=2)
    cal = op.calibrate_s02(op.remove_background(op.normalize(foil, e0="each")), shell="Cu-Cu",
                           cn=12, **WINDOW)
    model = apply_foil(op.ShellModel(shells=["Cu-O", "Cu-Cu"], **WINDOW),
                            FoilValues.of(cal), shell="Cu-Cu")
    print(f"{args.n:,} spectra built, normalised, background removed in "
          f"{time.perf_counter() - t0:.1f} s (not counted)")
    from dataclasses import replace

    steps = np.arange(1, len(series))
    sub = replace(chi, chi=chi.chi[steps], e0=chi.e0[steps], edge_step=chi.edge_step[steps],
                  ok=chi.ok[steps], reason=[chi.reason[i] for i in steps],
                  normalized=replace(norm, series=norm.series.take(steps)))

    t0 = time.perf_counter()
    classic = op.fit_shells(sub, model, s02=cal.s02, engine="fast").to_dataframe()
    dt_classic = time.perf_counter() - t0
    n2 = args.two_phase_n or len(steps)
    sub2 = replace(sub, chi=sub.chi[:n2], e0=sub.e0[:n2], edge_step=sub.edge_step[:n2],
                   ok=sub.ok[:n2], reason=sub.reason[:n2],
                   normalized=replace(norm, series=norm.series.take(steps[:n2])))
    x, x_err = frac[:n2], np.full(n2, 0.02)
    out = {}
    for mode in ("xanes", "fit"):
        t0 = time.perf_counter()
        res = fit_two_phase(sub2, chi.chi[0], model, shell="Cu-Cu", s02=cal.s02, fraction=x,
                            fraction_err=x_err, fraction_mode=mode).to_dataframe()
        out[mode] = (time.perf_counter() - t0, res)
    print(f"\n  {'per-step two-shell fit (fast)':38s} {1e3 * dt_classic / len(steps):8.2f} ms "
          f"per spectrum ({dt_classic:.1f} s for {len(steps):,})")
    for mode, (dt, res) in out.items():
        print(f"  {'two-phase, fraction = ' + repr(mode):38s} {1e3 * dt / n2:8.2f} ms per "
              f"spectrum ({dt:.1f} s for {n2:,}; two lmfit fits per spectrum: x fixed and x "
              "free for the consistency check)" if mode == "xanes" else
              f"  {'two-phase, fraction = ' + repr(mode):38s} {1e3 * dt / n2:8.2f} ms per "
              f"spectrum ({dt:.1f} s for {n2:,})")
    res = out["xanes"][1]
    metal = x > 0.4
    dev = np.abs(res["cluster_cn"].to_numpy()[metal] - 12.0)
    print(f"\n  N_c where x > 0.4: median |N_c - 12| {np.median(dev):.2f}, 95 % within "
          f"{np.percentile(dev, 95):.2f}; two-phase R-factor median "
          f"{np.nanmedian(res['two_phase_rfactor']):.3f} vs per-step "
          f"{np.nanmedian(classic['r_factor']):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
