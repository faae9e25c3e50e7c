"""Reader for NXSPE files (SaveNXSPE): detector × energy data converted to powder S(|Q|,E).

Layout (docs/mantid_api.md §11): an NXentry with ``definition = "NXSPE"``, ``NXSPE_info/fixed_energy``
(Ei, meV), ``NXSPE_info/psi`` and ``data/{data, error, energy, polar, polar_width, azimuthal, ...}``;
``data`` is (n_det, n_E), ``energy`` holds n_E + 1 edges (meV), angles are in degrees.
"""
from __future__ import annotations

import os

import h5py
import numpy as np

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.readers._common import axis_edges, check_data, read_instrument_name, scalar_value, spectrum_on_axes
from phonon_ml_core.readers.logs import TEMPERATURE_LOGS, as_str, first_log, resolve_ei
from phonon_ml_core.readers.powder import default_q_edges, powder_sqw

#: Datasets (relative to the NXSPE entry) tried for the sample temperature (K), in order: the NXSPE fields,
#: then each sample log of :data:`~phonon_ml_core.readers.logs.TEMPERATURE_LOGS` under ``sample/`` or ``logs/``.
TEMPERATURE_PATHS: tuple[str, ...] = (("NXSPE_info/temperature", "sample/temperature", "sample/temperature/value")
                                      + tuple(f"{where}/{name}{tail}" for name in TEMPERATURE_LOGS
                                              for where, tail in (("sample", ""), ("sample", "/value"),
                                                                  ("logs", "/value"), ("logs", ""))))


def find_nxspe_entry(f: h5py.File) -> h5py.Group | None:
    """The first top-level group that is an NXSPE entry (definition NXSPE or an NXSPE_info group)."""
    for key in f:
        g = f[key]
        if not isinstance(g, h5py.Group):
            continue
        if "NXSPE_info" in g or ("definition" in g and as_str(g["definition"][()]).strip().upper() == "NXSPE"):
            return g
    return None


def _median_spacing(polar: np.ndarray) -> float:
    u = np.unique(np.round(polar[np.isfinite(polar)], 6))
    d = np.diff(u)
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


def read_nxspe(path: str | os.PathLike, q_edges: np.ndarray | None = None, dq: float = 0.05,
               ei_mev: float | None = None, instrument: str | None = None,
               min_coverage: float = 0.0) -> Spectrum:
    """Powder S(|Q|,E) from an NXSPE file as a :class:`Spectrum` on (file energy bins × |Q| bins).

    Args:
        path: the .nxspe file.
        q_edges: output |Q| edges (1/Å); default 0 to the largest |Q| reached in steps of ``dq``.
        dq: |Q| step (1/Å) of the default edges.
        ei_mev: incident energy (meV) overriding NXSPE_info/fixed_energy; required when the file has none.
        instrument: instrument name overriding the file's ``instrument/name``.
        min_coverage: |Q| bins whose area the detectors cover less than this fraction of are NaN (default 0:
            any overlap; :data:`~phonon_ml_core.data.rebin.HALF_AREA_COVERAGE` for the half-area rule).
    """
    source = os.fspath(path)
    with h5py.File(source, "r") as f:
        g = find_nxspe_entry(f)
        if g is None:
            raise ValueError(f"{source}: no NXSPE entry (definition 'NXSPE' with NXSPE_info): not an NXSPE file")
        if "data" not in g or not isinstance(g["data"], h5py.Group):
            raise ValueError(f"{source}: the NXSPE entry {g.name} has no 'data' group: the file is incomplete")
        d = g["data"]
        missing = [k for k in ("data", "energy", "polar") if k not in d]
        if missing:
            raise ValueError(f"{source}: {g.name}/data lacks {missing}: the file is incomplete; re-save with SaveNXSPE")
        y = np.asarray(d["data"][()], dtype=float)
        err = np.asarray(d["error"][()], dtype=float) if "error" in d else None
        if y.ndim != 2:
            raise ValueError(f"{source}: data/data has shape {y.shape}, expected (n_detectors, n_energies)")
        masked = ~np.isfinite(y) | (y <= -1e10)
        y = np.where(masked, np.nan, y)
        if err is not None and err.shape == y.shape:
            err = np.where(masked, np.nan, err)
        check_data(y, err, source)
        n_det, n_e = y.shape
        energy_edges = axis_edges(d["energy"][()], n_e, "energy (data/energy)", source)
        polar = np.asarray(d["polar"][()], dtype=float).reshape(-1)
        if polar.size != n_det:
            raise ValueError(f"{source}: data/polar has {polar.size} angles for {n_det} detectors "
                             "(mismatched array shapes): re-save with SaveNXSPE")
        meta = {"source_file": source, "format": "nxspe", "entry": g.name, "n_detectors": int(n_det)}
        if "polar_width" in d:
            width = np.asarray(d["polar_width"][()], dtype=float).reshape(-1)
            if width.size != n_det:
                raise ValueError(f"{source}: data/polar_width has {width.size} values for {n_det} detectors "
                                 "(mismatched array shapes)")
        else:
            width = np.full(n_det, _median_spacing(polar))
            meta["polar_width_assumed_deg"] = float(width[0])
        info = g.get("NXSPE_info")
        ei_file = scalar_value(info["fixed_energy"]) if info is not None and "fixed_energy" in info else None
        ei, _ = resolve_ei(ei_file, ei_mev, source)
        if info is not None and "psi" in info:
            psi = scalar_value(info["psi"])
            meta["psi_deg"] = psi

        def lookup(p: str):
            obj = g.get(p)
            return obj[()] if isinstance(obj, h5py.Dataset) else None

        t_path, temp = first_log(TEMPERATURE_PATHS, lookup)
        if t_path is not None:
            meta["temperature_path"] = t_path
        file_instrument = read_instrument_name(g)
        meta["instrument_in_file"] = file_instrument
    ee = energy_edges if energy_edges[-1] > energy_edges[0] else energy_edges[::-1]
    if energy_edges[-1] < energy_edges[0]:
        y = y[:, ::-1]
        err = None if err is None else err[:, ::-1]
    if q_edges is None:
        q_edges = default_q_edges(polar, width, ee, ei, dq)
    q_edges = np.asarray(q_edges, dtype=float)
    sqw, sqw_err = powder_sqw(y, err, ee, polar, width, ei, q_edges, min_coverage=min_coverage)
    if not np.isfinite(sqw).any():
        raise ValueError(f"{source}: no detector pixel maps into the |Q| range {q_edges[0]:.3g}–{q_edges[-1]:.3g} 1/Å "
                         "below Ei: check Ei, the detector angles and q_edges")
    return spectrum_on_axes(sqw, sqw_err, ee, q_edges, ei_mev=ei_file, ei_override=ei_mev, temperature=temp,
                            source=source, quantity="S", metadata=meta, instrument=instrument or file_instrument)
