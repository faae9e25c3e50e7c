"""Reader for Mantid processed NeXus files (SaveNexusProcessed) holding S(|Q|,E) from SofQW*.

Layout (docs/mantid_api.md §11): ``mantid_workspace_<n>/workspace/{values, errors, axis1, axis2}``;
``values`` is (nhist, nbins); ``axis1`` is X (bins), ``axis2`` the vertical axis (one value per
histogram, or nhist + 1 edges). SofQW output has X = energy transfer (``DeltaE``) and the vertical
axis = |Q| (``MomentumTransfer``); the transposed layout (|Q| on X) is accepted too. Sample logs are
``mantid_workspace_<n>/logs/<name>/value``.
"""
from __future__ import annotations

import os

import h5py
import numpy as np
from scipy import constants as _c

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.readers._common import attr, axis_edges, check_data, read_instrument_name, spectrum_on_axes
from phonon_ml_core.readers.logs import EI_LOGS, TEMPERATURE_LOGS, as_str, first_log

#: Energy-transfer unit IDs and their factor to meV.
ENERGY_UNITS: dict[str, float] = {
    "DeltaE": 1.0,
    "DeltaE_inWavenumber": _c.h * _c.c * 100 / _c.e * 1e3,   # cm⁻¹ → meV
    "DeltaE_inFrequency": _c.h * 1e9 / _c.e * 1e3,           # GHz → meV
}
Q_UNITS: tuple[str, ...] = ("MomentumTransfer",)

def is_mantid_nexus(f: h5py.File) -> bool:
    return any(k.startswith("mantid_workspace_") for k in f)


def read_log(logs: h5py.Group | None, names: tuple[str, ...], positive: bool = True
             ) -> tuple[str | None, float | None]:
    """(name, value) of the first log in ``names`` of a NeXus ``logs`` group with a finite (positive) value."""
    if logs is None:
        return None, None

    def lookup(name: str):
        g = logs.get(name)
        ds = g.get("value") if isinstance(g, h5py.Group) else g
        return ds[()] if isinstance(ds, h5py.Dataset) else None

    return first_log(names, lookup, positive)


def _bad_axis_message(source: str, which: str, unit: str) -> str:
    if unit in ("spectraNumber", "SpectraNumber", "Empty", "Label", "TextAxis", ""):
        kind = "spectrum numbers" if "pectra" in unit else f"'{unit or 'no unit'}'"
        return (f"{source}: the {which} axis holds {kind}, not |Q|: the workspace is detector × energy data. "
                "Convert it to powder S(|Q|,E) first: SofQW(InputWorkspace, QAxisBinning=..., EMode='Direct', "
                "Method='NormalisedPolygon') and save that, or save it with SaveNXSPE and pass the .nxspe file")
    if unit in ("Degrees", "Phi", "TwoTheta"):
        return (f"{source}: the {which} axis is the scattering angle ({unit}), not |Q|: "
                "run SofQW (Method='NormalisedPolygon') to convert 2θ to |Q| before saving")
    if unit == "QSquared":
        return (f"{source}: the {which} axis is Q² (QSquared), not |Q|: rebin in |Q| (SofQW) and save again")
    return (f"{source}: the {which} axis has unit '{unit}', neither energy transfer (DeltaE) nor |Q| "
            "(MomentumTransfer): convert with ConvertUnits(Target='DeltaE', EMode='Direct') then SofQW, "
            "and save the S(|Q|,E) workspace")


def read_mantid_nexus(path: str | os.PathLike, entry: str | None = None, ei_mev: float | None = None,
                      instrument: str | None = None) -> Spectrum:
    """S(|Q|,E) from a Mantid processed NeXus file as a :class:`Spectrum` on the file's own axes.

    Args:
        path: the .nxs file (SaveNexusProcessed output of a SofQW* workspace).
        entry: the NXentry to read (default the first ``mantid_workspace_<n>``).
        ei_mev: incident energy (meV) overriding the logs; required when the file has no Ei log.
        instrument: instrument name overriding the file's.

    Energies are converted to meV, |Q| is in 1/Å. Ei (meV), the sample temperature (K) and the instrument
    come from the file (:mod:`phonon_ml_core.readers.logs`; time series averaged). NaN marks uncovered bins.
    A file without an Ei and no ``ei_mev`` is a ValueError.
    """
    source = os.fspath(path)
    with h5py.File(source, "r") as f:
        entries = sorted((k for k in f if k.startswith("mantid_workspace_")),
                         key=lambda k: int(k.rsplit("_", 1)[1]) if k.rsplit("_", 1)[1].isdigit() else 0)
        if not entries:
            raise ValueError(f"{source}: no mantid_workspace_<n> entry: not a Mantid processed NeXus file")
        name = entry or entries[0]
        if name not in f:
            raise ValueError(f"{source}: no entry {name!r}; the file has {entries}")
        g = f[name]
        ws = g.get("workspace")
        if ws is None:
            other = [k for k in ("event_workspace", "offsets_workspace", "mask_workspace", "peaks_workspace") if k in g]
            hint = (" an event workspace: histogram it (Rebin, ConvertUnits to DeltaE) and run SofQW first"
                    if "event_workspace" in other else f" {other or list(g.keys())}")
            raise ValueError(f"{source}: entry {name} has no 2-D 'workspace' group but{hint}; "
                             "save the S(|Q|,E) workspace from SofQW with SaveNexusProcessed")
        for key in ("values", "axis1", "axis2"):
            if key not in ws:
                raise ValueError(f"{source}: {name}/workspace lacks the dataset {key!r}: the file is incomplete "
                                 "or not a histogram workspace; re-save it with SaveNexusProcessed")
        y = np.asarray(ws["values"][()], dtype=float)
        err = np.asarray(ws["errors"][()], dtype=float) if "errors" in ws else None
        if y.ndim != 2:
            raise ValueError(f"{source}: values have shape {y.shape}, expected (n_histograms, n_bins)")
        if "frac_area" in ws and attr(ws["frac_area"], "finalized", "1") in ("0", "false", "False"):
            frac = np.asarray(ws["frac_area"][()], dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                y = np.where(frac > 0, y / frac, np.nan)
                if err is not None:
                    sq = attr(ws["frac_area"], "sqrd_errors", "0") in ("1", "true", "True")
                    err = np.where(frac > 0, np.sqrt(np.abs(err)) / frac if sq else err / frac, np.nan)
        check_data(y, err, source)
        a1, a2 = ws["axis1"], ws["axis2"]
        u1, u2 = attr(a1, "units"), attr(a2, "units")
        x = np.asarray(a1[()], dtype=float)
        if x.ndim == 2:
            if not np.allclose(x, x[:1], equal_nan=True):
                raise ValueError(f"{source}: the X bins differ between histograms: Rebin to common bins first")
            x = x[0]
        vert = a2[()]
        if u2 == "TextAxis" or (isinstance(vert, np.ndarray) and vert.dtype.kind in "SUO"):
            raise ValueError(_bad_axis_message(source, "vertical", "TextAxis"))
        vert = np.asarray(vert, dtype=float)
        nh, nb = y.shape
        if u1 in ENERGY_UNITS and u2 in Q_UNITS:
            e_edges = axis_edges(x, nb, "energy-transfer (X)", source) * ENERGY_UNITS[u1]
            q_edges = axis_edges(vert, nh, "|Q| (vertical)", source)
            inten, errs = y.T, (None if err is None else err.T)
            layout = "SofQW (X = DeltaE, vertical = |Q|)"
        elif u1 in Q_UNITS and u2 in ENERGY_UNITS:
            q_edges = axis_edges(x, nb, "|Q| (X)", source)
            e_edges = axis_edges(vert, nh, "energy-transfer (vertical)", source) * ENERGY_UNITS[u2]
            inten, errs = y, err
            layout = "transposed (X = |Q|, vertical = DeltaE)"
        elif u1 not in ENERGY_UNITS and u1 not in Q_UNITS:
            raise ValueError(f"{source}: the X axis has unit '{u1 or 'none'}', not energy transfer (DeltaE): "
                             "convert with ConvertUnits(Target='DeltaE', EMode='Direct', EFixed=Ei), then "
                             "SofQW, and save the S(|Q|,E) workspace")
        else:
            raise ValueError(_bad_axis_message(source, "vertical", u2))
        logs = g.get("logs")
        ei_log, ei = read_log(logs, EI_LOGS)
        t_log, temp = read_log(logs, TEMPERATURE_LOGS, positive=False)
        meta = {"source_file": source, "format": "mantid_processed_nexus", "entry": name, "layout": layout,
                "x_unit": u1, "vertical_unit": u2, "ei_log": ei_log, "temperature_log": t_log,
                "workspace_title": as_str(g["title"][()]) if "title" in g else "",
                "distribution": attr(a1, "distribution", "")}
        if temp is not None and temp <= 0:
            meta["temperature_log_value"] = temp
            temp = None
        file_instrument = read_instrument_name(g)
        meta["instrument_in_file"] = file_instrument
        label = (attr(ws["values"], "unit_label") + " " + attr(ws["values"], "units")).lower()
        quantity = "chi''" if ("chi" in label or "susceptib" in label) else "S"
    return spectrum_on_axes(inten, errs, e_edges, q_edges, ei_mev=ei, ei_override=ei_mev, temperature=temp,
                            source=source, quantity=quantity, metadata=meta,
                            instrument=instrument or file_instrument)
