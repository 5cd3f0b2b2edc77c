"""End-to-end throughput of ``operando run`` (process start-up included) vs a plain xraylarch loop.

Run ``python benchmarks/bench_cli.py --help``; see benchmarks/README.md.  Prints, never asserts.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Fit settings (the Cu sample series' recommended settings, as bench_series.py).
EXAFS = dict(shells=["Cu-N", "Cu-Cu"], kmin=3.0, kmax=12.0, kweight=2, dk=1.0,
             window="hanning", rmin=1.0, rmax=3.2, rbkg=1.0)


# ------------------------------------------------------------------ inputs
def write_inputs(folder: Path, n: int, seed: int) -> dict:
    """Matrix file + reference matrix file + conditions (keyed by step) + foil + TOML."""
    from operando import simulate
    from operando.simulate.samples import _i0, _write_xdi

    spec = simulate.CU_NC_POTENTIAL.scaled(n)
    series, truth = simulate.simulate_series(spec, seed=seed, reference=True)
    for name, arr, prefix in (("series.dat", series.mu, "mu"),
                              ("reference.dat", series.reference, "ref")):
        header = "energy " + " ".join(f"{prefix}_{i:05d}" for i in range(len(series)))
        np.savetxt(folder / name, np.column_stack([series.energy, arr.T]),
                   fmt=["%.4f"] + ["%.7f"] * len(series), header=header, comments="# ")
    truth[["step", "potential_V", "time_s"]].to_csv(folder / "conditions.csv", index=False)
    foil, _ = simulate.simulate_foil(spec, seed=seed)
    i0 = _i0(foil.energy, spec.e0_tabulated, 1.0)
    _write_xdi(folder / "cu_foil.xdi", spec, foil.energy, {"i0": i0, "itrans": i0 * np.exp(-foil.mu[0])},
               {"Sample.name": "Cu foil (simulated)"}, ["bench_cli foil"])
    shells = ", ".join(f'"{s}"' for s in EXAFS["shells"])
    exafs = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in EXAFS.items() if k != "shells")
    (folder / "run.toml").write_text(f"""# written by benchmarks/bench_cli.py
[series]
source = "series.dat"
conditions = "conditions.csv"
element = "Cu"
edge = "K"
reference = "reference.dat"

[normalize]
e0 = "first"

[foil]
file = "cu_foil.xdi"
shell = "Cu-Cu"
cn = 12

[exafs]
shells = [{shells}]
{exafs}

[output]
dir = "run"
""")
    return dict(series=series, truth=truth, config=folder / "run.toml", run_dir=folder / "run")


def operando_command(config: Path, extra=()) -> list[str]:
    script = Path(sys.executable).parent / "operando"
    head = [str(script)] if script.exists() else [
        sys.executable, "-c", "import sys; from operando.cli import main; sys.exit(main())"]
    return head + ["run", str(config), "--overwrite", *extra]


# --------------------------------------------------------------- breakdown
def import_summary(stderr: str, top: int = 12) -> tuple[float, list[tuple[float, str]]]:
    """(total s, [(s, package)]) from ``-X importtime`` output: cumulative time of the
    first-level imports (those the program itself triggered), grouped by top package."""
    per_pkg: dict[str, float] = {}
    total = 0.0
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)", line)
        if not m or len(m.group(3)) != 1:   # one space: a top-level import
            continue
        cum = int(m.group(2)) / 1e6
        pkg = m.group(4).split(".")[0]
        per_pkg[pkg] = per_pkg.get(pkg, 0.0) + cum
        total += cum
    ranked = sorted(((v, k) for k, v in per_pkg.items()), reverse=True)[:top]
    return total, ranked


def profile_groups(prof_file: Path, top: int = 14):
    """Own time per area (package / operando module) and the top cumulative functions."""
    st = pstats.Stats(str(prof_file))
    groups: dict[str, float] = {}
    for (fname, _line, _func), (_cc, _nc, tt, _ct, _callers) in st.stats.items():
        f = fname.replace("\\", "/")
        if "/operando/" in f and "site-packages" not in f:
            key = "operando." + Path(f).stem
        elif "site-packages/" in f:
            key = f.split("site-packages/")[1].split("/")[0].split(".")[0]
        elif f.startswith("<") or "/lib/python" in f:
            key = "python (stdlib, import machinery, builtins)"
        else:
            key = Path(f).name
        groups[key] = groups.get(key, 0.0) + tt
    total = sum(groups.values())
    ranked = sorted(((v, k) for k, v in groups.items()), reverse=True)[:top]
    funcs = sorted(((v[3], k) for k, v in st.stats.items()), reverse=True)
    shown = []
    for ct, (fname, line, func) in funcs:
        if "/operando/" in fname and "site-packages" not in fname:
            shown.append((ct, f"operando/{Path(fname).name}:{line} {func}"))
        if len(shown) >= top:
            break
    return total, ranked, shown


def stage_timings(run_dir: Path) -> dict:
    """Every ``seconds``/``*_seconds``/``timings`` entry the pipeline recorded."""
    found = {}

    def walk(obj, path):
        if isinstance(obj, dict):
            for k, v in obj.items():
                p = f"{path}.{k}" if path else k
                if isinstance(v, (int, float)) and ("second" in k or k in ("elapsed", "time_s_total")):
                    found[p] = float(v)
                elif isinstance(v, (dict, list)):
                    walk(v, p)
        elif isinstance(obj, list):
            for i, v in enumerate(obj[:50]):
                walk(v, f"{path}[{i}]")

    for name in ("summary.json", "settings.json"):
        f = run_dir / name
        if f.exists():
            try:
                walk(json.loads(f.read_text()), name)
            except ValueError:
                pass
    return found


# -------------------------------------------------------------------- main
def bytecode_note() -> str:
    """Compile operando's bytecode (what a package's first import, or a wheel install, does).

    An editable install ships no ``.pyc`` files; with ``PYTHONDONTWRITEBYTECODE`` set
    (as on our build machines) Python then compiles ~14,000 lines of operando on
    every start (~0.12 s), which no installed package pays.  ``compileall`` writes
    the cache regardless of that variable, and Python reads it regardless.
    """
    import compileall
    import importlib.util

    pkg = Path(importlib.util.find_spec("operando").origin).parent
    compileall.compile_dir(pkg, quiet=1)
    flag = os.environ.get("PYTHONDONTWRITEBYTECODE")
    return (f"bytecode: compiled {pkg} with compileall (PYTHONDONTWRITEBYTECODE="
            f"{flag or 'unset'}; as after a first import or a wheel install)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="spectra in the matrix file (default 1000)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs (default 3)")
    ap.add_argument("--workers", type=int, default=None,
                    help="pass --workers N to operando run (default: the config default)")
    ap.add_argument("--larch-n", type=int, default=10,
                    help="spectra in the plain xraylarch loop (default 10)")
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfile breakdown run")
    ap.add_argument("--keep", type=Path, default=None, help="write the inputs here and keep them")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    extra = [] if args.workers is None else ["--workers", str(args.workers)]

    tmpdir = None
    if args.keep is None:
        tmpdir = tempfile.TemporaryDirectory()
        folder = Path(tmpdir.name)
    else:
        folder = args.keep
        folder.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        inp = write_inputs(folder, args.n, args.seed)
        n = len(inp["series"])
        size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6
        print(f"operando run end-to-end benchmark: {n:,} spectra x {inp['series'].mu.shape[1]} "
              f"points, matrix file + reference matrix file + foil, two shells {EXAFS['shells']}; "
              f"inputs {size:.1f} MB written in {time.perf_counter() - t:.1f} s to {folder}; "
              f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}")
        cmd = operando_command(inp["config"], extra)
        print("command:", " ".join(cmd))
        print(bytecode_note())

        # ---------------------------------------------------- timed runs
        walls = []
        for i in range(args.repeats):
            t = time.perf_counter()
            proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                print(f"  run {i + 1}: FAILED (exit {proc.returncode})\n{proc.stderr[-3000:]}")
                return 1
            walls.append(wall)
            print(f"  run {i + 1}: {wall:6.2f} s wall  -> {n / wall:8,.0f} spectra/s")
        best, med = min(walls), statistics.median(walls)
        print(f"  operando run: median {n / med:,.0f} spectra/s ({med:.2f} s), "
              f"best {n / best:,.0f} spectra/s ({best:.2f} s)")

        # ---------------------------------------------------- where the time goes
        t = time.perf_counter()
        bare = subprocess.run([sys.executable, "-c", "pass"], capture_output=True)
        t_python = time.perf_counter() - t
        env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import operando.cli"],
                              capture_output=True, text=True, env=env)
        t_cli_import = time.perf_counter() - t
        total_cli, _ = import_summary(proc.stderr)
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env)
        total_run, ranked = import_summary(proc.stderr)
        print(f"\n== where the time goes (one more run of each) ==")
        print(f"  bare python start-up                {t_python:6.2f} s")
        print(f"  `import operando.cli` process       {t_cli_import:6.2f} s  (imports {total_cli:.2f} s)")
        print(f"  imports during a whole `operando run` (all processes, -X importtime): {total_run:.2f} s")
        for sec, pkg in ranked:
            print(f"      {pkg:28s} {sec:6.2f} s")
        timings = stage_timings(inp["run_dir"])
        if timings:
            print("  timings recorded by the pipeline (summary.json / settings.json):")
            for k, v in timings.items():
                print(f"      {k:60s} {v:8.3f} s")
        else:
            print("  (the pipeline records no stage timings in summary.json / settings.json)")
        if not args.no_profile:
            prof = folder / "run.prof"
            prof.unlink(missing_ok=True)
            driver = folder / "profile_main.py"
            driver.write_text("import sys\nfrom operando.cli import main\n"
                              "sys.exit(main(sys.argv[1:]))\n")
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), str(driver),
                                   "run", str(inp["config"]), "--overwrite", *extra],
                                  cwd=folder, capture_output=True, text=True)
            if proc.returncode == 0 and prof.exists():
                total, groups, funcs = profile_groups(prof)
                print(f"  cProfile of the main process ({time.perf_counter() - t:.2f} s wall with "
                      f"profiling; {total:.2f} s own time; worker and figure processes "
                      "not included):")
                print("    own time by area:")
                for sec, key in groups:
                    print(f"      {key:44s} {sec:6.2f} s")
                print("    operando functions by cumulative time:")
                for sec, name in funcs:
                    print(f"      {sec:6.2f} s  {name}")
            else:
                print(f"  (cProfile run failed: {proc.stderr[-500:]})")

        # ---------------------------------------------------- plain larch loop
        from bench_series import larch_loop

        from operando import exafs, xanes

        series = inp["series"]
        norm = xanes.normalize(series, e0="first")
        settings = {}
        f = inp["run_dir"] / "settings.json"
        if f.exists():
            settings = json.loads(f.read_text())
        s02 = _find_key(settings, "s02")
        if not isinstance(s02, (int, float)):
            foil_chi = exafs.remove_background(xanes.normalize(
                __import__("operando").read_series(folder / "cu_foil.xdi", element="Cu", edge="K",
                                                   reference=False), e0="each"), rbkg=EXAFS["rbkg"])
            s02 = exafs.calibrate_s02(foil_chi, shell="Cu-Cu", cn=12, kmin=EXAFS["kmin"],
                                      kmax=EXAFS["kmax"]).s02
        model = exafs.ShellModel(shells=EXAFS["shells"],
                                 **{k: v for k, v in EXAFS.items() if k not in ("shells", "rbkg")})
        idx = np.unique(np.linspace(0, n - 1, min(args.larch_n, n)).astype(int))
        ldir = folder / "larch"
        ldir.mkdir(exist_ok=True)
        t = time.perf_counter()
        ltimes, _ = larch_loop(series.take(idx), model, float(s02), ldir,
                               e0=norm.settings.get("e0_value"))
        l_wall = time.perf_counter() - t
        l_rate = len(idx) / sum(ltimes.values())
        print(f"\n== plain xraylarch loop on {len(idx)} of the spectra (read_ascii, pre_edge, autobk, "
              f"xftf, feffit; imports excluded) ==")
        print(f"  larch: {l_rate:.2f} spectra/s ({l_wall:.1f} s)")
        print(f"  operando run (start-up included) / larch loop: median {n / med / l_rate:,.0f}x, "
              f"best {n / best / l_rate:,.0f}x")
    finally:
        if tmpdir is not None:
            tmpdir.cleanup()
    return 0


def _find_key(obj, key):
    if isinstance(obj, dict):
        if key in obj and isinstance(obj[key], (int, float)):
            return obj[key]
        for v in obj.values():
            got = _find_key(v, key)
            if got is not None:
                return got
    return None


if __name__ == "__main__":
    raise SystemExit(main())
