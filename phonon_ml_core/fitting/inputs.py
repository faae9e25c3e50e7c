"""What a fit starts from: the checked spectrum, its material and experiment, the start and the bounds.

Material: the argument, else the spectrum's, else :data:`~phonon_ml_core.specs.ALUMINIUM`. Experiment: the
argument, else the spectrum's, else the spectrum's grid with the instrument's default settings (the spectrum's
instrument when it names a known one, else the standard experiment's). Start and bounds (N/m) come from the
material (``reference_constants``, ``fit_bounds``).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from phonon_ml_core.data.normalization import is_mean_normalized
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT, Experiment, Material, SpecError, get_instrument


def prepare_spectrum(spectrum: Spectrum, notes: list[str]) -> Spectrum:
    """One finite, non-constant, mean-normalised spectrum (normalised here, with a note, when it was not)."""
    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"expected a phonon_ml_core.data.spectrum.Spectrum, got {type(spectrum).__name__}")
    if spectrum.is_set:
        raise ValueError(f"the spectrum is a set of {spectrum.n_spectra}; fit its members one by one "
                         "(spectrum[i]) or use fit_series")
    mask = spectrum.grid.mask
    v = np.asarray(spectrum.intensity, dtype=float)[mask]
    if v.size == 0 or not np.isfinite(v).any():
        raise ValueError("the spectrum has no finite values on its valid pixels (all NaN?): nothing to fit")
    if not np.isfinite(v).all():
        raise ValueError(f"the spectrum has {int((~np.isfinite(v)).sum())} NaN/infinite values on valid pixels of "
                         "its mask: mask them in the grid (or preprocess the file) before fitting")
    if np.ptp(v) <= 0:
        raise ValueError("the spectrum is constant on its valid pixels: nothing to fit")
    if spectrum.normalization != "mean" or not is_mean_normalized(spectrum.intensity, mask, atol=1e-3):
        notes.append("input was not mean-normalised; normalised it (conventions §3) before fitting")
        spectrum = replace(spectrum, normalization="none").normalized()
    return spectrum


def resolve_material(spectrum: Spectrum, material: Material | None) -> Material:
    """The material to fit: ``material``, else the spectrum's, else ALUMINIUM; a conflict is an error."""
    own = getattr(spectrum, "material", None)
    if material is None:
        return ALUMINIUM if own is None else own
    if not isinstance(material, Material):
        raise TypeError(f"material must be a phonon_ml_core.specs.Material (get_material('Fe')), got "
                        f"{type(material).__name__}")
    if own is not None and not (own.same_as(material) or own.same_crystal(material)):  # shells: the fit's choice
        raise ValueError(f"the spectrum belongs to {own.name} ({own.lattice}, {own.n_constants} constants) but the fit "
                         f"was asked for {material.name} ({material.lattice}, {material.n_constants} constants): "
                         f"fit it as {own.name} (omit the material) or use a spectrum of {material.name}")
    return material


def resolve_experiment(spectrum: Spectrum, experiment: Experiment | None) -> Experiment:
    """The experiment whose resolution the fit simulates, on the spectrum's grid (same Ei required)."""
    grid = spectrum.grid
    exp = experiment if experiment is not None else getattr(spectrum, "experiment", None)
    if exp is None:
        instrument = _known(spectrum.instrument) or STANDARD_EXPERIMENT.instrument
        standard = instrument == STANDARD_EXPERIMENT.instrument and grid.ei_mev == STANDARD_EXPERIMENT.ei_mev
        try:
            return Experiment.create(instrument, grid.ei_mev, grid=grid,
                                     chopper_package=STANDARD_EXPERIMENT.chopper_package if standard else None,
                                     chopper_frequency=STANDARD_EXPERIMENT.chopper_frequency if standard else None)
        except SpecError as exc:
            raise ValueError(f"cannot build the experiment of this spectrum ({instrument}, Ei = {grid.ei_mev:g} meV): "
                             f"{exc}; give the experiment (experiment= / --instrument --chopper --ei)") from exc
    if not isinstance(exp, Experiment):
        raise TypeError(f"experiment must be a phonon_ml_core.specs.Experiment, got {type(exp).__name__}")
    if not np.isclose(exp.ei_mev, grid.ei_mev):
        raise ValueError(f"the experiment's Ei ({exp.ei_mev:g} meV) differs from the spectrum's ({grid.ei_mev:g} meV): "
                         "give the experiment the spectrum was measured with (--ei)")
    return exp


def _known(instrument: str | None) -> str | None:
    """The canonical name of ``instrument`` when it is a known instrument, else None."""
    try:
        return get_instrument(str(instrument)).name
    except (SpecError, ValueError, KeyError):
        return None


def default_bounds(material: Material | np.ndarray | None = None) -> np.ndarray:
    """(K, 2) fit bounds (N/m) of ``material`` (default ALUMINIUM): its ``fit_bounds`` (conventions §7)."""
    if material is None or isinstance(material, Material):
        return np.array((ALUMINIUM if material is None else material).fit_bounds, dtype=float)
    from phonon_ml_core.specs import fit_bounds_rule  # a reference vector (the old signature)

    return np.array(fit_bounds_rule(material), dtype=float)


def resolve_start_and_bounds(start, bounds, material: Material, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The start (K,) and bounds (K, 2), N/m: the material's reference and fit bounds unless given.

    Default bounds are widened to hold a start outside them; a start outside given bounds is clipped.
    """
    names = material.names
    k = material.n_constants
    if start is not None and np.size(start) == 0:  # an empty list (e.g. an unset Mantid property) = default
        start = None
    x0 = np.array(material.reference_constants, float) if start is None else np.asarray(start, float).reshape(-1)
    if x0.shape != (k,) or not np.all(np.isfinite(x0)):
        raise ValueError(f"start must be {k} finite force constants {list(names)} in N/m for {material.name}, "
                         f"got {x0.tolist()}")
    if bounds is None:
        b = default_bounds(material)
        outside = (x0 < b[:, 0]) | (x0 > b[:, 1])
        if outside.any():
            for i in np.where(outside)[0]:  # widen the default box to hold the start, with a margin
                b[i, 0] = min(b[i, 0], x0[i] - 0.25 * abs(x0[i]) - 0.1)
                b[i, 1] = max(b[i, 1], x0[i] + 0.25 * abs(x0[i]) + 0.1)
            notes.append("default bounds widened to contain the start for " +
                         ", ".join(names[i] for i in np.where(outside)[0]))
    else:
        b = np.asarray(bounds, dtype=float)
        if b.shape != (k, 2) or not np.all(b[:, 1] > b[:, 0]):
            raise ValueError(f"bounds must be a ({k}, 2) array of (low, high) pairs with low < high, N/m, one per "
                             f"constant {list(names)}")
        if np.any((x0 < b[:, 0]) | (x0 > b[:, 1])):
            notes.append("start clipped into the bounds")
            x0 = np.clip(x0, b[:, 0], b[:, 1])
    return x0, b
