"""Force constants predicted by a trained bundle: bundle lookup, spectra onto the bundle's grid, result files.

The public names load lazily (PEP 562): importing the package does not import torch."""
from __future__ import annotations

import importlib

_PUBLIC = {
    "predict_spectra": "predict", "read_inputs_on_grid": "predict", "resolve_bundle": "predict",
    "shipped_bundle_path": "predict",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"phonon_ml_core.prediction.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'phonon_ml_core.prediction' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
