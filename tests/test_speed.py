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


def _dho_kernel_direct(gamma, g_energy, fine, f_sign, step):
    """The DHO cell kernel as first written: two atans per cell, (x − c)/d divided out (the reference)."""
    e0 = g_energy[None, :, None]
    if gamma.dim() == 2:
        gam = gamma[:, 0, None, None].clamp_min(0.0) + gamma[:, 1, None, None].clamp_min(0.0) * e0
        gam = torch.minimum(gam, 0.99 * e0).clamp_min(1e-6 * step)
    else:
        gam = (gamma[:, None, None].clamp(0.0, 0.99) * e0).clamp_min(1e-6 * step)
    root = torch.sqrt(e0 ** 2 - gam ** 2)
    c, d = e0 ** 2 - 2 * gam ** 2, 2 * gam * root
    lo, hi = (fine.abs() - 0.5 * step)[None, None, :], (fine.abs() + 0.5 * step)[None, None, :]
    return (e0 / (math.pi * root)) * (torch.atan((hi ** 2 - c) / d) - torch.atan((lo ** 2 - c) / d)) * f_sign


@pytest.mark.parametrize("window", [(4.0, 51.0), (-20.0, 35.0)])
def test_dho_broaden_equals_the_direct_kernel(window):
    """One atan per cell edge, norm folded into the sticks, ±E cells shared and trailing zero modes skipped: the
    same χ''(F) as the direct two-atan kernel's product (float64 to 1e-12, float32 no worse than the direct kernel
    in float32), values and gradients (γ and the sticks), proportional and affine γ, and γ → 0."""
    from phonon_ml_core.simulator.one_phonon import contiguous_cells, dho_broaden, dho_kernel

    step = 0.1
    fine_np = (np.arange(math.floor(window[0] / step), math.ceil(window[1] / step)) + 0.5) * step
    edges, f_cell = contiguous_cells(fine_np, step)
    g_np = (np.arange(700) + 0.5) * step
    gen = torch.Generator().manual_seed(1)
    sticks = torch.rand(3, len(g_np), 7, generator=gen, dtype=torch.float64)
    sticks[:, 450:] = 0.0  # no modes above 45 meV
    for gamma in (torch.tensor([0.03, 0.2, 1e-9], dtype=torch.float64),
                  torch.tensor([[0.5, 0.02], [0.0, 0.1], [2.0, 0.0]], dtype=torch.float64)):
        fine, sign, g = (torch.as_tensor(x) for x in (fine_np, np.sign(fine_np), g_np))
        ref_in = [gamma.clone().requires_grad_(True), sticks.clone().requires_grad_(True)]
        ref = torch.bmm(_dho_kernel_direct(ref_in[0], g, fine, sign, step).transpose(1, 2), ref_in[1])
        new_in = [gamma.clone().requires_grad_(True), sticks.clone().requires_grad_(True)]
        new = dho_broaden(new_in[1], new_in[0], g, torch.as_tensor(edges ** 2), torch.as_tensor(f_cell), sign, step)
        scale = ref.abs().max()
        assert (new - ref).abs().max() <= 1e-12 * scale
        weights = torch.rand(ref.shape, generator=gen, dtype=torch.float64)
        (ga, sa), (gb, sb) = (torch.autograd.grad((y * weights).sum(), x) for y, x in ((ref, ref_in), (new, new_in)))
        assert (ga - gb).abs().max() <= 1e-10 * ga.abs().max()
        # the sticks' gradient up to the first rows of trailing zeros (which the simulator's deposits never reach)
        assert (sa[:, :451] - sb[:, :451]).abs().max() <= 1e-10 * sa.abs().max()
        # the public kernel is still the direct one
        assert torch.allclose(dho_kernel(gamma, g, fine, sign, step), _dho_kernel_direct(gamma, g, fine, sign, step),
                              rtol=1e-12, atol=1e-15)
        # float32: within the direct float32 kernel's own rounding
        f32 = [x.float() for x in (gamma, sticks, g, fine, sign)]
        new32 = dho_broaden(f32[1], f32[0], f32[2], torch.as_tensor(edges ** 2, dtype=torch.float32),
                            torch.as_tensor(f_cell), f32[4], step)
        old32 = torch.bmm(_dho_kernel_direct(f32[0], f32[2], f32[3], f32[4], step).transpose(1, 2), f32[1])
        assert (new32.double() - ref).abs().max() <= max(2 * (old32.double() - ref).abs().max(), 1e-6 * scale)


def test_simulator_linewidth_path_equals_the_direct_kernel():
    """The simulator's γ path (dho_broaden on its cells) gives the spectrum of the direct kernel's product."""
    from phonon_ml_core.simulator import powder

    grid = Grid.from_axes(np.arange(1.0, 8.01, 0.5), np.linspace(10.0, 45.0, 16))
    sim = get_simulator(grid=grid, settings=SimulationSettings(mesh_density=12, bz_grid=6), dtype=torch.float64)
    fc = torch.as_tensor(np.asarray(ALUMINIUM.reference_constants))[None]

    def direct(chi_g, gamma, g, edges_sq, f_cell, f_sign, step):
        return torch.bmm(_dho_kernel_direct(gamma, g, sim.fine_t, sim.f_sign, step).transpose(1, 2), chi_g)

    with torch.no_grad():
        for lw in ([0.03], [[0.4, 0.02]]):
            fast = sim(fc, 120.0, linewidth=torch.tensor(lw, dtype=torch.float64))
            original = powder.dho_broaden
            powder.dho_broaden = direct
            try:
                slow = sim(fc, 120.0, linewidth=torch.tensor(lw, dtype=torch.float64))
            finally:
                powder.dho_broaden = original
            ok = torch.isfinite(slow)
            assert torch.equal(ok, torch.isfinite(fast))
            assert (fast[ok] - slow[ok]).abs().max() <= 1e-12 * slow[ok].abs().max()
