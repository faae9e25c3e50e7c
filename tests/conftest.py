"""Shared fixtures for the model and simulator tests (small grids, float64, session-scoped and lazy)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

AL_REFERENCE = np.array([10.35, 10.38, -2.77, 2.30, -0.25])
SHARED_AL = Path(__file__).resolve().parents[2] / "shared" / "data" / "al_arcs_ei50"


@pytest.fixture(scope="session")
def al_reference() -> np.ndarray:
    """Reference aluminium constants [1XX, 1XY, 1ZZ, 2XX, 2YY] in N/m (conventions §1)."""
    return AL_REFERENCE.copy()


@pytest.fixture(scope="session")
def shared_mask() -> np.ndarray:
    """The measured valid-pixel mask of the shared ARCS data (skips when the shared data are absent)."""
    path = SHARED_AL / "mask.npy"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    return np.load(path).astype(bool)


@pytest.fixture(scope="session")
def standard_spectra():
    """χ'' of the reference constants at 300 K on the standard grid (defaults: multiphonon, resolution,
    mean normalisation), by the mesh (density 16) and sphere (2048 points per bin) methods, float64.

    Returned as a function so that each method is only computed when a test asks for it.
    """
    from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings

    cache: dict[str, np.ndarray] = {}

    def get(method: str) -> np.ndarray:
        if method not in cache:
            settings = (SimulationSettings(method="mesh", mesh_density=16) if method == "mesh"
                        else SimulationSettings(method="sphere", n_per_bin=2048))
            sim = PowderSimulator(settings=settings, dtype=torch.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                cache[method] = sim(torch.tensor(AL_REFERENCE[None]), 300.0)[0].numpy()
        return cache[method]

    return get


@pytest.fixture(scope="session")
def tiny_grid():
    """3 |Q| × 4 E pixels, all valid (for fast error, gradient and batch tests)."""
    from phonon_ml_core.specs.grid import Grid

    return Grid(q=np.array([2.0, 3.0, 4.0]), energy=np.array([12.0, 18.0, 24.0, 30.0]),
                mask=np.ones((4, 3), dtype=bool), ei_mev=50.0)


@pytest.fixture(scope="session")
def tiny_sim(tiny_grid):
    """A cheap float64 sphere-method simulator on the tiny grid (all physics switched on)."""
    from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings

    return PowderSimulator(grid=tiny_grid, settings=SimulationSettings(method="sphere", n_per_bin=32, bz_grid=4),
                           dtype=torch.float64)


@pytest.fixture
def option_round_trip():
    """:func:`_option_round_trip`, for the temperature-invariance options' tests."""
    return _option_round_trip


def _option_round_trip(result, grid, tmp_path: Path, field: str, value: float) -> None:
    """A PipelineConfig option survives a bundle's save/load, configs written before it read as 0 (off), and a
    negative weight is refused naming the field (the temperature-invariance options of tests/test_invariance*.py)."""
    from phonon_ml_core.learn.bundle import bundle_from_training, load_bundle
    from phonon_ml_core.learn.configs import PipelineConfig

    bundle_from_training(result, grid).save(tmp_path / "b")
    cfg = PipelineConfig.from_dict(load_bundle(tmp_path / "b").metadata["training"]["config"])
    assert getattr(cfg, field) == value and cfg == result.config
    old = result.config.to_dict()
    del old[field]
    assert getattr(PipelineConfig.from_dict(old), field) == 0.0
    with pytest.raises(ValueError, match=field):
        PipelineConfig(**{field: -1.0})
