"""The speed-ups of issue 19 change no result: each fast path against the plain computation it replaces."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting.gradient import Adam
from phonon_ml_core.fitting.inputs import default_bounds
from phonon_ml_core.fitting.problem import FitProblem
from phonon_ml_core.fitting.residual_background import best_slope, centred_energy, default_slope_bounds
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.simulator.powder import SimulationSettings
from phonon_ml_core.specs import ALUMINIUM
from phonon_ml_core.specs.grid import Grid, standard_grid


def test_adam_is_torch_adam_step_for_step():
    """The fit's Adam (no compiler import) gives bit-identical iterates to torch.optim.Adam."""
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(0)
        a = torch.rand(6, 5, dtype=dtype, requires_grad=True)
        b = a.detach().clone().requires_grad_(True)
        ours, theirs = Adam(b, lr=0.02), torch.optim.Adam([a], lr=0.02)
        for _ in range(15):
            for p, opt in ((a, theirs), (b, ours)):
                opt.zero_grad()
                ((p ** 3).sin().sum() + (p * p).sum()).backward()
                opt.step()
        assert torch.equal(a, b)


def _best_slope_all_pixels(x, y, e, bounds, points=41, rounds=6):
    """The nested grid search over every pixel (the span from all pixels): the reference of the fast path."""
    lo, hi = bounds
    yc = y - y.mean(-1, keepdim=True)
    sxy, syy, sye = (x * yc).sum(-1, keepdim=True), (yc * yc).sum(-1, keepdim=True), (yc * e).sum(-1, keepdim=True)
    sxe, see = (x * e).sum(), (e * e).sum()
    centre = torch.full((y.shape[0],), 0.5 * (lo + hi), dtype=y.dtype)
    half = 0.5 * (hi - lo)
    grid = torch.linspace(-1.0, 1.0, points, dtype=y.dtype)
    for _ in range(rounds):
        bs = (centre[:, None] + half * grid).clamp(lo, hi)
        z = y[:, None, :] + bs[..., None] * e
        span = (z.amax(-1) - z.amin(-1)).clamp_min(torch.finfo(y.dtype).tiny)
        f = -2 * (sxy + bs * sxe) / span + (syy + 2 * bs * sye + bs * bs * see) / span ** 2
        f = torch.where(torch.isfinite(f), f, torch.full_like(f, math.inf))
        centre = bs[torch.arange(y.shape[0]), f.argmin(1)]
        half = half * 4.0 / (points - 1)
    return centre


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_best_slope_per_energy_extremes_equal_all_pixels(dtype):
    """The span from each energy's highest and lowest pixel is bit-identical to the span over all pixels."""
    g = standard_grid()
    e, _ = centred_energy(g, dtype)
    gen = torch.Generator().manual_seed(3)
    y = torch.rand(5, e.numel(), generator=gen, dtype=dtype) + 0.3 * torch.linspace(-1, 1, e.numel(), dtype=dtype)
    x = torch.rand(e.numel(), generator=gen, dtype=dtype)
    bounds = default_slope_bounds(e)
    assert torch.equal(best_slope(x, y, e, bounds), _best_slope_all_pixels(x, y, e, bounds))


def test_fit_problem_caches_change_nothing():
    """The fit's fixed a(T) and unit-box tensors give the simulator's own spectrum, bit for bit."""
    grid = Grid.from_axes(np.arange(1.0, 8.01, 0.5), np.linspace(10.0, 45.0, 16))
    sim = get_simulator(grid=grid, settings=SimulationSettings(mesh_density=12, bz_grid=6))
    fc = np.asarray(ALUMINIUM.reference_constants)
    with torch.no_grad():
        y = sim(torch.as_tensor(fc)[None], 300.0, linewidth=[0.02])[0].numpy()
    s = Spectrum(intensity=mean_normalize(y, grid.mask), grid=grid, temperature=300.0, normalization="mean")
    bounds = np.vstack([default_bounds(ALUMINIUM), [1e-3, 0.3]])
    prob = FitProblem(sim, s, 300.0, None, bounds, fit_linewidth=True, fixed_linewidth=None, fit_background=True)
    theta = torch.as_tensor(np.append(fc, 0.02)[None], dtype=sim.dtype)
    with torch.no_grad():
        assert torch.equal(torch.nan_to_num(prob.simulate(theta)), torch.nan_to_num(
            sim(theta[:, :-1], 300.0, linewidth=theta[:, -1], allow_unstable=True)))
        u = torch.as_tensor(prob.to_u(theta[0].numpy())[None], dtype=sim.dtype)
        assert torch.equal(prob.to_theta(u), torch.as_tensor(prob.to_theta(u[0].numpy()), dtype=sim.dtype)[None])


def test_demo_fits_in_worker_processes_equal_fits_in_turn():
    """The demo's fits run in forked workers when there are cores for them; the results are the same."""
    from phonon_ml_core.report.demo import fit_all

    grid = Grid.from_axes(np.arange(1.0, 8.01, 0.5), np.linspace(10.0, 45.0, 16))
    settings = SimulationSettings(mesh_density=12, bz_grid=6)
    sim = get_simulator(grid=grid, settings=settings)
    with torch.no_grad():
        y = sim(torch.as_tensor(ALUMINIUM.reference_constants)[None] * 1.05, 300.0)[0].numpy()
    s = Spectrum(intensity=mean_normalize(y, grid.mask), grid=grid, temperature=300.0, normalization="mean")
    kw = {"max_evaluations": 12, "settings": settings, "uncertainty": False}
    tasks = [(s, "nelder-mead", kw), (s, "gradient", {**kw, "n_starts": 2, "adam_steps": 2})]
    alone, together = fit_all(tasks, workers=1), fit_all(tasks, workers=2)
    for a, b in zip(alone, together):
        assert a.method == b.method and np.array_equal(a.force_constants, b.force_constants) and a.nmse == b.nmse
