"""``operando run`` end to end on a long series mixed from REAL spectra, vs a plain xraylarch loop.

Run ``python benchmarks/bench_real.py --help``; see benchmarks/README.md.  Prints, never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cli import bytecode_note  # noqa: E402

#: A Cu electrode's potential program (V vs RHE): CuO down to 0.0 V, metal from -0.2 V,
#: all oxide again at open circuit; 10 conditions x 3 repeat scans = 30 spectra per cycle.
PROGRAM = pd.DataFrame({
    "potential_V": pd.Series([0.4, 0.2, 0.0, -0.2, -0.4, -0.6, -0.8, -1.0, -1.2, "OCP"],
                             dtype=object),
    "frac_cu_foil": [0.0, 0.0, 0.0, 0.1, 0.25, 0.4, 0.6, 0.8, 0.9, 0.0],
})
REPEATS = 3
#: Stages that run after the chunks (summary.json ``timings``).
AFTER_CHUNKS = ("tables", "components", "tracking", "wavelet", "outputs", "figures", "athena",
                "report")
CONFIG = """# written by benchmarks/bench_real.py
[series]
source = "{source}"
{extra}
element = "Cu"
edge = "K"

[normalize]
e0 = "first"
norm1 = 150.0
norm2 = 600.0

[foil]
file = "{refs}/cu_foil_rt.xdi"
shell = "Cu-Cu"
cn = 12

[exafs]
shells = ["Cu-O", "Cu-Cu"]
kmin = 3.0
kmax = 12.0
rmin = 1.0
rmax = 3.0

[components]
standards = {{ cu_foil = "{refs}/cu_foil_rt.xdi", cuo = "{refs}/cuo_tenorite_13K.xdi" }}

[output]
dir = "{out}"
{output}
[run]
workers = {workers}
"""


# ------------------------------------------------------------------ inputs
def make_series(n: int, seed: int, block: int = 6_000):
    """Real Cu foil + CuO mixed along ``PROGRAM`` (cycles until ``n`` spectra), the
    QEXAFS noise of the real Ru scan, 0.2 eV energy jitter, a reference channel (the foil
    through the same shift).  Built in blocks of whole cycles (seeds ``seed + b``)."""
    from operando import mixtures
    from operando.series import Series

    refs = mixtures.load_references(["cu_foil", "cuo"])
    per_cycle = len(PROGRAM) * REPEATS
    cycles = -(-n // per_cycle)
    mus, references, conds, truths = [], [], [], []
    per_block = max(1, block // per_cycle)
    for b, c0 in enumerate(range(0, cycles, per_block)):
        nc = min(per_block, cycles - c0)
        program = pd.concat([PROGRAM] * nc, ignore_index=True)
        series, truth = mixtures.mix_series(
            refs, np.column_stack([program["frac_cu_foil"], 1 - program["frac_cu_foil"]]),
            conditions=program[["potential_V"]], repeats=REPEATS, noise="qexafs",
            energy_jitter=0.2, seed=seed + b)
        mus.append(series.mu)
        references.append(series.reference)
        conds.append(series.conditions)
        truths.append(truth)
        energy, first = series.energy, series
    offset = np.cumsum([0] + [len(c) for c in conds[:-1]])
    conditions = pd.concat([c.assign(step=c["step"] + o) for c, o in zip(conds, offset)],
                           ignore_index=True).iloc[:n]
    conditions["file"] = [f"scan_{i:06d}" for i in range(len(conditions))]
    conditions["time_s"] = 30.0 * np.arange(len(conditions))
    truth = pd.concat([t.assign(step=t["step"] + o) for t, o in zip(truths, offset)],
                      ignore_index=True).iloc[:n]
    series = Series(energy=energy, mu=np.concatenate(mus)[:n],
                    reference=np.concatenate(references)[:n],
                    conditions=conditions.reset_index(drop=True), element=first.element,
                    edge=first.edge, metadata=dict(first.metadata))
    return series, truth


def write_text(folder: Path, series) -> dict:
    """A matrix file (energy + one mu column per spectrum), a reference matrix file and
    conditions.csv keyed by step."""
    for name, arr, prefix in (("series.dat", series.mu, "mu"),
                              ("reference.dat", series.reference, "ref")):
        header = "energy " + " ".join(f"{prefix}_{i:06d}" for i in range(len(series)))
        np.savetxt(folder / name, np.column_stack([series.energy, arr.T]),
                   fmt=["%.4f"] + ["%.7f"] * len(series), header=header, comments="# ")
    series.conditions[["step", "potential_V", "time_s"]].to_csv(folder / "conditions.csv",
                                                                index=False)
    return {"source": folder / "series.dat",
            "extra": f'conditions = "{folder / "conditions.csv"}"\nreference = '
                     f'"{folder / "reference.dat"}"'}


def write_h5(folder: Path, series) -> dict:
    from operando.io import write_hdf5

    return {"source": write_hdf5(series, folder / "series.h5"), "extra": ""}


# ------------------------------------------------------------------ running
def _tree_rss_mb(pid: int) -> tuple[float, float]:
    """(sum, largest) RSS of a process and its children, MB."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0.0, 0.0
    sizes = []
    for p in procs:
        try:
            sizes.append(p.memory_info().rss / 2**20)
        except psutil.Error:
            pass
    return sum(sizes), max(sizes, default=0.0)


def run_command(config: Path, extra=()) -> dict:
    """``operando run`` in a subprocess: wall time, peak memory (sampled every 0.5 s)."""
    script = Path(sys.executable).parent / "operando"
    head = [str(script)] if script.exists() else [
        sys.executable, "-c", "import sys; from operando.cli import main; sys.exit(main())"]
    cmd = head + ["run", str(config), "--overwrite", "--no-progress", *extra]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=config.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = {"tree": 0.0, "largest": 0.0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            tree, largest = _tree_rss_mb(proc.pid)
            peak["tree"], peak["largest"] = max(peak["tree"], tree), max(peak["largest"], largest)
            stop.wait(0.5)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"operando run failed (exit {proc.returncode}): {err[-2000:]}")
    return {"wall": wall, "peak_tree_mb": peak["tree"], "peak_largest_mb": peak["largest"],
            "maxrss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def report_run(label: str, n: int, info: dict, run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    timings = summary.get("timings", {})
    steps = pd.read_csv(run_dir / "steps.csv", usecols=["step"])
    after = sum(v for k, v in timings.items() if k in AFTER_CHUNKS)
    print(f"\n{label}: {n:,} spectra in {info['wall']:.1f} s wall -> {n / info['wall']:,.0f} "
          f"spectra/s; steps.csv rows {len(steps):,}; segments {summary.get('n_segments')}; "
          f"events {summary.get('n_events')}; fits {summary.get('fits')}")
    print(f"  peak memory: largest process {info['peak_largest_mb']:,.0f} MB, process tree "
          f"{info['peak_tree_mb']:,.0f} MB (sampled every 0.5 s); ru_maxrss of the children "
          f"so far {info['maxrss_children_mb']:,.0f} MB")
    print("  seconds per stage (summary.json timings):")
    for k, v in timings.items():
        share = f"{100 * v / info['wall']:5.1f} %" if info["wall"] else ""
        print(f"    {k:12s} {v:8.2f} s  {share}")
    print(f"  after the chunks: {after:.2f} s = {100 * after / info['wall']:.1f} % of the wall time")
    return summary


def larch_rate(series, run_dir: Path, n: int) -> float:
    """Spectra/s of the plain xraylarch loop (bench_exafs.larch_loop: pre_edge, autobk, one
    two-path feffit) on ``n`` spectra of the series, with the run's S0^2 and E0."""
    from bench_exafs import larch_loop

    settings = json.loads((run_dir / "settings.json").read_text())["resolved"]
    e0 = float(pd.read_csv(run_dir / "steps.csv", usecols=["e0"], nrows=1)["e0"].iloc[0])
    idx = np.unique(np.linspace(0, len(series) - 1, n).astype(int))
    dt, _ = larch_loop(series.take(idx), float(settings["s02"]), e0)
    return len(idx) / dt


def inputs_folder(folder, prefix: str):
    """``(references folder, working folder)``: the real spectra beside the project
    (``../shared/data/references``; None, said, if missing) and ``folder`` or a new one."""
    refs = Path(__file__).resolve().parents[2] / "shared" / "data" / "references"
    if not refs.is_dir():
        print(f"real references not found in {refs}")
        return None, None
    folder = folder or Path(tempfile.mkdtemp(prefix=prefix))
    folder.mkdir(parents=True, exist_ok=True)
    return refs, folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=9_900, help="spectra (default 9,900: 330 cycles)")
    ap.add_argument("--inputs", default="text,hdf5", help="text and/or hdf5 (default both)")
    ap.add_argument("--workers", type=int, default=2, help="[run] workers (default 2)")
    ap.add_argument("--larch-n", type=int, default=20, help="spectra in the xraylarch loop")
    ap.add_argument("--full", action="store_true",
                    help="100,000 spectra from HDF5 only, default outputs (no larch loop)")
    ap.add_argument("--dir", type=Path, default=None, help="working folder (kept)")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    if args.full:
        args.n, args.inputs, args.larch_n = 100_000, "hdf5", 0
    refs, folder = inputs_folder(args.dir, "bench_real_")
    if refs is None:
        return 1
    print(bytecode_note())
    print(f"operando run on a real-derived series: Cu foil + CuO (real spectra, "
          f"{refs}), {len(PROGRAM)} potentials x {REPEATS} repeats per cycle; two-shell "
          f"Cu-O + Cu-Cu fits against the real foil, LCF, default outputs; workers "
          f"{args.workers}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
    t = time.perf_counter()
    series, _ = make_series(args.n, args.seed)
    print(f"  {len(series):,} spectra x {series.energy.size} points mixed in "
          f"{time.perf_counter() - t:.1f} s (not counted)")
    summaries = {}
    for kind in [k.strip() for k in args.inputs.split(",") if k.strip()]:
        sub = folder / kind
        sub.mkdir(exist_ok=True)
        t = time.perf_counter()
        inp = (write_text if kind == "text" else write_h5)(sub, series)
        size = Path(inp["source"]).stat().st_size / 1e6
        print(f"  {kind}: {inp['source']} ({size:,.0f} MB) written in "
              f"{time.perf_counter() - t:.1f} s")
        config = sub / "run.toml"
        config.write_text(CONFIG.format(source=inp["source"], extra=inp["extra"], refs=refs,
                                        out=sub / "run", workers=args.workers, output=""))
        info = run_command(config)
        summaries[kind] = (info, report_run(f"{kind} input", len(series), info, sub / "run"))
    if args.larch_n:
        kind = next(iter(summaries))
        rate = larch_rate(series, folder / kind / "run", args.larch_n)
        print(f"\nplain xraylarch loop (pre_edge + autobk + two-path feffit) on {args.larch_n} "
              f"spectra: {rate:.2f} spectra/s (imports not counted)")
        for kind, (info, _) in summaries.items():
            print(f"  ratio operando run ({kind}) / xraylarch loop: "
                  f"{len(series) / info['wall'] / rate:,.0f}x")
    print(f"load average at the end: {os.getloadavg()}")
    if args.dir is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
