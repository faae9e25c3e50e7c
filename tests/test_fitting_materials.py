"""Fits, RESULT.json frequencies and errors for materials other than aluminium (bcc iron, a simple-cubic file).

References: the closed forms of conventions §1 (fcc X and L), the BvK dynamical matrix (physics.bvk), a
Brillouin-zone average of ω² for M⟨ω²⟩, and Monte Carlo sampling for the propagated uncertainties.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting import fit_spectrum
from phonon_ml_core.fitting.frequencies import (
    RESULT_POINTS,
    frequency_fields,
    special_points,
    zone_boundary_frequencies,
)
from phonon_ml_core.fitting.results import msq_coefficients
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.physics.bvk import bz_sample
from phonon_ml_core.physics.units import FC_TO_MEV2, MEV_PER_THZ
from phonon_ml_core.simulator.powder import SimulationSettings
from phonon_ml_core.specs import ALUMINIUM, Experiment, get_material

FE = get_material("Fe")
SETTINGS = SimulationSettings(mesh_density=16, bz_grid=8)
FE_TRUE = np.array(FE.reference_constants) * np.array([1.06, 0.95, 1.04, 1.0])
T_K = 300.0


def _thz(mw2_n_per_m: float, mass_u: float) -> float:
    """Frequency (THz) from M ω² in N/m."""
    return float(np.sqrt(mw2_n_per_m * FC_TO_MEV2 / mass_u) / MEV_PER_THZ)


def test_fcc_frequencies_match_closed_forms_and_bvk():
    fc = np.array([10.35, 10.38, -2.77, 2.30, -0.25])
    a, b, c, d, e = fc
    freq, std = zone_boundary_frequencies(ALUMINIUM, fc)
    m = ALUMINIUM.mass_u
    assert list(freq) == ["X", "L"] and std is None
    np.testing.assert_allclose(freq["X"], sorted([_thz(8 * (a + c), m)] * 2 + [_thz(16 * a, m)]), rtol=1e-10)
    lt, ll = _thz(4 * (2 * a + c - b) + 4 * (d + 2 * e), m), _thz(4 * (2 * a + c + 2 * b) + 4 * (d + 2 * e), m)
    np.testing.assert_allclose(freq["L"], sorted([lt, lt, ll]), rtol=1e-10)


@pytest.mark.parametrize("lattice_material", ["Fe", "Cu"])
def test_result_frequencies_match_bvk_model_and_sampling(lattice_material):
    mat = get_material(lattice_material)
    fc = np.array(mat.reference_constants)
    std = 0.01 * np.abs(fc) + 0.05
    fields = frequency_fields(mat, fc, std=std)
    assert fields["frequency_points"] == list(RESULT_POINTS[mat.lattice])
    model = mat.bvk_model(fc)
    pts = special_points(mat.lattice)
    rng = np.random.default_rng(0)
    draws = fc + std * rng.standard_normal((400, len(fc)))
    for p in fields["frequency_points"]:
        q = np.array(pts[p]) * 2 * np.pi / model.lattice_parameter
        np.testing.assert_allclose(fields["frequencies_thz"][p], np.sort(model.frequencies_thz(q)), rtol=1e-10)
        mc = np.std([mat.bvk_model(x).frequencies_thz(q) for x in draws], axis=0)
        np.testing.assert_allclose(fields["frequencies_std_thz"][p], mc, rtol=0.15)


@pytest.mark.parametrize("symbol", ["Al", "Fe"])
def test_msq_combination_is_the_zone_average_of_m_omega_squared(symbol):
    mat = get_material(symbol)
    fc = np.array(mat.reference_constants)
    model = mat.bvk_model(fc)
    q = bz_sample(mat.lattice, model.lattice_parameter, 8)
    mw2 = np.linalg.eigvalsh(model.dynamical_matrix(q)).sum(-1).mean() / 3
    assert float(fc @ msq_coefficients(mat)) == pytest.approx(mw2, rel=1e-9)


@pytest.fixture(scope="module")
def fe_setup():
    grid = Grid.from_axes(np.arange(1.0, 9.01, 0.3), np.linspace(12.0, 60.0, 26), ei_mev=80.0)
    exp = Experiment.create("ARCS", 80.0, grid=grid)
    sim = get_simulator(FE, exp, grid=grid, settings=SETTINGS)
    with torch.no_grad():
        y = sim(torch.as_tensor(FE_TRUE)[None], T_K)[0].double().numpy()
    y = np.where(grid.mask, y + 0.005 * np.random.default_rng(3).standard_normal(y.shape), np.nan)
    s = Spectrum(intensity=mean_normalize(y, grid.mask), grid=grid, temperature=T_K, normalization="mean",
                 material=FE, experiment=exp)
    return grid, exp, sim, s


def test_bcc_iron_fit_recovers_zone_boundary_frequencies(fe_setup):
    """Nelder–Mead from the reference constants (6 % off the truth) recovers H, N, P within 2 %."""
    _, _, sim, s = fe_setup
    r = fit_spectrum(s, "nelder-mead", simulator=sim, max_evaluations=400, fit_linewidth=False, fit_background=False)
    assert r.names == FE.names and r.material.same_as(FE) and len(r.force_constants) == 4
    assert r.nmse < 0.01
    truth, _ = zone_boundary_frequencies(FE, FE_TRUE)
    d = r.to_dict()
    assert d["material"] == FE.name and d["lattice"] == "bcc" and d["names"] == list(FE.names)
    assert d["experiment"]["ei_mev"] == 80.0 and d["material_spec"]["element"] == "Fe"
    for p in ("H", "N", "P"):
        np.testing.assert_allclose(d["frequencies_thz"][p], truth[p], rtol=0.02)
        assert all(v is not None and v >= 0 for v in d["frequencies_std_thz"][p])
    assert abs(r.force_constants[0] / FE_TRUE[0] - 1) < 0.05
    json.dumps(d, allow_nan=False)


def test_material_errors(fe_setup):
    _, _, sim, s = fe_setup
    with pytest.raises(ValueError, match="1XX, 1XY, 2XX, 2YY|'1XX', '1XY', '2XX', '2YY'"):
        fit_spectrum(s, start=[1.0, 2.0, 3.0, 4.0, 5.0], simulator=sim, max_evaluations=5)
    with pytest.raises(ValueError, match="belongs to Fe.*aluminium|belongs to .*Fe"):
        fit_spectrum(s, material=ALUMINIUM, max_evaluations=5)
    with pytest.raises(ValueError, match="Ei"):
        fit_spectrum(s, experiment=Experiment.create("ARCS", 50.0), max_evaluations=5)
