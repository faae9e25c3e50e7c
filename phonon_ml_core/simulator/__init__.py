"""The powder INS simulator: batched, differentiable, torch (see :mod:`.powder`)."""
from __future__ import annotations

import numpy as np
import torch

from phonon_ml_core.data.grid import Grid
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings, UnstableForceConstantsError

__all__ = ["PowderSimulator", "SimulationSettings", "UnstableForceConstantsError", "simulate_spectrum"]


def simulate_spectrum(force_constants, temperature: float, grid: Grid | None = None,
                      settings: SimulationSettings | None = None, lattice_parameter: float | None = None,
                      linewidth: float | None = None, device: str = "cpu") -> Spectrum:
    """One simulated spectrum as a :class:`Spectrum` (the core call behind the CLI and the Mantid plugin)."""
    sim = PowderSimulator(grid=grid, settings=settings, device=device)
    with torch.no_grad():
        y = sim(np.asarray(force_constants, dtype=float)[None], float(temperature),
                lattice_parameter=lattice_parameter, linewidth=linewidth)[0].cpu().numpy()
    a = float(sim.prepare(np.asarray(force_constants)[None], float(temperature), lattice_parameter).lattice_parameter[0])
    return Spectrum(intensity=y.astype(np.float64), grid=sim.grid, temperature=float(temperature),
                    quantity=sim.settings.quantity, normalization="mean" if sim.settings.normalize else "none",
                    force_constants=np.asarray(force_constants, dtype=float),
                    metadata={"simulated": True, "lattice_parameter": a, "linewidth": linewidth or 0.0,
                              "simulator": sim.describe()})
