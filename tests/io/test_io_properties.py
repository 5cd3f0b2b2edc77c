"""Property tests: generated column files read back exactly; junk bytes only ever
raise OperandoError."""

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from operando.errors import OperandoError
from operando.io import read_series

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

EXTRA_LABELS = st.sampled_from(["time", "aux1", "temp", "ring_current", "gate", "x7"])


@st.composite
def column_files(draw):
    n = draw(st.integers(min_value=5, max_value=60))
    start = draw(st.floats(min_value=2000.0, max_value=30000.0))
    steps = draw(st.lists(st.floats(min_value=0.05, max_value=20.0), min_size=n - 1,
                          max_size=n - 1))
    # Round to what "%.6f" prints so the written text is the truth table.
    energy = np.round(start + np.concatenate([[0.0], np.cumsum(steps)]), 6)
    i0 = np.round(draw(st.floats(min_value=1.0, max_value=1e6)) * np.linspace(1, 1.1, n), 6)
    it = np.round(i0 * np.exp(-np.linspace(0.2, draw(st.floats(0.3, 3.0)), n)), 6)
    extras = draw(st.lists(EXTRA_LABELS, unique=True, max_size=3))
    it_label = draw(st.sampled_from(["it", "itrans", "I1", "IT"]))
    i0_label = draw(st.sampled_from(["i0", "I0", "io"]))
    columns = {"energy": energy, i0_label: i0, it_label: it}
    for label in extras:
        columns[label] = np.round(np.linspace(0, 1, n) * len(label), 6)
    order = draw(st.permutations(list(columns)))
    sep = draw(st.sampled_from([" ", "  ", "\t", ", "]))
    return energy, i0, it, order, columns, sep


@SETTINGS
@given(column_files())
def test_generated_column_files_read_back(tmp_path, spec):
    energy, i0, it, order, columns, sep = spec
    lines = ["# " + " ".join(order)]
    lines += [sep.join(f"{columns[c][k]:.6f}" for c in order) for k in range(energy.size)]
    path = tmp_path / "gen.dat"
    path.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series = read_series(path)
    np.testing.assert_array_equal(series.energy, energy)
    # identical formula on identical numbers: float rounding only
    np.testing.assert_allclose(series.mu[0], np.log(i0 / it), rtol=1e-13)
    assert series.metadata["mu_from"] == "transmission"
    assert series.files == ["gen.dat"]


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_operando_errors(tmp_path, raw):
    path = tmp_path / "junk.dat"
    path.write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_series(path)
        except OperandoError:
            pass


NUMBERISH = st.lists(st.sampled_from(["1", "2.5", "-3", "1e3", "nan", "inf", "#", "x", " ",
                                      "\n", "\t", ",", "1e999", "0", "9000", "# energy i0 it\n"]),
                     max_size=80).map("".join)


@SETTINGS
@given(NUMBERISH)
def test_numberish_text_only_raises_operando_errors(tmp_path, text):
    path = tmp_path / "junk.xdi" if len(text) % 2 else tmp_path / "junk.txt"
    path.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_series(path)
        except OperandoError:
            pass


# Tokens on both sides of what float() accepts, and separators the reader splits on.
TOKENS = st.sampled_from(["1", "2.5", "-3", "+4.", ".5", "1e3", "1E-3", "1d3", "1D+03", "nan",
                          "-NaN", "inf", "-Infinity", "1e999", "1.5e-320", "9007199254740993",
                          "1.2.3", "e5", "1e", ".", "-", "1_000", "0x10", "\u0661\u0662",
                          "infinit", "STRING", "#"])
SEPARATORS = st.sampled_from([" ", "  ", "\t", ",", ", ", ";", "\u00a0", "\x1f", ",,"])


def _outcome(raw):
    from operando.io._text import parse_text

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            table = parse_text("t.dat", raw)
            result = ("read", table.data.shape, table.data.tobytes(), table.lines.tolist())
        except OperandoError as exc:
            result = ("refused", str(exc))
    return result, [str(w.message) for w in caught]


@SETTINGS
@given(st.lists(st.lists(st.tuples(SEPARATORS, TOKENS), min_size=1, max_size=4), min_size=1,
                max_size=5))
def test_fast_reader_equals_line_by_line_reader(monkeypatch, rows):
    # numpy's reader must give the same bits, line numbers, errors and warnings as the
    # token-by-token reader, or hand over to it.
    from operando.io import _rows

    body = "\n".join("".join(sep + tok for sep, tok in row).lstrip(" \t") for row in rows)
    raw = ("# energy a b c\n" + body + "\n").encode("utf-8")
    fast = _outcome(raw)
    with monkeypatch.context() as patch:
        patch.setattr(_rows, "rows_fast", lambda row_text: None)
        slow = _outcome(raw)
    assert fast == slow


def test_fast_reader_takes_plain_tables_and_hands_over_the_rest():
    from operando.io._rows import rows_fast as _rows_fast

    data = _rows_fast(["8979.0 1.5d0, nan", "8980 -inf 2E-3"])
    assert data.shape == (2, 3) and data[0, 1] == 1.5 and np.isnan(data[0, 2])
    for rows in (["1 2", "3"], ["1 2", "1.2.3 4"], ["1 2", "1_0 2"], ["1 2", ", ,"]):
        assert _rows_fast(rows) is None, rows
