"""Sample logs of Mantid workspaces: temperature, incident energy, instrument and text logs (no torch).

The log-name tables are the readers' (one table for files and workspaces) once ``phonon_ml_core.readers.logs``
exists; until then they are defined here. Time series are averaged over their finite entries.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Iterable

import numpy as np

#: Sample logs tried for the temperature (after the one the user names), in order: Mantid's SampleTemp, the
#: names SNS direct-geometry autoreduction uses (SampleTemp, sampletemp, SensorC/B/A, temp5, temp8), others.
TEMPERATURE_LOGS: tuple[str, ...] = ("SampleTemp", "sampletemp", "SensorC", "SensorB", "SensorA", "temp5", "temp8",
                                     "sample_temperature", "SampleTemperature", "Temperature", "temperature",
                                     "SensorD", "SensorA250", "SensorB250", "SensorTemp")
#: Sample logs tried for the incident energy (meV), in order.
EI_LOGS: tuple[str, ...] = ("Ei", "EI", "ei", "EnergyRequest", "Efixed")


def finite_mean(value: Any) -> float | None:
    """Mean of the finite numbers in a log value (number, array, time series, or a string of numbers); None if none."""
    if isinstance(value, (bytes, str, np.bytes_)):
        text = value.decode() if isinstance(value, bytes) else str(value)
        try:
            arr = np.array([float(x) for x in text.replace(",", " ").split()])
        except ValueError:
            return None
    else:
        try:
            arr = np.asarray(value, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            return None
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else None


def _log_number(run: Any, name: str) -> float | None:
    try:
        if not run.hasProperty(name):
            return None
        value = run.getProperty(name).value
    except (RuntimeError, KeyError, ValueError):
        return None
    return finite_mean(value)


def find_log(ws: Any, names: Iterable[str]) -> tuple[str | None, float | None]:
    """(name, value) of the first log in ``names`` holding a finite number (time series averaged)."""
    run = ws.getRun()
    for name in names:
        if name:
            v = _log_number(run, name)
            if v is not None:
                return name, v
    return None, None


def sample_temperature(ws: Any, log_name: str = TEMPERATURE_LOGS[0]) -> tuple[str | None, float | None]:
    """Sample temperature (K) from ``log_name`` then :data:`TEMPERATURE_LOGS`; (None, None) when absent or ≤ 0."""
    name, value = find_log(ws, (log_name, *[n for n in TEMPERATURE_LOGS if n != log_name]))
    if value is None or value <= 0:
        return None, None
    return name, value


def incident_energy(ws: Any) -> tuple[str | None, float | None]:
    """Incident energy (meV) from the run logs (``Ei`` first; docs/mantid_api.md §5); (None, None) when absent."""
    name, value = find_log(ws, EI_LOGS)
    if value is None or value <= 0:
        return None, None
    return name, value


def log_text(ws: Any, name: str) -> str | None:
    """The text of log ``name``, or None when absent."""
    run = ws.getRun()
    try:
        if run.hasProperty(name):
            return str(run.getProperty(name).value)
    except (RuntimeError, KeyError):
        return None
    return None


def instrument_name(ws: Any) -> str:
    """The workspace's instrument name (``getInstrument().getName()``), "" when it has none."""
    try:
        return str(ws.getInstrument().getName() or "")
    except (AttributeError, RuntimeError):
        return ""
