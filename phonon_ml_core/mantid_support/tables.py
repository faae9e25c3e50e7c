"""Result tables (TableWorkspace) of the algorithms: one row per (input, force constant), named from the material."""
from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import numpy as np

TABLE_COLUMNS: tuple[tuple[str, str], ...] = (("str", "Input"), ("int", "Index"), ("str", "Name"),
                                              ("double", "Value"), ("double", "Std"), ("str", "Units"))


def force_constants_table(entries: Sequence[dict[str, Any]], extra_columns: Sequence[str] = (),
                          names: Sequence[str] | None = None):
    """A TableWorkspace with one row per (input, constant): Input, Index, Name, Value, Std, Units, extras.

    ``entries``: dicts with ``input`` (str), ``index`` (int), ``force_constants`` (K,), ``std`` (K,), optional
    ``names`` (K,) and, for each name in ``extra_columns`` (double columns, appended in that order), either a
    float that repeats on every row of the input (e.g. "NMSE", "Evaluations") or K floats, one per constant
    (e.g. "StdCalibrated", N/m); a missing or None extra is NaN. ``names`` (the material's) is used for entries
    without their own. NaN std (singular curvature) is written as NaN. ValueError when a count of constants
    differs from the names or from a per-constant extra.
    """
    from mantid.api import WorkspaceFactory

    table = WorkspaceFactory.createTable()
    for ctype, name in TABLE_COLUMNS:
        table.addColumn(ctype, name)
    for name in extra_columns:
        table.addColumn("double", name)
    for entry in entries:
        fc = np.asarray(entry["force_constants"], dtype=float).reshape(-1)
        labels = list(entry.get("names") or names or [])
        if len(labels) != fc.size:
            raise ValueError(f"{fc.size} force constants but {len(labels)} names ({', '.join(labels)}): the result "
                             "does not belong to this material")
        std = np.asarray(entry.get("std", np.full(fc.size, np.nan)), dtype=float).reshape(-1)
        extras = {c: _extra_values(entry, c, fc.size) for c in extra_columns}
        for k, label in enumerate(labels):
            row = [str(entry.get("input", "")), int(entry.get("index", 0)), label, float(fc[k]), float(std[k]), "N/m"]
            row += [float(extras[c][k]) for c in extra_columns]
            table.addRow(row)
    return table


def _extra_values(entry: dict[str, Any], column: str, count: int) -> np.ndarray:
    """The ``count`` row values of one extra column for one entry: a scalar repeated, K values as they are, None NaN."""
    value = entry.get(column)
    values = np.full(count, np.nan) if value is None else np.asarray(value, dtype=float).reshape(-1)
    if values.size == 1:
        return np.full(count, values[0])
    if values.size != count:
        raise ValueError(f"column {column} has {values.size} values for {count} force constants: give one value per "
                         "constant, a single value for every row, or None")
    return values


FREQUENCY_COLUMNS: tuple[tuple[str, str], ...] = (("str", "Input"), ("int", "Index"), ("str", "Point"),
                                                  ("int", "Branch"), ("double", "Frequency"), ("double", "Std"),
                                                  ("str", "Units"))


def frequencies_table(entries: Sequence[dict[str, Any]]):
    """A TableWorkspace of zone-boundary frequencies: one row per (input, point, branch).

    Columns Input, Index, Point (e.g. "X", "L"), Branch (1-3, ascending frequency), Frequency, Std, Units
    ("THz"; negative = imaginary). ``entries``: dicts with ``input``, ``index`` and the RESULT.json fields
    ``frequency_points``, ``frequencies_thz`` and ``frequencies_std_thz`` as
    :func:`phonon_ml_core.fitting.frequencies.frequency_fields` makes them (std None: NaN).
    """
    from mantid.api import WorkspaceFactory

    table = WorkspaceFactory.createTable()
    for ctype, name in FREQUENCY_COLUMNS:
        table.addColumn(ctype, name)
    for entry in entries:
        freq = entry["frequencies_thz"]
        sig = entry.get("frequencies_std_thz") or {}
        for point in entry.get("frequency_points") or list(freq):
            stds = sig.get(point) or [None] * len(freq[point])
            for branch, (f, s) in enumerate(zip(freq[point], stds), start=1):
                table.addRow([str(entry.get("input", "")), int(entry.get("index", 0)), str(point), branch, float(f),
                              float("nan") if s is None else float(s), "THz"])
    return table
