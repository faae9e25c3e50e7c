"""Model-error inflation of fit uncertainties (fitting.calibration) and identifiability (fitting.identifiability)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting import fit_spectrum
from phonon_ml_core.fitting.calibration import coverage, effective_pixels, model_error_inflation
from phonon_ml_core.fitting.identifiability import identifiability, marginal_covariance
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.fitting.uncertainty import model_error_uncertainty
from phonon_ml_core.simulator.powder import SimulationSettings
from phonon_ml_core.specs import ALUMINIUM

SETTINGS = SimulationSettings(mesh_density=16, bz_grid=8)
FC = np.array([11.0, 9.8, -2.5, 2.6, 0.2])


def test_inflation_white_noise_is_one_and_smooth_residual_is_large():
    rng = np.random.default_rng(0)
    mask = np.ones((60, 40), bool)
    mask[:5, :8] = False
    white = rng.standard_normal(mask.shape)
    info = model_error_inflation(white, mask)
    assert info["inflation"] == pytest.approx(1.0, abs=0.05)
    assert abs(info["rho_energy"]) < 0.05 and info["n_pixels"] == mask.sum()
    e, q = np.meshgrid(np.linspace(0, 1, 60), np.linspace(0, 1, 40), indexing="ij")
    smooth = np.sin(6 * e) * np.cos(4 * q) + 0.05 * white
    info = model_error_inflation(smooth, mask)
    assert info["inflation"] > 3 and info["rho_energy"] > 0.8 and info["rho_q"] > 0.8
    # an AR(1) field along energy with ρ = 0.6: n_eff ≈ n (1 − ρ)/(1 + ρ)
    ar = np.zeros(mask.shape)
    ar[0] = rng.standard_normal(40)
    for i in range(1, 60):
        ar[i] = 0.6 * ar[i - 1] + np.sqrt(1 - 0.36) * rng.standard_normal(40)
    eff = effective_pixels(ar, np.ones_like(mask))
    assert eff["rho_energy"] == pytest.approx(0.6, abs=0.05)
    assert eff["n_effective"] / eff["n_pixels"] == pytest.approx(0.25, rel=0.2)
    assert coverage([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0], [1.5, 3.5, 3.0, np.nan]) == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def grid() -> Grid:
    return Grid.from_axes(np.arange(1.0, 8.01, 0.25), np.linspace(10.0, 45.0, 24))


def _fit(sim_truth, truth, sim_fit, grid, seed):
    with torch.no_grad():
        y = sim_truth(torch.as_tensor(truth)[None], 200.0, linewidth=torch.tensor([0.03]))[0].numpy()
    y = np.where(grid.mask, y + 0.005 * np.random.default_rng(seed).standard_normal(y.shape), np.nan)
    sp = Spectrum(intensity=mean_normalize(y, grid.mask), grid=grid, temperature=200.0, normalization="mean")
    r = fit_spectrum(sp, "gradient", simulator=sim_fit, fit_linewidth=True, fit_background=True, n_starts=1,
                     adam_steps=3, n_polish=1, max_evaluations=30)
    return r, model_error_uncertainty(r, sp)


def test_inflation_above_one_only_with_model_mismatch(grid):
    sim = get_simulator(grid=grid, settings=SETTINGS)
    r, (std, info) = _fit(sim, FC, sim, grid, 1)
    assert info["inflation"] < 1.2  # right model, white noise
    assert np.allclose(std, r.std * info["std_factor"])
    third = ALUMINIUM.with_shells(3)
    sim3 = get_simulator(third, grid=grid, settings=SETTINGS)
    r3, (std3, info3) = _fit(sim3, np.concatenate([FC, [0.8, 0.5, -0.3, 0.2]]), sim, grid, 2)
    assert info3["inflation"] > 2.0 and info3["rho_energy"] > 0.3  # a missing third shell: smooth residuals
    assert np.all(std3 > 2.0 * r3.std)


def test_identifiability_flags_what_the_data_cannot_see():
    names = ("a", "b", "c")
    fc = np.array([10.0, 5.0, 2.0])
    # Fisher information of three constants and one nuisance that is a copy of constant c: c is not identifiable
    rng = np.random.default_rng(0)
    j = rng.standard_normal((400, 3)) * np.array([20.0, 20.0, 20.0])
    j = np.column_stack([j, j[:, 2]])  # the nuisance column equals c's: only their sum is seen
    cov = marginal_covariance(j.T @ j, 3)
    out = identifiability(fc, cov, names)
    assert out["constants"]["a"]["flag"] == "determined" and out["constants"]["b"]["flag"] == "determined"
    assert out["constants"]["c"]["flag"] == "undetermined"
    assert all("c" not in d["combination"] or abs(d["combination"]["c"]) < 0.05 for d in out["determined"])
    # a well-determined difference a − b with an ill-determined sum
    c2 = np.array([[1.0, 0.999], [0.999, 1.0]]) * 40.0
    out2 = identifiability(np.array([10.0, 10.0]), c2, ("a", "b"))
    assert [d["flag"] for d in out2["directions"]] == ["determined", "undetermined"]
    assert out2["directions"][0]["combination"]["a"] == pytest.approx(out2["directions"][0]["combination"]["b"]) \
        or out2["directions"][0]["combination"]["a"] == pytest.approx(-out2["directions"][0]["combination"]["b"])
    nan = identifiability(fc, np.full((3, 3), np.nan), names)
    assert all(v["flag"] == "undetermined" for v in nan["constants"].values())
