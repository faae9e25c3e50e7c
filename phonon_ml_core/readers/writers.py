"""Minimal h5py writers in the Mantid processed-NeXus and NXSPE layouts (docs/mantid_api.md §11).

They write what the readers need (and what SaveNexusProcessed / SaveNXSPE write for those items),
for tests, examples and exchanging synthetic data; they are not full Mantid files.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

import h5py
import numpy as np

from phonon_ml_core.data.fileio import atomic_path
from phonon_ml_core.specs import STANDARD_EXPERIMENT


def _s(text: str) -> np.bytes_:
    return np.bytes_(text.encode())


def write_mantid_nexus(path: str | os.PathLike, values: np.ndarray, axis1: np.ndarray, axis2: np.ndarray,
                       errors: np.ndarray | None = None, axis1_units: str = "DeltaE",
                       axis2_units: str = "MomentumTransfer", logs: Mapping[str, object] | None = None,
                       title: str = "sqw", frac_area: np.ndarray | None = None, instrument: str | None = None) -> None:
    """A processed-NeXus file with one 2-D workspace.

    ``values`` is (nhist, nbins): for SofQW output rows are |Q| bins and columns energy-transfer bins;
    ``axis1`` holds X (nbins + 1 edges or nbins points), ``axis2`` the vertical axis (nhist + 1 edges
    or nhist points). ``logs`` maps sample-log names to numbers, arrays (time series) or strings.
    ``frac_area`` writes an unfinalised RebinnedOutput (values not yet divided by the fractional area).
    ``instrument`` writes ``instrument/name`` (as SaveNexusProcessed does for a workspace with an instrument).
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        e = f.create_group("mantid_workspace_1")
        e.attrs["NX_class"] = _s("NXentry")
        e.create_dataset("title", data=_s(title))
        e.create_dataset("workspace_name", data=_s(title))
        d = e.create_dataset("definition", data=_s("Mantid Processed Workspace"))
        d.attrs["Version"] = _s("1.0")
        ws = e.create_group("workspace")
        ws.attrs["NX_class"] = _s("NXdata")
        v = ws.create_dataset("values", data=np.asarray(values, dtype=float))
        v.attrs["signal"] = 1
        v.attrs["axes"] = _s("axis2,axis1")
        v.attrs["units"] = _s("Counts")
        v.attrs["unit_label"] = _s("Intensity")
        ws.create_dataset("errors", data=np.zeros_like(values, dtype=float) if errors is None else errors)
        a = ws.create_dataset("axis1", data=np.asarray(axis1, dtype=float))
        a.attrs["units"] = _s(axis1_units)
        a.attrs["distribution"] = _s("0")
        if axis2_units == "TextAxis":
            ws.create_dataset("axis2", data=_s("\n".join(str(x) for x in axis2)))
        else:
            ws.create_dataset("axis2", data=np.asarray(axis2, dtype=float))
        ws["axis2"].attrs["units"] = _s(axis2_units)
        if frac_area is not None:
            fa = ws.create_dataset("frac_area", data=np.asarray(frac_area, dtype=float))
            fa.attrs["finalized"] = _s("0")
            fa.attrs["sqrd_errors"] = _s("0")
        if instrument:
            inst = e.create_group("instrument")
            inst.attrs["NX_class"] = _s("NXinstrument")
            inst.create_dataset("name", data=_s(instrument))
        lg = e.create_group("logs")
        for name, val in (logs or {}).items():
            g = lg.create_group(name)
            g.attrs["NX_class"] = _s("NXlog")
            value = _s(val) if isinstance(val, str) else np.atleast_1d(np.asarray(val, dtype=float))
            g.create_dataset("value", data=value)
            if not isinstance(val, str) and np.size(val) > 1:
                g.create_dataset("time", data=np.arange(np.size(val), dtype=float))


def write_nxspe(path: str | os.PathLike, data: np.ndarray, energy_edges: np.ndarray, polar_deg: np.ndarray,
                polar_width_deg: np.ndarray | None = None, error: np.ndarray | None = None, ei_mev: float = np.nan,
                psi_deg: float = np.nan, azimuthal_deg: np.ndarray | None = None, entry: str = "mantid_workspace",
                temperature: float | None = None, instrument: str = STANDARD_EXPERIMENT.instrument,
                sample_logs: Mapping[str, object] | None = None) -> None:
    """An NXSPE file: ``data`` (n_det, n_E), ``energy_edges`` (n_E + 1, meV), angles in degrees.

    ``temperature`` (K) goes to ``NXSPE_info/temperature``; ``sample_logs`` (name → number or time series) to
    ``sample/<name>``; ``instrument`` to ``instrument/name``.
    """
    n_det = np.shape(data)[0]
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        e = f.create_group(entry)
        e.attrs["NX_class"] = _s("NXentry")
        d = e.create_dataset("definition", data=_s("NXSPE"))
        d.attrs["version"] = _s("1.3")
        e.create_dataset("program_name", data=_s("mantid"))
        info = e.create_group("NXSPE_info")
        info.attrs["NX_class"] = _s("NXcollection")
        info.create_dataset("fixed_energy", data=[float(ei_mev)]).attrs["units"] = _s("meV")
        info.create_dataset("psi", data=[float(psi_deg)]).attrs["units"] = _s("degrees")
        info.create_dataset("ki_over_kf_scaling", data=[1])
        if temperature is not None:
            info.create_dataset("temperature", data=[float(temperature)]).attrs["units"] = _s("K")
        inst = e.create_group("instrument")
        inst.create_dataset("name", data=_s(instrument))
        sample = e.create_group("sample")
        sample.attrs["NX_class"] = _s("NXsample")
        for name, val in (sample_logs or {}).items():
            sample.create_dataset(name, data=np.atleast_1d(np.asarray(val, dtype=float)))
        g = e.create_group("data")
        g.attrs["NX_class"] = _s("NXdata")
        ds = g.create_dataset("data", data=np.asarray(data, dtype=float))
        ds.attrs["signal"] = 1
        ds.attrs["axes"] = _s("polar:energy")
        g.create_dataset("error", data=np.zeros_like(data, dtype=float) if error is None else error)
        g.create_dataset("energy", data=np.asarray(energy_edges, dtype=float)).attrs["units"] = _s("meV")
        g.create_dataset("polar", data=np.asarray(polar_deg, dtype=float))
        if polar_width_deg is not None:
            g.create_dataset("polar_width", data=np.asarray(polar_width_deg, dtype=float))
        az = np.zeros(n_det) if azimuthal_deg is None else azimuthal_deg
        g.create_dataset("azimuthal", data=np.asarray(az, dtype=float))
        g.create_dataset("azimuthal_width", data=np.full(n_det, 1.0))
        g.create_dataset("distance", data=np.full(n_det, 3.0))
