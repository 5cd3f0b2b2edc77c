"""What beamlines really write (issue #14): DESY .fio, compressed files, detector channels
with dead time, dead rows, mixed-edge folders, file order, Athena project settings.

Test files are built in the real layouts: headers copied from real files (named at each
builder) with the numbers of real measured spectra from ../shared/data, so the expected
mu is known exactly from the source spectrum.
"""

import bz2
import gzip
import lzma
import warnings

import numpy as np
import pytest

from operando.errors import ConfigError, DataError, OperandoWarning, ReadError
from operando.io import read_series


@pytest.fixture(scope="module")
def cuo(shared_data):
    """CuO (SSRL 4-3) with its Cu foil reference channel: energy, i0, itrans, irefer."""
    from larch.io import read_xdi

    g = read_xdi(str(shared_data / "references" / "cuo_tenorite_13K.xdi"))
    return g.energy, g.i0, g.itrans, g.irefer


def _rows(*columns, fmt="{:.6f}"):
    return "\n".join("   " + "   ".join(fmt.format(v) for v in row) for row in zip(*columns))


# ------------------------------------------------------------------------ .fio
def _fio_sardana(energy, i0, it, iref, names=("energyfmb", "vfc01", "vfc02", "vfc03")):
    """The Sardana layout of PETRA III (silx's test_fioh5.py, and the P08/P10 writer in
    Ren Zhe's DesyScanImporter): comment, parameter and data sections, a STRING column,
    a name with a space, the end-of-acquisition comment."""
    t0 = 1576165741.20308
    cols = "\n".join(f" Col {k + 1} {n} DOUBLE" for k, n in enumerate(names))
    body = "\n".join(
        f"      {e:.4f}    {a:.3f}    {b:.3f}    {c:.3f}    {t0 + k:.5f}    {k:05d}"
        for k, (e, a, b, c) in enumerate(zip(energy, i0, it, iref)))
    return f"""!
! Comments
!
%c
qexafs_energy energyfmb 8760 9600 0.5
user p65user Acquisition started at Thu Dec 12 18:00:00 2019
!
! Parameter
!
%p
sample_time = 1.000000e+00
ScanName = qexafs_energy
energyfmb = 8760.019
!
! Data
!
%d
{cols}
 Col {len(names) + 1} unix time DOUBLE
 Col {len(names) + 2} filename STRING
{body}
! Acquisition ended at Thu Dec 12 18:12:00 2019
"""


def _fio_online(energy, i0, it):
    """The older DESY "online" layout (pnitools' test/data/fio/scan_mca_00001.fio):
    ``%c``/``%p`` with trailing blanks, ``KEY = value`` comments, column names prefixed
    by the scan name."""
    body = "\n".join(f"   {e:14.4f} {a:14.3f} {b:14.3f}" for e, a, b in zip(energy, i0, it))
    return f"""!
! Comments 
%c 
 File_name = cu_xafs_00012 
 Storage_time = 12-May-2012 18:33:49 
 Start_time = 12-May-2012 17:22:40 
!
! Parameter 
%p 
 SAMPLE_TIME = 1 
 ENERGYFMB  =  8760.02 
! 
! Data 
%d 
 Col 1 CU_XAFS_00012_ENERGY  FLOAT 
 Col 2 CU_XAFS_00012_I0  FLOAT 
 Col 3 CU_XAFS_00012_IT  FLOAT 
{body}
"""


def test_fio_sardana_is_one_scan_with_named_columns(tmp_path, cuo):
    energy, i0, it, iref = cuo
    path = tmp_path / "cuo_00042.fio"
    path.write_text(_fio_sardana(energy, i0, it, iref))
    # counters named vfcNN are not recognised by name: the refusal lists the columns
    with pytest.raises(ConfigError, match="energyfmb.*vfc01.*channels=|mu= one of"):
        read_series(path)
    series = read_series(path, channels={"i0": "vfc01", "it": "vfc02", "iref": "vfc03"})
    assert len(series) == 1  # issue #14: it used to come back as an 11-"spectrum" matrix
    assert series.metadata["format"] == "fio" and series.metadata["mu_from"] == "transmission"
    assert (series.element, series.edge) == ("Cu", "K")   # guessed from the edge
    header = series.metadata["header"]
    assert header["columns"] == ["energyfmb", "vfc01", "vfc02", "vfc03", "unix time"]
    assert header["start_time"] == "Thu Dec 12 18:00:00 2019"
    assert header["parameters"]["ScanName"] == "qexafs_energy"
    assert header["title"].startswith("qexafs_energy energyfmb")
    # exact: the file holds the real counts to 3 decimals, the same rounding as below
    np.testing.assert_allclose(series.energy, np.round(energy, 4), rtol=0, atol=1e-9)
    expected = np.log(np.round(i0, 3) / np.round(it, 3))
    np.testing.assert_allclose(series.mu[0], expected, rtol=1e-12)
    np.testing.assert_allclose(series.reference[0],
                               np.log(np.round(it, 3) / np.round(iref, 3)), rtol=1e-12)
    assert series.metadata["mu_formula"] == "ln(vfc01/vfc02)"
    # format="columns" is honoured: still one scan from its Col lines
    again = read_series(path, format="columns",
                        channels={"i0": "vfc01", "it": "vfc02", "iref": "vfc03"})
    np.testing.assert_array_equal(again.mu, series.mu)


def test_fio_online_layout_prefix_stripped_and_read_by_name(tmp_path, cuo):
    energy, i0, it, _ = cuo
    path = tmp_path / "cu_xafs_00012.fio"
    path.write_text(_fio_online(energy, i0, it))
    series = read_series(path, format="fio")
    assert series.metadata["header"]["columns"] == ["ENERGY", "I0", "IT"]
    assert series.metadata["header"]["start_time"] == "12-May-2012 17:22:40"
    np.testing.assert_allclose(series.mu[0], np.log(np.round(i0, 3) / np.round(it, 3)),
                               rtol=1e-12)


def test_fio_bad_row_names_its_line(tmp_path, cuo):
    energy, i0, it, iref = cuo
    text = _fio_sardana(energy[:20], i0[:20], it[:20], iref[:20]).splitlines()
    row = next(i for i, line in enumerate(text) if line.startswith("      8"))
    text[row + 3] = text[row + 3].replace(text[row + 3].split()[1], "abc", 1)
    path = tmp_path / "bad.fio"
    path.write_text("\n".join(text))
    with pytest.raises(ReadError, match=f"bad.fio: line {row + 4}: 'abc' is not a number"):
        read_series(path, channels={"i0": "vfc01", "it": "vfc02"})


# ------------------------------------------------------------------- compressed
@pytest.mark.parametrize("compress, suffix", [(gzip.compress, ".gz"), (bz2.compress, ".bz2"),
                                              (lzma.compress, ".xz")])
def test_compressed_files_read_like_plain(tmp_path, shared_data, compress, suffix):
    xdi = shared_data / "references" / "cuo_tenorite_13K.xdi"
    plain = read_series(xdi)
    packed = tmp_path / ("cuo_tenorite_13K.xdi" + suffix)
    packed.write_bytes(compress(xdi.read_bytes()))
    series = read_series(packed)
    np.testing.assert_array_equal(series.mu, plain.mu)
    np.testing.assert_array_equal(series.reference, plain.reference)
    assert series.metadata["compression"] == {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}[suffix]
    assert series.metadata["format"] == "xdi"
    # the content decides, not the name: a gzip without suffix, an Athena project too
    nosuffix = tmp_path / "scan_7"
    nosuffix.write_bytes(compress(xdi.read_bytes()))
    np.testing.assert_array_equal(read_series(nosuffix).mu, plain.mu)
    prj = shared_data / "series" / "pt_l3_hydrogen_desorption.prj"
    packed_prj = tmp_path / ("project" + suffix)
    packed_prj.write_bytes(compress(prj.read_bytes()))
    np.testing.assert_array_equal(read_series(packed_prj).mu, read_series(prj).mu)


def test_compressed_files_in_a_folder_keep_their_conditions(tmp_path, shared_data):
    import pandas as pd

    for name in ("fe_foil_rt_2016foils", "feo_rt_01", "fe2o3_rt_01"):
        raw = (shared_data / "references" / f"{name}.xdi").read_bytes()
        (tmp_path / f"{name}.xdi.gz").write_bytes(gzip.compress(raw))
    table = pd.DataFrame({"file": ["feo_rt_01.xdi.gz", "fe_foil_rt_2016foils",
                                   "fe2o3_rt_01.xdi.gz"], "valence": [2, 0, 3]})
    series = read_series(tmp_path, conditions=table)
    assert list(series.conditions["valence"]) == [2, 0, 3]
    assert series.files == ["feo_rt_01.xdi.gz", "fe_foil_rt_2016foils.xdi.gz",
                            "fe2o3_rt_01.xdi.gz"]


# ------------------------------------------------------- detector channels (SDD)
_GSE_HEADER = """#XDI/1.1    Epics StepScan File / 2.0
# Scan.start_time: 2019-07-09 11:02:47
# Legend.Start: Column.N: Name  units || EpicsPV
# Column.1: Energy eV  ||  13IDE:En:Energy.VAL
# Column.2: TSCALER counts  ||  13IDE:SIS1:mca1
# Column.3: I0 counts  ||  13IDE:SIS1:mca2
# Column.4: I1 counts  ||  13IDE:SIS1:mca3
# Column.5: I2 counts  ||  13IDE:SIS1:mca4
# Column.6: Cu_Ka_mca1 counts  ||  13QX4:MCA1ROI:11:TSTotal
# Column.7: Cu_Ka_mca2 counts  ||  13QX4:MCA2ROI:11:TSTotal
# Column.8: Cu_Ka_mca3 counts  ||  13QX4:MCA3ROI:11:TSTotal
# Column.9: Cu_Ka_mca4 counts  ||  13QX4:MCA4ROI:11:TSTotal
# Column.10: OutputCounts_mca1 counts  ||  13QX4:MCA1ROI:1:TSTotal
# Column.11: OutputCounts_mca2 counts  ||  13QX4:MCA2ROI:1:TSTotal
# Column.12: OutputCounts_mca3 counts  ||  13QX4:MCA3ROI:1:TSTotal
# Column.13: OutputCounts_mca4 counts  ||  13QX4:MCA4ROI:1:TSTotal
# Column.14: Clock_mca1 counts  ||  13QX4:C1SCA0:TSArrayValue
# Column.15: Clock_mca2 counts  ||  13QX4:C2SCA0:TSArrayValue
# Column.16: Clock_mca3 counts  ||  13QX4:C3SCA0:TSArrayValue
# Column.17: Clock_mca4 counts  ||  13QX4:C4SCA0:TSArrayValue
# Column.18: DTFactor_mca1 counts  ||  13QX4:C1SCA8:TSArrayValue
# Column.19: DTFactor_mca2 counts  ||  13QX4:C2SCA8:TSArrayValue
# Column.20: DTFactor_mca3 counts  ||  13QX4:C3SCA8:TSArrayValue
# Column.21: DTFactor_mca4 counts  ||  13QX4:C4SCA8:TSArrayValue
# Legend.End: here
# Scan.end_time: 2019-07-09 11:06:31
# ScanParameters.Start: Scan.Member: Value
# ScanParameters.ScanType: xafs
# ScanParameters.element: Cu
# ScanParameters.edge: K
# ScanParameters.End: here
# ///  Users Comments  ///
# 
# ------------------------
# Energy\tTSCALER\tI0\tI1\tI2\tCu_Ka_mca1\tCu_Ka_mca2\tCu_Ka_mca3\tCu_Ka_mca4\tOutputCounts_mca1\tOutputCounts_mca2\tOutputCounts_mca3\tOutputCounts_mca4\tClock_mca1\tClock_mca2\tClock_mca3\tClock_mca4\tDTFactor_mca1\tDTFactor_mca2\tDTFactor_mca3\tDTFactor_mca4
"""


def _gse_file(path, energy, i0, it, seed=3):
    """GSECARS 13-ID-E XDI (xraylarch examples/xafsdata/beamlines/APS13ID_2019.dat header,
    its Mn lines made Cu): 4-element SDD ROIs with OutputCounts, Clock and DTFactor per
    element.  The fluorescence follows the real CuO mu; each element loses counts to dead
    time by 1/DTFactor (DTFactor 1.02-1.15 as in the real file)."""
    rng = np.random.default_rng(seed)
    mu = np.log(i0 / it)
    cols = [energy, np.full(energy.size, 5e7), i0, it, np.zeros(energy.size)]
    dtf = 1.02 + 0.13 * rng.random((4, energy.size))
    true = [i0 * (mu - mu.min() + 0.05) * (0.8 + 0.1 * k) for k in range(4)]
    cols += [t / d for t, d in zip(true, dtf)]                       # measured ROI counts
    cols += [np.round(2.2e5 * (0.9 + 0.1 * k) + 0 * energy) for k in range(4)]
    cols += [np.full(energy.size, 79994163.0)] * 4
    cols += list(dtf)
    body = "\n".join("  ".join(f"{v:.9g}" for v in row) for row in zip(*cols))
    path.write_text(_GSE_HEADER + body + "\n")
    return np.sum(true, axis=0) / i0


def test_fluorescence_channels_summed_with_dead_time_equal_larch(tmp_path, cuo):
    """mu = sum_j ROI_j * DTFactor_j / I0, the sum xraylarch's read_gsexdi forms."""
    from larch.io import read_gsexdi

    energy, i0, it, _ = cuo
    path = tmp_path / "cuo_gse.xdi"
    truth = _gse_file(path, energy, i0, it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OperandoWarning)   # XDI lacks Element.* fields
        series = read_series(path, mu="fluorescence", element="Cu", edge="K")
    group = read_gsexdi(str(path))
    larch_mu = group.cu_ka / group.i0
    np.testing.assert_allclose(series.mu[0], larch_mu, rtol=1e-12)
    # 9 significant digits in the file: the corrected sum recovers the true counts
    np.testing.assert_allclose(series.mu[0], truth, rtol=1e-7)
    assert series.metadata["mu_from"] == "fluorescence"
    assert series.metadata["mu_formula"].startswith("(Cu_Ka_mca1*DTFactor_mca1 + ")
    # without the correction the sum is 2-15 % low, as the dead time says
    raw = read_series(path, mu="fluorescence", dead_time=False, element="Cu", edge="K")
    assert 0.85 < np.min(raw.mu[0] / series.mu[0]) < np.max(raw.mu[0] / series.mu[0]) < 0.99
    # a single named ROI is a counter: divided by I0 (issue #14: it used to be used raw)
    one = read_series(path, mu="Cu_Ka_mca2", element="Cu", edge="K")
    np.testing.assert_allclose(one.mu[0], group.cu_ka_mca2 / group.i0, rtol=1e-12)


_ISS_HEADER = """# Beamline.name: ISS (8-ID) - (08ID) Inner Shell Spectroscopy
# Beamline.x-ray_source: NSLS-II damping wiggler
# Detector.I0: 17 cm, He: 62.0%, N2: 38.0%
# Detector.IF: PIPS
# Element.symbol: Cu
# Element.edge: K
# Facility.name: NSLS-II
# Mono.name: Si(111)
# Mono.d_spacing: 3.1354951
# Scan.edge_energy: 8979.0
# Scan.start_time: 04/08/2022  08:37:45
# Scan.end_time: 04/08/2022  08:38:20
# Column.1: energy eV
# Column.2: i0
# Column.3: it
# Column.4: ir
# Column.5: if
"""


def _iss_file(path, energy, i0, it, iref):
    """NSLS-II ISS (aimmdb's _tests/eli_test_file.dat header; the Xspress3 columns as the
    ISS xas package writes them: summed xs_roiNN, then xs_chCC_roiNN per element)."""
    mu = np.log(i0 / it)
    fl = [i0 * (mu - mu.min() + 0.05) * (0.7 + 0.1 * c) for c in range(4)]
    other = [i0 * 0.01 * (1 + c) + 0 * energy for c in range(4)]     # a second ROI
    labels = (["energy", "i0", "it", "ir", "iff", "aux1", "xs_roi01", "xs_roi02"]
              + [f"xs_ch{c:02d}_roi01" for c in range(1, 5)]
              + [f"xs_ch{c:02d}_roi02" for c in range(1, 5)])
    cols = [energy, i0, it, iref, 0.3 * fl[0], 0 * energy + 1e-6, np.sum(fl, axis=0),
            np.sum(other, axis=0), *fl, *other]
    body = "\n".join(" ".join(f"{v:.9e}" for v in row) for row in zip(*cols))
    path.write_text(_ISS_HEADER + "# " + "  ".join(labels) + "\n" + body + "\n")
    return np.sum(fl, axis=0) / i0


def test_iss_xspress3_rois(tmp_path, cuo):
    energy, i0, it, iref = cuo
    path = tmp_path / "cu_iss.dat"
    truth = _iss_file(path, energy, i0, it, iref)
    # two regions of interest: which one to sum is the user's choice, and the error says so
    with pytest.raises(ConfigError, match="several regions of interest.*xs_ch01_roi01.*"
                                          "xs_ch01_roi02"):
        read_series(path, mu="fluorescence")
    summed = read_series(path, mu="xs_roi01")          # the beamline's own sum, / i0
    channels = read_series(path, mu=[f"xs_ch{c:02d}_roi01" for c in range(1, 5)])
    # 9-10 significant digits in the file
    np.testing.assert_allclose(summed.mu[0], truth, rtol=1e-8)
    np.testing.assert_allclose(channels.mu[0], truth, rtol=1e-8)
    assert channels.metadata["mu_formula"] == ("(xs_ch01_roi01 + xs_ch02_roi01 + "
                                               "xs_ch03_roi01 + xs_ch04_roi01)/i0")
    assert read_series(path).metadata["mu_from"] == "transmission"   # auto: i0 and it
    # a named column that is not a counter is used as written
    np.testing.assert_allclose(read_series(path, mu="aux1").mu[0], 1e-6)


# --------------------------------------------------------------------- dead rows
def test_dead_rows_at_the_ends_trimmed_with_a_note(tmp_path, shared_data):
    """Issue #14: an all-zero first row (a QEXAFS artefact) was kept and biased the edge
    step by 18 %.  Real NSLS-II QAS scan with a zero row before and a NaN row after."""
    from larch import Group
    from larch.xafs import pre_edge

    source = shared_data / "series" / "ru_k_foil_qas_nsls2.dat"
    lines = source.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line and line[0] != "#")
    ncol = len(lines[first].split())
    lines.insert(first, " ".join(["0.0"] * ncol))
    lines.append(" ".join([f"{float(lines[-1].split()[0]) + 5:.6f}"] + ["nan"] * (ncol - 1)))
    path = tmp_path / "qas_dead_rows.dat"
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(OperandoWarning, match=r"dropped 2 dead row\(s\)"):
        series = read_series(path)
    clean = read_series(source)
    np.testing.assert_array_equal(series.energy, clean.energy)
    np.testing.assert_array_equal(series.mu, clean.mu)
    assert series.metadata["trimmed"] == [{"file": path.name, "start": 1, "end": 1,
                                           "lines": [first + 1, len(lines)]}]
    group = Group(energy=series.energy, mu=series.mu[0])
    pre_edge(group)
    reference = Group(energy=clean.energy, mu=clean.mu[0])
    pre_edge(reference)
    assert group.edge_step == reference.edge_step


def test_a_nan_inside_a_live_row_is_still_refused(tmp_path, shared_data):
    source = shared_data / "series" / "ru_k_foil_qas_nsls2.dat"
    lines = source.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line and line[0] != "#")
    words = lines[first].split()
    words[1] = "nan"                       # i0 only: not a dead row
    lines[first] = " ".join(words)
    path = tmp_path / "one_nan.dat"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ReadError, match=f"line {first + 1}: column 'i0' is nan"):
        read_series(path)


# ------------------------------------------------------------------ mixed edges
@pytest.fixture()
def mixed_folder(tmp_path, shared_data):
    """An NSLS-II-like proposal folder: Cu K and Pt L3 foils (XDI headers name them) and
    two header-less copies of the Cu scan (plain columns, energy range only)."""
    from larch.io import read_xdi

    refs = shared_data / "references"
    for name in ("cu_foil_rt.xdi", "pt_foil_rt.xdi", "cuo_tenorite_13K.xdi"):
        (tmp_path / name).write_bytes((refs / name).read_bytes())
    g = read_xdi(str(refs / "cu_foil_rt.xdi"))
    for k in (1, 2):
        body = "\n".join(f"{e:.4f} {a:.3f} {b:.3f}" for e, a, b in
                         zip(g.energy, g.i0 * (1 + 0.01 * k), g.itrans))
        (tmp_path / f"plain_{k}.dat").write_text("# energy i0 it\n" + body + "\n")
    return tmp_path


def test_mixed_edges_refused_with_the_edges_found(mixed_folder):
    with pytest.raises(DataError, match=r"several edges \(Cu K \(2: cu_foil_rt.xdi and "
                                        r"cuo_tenorite_13K.xdi\); Pt L3 \(1: pt_foil_rt.xdi\); "
                                        r"edge not in header \(2: plain_1.dat and plain_2.dat\)\)"
                                        r"; choose one with element= and edge="):
        read_series(mixed_folder)


def test_mixed_edges_selected_by_element_and_edge(mixed_folder):
    with pytest.warns(OperandoWarning, match="skipped 1 scan.*pt_foil_rt.xdi"):
        cu = read_series(mixed_folder, element="Cu", edge="K")
    assert cu.files == ["cu_foil_rt.xdi", "cuo_tenorite_13K.xdi", "plain_1.dat", "plain_2.dat"]
    assert (cu.element, cu.edge) == ("Cu", "K")
    assert cu.metadata["skipped"] == [{"file": "pt_foil_rt.xdi", "reason": "Pt L3 per its header"}]
    with pytest.warns(OperandoWarning, match="skipped 4 scan"):
        pt = read_series(mixed_folder, element="Pt", edge="L3")
    assert pt.files == ["pt_foil_rt.xdi"]
    reasons = {s["file"]: s["reason"] for s in pt.metadata["skipped"]}
    assert reasons["cu_foil_rt.xdi"] == "Cu K per its header"
    # header-less scans: judged by their energy range against the tabulated Pt L3 edge
    assert reasons["plain_1.dat"].startswith("its energy range 8")
    assert "does not hold the Pt L3 edge (11564 eV)" in reasons["plain_1.dat"]
    with pytest.raises(ReadError, match="none of the 5 scans is the Au L3 edge asked "
                                        r"\(found: Cu K"):
        read_series(mixed_folder, element="Au", edge="L3")


def test_header_less_scans_of_two_edges_named_when_they_share_no_range(tmp_path, shared_data):
    from larch.io import read_xdi

    for name in ("cu_foil_rt", "pt_foil_rt"):
        g = read_xdi(str(shared_data / "references" / f"{name}.xdi"))
        body = "\n".join(f"{e:.4f} {a:.3f} {b:.3f}" for e, a, b in zip(g.energy, g.i0, g.itrans))
        (tmp_path / f"{name}.dat").write_text("# energy i0 it\n" + body + "\n")
    with pytest.raises(DataError, match="no common energy range because they are of several "
                                        r"edges \(Cu K \(1: cu_foil_rt.dat\); Pt L3"):
        read_series(tmp_path)
    assert read_series(tmp_path, element="Pt", edge="L3").files == ["pt_foil_rt.dat"]


# ------------------------------------------------------------------------ order
@pytest.fixture()
def fe_folder(tmp_path, shared_data):
    """Four real Fe K references; their XDI start times: feo 2001-08-10 11:10,
    fe2o3 2001-08-10 11:45, fe3o4 2002-03-16, fe foil 2016-07-05."""
    names = ["fe_foil_rt_2016foils", "feo_rt_01", "fe2o3_rt_01", "fe3o4_rt_01"]
    for name in names:
        (tmp_path / f"{name}.xdi").write_bytes(
            (shared_data / "references" / f"{name}.xdi").read_bytes())
    return tmp_path


def test_explicit_list_keeps_its_order_glob_sorts_naturally(fe_folder, tmp_path):
    warnings.simplefilter("ignore", OperandoWarning)
    given = [fe_folder / "feo_rt_01.xdi", fe_folder / "fe_foil_rt_2016foils.xdi",
             fe_folder / "fe3o4_rt_01.xdi"]
    assert read_series(given).files == ["feo_rt_01.xdi", "fe_foil_rt_2016foils.xdi",
                                        "fe3o4_rt_01.xdi"]
    assert read_series(given, order="name").files == ["fe3o4_rt_01.xdi",
                                                      "fe_foil_rt_2016foils.xdi", "feo_rt_01.xdi"]
    # natural order: scan_2 before scan_10
    for k in (10, 2, 1):
        (tmp_path / f"scan_{k}.xdi").write_bytes((fe_folder / "feo_rt_01.xdi").read_bytes())
    assert read_series(str(tmp_path / "scan_*.xdi")).files == ["scan_1.xdi", "scan_2.xdi",
                                                              "scan_10.xdi"]


def test_order_by_header_start_time(fe_folder):
    warnings.simplefilter("ignore", OperandoWarning)
    series = read_series(fe_folder, order="time")
    assert series.files == ["feo_rt_01.xdi", "fe2o3_rt_01.xdi", "fe3o4_rt_01.xdi",
                            "fe_foil_rt_2016foils.xdi"]
    text = (fe_folder / "fe3o4_rt_01.xdi").read_text()
    (fe_folder / "fe3o4_rt_01.xdi").write_text(
        "\n".join(line for line in text.splitlines() if "start_time" not in line) + "\n")
    with pytest.raises(ReadError, match="order='time' needs a start time in every header; "
                                        "fe3o4_rt_01.xdi has none"):
        read_series(fe_folder, order="time")


def test_start_time_formats():
    """Header start times (order='time') and log times go through one parser."""
    import datetime as dt

    from operando.io._logbase import parse_datetime

    assert parse_datetime("2001-06-26T22:27:31") == dt.datetime(2001, 6, 26, 22, 27, 31)
    assert parse_datetime("08/08/2022  10:04:28") == dt.datetime(2022, 8, 8, 10, 4, 28)  # QAS
    assert parse_datetime("Thu Dec 12 18:00:00 2019") == dt.datetime(2019, 12, 12, 18)  # .fio
    when = dt.datetime(2012, 5, 12, 17, 22, 40)
    for text in ("12-May-2012 17:22:40", "2012/05/12 17:22:40", "12.05.2012 17:22:40"):
        assert parse_datetime(text) == when
    assert parse_datetime("2012-05-12 17:22") == dt.datetime(2012, 5, 12, 17, 22)
    assert parse_datetime("yesterday") is None


# --------------------------------------------------------------- Athena settings
def test_athena_project_settings_in_metadata(shared_data):
    series = read_series(shared_data / "series" / "pt_l3_hydrogen_desorption.prj")
    settings = series.metadata["project_settings"]
    assert list(settings) == list(series.conditions["label"])
    first = settings["d_99nov_066"]
    # the project's @args: bkg_e0 11564.50824, bkg_pre1/2 -74.506/-37.253, bkg_nor1/2
    # 12.251/78.978, bkg_rbkg 1.0, fft_kmin 2, fft_kmax 4.568, fft_dk 1, bkg_spl2 4.568
    assert first["e0"] == 11564.50824
    assert (first["pre1"], first["pre2"]) == (-74.5062399999988, -37.2531199999994)
    assert (first["norm1"], first["norm2"]) == (12.251, 78.978)
    assert first["rbkg"] == 1.0 and first["bkg_kmax"] == 4.568
    assert (first["kmin"], first["kmax"], first["dk"]) == (2.0, 4.568, 1.0)
    au = read_series(shared_data / "series" / "au_l3_cyanobacteria.prj")
    # Athena's bkg_nnorm counts polynomial terms (3 = quadratic): Larch's nnorm is 2
    assert au.metadata["project_settings"]["d_0_12"]["nnorm"] == 2
    assert au.metadata["project_settings"]["d_0_12"]["e0"] == 11918.952


# ------------------------------------------------------------------- 9809 format
_PF9A_HEADER = """  9809     KEK-PF   BL9A
 Fe010           22.05.11 17:26 - 22.05.11 18:33 Serial#KEKPF-BL9A_030107
 F2T0
 Ring :   2.5 GeV   425.1 mA -  449.9 mA
 Mono :   Si(111)       D=  3.13551 A    Initial angle= 13.93250 deg
 BL9A      Fluorescence( 3)   Repetition=  1     Points= 1426
 Param file : Std-EXAFS       energy axis(2)     Block =    6

 Block      Init-Eng  Final-Eng      Step/eV     Time/s       Num
     1        6606.20   7061.20         6.50       1.00        70
     2        7061.20   7076.20         1.00       1.00        15
     3        7076.20   7181.20         0.10       2.00      1050
     4        7181.20   7211.20         1.00       2.00        30
     5        7211.20   7611.20         2.50       3.00       160
     6        7611.20   8211.20         6.00       3.00       101
 Ortec(-1)     NDCH = 3
  Angle(c)  Angle(o)    time/s         2         3
      Mode         0         0         1         3
    Offset         0         0  7753.700  7157.100
"""


def test_9809_format_of_kek_pf(tmp_path, shared_data):
    """KEK-PF BL9A fluorescence (xraylarch examples/xafsdata/beamlines/PF9A_2022.dat
    header), counts made from the real Fe foil spectrum: angles descending as written,
    energy from the read angle and D, mu = if/i0 (mode 3 over mode 1)."""
    from larch.io import read_xdi

    g = read_xdi(str(shared_data / "references" / "fe_foil_rt_2016foils.xdi"))
    energy, mu = g.energy, np.log(g.i0 / g.itrans)
    hc, d = 12398.419843, 3.13551
    angle = np.degrees(np.arcsin(hc / (2 * d * energy)))
    i0 = np.round(1.7e6 * (1 + 0.02 * np.sin(energy / 50)))
    fluor = np.round(i0 * (mu - mu.min() + 0.05) * 0.01)
    rows = "\n".join(f"  {a:8.5f}  {a + 2e-5:8.5f}      1.00  {p:8.0f}  {q:8.0f}"
                     for a, p, q in zip(angle[::-1], i0[::-1], fluor[::-1]))
    path = tmp_path / "Fe010.dat"
    path.write_text(_PF9A_HEADER + rows + "\n")
    series = read_series(path, element="Fe", edge="K")
    assert series.metadata["format"] == "9809" and series.metadata["mu_from"] == "fluorescence"
    assert series.metadata["mu_formula"] == "if/i0"
    header = series.metadata["header"]
    assert header["start_time"] == "2022-05-11T17:26:00"
    assert header["modes"] == {"2": 1, "3": 3} and header["offsets"]["2"] == "7753.700"
    read_angle = np.round(angle + 2e-5, 5)
    np.testing.assert_allclose(series.energy, np.sort(hc / (2 * d * np.sin(np.radians(
        read_angle)))), rtol=1e-13)
    # 5 decimals of angle: within 0.02 eV of the real energies near 7.1 keV
    np.testing.assert_allclose(series.energy, energy, atol=0.02)
    np.testing.assert_allclose(series.mu[0], fluor / i0, rtol=1e-12)
    # modes 1 and 2: a transmission scan
    path.write_text(_PF9A_HEADER.replace("1         3\n", "1         2\n") + rows + "\n")
    transmission = read_series(path, element="Fe", edge="K")
    np.testing.assert_allclose(transmission.mu[0], np.log(i0 / fluor), rtol=1e-12)


def test_compressed_hdf5_and_spec(tmp_path, shared_data, cuo):
    from operando.io import write_hdf5

    series = read_series(shared_data / "series" / "pt_l3_hydrogen_desorption.prj")
    h5 = write_hdf5(series, tmp_path / "s.h5")
    packed = tmp_path / "s.h5.gz"
    packed.write_bytes(gzip.compress(h5.read_bytes()))
    back = read_series(packed)                       # h5py reads the bytes from memory
    np.testing.assert_array_equal(back.mu, series.mu)
    assert back.metadata["compression"] == "gzip"
    energy, i0, it, _ = cuo
    lines = ["#F t.spec", "#D Tue Feb 14 09:50:43 2023", ""]
    for number in (1, 2):
        lines += [f"#S {number} ascan", "#N 3", "#L Energy  I0  It"]
        lines += [f"{e:.3f} {a:.6f} {b:.6f}" for e, a, b in zip(energy, i0, it)] + [""]
    spec = tmp_path / "t.spec.xz"
    spec.write_bytes(lzma.compress("\n".join(lines).encode()))
    read = read_series(spec)                         # silx reads a decompressed copy
    assert read.files == ["t.spec.xz#S1", "t.spec.xz#S2"] and read.metadata["format"] == "spec"
    np.testing.assert_allclose(read.mu[1], np.log(np.round(i0, 6) / np.round(it, 6)),
                               rtol=1e-12)
