"""Throughput of operando.components LCF against a larch.math.lincombo_fit loop (prints only).

    PYTHONPATH=. python benchmarks/bench_components.py [--n 10000] [--larch-n 200]

1. Batched LCF: N mixtures of 2, 3, 4 real Fe K references (foil, FeO, Fe2O3, Fe3O4 from
   ../shared/data/references; 0.3 % noise in normalised units), fit range -20..+80 eV,
   weights in [0, 1] summing to one, no shifts, on one core (BLAS limited to one thread).
   Timed: the whole ``lcf()`` call (references read and normalised once per call) and the
   kernel alone (``_linear.fit_linear`` on the prepared arrays).
2. The same fits with ``larch.math.lincombo_fit`` in a loop over ``--larch-n`` spectra
   (same arrays and bounds), and the ratio.
3. Combinatorial LCF on whole series: the N-step Fe series with 4 references (up to 3 per
   combination) and the real Au L3 series (8 steps, 9 standards, up to 3).
4. LCF with an energy shift per reference (per-spectrum variable projection), 50 spectra.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import operando as op  # noqa: E402
from operando.components import _linear, lcf, lcf_combinations  # noqa: E402
from operando.components.lcf import prepare  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
FE = ["fe_foil_rt_2016foils.xdi", "feo_rt_01.xdi", "fe2o3_rt_01.xdi", "fe3o4_rt_01.xdi"]


def mixtures(k: int, n: int, seed: int = 0):
    from _components_data import mixture_series

    fr = np.random.default_rng(seed).dirichlet(np.ones(k), size=n)
    return mixture_series(FE[:k], fr, seed=seed, raw_noise=False), fr


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def larch_loop(nz, result, n_larch):
    from larch import Group
    from larch.math import lincombo_fit

    k = len(result.names)
    comps = [Group(energy=nz.energy, norm=result._basis[j], filename=name)
             for j, name in enumerate(result.names)]
    t = time.perf_counter()
    worst = 0.0
    for i in range(n_larch):
        out = lincombo_fit(Group(energy=nz.energy, norm=nz.norm[i]), comps, minvals=[0] * k,
                           maxvals=[1] * k, xmin=result.xmin[i], xmax=result.xmax[i],
                           sum_to_one=True)
        w = np.array([out.weights[name] for name in result.names])
        worst = max(worst, float(np.abs(w - result.weights[i]).max()))
    return (time.perf_counter() - t) / n_larch, worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="spectra per batched fit")
    parser.add_argument("--larch-n", type=int, default=200, help="lincombo_fit calls timed")
    args = parser.parse_args()
    if not (DATA / "references").is_dir():
        print(f"real references not found at {DATA}; nothing to benchmark")
        return
    warnings.simplefilter("ignore", op.OperandoWarning)
    import larch.math  # noqa: F401  - import cost outside the timings

    refs_dir = DATA / "references"
    print(f"operando.components LCF, {args.n:,} spectra, one core (BLAS 1 thread)")
    print(f"{'refs':>4} {'lcf() s':>9} {'spectra/s':>11} {'kernel s':>9} {'kernel/s':>11} "
          f"{'larch s/call':>13} {'ratio lcf()':>12} {'max |dw| vs larch':>18}")
    with threadpool_limits(1):
        for k in (2, 3, 4):
            nz, fr = mixtures(k, args.n, seed=k)
            refs = [str(refs_dir / f) for f in FE[:k]]
            t_all, res = best_of(lambda: lcf(nz, refs))
            prep = prepare(nz, refs, erange=(-20, 80), space="norm", standard_e0="series",
                           steps=None, margin=0.0)
            group, i0, i1, A, Y = next(prep.blocks())
            t_kernel, _ = best_of(lambda: _linear.fit_linear(Y, A, lower=0.0, upper=1.0,
                                                             sum_to_one=True))
            t_larch, worst = larch_loop(nz, res, args.larch_n)
            print(f"{k:>4} {t_all:9.3f} {args.n / t_all:11,.0f} {t_kernel:9.4f} "
                  f"{args.n / t_kernel:11,.0f} {t_larch:13.5f} "
                  f"{t_larch * args.n / t_all:11,.0f}x {worst:18.2e}")
            print(f"       recovered fractions: max |w - truth| = "
                  f"{np.abs(res.weights - fr).max():.4f} (noise 0.3 %)")

        print("\ncombinatorial LCF (every combination up to 3 references, batched over steps)")
        nz, _ = mixtures(4, min(args.n, 1000), seed=9)
        refs = [str(refs_dir / f) for f in FE]
        t, c = best_of(lambda: lcf_combinations(nz, refs, max_components=3), repeat=1)
        print(f"  Fe series: {len(nz):,} steps x {len(c.combinations)} combinations of 4 "
              f"references: {t:.2f} s ({len(nz) * len(c.combinations) / t:,.0f} fits/s)")
        au_prj = DATA / "series" / "au_l3_cyanobacteria.prj"
        if au_prj.is_file():
            from _components_data import AU_STANDARDS, au_group_series, au_normalized

            anz = au_normalized()
            std = {name: au_group_series(name) for name in AU_STANDARDS}
            t, c = best_of(lambda: lcf_combinations(anz, std, max_components=3), repeat=1)
            print(f"  Au L3 series: {len(anz)} steps x {len(c.combinations)} combinations of "
                  f"9 standards: {t:.2f} s (mostly reading/normalising the 9 standards)")
            print("  selected per step: " + ", ".join(
                f"{s}:{c.label(i)}" for s, i in zip(c.steps, c.selected)))

        print("\nLCF with a bounded energy shift per reference (variable projection, per spectrum)")
        nz, _ = mixtures(3, 50, seed=5)
        refs = [str(refs_dir / f) for f in FE[:3]]
        t, _ = best_of(lambda: lcf(nz, refs, shifts=True), repeat=1)
        print(f"  50 spectra x 3 references: {t:.2f} s ({50 / t:,.0f} spectra/s)")


if __name__ == "__main__":
    pd.set_option("display.width", 120)
    main()
