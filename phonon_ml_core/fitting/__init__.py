"""Direct fits of the simulator to spectra (Nelder–Mead and gradient), joint fits of temperature series, series
summaries, zone-boundary frequencies of the result, and the residual background.

The public names load lazily (PEP 562), so ``phonon_ml_core.fitting.defaults`` (no torch) can be imported by the
command line's ``--help`` and the Mantid algorithms' PyInit without importing torch."""
from __future__ import annotations

from phonon_ml_core._lazy import lazy_exports

_PUBLIC = {
    "METHODS": "spectrum_fit", "fit_spectrum": "spectrum_fit", "FitResult": "results", "JointResult": "joint_result",
    "SeriesResult": "series", "fit_series": "series", "series_of": "series", "fit_joint": "joint",
    "linear_trend": "trends",
}

__all__ = sorted(_PUBLIC)


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
