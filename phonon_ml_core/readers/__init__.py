"""Readers for measured spectra, without Mantid (h5py only); each returns a :class:`Spectrum`.

Formats: Mantid processed NeXus S(|Q|,E) (:func:`read_mantid_nexus`), NXSPE detector data converted
to powder S(|Q|,E) (:func:`read_nxspe`) and the project's own HDF5 layout (conventions §4).
:func:`read_spectrum` sniffs the format (:mod:`.formats`). The public names load lazily (PEP 562).
"""
from __future__ import annotations

from phonon_ml_core._lazy import lazy_exports

_PUBLIC = {
    "FORMATS": "formats", "read_phonon_ml": "formats", "read_spectrum": "formats", "sniff_format": "formats",
    "powder_sqw": "powder", "read_mantid_nexus": "mantid_nexus", "read_nxspe": "nxspe",
    "write_mantid_nexus": "writers", "write_nxspe": "writers",
}

__all__ = sorted(_PUBLIC)


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)
