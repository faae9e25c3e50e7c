"""Force constants predicted by a trained bundle: bundle lookup, spectra onto the bundle's grid, result files.

The public names load lazily (PEP 562): importing the package does not import torch."""
from __future__ import annotations

from phonon_ml_core._lazy import lazy_exports

_PUBLIC = {
    "predict_spectra": "predict", "read_inputs_on_grid": "predict", "resolve_bundle": "predict",
    "shipped_bundle_path": "predict",
}

__all__ = sorted(_PUBLIC)


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
