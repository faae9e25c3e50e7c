"""The joint fit's speed measures (issue 16): float32 twins for the optimiser's Jacobians, small simulation chunks,
and the Levenberg–Marquardt → L-BFGS hand-over reach the plain optimum with less simulation (counted, not timed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phonon_ml_core.fitting import joint as joint_module
from phonon_ml_core.fitting import joint_problem
from phonon_ml_core.fitting.joint import LM_RELATIVE_TOL, _profiled_slopes, fit_joint
from phonon_ml_core.fitting.joint_model import SeriesModel
from phonon_ml_core.fitting.joint_problem import JointProblem
from phonon_ml_core.fitting.joint_uncertainty import jacobian
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.specs import ALUMINIUM
from test_fitting import SETTINGS, grid, sim  # noqa: F401  (the same small grid and simulator fixtures)
from test_joint_fit import T, _series


@pytest.fixture(scope="module")
def series(sim, grid):
    return _series(sim, grid, 0.003, seed=3)


def _problem(series, sim, grid, fast: bool) -> JointProblem:
    twin = get_simulator(grid=grid, settings=SETTINGS, dtype=torch.float32) if fast else sim
    return JointProblem(series, [sim] * 3, T, SeriesModel("linear", T), np.asarray(ALUMINIUM.fit_bounds, float),
                        True, (1e-3, 0.3), None, True, fast_simulators=[twin] * 3)


def test_float32_jacobian_matches_float64(series, sim, grid):
    """The twins' one-sided Jacobian agrees with the float64 one to < 1 % (it only steers the optimiser), while
    objective values outside ``fast_simulation`` stay exactly the float64 simulator's."""
    fast, plain = _problem(series, sim, grid, True), _problem(series, sim, grid, False)
    theta = plain.start(np.asarray(ALUMINIUM.reference_constants) * 1.05, 0.04)
    slopes = _profiled_slopes(plain, theta)
    j64, r64, _ = jacobian(plain, theta, slopes, central=False)
    with fast.fast_simulation():
        j32, r32, _ = jacobian(fast, theta, slopes, central=False)
        again, _, _ = jacobian(fast, theta, slopes, central=False)
    assert np.array_equal(j32, again)  # reproducible
    cols = slice(0, plain.n_params)
    assert j32.dtype == np.float64 and j32.shape == j64.shape
    assert np.linalg.norm(j32[:, cols] - j64[:, cols]) < 0.01 * np.linalg.norm(j64[:, cols])
    assert np.abs(r32 - r64).max() < 1e-5 * np.abs(r64).max() + 1e-6
    with torch.no_grad():
        a, _ = fast.nmse(torch.as_tensor(theta[None]))
        b, _ = plain.nmse(torch.as_tensor(theta[None]))
    assert torch.equal(a, b)


def test_chunked_simulation_is_the_one_call(series, sim, grid, monkeypatch):
    """Splitting a batch into CHUNK-sized simulator calls changes nothing but the cost."""
    prob = _problem(series, sim, grid, False)
    theta = torch.as_tensor(np.repeat(prob.start(np.asarray(ALUMINIUM.reference_constants), 0.03)[None], 4, 0))
    fc, lw = prob.unpack(theta)
    g = prob.groups[0]
    with torch.no_grad():
        small = prob.simulate(g, fc, lw)
        monkeypatch.setattr(joint_problem, "CHUNK", 10 ** 6)
        whole = prob.simulate(g, fc, lw)
    assert joint_problem.CHUNK == 10 ** 6 and small.shape == (4, 3, int(np.asarray(grid.mask).sum()))
    assert torch.allclose(small, whole, rtol=1e-12, atol=1e-12)


def test_new_steps_reach_the_old_optimum_with_less_simulation(series, monkeypatch):
    """Default fit (float32 Jacobians, LM handing over to L-BFGS at LM_RELATIVE_TOL) against the old steps (float64
    Jacobians, LM run to a 1e-5 gain): the same optimum and NMSE, with fewer spectra simulated (counted)."""
    counts = []
    original = JointProblem.simulate

    def counting(self, group, fc, lw):
        counts[-1] += fc.shape[0] * len(group.index)
        return original(self, group, fc, lw)

    monkeypatch.setattr(JointProblem, "simulate", counting)
    kw = {"settings": SETTINGS, "max_evaluations": 200, "uncertainty": False}
    counts.append(0)
    new = fit_joint(series, **kw)
    monkeypatch.setattr(joint_module, "LM_RELATIVE_TOL", 1e-5)
    counts.append(0)
    old = fit_joint(series, fast_jacobian=False, **kw)
    assert new.mean_nmse == pytest.approx(old.mean_nmse, rel=2e-3, abs=1e-6)
    assert np.abs(new.force_constants[:, :2] - old.force_constants[:, :2]).max() < 0.05  # first shell, N/m
    assert np.all(np.diff(new.force_constants[:, 0]) < 0)
    assert counts[0] < counts[1], counts
    assert "Levenberg–Marquardt" in new.message and joint_module.LOO_RELATIVE_TOL < LM_RELATIVE_TOL
