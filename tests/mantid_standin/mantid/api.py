"""Stand-in for ``mantid.api`` (tests only); each name cites its source in mantidproject/mantid.

Only the behaviour described in shared/docs/mantid_api.md is modelled; anything else raises.
"""
from __future__ import annotations

import os

import numpy as np

from .kernel import Direction, Logger, Property, _Validator


# ----------------------------------------------------------------------------------------- units and axes
class _Unit:  # mantid/kernel/src/Exports/Unit.cpp: unitID(), caption(), symbol()
    _CAPTIONS = {"DeltaE": ("Energy transfer", "meV"), "MomentumTransfer": ("q", "Angstrom^-1"),
                 "Empty": ("", ""), "Label": ("", "")}

    def __init__(self, unit_id):
        self._id = unit_id

    def unitID(self):
        return self._id

    def caption(self):
        return self._CAPTIONS.get(self._id, ("", ""))[0]

    def symbol(self):
        return self._CAPTIONS.get(self._id, ("", ""))[1]


_KNOWN_UNITS = {"DeltaE", "DeltaE_inWavenumber", "DeltaE_inFrequency", "MomentumTransfer", "QSquared", "Empty",
                "Label", "TOF", "Wavelength", "Energy", "dSpacing", "Degrees"}


class Axis:  # mantid/api/src/Exports/Axis.cpp
    def __init__(self, values, kind):
        self._values = np.asarray(values, dtype=float)
        self._kind = kind  # "numeric", "binedge", "spectra", "text"
        self._unit = _Unit("Empty")
        self._title = ""

    def length(self):
        return len(self._values)

    def isSpectra(self):
        return self._kind == "spectra"

    def isNumeric(self):
        return self._kind in ("numeric", "binedge")

    def isText(self):
        return self._kind == "text"

    def getUnit(self):
        return self._unit

    def setUnit(self, unit_id):
        if unit_id not in _KNOWN_UNITS:
            raise RuntimeError(f"stand-in: unit {unit_id!r} not modelled")
        self._unit = _Unit(unit_id)
        return self._unit

    def getValue(self, i):
        return float(self._values[i])

    def setValue(self, i, v):
        self._values[i] = float(v)

    def extractValues(self):
        return self._values.copy()

    def title(self):
        return self._title

    def setTitle(self, t):
        self._title = t

    def getMin(self):
        return float(self._values.min())

    def getMax(self):
        return float(self._values.max())


class NumericAxis(Axis):  # mantid/api/src/Exports/NumericAxis.cpp: static create(n)
    @staticmethod
    def create(n):
        return NumericAxis(np.zeros(n), "numeric")


class BinEdgeAxis(NumericAxis):  # mantid/api/src/Exports/BinEdgeAxis.cpp: static create(n)
    @staticmethod
    def create(n):
        return BinEdgeAxis(np.zeros(n), "binedge")


# ----------------------------------------------------------------------------------------- run logs
class _LogProperty:  # mantid/kernel/src/Exports/Property.cpp (.value, .name, .units)
    def __init__(self, name, value, units=""):
        self.name, self.units = name, units
        self.value = np.asarray(value, dtype=float) if isinstance(value, (list, tuple, np.ndarray)) else value


class Run:  # mantid/api/src/Exports/Run.cpp
    def __init__(self):
        self._props = {}

    def hasProperty(self, name):
        return name in self._props

    __contains__ = hasProperty

    def getProperty(self, name):
        try:
            return self._props[name]
        except KeyError:
            raise RuntimeError(f"Unknown property search object {name}") from None

    __getitem__ = getProperty
    getLogData = getProperty

    def get(self, name, default=None):
        return self._props.get(name, default)

    def keys(self):
        return list(self._props)

    def addProperty(self, name, value, *args, **kwargs):
        """addProperty(name, value, replace) or addProperty(name, value, units, replace); ``value`` may be a
        Property object such as a FloatTimeSeriesProperty (added as it is)."""
        units, replace = "", kwargs.get("replace")
        if len(args) == 1:
            replace = args[0]
        elif len(args) == 2:
            units, replace = args
        if replace is None:
            raise TypeError("addProperty() needs replace")
        if name in self._props and not replace:
            raise ValueError(f"Property {name} already exists")
        if hasattr(value, "addValue"):  # a time-series property object
            value.name = name
            self._props[name] = value
            return
        self._props[name] = _LogProperty(name, value, units)

    def getPropertyAsSingleValue(self, name):  # newer versions: time series averaged
        v = self.getProperty(name).value
        return float(np.mean(v)) if isinstance(v, np.ndarray) else float(v)


# ----------------------------------------------------------------------------------------- workspaces
class Workspace:  # mantid/api/src/Exports/Workspace.cpp
    def __init__(self):
        self._name = ""
        self._title = ""

    def name(self):
        return self._name

    def getTitle(self):
        return self._title

    def setTitle(self, t):
        self._title = t


class _Instrument:  # mantid/geometry/src/Exports/Instrument.cpp: getName()
    def __init__(self, name=""):
        self._name = name

    def getName(self):
        return self._name


class MatrixWorkspace(Workspace):  # mantid/api/src/Exports/MatrixWorkspace.cpp (a Workspace2D); no x()/y()
    def __init__(self, nhist, xlength, ylength):
        super().__init__()
        self._x = np.zeros((nhist, xlength))
        self._y = np.zeros((nhist, ylength))
        self._e = np.zeros((nhist, ylength))
        self._axes = [Axis(np.zeros(xlength), "numeric"), Axis(np.arange(1, nhist + 1), "spectra")]
        self._run = Run()
        self._ylabel, self._yunit, self._distribution = "", "", False
        self._instrument = _Instrument()

    def getNumberHistograms(self):
        return self._y.shape[0]

    def blocksize(self):
        return self._y.shape[1]

    def isHistogramData(self):
        return self._x.shape[1] == self._y.shape[1] + 1

    def isDistribution(self):
        return self._distribution

    def setDistribution(self, b):
        self._distribution = bool(b)

    def isCommonBins(self):
        return bool(np.all(self._x == self._x[:1]))

    def _ro(self, a):
        v = a.view()
        v.flags.writeable = False
        return v

    def readX(self, i):
        return self._ro(self._x[i])

    def readY(self, i):
        return self._ro(self._y[i])

    def readE(self, i):
        return self._ro(self._e[i])

    def dataX(self, i):
        return self._x[i]

    def dataY(self, i):
        return self._y[i]

    def dataE(self, i):
        return self._e[i]

    def setX(self, i, arr):
        self._x[i] = np.asarray(arr, dtype=float)

    def setY(self, i, arr):
        self._y[i] = np.asarray(arr, dtype=float)

    def setE(self, i, arr):
        self._e[i] = np.asarray(arr, dtype=float)

    def extractX(self):
        return self._x.copy()

    def extractY(self):
        return self._y.copy()

    def extractE(self):
        return self._e.copy()

    def YUnit(self):
        return self._yunit

    def setYUnit(self, s):
        self._yunit = s

    def YUnitLabel(self):
        return self._ylabel

    def setYUnitLabel(self, s):
        self._ylabel = s

    def getAxis(self, i):
        return self._axes[i]

    def replaceAxis(self, i, axis):
        n = self.getNumberHistograms()
        if i == 1 and axis.length() not in (n, n + 1):
            raise ValueError(f"Axis length {axis.length()} does not match {n} spectra (or {n + 1} bin edges)")
        import copy
        self._axes[i] = copy.deepcopy(axis)  # the newest code clones the axis (mantid_api.md §3)

    def getRun(self):
        return self._run

    def mutableRun(self):
        return self._run

    def getInstrument(self):  # mantid/api/src/Exports/ExperimentInfo.cpp; CreateWorkspace gives an unnamed one
        return self._instrument

    def setInstrumentName(self, name):  # stand-in only: what LoadInstrument/LoadEventNexus would set
        self._instrument = _Instrument(name)

    def getEMode(self):
        raise RuntimeError("stand-in: getEMode not modelled")

    def getEFixed(self, detid):
        raise RuntimeError("stand-in: getEFixed needs an instrument (mantid_api.md §5); read the Ei log")


class ITableWorkspace(Workspace):  # mantid/api/src/Exports/ITableWorkspace.cpp
    _TYPES = {"int": int, "float": float, "double": float, "bool": bool, "str": str, "long64": int}

    def __init__(self):
        super().__init__()
        self._cols, self._types, self._data = [], [], []

    def addColumn(self, type, name, plottype=None):
        if type not in self._TYPES:
            raise ValueError(f"Unknown column type {type}")
        self._cols.append(name)
        self._types.append(self._TYPES[type])
        for r in self._data:
            r.append(self._types[-1]())
        return True

    def addRow(self, row):
        if isinstance(row, dict):
            row = [row[c] for c in self._cols]
        if len(row) != len(self._cols):
            raise ValueError("Row length does not match the number of columns")
        self._data.append([t(v) for t, v in zip(self._types, row)])

    def rowCount(self):
        return len(self._data)

    __len__ = rowCount

    def columnCount(self):
        return len(self._cols)

    def getColumnNames(self):
        return list(self._cols)

    keys = getColumnNames

    def column(self, c):
        j = self._cols.index(c) if isinstance(c, str) else int(c)
        return [r[j] for r in self._data]

    def row(self, i):
        return dict(zip(self._cols, self._data[i]))

    def cell(self, col_or_row, row_or_col):
        if isinstance(col_or_row, str):
            return self._data[row_or_col][self._cols.index(col_or_row)]
        return self._data[col_or_row][row_or_col]


class WorkspaceGroup(Workspace):  # mantid/api/src/Exports/WorkspaceGroup.cpp
    def __init__(self):
        super().__init__()
        self._names = []

    def getNames(self):
        return list(self._names)

    def size(self):
        return len(self._names)

    __len__ = size

    def add(self, name):
        if name not in self._names:
            self._names.append(name)

    def remove(self, name):
        self._names.remove(name)

    def contains(self, name):
        return name in self._names

    def getItem(self, i):
        return AnalysisDataService.retrieve(self._names[i])

    def _items(self):
        return [AnalysisDataService.retrieve(n) for n in self._names]

    def areNamesSimilar(self):  # WorkspaceGroup.cpp: every member is named "<group>_…"
        return all(n.startswith(self.name() + "_") for n in self._names)

    __getitem__ = getItem


class _WorkspaceFactory:  # mantid/api/src/Exports/WorkspaceFactory.cpp
    def create(self, parent, NVectors=-1, XLength=-1, YLength=-1):
        if isinstance(parent, str):
            if parent != "Workspace2D":
                raise RuntimeError(f"stand-in: workspace type {parent!r} not modelled")
            if min(NVectors, XLength, YLength) < 0:
                raise ValueError("NVectors, XLength and YLength are required with a type name")
            return MatrixWorkspace(NVectors, XLength, YLength)
        n = parent.getNumberHistograms() if NVectors < 0 else NVectors
        xl = parent._x.shape[1] if XLength < 0 else XLength
        yl = parent.blocksize() if YLength < 0 else YLength
        ws = MatrixWorkspace(n, xl, yl)
        import copy
        ws._run = copy.deepcopy(parent._run)
        ws._ylabel, ws._yunit = parent._ylabel, parent._yunit
        ws._instrument = parent._instrument
        return ws

    def createTable(self, type="TableWorkspace"):
        return ITableWorkspace()


WorkspaceFactory = _WorkspaceFactory()


class _ADS:  # mantid/kernel/inc/MantidPythonInterface/kernel/DataServiceExporter.h; mtd = ADS (api/_aliases.py)
    def __init__(self):
        self._items = {}

    def add(self, name, ws):
        if name in self._items:
            raise RuntimeError(f"AnalysisDataService: the name {name} already exists")
        self.addOrReplace(name, ws)

    def addOrReplace(self, name, ws):
        if not name:
            raise ValueError("Empty workspace names are not allowed")
        ws._name = name
        self._items[name] = ws

    def doesExist(self, name):
        return name in self._items

    __contains__ = doesExist

    def retrieve(self, name):
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"'{name}' does not exist.") from None

    __getitem__ = retrieve

    def remove(self, name):
        self._items.pop(name, None)

    def clear(self, silent=False):
        self._items.clear()

    def size(self):
        return len(self._items)

    def getObjectNames(self):
        return sorted(self._items)


AnalysisDataService = _ADS()
mtd = AnalysisDataService


# ----------------------------------------------------------------------------------------- properties
class PropertyMode:  # mantid/api/src/Exports/PropertyMode.cpp
    Mandatory, Optional = 0, 1


class FileAction:  # mantid/api/src/Exports/FileProperty.cpp
    Save, OptionalSave, Load, OptionalLoad, Directory, OptionalDirectory = range(6)


class _WorkspacePropertyBase(Property):
    """WorkspaceProperty(name, defaultValue, direction[, optional][, locking][, validator]); ``.value`` is the
    workspace (mantid/api/inc/MantidPythonInterface/api/WorkspacePropertyExporter.h)."""
    TYPE = Workspace

    def __init__(self, name, defaultValue, direction, optional=PropertyMode.Mandatory, locking=True, validator=None):
        super().__init__(name, defaultValue, validator, direction)
        self.optional = optional
        self.ws_name = defaultValue
        self._value = None

    @property
    def valueAsStr(self):
        return self.ws_name

    def _assign(self, value):
        if isinstance(value, str):
            self.ws_name = value
            if self.direction == Direction.Input:
                if value == "":
                    self._value = None
                elif value not in AnalysisDataService:
                    raise ValueError(f"Workspace \"{value}\" was not found in the Analysis Data Service")
                else:
                    self._value = AnalysisDataService[value]
                    self._check_type()
                    self._check_validator()
            return
        if not isinstance(value, Workspace):
            raise ValueError(f"Property {self.name} expects a workspace or a name, got {type(value).__name__}")
        self._value = value
        if value.name():
            self.ws_name = value.name()
        self._check_type()
        self._check_validator()

    def _check_validator(self):
        """Setting an input workspace returns ``isValid()`` (WorkspaceProperty::setValue/setDataItem), which
        IPropertyManager raises as ValueError: a validator's message is raised when the property is set."""
        if self.direction != Direction.Output and self._value is not None:
            msg = self.isValid
            if msg:
                raise ValueError(msg)

    def _check_type(self):
        """WorkspaceProperty::isValid accepts a group whose members all have the property's type (isValidGroup)."""
        v = self._value
        if v is None or isinstance(v, self.TYPE):
            return
        if isinstance(v, WorkspaceGroup) and all(isinstance(m, self.TYPE) for m in v._items()):
            return
        raise ValueError(f"Workspace {self.ws_name} is not of the correct type ({self.TYPE.__name__})")

    @property
    def isDefault(self):
        return self.ws_name == self._default

    @property
    def isValid(self):
        if self.direction == Direction.Input and self._value is None and self.optional == PropertyMode.Mandatory:
            return "Enter a name for the Input/InOut workspace"
        if self.direction == Direction.Output and not self.ws_name and self.optional == PropertyMode.Mandatory:
            return "Enter a name for the Output workspace"
        if self._value is None or self.validator is None:
            return ""
        if isinstance(self._value, WorkspaceGroup) and self.TYPE is not WorkspaceGroup \
                and not isinstance(self._value, self.TYPE):
            # WorkspaceProperty::isValidGroup: each member is validated as if set alone; the first error wins
            for member in self._value._items():
                msg = self.validator.check(member)
                if msg:
                    return msg
            return ""
        return self.validator.check(self._value)


class WorkspaceProperty(_WorkspacePropertyBase):  # mantid/api/src/Exports/WorkspaceProperty.cpp
    TYPE = Workspace


class MatrixWorkspaceProperty(_WorkspacePropertyBase):  # mantid/api/src/Exports/MatrixWorkspaceProperty.cpp
    TYPE = MatrixWorkspace


class ITableWorkspaceProperty(_WorkspacePropertyBase):  # mantid/api/src/Exports/ITableWorkspaceProperty.cpp
    TYPE = ITableWorkspace


class WorkspaceGroupProperty(_WorkspacePropertyBase):  # mantid/api/src/Exports/WorkspaceGroupProperty.cpp
    TYPE = WorkspaceGroup


class FileProperty(Property):  # mantid/api/src/Exports/FileProperty.cpp: (name, default, action, extensions, direction)
    def __init__(self, name, defaultValue, action, extensions=None, direction=Direction.Input):
        super().__init__(name, defaultValue, None, direction)
        self.action = action
        self.extensions = [extensions] if isinstance(extensions, str) else list(extensions or [])

    @property
    def isValid(self):
        v = self._value
        if not v:
            return "" if self.action in (FileAction.OptionalLoad, FileAction.OptionalSave,
                                         FileAction.OptionalDirectory) else "No file specified."
        if self.action in (FileAction.Load, FileAction.OptionalLoad) and not os.path.isfile(v):
            return f"File \"{v}\" not found"
        if self.action in (FileAction.Directory, FileAction.OptionalDirectory) and not os.path.isdir(v):
            return f"Directory \"{v}\" not found"
        return ""  # Save: the real validator's directory rules are not modelled (mantid_api.md: unconfirmed)


# ----------------------------------------------------------------------------------------- workspace validators
class _MatrixWorkspaceValidator(_Validator):
    """A MatrixWorkspaceValidator (Framework/API/inc/MantidAPI/MatrixWorkspaceValidator.h): checks a MatrixWorkspace;
    any other workspace is rejected (TypedValidator::extractValue cannot cast it)."""

    def check(self, value):
        if not isinstance(value, MatrixWorkspace):
            return f"DataItem \"{getattr(value, 'name', lambda: '')()}\" is not of the expected type."
        return self.check_matrix(value)

    def check_matrix(self, ws):  # pragma: no cover - abstract
        return ""


class WorkspaceUnitValidator(_MatrixWorkspaceValidator):
    """``WorkspaceUnitValidator(unit)``: the X axis (axis 0) must have this unit ID; the message is
    "The workspace must have units of <unit>" (Framework/API/src/WorkspaceUnitValidator.cpp, checkValidity and
    buildErrorMessage; export mantid/api/src/Exports/WorkspaceValidators.cpp)."""

    def __init__(self, unit):
        self.unit = str(unit)

    def check_matrix(self, ws):
        try:
            unit_id = ws.getAxis(0).getUnit().unitID()
        except (AttributeError, RuntimeError):
            unit_id = ""
        return "" if unit_id == self.unit else f"The workspace must have units of {self.unit}"


class HistogramValidator(_MatrixWorkspaceValidator):
    """``HistogramValidator(mustBeHistogram=True)`` (Framework/API/src/HistogramValidator.cpp)."""

    def __init__(self, mustBeHistogram=True):
        self.must = bool(mustBeHistogram)

    def check_matrix(self, ws):
        if self.must:
            return "" if ws.isHistogramData() else "The workspace must contain histogram data"
        return "" if not ws.isHistogramData() else "The workspace must not contain histogram data"


class CommonBinsValidator(_MatrixWorkspaceValidator):
    """``CommonBinsValidator()`` (Framework/API/src/CommonBinsValidator.cpp): ``isCommonBins()`` or the message."""

    def check_matrix(self, ws):
        return "" if ws.isCommonBins() else "The workspace must have common bin boundaries for all histograms"


# ----------------------------------------------------------------------------------------- algorithms
class Progress:  # mantid/api/src/Exports/Progress.cpp + mantid/kernel/src/Exports/ProgressBase.cpp
    def __init__(self, alg, start, end, nreports):
        if not isinstance(alg, Algorithm):
            raise TypeError("Progress needs the algorithm as its first argument")
        self.alg, self.start, self.end, self.nreports, self.i = alg, float(start), float(end), int(nreports), 0

    def report(self, *args):
        if len(args) == 2:  # report(i, msg)
            self.i = int(args[0])
            msg = args[1]
        else:
            self.i += 1
            msg = args[0] if args else ""
        frac = self.start + (self.end - self.start) * min(self.i, self.nreports) / max(self.nreports, 1)
        self.alg._progress.append((frac, str(msg)))

    def reportIncrement(self, i, msg):  # ProgressBase.cpp export: the message is required
        self.i += int(i) - 1
        self.report(msg)


class Algorithm:
    """PythonAlgorithm (= the exported Algorithm; mantid/api/src/Exports/Algorithm.cpp). The name is the
    class name (AlgorithmAdapter.cpp); version 1 and category 'PythonAlgorithms' by default."""

    def __init__(self):
        self._props, self._order = {}, []
        self._initialized = self._executed = False
        self._logger = Logger(type(self).__name__)
        self._progress = []
        self._child = False
        self._always_store = False
        self._groups = {}

    # -- identity (AlgorithmAdapter.cpp)
    def name(self):
        return type(self).__name__

    def version(self):
        return 1

    def category(self):
        return "PythonAlgorithms"

    def summary(self):
        return ""

    def seeAlso(self):
        return []

    def checkGroups(self):
        """The base Algorithm::checkGroups: true when an input workspace property holds a WorkspaceGroup."""
        return self._has_group_input()

    def validateInputs(self):
        return {}

    def log(self):
        return self._logger

    # -- properties (Algorithm.cpp / IPropertyManager.cpp)
    def initialize(self):
        if not self._initialized:
            self.PyInit()
            self._initialized = True

    def isInitialized(self):
        return self._initialized

    def declareProperty(self, *args, **kwargs):
        """The four overloads of mantid_api.md §2."""
        if args and isinstance(args[0], Property):
            prop = args[0]
            doc = args[1] if len(args) > 1 else kwargs.get("doc", "")
            prop.documentation = doc
        else:
            name = args[0] if args else kwargs.pop("name")
            rest = list(args[1:])
            default = rest.pop(0) if rest else kwargs.pop("defaultValue")
            validator, doc, direction = None, "", Direction.Input
            if rest and isinstance(rest[0], _Validator):
                validator = rest.pop(0)
            if rest and isinstance(rest[0], str):
                doc = rest.pop(0)
            if rest and isinstance(rest[0], int):
                direction = rest.pop(0)
            validator = kwargs.pop("validator", validator)
            doc = kwargs.pop("doc", doc)
            direction = kwargs.pop("direction", direction)
            if kwargs:
                raise TypeError(f"declareProperty: unexpected keywords {sorted(kwargs)}")
            if isinstance(default, list):
                if any(isinstance(v, bool) for v in default):
                    raise ValueError("lists of bool are not supported (PropertyWithValueFactory.cpp)")
                from .kernel import FloatArrayProperty, IntArrayProperty, StringArrayProperty
                cls = (StringArrayProperty if default and isinstance(default[0], str) else
                       IntArrayProperty if default and all(isinstance(v, int) for v in default) else FloatArrayProperty)
                prop = cls(name, default, validator, direction)
            elif isinstance(default, (bool, int, float, str)):
                prop = Property(name, default, validator, direction, doc)
            else:
                raise TypeError(f"declareProperty: cannot infer a property type from {type(default).__name__}")
            prop.documentation = doc
        if prop.name in self._props:
            raise RuntimeError(f"Property with given name already exists: {prop.name}")
        import copy
        prop = copy.copy(prop)  # the property object is cloned
        self._props[prop.name] = prop
        self._order.append(prop.name)

    def _prop(self, name):
        try:
            return self._props[name]
        except KeyError:
            raise RuntimeError(f"Unknown property search object {name}") from None

    def getProperty(self, name):
        return self._prop(name)

    def getPropertyValue(self, name):
        return self._prop(name).valueAsStr

    def setProperty(self, name, value):
        self._prop(name)._assign(value)

    def setPropertyValue(self, name, value):
        self._prop(name)._assign(value)

    def existsProperty(self, name):
        return name in self._props

    __contains__ = existsProperty

    def getProperties(self):
        return [self._props[n] for n in self._order]

    def mandatoryProperties(self):
        return [n for n in self._order if self._props[n].direction != Direction.Output
                and isinstance(self._props[n], _WorkspacePropertyBase)
                and self._props[n].optional == PropertyMode.Mandatory]

    def outputProperties(self):
        return [n for n in self._order if self._props[n].direction == Direction.Output]

    def setPropertyGroup(self, name, group):
        self._prop(name)
        self._groups[name] = group

    # -- execution (Framework/API/src/Algorithm.cpp)
    def setChild(self, b):
        self._child = bool(b)

    def isChild(self):
        return self._child

    def setLogging(self, b):
        pass

    def setRethrows(self, b):
        pass

    def isExecuted(self):
        return self._executed

    def _input_workspace_props(self):
        return [p for p in self._props.values()
                if isinstance(p, _WorkspacePropertyBase) and p.direction != Direction.Output]

    def _has_group_input(self):
        return any(isinstance(p.value, WorkspaceGroup) and not isinstance(p, WorkspaceGroupProperty)
                   for p in self._input_workspace_props())

    def execute(self):
        """Framework/API/src/Algorithm.cpp ``executeInternal``: property validators (failures are logged and
        raise the bare "Some invalid Properties found"), then ``checkGroups()`` (the base one is true when an
        input workspace property holds a WorkspaceGroup); without groups ``validateInputs()`` (errors in key
        order, raised as "Some invalid Properties found: \n Prop: msg"), with groups ``processGroups``."""
        self.initialize()
        bad = {n: p.isValid for n, p in self._props.items()}
        bad = {n: m for n, m in bad.items() if m}
        if bad:
            for n, m in bad.items():
                self.log().error(f"{n}: {m}")
            raise RuntimeError("Some invalid Properties found")
        if self.checkGroups():
            self._process_groups()
            self._executed = True
            return True
        issues = self.validateInputs()
        if not isinstance(issues, dict):
            raise RuntimeError("validateInputs must return a dict")
        errors = {}
        for k, v in issues.items():
            if not isinstance(k, str) or not isinstance(v, str):
                self.log().error("validateInputs returned a non-string entry")
                continue
            if k not in self._props:
                self.log().warning(f'validateInputs() references non-existant property "{k}"')
                continue
            if v:
                self.log().error(f"Invalid value for {k}: {v}")
                errors[k] = v
        if errors:
            raise RuntimeError("Some invalid Properties found: " + "".join(f"\n {k}: {errors[k]}" for k in sorted(errors)))
        try:
            self.PyExec()
        except Exception as exc:
            raise RuntimeError(str(exc)) from exc
        for n in self.outputProperties():
            p = self._props[n]
            if isinstance(p, _WorkspacePropertyBase) and p.ws_name and p.value is not None and \
                    (not self._child or self._always_store):
                AnalysisDataService.addOrReplace(p.ws_name, p.value)
        self._executed = True
        return True

    def _process_groups(self):
        """Algorithm.cpp ``processGroups``: one child run per member (non-workspace properties copied as
        strings, validateInputs per member); outputs named "<in>_<out>" (or "<out>_<i>" when the members are
        named "<group>_…"), stored in the ADS and gathered in an output group per output property."""
        inputs = self._input_workspace_props()
        unrolled = []
        for p in inputs:
            v = p.value
            unrolled.append(v._items() if isinstance(v, WorkspaceGroup) else ([] if v is None else [v]))
        groups = [p.value for p in inputs if isinstance(p.value, WorkspaceGroup)]
        for p, members in zip(inputs, unrolled):
            if isinstance(p.value, WorkspaceGroup) and not members and p.optional == PropertyMode.Mandatory:
                raise ValueError("Empty group passed as input")
        size = max(len(m) for m in unrolled)
        if any(len(m) not in (0, 1, size) for m in unrolled):
            raise ValueError("Input WorkspaceGroups are not of the same size.")
        similar = all(g.areNamesSimilar() for g in groups if g.size() > 1)
        outs = [p for p in self._props.values() if isinstance(p, _WorkspacePropertyBase)
                and p.direction == Direction.Output and p.ws_name]
        out_groups = {}
        for p in outs:
            out_groups[p.name] = WorkspaceGroup()
            AnalysisDataService.addOrReplace(p.ws_name, out_groups[p.name])
        for entry in range(size):
            alg = type(self)()
            alg.initialize()
            alg.setChild(True)
            alg._always_store = True
            for n, p in self._props.items():
                if not isinstance(p, _WorkspacePropertyBase):
                    alg.setPropertyValue(n, p.valueAsStr)
            base = []
            for p, members in zip(inputs, unrolled):
                if members:
                    ws = members[entry] if isinstance(p.value, WorkspaceGroup) else members[0]
                    base.append(ws.name())
                    alg.setPropertyValue(p.name, ws.name())
            names = {}
            for p in outs:
                names[p.name] = f"{p.ws_name}_{entry + 1}" if similar else "_".join(base) + "_" + p.ws_name
                alg.setPropertyValue(p.name, names[p.name])
            try:
                alg.execute()
            except Exception as exc:
                raise RuntimeError(f"Execution of {self.name()} for group entry {entry + 1} failed: {exc}") from exc
            self._logger.messages.extend(alg._logger.messages)
            for p in outs:
                out_groups[p.name].add(names[p.name])
        for p in outs:
            p._value = out_groups[p.name]

    def createChildAlgorithm(self, name, startProgress=-1.0, endProgress=-1.0, enableLogging=True, version=-1, **props):
        alg = AlgorithmFactory._create(name, version)
        alg.setChild(True)
        alg.initialize()
        for k, v in props.items():
            alg.setProperty(k, v)
        return alg


PythonAlgorithm = Algorithm
DataProcessorAlgorithm = Algorithm  # the extra DataProcessor methods are not modelled


class _AlgorithmFactory:  # mantid/api/src/Exports/AlgorithmFactory.cpp
    def __init__(self):
        self._algs = {}

    def subscribe(self, cls):
        cls = cls if isinstance(cls, type) else type(cls)
        version = cls().version()
        self._algs[(cls.__name__, version)] = cls  # OverwriteCurrent

    def exists(self, name, version=-1):
        return any(n == name and (version == -1 or v == version) for n, v in self._algs)

    def highestVersion(self, name):
        vs = [v for n, v in self._algs if n == name]
        if not vs:
            raise RuntimeError(f"algorithm {name} is not registered")
        return max(vs)

    def getRegisteredAlgorithms(self, include_hidden=False):
        out = {}
        for n, v in self._algs:
            out.setdefault(n, []).append(v)
        return out

    def _create(self, name, version=-1):
        v = self.highestVersion(name) if version == -1 else version
        try:
            return self._algs[(name, v)]()
        except KeyError:
            raise RuntimeError(f"algorithm {name} version {v} is not registered") from None


AlgorithmFactory = _AlgorithmFactory()


class _AlgorithmManager:  # mantid/api/src/Exports/AlgorithmManager.cpp
    def create(self, name, version=-1):
        alg = AlgorithmFactory._create(name, version)
        alg.initialize()
        return alg

    def createUnmanaged(self, name, version=-1):
        return AlgorithmFactory._create(name, version)


AlgorithmManager = _AlgorithmManager()
