"""PowderSimulator checked against independent references and analytic limits.

References: euphonic (one-phonon coherent S(Q,E), Debye–Waller), closed-form sum rules (detailed
balance, the f-sum rule, the incoherent multiphonon weight 1 − e^{−2W}(1 + 2W)), the high- and
low-temperature limits of ⟨u_x²⟩ computed here from numpy eigenvalues and scipy constants, the
measured ARCS mask, and torch.autograd.gradcheck.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import constants as sc
from scipy.special import ndtr

from phonon_ml_core.specs.grid import Grid, kinematic_mask, standard_grid
from phonon_ml_core.physics.bvk import BvKModel, bz_sample
from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings, UnstableForceConstantsError
from phonon_ml_core.simulator.thermal import mean_square_displacement
from phonon_ml_core.specs import ALUMINIUM

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

AL_REF = np.array([10.35, 10.38, -2.77, 2.30, -0.25])
AL_MASS = 26.9815
AL_B_COH_FM = 3.449
KB = sc.k / sc.e * 1e3  # meV/K
RECOIL_AL = sc.hbar ** 2 / (2 * AL_MASS * sc.atomic_mass) / sc.e * 1e3 * 1e20  # ħ²/2M, meV Å²


# -- helpers ------------------------------------------------------------------------------------------
def narrow_q_grid(q_centres, energy, half_width, ei_mev=50.0, energy_edges=None):
    """A grid whose valid |Q| bins are [q − w, q + w] around each centre; filler bins between are masked.

    Returns (grid, columns of the narrow bins).
    """
    q_centres = np.asarray(q_centres, float)
    edges, cent = [q_centres[0] - half_width, q_centres[0] + half_width], [q_centres[0]]
    for q in q_centres[1:]:
        cent.append(0.5 * (edges[-1] + q - half_width))
        edges.append(q - half_width)
        cent.append(q)
        edges.append(q + half_width)
    cent = np.array(cent)
    cols = [2 * i for i in range(len(q_centres))]
    mask = np.zeros((len(energy), len(cent)), dtype=bool)
    mask[:, cols] = True
    return Grid(q=cent, energy=np.asarray(energy, float), mask=mask, ei_mev=ei_mev, q_edges=np.array(edges),
                energy_edges=energy_edges), cols


def independent_msd(fc, temperature, n=12, lattice_parameter=4.05):
    """⟨u_x²⟩ (Å²) = (ħ²/2M)⟨coth(E/2kT)/E⟩ on the shifted n³ grid, numpy eigenvalues, scipy constants."""
    m = ALUMINIUM.bvk_model(fc, lattice_parameter=lattice_parameter)
    e = m.energies(bz_sample("fcc", lattice_parameter, n)).ravel()
    return RECOIL_AL * np.mean(1.0 / (np.tanh(e / (2 * KB * temperature)) * e)), e


def nmse(x, y, mask):
    xv, yv = x[mask], y[mask]
    return float(((xv - yv) ** 2).sum() / (xv ** 2).sum())


def corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def rel_l2_of_shapes(a, b):
    a, b = a / a.sum(), b / b.sum()
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# -- 4. euphonic ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def euphonic_al():
    """euphonic ForceConstants of the reference Al model at 300 K, built from the phonopy force constants,
    and a euphonic Debye–Waller factor on a 16³ Monkhorst–Pack grid."""
    pytest.importorskip("euphonic")
    from euphonic import ureg
    from euphonic.util import mp_grid

    t = 300.0
    model = ALUMINIUM.bvk_model(AL_REF, temperature_k=t)
    fc = euphonic_force_constants(model)
    dw = fc.calculate_qpoint_phonon_modes(mp_grid([16, 16, 16])).calculate_debye_waller(t * ureg("K"))
    return {"fc": fc, "dw": dw, "model": model, "T": t, "ureg": ureg}


def euphonic_force_constants(model: BvKModel):
    """euphonic ForceConstants of ``model`` (any cubic lattice) built from its phonopy force constants, checked
    to reproduce phonopy's frequencies."""
    from euphonic import Crystal, ForceConstants, ureg

    ph = model.to_phonopy()
    prim = np.asarray(ph.primitive.cell)
    crystal = Crystal(prim * ureg("angstrom"), np.zeros((1, 3)), np.array([model.symbol]),
                      np.array([model.mass]) * ureg("amu"))
    sc_matrix = np.rint(np.asarray(ph.supercell.cell) @ np.linalg.inv(prim)).astype(int)
    origins = np.rint(np.asarray(ph.supercell.positions) @ np.linalg.inv(prim)).astype(int)
    fc = ForceConstants(crystal, np.asarray(ph.force_constants)[0].reshape(-1, 3, 3) * ureg("eV/angstrom**2"),
                        sc_matrix, origins)
    # sanity: euphonic reproduces phonopy's frequencies from these constants
    q = np.random.default_rng(0).uniform(-0.5, 0.5, (6, 3))
    ph.run_qpoints(q)
    np.testing.assert_allclose(np.sort(fc.calculate_qpoint_frequencies(q).frequencies.to("THz").magnitude, 1),
                               np.sort(np.asarray(ph.qpoints.frequencies), 1), rtol=1e-6)
    return fc


def _euphonic_binned(eu, mod_q, weights, npts, sigma_of, e_edges, **kw):
    """euphonic powder S(|Q|,E) (mbarn/meV, Bose factor and DW included) averaged over |Q| values with
    weights, histogrammed on a 0.02 meV grid, then each fine bin broadened with the Gaussian σ(E) of the
    simulator's resolution model and averaged over the output energy bins (``kw``: more euphonic options)."""
    from euphonic.powder import sample_sphere_structure_factor

    ureg = eu["ureg"]
    fine = np.arange(-60.0, 60.0 + 1e-9, 0.02)
    x = 0.5 * (fine[1:] + fine[:-1])
    acc = 0.0
    for q, w in zip(mod_q, weights):
        s = sample_sphere_structure_factor(eu["fc"], q * ureg("1/angstrom"), dw=eu["dw"],
                                           temperature=eu["T"] * ureg("K"), npts=npts,
                                           energy_bins=fine * ureg("meV"), **kw)
        acc = acc + w * s.y_data.to("mbarn/meV").magnitude
    acc = acc / np.sum(weights)
    return broaden_and_bin(x, acc * np.diff(fine), sigma_of, e_edges)


def broaden_and_bin(x, weights, sigma_of, e_edges):
    """Sticks ``weights`` at energies ``x`` (meV) broadened by the Gaussian σ(x) and averaged over the bins
    ``e_edges``: a density per meV on the output energy bins."""
    sig = np.maximum(sigma_of(x), 1e-9)
    kern = (ndtr((e_edges[None, 1:] - x[:, None]) / sig[:, None])
            - ndtr((e_edges[None, :-1] - x[:, None]) / sig[:, None])) / np.diff(e_edges)[None]
    return weights @ kern


def _euphonic_settings(**kw):
    return SimulationSettings(multiphonon=False, normalize=False, quantity="S", debye_waller=True, **kw)


def test_sphere_method_matches_euphonic_narrow_bins(euphonic_al):
    """One-phonon S(|Q|,E) at |Q| = 2, 4, 6 Å⁻¹, 300 K: simulator (method "sphere", 8192 points in a
    0.02 Å⁻¹ wide |Q| bin) against euphonic (4000 golden-spiral directions at the bin centre).

    Fair comparison: the same Gaussian broadening on both sides — the simulator applies the ARCS σ(E)
    (resins) of its resolution model to every fine-grid energy and averages over the output E bins; for
    euphonic the test applies that same σ(E) to euphonic's 0.02 meV histogram and averages over the same E
    bins. The |Q| bin is narrow enough that averaging across it (≈ 1e-5 relative) is negligible. Debye–Waller
    factors come from each code (simulator: its own 12³ BZ sum; euphonic: its own 16³ grid). euphonic includes
    b_coh², so S_euphonic / S_sim must be b_coh² = 118.96 mbarn at every |Q| (absolute scale, 1 %), and the
    normalised energy profiles must agree (correlation > 0.999, relative L2 < 3 %).
    """
    eu = euphonic_al
    energy = np.arange(2.0, 42.01, 0.5)
    e_edges = np.concatenate([[energy[0] - 0.25], energy + 0.25])
    qs = [2.0, 4.0, 6.0]
    grid, cols = narrow_q_grid(qs, energy, 0.01)
    sim = PowderSimulator(grid=grid, model=eu["model"], settings=_euphonic_settings(method="sphere", n_per_bin=8192),
                          lattice_parameter=eu["model"].lattice_parameter, dtype=torch.float64)
    ours = sim(torch.tensor(AL_REF[None]), eu["T"])[0].numpy()[:, cols]
    b2_mbarn = (AL_B_COH_FM * 1e-15) ** 2 / 1e-28 * 1e3
    for j, q in enumerate(qs):
        ref = _euphonic_binned(eu, [q], [1.0], 4000, sim.resolution.sigma, e_edges)
        assert corr(ours[:, j], ref) > 0.999, q
        assert rel_l2_of_shapes(ours[:, j], ref) < 0.03, q
        assert ref.sum() / ours[:, j].sum() == pytest.approx(b2_mbarn, rel=0.01), q


def test_mesh_method_matches_euphonic_standard_bins(euphonic_al):
    """As above for the default "mesh" method (density 24) with the standard 0.1 Å⁻¹ |Q| bins.

    The mesh averages over all reciprocal-lattice-grid points in the |Q| shell (volume weighting), so the
    euphonic reference is averaged over the bin too: 4-point Gauss–Legendre in |Q| with weights ∝ |Q|²,
    1500 directions each. (In very narrow bins the mesh has too few points for a clean comparison: that is
    sampling, not physics.) Same broadening as above. Agreement: correlation > 0.995, shape L2 < 6 %, and the
    absolute scale b_coh² within 1.5 % at every |Q|.
    """
    eu = euphonic_al
    energy = np.arange(2.0, 42.01, 0.5)
    e_edges = np.concatenate([[energy[0] - 0.25], energy + 0.25])
    qs = [2.0, 4.0, 6.0]
    hw = 0.05
    grid, cols = narrow_q_grid(qs, energy, hw)
    sim = PowderSimulator(grid=grid, model=eu["model"], settings=_euphonic_settings(method="mesh", mesh_density=24),
                          lattice_parameter=eu["model"].lattice_parameter, dtype=torch.float64)
    ours = sim(torch.tensor(AL_REF[None]), eu["T"])[0].numpy()[:, cols]
    b2_mbarn = (AL_B_COH_FM * 1e-15) ** 2 / 1e-28 * 1e3
    nodes, wts = np.polynomial.legendre.leggauss(4)
    for j, q in enumerate(qs):
        qq = q + hw * nodes
        ref = _euphonic_binned(eu, qq, wts * qq ** 2, 1500, sim.resolution.sigma, e_edges)
        assert corr(ours[:, j], ref) > 0.995, q
        assert rel_l2_of_shapes(ours[:, j], ref) < 0.06, q
        assert ref.sum() / ours[:, j].sum() == pytest.approx(b2_mbarn, rel=0.015), q


# -- 5. analytic limits -----------------------------------------------------------------------------------
def test_debye_waller_matches_euphonic_on_same_qpoints(tiny_grid):
    """⟨u_x²⟩ of the simulator (thermal.mean_square_displacement on sim.bz_energies) equals euphonic's
    Debye–Waller exponent (2 W_xx = ⟨u_x²⟩) evaluated on the very same 12³ shifted BZ grid (rel 1e-6)."""
    pytest.importorskip("euphonic")
    from euphonic import ureg

    model = ALUMINIUM.bvk_model(AL_REF, lattice_parameter=4.05)
    fc = euphonic_force_constants(model)
    sim = PowderSimulator(grid=tiny_grid, settings=SimulationSettings(method="sphere", n_per_bin=4, bz_grid=12),
                          dtype=torch.float64)
    f = (np.arange(12) + 0.5) / 12 - 0.5
    frac = np.stack(np.meshgrid(f, f, f, indexing="ij"), -1).reshape(-1, 3)  # primitive reciprocal coordinates
    modes = fc.calculate_qpoint_phonon_modes(frac)
    for t in (50.0, 300.0, 640.0):
        inp = sim.prepare(torch.tensor(AL_REF), t)
        ours = mean_square_displacement(torch.sqrt(sim.bz_energies(inp)), inp.temperature, sim.recoil).item()
        dw = modes.calculate_debye_waller(t * ureg("K"), symmetrise=False).debye_waller.to("angstrom**2").magnitude
        # the simulator's ⟨u_x²⟩ is the mode average ⟨coth/E⟩ = tr(⟨u uᵀ⟩)/3; the shifted primitive-basis grid is
        # not itself cubic-symmetric, so euphonic's unsymmetrised tensor is only nearly isotropic
        assert 2 * np.trace(dw[0]) / 3 == pytest.approx(ours, rel=1e-6)
        np.testing.assert_allclose(2 * np.diag(dw[0]), ours, rtol=2e-3)


def test_debye_waller_high_and_low_temperature_limits():
    """High T: ⟨u_x²⟩ → k_BT⟨1/ω²⟩/M (+ ħ²/(12 M k_BT) next order); T → 0: (ħ²/2M)⟨1/E⟩ (zero point).
    Eigenvalues from numpy on the same BZ sample, constants from scipy."""
    g = Grid(q=np.array([2.0, 3.0]), energy=np.array([12.0, 18.0]), mask=np.ones((2, 2), bool), ei_mev=50.0)
    sim = PowderSimulator(grid=g, settings=SimulationSettings(method="sphere", n_per_bin=4, bz_grid=12),
                          dtype=torch.float64)
    _, e = independent_msd(AL_REF, 300.0)  # meV, same 12³ shifted sample as the simulator
    omega = e * 1e-3 * sc.e / sc.hbar
    m_kg = AL_MASS * sc.atomic_mass

    def ours(t):
        inp = sim.prepare(torch.tensor(AL_REF), t)
        # rtol 2e-6: the closed-form 3×3 eigenvalues (eigen3.eigvalsh3) split exact degeneracies by ~3e-7
        # relative in float64 (acos argument clamped at 1 − 1e-12)
        np.testing.assert_allclose(np.sort(sim.bz_energies(inp).numpy().ravel()), np.sort(e ** 2), rtol=2e-6)
        return mean_square_displacement(torch.sqrt(sim.bz_energies(inp)), inp.temperature, sim.recoil).item()

    for t in (2000.0, 5000.0):
        classical = sc.k * t * np.mean(1 / omega ** 2) / m_kg * 1e20  # Å²
        quantum_corr = sc.hbar ** 2 / (12 * m_kg * sc.k * t) * 1e20
        assert ours(t) == pytest.approx(classical, rel=2e-3)
        assert ours(t) == pytest.approx(classical + quantum_corr, rel=1e-5)
    zero_point = sc.hbar / (2 * m_kg) * np.mean(1 / omega) * 1e20
    assert ours(1.0) == pytest.approx(zero_point, rel=1e-6)


def test_detailed_balance_of_s():
    """S(−E)/S(E) = exp(−E/k_BT) (quantity "S", no normalisation, no multiphonon, no resolution).

    E bins of 0.1 meV coincide with the simulator's fine energy grid, so the identity holds pixel by pixel
    to rounding; χ'' is odd in E."""
    energy = (np.arange(-400, 400) + 0.5) * 0.1
    grid, cols = narrow_q_grid([2.0, 5.0], energy, 0.05)
    t = 150.0
    out = {}
    for quantity in ("S", "chi''"):
        st = SimulationSettings(method="sphere", n_per_bin=256, multiphonon=False, normalize=False,
                                quantity=quantity, resolution_scale=0.0, energy_step=0.1)
        out[quantity] = PowderSimulator(grid=grid, settings=st, dtype=torch.float64)(
            torch.tensor(AL_REF), t)[0].numpy()[:, cols]
    pos = energy > 0
    s_pos, s_neg = out["S"][pos], out["S"][~pos][::-1]
    e = energy[pos][:, None]
    ok = s_pos > 1e-6 * s_pos.max()
    assert ok.sum() > 400
    ratio = s_neg[ok] / s_pos[ok]
    np.testing.assert_allclose(ratio, np.broadcast_to(np.exp(-e / (KB * t)), s_pos.shape)[ok], rtol=1e-9)
    chi = out["chi''"]
    np.testing.assert_allclose(chi[~pos][::-1], -chi[pos], atol=1e-12 * np.abs(chi).max())
    # χ'' = π (1 − e^{−E/kT}) S
    np.testing.assert_allclose(chi, np.pi * -np.expm1(-energy[:, None] / (KB * t)) * out["S"], rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("method,temperature", [("mesh", 50.0), ("sphere", 50.0), ("mesh", 600.0), ("sphere", 600.0)])
def test_f_sum_rule(method, temperature):
    """∫ E S₁(Q,E) dE = ħ²⟨Q²⟩/2M in every |Q| bin (DW off, one phonon, E in −60…60 meV, no resolution)."""
    energy = np.arange(-60.0, 60.0, 0.5) + 0.25
    qs = np.array([1.0, 3.0, 6.0, 9.0])
    hw = 0.05
    grid, cols = narrow_q_grid(qs, energy, hw)
    st = SimulationSettings(method=method, mesh_density=12, n_per_bin=256, multiphonon=False, debye_waller=False,
                            normalize=False, quantity="S", resolution_scale=0.0)
    s = PowderSimulator(grid=grid, settings=st, dtype=torch.float64)(torch.tensor(AL_REF), temperature)[0].numpy()
    first_moment = (s[:, cols] * energy[:, None]).sum(0) * 0.5
    expected = RECOIL_AL * (qs ** 2 + hw ** 2 / 3)
    np.testing.assert_allclose(first_moment, expected, rtol=0.005)


def test_multiphonon_weight_incoherent_limit():
    """Orders ≥ 2 carry ∫S_mp dE = 1 − e^{−2W}(1 + 2W), 2W = Q²⟨u_x²⟩ (⟨u_x²⟩ computed independently here),
    and that weight grows with T and with Q. Spectra with and without multiphonon differ only by S_mp."""
    energy = np.arange(-150.0, 150.0, 1.0) + 0.5
    qs = np.array([2.0, 5.0, 8.0])
    grid, cols = narrow_q_grid(qs, energy, 0.02, ei_mev=200.0)
    sims = {mp: PowderSimulator(grid=grid, dtype=torch.float64, settings=SimulationSettings(
        method="sphere", n_per_bin=64, multiphonon=mp, normalize=False, quantity="S", resolution_scale=0.0))
        for mp in (True, False)}
    weights = []
    for t in (100.0, 300.0, 600.0):
        a = float(ALUMINIUM.bvk_model(AL_REF, temperature_k=t).lattice_parameter)
        s = {mp: sims[mp](torch.tensor(AL_REF), t)[0].numpy()[:, cols] for mp in (True, False)}
        s_mp = s[True] - s[False]
        assert s_mp.min() > -1e-12
        w = s_mp.sum(0) * 1.0
        msd, _ = independent_msd(AL_REF, t, lattice_parameter=a)
        two_w = qs ** 2 * msd
        np.testing.assert_allclose(w, 1 - np.exp(-two_w) * (1 + two_w), rtol=0.01)
        weights.append(w)
    weights = np.array(weights)
    assert np.all(np.diff(weights, axis=0) > 0) and np.all(np.diff(weights, axis=1) > 0)


# -- 6. mesh vs sphere --------------------------------------------------------------------------------------
def test_mesh_and_sphere_methods_agree_on_standard_grid(standard_spectra):
    grid = standard_grid()
    mesh, sphere = standard_spectra("mesh"), standard_spectra("sphere")
    assert nmse(sphere, mesh, grid.mask) < 0.01
    assert nmse(mesh, sphere, grid.mask) < 0.01
    # both mean-normalised (conventions §3)
    for x in (mesh, sphere):
        v = x[grid.mask]
        assert abs(v.mean()) < 1e-10 and v.max() - v.min() == pytest.approx(1.0)


# -- 7. differentiability, dtype, batching ------------------------------------------------------------------
@pytest.mark.parametrize("method", ["sphere", "mesh"])
def test_gradcheck_force_constants_and_linewidth(tiny_grid, method):
    """gradcheck (float64) of the full normalised χ'' (DW, multiphonon, resolution, DHO linewidth) w.r.t. the
    five constants and γ. eps = 1e-4: the closed-form 3×3 eigenvalues lose ~√ε precision next to the mesh's
    symmetry-degenerate points, so smaller steps measure rounding noise, not the derivative."""
    st = SimulationSettings(method=method, n_per_bin=32, mesh_density=6, bz_grid=4)
    sim = PowderSimulator(grid=tiny_grid, settings=st, dtype=torch.float64)
    fc = torch.tensor(AL_REF[None], requires_grad=True)
    gamma = torch.tensor([0.05], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, g: sim(f, 300.0, linewidth=g), (fc, gamma),
                                    eps=1e-4, atol=1e-5, rtol=1e-3, fast_mode=True)
    # without linewidth, all Jacobian entries (not a random projection)
    assert torch.autograd.gradcheck(lambda f: sim(f, 300.0), (fc,), eps=1e-4, atol=1e-5, rtol=1e-3)


def test_gradient_is_nonzero_and_finite(tiny_sim):
    fc = torch.tensor(AL_REF[None], requires_grad=True)
    gamma = torch.tensor([0.1], dtype=torch.float64, requires_grad=True)
    y = tiny_sim(fc, 300.0, linewidth=gamma)
    (y ** 2).sum().backward()
    assert torch.isfinite(fc.grad).all() and (fc.grad.abs() > 0).all()
    assert torch.isfinite(gamma.grad).all() and gamma.grad.abs().item() > 0


def test_float32_forward_matches_float64(tiny_grid):
    out = {}
    for dt in (torch.float32, torch.float64):
        sim = PowderSimulator(grid=tiny_grid, settings=SimulationSettings(mesh_density=8, bz_grid=6), dtype=dt)
        y = sim(torch.tensor(AL_REF[None], dtype=dt), 300.0, linewidth=0.05)
        assert y.dtype == dt
        out[dt] = y.double().numpy()
    assert np.isfinite(out[torch.float32]).all()
    np.testing.assert_allclose(out[torch.float32], out[torch.float64], atol=2e-4)


@pytest.mark.parametrize("method", ["sphere", "mesh"])
def test_batch_equals_single(tiny_grid, method):
    """A batch with different constants, temperatures (hence lattice parameters) and linewidths gives the
    same spectra as one-by-one calls."""
    sim = PowderSimulator(grid=tiny_grid, settings=SimulationSettings(method=method, mesh_density=6, n_per_bin=32,
                                                                      bz_grid=4), dtype=torch.float64)
    fcs = np.array([AL_REF, [12.0, 9.0, -1.5, 3.1, 0.6], [9.0, 11.0, -2.0, 1.5, -0.5]])
    temps = np.array([50.0, 300.0, 640.0])
    for gammas in (None, np.array([0.02, 0.05, 0.1])):
        lw = None if gammas is None else torch.tensor(gammas)
        batch = sim(torch.tensor(fcs), torch.tensor(temps), linewidth=lw).numpy()
        assert batch.shape == (3, 4, 3)
        for i in range(3):
            single = sim(torch.tensor(fcs[i]), temps[i], linewidth=None if gammas is None else gammas[i]).numpy()[0]
            # 1e-9: the multiphonon order count and FFT length follow the batch maximum of 2W and E
            np.testing.assert_allclose(batch[i], single, rtol=1e-9, atol=1e-11)
        assert not np.allclose(batch[0], batch[1])


def test_batch_mixed_zero_linewidth_equals_single(tiny_grid):
    """A γ = 0 entry in a batch with γ > 0 entries equals the undamped spectrum (cell-integrated DHO kernel)."""
    sim = PowderSimulator(grid=tiny_grid, settings=SimulationSettings(method="sphere", n_per_bin=32, bz_grid=4,
                                                                      normalize=False, quantity="S"),
                          dtype=torch.float64)
    fcs = torch.tensor(np.stack([AL_REF, AL_REF]))
    batch = sim(fcs, 300.0, linewidth=torch.tensor([0.0, 0.05])).numpy()
    single = sim(torch.tensor(AL_REF), 300.0).numpy()[0]
    np.testing.assert_allclose(batch[0], single, rtol=1e-6)


def _f_sum_with_linewidth(gamma):
    energy = np.arange(-100.0, 100.0, 0.5) + 0.25
    qs = np.array([2.0, 3.0, 4.0])
    grid = Grid(q=qs, energy=energy, mask=np.ones((len(energy), 3), bool), ei_mev=120.0)
    sim = PowderSimulator(grid=grid, dtype=torch.float64, settings=SimulationSettings(
        method="sphere", n_per_bin=256, multiphonon=False, debye_waller=False, normalize=False, quantity="S",
        resolution_scale=0.0))
    s = sim(torch.tensor(AL_REF), 300.0, linewidth=gamma)[0].numpy()
    q2 = qs ** 2 + np.diff(grid.q_edges) ** 2 / 12
    return (s * energy[:, None]).sum(0) * 0.5 / (RECOIL_AL * q2)


@pytest.mark.parametrize("gamma", [0.01, 0.05])
def test_f_sum_rule_with_linewidth(gamma):
    """The damped-harmonic-oscillator line shape keeps ∫E S dE = ħ²Q²/2M (exact over all E; the Lorentzian tails
    beyond ±100 meV remove ≈ (4/π)·γ·⟨E⟩/100 ≲ 2 %)."""
    ratio = _f_sum_with_linewidth(gamma)
    assert np.all(ratio < 1.003) and np.all(ratio > 1 - 0.5 * gamma - 0.004)


@pytest.mark.parametrize("gamma", [1e-4, 1e-3])
def test_f_sum_rule_small_linewidth(gamma):
    """Γ = γE far below the 0.1 meV energy step: the cell-integrated DHO line keeps the f-sum rule."""
    np.testing.assert_allclose(_f_sum_with_linewidth(gamma), 1.0, rtol=0.01)


# -- 8. mask -------------------------------------------------------------------------------------------------
def test_simulated_mask_equals_measured_mask(shared_mask, standard_spectra):
    spectrum = standard_spectra("mesh")
    assert shared_mask.shape == (70, 101) and shared_mask.sum() == 4144
    np.testing.assert_array_equal(np.isfinite(spectrum), shared_mask)
    np.testing.assert_array_equal(standard_grid().mask, shared_mask)


def test_kinematic_mask_high_q_edge(shared_mask):
    """Kinematics (Ei = 50 meV, 2θ 4.5°–137.15°) reproduce the high-|Q| edge of the measured mask exactly
    and the low-|Q| edge to within 7 pixels (conventions §2)."""
    g = standard_grid()
    kin = kinematic_mask(g.q, g.energy, 50.0)
    for row in range(kin.shape[0]):
        meas_cols, kin_cols = np.where(shared_mask[row])[0], np.where(kin[row])[0]
        assert kin_cols.max() == meas_cols.max(), row
        assert abs(kin_cols.min() - meas_cols.min()) <= 7, row
    # independent kinematics: highest |Q| reached at 2θ = 137.15° (ħ²/2m_n = 2.0721 meV Å²)
    ki = np.sqrt(50.0 / 2.0721)
    kf = np.sqrt((50.0 - g.energy) / 2.0721)
    q_hi = np.sqrt(ki ** 2 + kf ** 2 - 2 * ki * kf * np.cos(np.radians(137.15)))
    expected_last = np.floor(q_hi / 0.1 + 1e-9).astype(int)
    np.testing.assert_array_equal([np.where(r)[0].max() for r in shared_mask], np.minimum(expected_last, 100))


# -- 9. bad input -------------------------------------------------------------------------------------------
def test_unstable_constants_raise(tiny_sim):
    bad = np.array([-5.0, 10.38, -2.77, 2.30, -0.25])
    with pytest.raises(UnstableForceConstantsError, match="unstable") as info:
        tiny_sim(torch.tensor(np.stack([AL_REF, bad])), 300.0)
    assert isinstance(info.value, ValueError)
    assert info.value.indices.tolist() == [1]
    out = tiny_sim(torch.tensor(np.stack([AL_REF, bad])), 300.0, allow_unstable=True).numpy()
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()


@pytest.mark.parametrize("temperature", [0.0, -10.0, float("nan")])
def test_non_positive_temperature_raises(tiny_sim, temperature):
    with pytest.raises(ValueError, match="temperature"):
        tiny_sim(torch.tensor(AL_REF), temperature)


@pytest.mark.parametrize("fc,match", [
    ([np.nan, 10.38, -2.77, 2.30, -0.25], "NaN or infinity"),
    ([10.35, np.inf, -2.77, 2.30, -0.25], "NaN or infinity"),
    ([10.35, 10.38, -2.77, 2.30], "expected 5 force constants"),
    ([[10.35, 10.38, -2.77, 2.30, -0.25, 1.0]], "expected 5 force constants"),
])
def test_bad_force_constants_raise(tiny_sim, fc, match):
    with pytest.raises(ValueError, match=match):
        tiny_sim(torch.tensor(fc, dtype=torch.float64), 300.0)


def test_other_bad_inputs_raise(tiny_sim):
    with pytest.raises(ValueError, match="temperatures for"):
        tiny_sim(torch.tensor(np.stack([AL_REF, AL_REF])), [300.0, 200.0, 100.0])
    with pytest.raises(ValueError, match="linewidth"):
        tiny_sim(torch.tensor(AL_REF), 300.0, linewidth=-0.1)
    with pytest.raises(ValueError, match="lattice parameter"):
        tiny_sim(torch.tensor(AL_REF), 300.0, lattice_parameter=-4.0)
    with pytest.raises(ValueError, match="quantity"):
        PowderSimulator(grid=tiny_sim.grid, settings=SimulationSettings(quantity="I"))
    with pytest.raises(ValueError, match="method"):
        PowderSimulator(grid=tiny_sim.grid, settings=SimulationSettings(method="cube"))


def test_grid_with_ei_below_energies_raises():
    with pytest.raises(ValueError, match="Ei"):
        Grid.from_axes(np.linspace(1.0, 5.0, 5), np.linspace(60.0, 80.0, 5), ei_mev=50.0)
    with pytest.raises(ValueError, match="Ei"):
        PowderSimulator(grid=Grid(q=np.array([1.0, 2.0]), energy=np.array([60.0, 70.0]),
                                  mask=np.ones((2, 2), bool), ei_mev=50.0))
