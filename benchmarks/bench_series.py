"""Throughput of the operando fast path on large simulated series, against a plain xraylarch loop.

Run ``python benchmarks/bench_series.py --help``; see benchmarks/README.md.  Prints, never asserts.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

SERIES = {
    "cu": dict(spec="CU_NC_POTENTIAL", shells=["Cu-N", "Cu-Cu"], metal="Cu-Cu"),
    "pt": dict(spec="PT_CO_OXIDATION", shells=["Pt-O", "Pt-Pt"], metal="Pt-Pt"),
}
#: Fit settings used by both engines (the samples' recommended settings).
FIT = dict(kmin=3.0, kmax=12.0, kweight=2, dk=1.0, window="hanning", rmin=1.0, rmax=3.2)
RBKG = 1.0
#: The package default: one E0 for the series (find_e0 on the first good spectrum), so
#: every spectrum shares one pre-edge and one AUTOBK operator.  "each" finds E0 per
#: spectrum (one operator per distinct E0: ~3x slower normalisation and background).
E0_POLICY = "first"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------ data
def make_series(which: str, n: int, seed: int):
    """(Series, truth, source) from operando.simulate, or a local generator."""
    try:
        from operando import simulate

        spec = getattr(simulate, SERIES[which]["spec"]).scaled(n)
        series, truth = simulate.simulate_series(spec, seed=seed, reference=False)
        return series, truth, "operando.simulate"
    except (ImportError, AttributeError) as exc:  # simulate not finished: a local generator
        print(f"  (operando.simulate unavailable: {exc}; using the local generator)")
        return _local_series(which, n, seed), None, "local generator"


def _local_series(which: str, n: int, seed: int):
    """Arctangent edge + two first-shell paths (batch PathTable) + Gaussian noise."""
    from operando.exafs.batch import tabulate_path
    from operando.feffpaths import path_for_shell
    from operando.series import Series, default_conditions

    rng = np.random.default_rng(seed)
    e0 = 8979.0 if which == "cu" else 11564.0
    k_grid = np.arange(3.25, 15.0, 0.05)
    energy = np.concatenate([np.arange(e0 - 200, e0 - 35, 10.0), np.arange(e0 - 30, e0 + 40, 0.4),
                             e0 + k_grid**2 / 0.26246842396479836])
    frac = np.linspace(0, 1, n)
    lig, met = SERIES[which]["shells"]
    kk = np.sqrt(np.clip(energy - e0, 0, None) * 0.26246842396479836)
    chi = (tabulate_path(path_for_shell(lig)).chi(kk, amp=0.9 * 4 * (1 - frac), sigma2=0.004 + 0 * frac)
           + tabulate_path(path_for_shell(met)).chi(kk, amp=0.9 * 8 * frac, sigma2=0.008 + 0 * frac))
    mu0 = 0.5 + np.arctan((energy - e0) / 2.0) / np.pi
    mu = 1.0 + 0.1 * mu0[None] * (1 + np.where(kk > 2, chi, 0)) + rng.normal(0, 8e-5, (n, energy.size))
    return Series(energy=energy, mu=mu, conditions=default_conditions(n))


# ------------------------------------------------------- fast chain
def fast_chain(series, model, s02, lap=None, executor=None, workers=1):
    """read-independent part of the fast pipeline: normalise + white line, background + FT, fit."""
    from operando import exafs, xanes
    from operando.exafs.batch import batch_xftf

    lap = lap or (lambda name: None)
    norm = xanes.normalize(series, e0=E0_POLICY, engine="fast")
    wl = xanes.white_line(norm)
    lap("normalise + white line")
    chi = exafs.remove_background(norm, rbkg=RBKG, kweight=FIT["kweight"], engine="fast")
    r, chir = batch_xftf(chi.k, np.nan_to_num(chi.chi), kmin=FIT["kmin"], kmax=FIT["kmax"],
                         dk=FIT["dk"], window=FIT["window"], kweight=FIT["kweight"], rmax_out=6)
    lap("background + FT")
    kw = {}
    if executor is not None:
        kw = dict(executor=executor, chunk_size=max(1, math.ceil(len(series) / workers)))
    fit = exafs.fit_shells(chi, model, s02=s02, engine="fast", **kw)
    lap("two-shell fit")
    return norm, wl, chi, fit


def _chain_worker(args):
    """One chunk of the whole in-process chain (for --workers)."""
    series, model, s02 = args
    return fast_chain(series, model, s02)[3].to_dataframe()


# ------------------------------------------------------ larch loop
def larch_loop(series, model, s02, tmp: Path, e0=None):
    """Plain xraylarch: read_ascii per file, pre_edge, autobk + xftf, one feffit per spectrum.

    ``e0`` (eV): the series E0 the fast chain used, passed to pre_edge and autobk so both
    engines work on the same chi(k) (None: Larch finds E0 per spectrum)."""
    from larch import Group
    from larch.fitting import param, param_group
    from larch.io import read_ascii
    from larch.xafs import (autobk, feffit, feffit_dataset, feffit_transform, feffpath,
                            pre_edge, xftf)

    from operando.exafs.model import resolve_paths as _resolve_paths
    from operando.exafs.policy import defaults as _defaults

    files = []
    for i in range(len(series)):
        f = tmp / f"larch_{i:04d}.dat"
        np.savetxt(f, np.column_stack([series.energy, series.mu[i]]), header="energy mu",
                   comments="# ")
        files.append(f)
    paths = _resolve_paths(model)
    times = dict.fromkeys(["read", "normalise + white line", "background + FT", "two-shell fit"], 0.0)
    rows = []
    for f in files:
        t = time.perf_counter()
        g = read_ascii(str(f), labels="energy mu")
        t1 = time.perf_counter()
        pre_edge(g, e0=e0)
        t2 = time.perf_counter()
        autobk(g, rbkg=RBKG, kweight=FIT["kweight"], e0=e0)
        xftf(g, kmin=FIT["kmin"], kmax=FIT["kmax"], dk=FIT["dk"], window=FIT["window"],
             kweight=FIT["kweight"])
        t3 = time.perf_counter()
        pars = {"de0": param(0.0, vary=True, min=-model.de0_max, max=model.de0_max)}
        fpaths = []
        for spec in model.shells:
            d, nm = _defaults(spec, model), spec.name
            pars[f"cn_{nm}"] = param(d["cn"], vary=True, min=spec.cn.lo, max=spec.cn.hi)
            pars[f"dr_{nm}"] = param(0.0, vary=True, min=-model.dr_max, max=model.dr_max)
            pars[f"ss_{nm}"] = param(d["sigma2"], vary=True, min=model.sigma2_min,
                                     max=model.sigma2_max)
            fpaths.append(feffpath(str(paths[spec.label].file), label=nm, degen=1.0,
                                   s02=f"{s02}*cn_{nm}", e0="de0", deltar=f"dr_{nm}",
                                   sigma2=f"ss_{nm}"))
        tr = feffit_transform(kmin=model.kmin, kmax=model.kmax, kweight=model.kweight, dk=model.dk,
                              window=model.window, rmin=model.rmin, rmax=model.rmax)
        out = feffit(param_group(**pars), feffit_dataset(data=g, paths=fpaths, transform=tr),
                     path_outputs=False)
        t4 = time.perf_counter()
        for key, dt in zip(times, (t1 - t, t2 - t1, t3 - t2, t4 - t3)):
            times[key] += dt
        row = {}
        for spec in model.shells:
            nm, lab = spec.name, spec.label
            for kind, pn, off in (("cn", f"cn_{nm}", 0.0), ("r", f"dr_{nm}", paths[lab].reff),
                                  ("sigma2", f"ss_{nm}", 0.0)):
                p = out.params[pn]
                row[f"{kind}_{lab}"] = p.value + off
                row[f"{kind}_{lab}_err"] = p.stderr if p.stderr is not None else np.nan
        rows.append(row)
    return times, pd.DataFrame(rows)


# ------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", choices=sorted(SERIES), default="cu",
                    help="simulated series to scale up (default cu: Cu-N-C potential series)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000],
                    help="series lengths (default 100 1000 10000)")
    ap.add_argument("--full", action="store_true", help="also 100,000 spectra")
    ap.add_argument("--larch-n", type=int, default=30,
                    help="spectra in the plain xraylarch loop (default 30)")
    ap.add_argument("--workers", type=int, default=1,
                    help="also run the whole chain over N chunks in a ProcessPoolExecutor")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    sizes = sorted(set(args.sizes + ([100_000] if args.full else [])))

    from operando import exafs
    from operando.io import read_series, write_hdf5

    which = SERIES[args.series]
    model = exafs.ShellModel(shells=which["shells"], **FIT)
    try:  # S0^2 from the simulated foil (one larch fit), as a user would
        from operando import simulate, xanes

        foil, _ = simulate.simulate_foil(getattr(simulate, which["spec"]), seed=args.seed)
        fchi = exafs.remove_background(xanes.normalize(foil, e0="each"), rbkg=RBKG)
        s02 = exafs.calibrate_s02(fchi, shell=which["metal"], cn=12, kmin=FIT["kmin"],
                                  kmax=FIT["kmax"]).s02
    except (ImportError, AttributeError):
        s02 = 0.9
    print(f"operando fast-path benchmark: series {args.series}, shells {which['shells']}, "
          f"e0 policy {E0_POLICY!r}, "
          f"k {FIT['kmin']}-{FIT['kmax']} 1/A, R {FIT['rmin']}-{FIT['rmax']} A, kw {FIT['kweight']}, "
          f"S0^2 {s02:.3f}; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    stages = ["read", "normalise + white line", "background + FT", "two-shell fit"]
    results = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for n in sizes:
            t = time.perf_counter()
            series, truth, source = make_series(args.series, n, args.seed)
            t_sim = time.perf_counter() - t
            h5 = tmp / f"series_{n}.h5"
            write_hdf5(series, h5)
            times, cpu = {}, {}
            t_last = [time.perf_counter(), time.process_time()]

            def lap(name):
                now, now_cpu = time.perf_counter(), time.process_time()
                times[name], cpu[name] = now - t_last[0], now_cpu - t_last[1]
                t_last[:] = [now, now_cpu]

            t_start, c_start = t_last
            got = read_series(h5)
            lap("read")
            norm, _, chi, fit = fast_chain(got, model, s02, lap)
            total = time.perf_counter() - t_start
            total_cpu = time.process_time() - c_start
            e0_series = norm.settings.get("e0_value")
            df = fit.to_dataframe()
            results[n] = dict(times=times, total=total, df=df, series=got, truth=truth,
                              e0=e0_series)
            print(f"\n== {n:,} spectra ({source}, simulated in {t_sim:.1f} s; "
                  f"{series.mu.shape[1]} energy points) ==")
            for s in stages:
                print(f"  {s:24s} {n / times[s]:>12,.0f} spectra/s  ({times[s]:8.2f} s; "
                      f"cpu {cpu[s]:6.2f} s)")
            print(f"  {'whole chain in-process':24s} {n / total:>12,.0f} spectra/s  ({total:8.2f} s; "
                  f"cpu {total_cpu:6.2f} s)")
            print(f"  fits ok {int(df['fit_ok'].sum()):,}/{n:,}; peak RSS so far {peak_rss_mb():,.0f} MB")
            if args.workers > 1:
                chunks = np.array_split(np.arange(n), args.workers)
                t = time.perf_counter()
                with ProcessPoolExecutor(args.workers) as pool:
                    parts = list(pool.map(_chain_worker, [(got.take(c), model, s02) for c in chunks]))
                tw = time.perf_counter() - t
                print(f"  {'chain, ' + str(args.workers) + ' processes':24s} {n / tw:>12,.0f} spectra/s  "
                      f"({tw:8.2f} s, includes process start-up and pickling)")
            del series, got, chi, fit

        # ---------------------------------------------- plain xraylarch loop
        n_ref = next((n for n in sizes if n >= args.larch_n), sizes[-1])
        ref = results[n_ref]
        idx = np.unique(np.linspace(0, n_ref - 1, min(args.larch_n, n_ref)).astype(int))
        print(f"\n== plain xraylarch loop on {len(idx)} spectra spread over the {n_ref:,}-spectrum series ==")
        ltimes, ldf = larch_loop(ref["series"].take(idx), model, s02, tmp, e0=ref["e0"])
        l_total = sum(ltimes.values())
        big = max(sizes)
        bt = results[big]["times"]
        print(f"  {'stage':24s} {'larch /s':>10s} {'fast /s':>12s} {'ratio':>8s}   (fast at {big:,})")
        for s in stages:
            lr = len(idx) / ltimes[s]
            fr = big / bt[s]
            print(f"  {s:24s} {lr:>10,.1f} {fr:>12,.0f} {fr / lr:>8,.0f}x")
        lr = len(idx) / l_total
        fr = big / results[big]["total"]
        print(f"  {'overall':24s} {lr:>10,.1f} {fr:>12,.0f} {fr / lr:>8,.0f}x")

        # ---------------------------------------------------- agreement
        fdf = ref["df"].iloc[idx].reset_index(drop=True)
        print(f"\n== agreement fast vs plain larch on those {len(idx)} spectra "
              "(|fast - larch| / larch error bar) ==")
        for lab in which["shells"]:
            pinned = fdf["fit_message"].str.contains(f"{lab} CN consistent with 0").to_numpy()
            for kind in ("cn", "r", "sigma2"):
                err = ldf[f"{kind}_{lab}_err"].to_numpy()
                d = np.abs(fdf[f"{kind}_{lab}"].to_numpy() - ldf[f"{kind}_{lab}"].to_numpy()) / err
                use = ~pinned & np.isfinite(d)
                if use.any():
                    print(f"  {kind + '_' + lab:14s} median {np.median(d[use]):6.3f}  max "
                          f"{np.max(d[use]):7.3f}  (n={use.sum()}; {pinned.sum()} steps where the "
                          "fast engine pinned the shell as absent are excluded)")
                else:
                    print(f"  {kind + '_' + lab:14s} all {pinned.sum()} steps pinned as absent by the "
                          "fast engine (plain feffit has no such rule)")
    print(f"\npeak RSS {peak_rss_mb():,.0f} MB (whole run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
