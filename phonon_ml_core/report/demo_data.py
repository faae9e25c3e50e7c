"""Measured-like data for the demo: S(|Q|,E) of a material on an experiment, on a finer SofQW-like grid, with
resolution, an energy-dependent background and counting noise, written as Mantid processed-NeXus files.

For aluminium on the standard experiment this is exactly the demo's data of before (same grid, same numbers).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.readers.writers import write_mantid_nexus
from phonon_ml_core.report.simulation import simulate_for
from phonon_ml_core.simulator import SimulationSettings
from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT, Experiment, Material

DEMO_TEMPERATURES = (50.0, 300.0, 640.0)
#: The aluminium demo's "true" constants: the reference with a softer second shell (not the training centre).
DEMO_TRUE_FC = np.array([10.0, 10.6, -2.6, 2.0, 0.2])
#: Other materials: the reference constants scaled by this (not the training centre, inside the sampling ranges).
DEMO_TRUE_SCALE = 0.95

# The raw (SofQW-like) grid at Ei = 50 meV, scaled with Ei like the default grid (E ∝ Ei, |Q| ∝ √Ei).
_RAW_Q = (0.025, 10.2, 0.05)     # first centre, stop, step (1/Å)
_RAW_E = (5.125, 47.0, 0.25)     # meV
_RAW_EI = 50.0
_BACKGROUND_E0, _BACKGROUND_WIDTH = 5.0, 12.0   # meV at Ei = 50 meV: b(E) ∝ 0.04 + 0.03 exp(−(E − E0)/width)


def demo_truth(material: Material) -> np.ndarray:
    """The constants (N/m) the demo's data are simulated from: DEMO_TRUE_FC for aluminium."""
    if material.same_as(ALUMINIUM):
        return DEMO_TRUE_FC.copy()
    return DEMO_TRUE_SCALE * np.asarray(material.reference_constants, dtype=float)


def raw_grid(experiment: Experiment = STANDARD_EXPERIMENT) -> Grid:
    """A finer S(|Q|,E) grid like a SofQW output: at Ei = 50 meV |Q| step 0.05 1/Å and E step 0.25 meV, scaled by
    √(Ei/50) and Ei/50 at other Ei; kinematic mask from the experiment's 2θ range."""
    r = experiment.ei_mev / _RAW_EI
    s = math.sqrt(r)
    q = np.arange(_RAW_Q[0] * s, _RAW_Q[1] * s, _RAW_Q[2] * s)
    e = np.arange(_RAW_E[0] * r, _RAW_E[1] * r, _RAW_E[2] * r)
    return Grid.from_axes(q, e, ei_mev=experiment.ei_mev, two_theta_deg=experiment.two_theta_deg)


def make_measured_like(out_dir: Path, temperatures: Sequence[float], force_constants: np.ndarray, noise: float,
                       seed: int, material: Material | None = None,
                       experiment: Experiment = STANDARD_EXPERIMENT) -> list[Path]:
    """Write measured-like S(|Q|,E) files (Mantid processed-NeXus layout, with Ei, SampleTemp and the instrument)
    and return their paths (``<element>_<T>K_sqw.nxs``). ``material`` None: aluminium with the legacy physics."""
    rng = np.random.default_rng(seed)
    grid = raw_grid(experiment)
    raw = Experiment.create(instrument=experiment.instrument, ei_mev=experiment.ei_mev,
                            chopper_package=experiment.chopper_package,
                            chopper_frequency=experiment.chopper_frequency, grid=grid)
    settings = SimulationSettings(quantity="S", normalize=False)
    paths = []
    e0 = _BACKGROUND_E0 * experiment.ei_mev / _RAW_EI
    e_scale = _BACKGROUND_WIDTH * experiment.ei_mev / _RAW_EI
    for t in temperatures:
        s = simulate_for(material, raw, force_constants, float(t), settings=settings).intensity
        scale = np.nanmax(s)
        # counting noise ∝ √I, plus a smooth energy-dependent background (empty can, multiple scattering)
        background = scale * (0.04 + 0.03 * np.exp(-(grid.energy - e0) / e_scale))[:, None]
        signal = s + background
        err = noise * np.sqrt(np.abs(signal) * scale)
        measured = np.where(grid.mask, signal + err * rng.standard_normal(signal.shape), np.nan)
        stem = f"{(ALUMINIUM if material is None else material).element.lower()}_{int(t)}K"
        path = out_dir / f"{stem}_sqw.nxs"
        write_mantid_nexus(path, measured.T, grid.energy_edges, grid.q_edges, errors=np.where(grid.mask, err, np.nan).T,
                           logs={"Ei": experiment.ei_mev, "SampleTemp": float(t)}, title=stem,
                           instrument=experiment.instrument)
        paths.append(path)
    return paths
