"""FEFF path library: shipped paths, FEFF6 runs, caching, user files."""

import numpy as np
import pytest
from larch.xafs import feffpath, path2chi

from operando import ConfigError, ReadError, feff_path, load_path, path_for_shell, shipped_paths
from operando.feffpaths import SHIPPED_PAIRS


def test_every_common_pair_ships_with_the_right_geometry():
    paths = shipped_paths()
    for absorber, scatterer in SHIPPED_PAIRS:
        p = paths[f"{absorber}-{scatterer}"]
        assert p.file.exists()
        # fcc metal: 12 nearest neighbours; square-planar ligand sites: 4
        assert p.degeneracy == (12 if absorber == scatterer else 4)
    # published fcc nearest-neighbour distances (shared/data README): Pt 2.775, Cu 2.556
    assert paths["Pt-Pt"].reff == pytest.approx(2.775, abs=1e-3)
    assert paths["Cu-Cu"].reff == pytest.approx(2.556, abs=1e-3)
    assert paths["Pt-Pt"].edge == "L3" and paths["Cu-Cu"].edge == "K"


def test_shipped_path_is_used_without_running_feff(tmp_path):
    p = feff_path("Pt", "O", cache_dir=tmp_path)
    assert "data/paths" in str(p.file)
    assert not any(tmp_path.iterdir())


def test_new_distance_runs_feff_once_and_is_cached(tmp_path):
    p = feff_path("Cu", "O", distance=1.98, cache_dir=tmp_path)
    assert p.reff == pytest.approx(1.98, abs=1e-3)
    assert p.file.parent == tmp_path / "feff"
    mtime = p.file.stat().st_mtime_ns
    again = feff_path("Cu", "O", distance=1.98, cache_dir=tmp_path)
    assert again.file == p.file and again.file.stat().st_mtime_ns == mtime
    # the file is a working FEFF path for larch: first-shell chi peaks where expected
    path = feffpath(str(p.file), degen=1, s02=1, sigma2=0.003)
    path2chi(path)
    assert np.max(np.abs(path.chi)) > 0.01


def test_user_path_file_is_read(shared_data):
    p = path_for_shell("Cu-Cu", file=shared_data / "feff" / "feffcu01.dat")
    assert p.reff == pytest.approx(2.5478, abs=1e-4)
    assert p.degeneracy == 12


def test_bad_requests_say_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="not an element"):
        feff_path("Xx", "O")
    with pytest.raises(ConfigError, match="Absorber-Scatterer"):
        path_for_shell("PtO")
    with pytest.raises(ConfigError, match="outside 1.0-5.0"):
        feff_path("Pt", "O", distance=7.0)
    junk = tmp_path / "feff0001.dat"
    junk.write_text("not a path\n")
    with pytest.raises(ReadError, match="not a FEFF path file"):
        load_path(junk)


def test_element_table_agrees_with_xraydb():
    """The built-in symbol table (kept to avoid importing xraydb at start-up) is xraydb's."""
    import xraydb

    from operando._util.elements import SYMBOLS as _SYMBOLS, atomic_number as _atomic_number

    for z, symbol in enumerate(_SYMBOLS[1:], start=1):
        assert _atomic_number(symbol) == xraydb.atomic_number(symbol) == z


def test_edge_table_agrees_with_xraydb():
    """The shipped edge table (kept to avoid importing xraydb at start-up) is xraydb's."""
    import xraydb

    from operando._util.elements import EDGES, edge_energy
    from operando._util.elements import SYMBOLS as _SYMBOLS

    for symbol in _SYMBOLS[1:]:
        for name, edge in xraydb.xray_edges(symbol).items():
            if name in EDGES:
                assert edge_energy(symbol, name) == pytest.approx(edge.energy, abs=1e-6)
    assert edge_energy("Pt", "L3") == pytest.approx(11564.0, abs=0.5)
