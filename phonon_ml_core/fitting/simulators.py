"""Deprecated call form of the one simulator factory, kept for fitting/joint.py and its tests until they call
:func:`phonon_ml_core.simulator.factory.get_simulator` (material, experiment, grid=...) directly."""
from __future__ import annotations

import torch

from phonon_ml_core.simulator.factory import get_simulator as factory_simulator
from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings
from phonon_ml_core.specs import Experiment, Material
from phonon_ml_core.specs.grid import Grid


def get_simulator(grid: Grid, quantity: str = "chi''", settings: SimulationSettings | None = None,
                  dtype: torch.dtype = torch.float64, material: Material | None = None,
                  experiment: Experiment | None = None) -> PowderSimulator:
    """``simulator.factory.get_simulator(material, experiment, grid=grid, quantity=, settings=, dtype=)``."""
    return factory_simulator(material, experiment, grid=grid, quantity=quantity, settings=settings, dtype=dtype)
