"""Direct fits of the simulator to spectra (Nelder–Mead and gradient), series summaries and the residual background."""
from phonon_ml_core.fitting.spectrum_fit import METHODS, FitResult, SeriesResult, fit_series, fit_spectrum

__all__ = ["METHODS", "FitResult", "SeriesResult", "fit_series", "fit_spectrum"]
