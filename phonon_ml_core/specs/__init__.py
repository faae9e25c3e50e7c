"""Materials and experiments as data (conventions §0, §7): validated, serialisable specs and built-in presets.

``Material`` (lattice, shells, mass, scattering, a(T), reference constants, sampling ranges, fit bounds) and
``Experiment`` (instrument, chopper, Ei, 2θ range, (E, |Q|) grid and mask) round-trip through dicts, JSON and
YAML files. Built-in materials live in ``specs/materials/*.json`` (derived by ``specs/derive_builtin.py``).

The public names load lazily (PEP 562): ``STANDARD_EXPERIMENT`` asks resins (about 2 s to import) for the
instrument, so ``from phonon_ml_core.specs import ALUMINIUM`` must not build it (the command line's ``--help``).
"""
from __future__ import annotations

from phonon_ml_core._lazy import lazy_exports

_PUBLIC = {
    "SpecError": "_io", "STANDARD_EXPERIMENT": "experiment", "Experiment": "experiment", "default_grid": "experiment",
    "InstrumentInfo": "instruments", "get_instrument": "instruments", "list_instruments": "instruments",
    "ALUMINIUM": "material", "LatticeParameter": "material", "Material": "material", "builtin_materials": "material",
    "fit_bounds_rule": "material", "get_material": "material", "sampling_rule": "material",
}

__all__ = sorted(_PUBLIC)


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
