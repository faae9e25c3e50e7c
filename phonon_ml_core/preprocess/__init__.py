"""Measured spectra to model-ready χ''(|Q|,E): detailed balance, background, cropping, rebinning, normalisation."""
from phonon_ml_core.preprocess.pipeline import PreprocessReport, preprocess, preprocess_with_report

__all__ = ["PreprocessReport", "preprocess", "preprocess_with_report"]
