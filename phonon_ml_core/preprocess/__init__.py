"""Measured spectra to model-ready χ''(|Q|,E): detailed balance, background, cropping, rebinning, normalisation.

The public names load lazily (PEP 562), so the torch-free ``preprocess.background`` choices serve ``--help``."""
from __future__ import annotations

from phonon_ml_core._lazy import lazy_exports

_PUBLIC = {
    "PreprocessReport": "pipeline", "preprocess": "pipeline", "preprocess_with_report": "pipeline",
}

__all__ = sorted(_PUBLIC)


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
