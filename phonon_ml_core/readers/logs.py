"""The one table of sample-log names, and how Ei, temperature and instrument are read from a run's logs.

Shared by the file readers (h5py) and the Mantid adapter (``mantid_support``), which pass their own
``lookup(name) -> value`` to :func:`first_log`. Log values may be numbers, arrays, time series or strings
of numbers; time series are averaged over their finite values.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from phonon_ml_core.specs import SpecError, get_instrument

#: Sample logs tried for the sample temperature (K), in order: Mantid's SampleTemp, the names SNS direct-geometry
#: autoreduction uses (sampletemp, the Lakeshore SensorC/B/A channels, the temp5/temp8 thermometers), then others.
TEMPERATURE_LOGS: tuple[str, ...] = ("SampleTemp", "sampletemp", "SensorC", "SensorB", "SensorA", "temp5", "temp8",
                                     "sample_temperature", "SampleTemperature", "Temperature", "temperature",
                                     "SensorD", "SensorA250", "SensorB250", "SensorTemp")
#: Sample logs tried for the incident energy (meV), in order.
EI_LOGS: tuple[str, ...] = ("Ei", "EI", "ei", "EnergyRequest", "Efixed")
#: Sample logs tried for the instrument name when the file has no NeXus instrument group.
INSTRUMENT_LOGS: tuple[str, ...] = ("instrument", "instrument_name", "Instrument")


def as_str(v: Any) -> str:
    """An HDF5 attribute or log value as ``str`` (bytes decoded, 1-element arrays unwrapped)."""
    if isinstance(v, np.ndarray):
        if v.size == 0:
            return ""
        v = v.reshape(-1)[0] if v.size == 1 else b"".join(x if isinstance(x, bytes) else str(x).encode()
                                                        for x in v.reshape(-1))
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).decode(errors="replace")
    return str(v)


def finite_mean(v: Any) -> float | None:
    """Mean of the finite numbers in a log value (number, array, time series or a string of numbers); None if none."""
    if isinstance(v, (bytes, str, np.bytes_)) or (isinstance(v, np.ndarray) and v.dtype.kind in "SUO"):
        try:
            arr = np.array([float(x) for x in as_str(v).replace(",", " ").split()])
        except ValueError:
            return None
    else:
        try:
            arr = np.asarray(v, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            return None
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else None


def first_log(names: Iterable[str], lookup: Callable[[str], Any], positive: bool = True
              ) -> tuple[str | None, float | None]:
    """(name, value) of the first log in ``names`` whose value (``lookup(name)``, None when absent) has a finite
    mean — and, with ``positive``, a positive one; (None, None) when none does."""
    for name in names:
        if not name:
            continue
        raw = lookup(name)
        if raw is None:
            continue
        value = finite_mean(raw)
        if value is not None and (value > 0 or not positive):
            return name, value
    return None, None


def canonical_instrument(name: str | None) -> str | None:
    """The project's name of a known instrument (e.g. 'arcs' → 'ARCS'), None for an empty or unknown name."""
    if not name or not str(name).strip():
        return None
    try:
        return get_instrument(str(name).strip()).name
    except SpecError:
        return None


def resolve_ei(ei_from_file: float | None, ei_override: float | None, source: str) -> tuple[float, str]:
    """The incident energy (meV) to use and where it came from ("option" or "file").

    A given ``ei_override`` wins (flags override logs); without one the file must hold an Ei, else a
    ValueError naming the fix — never a silent default.
    """
    if ei_override is not None:
        if not (np.isfinite(ei_override) and ei_override > 0):
            raise ValueError(f"Ei = {ei_override!r}: give a positive incident energy in meV")
        return float(ei_override), "option"
    if ei_from_file is not None and np.isfinite(ei_from_file) and ei_from_file > 0:
        return float(ei_from_file), "file"
    raise ValueError(f"{source}: the file records no incident energy (none of the logs {list(EI_LOGS)} "
                     "nor NXSPE_info/fixed_energy): pass --ei E (meV) / ei_mev=E, or add an Ei sample log "
                     "(Mantid: AddSampleLog(Workspace, 'Ei', E, LogType='Number'))")
