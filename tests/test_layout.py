"""The package's layout holds: stages import one way, modules stay small, no import cycles,
no module imports another module's private names.

The layer order is the import-linter contract in pyproject.toml (and ARCHITECTURE.md);
the cycle check also counts imports inside functions, which import-linter sees too but
a layer contract does not forbid within one stage.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "operando"
#: One job per module: a module past this many lines is doing several.
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _import_target(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name of the module ``node`` (in module ``name`` at ``path``) imports from."""
    if not node.level:
        return node.module or ""
    base = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for _ in range(node.level - 1):
        base = base.rsplit(".", 1)[0]
    return f"{base}.{node.module}" if node.module else base


def _is_module(name: str, mods: dict[str, Path]) -> bool:
    if name.startswith("operando.") or name == "operando":
        return name in mods
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def test_layers_contract_is_kept():
    linter = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(linter).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    out = subprocess.run([linter, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_module_is_over_the_size_limit():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_no_import_cycles():
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = _import_target(name, path, node)
                found = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                # "from . import x" names module x, not the package it sits in
                targets = found or [target]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in mods and t != name)
    # a package's __init__ re-exporting its own modules is not a cycle
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    cycles = []
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def _private_imports(name: str, path: Path, mods: dict[str, Path]) -> list[str]:
    """``from X import _name`` in module ``name``, inside functions too, whatever ``_name``
    is imported as (a public alias hides a private origin, it does not make one public).
    A private *module* (``from . import _scan``) is fine: the rule is about names."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        target = _import_target(name, path, node)
        for alias in node.names:
            private = alias.name.startswith("_") and not alias.name.startswith("__")
            if private and not _is_module(f"{target}.{alias.name}", mods):
                line = f"from {'.' * node.level}{node.module or ''} import {alias.name}"
                out.append(f"{path.relative_to(ROOT)}:{node.lineno}: {line}")
    return out


def test_no_module_imports_private_names():
    mods = _modules()
    offenders = [line for name, path in sorted(mods.items())
                 for line in _private_imports(name, path, mods)]
    assert not offenders, "private names imported from another module (make the helper public " \
        "in the module that owns it, or move it where it belongs):\n" + "\n".join(offenders)
