"""The joint fit's Jacobian (phonon_ml_core.fitting.joint_uncertainty.jacobian) on a tiny two-grid series: the
slope columns reuse the unperturbed spectra (counted), and the Jacobian equals a plain finite-difference
recomputation in θ and the slopes, one column at a time."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting.joint import _profiled_slopes
from phonon_ml_core.fitting.joint_model import SeriesModel
from phonon_ml_core.fitting.joint_problem import JointProblem
from phonon_ml_core.fitting.joint_uncertainty import jacobian
from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings
from phonon_ml_core.specs import ALUMINIUM
from phonon_ml_core.specs.grid import Grid

T = np.array([100.0, 300.0, 500.0])
TRUE = np.array([11.0, 9.8, -2.5, 2.6, 0.2]) + np.outer(T - 300.0, [-0.004, -0.003, 0.0005, -0.001, 0.0])


@pytest.fixture(scope="module")
def other_sim():
    """A second tiny grid (2 |Q| × 3 E) and its simulator: a series on two grids makes two groups."""
    g = Grid(q=np.array([2.5, 3.5]), energy=np.array([14.0, 20.0, 26.0]), mask=np.ones((3, 2), dtype=bool),
             ei_mev=50.0)
    return PowderSimulator(grid=g, settings=SimulationSettings(method="sphere", n_per_bin=32, bz_grid=4),
                           dtype=torch.float64)


def _problem(tiny_sim, other_sim, fit_linewidth: bool = True, fit_background: bool = True) -> JointProblem:
    """Spectra 0 and 2 on the conftest tiny grid, spectrum 1 on the other one (groups out of series order)."""
    sims = [tiny_sim, other_sim, tiny_sim]
    rng = np.random.default_rng(4)
    spectra = []
    for i, s in enumerate(sims):
        with torch.no_grad():
            y = s(torch.as_tensor(TRUE[i:i + 1]), float(T[i]), linewidth=torch.full((1,), 0.03))[0].numpy()
        y = y + 0.01 * rng.standard_normal(y.shape) + 0.002 * np.asarray(s.grid.energy)[:, None]
        spectra.append(Spectrum(intensity=mean_normalize(y, s.grid.mask), grid=s.grid, temperature=float(T[i]),
                                normalization="mean"))
    return JointProblem(spectra, sims, T, SeriesModel("linear", T), np.asarray(ALUMINIUM.fit_bounds, float),
                        fit_linewidth, (1e-3, 0.3), None if fit_linewidth else 0.03, fit_background)


def _residuals(prob: JointProblem, theta: np.ndarray, slopes: list) -> np.ndarray:
    """Weighted residuals of the whole series at θ and the given slopes, in series order (one simulator call
    per group, nothing shared)."""
    fc, lw = prob.unpack(torch.as_tensor(theta[None]))
    _, fc, lw = prob.wall(fc, lw)
    per = {}
    with torch.no_grad():
        for g, s in zip(prob.groups, slopes):
            m, _ = prob.model_pixels(g, prob.simulate(g, fc, lw), s)
            r = ((m - g.x) / g.sum_x2.sqrt()[:, None])[0].numpy()
            per.update({int(i): r[a] for a, i in enumerate(g.index)})
    return np.concatenate([per[i] for i in range(prob.n_spectra)])


def _plain_jacobian(prob: JointProblem, theta: np.ndarray, slopes: list) -> np.ndarray:
    """Central differences of :func:`_residuals`, one parameter at a time, with the steps ``jacobian`` uses."""
    k = prob.n_constants
    steps = [1e-3 * prob.width[c % k] for c in range(prob.n_coef)]
    steps += [1e-3 * (prob.linewidth_bounds[1] - prob.linewidth_bounds[0])] * (prob.n_params - prob.n_coef)
    cols = []
    for p, h in enumerate(steps):
        e = np.zeros_like(theta)
        e[p] = h
        cols.append((_residuals(prob, theta + e, slopes) - _residuals(prob, theta - e, slopes)) / (2 * h))
    if prob.fit_background:
        where = {int(i): (gi, a) for gi, g in enumerate(prob.groups) for a, i in enumerate(g.index)}
        for i in range(prob.n_spectra):
            gi, a = where[i]
            b = prob.groups[gi].b_bounds
            h = 1e-3 * (b[1] - b[0])
            up, dn = [s.clone() for s in slopes], [s.clone() for s in slopes]
            up[gi][0, a] += h
            dn[gi][0, a] -= h
            cols.append((_residuals(prob, theta, up) - _residuals(prob, theta, dn)) / (2 * h))
    return np.stack(cols, 1)


@pytest.mark.parametrize("fit_linewidth,fit_background", [(True, True), (False, True), (True, False)])
def test_jacobian_equals_the_plain_recomputation(tiny_sim, other_sim, fit_linewidth, fit_background):
    prob = _problem(tiny_sim, other_sim, fit_linewidth, fit_background)
    theta = prob.start(np.asarray(ALUMINIUM.reference_constants) * 1.03, 0.04)
    theta[prob.n_constants] += 0.3  # the second coefficient of 1XX: a temperature slope, N/m per half span
    slopes = _profiled_slopes(prob, theta)
    jac, r0, n_b = jacobian(prob, theta, slopes)
    assert n_b == (3 if fit_background else 0) and jac.shape == (r0.size, prob.n_params + n_b)
    if fit_background:
        assert all(float(s.abs().max()) > 0 for s in slopes)  # the slope columns are exercised off zero
    np.testing.assert_allclose(r0, _residuals(prob, theta, slopes), rtol=1e-12, atol=1e-14)
    ref = _plain_jacobian(prob, theta, slopes)
    assert np.abs(ref).max() > 0 and np.isfinite(ref).all()
    np.testing.assert_allclose(jac, ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("central", [True, False])
@pytest.mark.parametrize("fit_linewidth", [True, False])
def test_slope_steps_simulate_nothing_new(tiny_sim, other_sim, central, fit_linewidth):
    """One simulated set per constant (and γ) step plus the unperturbed one: N (2(K + 1) + 1) spectra central,
    N (K + 2) one-sided with a fitted γ; the background's slope steps add none."""
    prob = _problem(tiny_sim, other_sim, fit_linewidth, True)
    theta = prob.start(np.asarray(ALUMINIUM.reference_constants), 0.04)
    slopes = _profiled_slopes(prob, theta)
    calls, spectra = prob.calls, prob.spectra_simulated
    jacobian(prob, theta, slopes, central=central)
    steps = prob.n_constants + int(fit_linewidth)
    assert prob.calls - calls == len(prob.groups) == 2  # one batched call per grid
    assert prob.spectra_simulated - spectra == prob.n_spectra * ((2 if central else 1) * steps + 1)
