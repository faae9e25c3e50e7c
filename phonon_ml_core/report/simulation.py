"""Simulated spectra and data sets of a Material on an Experiment for the CLI ``simulate`` and the demo: thin
calls of the simulator's ``simulate_spectrum`` / ``generate_dataset`` with the checks the command line needs.

``material=None`` is aluminium with the legacy physics (no incoherent term): the aluminium commands of
conventions §6 keep their numbers; a named material (aluminium included) gets the full §7 scattering.
"""
from __future__ import annotations

import os
from pathlib import Path

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.simulator import SimulationSettings, simulate_spectrum
from phonon_ml_core.simulator.dataset import SamplingConfig, generate_dataset
from phonon_ml_core.specs import ALUMINIUM, Experiment, Material


def simulate_for(material: Material | None, experiment: Experiment, force_constants, temperature: float,
                 settings: SimulationSettings | None = None, lattice_parameter: float | None = None,
                 linewidth: float | None = None, device: str = "cpu") -> Spectrum:
    """One simulated spectrum (constants N/m, T in K, a in Å, γ) of ``material`` on ``experiment``, recording both.

    A wrong number of constants is a ValueError naming the material's constants, before any simulation.
    """
    fc = (ALUMINIUM if material is None else material).check_force_constants(force_constants)
    if fc.ndim != 1:
        names = (ALUMINIUM if material is None else material).names
        raise ValueError(f"give one set of {len(names)} force constants ({', '.join(names)})")
    return simulate_spectrum(fc, temperature, settings=settings, lattice_parameter=lattice_parameter,
                             linewidth=linewidth, device=device, material=material, experiment=experiment)


def sampling_for(material: Material, seed: int = 0, temperature: float = 300.0,
                 temperature_range: tuple[float, float] | None = None,
                 linewidth_range: tuple[float, float] | None = None) -> SamplingConfig:
    """A :class:`SamplingConfig` drawing the material's sampling ranges (conventions §7) and these nuisances."""
    return SamplingConfig(temperature=temperature, temperature_range=temperature_range,
                          linewidth_range=linewidth_range, seed=seed)


def dataset_for(output: str | os.PathLike, n: int, material: Material | None, experiment: Experiment,
                config: SamplingConfig, settings: SimulationSettings | None = None, **options) -> Path:
    """A training data set of ``material`` on ``experiment`` (``options`` go to ``generate_dataset``)."""
    return generate_dataset(output, n, config, settings=settings, material=material, experiment=experiment,
                            **options)
