"""Shared harness of the Mantid algorithm tests: the ``mantid`` fixture (real Mantid when ``import
mantid.simpleapi`` works, else this stand-in, injected via sys.path inside the fixture only) and workspace helpers."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).resolve().parent
ALGS = ("SimulatePowderINS", "PreprocessForML", "TrainPhononVAE", "PredictForceConstants",
        "FitForceConstantsNelderMead", "AdaptPhononModel")
ERRORS = (RuntimeError, TypeError, ValueError)


def _purge_mantid():
    for name in [m for m in sys.modules if m == "mantid" or m.startswith("mantid.")
                 or m.startswith("phonon_ml_mantid_plugin_") or m == "phonon_ml_core.mantid_plugins"]:
        del sys.modules[name]


@pytest.fixture(scope="module", name="mantid")
def mantid_fixture():
    try:
        import mantid.simpleapi  # noqa: F401
        real = True
    except ImportError:
        _purge_mantid()
        sys.path.insert(0, str(STANDIN))
        real = False
    try:
        import mantid.api as api
        import mantid.kernel as kernel
        from phonon_ml_core.mantid_plugins import register_plugins
        assert register_plugins() == list(ALGS)
        sapi = importlib.import_module("mantid.simpleapi")
        if not real:
            assert getattr(sys.modules["mantid"], "STANDIN", False)
        yield SimpleNamespace(api=api, kernel=kernel, sapi=sapi, real=real)
    finally:
        if not real:
            _purge_mantid()
            sys.path.remove(str(STANDIN))


# ------------------------------------------------------------------------------------------ helpers
def tiny_grid():
    from phonon_ml_core.specs.grid import Grid

    return Grid.from_axes(np.linspace(1.5, 4.5, 7), np.linspace(12.0, 36.0, 7), ei_mev=50.0)


def make_sqw(mantid, name, y, e_edges, q_edges, ei=50.0, temperature=300.0, transposed=False, label="Intensity",
             x_unit="DeltaE", v_unit="MomentumTransfer"):
    """A SofQW-like workspace from y (n_E, n_Q) via CreateWorkspace (+ AddSampleLog)."""
    s = mantid.sapi
    if transposed:
        ws = s.CreateWorkspace(OutputWorkspace=name, DataX=q_edges, DataY=np.asarray(y).ravel(), NSpec=len(e_edges) - 1,
                               UnitX="MomentumTransfer", VerticalAxisUnit="DeltaE", VerticalAxisValues=e_edges,
                               YUnitLabel=label)
    else:
        kw = {} if v_unit == "SpectraNumber" else {"VerticalAxisValues": q_edges}
        ws = s.CreateWorkspace(OutputWorkspace=name, DataX=e_edges, DataY=np.asarray(y).T.ravel(),
                               NSpec=len(q_edges) - 1, UnitX=x_unit, VerticalAxisUnit=v_unit, YUnitLabel=label, **kw)
    if ei is not None:
        s.AddSampleLog(Workspace=name, LogName="Ei", LogText=str(ei), LogType="Number", LogUnit="meV")
    if temperature is not None:  # a two-entry time series, built as Mantid does (AddSampleLog adds ONE entry)
        series = mantid.kernel.FloatTimeSeriesProperty("SampleTemp")
        series.addValue("2024-01-01T00:00:00", temperature)
        series.addValue("2024-01-01T00:10:00", temperature + 2)
        mantid.api.AnalysisDataService.retrieve(name).mutableRun().addProperty("SampleTemp", series, True)
    return mantid.api.AnalysisDataService.retrieve(name)


def measured_like(seed=0):
    """A synthetic measured S(|Q|,E) on a finer grid than the standard one (NaN outside coverage)."""
    from phonon_ml_core.specs.grid import kinematic_mask

    e_edges = np.arange(4.0, 48.01, 0.5)
    q_edges = np.arange(0.0, 10.51, 0.05)
    ec, qc = 0.5 * (e_edges[1:] + e_edges[:-1]), 0.5 * (q_edges[1:] + q_edges[:-1])
    rng = np.random.default_rng(seed)
    y = (np.exp(-((ec[:, None] - 25) / 8) ** 2) * qc[None, :] ** 2 * np.exp(-0.01 * qc[None, :] ** 2)
         + 0.05 + 0.01 * rng.standard_normal((ec.size, qc.size)))
    y = np.where(kinematic_mask(qc, ec, 50.0), y, np.nan)
    return y, e_edges, q_edges


def table_values(table):
    names = table.column("Name")
    return np.array(table.column("Value")), np.array(table.column("Std")), names


def assert_sqw_layout(ws, n_e, n_q):
    assert ws.getAxis(0).getUnit().unitID() == "DeltaE"
    assert ws.getAxis(1).getUnit().unitID() == "MomentumTransfer"
    assert ws.getNumberHistograms() == n_q and ws.blocksize() == n_e
    assert len(ws.getAxis(1).extractValues()) == n_q + 1 and ws.isHistogramData()
    assert ws.extractY().shape == (n_q, n_e)
