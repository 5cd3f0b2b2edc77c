"""CPU of the chunks of ``operando run`` on bench_real.py's real-derived series, one process,
split into the shell fits' LM iterations and everything else.

Run ``python benchmarks/bench_chunk_cpu.py --help``; see benchmarks/README.md.  Prints, never
asserts.  Compare two versions of the code by running it with each on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_real import CONFIG, inputs_folder, make_series, write_h5  # noqa: E402


def instrument(reps: int) -> dict:
    """Wrap the run's chunk analysis (each chunk ``reps`` times, the fastest kept) and the
    fast engine's ``batch_fit`` calls; returns the totals it fills (CPU seconds)."""
    import operando.exafs.batch.evaluate as evaluate
    import operando.exafs.engines.fast_passes as passes
    import operando.pipeline.chunks as chunks

    lap = {"fit": 0.0, "setup": 0.0}
    total = {"chunks": 0.0, "lm": 0.0, "setup": 0.0, "n": 0}

    def timed(fn, key):
        def run(*args, **kwargs):
            t = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                lap[key] += time.process_time() - t
        return run

    analyse = chunks.process_chunk

    def chunk(task):
        best = None
        for _ in range(reps):
            lap["fit"] = lap["setup"] = 0.0
            t = time.process_time()
            out = analyse(task)
            cpu = time.process_time() - t
            if best is None or cpu < best[0]:
                best = (cpu, lap["fit"] - lap["setup"], lap["setup"])
        for key, value in zip(("chunks", "lm", "setup"), best):
            total[key] += value
        total["n"] += 1
        return out

    chunks.process_chunk = chunk
    passes.batch_fit = timed(passes.batch_fit, "fit")
    evaluate.BatchModel.__init__ = timed(evaluate.BatchModel.__init__, "setup")
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=9_900, help="spectra (default 9,900)")
    ap.add_argument("--reps", type=int, default=3, help="analyses of each chunk (default 3)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--dir", type=Path, default=None, help="working folder (kept)")
    args = ap.parse_args(argv)
    refs, folder = inputs_folder(args.dir, "bench_chunk_cpu_")
    if refs is None:
        return 1
    series, _ = make_series(args.n, args.seed)
    inp = write_h5(folder, series)
    config = folder / "run.toml"
    config.write_text(CONFIG.format(source=inp["source"], extra=inp["extra"], refs=refs,
                                    out=folder / "run", workers=1, output=""))
    total = instrument(args.reps)
    from operando.cli import main as operando_main

    load = os.getloadavg()[0]
    operando_main(["run", str(config), "--overwrite", "--no-progress"])
    rest = total["chunks"] - total["lm"]
    print(f"chunks of operando run, {len(series):,} real-derived spectra ({total['n']} chunks, "
          f"one process, each chunk's fastest of {args.reps}; load {load:.1f} -> "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs), CPU seconds:")
    print(f"  chunks        {total['chunks']:7.2f}")
    print(f"  LM iterations {total['lm']:7.2f}   (batch_fit minus its set-up)")
    print(f"  the rest      {rest:7.2f}   (normalise, background, passes and rows, LCF, "
          f"checkpoint; fit set-up {total['setup']:.2f})")
    print(f"  output: {folder / 'run'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
