"""The material and experiment of data sets and bundles, and the check that they match.

A data set or bundle written before materials and experiments were recorded is aluminium
(:data:`~phonon_ml_core.specs.ALUMINIUM`) measured or simulated on its own grid with the standard
experiment's settings (:data:`~phonon_ml_core.specs.STANDARD_EXPERIMENT`). A mismatch between a bundle and the
data given to it (or between a training set and its fine-tuning spectra) is refused with a message that says
what differs and what to do; a spectrum that records no material or experiment is not checked.
"""
from __future__ import annotations

import logging
from typing import Any

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT, Experiment, Material, SpecError

log = logging.getLogger(__name__)

#: Material fields that identify the crystal a model was trained for (a difference is refused).
MATERIAL_IDENTITY = ("element", "lattice", "n_shells")
#: Relative difference of Ei above which two experiments differ (an Ei read from the logs varies a little).
EI_RELATIVE_TOLERANCE = 0.02


def material_or_default(material: Material | None, n_constants: int | None = None, what: str = "data set") -> Material:
    """``material``, or aluminium for data written before materials were recorded (which then must hold
    aluminium's number of constants)."""
    if material is not None:
        return material
    if n_constants is not None and n_constants != ALUMINIUM.n_constants:
        raise ValueError(f"the {what} records no material but holds {n_constants} force constants per spectrum "
                         f"(aluminium, the default, has {ALUMINIUM.n_constants}: {', '.join(ALUMINIUM.names)}): "
                         "regenerate it with `phonon-ml simulate --material M`")
    return ALUMINIUM


def experiment_or_default(experiment: Experiment | None, grid: Grid, instrument: str | None = None,
                          settings: dict[str, Any] | None = None) -> Experiment:
    """``experiment``, or for older data the standard experiment's settings on ``grid`` (its Ei and 2θ range);
    ``instrument`` and the simulator ``settings`` a data set recorded (chopper package and frequency) win."""
    if experiment is not None:
        return experiment
    std = STANDARD_EXPERIMENT
    st = settings or {}
    if grid.same_as(std.grid) and (instrument or std.instrument) == std.instrument and \
            st.get("chopper_package", std.chopper_package) == std.chopper_package and \
            st.get("chopper_frequency", std.chopper_frequency) == std.chopper_frequency:
        return std
    try:
        return Experiment.create(instrument=instrument or std.instrument, ei_mev=grid.ei_mev,
                                 chopper_package=st.get("chopper_package"),
                                 chopper_frequency=st.get("chopper_frequency"), grid=grid,
                                 two_theta_deg=grid.two_theta_deg)
    except SpecError as exc:
        raise ValueError(f"the data record no experiment and none can be built from their grid and instrument "
                         f"({exc}): record one (`phonon-ml simulate/preprocess --instrument I --ei E`)") from exc


def spectrum_material(spectrum: Spectrum, what: str = "data set") -> Material:
    """The material of a spectrum or set (aluminium when it records none)."""
    fc = spectrum.force_constants
    return material_or_default(spectrum.material, None if fc is None else int(fc.shape[-1]), what)


def spectrum_experiment(spectrum: Spectrum) -> Experiment:
    """The experiment of a spectrum or set (for older files: the standard settings on its grid)."""
    sim = (spectrum.metadata.get("simulator") or {}) if isinstance(spectrum.metadata, dict) else {}
    return experiment_or_default(spectrum.experiment, spectrum.grid, spectrum.instrument or None,
                                 sim.get("settings") or sim.get("resolution"))


def material_differences(expected: Material, given: Material) -> list[str]:
    """Human-readable differences of the identifying fields (:data:`MATERIAL_IDENTITY`); [] when they match."""
    return [f"{f} {getattr(expected, f)!r} ≠ {getattr(given, f)!r}" for f in MATERIAL_IDENTITY
            if getattr(expected, f) != getattr(given, f)]


def experiment_differences(expected: Experiment, given: Experiment) -> list[str]:
    """Differences of instrument and Ei (beyond :data:`EI_RELATIVE_TOLERANCE`); [] when they match. The grid is
    checked separately (data are brought onto a model's grid); chopper differences only log a warning."""
    out = []
    if expected.instrument != given.instrument:
        out.append(f"instrument {expected.instrument} ≠ {given.instrument}")
    if abs(expected.ei_mev - given.ei_mev) > EI_RELATIVE_TOLERANCE * expected.ei_mev:
        out.append(f"Ei {expected.ei_mev:g} meV ≠ {given.ei_mev:g} meV")
    if not out and (expected.chopper_package, expected.chopper_frequency) != \
            (given.chopper_package, given.chopper_frequency):
        log.warning("the data were recorded with %s at %d Hz, the model was trained for %s at %d Hz: the "
                    "resolution differs a little", given.chopper_package, given.chopper_frequency,
                    expected.chopper_package, expected.chopper_frequency)
    return out


def is_richer_model(base: Material, given: Material | None) -> bool:
    """True when ``given`` is ``base`` with more neighbour shells (same element and lattice, ``base``'s constant
    names first): spectra simulated from it are unlabelled spectra for a model of ``base`` whose misfit is model
    error (``phonon-ml finetune`` on such a set, docs/training.md "Model-error adaptation")."""
    return (given is not None and given.element == base.element and given.lattice == base.lattice
            and given.n_shells > base.n_shells and tuple(given.names[:base.n_constants]) == tuple(base.names))


def is_measurement(spectrum: Spectrum) -> bool:
    """True for a measured spectrum: no force-constant labels and no simulator record. Its recorded material names
    the crystal; how many shells describe it is the model's choice (:meth:`Material.same_crystal`)."""
    meta = spectrum.metadata if isinstance(spectrum.metadata, dict) else {}
    return spectrum.force_constants is None and not (meta.get("simulator") or meta.get("simulated"))


def check_matches(material: Material, experiment: Experiment, spectrum: Spectrum, model: str = "the model",
                  data: str = "the data", fix: str | None = None) -> None:
    """Refuse (ValueError) ``spectrum`` when the material or experiment it records differs from ``material`` /
    ``experiment`` (those of ``model``); the message says what differs and what to do (``fix``). A measured
    spectrum (:func:`is_measurement`) of the same crystal passes whatever its recorded number of shells."""
    problems = []
    if spectrum.material is not None and not (is_measurement(spectrum) and spectrum.material.same_crystal(material)):
        problems += [f"material: {d}" for d in material_differences(material, spectrum.material)]
    if spectrum.experiment is not None:
        problems += [f"experiment: {d}" for d in experiment_differences(experiment, spectrum.experiment)]
    if problems:
        fix = fix or (f"use a model trained for {material.name} on {experiment.instrument} at Ei = "
                      f"{experiment.ei_mev:g} meV, or train one on data simulated for the data's material and "
                      "experiment (`phonon-ml simulate --material M --instrument I --ei E --count N`, then "
                      "`phonon-ml train`)")
        raise ValueError(f"{data} do not match {model} ({material.name}, {experiment.instrument}, Ei = "
                         f"{experiment.ei_mev:g} meV): {'; '.join(problems)}. {fix}")
