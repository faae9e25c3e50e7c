"""One simulated spectrum as a :class:`Spectrum`: the core call behind ``phonon-ml simulate --force-constants``
and the Mantid plugin."""
from __future__ import annotations

import numpy as np
import torch

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.simulator.settings import SimulationSettings
from phonon_ml_core.specs import Experiment, Material

__all__ = ["simulate_spectrum"]


def simulate_spectrum(force_constants, temperature: float, grid: Grid | None = None,
                      settings: SimulationSettings | None = None, lattice_parameter: float | None = None,
                      linewidth: float | None = None, device: str = "cpu", material: Material | str | None = None,
                      experiment: Experiment | None = None) -> Spectrum:
    """One simulated spectrum as a :class:`Spectrum` carrying its material and experiment (the core call behind the
    CLI and the Mantid plugin).

    ``force_constants`` (N/m, in the order of the material's names), ``temperature`` (K); ``material`` (default
    aluminium), ``experiment`` (default the standard one; ``grid`` replaces its grid), ``lattice_parameter`` (Å;
    default the material's a(T)), ``linewidth`` γ (HWHM = γ·E).
    """
    st = SimulationSettings() if settings is None else settings
    sim = get_simulator(material, experiment, grid=grid, quantity=st.quantity, settings=st, dtype=torch.float32,
                        device=device, normalize=st.normalize)
    fc = np.asarray(force_constants, dtype=float)
    with torch.no_grad():
        inp = sim.prepare(fc[None], float(temperature), lattice_parameter, linewidth)
        y = sim(inp, None)[0].cpu().numpy()
    a = float(inp.lattice_parameter[0])
    return Spectrum(intensity=y.astype(np.float64), grid=sim.grid, temperature=float(temperature),
                    quantity=st.quantity, normalization="mean" if st.normalize else "none",
                    force_constants=fc, instrument=sim.experiment.instrument, sample=sim.material.name,
                    metadata={"simulated": True, "lattice_parameter": a, "linewidth": linewidth or 0.0,
                              "simulator": sim.describe()},
                    material=sim.material, experiment=sim.experiment)
