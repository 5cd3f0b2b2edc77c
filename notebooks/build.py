"""The example notebooks: percent-format sources (``notebooks/*.py``) -> ``.ipynb``.

Each notebook has one source, a jupytext "percent" script beside this file: a cell
starts at a ``# %%`` line (``# %% [markdown]`` for text, its lines commented with
``# ``), and an IPython magic is written commented (``# %matplotlib inline``).  The
scripts open in Jupyter with jupytext and in any editor; the stored ``.ipynb`` are
their executed renderings (they read well on GitHub), rewritten from the scripts by

    python notebooks/build.py                   # every notebook, executed
    python notebooks/build.py quickstart        # one

The notebooks run with the working directory ``notebooks/``.  The test suite
executes the scripts and checks that each stored ``.ipynb`` holds exactly their
cells.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
NOTEBOOKS = ("quickstart", "pt_gas_sequence", "cu_potential_sequence", "real_pt_time_series",
             "au_l3_reduction")
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}
_MARKER = re.compile(r"^# %%(?: \[(?P<kind>\w+)\])?\s*$")
_MAGIC = re.compile(r"^# (%\w.*)$")


def read_percent(path: str | Path) -> nbformat.NotebookNode:
    """The notebook of a percent-format script (text before the first marker is ignored)."""
    cells, kind, lines = [], None, []

    def close():
        if kind is None:
            return
        while lines and not lines[-1].strip():
            lines.pop()
        if kind == "markdown":
            text = "\n".join("" if line == "#" else line[2:] if line.startswith("# ") else line
                             for line in lines)
            cells.append(new_markdown_cell(text))
        else:
            cells.append(new_code_cell("\n".join(_MAGIC.sub(r"\1", line) for line in lines)))

    for line in Path(path).read_text(encoding="utf-8").splitlines():
        match = _MARKER.match(line)
        if match:
            close()
            kind, lines = match["kind"] or "code", []
        elif kind is not None:
            lines.append(line)
    close()
    return new_notebook(cells=cells, metadata={"kernelspec": KERNEL,
                                               "language_info": {"name": "python"}})


def execute(nb: nbformat.NotebookNode, *, timeout: int = 300) -> nbformat.NotebookNode:
    """Run every cell in place (kernel ``python3``, working directory ``notebooks/``)."""
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    return nb


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"notebooks to write (default all: {', '.join(NOTEBOOKS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NOTEBOOKS))
    if unknown:
        parser.error(f"no notebook {', '.join(unknown)} (known: {', '.join(NOTEBOOKS)})")
    for name in args.names or NOTEBOOKS:
        t0 = time.perf_counter()
        nb = execute(read_percent(HERE / f"{name}.py"))
        nbformat.validate(nb)
        nbformat.write(nb, HERE / f"{name}.ipynb")
        print(f"{name}.ipynb: executed in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
