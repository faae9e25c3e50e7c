"""Force constants predicted by a trained bundle: bundle lookup, spectra onto the bundle's grid, result files."""
from phonon_ml_core.prediction.predict import predict_spectra, read_inputs_on_grid, resolve_bundle, shipped_bundle_path

__all__ = ["predict_spectra", "read_inputs_on_grid", "resolve_bundle", "shipped_bundle_path"]
