"""Input files of ``fit`` and ``predict``: preprocessed ``.h5`` spectra as they are, reduced Mantid files
(processed NeXus from SofQW, NXSPE) preprocessed on the way in (conventions §6).

A reduced file goes onto a target grid: the bundle's for predict, :func:`phonon_ml_core.specs.default_grid` for its
Ei and instrument for fit. Ei comes from the file (``ei_mev`` overrides it); a reduced file without one is an
error naming the flag. The material recorded in a file must equal the one asked for.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.preprocess.pipeline import preprocess
from phonon_ml_core.readers import read_spectrum, sniff_format
from phonon_ml_core.specs import STANDARD_EXPERIMENT, Material, SpecError, default_grid, get_instrument


@dataclass
class InputSpectrum:
    """One input file read for a fit or a prediction: the spectrum (one or a set), its path and how it was read."""

    spectrum: Spectrum
    path: str
    reduced: bool


def known_instrument(name: str | None) -> str | None:
    """The canonical name of ``name`` when it is an instrument the specs know, else None."""
    try:
        return get_instrument(str(name)).name
    except (SpecError, ValueError, KeyError):
        return None


def is_reduced(path: str | os.PathLike) -> bool:
    """True for a reduced Mantid file (processed NeXus or NXSPE), False for a phonon-ml ``.h5`` spectrum."""
    return sniff_format(path) != "phonon-ml"


def read_reduced(path: str | os.PathLike, grid: Grid | None = None, ei_mev: float | None = None,
                 instrument: str | None = None, temperature: float | None = None) -> Spectrum:
    """A reduced file preprocessed (background-subtracted, mean-normalised χ'') onto ``grid``.

    ``grid`` None: the default grid for the file's Ei (or ``ei_mev``, meV) on ``instrument`` (default: the file's
    instrument when known, else the standard experiment's). ``temperature`` (K) overrides the file's.
    """
    p = os.fspath(path)
    fmt = sniff_format(p)
    options = {"ei_mev": ei_mev} if fmt == "nxspe" else {}
    raw = read_spectrum(p, **options)  # own |Q| axis; Ei from the file
    if grid is None:
        ei = _ei_of(raw, ei_mev, p)
    else:
        ei = grid.ei_mev if ei_mev is None else float(ei_mev)
        if raw.metadata.get("ei_from_file") and not np.isclose(raw.grid.ei_mev, grid.ei_mev, rtol=0.01):
            raise ValueError(f"{p}: measured at Ei = {raw.grid.ei_mev:g} meV but the target grid (the model's) is for "
                             f"Ei = {grid.ei_mev:g} meV: use a model trained for this Ei")
    if grid is None:
        name = instrument or known_instrument(raw.instrument) or STANDARD_EXPERIMENT.instrument
        grid = default_grid(ei, name)
    if fmt == "nxspe":  # the powder average onto the target's |Q| bins
        raw = read_spectrum(p, q_edges=grid.q_edges, ei_mev=ei)
    try:
        return preprocess(raw, grid=grid, temperature=temperature)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from None


def _ei_of(raw: Spectrum, ei_mev: float | None, path: str) -> float:
    if ei_mev is not None:
        if not (np.isfinite(ei_mev) and ei_mev > 0):
            raise ValueError(f"--ei must be a positive energy in meV, got {ei_mev}")
        return float(ei_mev)
    if raw.metadata.get("ei_from_file") is False:
        raise ValueError(f"{path}: the file records no incident energy (Ei): give it with --ei (meV)")
    return float(raw.grid.ei_mev)


def check_material(spectrum: Spectrum, material: Material | None, path: str, by_model: bool = False) -> None:
    """Refuse a file whose recorded material differs from ``material`` (what differs, and what to do). The same
    crystal with another number of shells is accepted: the shells are the reader's model, not the sample's.
    ``by_model``: ``material`` is a model bundle's (the advice names a bundle for the file's material)."""
    own = spectrum.material
    if material is None or own is None or own.same_as(material) or own.same_crystal(material):
        return
    held = f"{path} holds spectra of {own.name} ({own.lattice}, constants {', '.join(own.names)})"
    if by_model:
        raise ValueError(f"{held} but the model bundle was trained for {material.name} ({material.lattice}, "
                         f"{', '.join(material.names)}): give --model a bundle trained for {own.name} "
                         f"(`phonon-ml train` on a set simulated with --material {own.element}), or use "
                         f"`phonon-ml fit --material {own.element}`")
    raise ValueError(f"{held} but {material.name} was asked for ({material.lattice}, {', '.join(material.names)}): "
                     f"use --material {own.element} (or omit --material), or give spectra of {material.name}")


def read_inputs(paths, grid: Grid | None = None, ei_mev: float | None = None, instrument: str | None = None,
                temperature: float | None = None, material: Material | None = None) -> list[InputSpectrum]:
    """Read every input file (light work only), preprocessing reduced ones onto ``grid`` (see :func:`read_reduced`)
    and checking each file's material against ``material``; ``temperature`` (K) overrides the files'."""
    if temperature is not None and not temperature > 0:
        raise ValueError(f"--temperature must be positive (K), got {temperature}")
    out = []
    for path in paths:
        p = os.fspath(path)
        reduced = is_reduced(p)
        s = read_reduced(p, grid, ei_mev, instrument, temperature) if reduced else read_spectrum(p)
        if not reduced and temperature is not None:
            t = float(temperature)
            s.temperature = np.full(s.n_spectra, t) if s.is_set else t
        check_material(s, material, p)
        out.append(InputSpectrum(spectrum=s, path=p, reduced=reduced))
    return out
