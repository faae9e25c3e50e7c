"""Spectra and the grids they live on: the (E, |Q|) grid, the Spectrum type, normalisation, rebinning, safe file writes.

``standard_mask.json`` (the measured ARCS Ei = 50 meV mask) is package data in this folder.
"""
