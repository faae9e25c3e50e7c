"""Measured spectra to model-ready χ''(|Q|,E): detailed balance, background, cropping, rebinning, normalisation.

The public names load lazily (PEP 562), so the torch-free ``preprocess.background`` choices serve ``--help``."""
from __future__ import annotations

import importlib

_PUBLIC = {
    "PreprocessReport": "pipeline", "preprocess": "pipeline", "preprocess_with_report": "pipeline",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"phonon_ml_core.preprocess.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'phonon_ml_core.preprocess' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
