"""Register the phonon-ml Mantid algorithms in a running Python session (scripts, notebooks).

``import phonon_ml_core.mantid_plugins`` subscribes all the algorithms in plugins/ when Mantid is importable (and
does nothing otherwise); :func:`register_plugins` does the same explicitly and returns the names. When
``mantid.simpleapi`` is already imported, the simpleapi functions are created too (the mslice / Shiver
pattern, docs/mantid_api.md §8), so ``from mantid.simpleapi import PreprocessForML`` works afterwards.
For Workbench, ``phonon-ml mantid-register`` adds the plugin directory to Mantid's user properties instead.
"""
from __future__ import annotations

import importlib.util
import sys

from phonon_ml_core.mantid_support.adapter import PLUGIN_ALGORITHMS, mantid_available, plugin_files

__all__ = ["register_plugins", "REGISTERED"]

REGISTERED: list[str] = []


def register_plugins(create_functions: bool = True) -> list[str]:
    """Subscribe the plugin algorithms (PLUGIN_ALGORITHMS) with Mantid's AlgorithmFactory; [] without Mantid."""
    if not mantid_available():
        return []
    from mantid.api import AlgorithmFactory  # noqa: F401  (the plugin files subscribe themselves)

    names = []
    for path in plugin_files():
        name = path.stem
        spec = importlib.util.spec_from_file_location(f"phonon_ml_mantid_plugin_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # ends with AlgorithmFactory.subscribe(<class>)
        names.append(name)
        if create_functions and "mantid.simpleapi" in sys.modules:
            try:
                from mantid.simpleapi import _create_algorithm_function
            except ImportError:
                continue
            alg = getattr(module, name)()
            alg.initialize()
            _create_algorithm_function(name, 1, alg)
    REGISTERED[:] = names
    assert tuple(names) == PLUGIN_ALGORITHMS
    return names


register_plugins()
