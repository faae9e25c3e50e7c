"""phonon-ml core: force constants from powder INS spectra (no Mantid dependency)."""
__version__ = "0.1.0"
