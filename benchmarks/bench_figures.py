"""CPU time of drawing each of a run's figures, in one process.

Two steps, so that code changes to the figures are timed on the same inputs:

``python benchmarks/bench_figures.py capture RUN.toml figures.pkl``
    runs ``operando run RUN.toml --overwrite`` and keeps the run's figure list
    (``(name, make)`` pairs, as ``pipeline.figures.figure_list`` builds them) in
    ``figures.pkl``.  For the 9,900-spectrum real-derived series, make RUN.toml with
    ``benchmarks/bench_real.py --n 9900 --inputs hdf5 --dir DIR`` (DIR/hdf5/run.toml).

``python benchmarks/bench_figures.py time figures.pkl [--repeat 3] [--profile N] [--only NAME ...]``
    draws every figure with ``pipeline.figures.render`` (PNG at the run's dpi) and
    prints the CPU time (``time.process_time``, best of ``--repeat``) and file size
    of each; ``--profile N`` prints the N heaviest functions of one more pass.

CPU time, not wall time: the machine is shared.  Prints, never asserts.
"""

from __future__ import annotations

import argparse
import cProfile
import pickle
import pstats
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def capture(toml: str, out: str) -> None:
    """Run ``toml`` and keep the figure list the run drew."""
    from operando import cli
    from operando.pipeline import outputs

    kept = []
    submit = outputs.submit_figures

    def keep(figures, formats, executor=None):
        kept.extend(figures)
        return submit(figures, formats, executor)

    outputs.submit_figures = keep
    code = cli.main(["run", toml, "--overwrite"])
    if code:
        sys.exit(f"bench_figures: operando run {toml} failed ({code})")
    Path(out).write_bytes(pickle.dumps(kept))
    print(f"{len(kept)} figures kept in {out}: {', '.join(name for name, _ in kept)}")


def time_figures(path: str, repeat: int, profile: int, only: list[str] | None = None) -> None:
    """CPU seconds and PNG size of each figure of ``path`` (a :func:`capture` file), or
    of the figures named in ``only``."""
    from operando.pipeline.figures import DEFAULT_DPI, PLOT_DPI, render

    figures = pickle.loads(Path(path).read_bytes())
    figures = [(name, make) for name, make in figures if not only or name in only]
    render(figures[0][1], ("png",), 50)  # warm up: imports, font cache
    total_cpu = total_size = 0.0
    print(f"{'figure':<18}{'CPU s':>8}{'PNG kB':>9}")
    for name, make in figures:
        dpi = PLOT_DPI.get(name, DEFAULT_DPI)
        best, size = float("inf"), 0
        for _ in range(repeat):
            start = time.process_time()
            size = len(render(make, ("png",), dpi)["png"])
            best = min(best, time.process_time() - start)
        total_cpu += best
        total_size += size
        print(f"{name:<18}{best:8.3f}{size / 1e3:9.1f}")
    print(f"{'total':<18}{total_cpu:8.3f}{total_size / 1e3:9.1f}")
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        for name, make in figures:
            render(make, ("png",), PLOT_DPI.get(name, DEFAULT_DPI))
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    cap = sub.add_parser("capture", help="run a config and keep its figure list")
    cap.add_argument("toml")
    cap.add_argument("out")
    tim = sub.add_parser("time", help="CPU time of drawing each kept figure")
    tim.add_argument("figures")
    tim.add_argument("--repeat", type=int, default=3)
    tim.add_argument("--profile", type=int, default=0, help="print the N heaviest functions")
    tim.add_argument("--only", nargs="*", help="time only these figures")
    args = parser.parse_args()
    if args.cmd == "capture":
        capture(args.toml, args.out)
    else:
        time_figures(args.figures, args.repeat, args.profile, args.only)


if __name__ == "__main__":
    main()
