"""The standard experiment's settings as plain data (conventions §2): ARCS, chopper package ARCS-100-1.5-AST at
300 Hz, Ei = 50 meV. The one home of these values; :data:`phonon_ml_core.specs.STANDARD_EXPERIMENT` is built from
them, and the command line's help reads them here without importing resins (no imports at all)."""
from __future__ import annotations

#: Instrument of the standard experiment (a resins name).
STANDARD_INSTRUMENT = "ARCS"
#: Its chopper package (a resins name) and Fermi-chopper frequency, Hz.
STANDARD_CHOPPER_PACKAGE = "ARCS-100-1.5-AST"
STANDARD_CHOPPER_FREQUENCY = 300
#: Its incident energy, meV.
STANDARD_EI_MEV = 50.0
