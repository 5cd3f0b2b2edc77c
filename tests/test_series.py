"""Series: validation at the boundary and selection by condition."""

import numpy as np
import pandas as pd
import pytest

from operando import DataError, Series


def make(n=6):
    energy = np.linspace(11400.0, 11700.0, 31)
    mu = np.arange(n)[:, None] + np.zeros((n, energy.size))
    conditions = pd.DataFrame({
        "step": np.arange(n),
        "file": [f"scan_{i:03d}.xdi" for i in range(n)],
        "gas": ["O2", "O2", "H2", "H2", "CO+O2", "CO+O2"][:n],
        "potential_V": pd.Series([0.82, 0.5, 0.1, -0.2, -1.0, "OCP"][:n], dtype=object),
    })
    return Series(energy, mu, conditions, element="Pt", edge="L3")


def test_where_selects_by_label_case_insensitively():
    s = make()
    h2 = s.where(gas="h2")
    assert list(h2.steps) == [2, 3]
    assert np.array_equal(h2.mu[:, 0], [2.0, 3.0])


def test_between_uses_numeric_values_and_skips_labels():
    s = make()
    sub = s.between(potential_V=(-1.0, -0.2))
    assert list(sub.steps) == [3, 4]
    # 'OCP' is a label, not a potential: never inside a numeric range
    assert "OCP" not in list(s.between(potential_V=(None, None)).conditions["potential_V"])


def test_where_with_list_and_take_keep_reference_aligned():
    s = make()
    s = s.replace(reference=s.mu * 10)
    sub = s.where(gas=["O2", "CO+O2"])
    assert list(sub.steps) == [0, 1, 4, 5]
    assert np.array_equal(sub.reference, sub.mu * 10)


def test_selecting_does_not_mutate_the_original():
    s = make()
    before = s.mu.copy()
    sub = s.where(gas="O2")
    sub.mu[:] = -1
    # take() fancy-indexes, so the parent's array is untouched
    assert np.array_equal(s.mu, before)


@pytest.mark.parametrize("energy, message", [
    (np.array([3.0, 2.0, 1.0]), "strictly increasing"),
    (np.array([1.0, np.nan, 3.0]), "non-finite"),
])
def test_bad_energy_is_refused(energy, message):
    with pytest.raises(DataError, match=message):
        Series(energy, np.zeros((1, 3)), pd.DataFrame({"step": [0], "file": ["a"]}))


def test_shape_mismatches_name_the_problem():
    energy = np.linspace(0, 1, 5)
    with pytest.raises(DataError, match="mu must have shape"):
        Series(energy, np.zeros((2, 4)), pd.DataFrame({"step": [0, 1], "file": ["a", "b"]}))
    with pytest.raises(DataError, match="conditions table has 1 rows"):
        Series(energy, np.zeros((2, 5)), pd.DataFrame({"step": [0], "file": ["a"]}))
    with pytest.raises(DataError, match="needs a 'file' column"):
        Series(energy, np.zeros((1, 5)), pd.DataFrame({"step": [0]}))


def test_unknown_condition_column_is_named():
    with pytest.raises(DataError, match="no condition column 'temperature'"):
        make().where(temperature=300)
