"""Which reader a file needs: the format sniffed from its HDF5 layout, and :func:`read_spectrum` dispatching to it."""
from __future__ import annotations

import os

import h5py

from phonon_ml_core.data.spectrum import Spectrum, read_spectrum_group
from phonon_ml_core.readers.mantid_nexus import is_mantid_nexus, read_mantid_nexus
from phonon_ml_core.readers.nxspe import find_nxspe_entry, read_nxspe

__all__ = ["FORMATS", "read_phonon_ml", "read_spectrum", "sniff_format"]

FORMATS = ("phonon-ml", "mantid", "nxspe")
_HDF4_MAGIC = b"\x0e\x03\x13\x01"


def _open(path: str | os.PathLike) -> h5py.File:
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p} does not exist: check the path")
    if os.path.isdir(p):
        raise ValueError(f"{p} is a directory: give a Mantid .nxs, .nxspe or phonon-ml .h5 file")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_HDF4_MAGIC):
        raise ValueError(f"{p} is an HDF4 NeXus file, which is not supported: re-save it in HDF5 "
                         "(Mantid SaveNexusProcessed / SaveNXSPE write HDF5) or convert it with nxconvert")
    try:
        return h5py.File(p, "r")
    except OSError as exc:
        if not h5py.is_hdf5(p):
            raise ValueError(f"{p} is not an HDF5/NeXus file (no HDF5 signature): give a Mantid processed NeXus "
                             ".nxs, an .nxspe or a phonon-ml .h5 file") from exc
        raise ValueError(f"{p} cannot be opened as HDF5 — it is probably truncated or corrupt ({exc}): "
                         "copy or export it again") from exc


def sniff_format(path: str | os.PathLike) -> str:
    """One of :data:`FORMATS` for the file at ``path``; ValueError naming what was found otherwise."""
    with _open(path) as f:
        return _sniff(f, os.fspath(path))


def _sniff(f: h5py.File, source: str) -> str:
    if all(k in f for k in ("q", "energy", "intensity")):
        return "phonon-ml"
    if find_nxspe_entry(f) is not None:
        return "nxspe"
    if is_mantid_nexus(f):
        return "mantid"
    keys = sorted(f.keys())[:10]
    raise ValueError(f"{source}: unknown HDF5 layout (top level: {keys}); expected a Mantid processed NeXus file "
                     "(mantid_workspace_1/workspace), an NXSPE file (entry with NXSPE_info and data) or the phonon-ml "
                     "layout (q, energy, intensity; conventions §4)")


def read_phonon_ml(path: str | os.PathLike) -> Spectrum:
    """A spectrum in the project's own HDF5 layout (conventions §4), e.g. the shared real data."""
    p = os.fspath(path)
    with _open(p) as f:
        return read_spectrum_group(f, source=p)


def read_spectrum(path: str | os.PathLike, **options) -> Spectrum:
    """Read a measured or simulated spectrum from any supported file, sniffing its format.

    ``options`` go to the format's reader (e.g. ``q_edges``/``dq``/``ei_mev`` for NXSPE, ``entry`` for
    Mantid). Raises FileNotFoundError for a missing file and ValueError for a non-HDF5, truncated or
    unknown file, with the fix in the message.
    """
    p = os.fspath(path)
    with _open(p) as f:
        fmt = _sniff(f, p)
        if fmt == "phonon-ml":
            if options:
                raise ValueError(f"options {sorted(options)} do not apply to phonon-ml files")
            return read_spectrum_group(f, source=p)
    if fmt == "nxspe":
        return read_nxspe(p, **options)
    return read_mantid_nexus(p, **options)

