"""The one home of entry checks shared by the CLI and the public API: numbers, ranges, input files, spectra.

Every check raises ``ValueError`` (or ``FileNotFoundError``/``IsADirectoryError`` for paths) with a message naming
the problem, the flag or argument, and the fix, before any heavy work starts.
"""
from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np

#: Highest sample temperature accepted, K (above the melting point of every metal: a typo, not a measurement).
MAX_TEMPERATURE_K = 5000.0


def check_number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                 low_inclusive: bool = False, integer: bool = False, unit: str = "") -> float:
    """``value`` as a finite number (int when ``integer``) with ``low < value`` (``≤`` when ``low_inclusive``)
    and ``value ≤ high``; ValueError naming ``name`` (a flag or argument) otherwise."""
    u = f" {unit}" if unit else ""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be a number{u}, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number{u}, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number{u}, got {value!r}")
    if integer and x != int(x):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if low is not None and (x < low or (x == low and not low_inclusive)):
        rel = ("non-negative (≥ 0)" if low_inclusive else "positive (> 0)") if low == 0 else \
            f"at least {low:g}" if low_inclusive else f"greater than {low:g}"
        raise ValueError(f"{name} must be {rel}{u}, got {value!r}")
    if high is not None and x > high:
        raise ValueError(f"{name} must be at most {high:g}{u}, got {value!r}")
    return int(x) if integer else x


def check_temperature(value: Any, name: str = "temperature") -> float:
    """A sample temperature in kelvin: finite, > 0 and ≤ :data:`MAX_TEMPERATURE_K`."""
    return check_number(value, name, low=0.0, high=MAX_TEMPERATURE_K, unit="K")


def check_interval(pair: Any, name: str, unit: str = "", low: float | None = None,
                   low_inclusive: bool = True) -> tuple[float, float]:
    """A (lo, hi) pair of finite numbers with lo < hi (e.g. bounds or a sampling range)."""
    try:
        lo, hi = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two numbers (LO, HI){' in ' + unit if unit else ''}, got {pair!r}") from None
    for v in (lo, hi):
        check_number(v, name, low=low, low_inclusive=low_inclusive, unit=unit)
    if not lo < hi:
        raise ValueError(f"{name} is reversed or empty: LO must be below HI, got ({lo:g}, {hi:g}); "
                         f"write it as ({min(lo, hi):g}, {max(lo, hi):g})")
    return lo, hi


def check_input_file(path: Any, name: str = "input", allow_dir: bool = False) -> Path:
    """An existing, readable regular file (a folder too when ``allow_dir``); named pipes, devices and sockets are
    refused (reading them would hang)."""
    if path is None or (isinstance(path, str) and not path.strip()):
        raise ValueError(f"{name}: no file given")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path, got {type(path).__name__}")
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{name} {p} not found: the file does not exist; check the path") from None
    except OSError as exc:
        raise ValueError(f"{name} {p} cannot be read ({exc.strerror}): check the path and its permissions") from None
    if stat.S_ISDIR(st.st_mode):
        if allow_dir:
            return p
        raise IsADirectoryError(f"{name} {p} is a folder: give a file")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{name} {p} is not a regular file (a pipe, device or socket): give a file on disk")
    if not os.access(p, os.R_OK):
        raise PermissionError(f"{name} {p} is not readable: check its permissions")
    return p


def check_device(device: Any, name: str = "device") -> str:
    """A torch device string that exists on this machine (``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""
    text = str(device).strip().lower()
    kind, _, index = text.partition(":")
    if kind == "cpu" and not index:
        return text
    if kind not in ("cuda", "mps") or (index and not index.isdigit()):
        raise ValueError(f"{name} {device!r} is not a torch device: use cpu, cuda, cuda:N or mps")
    import torch
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {device!r}: CUDA is not available on this machine: use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise ValueError(f"{name} {device!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{name} {device!r}: MPS is not available on this machine: use --device cpu")
    return text


def check_memory(n_bytes: float, what: str, fix: str, fraction: float = 0.8) -> None:
    """Refuse work whose arrays need more than ``fraction`` of this machine's memory (before allocating)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if n_bytes > fraction * total:
        raise ValueError(f"{what} needs about {n_bytes / 2**30:.1f} GiB but this machine has "
                         f"{total / 2**30:.1f} GiB of memory: {fix}")


def check_axis(values: Any, name: str) -> np.ndarray:
    """A 1-D axis of bin centres: at least two finite, strictly increasing values (``name`` names the file and
    the axis in the message)."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least two bin centres, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} has {int((~np.isfinite(v)).sum())} NaN or infinite values: rewrite the file with "
                         "finite bin centres")
    if not np.all(np.diff(v) > 0):
        order = "descending" if np.all(np.diff(v) < 0) else "not strictly increasing"
        raise ValueError(f"{name} is {order}: bin centres must increase strictly (reverse the axis and the "
                         "intensity with it)")
    return v


def check_spectrum_object(spectrum: Any, name: str = "spectrum") -> Any:
    """``spectrum`` must be a :class:`~phonon_ml_core.data.spectrum.Spectrum` (not None, an array or a path)."""
    if all(hasattr(spectrum, a) for a in ("intensity", "grid", "mask", "temperatures", "normalization")):
        return spectrum   # duck-typed: this module must not import data.spectrum (which uses it)
    hint = ("read it first with phonon_ml_core.readers.read_spectrum(path)" if isinstance(spectrum, (str, os.PathLike))
            else "wrap the array with its grid: Spectrum(intensity=..., grid=..., temperature=...)"
            if isinstance(spectrum, np.ndarray) else "pass a Spectrum (phonon_ml_core.data.spectrum.Spectrum)")
    raise TypeError(f"{name} must be a Spectrum, got {type(spectrum).__name__}: {hint}")


def check_spectrum_values(spectrum: Any, name: str = "spectrum", need_temperature: bool = True,
                          temperature: float | None = None) -> None:
    """Refuse non-finite intensities on the valid pixels, out-of-range magnitudes, a claimed mean normalisation that
    the values do not satisfy, and (when ``need_temperature``) a missing or non-physical temperature."""
    from phonon_ml_core.data.normalization import is_mean_normalized
    check_spectrum_object(spectrum, name)
    x = np.asarray(spectrum.intensity, dtype=float)
    if x.size == 0 or spectrum.n_spectra == 0:
        raise ValueError(f"{name} holds no spectra: give a file with at least one spectrum")
    v = x[..., spectrum.mask]
    bad = ~np.isfinite(v)
    if bad.all():
        raise ValueError(f"{name} has no finite values on its valid pixels (all NaN or infinite): "
                         "check the reduction; this is not a kinematic-range problem")
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} NaN or infinite values on its valid pixels: mask them "
                         "(set the grid mask) or preprocess the raw file again")
    if np.abs(v).max() > 1e100:
        raise ValueError(f"{name} has intensities of order {np.abs(v).max():.1e}: out of any sensible range; "
                         "check the units and preprocess the raw file again")
    if spectrum.normalization == "mean" and not is_mean_normalized(x, spectrum.mask, atol=1e-3):
        raise ValueError(f"{name} claims mean normalisation (attribute normalization='mean') but its values are not "
                         "mean-normalised (zero mean, unit span on the valid pixels): run `phonon-ml preprocess` "
                         "on it, or fix the attribute")
    if need_temperature:
        if temperature is not None:
            check_temperature(temperature, "temperature")
            return
        t = None if spectrum.temperature is None else np.asarray(spectrum.temperatures(), dtype=float)
        if t is None or not np.all(np.isfinite(t)):
            raise ValueError(f"{name} has no temperature: give --temperature T (K) / temperature=T")
        for tk in t:
            check_temperature(tk, f"{name} temperature")
