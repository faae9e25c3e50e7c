"""Helpers shared by the readers: validation, axis handling, building a :class:`Spectrum`."""
from __future__ import annotations

import h5py
import numpy as np

from phonon_ml_core.specs.grid import Grid, centres_to_edges, edges_to_centres
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.readers.logs import INSTRUMENT_LOGS, as_str, canonical_instrument, finite_mean, resolve_ei
from phonon_ml_core.specs import STANDARD_EXPERIMENT, get_instrument

__all__ = ["as_str", "attr", "axis_edges", "check_data", "finite_mean", "read_instrument_name", "scalar_value",
           "spectrum_on_axes"]


def attr(obj: h5py.HLObject, name: str, default: str = "") -> str:
    return as_str(obj.attrs[name]) if name in obj.attrs else default


def scalar_value(ds: h5py.Dataset) -> float | None:
    """Mean of the finite numbers in a (possibly time-series or string) dataset; None if there are none."""
    return finite_mean(ds[()])


def read_instrument_name(entry: h5py.Group) -> str:
    """The instrument name of a NeXus entry (``instrument/name``, else an instrument log); "" when absent."""
    inst = entry.get("instrument")
    if isinstance(inst, h5py.Group) and isinstance(inst.get("name"), h5py.Dataset):
        return as_str(inst["name"][()]).strip()
    logs = entry.get("logs")
    for name in INSTRUMENT_LOGS:
        g = logs.get(name) if isinstance(logs, h5py.Group) else None
        ds = g.get("value") if isinstance(g, h5py.Group) else g
        if isinstance(ds, h5py.Dataset):
            return as_str(ds[()]).strip()
    return ""


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


def detector_range(instrument: str | None) -> tuple[float, float]:
    """Detector 2θ range (deg) of a known instrument; the standard experiment's for an unknown one."""
    name = canonical_instrument(instrument)
    return get_instrument(name).two_theta_deg if name else STANDARD_EXPERIMENT.two_theta_deg


def spectrum_on_axes(intensity: np.ndarray, errors: np.ndarray | None, energy_edges: np.ndarray,
                     q_edges: np.ndarray, *, ei_mev: float | None, temperature: float | None,
                     source: str = "the input", ei_override: float | None = None, quantity: str = "S",
                     metadata: dict | None = None, instrument: str = "", sample: str = "") -> Spectrum:
    """A :class:`Spectrum` on the file's own (E, |Q|) axes; mask = finite pixels.

    ``intensity`` is (n_E, n_Q); decreasing axes are flipped to increasing. ``ei_mev`` is the file's
    incident energy (meV, None when it has none) and ``ei_override`` the user's: the override wins, and
    with neither a ValueError names the fix (never a silent default). ``instrument`` (the file's name, or
    the user's) sets the detector 2θ range of the grid when it is a known instrument.
    """
    ei, ei_source = resolve_ei(ei_mev, ei_override, source)
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
    meta["ei_from_file"] = ei_source == "file"
    meta["ei_mev"] = ei
    known = canonical_instrument(instrument)
    grid = Grid(q=edges_to_centres(qe), energy=edges_to_centres(ee), mask=np.isfinite(y), ei_mev=ei,
                two_theta_deg=detector_range(known), q_edges=qe, energy_edges=ee)
    if e is not None:
        e = np.where(np.isfinite(y), e, np.nan)
    return Spectrum(intensity=np.ascontiguousarray(y), grid=grid, temperature=temperature, quantity=quantity,
                    normalization="none", errors=None if e is None else np.ascontiguousarray(e),
                    instrument=known or (instrument or "").strip(), sample=sample, metadata=meta)
