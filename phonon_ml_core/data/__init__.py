"""Spectra and their files: the Spectrum type and HDF5 layout, normalisation, rebinning, safe writes, JSON encoding."""
