"""The one place the fitting and prediction code builds a simulator (a cached :class:`PowderSimulator`).

Temporary home until ``phonon_ml_core.simulator.factory.get_simulator`` lands; then this module becomes a
re-export of it (one line to switch).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings
from phonon_ml_core.specs import ALUMINIUM, Experiment, Material

_SIM_CACHE: dict[tuple, PowderSimulator] = {}
_CACHE_SIZE = 8


def get_simulator(grid: Grid, quantity: str = "chi''", settings: SimulationSettings | None = None,
                  dtype: torch.dtype = torch.float64, material: Material | None = None,
                  experiment: Experiment | None = None) -> PowderSimulator:
    """A cached, normalising :class:`PowderSimulator` on ``grid`` for ``material`` and ``experiment``.

    ``grid``: the (E, |Q|) grid of the spectra to compare with (it overrides the experiment's grid; its Ei must
    equal the experiment's). ``material``: default :data:`~phonon_ml_core.specs.ALUMINIUM`; ``experiment``:
    instrument, chopper package and frequency of the resolution (None: those of ``settings``, whose defaults are
    :data:`~phonon_ml_core.specs.STANDARD_EXPERIMENT`'s). Building one takes about a second.
    """
    material = ALUMINIUM if material is None else material
    st = replace(settings) if settings is not None else SimulationSettings()
    st.quantity, st.normalize = quantity, True
    if experiment is not None:  # else the settings' resolution (default: STANDARD_EXPERIMENT's)
        if not np.isclose(grid.ei_mev, experiment.ei_mev):
            raise ValueError(f"the grid's Ei ({grid.ei_mev:g} meV) differs from the experiment's "
                             f"({experiment.ei_mev:g} meV): give the experiment the spectrum was measured with "
                             "(--ei / experiment=)")
        st.instrument, st.chopper_package = experiment.instrument, experiment.chopper_package
        st.chopper_frequency = experiment.chopper_frequency
    key = (grid.mask_hash(), grid.ei_mev, tuple(grid.two_theta_deg), tuple(np.round(grid.q_edges, 9)),
           tuple(np.round(grid.energy_edges, 9)), tuple(sorted(st.to_dict().items())), dtype,
           repr(sorted(material.to_dict().items())))
    if key not in _SIM_CACHE:
        try:
            if material.same_as(ALUMINIUM):  # today's construction, bit for bit (template a at 50 K, table a(T))
                sim = PowderSimulator(grid=grid, settings=st, dtype=dtype)
            else:
                sim = PowderSimulator(grid=grid, model=material.bvk_model(), settings=st,
                                      lattice_parameter=material.lattice_parameter_at, dtype=dtype)
        except ValueError as exc:
            raise ValueError(f"the simulator cannot handle this spectrum's grid: {exc}") from exc
        _SIM_CACHE[key] = sim
        if len(_SIM_CACHE) > _CACHE_SIZE:
            _SIM_CACHE.pop(next(iter(_SIM_CACHE)))
    return _SIM_CACHE[key]
