"""Shared fixtures: the real measured data in ../shared/data (skipped when absent)."""

import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLES = ROOT / "sample_spectra"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference data not found at {SHARED_DATA} (CI always has it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def samples() -> Path:
    if not (SAMPLES / "pt_co_oxidation").is_dir() or not (SAMPLES / "cu_nc_potential").is_dir():
        pytest.skip(f"sample spectra not found in {SAMPLES}")
    return SAMPLES


_SLOW_RUN = """
import sys, time
from operando.pipeline import steps
real = steps.analyse
def slow(*args):
    time.sleep({delay})
    return real(*args)
steps.analyse = slow
if sys.argv[1] == "--library":
    from operando import pipeline
    from operando.config import load_config
    pipeline.run(load_config(sys.argv[2]).with_output(dir=sys.argv[3]), progress=False)
else:
    from operando.cli import main
    sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="session")
def slow_operando():
    """``slow_operando(delay, *args)``: the command line of ``operando *args`` in a fresh
    Python whose chunk analysis first sleeps ``delay`` s, so a test can signal, kill or race
    a run mid-way.  ``slow_operando(delay, "--library", config, out_dir)`` runs
    ``pipeline.run`` instead of the command."""
    def command(delay: float, *args) -> list[str]:
        return [sys.executable, "-c", _SLOW_RUN.format(delay=delay), *map(str, args)]
    return command
