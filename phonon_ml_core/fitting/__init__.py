"""Direct fits of the simulator to spectra (Nelder–Mead and gradient), joint fits of temperature series, series
summaries, zone-boundary frequencies of the result, and the residual background.

The public names load lazily (PEP 562), so ``phonon_ml_core.fitting.defaults`` (no torch) can be imported by the
command line's ``--help`` and the Mantid algorithms' PyInit without importing torch."""
from __future__ import annotations

import importlib

_PUBLIC = {
    "METHODS": "spectrum_fit", "fit_spectrum": "spectrum_fit", "FitResult": "results", "JointResult": "joint_result",
    "SeriesResult": "series", "fit_series": "series", "series_of": "series", "fit_joint": "joint",
    "linear_trend": "trends",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"phonon_ml_core.fitting.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'phonon_ml_core.fitting' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
