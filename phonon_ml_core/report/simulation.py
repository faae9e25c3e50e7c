"""Simulated spectra and data sets of a Material on an Experiment, recorded with both (CLI ``simulate`` and the demo).

Aluminium on the standard experiment goes through exactly the calls of before (its figures do not change). Other
materials use the simulator area's factory (``simulator.factory.get_simulator``) when it is installed, else a
:class:`~phonon_ml_core.simulator.PowderSimulator` built from the material's BvK model, a(T) and the experiment's
grid and chopper; data sets of other materials need ``generate_dataset(material=, experiment=)``.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from phonon_ml_core.data.jsonio import dumps
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.simulator import PowderSimulator, SimulationSettings, simulate_spectrum
from phonon_ml_core.simulator.dataset import SamplingConfig, generate_dataset
from phonon_ml_core.specs import ALUMINIUM, Experiment, Material


def settings_for(experiment: Experiment, settings: SimulationSettings | None = None) -> SimulationSettings:
    """``settings`` (default ones when None) with the experiment's instrument and chopper."""
    base = SimulationSettings() if settings is None else settings
    return replace(base, instrument=experiment.instrument, chopper_package=experiment.chopper_package,
                   chopper_frequency=experiment.chopper_frequency)


def _is_aluminium(material: Material) -> bool:
    return material.same_as(ALUMINIUM)


def simulator_for(material: Material, experiment: Experiment, settings: SimulationSettings | None = None,
                  lattice_parameter: float | None = None, device: str = "cpu") -> PowderSimulator:
    """A simulator of ``material`` on ``experiment`` (its grid, instrument and chopper; a(T) of the material unless
    ``lattice_parameter`` (Å) is given)."""
    settings = settings_for(experiment, settings)
    try:
        from phonon_ml_core.simulator.factory import get_simulator
    except ImportError:
        get_simulator = None
    if get_simulator is not None:
        return get_simulator(material=material, experiment=experiment, settings=settings, device=device)
    a = material.lattice_parameter_at if lattice_parameter is None else float(lattice_parameter)
    return PowderSimulator(grid=experiment.grid, model=material.bvk_model(), settings=settings,
                           lattice_parameter=a, device=device)


def simulate_for(material: Material, experiment: Experiment, force_constants, temperature: float,
                 settings: SimulationSettings | None = None, lattice_parameter: float | None = None,
                 linewidth: float | None = None, device: str = "cpu") -> Spectrum:
    """One simulated spectrum (N/m, K, Å, γ) of ``material`` on ``experiment``, recording both.

    Raises a ValueError naming the material's constants when the count is wrong.
    """
    fc = material.check_force_constants(force_constants)
    if fc.ndim != 1:
        raise ValueError(f"give one set of {material.n_constants} force constants ({', '.join(material.names)})")
    settings = settings_for(experiment, settings)
    if _is_aluminium(material):
        s = simulate_spectrum(fc, temperature, grid=experiment.grid, settings=settings,
                              lattice_parameter=lattice_parameter, linewidth=linewidth, device=device)
    else:
        sim = simulator_for(material, experiment, settings, lattice_parameter, device)
        with torch.no_grad():
            y = sim(fc[None], float(temperature), lattice_parameter=lattice_parameter,
                    linewidth=linewidth)[0].cpu().numpy()
        a = float(sim.prepare(fc[None], float(temperature), lattice_parameter).lattice_parameter[0])
        s = Spectrum(intensity=y.astype(np.float64), grid=sim.grid, temperature=float(temperature),
                     quantity=sim.settings.quantity, normalization="mean" if sim.settings.normalize else "none",
                     force_constants=fc, metadata={"simulated": True, "lattice_parameter": a,
                                                   "linewidth": linewidth or 0.0, "simulator": sim.describe()})
    return replace(s, material=material, experiment=experiment, instrument=experiment.instrument,
                   sample=material.name, metadata=dict(s.metadata))


def sampling_for(material: Material, seed: int = 0, temperature: float = 300.0,
                 temperature_range: tuple[float, float] | None = None,
                 linewidth_range: tuple[float, float] | None = None) -> SamplingConfig:
    """The material's sampling rule (its ``sampling_ranges``, conventions §7) as a :class:`SamplingConfig`."""
    return SamplingConfig(reference=list(material.reference_constants),
                          absolute_ranges={n: tuple(r) for n, r in zip(material.names, material.sampling_ranges)},
                          temperature=temperature, temperature_range=temperature_range,
                          linewidth_range=linewidth_range, seed=seed)


def dataset_for(output: str | os.PathLike, n: int, material: Material, experiment: Experiment,
                config: SamplingConfig, settings: SimulationSettings | None = None, **options) -> Path:
    """A training data set of ``material`` on ``experiment`` (``options`` go to ``generate_dataset``)."""
    settings = settings_for(experiment, settings)
    if "material" in inspect.signature(generate_dataset).parameters:
        return generate_dataset(output, n, config, grid=experiment.grid, settings=settings, material=material,
                                experiment=experiment, **options)
    if not _is_aluminium(material):
        raise ValueError(f"data sets of {material.name} need the simulator's generate_dataset(material=, "
                         "experiment=), which this installation lacks: simulate aluminium, or update phonon-ml")
    out = generate_dataset(output, n, config, grid=experiment.grid, settings=settings, **options)
    _record_specs(out, material, experiment)
    return out


def _record_specs(path: Path, material: Material, experiment: Experiment) -> None:
    """Write the Material and Experiment into a data set's root attributes (the layout of data.spectrum)."""
    import h5py

    with h5py.File(path, "a") as f:
        f.attrs["material_json"] = dumps(material.to_dict(), indent=None)
        f.attrs["experiment_json"] = dumps(experiment.to_dict(), indent=None)
