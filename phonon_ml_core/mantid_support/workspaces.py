"""Mantid workspaces ↔ :class:`~phonon_ml_core.data.spectrum.Spectrum` (docs/mantid.md; Mantid imported lazily).

Workspace layout (SofQW output, docs/mantid_api.md §0, §6–7): X = energy transfer in ``DeltaE`` (meV) bin
edges; vertical axis = |Q| in ``MomentumTransfer`` as a ``BinEdgeAxis`` (n_Q + 1 edges, point values are
accepted on input); one spectrum per |Q| bin, so ``extractY()`` is (n_Q, n_E) = the transpose of the
core's (n_E, n_Q). The transposed layout (X = |Q|, vertical = DeltaE) is accepted on input. Bins without
coverage are NaN. A distribution workspace holds densities (Y per meV); counts per bin are converted to
densities on the way in so that rebinning conserves the integral (SofQW divides by the bin widths only for
distribution input, SofQW-v1.rst). Outputs are χ''/S densities and marked as distributions.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from phonon_ml_core.mantid_support.logs import incident_energy, log_text, sample_temperature
from phonon_ml_core.mantid_support.specs_properties import record_specs, workspace_experiment, workspace_material

#: Energy-transfer unit IDs and their factor to meV (as the NeXus reader).
ENERGY_UNITS: dict[str, float] = {"DeltaE": 1.0, "DeltaE_inWavenumber": 0.12398419843320026,
                                  "DeltaE_inFrequency": 0.0041356676969248}
Q_UNIT = "MomentumTransfer"
#: Logs written on output workspaces so that spectra round-trip without loss.
QUANTITY_LOG = "PhononMLQuantity"
NORMALIZATION_LOG = "PhononMLNormalization"
MASK_LOG = "PhononMLGridMaskSHA256"


def _unit_id(axis: Any) -> str:
    try:
        return str(axis.getUnit().unitID())
    except (RuntimeError, AttributeError):
        return ""


def sqw_layout(ws: Any) -> str:
    """'sofqw' (X = DeltaE, vertical = |Q|) or 'transposed' (X = |Q|, vertical = DeltaE).

    ValueError, naming the fix, for anything else (X not energy transfer, vertical axis not |Q|, text or
    spectrum-number axes, point data).
    """
    if not hasattr(ws, "getNumberHistograms"):
        raise ValueError(f"expected a MatrixWorkspace holding S(|Q|,E), got a {type(ws).__name__}")
    x_unit, v_unit = _unit_id(ws.getAxis(0)), _unit_id(ws.getAxis(1))
    vaxis = ws.getAxis(1)
    if x_unit in ENERGY_UNITS and v_unit == Q_UNIT:
        layout = "sofqw"
    elif x_unit == Q_UNIT and v_unit in ENERGY_UNITS:
        layout = "transposed"
    elif x_unit not in ENERGY_UNITS and x_unit != Q_UNIT:
        raise ValueError(f"the X unit is '{x_unit or 'none'}', not energy transfer (DeltaE): convert with "
                         "ConvertUnits(Target='DeltaE', EMode='Direct') and SofQW(Method='NormalisedPolygon') first")
    else:
        what = ("spectrum numbers" if vaxis.isSpectra() else
                "text labels" if vaxis.isText() else f"'{v_unit or 'none'}'")
        raise ValueError(f"the vertical axis holds {what}, not |Q| (MomentumTransfer): run "
                         "SofQW(InputWorkspace, QAxisBinning=..., EMode='Direct', Method='NormalisedPolygon') "
                         "to get powder S(|Q|,E)")
    if vaxis.isText() or vaxis.isSpectra():
        raise ValueError("the vertical axis must be numeric (|Q| or energy-transfer values)")
    if not ws.isHistogramData():
        raise ValueError("the workspace holds point data: S(|Q|,E) from SofQW has bin edges; "
                         "ConvertToHistogram first")
    return layout


def check_sqw_workspace(ws: Any) -> str | None:
    """The problem with ``ws`` as S(|Q|,E) input, or None (for validateInputs)."""
    try:
        sqw_layout(ws)
    except ValueError as exc:
        return str(exc)
    return None


def workspace_quantity(ws: Any) -> str:
    """"S" or "chi''": the ``PhononMLQuantity`` log, else "chi''" when the Y label says so, else "S"."""
    quantity = log_text(ws, QUANTITY_LOG)
    if quantity in ("S", "chi''"):
        return quantity
    label = (str(ws.YUnitLabel()) + " " + str(ws.YUnit())).lower()
    return "chi''" if ("chi" in label or "susceptib" in label) else "S"


def _as_density(y: np.ndarray, e: np.ndarray, energy_widths: np.ndarray, distribution: bool, layout: str):
    """Y and E as densities per meV: unchanged for a distribution, else divided by the energy-bin widths."""
    if distribution:
        return y, e
    w = energy_widths[None, :] if layout == "sofqw" else energy_widths[:, None]
    return y / w, e / w


def workspace_to_spectrum(ws: Any, temperature: float | None = None, ei_mev: float | None = None,
                          temperature_log: str = "SampleTemp", quantity: str | None = None):
    """A :class:`Spectrum` (n_E, n_Q) on the workspace's own axes; mask = finite pixels.

    Args:
        ws: MatrixWorkspace in SofQW layout or transposed (X = |Q|, vertical = DeltaE).
        temperature: K, overriding the logs (``temperature_log`` then the fallbacks).
        ei_mev: meV, overriding the ``Ei`` log.
        quantity: "S" or "chi''"; default the ``PhononMLQuantity`` log, else "chi''" when the Y label
            says so, else "S".

    The material and experiment recorded on the workspace (``PhononMLMaterial``/``PhononMLExperiment``)
    come back as the spectrum's ``material``/``experiment`` when the experiment's grid is the workspace's.
    """
    from phonon_ml_core.data.normalization import is_mean_normalized
    from phonon_ml_core.readers._common import axis_edges, check_data, spectrum_on_axes

    layout = sqw_layout(ws)
    y = np.array(ws.extractY(), dtype=float)
    e = np.array(ws.extractE(), dtype=float)
    x = np.array(ws.readX(0), dtype=float)
    nh, nb = y.shape
    if nh > 1:
        xs = np.array(ws.extractX(), dtype=float)
        if not np.allclose(xs, xs[:1], equal_nan=True):
            raise ValueError("the X bins differ between spectra: Rebin to common bins first")
    vert = np.asarray(ws.getAxis(1).extractValues(), dtype=float)
    check_data(y, e, "workspace")
    x_unit, v_unit = _unit_id(ws.getAxis(0)), _unit_id(ws.getAxis(1))
    if layout == "sofqw":
        e_edges = axis_edges(x, nb, "energy-transfer (X)", "workspace") * ENERGY_UNITS[x_unit]
        q_edges = axis_edges(vert, nh, "|Q| (vertical)", "workspace")
        y, e = _as_density(y, e, np.abs(np.diff(e_edges)), bool(ws.isDistribution()), layout)
        inten, errs = y.T, e.T
    else:
        q_edges = axis_edges(x, nb, "|Q| (X)", "workspace")
        e_edges = axis_edges(vert, nh, "energy-transfer (vertical)", "workspace") * ENERGY_UNITS[v_unit]
        y, e = _as_density(y, e, np.abs(np.diff(e_edges)), bool(ws.isDistribution()), layout)
        inten, errs = y, e
    t_log, t = (None, float(temperature)) if temperature is not None else sample_temperature(ws, temperature_log)
    ei_log, ei = (None, float(ei_mev)) if ei_mev is not None else incident_energy(ws)
    if quantity is None:
        quantity = workspace_quantity(ws)
    meta = {"format": "mantid_workspace", "layout": layout, "x_unit": x_unit, "vertical_unit": v_unit,
            "ei_log": ei_log, "temperature_log": t_log, "workspace_title": str(ws.getTitle()),
            "distribution": bool(ws.isDistribution())}
    s = spectrum_on_axes(inten, errs, e_edges, q_edges, ei_mev=ei, temperature=t, quantity=quantity,
                         metadata=meta, instrument="")
    if log_text(ws, NORMALIZATION_LOG) == "mean" and is_mean_normalized(s.intensity, s.grid.mask, atol=1e-6):
        s = replace(s, normalization="mean")
    if s.errors is not None and not np.any(s.errors[s.grid.mask]):
        s = replace(s, errors=None)  # Mantid workspaces always carry E; all-zero means "no errors"
    material, experiment = workspace_material(ws), workspace_experiment(ws)
    if experiment is not None and not (experiment.grid.same_as(s.grid) and experiment.ei_mev == s.grid.ei_mev):
        experiment = None
    return replace(s, material=material, experiment=experiment,
                   instrument=experiment.instrument if experiment is not None else s.instrument,
                   sample=material.name if material is not None else s.sample)


def _y_label(spectrum) -> str:
    q = "chi''(|Q|,E)" if spectrum.quantity == "chi''" else "S(|Q|,E)"
    return q + (" (mean-normalised)" if spectrum.normalization == "mean" else "")


def spectrum_to_workspace(spectrum, title: str = "", material=None, experiment=None):
    """A Workspace2D laid out like SofQW output holding one spectrum (NaN outside the mask), a distribution.

    X = DeltaE bin edges (meV), vertical = |Q| ``BinEdgeAxis`` in MomentumTransfer, one spectrum per
    |Q| bin; logs ``Ei`` (meV), ``SampleTemp`` (K, when known), ``PhononMLQuantity``,
    ``PhononMLNormalization``, ``PhononMLGridMaskSHA256`` and the material and experiment (``material``/
    ``experiment`` or the spectrum's own). Built with the clean ``WorkspaceFactory.create("Workspace2D", ...)``.
    """
    from mantid.api import BinEdgeAxis, WorkspaceFactory

    if spectrum.is_set:
        raise ValueError("spectrum_to_workspace takes one spectrum; convert the members of a set one by one")
    s = spectrum.masked()
    g = s.grid
    n_e, n_q = g.shape
    y = np.asarray(s.intensity, dtype=float).T
    e = np.zeros_like(y) if s.errors is None else np.where(np.isfinite(y), np.asarray(s.errors, float).T, 0.0)
    ws = WorkspaceFactory.create("Workspace2D", n_q, n_e + 1, n_e)
    edges = np.asarray(g.energy_edges, dtype=float)
    for i in range(n_q):
        ws.setX(i, edges)
        ws.setY(i, np.ascontiguousarray(y[i]))
        ws.setE(i, np.ascontiguousarray(e[i]))
    ws.getAxis(0).setUnit("DeltaE")
    axis = BinEdgeAxis.create(n_q + 1)
    axis.setUnit(Q_UNIT)
    for i, v in enumerate(np.asarray(g.q_edges, dtype=float)):
        axis.setValue(i, float(v))
    ws.replaceAxis(1, axis)
    ws.setYUnitLabel(_y_label(s))
    ws.setDistribution(True)
    if title:
        ws.setTitle(title)
    run = ws.getRun()
    run.addProperty("Ei", float(g.ei_mev), "meV", True)
    if s.temperature is not None and np.isfinite(s.temperature):
        run.addProperty("SampleTemp", float(s.temperature), "K", True)
    run.addProperty(QUANTITY_LOG, str(s.quantity), True)
    run.addProperty(NORMALIZATION_LOG, str(s.normalization), True)
    run.addProperty(MASK_LOG, g.mask_hash(), True)
    record_specs(ws, material if material is not None else s.material,
                 experiment if experiment is not None else s.experiment)
    return ws


def on_grid(spectrum, grid):
    """``spectrum`` on a model's ``grid`` (same axes): :func:`phonon_ml_core.learn.inputs.onto_model_grid`."""
    from phonon_ml_core.learn.inputs import onto_model_grid

    return onto_model_grid(spectrum, grid)
