"""The profiled residual background slope shared by the fits, the physics stages and the ML NMSE."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phonon_ml_core.data.normalization import mean_normalize, nmse
from phonon_ml_core.fitting.residual_background import (
    best_slope,
    centred_energy,
    default_slope_bounds,
    profiled_nmse,
    with_slope,
)
from phonon_ml_core.learn.consistency import consistency_nmse
from phonon_ml_core.simulator.powder import PowderSimulator
from phonon_ml_core.specs import ALUMINIUM

AL_REFERENCE_FC = np.array(ALUMINIUM.reference_constants)


@pytest.fixture(scope="module")
def simulated():
    """Three aluminium spectra (mean-normalised, standard grid) at 100/300/600 K and the simulator."""
    sim = PowderSimulator()
    fc = np.tile(AL_REFERENCE_FC, (3, 1)) * np.array([[1.0], [0.95], [0.9]])
    temps = np.array([100.0, 300.0, 600.0])
    with torch.no_grad():
        y = sim(torch.as_tensor(fc), torch.as_tensor(temps), linewidth=torch.full((3,), 0.02)).numpy().astype(float)
    return sim, fc, temps, y


def _with_background(y: np.ndarray, grid, slopes: np.ndarray) -> np.ndarray:
    """normalise(y + b0 + b1·E) computed independently in physical units (E in meV, b0 arbitrary)."""
    e = np.broadcast_to(np.asarray(grid.energy, float)[:, None], grid.shape)
    z = y + 0.3 + slopes[:, None, None] * e
    return mean_normalize(np.where(grid.mask, z, np.nan), grid.mask)


def test_best_slope_recovers_a_known_slope_and_minimises_the_nmse(simulated):
    sim, _, _, y = simulated
    g = sim.grid
    e, e_mean = centred_energy(g)
    lo, hi = default_slope_bounds(e)
    assert lo == -hi and hi * float(e.max() - e.min()) == pytest.approx(2.0)   # ±2 spans over the energy range
    assert e_mean == pytest.approx(float(np.broadcast_to(g.energy[:, None], g.shape)[g.mask].mean()))
    true = np.array([0.4, -0.6, 0.0]) * hi
    x = _with_background(y, g, true)
    m = g.mask
    b = best_slope(torch.as_tensor(x[:, m]), torch.as_tensor(y[:, m]), e, (lo, hi)).numpy()
    np.testing.assert_allclose(b, true, atol=1e-5 * hi)
    val, slope, model = profiled_nmse(x, y, g)
    assert np.all(val < 1e-9) and np.allclose(slope, true, atol=1e-5 * hi)
    np.testing.assert_allclose(model[:, m], x[:, m], atol=1e-6)
    assert np.all(np.isnan(model[:, ~m]))
    # a dense scan of the NMSE over b (independent of the moment formula) finds nothing better
    noisy = x + 0.05 * np.random.default_rng(0).normal(size=x.shape)
    noisy = mean_normalize(np.where(m, noisy, np.nan), m)
    val, slope, _ = profiled_nmse(noisy, y, g)
    for k in range(3):
        scan = [nmse(noisy[k], _scatter(with_slope(torch.as_tensor(y[k, m]), torch.tensor(bb), e).numpy(), m), m)
                for bb in np.linspace(lo, hi, 801)]
        assert val[k] <= min(scan) + 1e-9
        assert val[k] <= nmse(noisy[k], y[k], m) + 1e-12                 # never worse than no background


def _scatter(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.full(mask.shape, np.nan)
    out[mask] = v
    return out


def test_slope_is_held_within_its_bounds_and_unstable_spectra_are_nan(simulated):
    sim, _, _, y = simulated
    g = sim.grid
    e, _ = centred_energy(g)
    _lo, hi = default_slope_bounds(e)
    x = _with_background(y, g, np.array([5.0, 0.0, 0.0]) * hi)           # beyond the bound
    val, slope, _ = profiled_nmse(x, y, g)
    assert slope[0] == pytest.approx(hi) and val[0] > 1e-4
    bad = y.copy()
    bad[1, g.mask] = np.nan
    val, _, model = profiled_nmse(x, bad, g)
    assert np.isnan(val[1]) and np.all(np.isnan(model[1])) and np.isfinite(val[[0, 2]]).all()
    with pytest.raises(ValueError, match="low < high"):
        best_slope(torch.as_tensor(x[:, g.mask]), torch.as_tensor(y[:, g.mask]), e, (1.0, -1.0))


def test_physics_loss_with_background_is_zero_at_the_true_constants(simulated):
    """The physics stages' loss with ``background``: a spectrum with a linear background is matched exactly
    by its own constants, which the loss without background penalises; the gradient still flows."""
    _, fc, temps, y = simulated
    sim = PowderSimulator(dtype=torch.float64)     # exact enough for finite differences
    g = sim.grid
    e, _ = centred_energy(g)
    x = torch.as_tensor(_with_background(y, g, np.array([0.5, -0.5, 0.3]) * default_slope_bounds(e)[1]))
    fct = torch.as_tensor(fc, dtype=torch.float64).requires_grad_(True)
    gam = torch.full((3,), 0.02, dtype=torch.float64)
    t = torch.as_tensor(temps)
    with_bg = consistency_nmse(sim, x, t, fct, gam, background=True)
    without = consistency_nmse(sim, x, t, fct, gam, background=False)
    assert float(with_bg.detach().max()) < 1e-8 and float(without.detach().min()) > 1e-3
    away = consistency_nmse(sim, x, t, fct * 1.05, gam, background=True)
    away.sum().backward()
    assert float(away.detach().min()) > 1e-4
    # the gradient at fixed b1* is the gradient of the profiled NMSE (envelope theorem): central differences of
    # the profiled loss, re-profiled at every point, along each constant of the 300 K spectrum
    g = fct.grad[1].numpy()
    h = 1e-3
    for j in range(5):
        d = torch.zeros_like(fct)
        d[1, j] = h
        with torch.no_grad():
            up = consistency_nmse(sim, x, t, fct.detach() * 1.05 + d, gam, background=True)[1]
            dn = consistency_nmse(sim, x, t, fct.detach() * 1.05 - d, gam, background=True)[1]
        fd = float(up - dn) / (2 * h)
        assert g[j] == pytest.approx(fd, rel=0.05, abs=1e-4), (j, g[j], fd)
