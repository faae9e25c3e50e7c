"""How a simulator's material, BvK template model and experiment are chosen and checked (before heavy work)."""
from __future__ import annotations

import numpy as np

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.physics.bvk import BvKModel
from phonon_ml_core.simulator.settings import SimulationSettings
from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT, Experiment, Material, get_instrument

#: SimulationSettings fields that older callers used for the resolution; the experiment owns them now.
LEGACY_EXPERIMENT_FIELDS = ("instrument", "chopper_package", "chopper_frequency")


def resolve_specs(material: Material | None, model: BvKModel | None, experiment: Experiment | None,
                  grid: Grid | None, settings: SimulationSettings) -> tuple[Material | None, BvKModel, Experiment]:
    """(material, template model, experiment) of a simulator.

    - material given: the template model is ``material.bvk_model()`` (a given model must match its lattice,
      shells and mass); neither given: aluminium (``specs.ALUMINIUM``); a bare model: material None.
    - experiment given: ``grid`` (optional) replaces its grid (same Ei); the settings' legacy instrument fields
      must be None or agree; valid pixels at E ≥ Ei are refused.
    - no experiment: the standard experiment, or its instrument and chopper (the settings' legacy fields when
      set) at the grid's Ei and 2θ range.
    """
    if material is not None:
        if not isinstance(material, Material):
            raise TypeError(f"material must be a phonon_ml_core.specs.Material, got {type(material).__name__}: "
                            "use specs.get_material(symbol_or_path)")
        if model is None:
            model = material.bvk_model()
        elif (model.lattice, model.n_shells) != (material.lattice, material.n_shells) \
                or not np.isclose(model.mass, material.mass_u):
            raise ValueError(f"the model ({model.lattice}, {model.n_shells} shells, {model.mass} u) does not match "
                             f"{material.name} ({material.lattice}, {material.n_shells} shells, {material.mass_u} u): "
                             "pass only the material (the model is built from it)")
    elif model is None:
        material = ALUMINIUM
        model = material.bvk_model()
    if grid is not None:
        grid.check_coverage()
    if experiment is None:
        experiment = experiment_for_grid(grid, settings)
    else:
        if not isinstance(experiment, Experiment):
            raise TypeError(f"experiment must be a phonon_ml_core.specs.Experiment, got {type(experiment).__name__}")
        _check_legacy_fields(experiment, settings)
        if grid is not None and grid is not experiment.grid:
            experiment = with_grid(experiment, grid)
        check_reachable(experiment)
    experiment.grid.check_coverage()
    return material, model, experiment


def with_grid(experiment: Experiment, grid: Grid) -> Experiment:
    """``experiment`` on ``grid`` (its 2θ range from the grid); the Ei must agree."""
    if grid.ei_mev != experiment.ei_mev:
        raise ValueError(f"the grid's Ei ({grid.ei_mev:g} meV) differs from the experiment's ({experiment.ei_mev:g} "
                         "meV): use specs.default_grid(Ei, instrument) for the experiment's Ei, or an experiment "
                         "for the grid's Ei")
    return Experiment(instrument=experiment.instrument, chopper_package=experiment.chopper_package,
                      chopper_frequency=experiment.chopper_frequency, ei_mev=experiment.ei_mev,
                      two_theta_deg=grid.two_theta_deg, grid=grid)


def check_reachable(experiment: Experiment) -> None:
    """Refuse a grid whose valid pixels include energy transfers no neutron of Ei can give (E ≥ Ei)."""
    g = experiment.grid
    beyond = g.mask & (g.energy[:, None] >= experiment.ei_mev)
    if beyond.any():
        raise ValueError(f"{int(beyond.sum())} valid pixels of the grid have energy transfer ≥ Ei = "
                         f"{experiment.ei_mev:g} meV, which {experiment.instrument} cannot reach: mask them, lower "
                         "the energies or raise Ei (specs.default_grid(Ei, instrument) gives a reachable grid)")


def _check_legacy_fields(experiment: Experiment, settings: SimulationSettings) -> None:
    for name in LEGACY_EXPERIMENT_FIELDS:
        value = getattr(settings, name)
        if value is not None and value != getattr(experiment, name):
            raise ValueError(f"SimulationSettings.{name} = {value!r} differs from the experiment's "
                             f"{getattr(experiment, name)!r}: set it on the Experiment (Experiment.create(...)) and "
                             f"leave SimulationSettings.{name} as None")


def experiment_for_grid(grid: Grid | None, settings: SimulationSettings) -> Experiment:
    """The experiment of a grid given without one: the standard experiment's instrument and chopper (or the
    settings' legacy fields when set) at the grid's Ei and 2θ range; the standard experiment for its grid."""
    std = STANDARD_EXPERIMENT
    given = {n: getattr(settings, n) for n in LEGACY_EXPERIMENT_FIELDS if getattr(settings, n) is not None}
    if (grid is None or grid is std.grid) and all(v == getattr(std, n) for n, v in given.items()):
        return std
    grid = std.grid if grid is None else grid
    instrument = get_instrument(given.get("instrument", std.instrument)).name
    same = instrument == std.instrument
    package = given.get("chopper_package", std.chopper_package if same else None)
    frequency = given.get("chopper_frequency", std.chopper_frequency if same else None)
    return Experiment.create(instrument, ei_mev=grid.ei_mev, chopper_package=package, chopper_frequency=frequency,
                             grid=grid, two_theta_deg=grid.two_theta_deg)


def scattering_weights(material: Material | None, settings: SimulationSettings,
                       explicit: bool) -> tuple[float, float]:
    """(coherent, incoherent) one-phonon weights, and whether the incoherent term is on.

    ``settings.incoherent`` None (default) means: on when the caller gave the material (``explicit``), off for the
    legacy aluminium default and for a bare model. With the term on, the weights are σ_coh/σ_tot and σ_inc/σ_tot
    (the simulator's unit is σ_tot/4π per atom; multiphonon has weight 1); with it off and a given material,
    (σ_coh/σ_tot, 0); otherwise the old normalisation (1, 0): coherent only, b_coh² factored out.
    """
    include = explicit if settings.incoherent is None else bool(settings.incoherent)
    if material is None:
        if include:
            raise ValueError("the incoherent one-phonon term needs the scattering cross-sections: pass material= "
                             "(a phonon_ml_core.specs.Material) instead of a bare model, or incoherent=False")
        return 1.0, 0.0
    if not include and not explicit:
        return 1.0, 0.0
    total = material.sigma_coh_barn + material.sigma_inc_barn
    if total <= 0:
        raise ValueError(f"{material.name}: σ_coh + σ_inc = 0 barn: give the material's scattering cross-sections")
    return material.sigma_coh_barn / total, (material.sigma_inc_barn / total if include else 0.0)
