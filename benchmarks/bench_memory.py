"""Peak memory and throughput of ``operando.run`` on a large series streamed from HDF5.

Writes an N x 1,000-point operando HDF5 series (simulated Cu K potential series
with its foil reference channel, simulated block by block and appended, so the
writer never holds the series either), then runs the full pipeline on it --
calibration on the reference channel, normalisation, white line, background
removal and a two-shell fit with the fast engine, tracking, figures, report --
in a subprocess per worker count, and prints peak RSS and spectra/s.

    /work/venv/bin/python benchmarks/bench_memory.py                  # N = 100,000
    /work/venv/bin/python benchmarks/bench_memory.py --n 20000 --workers 1

Prints, never asserts.  See benchmarks/README.md.
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

warnings.filterwarnings("ignore")

N_ENERGY = 1000
CONFIG = """
[series]
source = "{source}"

[normalize]
e0 = "first"
calibrate = true

[foil]
s02 = 0.85

[exafs]
shells = ["Cu-N", "Cu-Cu"]
kmin = 3.0
kmax = 11.0
kweight = 2
rmin = 1.0
rmax = 3.0
engine = "fast"

[output]
dir = "{out}"
overwrite = true

[run]
chunk_size = {chunk_size}
workers = {workers}
"""


# ------------------------------------------------------------------ writing
def write_series(path: Path, n: int, block: int, seed: int) -> float:
    """Simulate ``n`` spectra in blocks of ``block`` and append them to ``path``.

    Each block is the Cu-N-C potential experiment scaled to ``block`` scans
    (so the condition sequence repeats every block), interpolated onto a
    uniform 1,000-point grid; steps, file names and times continue across
    blocks.  Returns the seconds taken.
    """
    import h5py
    import pandas as pd

    from operando import simulate

    t0 = time.perf_counter()
    spec = simulate.CU_NC_POTENTIAL
    parts = []
    with h5py.File(path, "w") as h5:
        energy = None
        for b, start in enumerate(range(0, n, block)):
            size = min(block, n - start)
            series, _ = simulate.simulate_series(spec.scaled(max(size, len(spec.segments))),
                                                 seed=seed + b)
            if energy is None:
                energy = np.linspace(series.energy[0], series.energy[-1], N_ENERGY)
                h5.attrs["format"] = "operando-series"
                h5.attrs["version"] = 1
                h5.attrs["element"] = series.element
                h5.attrs["edge"] = series.edge
                h5.attrs["metadata"] = json.dumps({"source": "bench_memory", "format": "simulated"})
                h5.create_dataset("energy", data=energy).attrs["units"] = "eV"
                for name in ("mu", "reference"):
                    h5.create_dataset(name, shape=(n, N_ENERGY), dtype="f8",
                                      chunks=(64, N_ENERGY))
            mu = np.array([np.interp(energy, series.energy, row) for row in series.mu[:size]])
            ref = np.array([np.interp(energy, series.energy, row)
                            for row in series.reference[:size]])
            h5["mu"][start:start + size] = mu
            h5["reference"][start:start + size] = ref
            cond = series.conditions.iloc[:size].copy()
            cond["step"] = np.arange(start, start + size)
            cond["file"] = [f"scan_{i:06d}" for i in range(start, start + size)]
            cond["time_s"] = cond["time_s"].to_numpy(dtype=float) + start * spec.scan_time_s
            parts.append(cond)
            del series, mu, ref
        conditions = pd.concat(parts, ignore_index=True)
        group = h5.create_group("conditions")
        group.attrs["columns"] = json.dumps([str(c) for c in conditions.columns])
        text = h5py.string_dtype("utf-8")
        for i, column in enumerate(conditions.columns):
            values = conditions[column]
            if values.dtype.kind in "biuf":
                ds = group.create_dataset(f"c{i:03d}", data=values.to_numpy())
                kind = values.dtype.str
            elif all(isinstance(v, str) for v in values):
                ds = group.create_dataset(f"c{i:03d}", data=list(values), dtype=text)
                kind = "str"
            else:
                ds = group.create_dataset(f"c{i:03d}", dtype=text, data=[
                    json.dumps(v.item() if isinstance(v, np.generic) else v) for v in values])
                kind = "json"
            ds.attrs["name"] = str(column)
            ds.attrs["kind"] = kind
    return time.perf_counter() - t0


# ------------------------------------------------------------------ running
def child(config_path: str) -> None:
    """Run the pipeline (in its own process) and print one JSON line."""
    from operando import run

    t0 = time.perf_counter()
    result = run(config_path, progress=False)
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "seconds": seconds, "n_steps": result.summary["n_steps"], "n_ok": result.n_ok,
        "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "notes": result.summary["notes"],
    }))


def _tree_rss_mb(pid: int) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def run_once(folder: Path, source: Path, workers: int, chunk_size: int) -> dict:
    out = folder / f"run_w{workers}"
    config = folder / f"run_w{workers}.toml"
    config.write_text(CONFIG.format(source=source, out=out, workers=workers,
                                    chunk_size=chunk_size))
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(config)],
                            stdout=subprocess.PIPE, text=True)
    peak_tree = 0.0
    stop = threading.Event()

    def sample():
        nonlocal peak_tree
        while not stop.is_set():
            peak_tree = max(peak_tree, _tree_rss_mb(proc.pid))
            stop.wait(0.5)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    stdout, _ = proc.communicate()
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"pipeline run failed (exit {proc.returncode})")
    info = json.loads(stdout.strip().splitlines()[-1])
    info["tree_peak_mb"] = peak_tree
    info["ru_children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    shutil.rmtree(out, ignore_errors=True)  # ~2 GB of checkpoints at N = 100,000
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="spectra (default 100,000)")
    parser.add_argument("--block", type=int, default=5_000, help="spectra simulated per block")
    parser.add_argument("--chunk-size", type=int, default=500, help="[run] chunk_size")
    parser.add_argument("--workers", default="1,2", help="worker counts to run, e.g. 1,2")
    parser.add_argument("--dir", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0

    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_memory_"))
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "series.h5"
    print(f"series: {args.n:,} spectra x {N_ENERGY} points (+ reference channel), "
          f"{2 * args.n * N_ENERGY * 8 / 2**30:.2f} GiB of mu + reference; folder {folder}")
    seconds = write_series(source, args.n, args.block, args.seed)
    print(f"  written in {seconds:.1f} s ({source.stat().st_size / 2**30:.2f} GiB); writer peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"pipeline: calibrate + normalise + white line + background + 2-shell fast fit + "
          f"tracking + figures + report; chunk_size {args.chunk_size}")
    print(f"{'workers':>7} {'seconds':>9} {'spectra/s':>10} {'ok':>8} {'main peak MB':>13} "
          f"{'largest proc MB':>16} {'tree peak MB':>13}")
    for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
        info = run_once(folder, source, workers, args.chunk_size)
        largest = max(info["self_maxrss_mb"], info["children_maxrss_mb"])
        print(f"{workers:>7} {info['seconds']:>9.1f} {info['n_steps'] / info['seconds']:>10.0f} "
              f"{info['n_ok']:>8} {info['self_maxrss_mb']:>13.0f} {largest:>16.0f} "
              f"{info['tree_peak_mb']:>13.0f}", flush=True)
        for note in info["notes"]:
            print(f"          note: {note}")
    print("main peak: ru_maxrss of the run process; largest proc: max over it and its workers "
          "(getrusage RUSAGE_CHILDREN); tree peak: sum over the process tree, sampled every 0.5 s")
    if not args.dir:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
