"""The one simulator factory: a cached :class:`PowderSimulator` per material, experiment, grid and settings."""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import replace

import numpy as np
import torch

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.simulator.powder import PowderSimulator
from phonon_ml_core.simulator.settings import SimulationSettings
from phonon_ml_core.simulator.specs_setup import experiment_for_grid
from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT, Experiment, Material, get_material

#: Simulators kept (building one takes about a second; each holds a few MB of tensors).
CACHE_SIZE = 8
_CACHE: OrderedDict[tuple, PowderSimulator] = OrderedDict()


def get_simulator(material: Material | str | None = None, experiment: Experiment | None = None,
                  grid: Grid | None = None, quantity: str = "chi''", settings: SimulationSettings | None = None,
                  dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                  normalize: bool = True) -> PowderSimulator:
    """A cached simulator for ``material`` (a Material or built-in symbol; None: aluminium, ``specs.ALUMINIUM``,
    with the old physics: no incoherent term unless ``settings.incoherent``) on ``experiment`` (default
    ``specs.STANDARD_EXPERIMENT``).

    ``grid`` replaces the experiment's grid (same Ei; e.g. a measured spectrum's or a bundle's grid); with a
    grid and no experiment, the standard experiment's instrument and chopper at the grid's Ei are used;
    ``quantity`` ("chi''" or "S") and ``normalize`` override the settings'. The cache key holds the material,
    the experiment's settings, the grid's axes, edges and mask hash, the settings, dtype and device.
    """
    if isinstance(material, Grid):
        raise TypeError("get_simulator(material, experiment, grid=...): pass the grid by keyword (grid=...)")
    given = None if material is None else get_material(material)
    st = SimulationSettings() if settings is None else replace(settings)
    st.quantity, st.normalize = quantity, normalize
    if experiment is None:
        experiment = STANDARD_EXPERIMENT if grid is None else experiment_for_grid(grid, st)
    g = experiment.grid if grid is None else grid
    material_key = "legacy aluminium default" if given is None else json.dumps(given.to_dict(), sort_keys=True,
                                                                                  default=str)
    key = (material_key, experiment.instrument,
           experiment.chopper_package, experiment.chopper_frequency, experiment.ei_mev, g.ei_mev,
           tuple(g.two_theta_deg), g.mask_hash(), tuple(np.round(g.q_edges, 9)), tuple(np.round(g.energy_edges, 9)),
           tuple(sorted(st.to_dict().items())), str(dtype), str(torch.device(device)))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    try:
        sim = PowderSimulator(grid=grid, settings=st, dtype=dtype, device=device, material=given,
                              experiment=experiment)
    except ValueError as exc:
        name = ALUMINIUM.name if given is None else given.name
        raise ValueError(f"cannot simulate {name} on {experiment.instrument} at Ei = {g.ei_mev:g} meV "
                         f"with this grid: {exc}") from exc
    _CACHE[key] = sim
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return sim


def clear_cache() -> None:
    """Forget all cached simulators (frees their memory)."""
    _CACHE.clear()
