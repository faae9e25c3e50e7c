"""Stand-in for ``mantid.simpleapi`` (tests only): Framework/PythonInterface/mantid/simpleapi.py.

Functions exist for the algorithms registered when this module is imported and for those added later with
``_create_algorithm_function`` (mslice/Shiver pattern, mantid_api.md §8). Error types follow §2:
bad value → ValueError('Problem setting "X" in Alg-v1: …'); unknown keyword or missing mandatory property →
TypeError; validateInputs failure → RuntimeError("Some invalid Properties found …"); other failures →
RuntimeError("Alg-v1: msg"). One output gives the object, several a namedtuple. ``StoreInADS=False``.
The few built-in algorithms the tests need (CreateWorkspace, AddSampleLog, Transpose, GroupWorkspaces,
DeleteWorkspace) are plain functions with the documented properties.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .api import (AlgorithmFactory, AlgorithmManager, AnalysisDataService, Axis, BinEdgeAxis, MatrixWorkspace,
                  NumericAxis, PropertyMode, WorkspaceFactory, WorkspaceGroup, _WorkspacePropertyBase, _Unit)
from .kernel import Direction, FloatTimeSeriesProperty

__STORE_ADS_DEFAULT__ = True


def _create_algorithm_function(name, version, algm_object):
    def wrapper(*args, **kwargs):
        store = kwargs.pop("StoreInADS", __STORE_ADS_DEFAULT__)
        kwargs.pop("EnableLogging", None)
        ver = kwargs.pop("Version", version)
        alg = AlgorithmManager.create(name, ver)
        tag = f"{name}-v{alg.version()}"
        mandatory = alg.mandatoryProperties()
        if len(args) > len(mandatory):
            raise RuntimeError("Positional argument(s) provided but none are required. Check function call.")
        for key, value in zip(mandatory, args):
            kwargs.setdefault(key, value)
        for key, value in kwargs.items():
            if key not in alg:
                raise TypeError(f"'{key}' is an invalid keyword argument for {tag}")
            if value is None:
                continue
            try:
                alg.setProperty(key, value)
            except ValueError as exc:
                raise ValueError(f'Problem setting "{key}" in {tag}: {exc}') from None
        outputs = alg.outputProperties()
        for n in outputs:
            p = alg.getProperty(n)
            if isinstance(p, _WorkspacePropertyBase) and not p.ws_name and p.optional == PropertyMode.Mandatory:
                if store:
                    raise TypeError(f"{tag}: the mandatory output property {n} was not given")
                p.ws_name = f"__{name}_{n}"
        missing = [n for n in mandatory if alg.getProperty(n).value is None]
        if missing:
            raise TypeError(f"{tag}: missing mandatory properties {missing}")
        if not store:
            alg.setChild(True)
        try:
            alg.execute()
        except RuntimeError as exc:
            if str(exc).startswith("Some invalid Properties found"):
                raise
            raise RuntimeError(f"{tag}: {exc}") from exc
        values = []
        names = []
        for n in outputs:
            p = alg.getProperty(n)
            if isinstance(p, _WorkspacePropertyBase):
                if not p.ws_name or p.value is None:
                    continue
            values.append(p.value)
            names.append(n)
        if not values:
            return None
        if len(values) == 1:
            return values[0]
        return namedtuple(f"{name}_returns", names)(*values)

    wrapper.__name__ = name
    globals()[name] = wrapper
    return wrapper


def _store(ws, name, store=True):
    if store:
        AnalysisDataService.addOrReplace(name, ws)
    return ws


def CreateWorkspace(OutputWorkspace=None, DataX=None, DataY=None, DataE=None, NSpec=1, UnitX="",
                    VerticalAxisUnit="SpectraNumber", VerticalAxisValues=None, Distribution=False, YUnitLabel="",
                    WorkspaceTitle="", ParentWorkspace="", Dx=None, StoreInADS=True, **kwargs):
    """Framework/Algorithms/src/CreateWorkspace.cpp (mantid_api.md §6)."""
    if kwargs:
        raise TypeError(f"'{next(iter(kwargs))}' is an invalid keyword argument for CreateWorkspace-v1")
    if DataX is None or DataY is None or (OutputWorkspace is None and StoreInADS):
        raise TypeError("CreateWorkspace-v1: DataX, DataY and OutputWorkspace are mandatory")
    if Dx is not None:
        raise NotImplementedError("stand-in: Dx not modelled")
    y = np.asarray(DataY, dtype=float).reshape(-1)
    nspec = int(NSpec)
    if y.size % nspec:
        raise RuntimeError("CreateWorkspace-v1: DataY length is not a multiple of NSpec")
    ny = y.size // nspec
    x = np.asarray(DataX, dtype=float).reshape(-1)
    if x.size in (ny, ny + 1):
        xs = np.broadcast_to(x, (nspec, x.size))
    elif x.size % nspec == 0 and x.size // nspec in (ny, ny + 1):
        xs = x.reshape(nspec, -1)
    else:
        raise RuntimeError("CreateWorkspace-v1: DataX must have ny or ny+1 values (shared or per spectrum)")
    e = np.zeros_like(y) if DataE is None else np.asarray(DataE, dtype=float).reshape(-1)
    if e.size != y.size:
        raise RuntimeError("CreateWorkspace-v1: DataE must match DataY")
    ws = WorkspaceFactory.create("Workspace2D", nspec, xs.shape[1], ny)
    for i in range(nspec):
        ws.setX(i, xs[i])
        ws.setY(i, y[i * ny:(i + 1) * ny])
        ws.setE(i, e[i * ny:(i + 1) * ny])
    ax0 = ws.getAxis(0)
    ax0._unit = _Unit(UnitX) if UnitX in ("DeltaE", "DeltaE_inWavenumber", "DeltaE_inFrequency", "MomentumTransfer",
                                           "QSquared", "TOF", "Wavelength", "Energy", "dSpacing") else _Unit("Label")
    if VerticalAxisUnit == "Text":
        vals = [] if VerticalAxisValues is None else list(VerticalAxisValues)
        ax = Axis(np.zeros(len(vals)), "text")
        ax._labels = [str(v) for v in vals]
        ws._axes[1] = ax
    elif VerticalAxisUnit != "SpectraNumber":
        vals = np.asarray([] if VerticalAxisValues is None else VerticalAxisValues, dtype=float).reshape(-1)
        if vals.size == nspec:
            ax = NumericAxis.create(nspec)
        elif vals.size == nspec + 1:
            ax = BinEdgeAxis.create(nspec + 1)
        else:
            raise ValueError("Problem setting \"VerticalAxisValues\" in CreateWorkspace-v1: the number of values "
                             "must be NSpec or NSpec + 1")
        ax._values[:] = vals
        ax.setUnit(VerticalAxisUnit)
        ws._axes[1] = ax
    ws.setDistribution(Distribution)
    ws.setYUnitLabel(YUnitLabel)
    ws.setTitle(WorkspaceTitle)
    if ParentWorkspace:
        import copy
        parent = AnalysisDataService[ParentWorkspace] if isinstance(ParentWorkspace, str) else ParentWorkspace
        ws._run = copy.deepcopy(parent.getRun())
    return _store(ws, OutputWorkspace, StoreInADS)


def AddSampleLog(Workspace=None, LogName=None, LogText="", LogUnit="", LogType="String", NumberType="AutoDetect",
                 **kwargs):
    """Framework/Algorithms/src/AddSampleLog.cpp (mantid_api.md §5)."""
    if kwargs:
        raise TypeError(f"'{next(iter(kwargs))}' is an invalid keyword argument for AddSampleLog-v1")
    ws = AnalysisDataService[Workspace] if isinstance(Workspace, str) else Workspace
    if LogType not in ("String", "Number", "Number Series"):
        raise ValueError(f'Problem setting "LogType" in AddSampleLog-v1: "{LogType}" is not in the list of allowed values')
    if NumberType not in ("AutoDetect", "Int", "Double"):
        raise ValueError(f'Problem setting "NumberType" in AddSampleLog-v1: "{NumberType}" is not in the list of '
                         "allowed values")
    if LogType == "String":
        ws.getRun().addProperty(LogName, str(LogText), LogUnit, True)
        return
    value = _convert_number(str(LogText), NumberType)
    if LogType == "Number":
        ws.getRun().addProperty(LogName, value, LogUnit, True)
        return
    series = FloatTimeSeriesProperty(LogName)  # addTimeSeriesProperty: ONE entry at the run start
    series.addValue("1990-01-01T00:00:00", value)
    series.units = LogUnit
    ws.getRun().addProperty(LogName, series, True)


def _convert_number(text, number_type):
    """Strings::convert as AddSampleLog uses it: ``istringstream >> value``, which stops at the first
    whitespace ("300.0 302.0" → 300.0); AutoDetect gives an int when the text is an integer."""
    token = text.strip().split()[0] if text.strip() else ""
    try:
        as_int = int(token)
    except ValueError:
        as_int = None
    if number_type == "Int" or (number_type == "AutoDetect" and as_int is not None):
        if as_int is None:
            raise RuntimeError(f"AddSampleLog-v1: Error interpreting string '{text}' as NumberType Int.")
        return as_int
    try:
        return float(token)
    except ValueError:
        raise RuntimeError(f"AddSampleLog-v1: Error interpreting string '{text}' as a number.") from None


def Transpose(InputWorkspace=None, OutputWorkspace=None, StoreInADS=True, **kwargs):
    """Framework/Algorithms/src/Transpose.cpp, as used on SofQW output by ComputeIncoherentDOS.py: Y → Yᵀ,
    the vertical axis values become X and X becomes the vertical axis (BinEdgeAxis for histogram X)."""
    if kwargs:
        raise TypeError(f"'{next(iter(kwargs))}' is an invalid keyword argument for Transpose-v1")
    src = AnalysisDataService[InputWorkspace] if isinstance(InputWorkspace, str) else InputWorkspace
    if not src.isCommonBins():
        raise RuntimeError("Transpose-v1: the input must have common bins")
    v = src.getAxis(1)
    if not v.isNumeric():
        raise RuntimeError("Transpose-v1: the vertical axis must be numeric")
    y, e, x = src.extractY(), src.extractE(), src.readX(0)
    vals = v.extractValues()
    ws = WorkspaceFactory.create("Workspace2D", y.shape[1], vals.size, y.shape[0])
    for i in range(y.shape[1]):
        ws.setX(i, vals)
        ws.setY(i, y[:, i])
        ws.setE(i, e[:, i])
    ws.getAxis(0)._unit = v.getUnit()
    ax = (BinEdgeAxis.create(x.size) if x.size == y.shape[1] + 1 else NumericAxis.create(x.size))
    ax._values[:] = x
    ax._unit = src.getAxis(0).getUnit()
    ws._axes[1] = ax
    import copy
    ws._run = copy.deepcopy(src.getRun())
    ws.setYUnitLabel(src.YUnitLabel())
    return _store(ws, OutputWorkspace, StoreInADS)


def GroupWorkspaces(InputWorkspaces=None, OutputWorkspace=None, **kwargs):
    """Framework/Algorithms/src/GroupWorkspaces.cpp."""
    if kwargs:
        raise TypeError(f"'{next(iter(kwargs))}' is an invalid keyword argument for GroupWorkspaces-v1")
    names = InputWorkspaces.split(",") if isinstance(InputWorkspaces, str) else list(InputWorkspaces)
    g = WorkspaceGroup()
    for n in names:
        n = n if isinstance(n, str) else n.name()
        AnalysisDataService.retrieve(n)
        g.add(n)
    return _store(g, OutputWorkspace)


def DeleteWorkspace(Workspace=None, **kwargs):
    """Framework/Algorithms/src/DeleteWorkspace.cpp."""
    name = Workspace if isinstance(Workspace, str) else Workspace.name()
    AnalysisDataService.retrieve(name)
    AnalysisDataService.remove(name)


for (_name, _version), _cls in list(AlgorithmFactory._algs.items()):
    _create_algorithm_function(_name, _version, _cls())
