"""Model-error inflation of fit uncertainties (fitting.calibration) and identifiability (fitting.identifiability)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting import fit_spectrum
from phonon_ml_core.fitting.calibration import (
    STD_MEANING,
    calibrated_covariance,
    coverage,
    effective_pixels,
    model_error_inflation,
    residual_field,
    span_error,
)
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
    return r, model_error_uncertainty(r, sp, simulator=sim_fit)


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
    # fit_spectrum reports the same calibrated std from the Jacobian it already has, and RESULT.json says what it is
    assert np.allclose(r3.std_calibrated, std3, rtol=1e-6) and np.allclose(r.std_calibrated, std, rtol=1e-6)
    d = r3.to_dict()
    assert np.allclose(d["std_calibrated"], std3, rtol=1e-6) and d["std_calibrated_meaning"] == STD_MEANING
    assert "lower bound" in d["std_meaning"]
    # the rule's parts: a smooth lack of fit (small white fraction) and a span error of the size of the noise
    assert info3["spectra"][0]["white_fraction"] < info["spectra"][0]["white_fraction"]
    assert 0.0 < info["spectra"][0]["span_rms"] < 0.1 and info["meaning"] == STD_MEANING


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


def _gaussian_smooth(rng, shape, width, axis=0):
    """Unit-variance field, Gaussian-correlated along ``axis`` (correlation exp(−d²/(4 width²)), pixels)."""
    k = np.arange(-4 * int(width), 4 * int(width) + 1)
    kern = np.exp(-0.5 * (k / width) ** 2)
    kern /= np.sqrt((kern ** 2).sum())
    white = rng.standard_normal((shape[0] + len(k) - 1, shape[1]))
    out = np.stack([np.convolve(white[:, j], kern, mode="valid") for j in range(shape[1])], 1)
    return out if axis == 0 else out.T


def test_residual_field_splits_white_and_smooth_with_the_analytic_correlation_length():
    rng = np.random.default_rng(3)
    shape, width = (600, 50), 4.0
    field = _gaussian_smooth(rng, shape, width) + 0.5 * rng.standard_normal(shape)
    f = residual_field(field, np.ones(shape, bool))
    # white 0.25, smooth 1; integral length Σ_k exp(−k²/(4 w²)) = 2 √π w pixels along energy, 1 along |Q|
    assert f["white_variance"] == pytest.approx(0.25, rel=0.1)
    assert f["smooth_variance"] == pytest.approx(1.0, rel=0.15)
    assert f["tau_energy"] == pytest.approx(2 * np.sqrt(np.pi) * width, rel=0.25)
    assert f["tau_q"] < 1.5
    assert f["n_effective"] == pytest.approx(f["n_pixels"] / f["tau_energy"] / f["tau_q"])
    assert f["pixel_variance"] == pytest.approx(f["white_variance"] + f["smooth_variance"] * f["tau_energy"]
                                                * f["tau_q"])
    w = residual_field(rng.standard_normal(shape), np.ones(shape, bool))  # white: every pixel independent
    assert w["white_fraction"] > 0.95 and w["n_effective"] > 0.7 * w["n_pixels"]


def test_independent_cells_do_not_depend_on_the_grid():
    # one smooth field (random long-wavelength waves) sampled with pixel steps 1, 0.5, 0.25: 16× the pixels, the
    # same number of independent cells (τ grows with the sampling density)
    rng = np.random.default_rng(1)
    waves = [(*rng.normal(0, 2 * np.pi / 8, 2), rng.uniform(0, 2 * np.pi)) for _ in range(40)]
    cells = []
    for step in (1.0, 0.5, 0.25):
        e, q = np.arange(0, 60, step), np.arange(0, 40, step)
        fld = sum(np.cos(a * e[:, None] + b * q[None] + c) for a, b, c in waves)
        f = residual_field(fld, np.ones(fld.shape, bool))
        cells.append(f["n_effective"])
        assert f["white_fraction"] < 0.1
    assert max(cells) / min(cells) < 1.25


def test_span_error_is_the_noise_on_the_extreme_pixels():
    m = np.zeros(1000)
    m[:2] = (-0.5, 0.5)  # isolated extremes: ε = (w_max − w_min)/span, E[ε²] = 2σ²
    eps2, eps_mean = span_error(m, 1e-4, draws=4000)
    assert eps2 == pytest.approx(2e-4, rel=0.1) and abs(eps_mean) < 2e-3
    flat = np.concatenate([[-0.5], np.full(999, 0.5)])  # 999 pixels at the top: the noise's maximum lifts the span
    assert span_error(flat, 1e-4)[1] > 0.025
    assert span_error(m, 0.0) == (0.0, 0.0)


def test_calibrated_covariance_reduces_to_gauss_newton_for_white_residuals():
    rng = np.random.default_rng(0)
    mask = np.ones((40, 30), bool)
    mask[:4, :6] = False
    n = int(mask.sum())
    jac = rng.standard_normal((n, 3))
    r = 0.1 * rng.standard_normal(n)
    model = np.linspace(-0.5, 0.5, n)
    prior = np.eye(3) * 5.0  # rows outside the pixel block keep the Gauss–Newton weight
    out = calibrated_covariance(np.vstack([jac, prior]), np.concatenate([r, np.zeros(3)]), [slice(0, n)], [mask],
                                [model])
    gn = out["covariance_statistical"]
    assert np.allclose(out["lack_of_fit"], gn, rtol=0.15)
    g = gn / out["sigma2"] @ (jac.T @ model)
    eps2 = span_error(model, out["spectra"][0]["white_variance"])[0]
    assert np.allclose(out["span"], eps2 * np.outer(g, g))
    assert np.allclose(out["covariance"], out["lack_of_fit"] + out["span"])
    # a smooth lack of fit of the same size inflates the covariance by about the correlation area
    smooth = 0.1 * _gaussian_smooth(rng, mask.shape, 3.0)[mask]
    out2 = calibrated_covariance(jac, smooth, [slice(0, n)], [mask], [model])
    f = out2["spectra"][0]
    assert np.trace(out2["lack_of_fit"]) > 5 * np.trace(out2["covariance_statistical"])
    assert f["tau_energy"] > 5 and f["tau_q"] < 1.5  # smooth along energy only


def test_a_visible_scale_error_is_measured_and_counted_once():
    rng = np.random.default_rng(5)
    mask = np.ones((40, 30), bool)
    n = int(mask.sum())
    jac = rng.standard_normal((n, 3))
    model = np.sin(np.linspace(0, 9, n))
    c = np.linalg.inv(jac.T @ jac)
    g = c @ jac.T @ model
    visible = model - jac @ g  # (I − H) m
    white = 0.01 * rng.standard_normal(n)
    white -= jac @ (c @ jac.T @ white)  # residuals at an optimum are orthogonal to J
    plain = calibrated_covariance(jac, white, [slice(0, n)], [mask], [model])
    scaled = calibrated_covariance(jac, white + 0.05 * visible, [slice(0, n)], [mask], [model])
    assert scaled["spectra"][0]["span_seen"] == pytest.approx(0.05, abs=0.005)
    assert np.allclose(scaled["span"], scaled["spectra"][0]["span_rms"] ** 2 * np.outer(g, g))
    assert scaled["spectra"][0]["span_rms"] >= 0.05
    # the scale component is removed before the lack-of-fit part: that part is the white one's, not inflated
    assert np.allclose(scaled["lack_of_fit"], plain["lack_of_fit"], rtol=0.1)
