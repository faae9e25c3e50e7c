"""Helpers shared by the readers: validation, axis handling, building a :class:`Spectrum`."""
from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from phonon_ml_core.data.grid import ARCS_TWO_THETA_RANGE_DEG, STANDARD_EI_MEV, Grid, centres_to_edges, edges_to_centres
from phonon_ml_core.data.spectrum import Spectrum


def as_str(v: Any) -> str:
    """An HDF5 attribute or scalar dataset value as ``str`` (bytes decoded, 1-element arrays unwrapped)."""
    if isinstance(v, np.ndarray):
        if v.size == 0:
            return ""
        v = v.reshape(-1)[0] if v.size == 1 else b"".join(x if isinstance(x, bytes) else str(x).encode() for x in v.reshape(-1))
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).decode(errors="replace")
    return str(v)


def attr(obj: h5py.HLObject, name: str, default: str = "") -> str:
    return as_str(obj.attrs[name]) if name in obj.attrs else default


def scalar_value(ds: h5py.Dataset) -> float | None:
    """Mean of the finite numbers in a (possibly time-series or string) dataset; None if there are none."""
    return finite_mean(ds[()])


def finite_mean(v: Any) -> float | None:
    """Mean of the finite numbers in a value (number, array, time series or a string of numbers); None if none
    (shared by the file readers and the Mantid log reader)."""
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


def axis_edges(values: np.ndarray, n: int, what: str, source: str) -> np.ndarray:
    """Bin edges (n + 1 values, increasing) from an axis stored as edges (n + 1) or points (n)."""
    v = np.asarray(values, dtype=float).reshape(-1)
    if v.size == n + 1:
        edges = v
    elif v.size == n and n >= 2:
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{source}: the {what} axis has non-finite values: fix the axis in the reduction")
        edges = centres_to_edges(v if v[-1] > v[0] else v[::-1])
        if v[-1] < v[0]:
            edges = edges[::-1]
    else:
        raise ValueError(f"{source}: the {what} axis has {v.size} values but the data have {n} bins along it; "
                         f"it must hold {n + 1} bin edges or {n} bin centres (mismatched array shapes)")
    if not np.all(np.isfinite(edges)):
        raise ValueError(f"{source}: the {what} axis has non-finite values: fix the axis in the reduction")
    d = np.diff(edges)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise ValueError(f"{source}: the {what} axis is not strictly monotonic: rebin to regular bins first")
    return edges


def check_data(y: np.ndarray, err: np.ndarray | None, source: str) -> None:
    """Raise ValueError for shape mismatch, infinite or all-NaN data and negative errors."""
    if err is not None and err.shape != y.shape:
        raise ValueError(f"{source}: errors have shape {err.shape} but the intensity has shape {y.shape} "
                         "(mismatched array shapes): the file is inconsistent, re-export it")
    if y.size == 0:
        raise ValueError(f"{source}: the intensity array is empty: nothing to read")
    n_inf = int(np.isinf(y).sum())
    if n_inf:
        raise ValueError(f"{source}: {n_inf} intensity values are infinite: replace them with NaN "
                         "(Mantid: ReplaceSpecialValues(InfinityValue=NaN)) or mask those pixels")
    if not np.isfinite(y).any():
        raise ValueError(f"{source}: the intensity is all NaN (no covered pixel): check the reduction "
                         "(masking, SofQW binning, Ei) and re-export")
    if err is not None:
        bad = np.isfinite(err) & (err < 0)
        if bad.any():
            raise ValueError(f"{source}: {int(bad.sum())} errors are negative: errors must be one-sigma "
                             "uncertainties (≥ 0); store sqrt(variance), not a signed quantity")


def spectrum_on_axes(intensity: np.ndarray, errors: np.ndarray | None, energy_edges: np.ndarray,
                     q_edges: np.ndarray, *, ei_mev: float | None, temperature: float | None,
                     quantity: str = "S", metadata: dict | None = None, instrument: str = "",
                     sample: str = "", two_theta_deg: tuple[float, float] = ARCS_TWO_THETA_RANGE_DEG) -> Spectrum:
    """A :class:`Spectrum` on the file's own (E, |Q|) axes; mask = finite pixels.

    ``intensity`` is (n_E, n_Q); decreasing axes are flipped to increasing.
    """
    y = np.asarray(intensity, dtype=float)
    e = None if errors is None else np.asarray(errors, dtype=float)
    ee = np.asarray(energy_edges, dtype=float)
    qe = np.asarray(q_edges, dtype=float)
    if ee[-1] < ee[0]:
        ee, y = ee[::-1], y[::-1]
        e = None if e is None else e[::-1]
    if qe[-1] < qe[0]:
        qe, y = qe[::-1], y[:, ::-1]
        e = None if e is None else e[:, ::-1]
    meta = dict(metadata or {})
    if ei_mev is None or not np.isfinite(ei_mev) or ei_mev <= 0:
        meta["ei_from_file"] = False
        ei_mev = STANDARD_EI_MEV
    else:
        meta["ei_from_file"] = True
    grid = Grid(q=edges_to_centres(qe), energy=edges_to_centres(ee), mask=np.isfinite(y), ei_mev=float(ei_mev),
                two_theta_deg=two_theta_deg, q_edges=qe, energy_edges=ee)
    if e is not None:
        e = np.where(np.isfinite(y), e, np.nan)
    return Spectrum(intensity=np.ascontiguousarray(y), grid=grid, temperature=temperature, quantity=quantity,
                    normalization="none", errors=None if e is None else np.ascontiguousarray(e),
                    instrument=instrument, sample=sample, metadata=meta)
