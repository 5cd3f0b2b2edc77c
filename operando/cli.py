"""Command line: ``operando run CONFIG.toml``, ``operando watch CONFIG.toml``,
``operando demo``, ``operando --version``.

A thin shell over :func:`operando.pipeline.run`.  Exit codes (for pipelines):

* 0 -- the run completed (failed *steps* are counted in the summary, not errors);
* 2 -- a user-caused problem (bad config, unreadable input, output folder in
  use): one line on stderr, never a traceback;
* 130 / 143 -- interrupted by Ctrl-C / SIGTERM; finished chunks are kept and
  ``--resume`` continues.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import warnings
import threading
import time
from pathlib import Path

from . import __version__
from .errors import ConfigError, OperandoError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_USER_ERROR, EXIT_SIGINT, EXIT_SIGTERM = 0, 2, 130, 143
#: How long ``--scheduler ADDRESS`` waits for the dask scheduler to answer.
SCHEDULER_TIMEOUT = "20s"

#: The sample series of a source checkout (absent from an installed wheel).
REPO_SAMPLES = Path(__file__).resolve().parents[1] / "sample_spectra"

#: The demo series: folder under sample_spectra -> its run configuration, a TOML file in
#: the package data (paths relative to that folder).
DEMO_DIR = Path(__file__).resolve().parent / "data" / "demos"
DEMOS = {name: (DEMO_DIR / f"{name}.toml").read_text(encoding="utf-8")
         for name in ("pt_co_oxidation", "cu_nc_potential")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="operando",
        description="Operando XAS series: normalise, fit EXAFS shells, track single-atom <-> "
                    "cluster transitions.",
    )
    parser.add_argument("--version", action="version", version=f"operando {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output on stderr (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_run = sub.add_parser("run", help="analyse a series as configured in a TOML file")
    p_run.add_argument("config", help="the run configuration (.toml)")
    p_run.add_argument("--resume", action="store_true",
                       help="continue the run in the output folder (finished chunks are kept)")
    p_run.add_argument("--overwrite", action="store_true",
                       help="replace a previous run in the output folder")
    p_run.add_argument("--workers", type=_non_negative_int, default=None, metavar="N",
                       help="worker processes (0 = one per core; default: [run] workers, 1)")
    p_run.add_argument("--out", default=None, metavar="DIR",
                       help="output folder (default: [output] dir of the config)")
    p_run.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_run.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the chunks on a running dask.distributed scheduler "
                            "(e.g. tcp://10.0.0.5:8786); needs dask[distributed]")

    p_watch = sub.add_parser("watch", help="follow a folder or growing HDF5 file as scans land "
                                           "(Ctrl-C stops; run again to continue)")
    p_watch.add_argument("config", help="the run configuration (.toml)")
    p_watch.add_argument("--out", default=None, metavar="DIR",
                         help="output folder (default: [output] dir of the config)")
    p_watch.add_argument("--poll", action="store_true",
                         help="poll only, no file-system events (network file systems)")
    p_watch.add_argument("--interval", type=float, default=0.5, metavar="S",
                         help="seconds between two polls (default 0.5)")
    p_watch.add_argument("--settle", type=float, default=1.0, metavar="S",
                         help="seconds a scan file must stay unchanged before it is read "
                              "(default 1.0; longer than the pauses of a slow writer)")
    p_watch.add_argument("--idle-exit", type=float, default=None, metavar="S",
                         help="stop once no scan has landed for S seconds (default: never)")
    p_watch.add_argument("--workers", type=_non_negative_int, default=None, metavar="N")

    p_demo = sub.add_parser("demo", help="run the bundled Pt and Cu sample series")
    p_demo.add_argument("--out", default="operando-demo", metavar="DIR",
                        help="output folder (default: ./operando-demo)")
    p_demo.add_argument("--workers", type=_non_negative_int, default=None, metavar="N")
    p_demo.add_argument("--overwrite", action="store_true",
                        help="replace previous demo runs in the output folder")
    p_demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0 (0 = one per core)")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``operando`` command; returns the exit code."""
    with _CtrlC() as ctrl_c:
        try:
            code = _main(argv, ctrl_c)
        except KeyboardInterrupt:  # anywhere outside the run loop: imports, reading, writing
            code = None
        except RuntimeError as exc:
            # Ctrl-C while a class is made (a dataclass field's __set_name__ as modules
            # load): Python wraps the KeyboardInterrupt in a RuntimeError
            if not isinstance(exc.__cause__, KeyboardInterrupt):
                raise
            code = None
        if code is None:
            print("operando: interrupted", file=sys.stderr)
            return EXIT_SIGINT
        return code


class _CtrlC:
    """Ctrl-C as KeyboardInterrupt, and never lost.

    Python raises KeyboardInterrupt wherever the main thread is; when that is inside
    a callback the interpreter cannot raise from (an import lock's weakref callback
    while modules load), it prints "Exception ignored ... Traceback" and goes on as
    if nothing happened.  Here SIGINT raises KeyboardInterrupt (whatever handler was
    installed before), the unraisable hook remembers a key press it swallowed and stays
    quiet about it, and :meth:`check` raises it again at the next safe point.
    """

    def __init__(self):
        self.lost = False

    def __enter__(self):
        self._hook, self._handler = sys.unraisablehook, None
        if threading.current_thread() is threading.main_thread():
            self._handler = signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = self._on_unraisable
        return self

    def __exit__(self, *exc):
        sys.unraisablehook = self._hook
        if self._handler is not None:
            signal.signal(signal.SIGINT, self._handler)
        return False

    def _on_unraisable(self, unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            self.lost = True
            return
        self._hook(unraisable)

    def check(self) -> None:
        if self.lost:
            raise KeyboardInterrupt


def _main(argv, ctrl_c: _CtrlC) -> int:
    # Pin BLAS to one thread before numpy loads (unless the user set it): the engine's
    # matrix products are small and memory-bound, and parallelism comes from worker
    # processes (which inherit the setting).
    from ._util.blas import pin_before_numpy

    pin_before_numpy()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.ctrl_c = ctrl_c
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    from .pipeline import RunInterrupted

    ctrl_c.check()
    previous_format, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "watch":
            return _cmd_watch(args)
        return _cmd_demo(args)
    except RunInterrupted as exc:
        print(f"operando: {exc}", file=sys.stderr)
        return EXIT_SIGTERM if exc.signal_name == "SIGTERM" else EXIT_SIGINT
    except OperandoError as exc:
        print(f"operando: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # a file-system error the run did not name (config unreadable...)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"operando: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        warnings.formatwarning = previous_format


def console_main() -> None:
    """The ``operando`` command."""
    sys.exit(main())


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning on the command line: one line, no source location (a user reads it)."""
    return f"operando: warning: {' '.join(str(message).split())}\n"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _progress(args):
    return False if args.no_progress else None


def _configured(args):
    """The configuration file with the command line's --out and --workers applied."""
    from .config import load_config

    config = load_config(args.config)
    if args.out is not None:
        config = config.with_output(dir=args.out)
    if args.workers is not None:
        config = config.with_run(workers=args.workers)
    args.ctrl_c.check()
    return config


def _cmd_run(args) -> int:
    from .pipeline import run

    config = _configured(args)
    if args.scheduler is not None and args.workers is not None:
        raise ConfigError("--scheduler and --workers exclude each other: the dask cluster's "
                          "workers run the chunks")
    with (contextlib.nullcontext() if args.scheduler is None
          else _dask_client(args.scheduler)) as client:
        result = run(config, executor=None if client is None else client.get_executor(),
                     resume=args.resume, overwrite=args.overwrite, progress=_progress(args))
    _print_summary(result)
    return EXIT_OK


def _cmd_watch(args) -> int:
    from .pipeline.watch import watch

    config = _configured(args)
    print(f"watching {', '.join(config.series.source)} -> {config.output.dir} (Ctrl-C stops)",
          flush=True)

    def said(update):
        s = update.result.summary
        print(f"{time.strftime('%H:%M:%S')} {update.n_steps} scans (+{len(update.new)}"
              + (f", {len(update.changed)} changed" if update.changed else "")
              + f"): {s['n_ok']} ok, {s['n_failed']} failed, {s.get('n_events', 0)} events; "
              f"{len(update.computed)} chunks computed in {update.seconds:.1f} s", flush=True)

    result = watch(config, poll=args.poll, interval=args.interval, settle=args.settle,
                   idle_timeout=args.idle_exit, on_update=said)
    if result is not None:
        _print_summary(result)
    return EXIT_OK


def _dask_client(address: str):
    """A dask.distributed Client connected to the scheduler at ``address``."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("--scheduler needs dask.distributed: pip install 'dask[distributed]'"
                          ) from None
    try:
        return Client(address, timeout=SCHEDULER_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--scheduler {address}: cannot connect ({exc})") from None


def _cmd_demo(args) -> int:
    from .config import load_config
    from .pipeline import run

    out = Path(args.out).expanduser().resolve()
    samples = _sample_folder(out)
    for name, toml in DEMOS.items():
        folder = samples / name
        config = load_config(toml, base_dir=folder).with_output(dir=out / name)
        if args.workers is not None:
            config = config.with_run(workers=args.workers)
        print(f"demo {name}: {folder}")
        # Running the demo again continues its own earlier run (finished chunks come from
        # their checkpoints, outputs are rewritten) instead of refusing: the README's set-up
        # command must work twice.  A folder holding other settings is still refused.
        again = not args.overwrite and (out / name / "manifest.json").exists()
        result = run(config, overwrite=args.overwrite, resume=again, progress=_progress(args))
        _print_summary(result)
    return EXIT_OK


def _sample_folder(out: Path) -> Path:
    """``<repo>/sample_spectra`` when present (editable install), else regenerated under ``out``."""
    if all((REPO_SAMPLES / name).is_dir() for name in DEMOS):
        return REPO_SAMPLES
    target = out / "sample_spectra"
    if not all((target / name).is_dir() for name in DEMOS):
        from . import simulate

        print(f"sample spectra not found; generating them in {target}")
        simulate.write_samples(target)
    return target


def _print_summary(result) -> None:
    s = result.summary
    line = (f"{s['n_steps']} steps: {s['n_ok']} ok, {s['n_failed']} failed"
            f"; {s.get('n_events', 0)} events")
    if s.get("fits"):
        f = s["fits"]
        line += f"; shell fits {f['good']} good, {f['poor']} poor, {f['failed']} failed"
    if s.get("n_skipped_files"):
        line += f"; {s['n_skipped_files']} input files skipped"
    if s.get("chunks_loaded"):
        line += f"; {s['chunks_loaded']}/{s['chunks_total']} chunks resumed from checkpoints"
    print(line)
    for note in s.get("notes", []):
        print(f"  note: {note}")
    print(f"output: {result.dir}")


if __name__ == "__main__":  # pragma: no cover
    console_main()
