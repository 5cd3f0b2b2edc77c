"""The example notebooks execute top to bottom without an error.

Each notebook's one source is its percent-format script ``notebooks/NAME.py``
(``notebooks/build.py``); the script is run with nbclient (kernel ``python3``,
working directory ``notebooks/``, 300 s per cell) in memory, and the stored
``NAME.ipynb`` (its executed rendering) must hold exactly the script's cells.  The real-data notebooks need ``../shared/data``
and are skipped with a reason when that folder is absent.  The quickstart runs
the step explorer (ipywidgets) and the xarray bridge; the test checks the widget
rendered a figure.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SHARED_DATA = ROOT.parent / "shared" / "data"
_spec = importlib.util.spec_from_file_location("notebook_build", NOTEBOOKS / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

#: notebook -> files (relative to the shared data folder) it needs, if any
CASES = {
    "quickstart": None,
    "pt_gas_sequence": None,
    "cu_potential_sequence": None,
    "real_pt_time_series": ["series/pt_l3_hydrogen_desorption.prj",
                            "references/pt_foil_rt.xdi"],
    "au_l3_reduction": ["series/au_l3_cyanobacteria.prj"],
}
CELL_TIMEOUT = 300


@pytest.mark.parametrize("name", list(CASES))
def test_notebook_executes(name):
    path = NOTEBOOKS / f"{name}.py"
    assert path.is_file(), f"{path} is missing"
    needs = CASES[name]
    if needs is not None:
        if not SHARED_DATA.is_dir():
            pytest.skip(f"{name} needs the real data in {SHARED_DATA}, which is absent")
        missing = [f for f in needs if not (SHARED_DATA / f).is_file()]
        if missing:
            pytest.skip(f"{name} needs {missing} in {SHARED_DATA}")
    nb = build.read_percent(path)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{name}: a cell failed:\n{exc}", pytrace=False)
    errors = [out for cell in nb.cells if cell.cell_type == "code"
              for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors, f"{name}: error outputs: {[e.get('ename') for e in errors]}"
    if name == "quickstart":
        # the explorer cell shows a widget, and the widget's output area holds its figure
        views = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert views, "the step explorer rendered no widget"
        state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
        pngs = [o for m in state.get("state", {}).values()
                for o in m.get("state", {}).get("outputs", []) if "image/png" in o.get("data", {})]
        assert pngs, "the step explorer's output area holds no figure"


def test_stored_notebooks_are_their_sources_executed():
    """The stored notebooks carry their outputs (they read well on GitHub), stay small, and
    hold exactly their script's cells (``python notebooks/build.py NAME`` rewrites one)."""
    assert set(CASES) == set(build.NOTEBOOKS)
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(CASES)
    total = 0
    for name in CASES:
        path = NOTEBOOKS / f"{name}.ipynb"
        total += path.stat().st_size
        nb = nbformat.read(path, as_version=4)
        source = build.read_percent(NOTEBOOKS / f"{name}.py")
        assert [(c.cell_type, c.source) for c in nb.cells] == \
            [(c.cell_type, c.source) for c in source.cells], \
            f"{name}.ipynb differs from {name}.py: run python notebooks/build.py {name}"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), f"{name} is stored unexecuted"
        assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])), \
            f"{name} is stored with an error output"
    assert total < 2_500_000, f"notebooks total {total / 1e6:.1f} MB; lower the figure dpi"
