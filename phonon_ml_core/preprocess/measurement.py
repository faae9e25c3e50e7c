"""What a measured file is: its instrument, Ei, default grid, and the Material/Experiment recorded with the result.

The default grid for a file's Ei is :func:`phonon_ml_core.specs.default_grid` (the one home of the Ei → grid rule);
the instrument comes from the user, else the file, else the standard experiment's when the file names none.
"""
from __future__ import annotations

import logging
import os

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.rebin import HALF_AREA_COVERAGE
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.readers import read_spectrum, sniff_format
from phonon_ml_core.readers.logs import canonical_instrument
from phonon_ml_core.specs import (
    STANDARD_EXPERIMENT,
    Experiment,
    Material,
    SpecError,
    default_grid,
    get_material,
    list_instruments,
)

log = logging.getLogger(__name__)


def measured_instrument(spectrum: Spectrum, instrument: str | None = None) -> str:
    """The instrument of a measured spectrum: ``instrument`` if given, else its experiment's, else the name in
    its file; the standard experiment's when the file names none. A name no one knows is a SpecError listing
    the known ones."""
    if instrument:
        return _known(instrument)
    if spectrum.experiment is not None:
        return spectrum.experiment.instrument
    named = (spectrum.instrument or "").strip()
    if not named:
        log.info("the input names no instrument: assuming %s (pass --instrument to say which)",
                 STANDARD_EXPERIMENT.instrument)
        return STANDARD_EXPERIMENT.instrument
    return _known(named)


def _known(name: str) -> str:
    known = canonical_instrument(name)
    if known is None:
        raise SpecError(f"unknown instrument {name!r}: choose one of {list_instruments()} with --instrument "
                        "(the closest direct-geometry spectrometer that resins models)")
    return known


def target_grid(spectrum: Spectrum, instrument: str | None = None) -> Grid:
    """The default grid (specs.default_grid) for the spectrum's Ei on its instrument."""
    return default_grid(spectrum.grid.ei_mev, measured_instrument(spectrum, instrument))


def experiment_of(grid: Grid, ei_mev: float, instrument: str, previous: Experiment | None = None) -> Experiment:
    """The Experiment of data on ``grid`` measured at ``ei_mev`` on ``instrument``: the chopper of ``previous`` (the
    input's experiment) when it is the same instrument, else the instrument's default chopper.

    When the grid's Ei differs from the data's (data put on another setting's grid, e.g. a bundle's) the grid
    is relabelled with the data's Ei: the recorded experiment says what was measured.
    """
    if grid.ei_mev != ei_mev:
        grid = Grid(q=grid.q, energy=grid.energy, mask=grid.mask, ei_mev=ei_mev, two_theta_deg=grid.two_theta_deg,
                    q_edges=grid.q_edges, energy_edges=grid.energy_edges)
    same = previous is not None and previous.instrument == instrument
    return Experiment.create(instrument=instrument, ei_mev=ei_mev, grid=grid,
                             chopper_package=previous.chopper_package if same else None,
                             chopper_frequency=previous.chopper_frequency if same else None)


def resolve_material(material: str | os.PathLike | Material | None, spectrum: Spectrum | None = None
                     ) -> Material | None:
    """The material given (symbol, file or Material), else the spectrum's; None when neither says (readers of the
    result take aluminium then, conventions §0: the CLI records ``ALUMINIUM`` explicitly)."""
    if material is not None:
        return get_material(material)
    if spectrum is not None and spectrum.material is not None:
        return spectrum.material
    return None


def read_measured(path: str | os.PathLike, grid: Grid | None = None, ei_mev: float | None = None,
                  instrument: str | None = None, min_coverage: float = HALF_AREA_COVERAGE) -> Spectrum:
    """A measured file (Mantid processed NeXus, NXSPE or phonon-ml .h5) read for preprocessing.

    ``ei_mev`` and ``instrument`` override the file's. NXSPE detector data are converted to powder S(|Q|,E) on the
    target grid's |Q| bins (``grid``, else the default grid for the file's Ei) with the half-area rule.
    """
    fmt = sniff_format(path)
    if fmt == "phonon-ml":
        return read_spectrum(path)
    options = {"ei_mev": ei_mev, "instrument": instrument}
    if fmt == "nxspe":
        if grid is None:
            grid = target_grid(read_spectrum(path, **options), instrument)
        options.update(q_edges=grid.q_edges, min_coverage=min_coverage)
    return read_spectrum(path, **options)
