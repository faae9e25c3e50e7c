"""The result tables of the Mantid algorithms (mantid_support.tables) on the strict stand-in or real Mantid:
column names, types and order, per-input and per-constant extra columns, NaN where a value is unknown."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mantid_standin.harness import mantid_fixture  # noqa: F401

NAMES = ["1XX", "1XY", "1ZZ", "2XX", "2YY"]
FC = np.array([10.0, 10.8, -2.5, 2.1, 0.1])


def _entry(**extra):
    return {"input": "ws", "index": 2, "force_constants": FC, "std": np.full(5, 0.1), **extra}


def test_per_constant_extra_column_appended_after_the_fixed_ones(mantid):
    from phonon_ml_core.mantid_support.tables import TABLE_COLUMNS, force_constants_table

    cal = np.array([0.3, 0.4, np.nan, 0.6, 0.7])
    table = force_constants_table([_entry(NMSE=0.01, StdCalibrated=cal)], ("NMSE", "StdCalibrated"), names=NAMES)
    assert table.getColumnNames() == [n for _, n in TABLE_COLUMNS] + ["NMSE", "StdCalibrated"]
    assert table.rowCount() == 5
    assert table.column("NMSE") == [0.01] * 5  # per input: repeated on every row
    np.testing.assert_allclose(table.column("StdCalibrated"), cal, equal_nan=True)  # per constant, in order
    np.testing.assert_allclose(table.column("Std"), 0.1)
    assert table.column("Name") == NAMES


def test_missing_or_none_extra_is_nan(mantid):
    from phonon_ml_core.mantid_support.tables import force_constants_table

    table = force_constants_table([_entry(StdCalibrated=None), _entry()], ("StdCalibrated", "NMSE"), names=NAMES)
    assert table.rowCount() == 10
    assert all(math.isnan(v) for v in table.column("StdCalibrated") + table.column("NMSE"))


def test_per_constant_extra_of_the_wrong_length_is_refused(mantid):
    from phonon_ml_core.mantid_support.tables import force_constants_table

    with pytest.raises(ValueError, match="StdCalibrated has 3 values for 5 force constants"):
        force_constants_table([_entry(StdCalibrated=[0.1, 0.2, 0.3])], ("StdCalibrated",), names=NAMES)
