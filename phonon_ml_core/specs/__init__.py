"""Materials and experiments as data (conventions §0, §7): validated, serialisable specs and built-in presets.

``Material`` (lattice, shells, mass, scattering, a(T), reference constants, sampling ranges, fit bounds) and
``Experiment`` (instrument, chopper, Ei, 2θ range, (E, |Q|) grid and mask) round-trip through dicts, JSON and
YAML files. Built-in materials live in ``specs/materials/*.json`` (derived by ``specs/derive_builtin.py``).
"""
from phonon_ml_core.specs._io import SpecError
from phonon_ml_core.specs.experiment import STANDARD_EXPERIMENT, Experiment, default_grid
from phonon_ml_core.specs.instruments import InstrumentInfo, get_instrument, list_instruments
from phonon_ml_core.specs.material import (
                       ALUMINIUM,
                       LatticeParameter,
                       Material,
                       builtin_materials,
                       fit_bounds_rule,
                       get_material,
                       sampling_rule,
)

__all__ = ["ALUMINIUM", "STANDARD_EXPERIMENT", "Experiment", "InstrumentInfo", "LatticeParameter", "Material",
           "SpecError", "builtin_materials", "default_grid", "fit_bounds_rule", "get_instrument", "get_material",
           "list_instruments", "sampling_rule"]
