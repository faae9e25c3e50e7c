"""Stand-in for ``mantid.kernel`` (tests only); each name cites its source in mantidproject/mantid."""
from __future__ import annotations

import numpy as np


class Direction:  # mantid/kernel/src/Exports/Property.cpp (Direction enum)
    Input, Output, InOut, None_ = 0, 1, 2, 3


class Property:  # mantid/kernel/src/Exports/Property.cpp; EMPTY_DBL/EMPTY_INT sentinels (mantid_api.md §1)
    EMPTY_DBL = 8.9884656743115785e307   # DBL_MAX / 2 (Framework/Kernel/inc/MantidKernel/EmptyValues.h)
    EMPTY_INT = 2147483647               # INT_MAX

    def __init__(self, name, value, validator=None, direction=Direction.Input, doc=""):
        self.name, self.direction, self.documentation = name, direction, doc
        self.validator = validator
        self._default = value
        self._value = value

    @property
    def value(self):
        return self._value

    @property
    def valueAsStr(self):
        v = self._value
        if isinstance(v, np.ndarray):
            return ",".join(repr(float(x)) if v.dtype.kind == "f" else str(x) for x in v)
        if isinstance(v, bool):
            return "1" if v else "0"
        return "" if v is None else str(v)

    @property
    def isDefault(self):
        """``m_initialValue == m_value`` (PropertyWithValue.tcc): a property set to its default reads as default."""
        d, v = self._default, self._value
        if isinstance(d, np.ndarray) or isinstance(v, (np.ndarray, list)):
            return len(d) == len(v) and all(a == b for a, b in zip(d, v))
        return bool(v == d)

    @property
    def isValid(self):
        """'' when valid, else the message: a read-only attribute, not a method (Property.cpp export of
        Framework/Kernel/src/PropertyWithValue.tcc: isValid)."""
        return "" if self.validator is None else self.validator.check(self._value)

    def _assign(self, value):
        self._value = self._convert(value)
        msg = self.isValid
        if msg:
            raise ValueError(msg)

    def _convert(self, value):
        d = self._default
        if isinstance(d, bool):
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true")
            return bool(value)
        if isinstance(d, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"Cannot convert {value} to int for property {self.name}")
            return int(value)
        if isinstance(d, float):
            return float(value)
        if isinstance(d, str):
            if not isinstance(value, str):
                raise ValueError(f"Property {self.name} expects a str, got {type(value).__name__}")
            return value
        return value


class _Validator:
    def check(self, value):  # pragma: no cover - abstract
        return ""


class FloatBoundedValidator(_Validator):  # mantid/kernel/src/Exports/BoundedValidator.cpp
    """BoundedValidator::checkValidity has no exemption for EMPTY_DBL / EMPTY_INT: an upper-bounded property
    whose default is EMPTY_DBL is invalid until set (Framework/Kernel/inc/MantidKernel/BoundedValidator.h)."""

    def __init__(self, lower=None, upper=None, exclusive=False):
        self.lower, self.upper, self.exclusive = lower, upper, exclusive

    def check(self, value):
        v = float(value)
        if self.lower is not None and (v < self.lower or (self.exclusive and v == self.lower)):
            return f"Selected value {v} is < the lower bound of {self.lower}"
        if self.upper is not None and (v > self.upper or (self.exclusive and v == self.upper)):
            return f"Selected value {v} is > the upper bound of {self.upper}"
        return ""


class IntBoundedValidator(FloatBoundedValidator):  # mantid/kernel/src/Exports/BoundedValidator.cpp
    pass


class StringListValidator(_Validator):  # mantid/kernel/src/Exports/ListValidator.cpp
    def __init__(self, values=None):
        self.allowed = list(values or [])

    def allowedValues(self):
        return list(self.allowed)

    def check(self, value):
        return "" if value in self.allowed else f"The value \"{value}\" is not in the list of allowed values"


class FloatArrayLengthValidator(_Validator):  # mantid/kernel/src/Exports/ArrayLengthValidator.cpp
    def __init__(self, lenmin, lenmax=None):
        self.lo, self.hi = (lenmin, lenmin) if lenmax is None else (lenmin, lenmax)

    def check(self, value):
        n = len(value)
        if self.lo == self.hi and n != self.lo:
            return f"Incorrect size. Should be {self.lo}"
        if n < self.lo:
            return "Array size too short"
        if n > self.hi:
            return "Array size too long"
        return ""


class CompositeRelation:  # mantid/kernel/src/Exports/CompositeValidator.cpp (CompositeRelation enum)
    AND, OR = 0, 1


class CompositeValidator(_Validator):  # mantid/kernel/src/Exports/CompositeValidator.cpp
    """``CompositeValidator()`` then ``.add(v)``, or ``CompositeValidator([v, ...], relation=CompositeRelation.AND)``.
    AND (the default) returns the first child's error (Framework/Kernel/src/CompositeValidator.cpp, isValidAnd).
    OR is not modelled (raises)."""

    def __init__(self, validators=None, relation=CompositeRelation.AND):
        if relation != CompositeRelation.AND:
            raise NotImplementedError("stand-in: CompositeRelation.OR is not modelled")
        self.children = list(validators or [])

    def add(self, validator):
        if not isinstance(validator, _Validator):
            raise TypeError("CompositeValidator.add expects a validator")
        self.children.append(validator)

    def check(self, value):
        for child in self.children:
            msg = child.check(value)
            if msg:
                return msg
        return ""


def _array(values, dtype):
    if isinstance(values, str):
        values = [x for x in values.replace(" ", "").split(",") if x]
    return np.asarray(values if values is not None else [], dtype=dtype)


class _ArrayProperty(Property):  # mantid/kernel/src/Exports/ArrayProperty.cpp: (name, values, validator, direction)
    DTYPE = float

    def __init__(self, name, values=None, validator=None, direction=Direction.Input):
        if isinstance(values, int) and validator is None and not isinstance(values, bool):  # (name, direction)
            values, direction = [], values
        elif isinstance(values, _Validator):  # (name, validator, direction)
            values, validator, direction = [], values, (validator if isinstance(validator, int) else direction)
        super().__init__(name, _array(values, self.DTYPE), validator, direction)

    def _convert(self, value):
        return _array(value, self.DTYPE)


class FloatArrayProperty(_ArrayProperty):
    DTYPE = float


class IntArrayProperty(_ArrayProperty):
    DTYPE = int


class StringArrayProperty(_ArrayProperty):
    """``.value`` is a list of str (std::vector<std::string> is converted to a Python list)."""
    DTYPE = object

    def __init__(self, name, values=None, validator=None, direction=Direction.Input):
        super().__init__(name, values, validator, direction)
        self._default = self._value = self._convert(values if not isinstance(values, (int, _Validator)) else [])

    def _convert(self, value):
        if isinstance(value, str):
            value = [x.strip() for x in value.split(",") if x.strip()]
        return [str(x) for x in (value if value is not None else [])]

    @property
    def valueAsStr(self):
        return ",".join(self._value)


class FloatTimeSeriesProperty:  # mantid/kernel/src/Exports/TimeSeriesProperty.cpp (FloatTimeSeriesProperty)
    """A time-series log: ``addValue(time, value)``; ``.value`` is a numpy array of the values; added to a run with
    ``run.addProperty(name, prop, replace)`` (mantid/api/src/Exports/Run.cpp accepts Property objects)."""

    def __init__(self, name):
        self.name, self.units = name, ""
        self._times, self._values = [], []

    def addValue(self, time, value):
        self._times.append(str(time))
        self._values.append(float(value))

    @property
    def value(self):
        return np.asarray(self._values, dtype=float)

    def times(self):
        return list(self._times)

    def size(self):
        return len(self._values)


class Logger:  # mantid/kernel/src/Exports/Logger.cpp
    def __init__(self, name):
        self.name = name
        self.messages = []

    def _log(self, level, msg):
        self.messages.append((level, str(msg)))

    def information(self, msg):
        self._log("information", msg)

    def notice(self, msg):
        self._log("notice", msg)

    def warning(self, msg):
        self._log("warning", msg)

    def error(self, msg):
        self._log("error", msg)

    def debug(self, msg):
        self._log("debug", msg)


logger = Logger("Python")  # mantid/kernel/_aliases.py


class _ConfigService:  # mantid/kernel/src/Exports/ConfigService.cpp; config = ConfigService (kernel/_aliases.py)
    def __init__(self):
        self._values = {"default.facility": "ISIS", "user.python.plugins.directories": ""}
        self._user_dir = ""

    def __getitem__(self, key):
        return self._values.get(key, "")

    def __setitem__(self, key, value):
        self._values[key] = str(value)

    def getString(self, key):
        return self[key]

    def setString(self, key, value):
        self[key] = value

    def getUserPropertiesDir(self):
        return self._user_dir

    def getUserFilename(self):
        import os
        return os.path.join(self._user_dir, "Mantid.user.properties")


ConfigService = _ConfigService()
config = ConfigService
