"""operando.io.read_series / write_hdf5 on real files, every layout, and messy input."""

import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

from operando.errors import ConfigError, DataError, OperandoWarning, ReadError
from operando.io import read_series, write_hdf5


def _edge_step(series, i=0):
    """Edge step from xraylarch's pre_edge (the reference normalisation)."""
    from larch import Group
    from larch.xafs import pre_edge

    group = Group(energy=series.energy, mu=series.mu[i])
    pre_edge(group)
    return group.edge_step


# ------------------------------------------------------------------ real data
@pytest.mark.parametrize("name, element, edge, with_ref", [
    ("references/pt_foil_rt.xdi", "Pt", "L3", False),
    ("references/cu_foil_rt.xdi", "Cu", "K", False),
    ("references/cuo_tenorite_13K.xdi", "Cu", "K", True),
])
def test_real_xdi_matches_larch(shared_data, name, element, edge, with_ref):
    from larch.io import read_xdi

    series = read_series(shared_data / name)
    group = read_xdi(str(shared_data / name))
    assert (series.element, series.edge, len(series)) == (element, edge, 1)
    assert series.metadata["mu_from"] == "transmission"
    assert series.metadata["format"] == "xdi"
    # Same numbers, same formula as larch: exact up to float rounding.
    np.testing.assert_allclose(series.energy, group.energy, rtol=0, atol=0)
    np.testing.assert_allclose(series.mu[0], np.log(group.i0 / group.itrans), rtol=1e-14)
    assert _edge_step(series) > 0.1  # foils/CuO: edge step ~0.5-1.6 in these files
    if with_ref:
        np.testing.assert_allclose(series.reference[0], np.log(group.itrans / group.irefer),
                                   rtol=1e-14)
        # The reference is a Cu foil: its edge step must also be positive.
        assert _edge_step(series.replace(mu=series.reference)) > 0.1
    else:
        assert series.reference is None


def test_real_qas_file(shared_data):
    path = shared_data / "series" / "ru_k_foil_qas_nsls2.dat"
    series = read_series(path)
    rows = np.loadtxt(path, comments="#")
    assert (series.element, series.edge) == ("Ru", "K")
    assert series.metadata["mu_from"] == "transmission"
    np.testing.assert_array_equal(series.energy, rows[:, 0])
    np.testing.assert_allclose(series.mu[0], np.log(rows[:, 1] / rows[:, 2]), rtol=1e-14)
    np.testing.assert_allclose(series.reference[0], np.log(rows[:, 2] / rows[:, 3]), rtol=1e-14)
    assert _edge_step(series) > 0.3  # Ru foil, step ~0.7 in this scan
    assert series.metadata["header"]["Beamline"] == "QAS"


def test_real_athena_project(shared_data):
    from larch.io import read_athena

    path = shared_data / "series" / "pt_l3_hydrogen_desorption.prj"
    series = read_series(path)
    project = read_athena(str(path), do_preedge=False)
    names = list(project.groups)
    assert len(series) == 21 and (series.element, series.edge) == ("Pt", "L3")
    assert series.files[0] == "pt_l3_hydrogen_desorption.prj#d_99nov_066"
    assert list(series.conditions["label"]) == names
    assert series.metadata["interpolated"] is False  # all groups share one grid
    for i, name in enumerate(names):
        np.testing.assert_array_equal(series.mu[i], project.groups[name].mu)
    assert all(_edge_step(series, i) > 0.05 for i in range(len(series)))  # Athena: 0.10


# ---------------------------------------------------------------------- HDF5
def test_hdf5_round_trip_exact(shared_data, tmp_path):
    series = read_series(shared_data / "series" / "pt_l3_hydrogen_desorption.prj")
    n = len(series)
    conditions = series.conditions.copy()
    conditions["potential_V"] = pd.Series(["OCP"] + [0.1 * i for i in range(1, n)], dtype=object)
    conditions["gas"] = ["H2" if i % 2 else "He" for i in range(n)]
    conditions["temperature_K"] = np.linspace(300, 400, n)
    series = series.replace(conditions=conditions, reference=series.mu * 0.5,
                            metadata={**series.metadata, "note": "café ünïcode"})
    path = write_hdf5(series, tmp_path / "s.h5")
    back = read_series(path)
    np.testing.assert_array_equal(back.energy, series.energy)
    np.testing.assert_array_equal(back.mu, series.mu)
    np.testing.assert_array_equal(back.reference, series.reference)
    pd.testing.assert_frame_equal(back.conditions, series.conditions)
    assert back.conditions["potential_V"].dtype == object
    assert back.conditions["potential_V"][0] == "OCP"
    assert back.conditions["potential_V"][3] == 0.1 * 3
    assert back.metadata == series.metadata
    assert (back.element, back.edge) == ("Pt", "L3")


def test_nexus_nxxas(tmp_path, shared_data):
    from larch.io import read_xdi

    group = read_xdi(str(shared_data / "references" / "cu_foil_rt.xdi"))
    path = tmp_path / "scan.nxs"
    with h5py.File(path, "w") as h5:
        for k, scale in ((1, 1.0), (2, 1.1)):
            entry = h5.create_group(f"entry{k}")
            entry.attrs["NX_class"] = "NXentry"
            entry["definition"] = "NXxas"
            entry.create_group("monochromator")["energy"] = group.energy
            entry.create_group("incoming_beam")["data"] = group.i0 * scale
            entry.create_group("absorbed_beam")["data"] = group.itrans
            entry.create_group("data")["mode"] = "Transmission"
    series = read_series(path)
    assert len(series) == 2 and series.metadata["format"] == "nexus"
    np.testing.assert_allclose(series.mu[0], np.log(group.i0 / group.itrans), rtol=1e-14)
    np.testing.assert_allclose(series.mu[1] - series.mu[0], np.log(1.1), rtol=1e-12)
    assert (series.element, series.edge) == ("Cu", "K")  # guessed from the edge


def test_hdf5_without_known_layout_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as h5:
        h5["x"] = np.arange(3)
    with pytest.raises(ReadError, match="other.h5.*neither"):
        read_series(path)


# ---------------------------------------------------------------------- SPEC
def test_spec_multi_scan(tmp_path, shared_data):
    from larch.io import read_xdi

    g = read_xdi(str(shared_data / "references" / "cu_foil_rt.xdi"))
    lines = ["#F test.spec", "#D today", ""]
    for number, sl in ((1, slice(0, None)), (2, slice(3, None)), (3, slice(0, None))):
        lines += [f"#S {number} ascan", "#N 3", "#L Energy  I0  It"]
        if number == 3:  # a broken scan (zero i0) is skipped with a warning
            lines += [f"{e:.3f} 0 {t:.6f}" for e, t in zip(g.energy[sl], g.itrans[sl])]
        else:
            lines += [f"{e:.3f} {i:.6f} {t:.6f}" for e, i, t in
                      zip(g.energy[sl], g.i0[sl], g.itrans[sl])]
        lines.append("")
    path = tmp_path / "test.spec"
    path.write_text("\n".join(lines))
    with pytest.warns(OperandoWarning, match="test.spec#S3 .mu = ln.I0/It. is not finite"):
        series = read_series(path)
    assert len(series) == 2 and series.files == ["test.spec#S1", "test.spec#S2"]
    assert series.metadata["skipped"][0]["file"] == "test.spec#S3"
    # common overlap: the grid of scan 1 from scan 2's first point; same points -> no interp
    np.testing.assert_allclose(series.energy, np.round(g.energy[3:], 3), rtol=0)
    assert series.metadata["interpolated"] is False
    np.testing.assert_allclose(series.mu[1], np.log(g.i0[3:] / g.itrans[3:]), rtol=1e-6)


# -------------------------------------------------------------- folder + CSV
def _write_scan(path, energy, i0, it, header="# energy i0 it"):
    rows = "\n".join(f"{e:.4f} {a:.6f} {b:.6f}" for e, a, b in zip(energy, i0, it))
    path.write_text(f"{header}\n{rows}\n")


@pytest.fixture()
def folder(tmp_path, shared_data):
    from larch.io import read_xdi

    g = read_xdi(str(shared_data / "references" / "pt_foil_rt.xdi"))
    d = tmp_path / "scans"
    d.mkdir()
    for k in (1, 2, 10):
        shift = 0.0 if k == 1 else 0.25 * k  # scans 2 and 10 on shifted grids
        _write_scan(d / f"scan_{k}.dat", g.energy + shift, g.i0, g.itrans * (1 + 0.01 * k))
    return d, g


def test_folder_natural_order_and_interpolation(folder):
    d, g = folder
    series = read_series(d)
    assert series.files == ["scan_1.dat", "scan_2.dat", "scan_10.dat"]
    assert list(series.conditions["step"]) == [0, 1, 2]
    assert series.metadata["interpolated"] is True
    assert series.metadata["skipped"] == []
    # grid: scan 1's points inside the overlap (scan 10 starts 2.5 eV later)
    assert series.energy[0] == pytest.approx(g.energy[1]) and series.energy[-1] == g.energy[-1] \
        or series.energy[-1] <= g.energy[-1] + 2.5
    # scan_1 holds itrans * 1.01; 6 printed decimals -> rtol 1e-6
    np.testing.assert_allclose(series.mu[0], np.log(g.i0 / (g.itrans * 1.01))[1:], rtol=1e-6)


def test_folder_with_conditions_order_and_mixed_column(folder, tmp_path):
    d, _ = folder
    csv = tmp_path / "conditions.csv"
    csv.write_text("file,potential_V,gas\nscan_10.dat,OCP,He\nscan_1.dat,0.4,H2\n"
                   "scan_2.dat,-0.2,H2\n")
    series = read_series(d, conditions=csv)
    assert series.files == ["scan_10.dat", "scan_1.dat", "scan_2.dat"]
    col = series.conditions["potential_V"]
    assert col.dtype == object and list(col) == ["OCP", 0.4, -0.2]
    assert isinstance(col[1], float)
    assert len(series.where(gas="H2")) == 2
    assert len(series.between(potential_V=(-1.0, 0.0))) == 1


def test_conditions_errors(folder, tmp_path):
    d, _ = folder
    # the log defines the series: a file it does not list is skipped, named and recorded
    missing = pd.DataFrame({"file": ["scan_1.dat", "scan_2.dat"], "gas": ["H2", "He"]})
    with pytest.warns(OperandoWarning, match="skipped 1 file.s. not listed in the conditions table: scan_10.dat"):
        series = read_series(d, conditions=missing)
    assert list(series.conditions["gas"]) == ["H2", "He"]
    assert [s["file"] for s in series.metadata["skipped"]] == ["scan_10.dat"]
    with pytest.raises(ConfigError, match="lists none of the 3 files"):
        read_series(d, conditions=pd.DataFrame({"file": ["other.dat"], "gas": ["H2"]}))
    dup = pd.DataFrame({"file": ["scan_1.dat", "scan_2.dat", "scan_10.dat", "scan_1.dat"],
                        "gas": list("abcd")})
    with pytest.raises(ConfigError, match="duplicated.*scan_1.dat"):
        read_series(d, conditions=dup)
    extra = pd.DataFrame({"file": ["scan_1.dat", "scan_2.dat", "scan_10.dat", "ghost.dat"],
                          "gas": list("abcd")})
    with pytest.warns(OperandoWarning, match="ghost.dat"):
        series = read_series(d, conditions=extra)
    assert list(series.conditions["gas"]) == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="'file' column"):
        read_series(d, conditions=pd.DataFrame({"name": ["scan_1.dat"]}))


def test_bad_file_skipped_or_raised(folder):
    d, _ = folder
    (d / "scan_5.dat").write_bytes(b"\x00\x01\x02binary junk\xff")
    with pytest.warns(OperandoWarning, match="scan_5.dat"):
        series = read_series(d)
    assert len(series) == 3
    assert series.metadata["skipped"][0]["file"] == "scan_5.dat"
    assert "binary" in series.metadata["skipped"][0]["reason"]
    with pytest.raises(ReadError, match="scan_5.dat.*binary"):
        read_series(d, on_error="raise")


def test_every_file_bad(tmp_path):
    for k in range(2):
        (tmp_path / f"x{k}.dat").write_text("")
    with pytest.warns(OperandoWarning), pytest.raises(ReadError, match="none of the 2 files"):
        read_series(tmp_path)
    with pytest.warns(OperandoWarning), pytest.raises(ReadError):
        read_series(str(tmp_path / "*.dat"))


# ---------------------------------------------------------------------- matrix
def test_matrix_file_keeps_dead_frames(tmp_path, shared_data):
    from larch.io import read_xdi

    g = read_xdi(str(shared_data / "references" / "cu_foil_rt.xdi"))
    mu = np.log(g.i0 / g.itrans)
    cols = np.column_stack([g.energy, mu, mu * 1.01, np.zeros_like(mu), np.full_like(mu, np.nan)])
    path = tmp_path / "matrix.txt"
    np.savetxt(path, cols, header="energy s0 s1 s2 s3", fmt="%.10g")
    cond = pd.DataFrame({"step": [3, 2, 1, 0], "potential_V": [0.3, 0.2, 0.1, "OCP"]})
    series = read_series(path, conditions=cond)
    assert len(series) == 4 and series.metadata["format"] == "matrix"
    assert series.files[0] == "matrix.txt#s0"
    assert list(series.conditions["potential_V"]) == ["OCP", 0.1, 0.2, 0.3]
    np.testing.assert_allclose(series.mu[0], mu, rtol=1e-9)  # %.10g printing
    assert np.all(series.mu[2] == 0) and np.all(np.isnan(series.mu[3]))
    assert (series.element, series.edge) == ("Cu", "K")
    with pytest.raises(ConfigError, match=r"no row for 1 step\(s\): 0;"):
        read_series(path, conditions=cond.iloc[:3])


# ----------------------------------------------------------- single messy files
def _rows(n=30, e0=8900.0):
    energy = e0 + 5.0 * np.arange(n)
    i0 = 1e5 + 10 * np.arange(n)
    it = 3e4 * np.exp(-np.where(energy > e0 + 60, 1.0, 0.2))
    return energy, i0, it


def _text(energy, i0, it, extra=""):
    body = "\n".join(f"{e:.3f} {a:.3f} {b:.6f}" for e, a, b in zip(energy, i0, it))
    return f"# energy i0 it\n{body}\n{extra}"


@pytest.mark.parametrize("content, match", [
    ("", "empty"),
    ("   \n\n", "empty"),
    ("# energy i0 it\n", "no rows of numbers"),
])
def test_empty_files(tmp_path, content, match):
    path = tmp_path / "f.dat"
    path.write_text(content)
    with pytest.raises(ReadError, match=f"f.dat.*{match}"):
        read_series(path)


def test_binary_file(tmp_path):
    path = tmp_path / "f.dat"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ReadError, match="binary"):
        read_series(path)


def test_truncated_last_row_dropped(tmp_path):
    e, a, b = _rows()
    path = tmp_path / "f.dat"
    path.write_text(_text(e, a, b) + "9050.000 1000")
    with pytest.warns(OperandoWarning, match="truncated"):
        series = read_series(path, element="Cu", edge="K")
    np.testing.assert_array_equal(series.energy, e)


def test_nan_and_inf_name_the_line(tmp_path):
    e, a, b = _rows()
    path = tmp_path / "f.dat"
    text = _text(e, a, b).splitlines()
    text[5] = "8920.000 inf 1.0"
    path.write_text("\n".join(text))
    with pytest.raises(ReadError, match="line 6: column 'i0' is inf"):
        read_series(path)


def test_energy_order_repairs_and_refusals(tmp_path):
    e, a, b = _rows()
    path = tmp_path / "f.dat"
    # exact duplicate row -> dropped with a warning
    path.write_text(_text(np.insert(e, 4, e[4]), np.insert(a, 4, a[4]), np.insert(b, 4, b[4])))
    with pytest.warns(OperandoWarning, match="duplicate row"):
        series = read_series(path, element="Cu")
    np.testing.assert_array_equal(series.energy, e)
    # duplicate energy with different values -> ambiguous
    path.write_text(_text(np.insert(e, 4, e[4]), np.insert(a, 4, a[4] + 1), np.insert(b, 4, b[4])))
    with pytest.raises(ReadError, match="appears twice.*ambiguous"):
        read_series(path)
    # two neighbours swapped -> sorted with a warning
    e2 = e.copy()
    e2[[7, 8]] = e2[[8, 7]]
    path.write_text(_text(e2, a, b))
    with pytest.warns(OperandoWarning, match="out of order"):
        series = read_series(path, element="Cu")
    np.testing.assert_array_equal(series.energy, e)
    # a second sweep -> refused
    path.write_text(_text(np.concatenate([e, e]), np.concatenate([a, a]), np.concatenate([b, b])))
    with pytest.raises(ReadError, match="doubles back at line 32"):
        read_series(path)


def test_kev_converted(tmp_path):
    e, a, b = _rows()
    path = tmp_path / "f.dat"
    path.write_text(_text(e / 1000, a, b))
    with pytest.warns(OperandoWarning, match="keV"):
        series = read_series(path)
    np.testing.assert_allclose(series.energy, e, rtol=1e-12)
    assert (series.element, series.edge) == ("Cu", "K")  # guessed: steepest point 8960 eV


# --------------------------------------------------------------- mu choices
def test_mu_choices(tmp_path):
    e, a, b = _rows()
    path = tmp_path / "f.dat"
    body = "\n".join(f"{x} {p} {q} {q / p}" for x, p, q in zip(e, a, b))
    path.write_text("# energy i0 ifluor pips\n" + body)
    with pytest.raises(ConfigError, match=r"'energy', 'i0', 'ifluor' and 'pips'.*transmission"):
        read_series(path)
    series = read_series(path, mu="pips", element="Cu")
    np.testing.assert_allclose(series.mu[0], b / a, rtol=1e-12)
    path.write_text("# energy i0 ifluor\n" + "\n".join(f"{x} {p} {q}" for x, p, q in zip(e, a, b)))
    series = read_series(path, element="Cu")
    assert series.metadata["mu_from"] == "fluorescence"
    np.testing.assert_allclose(series.mu[0], b / a, rtol=1e-12)
    with pytest.raises(ConfigError, match="transmission' needs i0 and it"):
        read_series(path, mu="transmission")


def test_element_edge_checks(shared_data):
    path = shared_data / "references" / "pt_foil_rt.xdi"
    cu_path = shared_data / "references" / "cu_foil_rt.xdi"
    # Issue #15: a header naming another element than asked is an error (it used to warn
    # and then fit the asked element's paths to the wrong spectrum).
    with pytest.raises(DataError, match="header says element Cu but element='Pt' was asked"):
        read_series(cu_path, element="Pt")
    series = read_series(cu_path, element="Cu", edge="K")
    assert series.element == "Cu"
    # A column file without an element header: user's Pt L3 (11564 eV) is not in a Cu range.
    from operando.io._scan import resolve_edge

    with pytest.raises(DataError, match="Pt L3 edge.*outside"):
        resolve_edge("x.dat", series.energy, series.mu, None, "Pt", "L3")
    with pytest.raises(ConfigError, match="not an element"):
        read_series(path, element="Xx")


def test_folder_file_not_in_conditions_is_skipped_and_named(samples):
    """A foil scan beside the sample scans is not part of the series the log describes."""
    folder = samples / "pt_co_oxidation"
    with pytest.warns(OperandoWarning, match="not listed in the conditions table: pt_foil.xdi"):
        series = read_series(folder, conditions=folder / "conditions.csv")
    assert len(series) == 16
    assert "pt_foil.xdi" not in series.files
    assert series.metadata["skipped"] == [
        {"file": "pt_foil.xdi", "reason": "not listed in the conditions table"}]


# ------------------------------------------------------- reference channel from a file
def _cu_paths(samples):
    folder = samples / "cu_nc_potential"
    return (folder / "cu_nc_potential.dat", folder / "conditions.csv",
            folder / "cu_nc_reference.dat", folder / "truth.csv")


def test_reference_file_for_matrix_series_calibrates_to_truth(samples):
    from operando.xanes import calibrate

    sample, cond, ref_file, truth_csv = _cu_paths(samples)
    series = read_series(sample, conditions=cond, reference=ref_file)
    assert series.reference is not None and series.reference.shape == series.mu.shape
    assert series.metadata["reference_source"] == str(ref_file)
    assert series.metadata["reference_interpolated"] is False  # same grid as the sample
    assert series.metadata["reference_columns"][:2] == ["ref_000", "ref_001"]
    # The column of step 0 is the file's first reference column, unchanged.
    first = np.loadtxt(ref_file, usecols=(1,))
    np.testing.assert_array_equal(series.reference[0], first)
    # A string path works the same as a Path.
    same = read_series(str(sample), conditions=cond, reference=str(ref_file))
    np.testing.assert_array_equal(same.reference, series.reference)

    _, shifts = calibrate(series)
    truth = pd.read_csv(truth_csv)
    # The noise-free foil's maximum derivative sits exactly at the tabulated 8979 eV on the
    # true scale (sample_spectra/README), so the applied shift is -energy_shift up to the
    # reference-channel noise (3e-4 of the edge step) on a 0.4 eV grid: observed <= 0.011 eV;
    # 0.05 eV is an eighth of a grid step.
    np.testing.assert_allclose(shifts, -truth["energy_shift"].to_numpy(), atol=0.05)


def test_reference_file_on_another_grid_is_interpolated(samples, tmp_path):
    sample, cond, ref_file, _ = _cu_paths(samples)
    header = ref_file.read_text().splitlines()[0]
    data = np.loadtxt(ref_file)
    # Insert the linear midpoint between every pair of rows: interpolating back onto the
    # sample grid must return the original values (up to float rounding of the midpoints).
    mid = 0.5 * (data[1:] + data[:-1])
    finer = np.empty((2 * len(data) - 1, data.shape[1]))
    finer[0::2], finer[1::2] = data, mid
    path = tmp_path / "ref_fine.dat"
    np.savetxt(path, finer, header=header.lstrip("# "), fmt="%.9f")
    series = read_series(sample, conditions=cond, reference=path)
    assert series.metadata["reference_interpolated"] is True
    np.testing.assert_allclose(series.reference, data[:, 1:].T, atol=1e-8)

    # A reference grid that does not cover the sample's is refused, never extrapolated.
    short = tmp_path / "ref_short.dat"
    np.savetxt(short, data[5:], header=header.lstrip("# "), fmt="%.9f")
    with pytest.raises(ReadError, match=r"ref_short.dat: energy range .* does not cover the "
                                        r"sample file cu_nc_potential.dat"):
        read_series(sample, reference=short)


def test_reference_file_count_and_source_errors(samples, tmp_path):
    sample, cond, ref_file, _ = _cu_paths(samples)
    data = np.loadtxt(ref_file)
    fewer = tmp_path / "ref_fewer.dat"
    labels = " ".join(f"ref_{i:03d}" for i in range(20))
    np.savetxt(fewer, data[:, :21], header=f"energy {labels}", fmt="%.7f")
    with pytest.raises(ReadError) as info:
        read_series(sample, conditions=cond, reference=fewer)
    msg = str(info.value)
    assert "ref_fewer.dat" in msg and "cu_nc_potential.dat" in msg
    assert "20 reference column(s)" in msg and "27 spectra" in msg
    with pytest.raises(ReadError, match="missing.dat: reference file for cu_nc_potential.dat "
                                        "not found"):
        read_series(sample, reference=tmp_path / "missing.dat")
    # columns= picks spectra by name; the reference columns at the same positions follow.
    picked = read_series(sample, columns=["mu_003", "mu_010"], reference=ref_file)
    np.testing.assert_array_equal(picked.reference, data[:, [4, 11]].T)
    # Per-scan files carry their reference as a column: a reference file is refused.
    folder = samples / "pt_co_oxidation"
    with pytest.raises(ConfigError, match="reference file is supported for matrix series only"):
        read_series(folder, conditions=folder / "conditions.csv", reference=ref_file)
    # A bare column name is still a column name, not a file.
    with pytest.raises(ConfigError, match="reference"):
        read_series(folder / "pt_co_oxidation_000.xdi", reference="nosuchcolumn")


# ------------------------------------------------------------------ big-table reader
def _parse_outcome(raw):
    from operando.io._text import parse_text

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            table = parse_text("t.dat", raw)
            result = ("read", table.data.shape, table.data.tobytes(), table.lines.tolist())
        except (ReadError, ConfigError, DataError) as exc:
            result = ("refused", str(exc))
    return result, [str(w.message) for w in caught]


_PLAIN_TOKENS = ["1", "2.5", "-3", "+4.", ".5", "1e3", "1E-3", "1d3", "-0", "00012", "1e999",
                 "1.5e-320", "9007199254740993", "0.1234567890123456789012345", "1.2.3", "e5",
                 "1e", ".", "-", "+", "--1", "1e+", "nan", "inf"]


@pytest.mark.parametrize("reader", ["arrow", "pandas"])
def test_big_table_readers_equal_line_by_line_reader(monkeypatch, reader):
    """Large tables of plain numbers go to pyarrow's (when loaded) or pandas' C reader
    (exact floats, 3-4x numpy's loadtxt on a 1000-spectrum matrix file); they must give
    the same bits, line numbers, errors and warnings as the token-by-token reader on
    anything, or hand over."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from operando.io import _rows

    if reader == "arrow":
        pytest.importorskip("pyarrow")
        monkeypatch.setitem(__import__("sys").modules, "pyarrow", __import__("pyarrow"))
    else:
        monkeypatch.setattr(_rows, "_read_arrow_column", lambda raw: None)

    separators = st.sampled_from([" ", " ", " ", "  ", "\t", ",", ", ", ";"])
    tokens = st.sampled_from(_PLAIN_TOKENS)
    ragged = st.lists(st.lists(st.tuples(separators, tokens), min_size=1, max_size=4),
                      min_size=1, max_size=6)
    # mostly well-formed: the same number of single-space separated tokens on every row
    uniform = st.integers(1, 4).flatmap(lambda n: st.lists(
        st.lists(st.tuples(st.sampled_from([" "] * 12 + ["  ", ","]), tokens), min_size=n,
                 max_size=n), min_size=1, max_size=6))

    @settings(max_examples=200, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.one_of(ragged, uniform), st.booleans())
    def check(rows, trailing_newline):
        body = "\n".join("".join(sep + tok for sep, tok in r).lstrip(" \t") for r in rows)
        raw = ("# energy a b c\n" + body + ("\n" if trailing_newline else "")).encode()
        with monkeypatch.context() as patch:
            patch.setattr(_rows, "_PANDAS_MIN_BYTES", 0)
            fast = _parse_outcome(raw)
        with monkeypatch.context() as patch:
            patch.setattr(_rows, "rows_fast", lambda row_text: None)
            slow = _parse_outcome(raw)
        assert fast == slow

    check()


@pytest.mark.parametrize("reader", ["arrow", "pandas", "table"])
def test_big_table_readers_read_a_matrix_file_exactly(tmp_path, monkeypatch, reader):
    """A thousand-column matrix file (np.savetxt layout) above the size threshold: the
    fast readers give the bits float() gives, including awkward values; a ragged row
    anywhere is still the line-numbered error of the careful reader."""
    from operando.io import _rows, _text

    if reader != "arrow":
        monkeypatch.setattr(_rows, "_read_arrow_column", lambda raw: None)
    if reader == "table":
        monkeypatch.setattr(_rows, "_rows_pandas_flat", lambda rows: None)

    rng = np.random.default_rng(7)
    energy = np.linspace(8800.0, 9800.0, 150)
    mu = rng.normal(size=(150, 1000)) * 10.0 ** rng.integers(-8, 8, size=(150, 1000))
    rows = [" ".join([f"{e:.4f}"] + [repr(float(v)) for v in m]) for e, m in zip(energy, mu)]
    rows[3] = rows[3].replace(rows[3].split()[5], "0.1234567890123456789012345", 1)
    rows[7] = rows[7].replace(rows[7].split()[9], "2.2250738585072011e-308", 1)
    header = "# energy " + " ".join(f"mu_{i:04d}" for i in range(1000))
    raw = (header + "\n" + "\n".join(rows) + "\n").encode()
    assert len(raw) > _rows._PANDAS_MIN_BYTES
    table = _text.parse_text("m.dat", raw)
    expected = np.array([[float(t) for t in r.split()] for r in rows])
    assert table.data.tobytes() == expected.tobytes()
    assert table.lines.tolist() == list(range(2, 152))
    bad = rows.copy()
    bad[100] = bad[100].rsplit(" ", 1)[0]            # one value short, mid-file
    with pytest.raises(ReadError, match="line 102 has 1000 values"):
        _text.parse_text("m.dat", (header + "\n" + "\n".join(bad) + "\n").encode())
    (tmp_path / "m.dat").write_bytes(raw)
    series = read_series(tmp_path / "m.dat", element="Cu", edge="K")
    assert series.mu.shape == (1000, 150) and series.mu.tobytes() == expected[:, 1:].T.tobytes()


def test_exact_float_option_by_pandas_version():
    from operando.io._rows import _exact_float_option

    assert _exact_float_option("2.2.3") == {"float_precision": "round_trip"}
    assert _exact_float_option("3.0.1") == {"float_precision": "round_trip"}
    assert _exact_float_option("3.1.0rc0") == {} and _exact_float_option("4.0.0") == {}
