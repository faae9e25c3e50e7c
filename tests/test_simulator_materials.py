"""The simulator for any material and experiment: specs plumbing, euphonic cross-checks for a bcc metal (Fe on
SEQUOIA) and another fcc metal (Cu on MERLIN) at Ei = 80 meV, the incoherent one-phonon term against the density
of states (euphonic) and against the coherent high-|Q| limit, the factory's cache and the errors raised before
heavy work."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import constants as sc
from test_simulator import (
    _euphonic_binned,
    broaden_and_bin,
    corr,
    euphonic_force_constants,
    narrow_q_grid,
    rel_l2_of_shapes,
)

from phonon_ml_core.simulator import PowderSimulator, SimulationSettings, UnstableForceConstantsError, simulate_spectrum
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT, Experiment, default_grid, get_material

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KB = sc.k / sc.e * 1e3  # meV/K
ENERGY = np.arange(2.0, 42.01, 0.5)
E_EDGES = np.concatenate([[ENERGY[0] - 0.25], ENERGY + 0.25])


def recoil(mass_u: float) -> float:
    """ħ²/2M in meV Å² (scipy constants)."""
    return sc.hbar ** 2 / (2 * mass_u * sc.atomic_mass) / sc.e * 1e3 * 1e20


def one_phonon_settings(**kw) -> SimulationSettings:
    return SimulationSettings(multiphonon=False, normalize=False, quantity="S", **kw)


# -- specs plumbing --------------------------------------------------------------------------------------------
def test_from_specs_takes_material_and_experiment():
    fe = get_material("Fe")
    exp = Experiment.create("SEQUOIA", ei_mev=80.0)
    sim = PowderSimulator.from_specs(fe, exp, SimulationSettings(mesh_density=6, bz_grid=4, dos_grid=4))
    assert sim.material is fe and sim.experiment is exp and sim.grid is exp.grid
    assert sim.names == fe.names == ("1XX", "1XY", "2XX", "2YY") and sim.n_constants == 4
    r = sim.resolution
    assert (r.instrument, r.chopper_package, r.chopper_frequency, r.ei_mev) == \
        ("SEQUOIA", exp.chopper_package, exp.chopper_frequency, 80.0)
    inp = sim.prepare(np.array(fe.reference_constants), 150.0)
    assert float(inp.lattice_parameter[0]) == pytest.approx(fe.lattice_parameter_at(150.0), rel=1e-6)
    assert sim.weights == pytest.approx((11.22 / 11.62, 0.4 / 11.62))
    s = simulate_spectrum(fe.reference_constants, 300.0, material=fe, experiment=exp,
                          settings=SimulationSettings(mesh_density=6, bz_grid=4, dos_grid=4))
    assert s.material is fe and s.experiment.same_as(exp) and s.names == fe.names
    assert s.intensity.shape == exp.grid.shape and np.array_equal(np.isfinite(s.intensity), exp.grid.mask)
    assert s.instrument == "SEQUOIA" and s.metadata["lattice_parameter"] == pytest.approx(fe.lattice_parameter_at(300))
    # defaults are the specs' (aluminium on the standard experiment)
    default = PowderSimulator(settings=SimulationSettings(mesh_density=6))
    assert default.material is ALUMINIUM and default.experiment is STANDARD_EXPERIMENT


def test_frequency_of_the_resolution_chopper_reaches_resins():
    """CNCS sets its resolution with the resolution disk: its frequency must change σ (resins ignores a wrong
    keyword silently)."""
    sig = [Experiment.create("CNCS", ei_mev=12.0, chopper_frequency=f).resolution().sigma(np.array([3.0]))[0]
           for f in (180, 300)]
    assert sig[0] > 1.2 * sig[1]


def test_factory_caches_and_keys_honestly():
    st = SimulationSettings(mesh_density=6, bz_grid=4, dos_grid=4)
    a = get_simulator(settings=st)
    assert get_simulator(settings=st) is a and a.material is ALUMINIUM
    cu = get_simulator("Cu", settings=st)
    assert cu is not a and cu.material.element == "Cu"
    other_mask = default_grid(50.0, "ARCS")  # the standard grid itself
    assert get_simulator(grid=other_mask, settings=st) is a
    narrowed = replace(STANDARD_EXPERIMENT.grid, mask=STANDARD_EXPERIMENT.grid.mask & (np.arange(101) > 20))
    assert get_simulator(grid=narrowed, settings=st) is not a
    assert get_simulator(settings=st, dtype=torch.float32) is not a
    with pytest.raises(TypeError, match="grid="):
        get_simulator(STANDARD_EXPERIMENT.grid)


# -- euphonic cross-checks: bcc Fe on SEQUOIA, fcc Cu on MERLIN (Ei = 80 meV) ------------------------------------
@pytest.mark.parametrize("symbol,instrument", [("Fe", "SEQUOIA"), ("Cu", "MERLIN")])
def test_coherent_one_phonon_matches_euphonic(symbol, instrument):
    """Coherent one-phonon S(|Q|,E) at 300 K in 0.1 Å⁻¹ bins at |Q| = 2.5 and 5 Å⁻¹ (mesh, density 20) against
    euphonic averaged over each bin (4-point Gauss–Legendre in |Q|, weights ∝ |Q|², 1000 directions), both
    broadened with the instrument's σ(E) (resins) and averaged over the same E bins. The simulator's unit is
    σ_tot/4π per atom with the coherent part weighted σ_coh/σ_tot, so euphonic (b_coh² given explicitly) / ours
    = b_coh² σ_tot/σ_coh (1.5 %). Shapes: correlation > 0.995, relative L2 < 6 %."""
    pytest.importorskip("euphonic")
    from euphonic import ureg
    from euphonic.util import mp_grid

    mat, t = get_material(symbol), 300.0
    exp = Experiment.create(instrument, ei_mev=80.0)
    qs, hw = [2.5, 5.0], 0.05
    grid, cols = narrow_q_grid(qs, ENERGY, hw, ei_mev=80.0)
    sim = PowderSimulator.from_specs(mat, exp, one_phonon_settings(incoherent=False, mesh_density=20),
                                     dtype=torch.float64, grid=grid)
    assert sim.resolution.instrument == instrument
    ours = sim(torch.tensor(mat.reference_constants), t)[0].numpy()[:, cols]
    model = mat.bvk_model(temperature_k=t)
    fc = euphonic_force_constants(model)
    eu = {"fc": fc, "T": t, "ureg": ureg,
          "dw": fc.calculate_qpoint_phonon_modes(mp_grid([16, 16, 16])).calculate_debye_waller(t * ureg("K"))}
    b2_mbarn = (mat.b_coh_fm * 1e-15) ** 2 / 1e-28 * 1e3
    scale = b2_mbarn * (mat.sigma_coh_barn + mat.sigma_inc_barn) / mat.sigma_coh_barn
    nodes, wts = np.polynomial.legendre.leggauss(4)
    for j, q in enumerate(qs):
        qq = q + hw * nodes
        ref = _euphonic_binned(eu, qq, wts * qq ** 2, 1000, sim.resolution.sigma, E_EDGES,
                               scattering_lengths={mat.element: mat.b_coh_fm * ureg("fm")})
        assert corr(ours[:, j], ref) > 0.995, q
        assert rel_l2_of_shapes(ours[:, j], ref) < 0.06, q
        assert ref.sum() / ours[:, j].sum() == pytest.approx(scale, rel=0.015), q


# -- the incoherent one-phonon term ------------------------------------------------------------------------------
def vanadium_spectra(grid, method_settings, parts=("inc",)):
    """One-phonon S of vanadium at 300 K on ``grid`` (ARCS, 80 meV): purely incoherent ("inc", σ_coh set to 0)
    and purely coherent ("coh", σ_inc set to 0), and the simulator of the last part."""
    v = get_material("V")
    exp = Experiment.create("ARCS", ei_mev=80.0)
    out = {}
    for name in parts:
        mat = replace(v, sigma_coh_barn=0.0) if name == "inc" else replace(v, sigma_inc_barn=0.0)
        sim = PowderSimulator.from_specs(mat, exp, one_phonon_settings(**method_settings), dtype=torch.float64,
                                         grid=grid)
        assert sim.weights == ((0.0, 1.0) if name == "inc" else (1.0, 0.0))
        out[name] = sim(torch.tensor(v.reference_constants), 300.0)[0].numpy()
        out["sim"] = sim
    return v, out


def test_incoherent_term_matches_density_of_states():
    """S_inc(Q,E) = e^{−2W} Q² (ħ²/2M) (n+1) g(E)/(3E) with g euphonic's DOS (24³ Monkhorst–Pack, 0.05 meV bins,
    3 modes) and e^{−2W} from euphonic's Debye–Waller factor, broadened like the simulator: shape (correlation
    > 0.9995, relative L2 < 2 %; measured 0.99999 and 0.3 %) and absolute scale (2 %; measured 1.000 and 1.008)
    at |Q| = 3 and 9 Å⁻¹."""
    pytest.importorskip("euphonic")
    from euphonic import ureg
    from euphonic.util import mp_grid

    grid, cols = narrow_q_grid([3.0, 9.0], ENERGY, 0.01, ei_mev=80.0)
    v, d = vanadium_spectra(grid, {"method": "sphere", "n_per_bin": 4096})
    t, sim = 300.0, d["sim"]
    model = v.bvk_model(temperature_k=t)
    modes = euphonic_force_constants(model).calculate_qpoint_phonon_modes(mp_grid([24, 24, 24]))
    ebins = np.arange(0.0, 60.0 + 1e-9, 0.05)
    g = modes.calculate_dos(ebins * ureg("meV")).y_data.to("1/meV").magnitude  # ∫ g = 3
    assert np.sum(g) * 0.05 == pytest.approx(3.0, rel=1e-3)
    u_x2 = np.trace(modes.calculate_debye_waller(t * ureg("K")).debye_waller.to("angstrom**2").magnitude[0]) * 2 / 3
    x = 0.5 * (ebins[1:] + ebins[:-1])
    n = 1.0 / np.expm1(x / (KB * t))
    for j, q in enumerate([3.0, 9.0]):
        q2 = q ** 2 + 0.02 ** 2 / 12
        dens_pos = np.exp(-q2 * u_x2) * q2 * recoil(v.mass_u) * (n + 1) * g / (3 * x)
        dens_neg = np.exp(-q2 * u_x2) * q2 * recoil(v.mass_u) * n * g / (3 * x)
        ref = broaden_and_bin(np.concatenate([x, -x]), np.concatenate([dens_pos, dens_neg]) * 0.05,
                              sim.resolution.sigma, E_EDGES)
        ours = d["inc"][:, cols[j]]
        assert corr(ours, ref) > 0.9995, q
        assert rel_l2_of_shapes(ours, ref) < 0.02, q
        assert ours.sum() / ref.sum() == pytest.approx(1.0, rel=0.02), q  # ⟨u²⟩: 12³ BZ sample against 24³


def test_coherent_tends_to_incoherent_at_high_q():
    """Averaged over |Q| ranges far beyond the first zone (1 Å⁻¹ wide at 6 and 9 Å⁻¹) the powder coherent
    one-phonon S tends to the incoherent one (same cross-section, same DW): weights within 3 %, shapes within
    15 %; near the zone (3 Å⁻¹) they differ clearly."""
    grid, cols = narrow_q_grid([3.0, 6.0, 9.0], ENERGY, 0.5, ei_mev=80.0)
    _, d = vanadium_spectra(grid, {"method": "mesh", "mesh_density": 16}, parts=("inc", "coh"))
    coh, inc = d["coh"][:, cols], d["inc"][:, cols]
    for j in (1, 2):
        assert coh[:, j].sum() / inc[:, j].sum() == pytest.approx(1.0, rel=0.03)
        assert rel_l2_of_shapes(coh[:, j], inc[:, j]) < 0.15
    assert coh[:, 0].sum() / inc[:, 0].sum() > 1.1


def test_aluminium_incoherent_term_is_below_noise():
    """σ_inc(Al) = 0.0082 b against σ_coh = 1.495 b: the incoherent term changes aluminium's mean-normalised
    spectra by an NMSE far below pixel noise (≈ 0.03) and the mesh error (≈ 0.002)."""
    st = SimulationSettings(mesh_density=6, bz_grid=6, dos_grid=8)
    fc = torch.tensor(np.array([ALUMINIUM.reference_constants, [12.0, 9.0, -1.5, 3.1, 0.6]]))
    ys = [PowderSimulator(settings=replace(st, incoherent=flag))(fc, [50.0, 640.0]).double().numpy()
          for flag in (True, False)]
    m = STANDARD_EXPERIMENT.grid.mask
    for a, b in zip(*ys):
        e = ((a[m] - b[m]) ** 2).sum() / (b[m] ** 2).sum()
        assert 0 < e < 1e-4


# -- errors before heavy work ------------------------------------------------------------------------------------
def test_errors_name_the_problem_and_the_fix():
    fe = get_material("Fe")
    st = SimulationSettings(method="sphere", n_per_bin=8, bz_grid=4, dos_grid=4)
    exp = Experiment.create("SEQUOIA", ei_mev=80.0)
    sim = PowderSimulator.from_specs(fe, exp, st, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"expected 4 force constants per set for Fe.*1XX, 1XY, 2XX, 2YY"):
        sim(torch.tensor(ALUMINIUM.reference_constants), 300.0)
    bad = np.array([fe.reference_constants, [-16.0, 15.0, 14.0, 0.5]])
    with pytest.raises(UnstableForceConstantsError, match=r"set\(s\) \[1\] \(set 1: 1XX=-16, 1XY=15") as info:
        sim(torch.tensor(bad), 300.0)
    assert info.value.indices.tolist() == [1]
    beyond = replace(exp.grid, energy=exp.grid.energy + 20.0)  # 36–92 meV with Ei = 80: pixels beyond Ei
    with pytest.raises(ValueError, match=r"energy transfer ≥ Ei = 80 meV.*default_grid"):
        PowderSimulator.from_specs(fe, exp, st, grid=beyond)
    with pytest.raises(ValueError, match=r"grid's Ei \(50 meV\) differs from the experiment's \(80 meV\)"):
        PowderSimulator.from_specs(fe, exp, st, grid=STANDARD_EXPERIMENT.grid)
    with pytest.raises(ValueError, match=r"SimulationSettings.chopper_package = 'ARCS-700-1.5-AST' differs"):
        PowderSimulator.from_specs(fe, exp, replace(st, chopper_package="ARCS-700-1.5-AST"))
    with pytest.raises(ValueError, match="pass only the material"):
        PowderSimulator(model=ALUMINIUM.bvk_model(), material=fe, experiment=exp, settings=st)


def test_float32_stability_flag_matches_float64_at_degenerate_modes():
    """A four-shell aluminium set drawn by `simulate --shells 4 --seed 7` has a transverse pair of 0.43 meV² on
    the [111] line: the float32 closed-form eigenvalues put one at −0.045 meV², which once refused the set as
    unstable mid-way through a data set. The flag is exact (Sylvester) and agrees with float64 and with the
    sampler's check; a truly unstable set is still refused in float32."""
    al4 = get_material("Al", 4)
    fc = np.array([[8.25203241, 13.3453944, -2.07017552, 1.88838029, -0.69910671, 0.32403377, 0.93193734,
                    -0.13187983, -0.87251367, 0.6589714, -0.771322, 0.32643542]])
    spectra = {}
    for dtype in (torch.float64, torch.float32):
        sim = get_simulator(al4, STANDARD_EXPERIMENT, dtype=dtype)
        spectra[dtype] = sim(torch.tensor(fc, dtype=dtype), 104.0, linewidth=0.023).double()
    ok = ~torch.isnan(spectra[torch.float64])
    assert ok.any() and torch.equal(ok, ~torch.isnan(spectra[torch.float32]))
    a, b = spectra[torch.float64][ok], spectra[torch.float32][ok]
    assert float(torch.linalg.norm(a - b) / torch.linalg.norm(a)) < 1e-3
    unstable = fc.copy()
    unstable[0, 1] = 20.0  # 1XY > 1XX: a transverse branch goes imaginary
    with pytest.raises(UnstableForceConstantsError):
        get_simulator(al4, STANDARD_EXPERIMENT, dtype=torch.float32)(torch.tensor(unstable, dtype=torch.float32), 104.0)
