"""Every file of the XDI project's baddata set is read (with the expected warning) or
refused with a ReadError naming the file and the problem; nothing else may escape."""

import re
import warnings

import numpy as np
import pytest

from operando.errors import OperandoError, OperandoWarning, ReadError
from operando.io import read_series

# file -> ("read", warning fragment or None) | ("refuse", message fragment).
# The read/refuse split is BadFiles.txt's "status" column (checked below); the
# fragments are what our messages must say about the specific defect.
EXPECTED = {
    "bad_00.xdi": ("read", None),
    "bad_01.xdi": ("refuse", "XDI version line"),
    "bad_02.xdi": ("read", "no Element.edge"),
    "bad_03.xdi": ("read", "no Element.symbol"),
    "bad_04.xdi": ("read", "Element.edge 'Foo'"),
    "bad_05.xdi": ("read", "Element.symbol 'Foo'"),
    "bad_06.xdi": ("read", "no '#----' line"),
    "bad_07.xdi": ("read", "no 'Column.N' header fields"),
    "bad_08.xdi": ("read", "column(s) [4]"),
    "bad_09.xdi": ("read", "field(s) [5] beyond"),
    "bad_10.xdi": ("read", "field(s) [7] beyond"),
    "bad_11.xdi": ("read", "comment character '!'"),
    "bad_12.xdi": ("read", "mono angle"),
    "bad_13.xdi": ("refuse", "line 31 has 3 values"),
    "bad_14.xdi": ("refuse", "line 36 has 6 values"),
    "bad_15.xdi": ("refuse", "line 29: column 'i0' is nan"),
    "bad_16.xdi": ("refuse", "line 30: 'STRING' is not a number"),
    "bad_17.xdi": ("refuse", "line 29: '1.4.9' is not a number"),
    "bad_18.xdi": ("refuse", "'Family.key' has no value"),
    "bad_19.xdi": ("refuse", "no ':'"),
    "bad_20.xdi": ("refuse", "field name 'Family'"),
    "bad_21.xdi": ("refuse", "field name 'Family key'"),
    "bad_22.xdi": ("refuse", "'Family.key.subkey'"),
    "bad_23.xdi": ("read", None),
    "bad_24.xdi": ("refuse", "'2000Family.key'"),
    "bad_25.xdi": ("read", None),
    "bad_26.xdi": ("read", None),
    "bad_27.xdi": ("read", None),
    "bad_28.xdi": ("read", "not an ISO 8601 date-time"),
    "bad_29.xdi": ("read", "not an ISO 8601 date-time"),
    "bad_30.xdi": ("read", "Element.symbol 'Foo'"),
    "bad_31.xdi": ("read", "Mono.d_spacing 'three point"),
    "bad_32.xdi": ("read", None),
    "bad_33.xdi": ("read", "Sample.temperature '300.0a K'"),
    "bad_34.xdi": ("read", "Facility.energy '7.00 missing units'"),
    "bad_35.xdi": ("read", "Facility.current '101x ma'"),
}


def _status_table(shared_data):
    table = {}
    for line in (shared_data / "bad_xdi" / "BadFiles.txt").read_text().splitlines():
        m = re.match(r"^(bad_\d\d\.xdi)\s+(file read|error msg)", line)
        if m:
            table[m.group(1)] = "read" if m.group(2) == "file read" else "refuse"
    return table


def test_table_covers_all_36_files_and_agrees_with_badfiles_txt(shared_data):
    files = sorted(p.name for p in (shared_data / "bad_xdi").glob("bad_*.xdi"))
    assert len(files) == 36 and set(files) == set(EXPECTED)
    status = _status_table(shared_data)
    assert status == {name: kind for name, (kind, _) in EXPECTED.items()}


def _valid_rows(shared_data):
    return np.loadtxt(shared_data / "bad_xdi" / "bad_00.xdi", comments="#")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_xdi_file(shared_data, name):
    path = shared_data / "bad_xdi" / name
    kind, fragment = EXPECTED[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if kind == "refuse":
            with pytest.raises(ReadError) as info:
                read_series(path)
            message = str(info.value)
            assert name in message and fragment in message, message
            return
        try:
            series = read_series(path)
        except OperandoError as exc:  # pragma: no cover - makes the failure readable
            pytest.fail(f"{name} should be read but raised {exc}")
    ours = [str(w.message) for w in caught if issubclass(w.category, OperandoWarning)]
    if fragment is None:
        assert ours == [], ours
    else:
        assert any(fragment in m and name in m for m in ours), ours
    assert len(series) == 1
    # Every file is the same Cu K foil scan; Scan.edge_energy says 8980 eV.
    assert (series.element, series.edge) == ("Cu", "K")
    if name != "bad_12.xdi":
        rows = _valid_rows(shared_data)
        np.testing.assert_array_equal(series.energy, rows[:, 0])
        # mu = ln(i0/itrans) computed the same way: exact to float rounding.
        np.testing.assert_allclose(series.mu[0], np.log(rows[:, 1] / rows[:, 2]), rtol=1e-14)
        # the file's own mutrans column is ln(i0/itrans) to its 8 printed digits
        np.testing.assert_allclose(series.mu[0], rows[:, 3], atol=1e-6)


def test_angle_file_converted_with_bragg_law(shared_data):
    with pytest.warns(OperandoWarning, match="mono angle"):
        series = read_series(shared_data / "bad_xdi" / "bad_12.xdi")
    theta = np.array([12.3, 12.2, 12.1, 12.0, 11.9, 11.8, 11.7, 11.6])
    expected = 12398.419843 / (2 * 3.13551 * np.sin(np.deg2rad(theta)))
    # descending angle = ascending energy; exact formula, float rounding only
    np.testing.assert_allclose(series.energy, expected, rtol=1e-12)
