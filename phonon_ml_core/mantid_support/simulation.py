"""One simulated spectrum for a material and an experiment (SimulatePowderINS; torch imported lazily): the
plugin's settings dictionary handed to the core's :func:`phonon_ml_core.report.simulation.simulate_for`."""
from __future__ import annotations

from typing import Any

from phonon_ml_core.specs import Experiment, Material


def simulate_for(material: Material, experiment: Experiment, force_constants: Any, temperature: float,
                 settings: dict[str, Any], lattice_parameter: float | None = None,
                 linewidth: float | None = None, device: str = "cpu"):
    """A :class:`Spectrum` of ``material`` at ``temperature`` (K) on ``experiment``'s grid and resolution.

    Args:
        force_constants: N/m in the order of ``material.names`` (checked: the error names the names).
        settings: :class:`SimulationSettings` fields (quantity, normalize, multiphonon, mesh_density).
        lattice_parameter: Å; default the material's a(T).
        linewidth: γ (HWHM = γ·E) or None.
        device: torch device of the simulation (``cpu``, ``cuda``).
    """
    from phonon_ml_core.report.simulation import simulate_for as simulate
    from phonon_ml_core.simulator import SimulationSettings

    return simulate(material, experiment, force_constants, temperature, settings=SimulationSettings(**settings),
                    lattice_parameter=lattice_parameter, linewidth=linewidth, device=device)
