"""Shell fits with the default model on a large series of real-data mixtures, against a plain
xraylarch loop, and the series-global fit.

Run ``python benchmarks/bench_exafs.py --help``; see benchmarks/README.md.  Prints, never asserts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

#: The issue's plain configuration (k 3-12, R 1-3): the default model adds, from the foil,
#: sigma2 and dE0 of Cu-Cu, and tests Cu-Cu (F-test, detection limit) at every step.
WINDOW = dict(kmin=3.0, kmax=12.0, rmin=1.0, rmax=3.0, kweight=2, dk=1.0, window="hanning")
RBKG = 1.0


def make_series(n: int, seed: int, *, cycles: int = 5):
    """Cu foil + CuO mixtures from the real references along an operando program: the
    metal fraction goes 0 -> 1 -> 0 ``cycles`` times (reduction and re-oxidation, a
    smooth trajectory in time as a real series), 0.3 % noise, 0.2 eV energy jitter."""
    from operando import mixtures

    refs = mixtures.load_references(["cu_foil", "cuo"])
    t = np.arange(n) / max(n, 1)
    frac = 0.5 - 0.5 * np.cos(2 * np.pi * cycles * t)
    series, truth = mixtures.mix_series(refs, np.column_stack([frac, 1 - frac]), noise=0.003,
                                        seed=seed, energy_jitter=0.2)
    foil, _ = mixtures.mix_series(refs, [[1.0, 0.0]], noise="qexafs", seed=seed + 1)
    return series, truth, foil


def fast_chain(series, foil, *, significance="metal"):
    """normalise -> background -> foil calibration -> default two-shell fit (fast engine)."""
    from operando import exafs, xanes

    times = {}
    t = time.perf_counter()
    norm = xanes.normalize(series, e0="first")
    times["normalise"] = time.perf_counter() - t
    t = time.perf_counter()
    chi = exafs.remove_background(norm, rbkg=RBKG, kweight=2)
    times["background"] = time.perf_counter() - t
    t = time.perf_counter()
    cal = exafs.calibrate_s02(exafs.remove_background(xanes.normalize(foil, e0="each")),
                              shell="Cu-Cu", cn=12, **WINDOW)
    model = exafs.ShellModel(shells=["Cu-O", "Cu-Cu"], significance=significance, **WINDOW)
    fit = exafs.fit_shells(chi, model, foil=cal, engine="fast")
    times["fit (incl. F-test, limit)" if significance != "none" else "fit"] = \
        time.perf_counter() - t
    return times, fit, chi, cal


def larch_loop(series, s02, e0):
    """Plain xraylarch per spectrum: pre_edge, autobk, one two-path feffit (Cu-O, Cu-Cu;
    CN, dR, sigma2 free, one dE0), the same window and S0^2."""
    from larch import Group
    from larch.fitting import param, param_group
    from larch.xafs import autobk, feffit, feffit_dataset, feffit_transform, feffpath, pre_edge

    from operando.feffpaths import path_for_shell

    files = {lab: str(path_for_shell(lab).file) for lab in ("Cu-O", "Cu-Cu")}
    tr = feffit_transform(fitspace="r", **WINDOW)
    cn = []
    t = time.perf_counter()
    for i in range(len(series)):
        g = Group(energy=series.energy, mu=series.mu[i])
        pre_edge(g, e0=e0)
        autobk(g, rbkg=RBKG, kweight=2, e0=e0)
        pars = param_group(de0=param(0.0, vary=True, min=-10, max=10), s02=param(s02))
        paths = []
        for lab, nm, c0, s0 in (("Cu-O", "o", 4.0, 0.005), ("Cu-Cu", "cu", 8.0, 0.007)):
            setattr(pars, f"cn_{nm}", param(c0, vary=True, min=0, max=16))
            setattr(pars, f"dr_{nm}", param(0.0, vary=True, min=-0.25, max=0.25))
            setattr(pars, f"ss_{nm}", param(s0, vary=True, min=0.001, max=0.03))
            paths.append(feffpath(files[lab], label=nm, degen=1, s02=f"s02*cn_{nm}", e0="de0",
                                  deltar=f"dr_{nm}", sigma2=f"ss_{nm}"))
        out = feffit(pars, feffit_dataset(data=Group(k=g.k, chi=g.chi), paths=paths, transform=tr))
        cn.append(out.params["cn_cu"].value)
    return time.perf_counter() - t, np.array(cn)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="series length (default 10,000)")
    ap.add_argument("--larch-n", type=int, default=20, help="spectra in the xraylarch loop")
    ap.add_argument("--global-n", type=int, default=1000, help="steps in the global fit")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)

    from operando import exafs

    print(f"operando EXAFS benchmark: Cu foil + CuO mixtures (real references), k 3-12 1/A, "
          f"R 1-3 A; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    t = time.perf_counter()
    series, truth, foil = make_series(args.n, args.seed)
    print(f"\n{args.n:,} spectra x {series.energy.size} points built in "
          f"{time.perf_counter() - t:.1f} s (not counted)")

    cpu0 = time.process_time()
    times, fit, chi, cal = fast_chain(series, foil)
    total = sum(times.values())
    for name, dt in times.items():
        print(f"  {name:28s} {args.n / dt:>10,.0f} spectra/s ({dt:7.2f} s)")
    print(f"  {'whole fast chain':28s} {args.n / total:>10,.0f} spectra/s ({total:7.2f} s; "
          f"cpu {time.process_time() - cpu0:.1f} s)")
    df = fit.to_dataframe()
    bias = df["cn_Cu-Cu"].to_numpy() - truth["cn_Cu-Cu_metal"].to_numpy()
    print(f"  CN(Cu-Cu) - truth: median {np.median(bias):+.2f}, 95 % within "
          f"{np.percentile(np.abs(bias), 95):.2f}; fits good/poor/failed "
          f"{(df.fit_quality == 'good').sum()}/{(df.fit_quality == 'poor').sum()}/"
          f"{(df.fit_quality == 'failed').sum()}")
    t = time.perf_counter()
    times0, _, _, _ = fast_chain(series, foil, significance="none")
    print(f"  (without the F-test and limit the fit takes {times0['fit']:.2f} s)")

    idx = np.unique(np.linspace(0, args.n - 1, args.larch_n).astype(int))
    dt, cn_larch = larch_loop(series.take(idx), cal.s02, float(chi.e0[0]))
    rate_l = len(idx) / dt
    print(f"\nplain xraylarch loop (pre_edge + autobk + two-path feffit) on {len(idx)} spectra: "
          f"{rate_l:.1f} spectra/s")
    print(f"  ratio whole fast chain / xraylarch loop: {args.n / total / rate_l:,.0f}x")

    m = min(args.global_n, args.n)
    model = exafs.ShellModel(shells=["Cu-O", "Cu-Cu"], **WINDOW)
    sub = exafs.ChiSeries(k=chi.k, chi=chi.chi[:m], e0=chi.e0[:m], edge_step=chi.edge_step[:m],
                          ok=chi.ok[:m], reason=list(chi.reason[:m]), settings=chi.settings)
    t = time.perf_counter()
    glob = exafs.fit_shells_global(sub, model, foil=cal, engine="fast").to_dataframe()
    dt = time.perf_counter() - t
    gb = glob["cn_Cu-Cu"].to_numpy() - truth["cn_Cu-Cu_metal"].to_numpy()[:m]
    print(f"\nglobal fit of {m:,} steps (shared sigma2, dR, dE0; {int(glob.n_varys[0])} "
          f"parameters): {dt:.2f} s; CN(Cu-Cu) - truth median {np.median(gb):+.2f}, "
          f"|.| 95 % {np.percentile(np.abs(gb), 95):.2f}; {glob.fit_message[0][:60]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
