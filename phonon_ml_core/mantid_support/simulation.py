"""One simulated spectrum for a material and an experiment (SimulatePowderINS; torch imported lazily).

Transitional: builds the :class:`~phonon_ml_core.simulator.powder.PowderSimulator` from the specs until the
simulator's own factory (``simulator.factory.get_simulator(material, experiment)``) is on main; then this
module becomes a call to it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from phonon_ml_core.specs import Experiment, Material


def simulate_for(material: Material, experiment: Experiment, force_constants: Any, temperature: float,
                 settings: dict[str, Any], lattice_parameter: float | None = None,
                 linewidth: float | None = None):
    """A :class:`Spectrum` of ``material`` at ``temperature`` (K) on ``experiment``'s grid and resolution.

    Args:
        force_constants: N/m in the order of ``material.names`` (checked: the error names the names).
        settings: :class:`SimulationSettings` fields (quantity, normalize, multiphonon, mesh_density).
        lattice_parameter: Å; default the material's a(T).
        linewidth: γ (HWHM = γ·E) or None.
    """
    from dataclasses import replace

    import torch

    from phonon_ml_core.simulator import SimulationSettings
    from phonon_ml_core.simulator.powder import PowderSimulator

    fc = material.check_force_constants(force_constants)
    cfg = SimulationSettings(instrument=experiment.instrument, chopper_package=experiment.chopper_package,
                             chopper_frequency=experiment.chopper_frequency, **settings)
    sim = PowderSimulator(grid=experiment.grid, model=material.bvk_model(), settings=cfg,
                          lattice_parameter=material.lattice_parameter_at)
    with torch.no_grad():
        y = sim(fc[None], float(temperature), lattice_parameter=lattice_parameter, linewidth=linewidth)[0]
    a = float(sim.prepare(fc[None], float(temperature), lattice_parameter).lattice_parameter[0])
    from phonon_ml_core.data.spectrum import Spectrum

    s = Spectrum(intensity=y.cpu().numpy().astype(np.float64), grid=sim.grid, temperature=float(temperature),
                 quantity=cfg.quantity, normalization="mean" if cfg.normalize else "none", force_constants=fc,
                 metadata={"simulated": True, "lattice_parameter": a, "linewidth": linewidth or 0.0,
                           "simulator": sim.describe()})
    return replace(s, material=material, experiment=experiment, instrument=experiment.instrument,
                   sample=material.name)
