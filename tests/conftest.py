"""Shared fixtures: the real measured data in ../shared/data (skipped when absent)."""

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
