"""Sample logs of Mantid workspaces: temperature, incident energy, instrument and text logs (no torch).

The log-name tables and the averaging of time series are the readers' (``phonon_ml_core.readers.logs``: one table
for files and workspaces); this module only looks the names up in a workspace's run.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from phonon_ml_core.readers.logs import EI_LOGS, TEMPERATURE_LOGS, finite_mean, first_log

__all__ = ["EI_LOGS", "TEMPERATURE_LOGS", "finite_mean", "find_log", "incident_energy", "instrument_name",
           "log_text", "sample_temperature"]


def _lookup(ws: Any) -> Callable[[str], Any]:
    """``name -> value`` of the workspace's run logs (None when absent or unreadable)."""
    run = ws.getRun()

    def value(name: str) -> Any:
        try:
            return run.getProperty(name).value if run.hasProperty(name) else None
        except (RuntimeError, KeyError, ValueError):
            return None
    return value


def find_log(ws: Any, names: Iterable[str]) -> tuple[str | None, float | None]:
    """(name, value) of the first log in ``names`` holding a finite number (time series averaged)."""
    return first_log(names, _lookup(ws), positive=False)


def sample_temperature(ws: Any, log_name: str = TEMPERATURE_LOGS[0]) -> tuple[str | None, float | None]:
    """Sample temperature (K) from ``log_name`` then :data:`TEMPERATURE_LOGS`; (None, None) when none is positive."""
    return first_log((log_name, *[n for n in TEMPERATURE_LOGS if n != log_name]), _lookup(ws))


def incident_energy(ws: Any) -> tuple[str | None, float | None]:
    """Incident energy (meV) from the run logs (``Ei`` first; docs/mantid_api.md §5); (None, None) when absent."""
    return first_log(EI_LOGS, _lookup(ws))


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
