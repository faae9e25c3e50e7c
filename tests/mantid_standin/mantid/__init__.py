"""Stand-in for the ``mantid`` package (tests only). Real: Framework/PythonInterface/mantid/__init__.py,
which imports kernel, api, geometry and dataobjects but not simpleapi (mantid_api.md §1)."""
STANDIN = True  # not a Mantid name: lets tests tell the stand-in from the real package
from . import kernel, api  # noqa: E402,F401
