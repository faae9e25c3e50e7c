"""Direct fits of the simulator to spectra (Nelder–Mead and gradient), joint fits of temperature series, series
summaries, zone-boundary frequencies of the result, and the residual background."""
from phonon_ml_core.fitting.joint import fit_joint
from phonon_ml_core.fitting.joint_result import JointResult
from phonon_ml_core.fitting.results import FitResult
from phonon_ml_core.fitting.series import SeriesResult, fit_series, series_of
from phonon_ml_core.fitting.spectrum_fit import METHODS, fit_spectrum
from phonon_ml_core.fitting.trends import linear_trend

__all__ = ["METHODS", "FitResult", "JointResult", "SeriesResult", "fit_joint", "fit_series", "fit_spectrum",
           "linear_trend", "series_of"]
