"""The richer nuisance model (issue 16, item 3): an energy-dependent linewidth γ0 + γ1·E and reference priors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting import fit_spectrum
from phonon_ml_core.fitting.inputs import default_bounds
from phonon_ml_core.fitting.linewidth import LINEWIDTH_OFFSET, check_linewidth_model, simulator_linewidth
from phonon_ml_core.fitting.priors import PRIOR_WEIGHT, GaussianPrior, reference_prior, shell_of
from phonon_ml_core.fitting.problem import FitProblem
from phonon_ml_core.simulator.one_phonon import dho_kernel
from phonon_ml_core.specs import ALUMINIUM
from test_fitting import SETTINGS, TRUE_FC, T_K, grid, sim  # noqa: F401  (the small grid and simulator fixtures)


def _kernel_inputs():
    step = 0.1
    g = torch.tensor([5.0, 12.0, 30.0], dtype=torch.float64)
    fine = torch.arange(-60.0, 60.0 + 1e-9, step, dtype=torch.float64)
    return g, fine, torch.sign(fine), step


def test_affine_linewidth_is_the_dho_line_of_half_width_gamma0_plus_gamma1_e():
    """Γ = γ0 + γ1·E: each mode's line is the proportional line with γ = Γ(E0)/E0 (analytic identity), γ0 = 0
    reproduces the proportional kernel exactly, and the measured half width is Γ."""
    g, fine, sign, step = _kernel_inputs()
    g0, g1 = 0.8, 0.02
    affine = dho_kernel(torch.tensor([[g0, g1]], dtype=torch.float64), g, fine, sign, step)[0]
    for i, e0 in enumerate(g.tolist()):
        prop = dho_kernel(torch.tensor([(g0 + g1 * e0) / e0], dtype=torch.float64), g, fine, sign, step)[0]
        torch.testing.assert_close(affine[i], prop[i], rtol=1e-12, atol=1e-14)
    zero = dho_kernel(torch.tensor([[0.0, g1]], dtype=torch.float64), g, fine, sign, step)
    torch.testing.assert_close(zero, dho_kernel(torch.tensor([g1], dtype=torch.float64), g, fine, sign, step))
    # the measured half width of the 30 meV line grows by γ0
    pos = fine > 0
    for width in (g1 * 30.0, g0 + g1 * 30.0):
        k = dho_kernel(torch.tensor([[width - g1 * 30.0, g1]], dtype=torch.float64), g, fine, sign, step)[0, 2]
        line = (k[pos] / step).numpy()
        above = fine[pos].numpy()[line >= line.max() / 2]
        assert abs((above.max() - above.min()) / 2 - width) < 0.1 + 0.05 * width


def test_simulator_takes_affine_linewidth_rows(sim):
    fc = torch.as_tensor(TRUE_FC)[None]
    a = sim(fc, T_K, linewidth=torch.tensor([0.03]))
    b = sim(fc, T_K, linewidth=torch.tensor([[0.0, 0.03]]))
    c = sim(torch.cat([fc, fc]), T_K, linewidth=torch.tensor([[1.0, 0.03]]))  # one row broadcasts over the batch
    ok = torch.isfinite(a[0])
    torch.testing.assert_close(a[0][ok], b[0][ok])
    assert float((a[0] - c[1])[ok].abs().max()) > 1e-3
    with pytest.raises(ValueError, match="γ0 meV, γ1"):
        sim(fc, T_K, linewidth=torch.tensor([[-1.0, 0.03]]))
    with pytest.raises(ValueError, match="affine"):
        check_linewidth_model("quadratic")
    assert simulator_linewidth(torch.tensor([0.5]), torch.tensor([-1e-4])).tolist() == [[0.0, 0.5]]


def test_affine_fit_recovers_gamma0_where_the_proportional_model_cannot(sim, grid):
    """A spectrum with HWHM = 1.2 meV + 0.01·E: the affine fit finds γ0 near 1.2 meV and fits better."""
    with torch.no_grad():
        y = sim(torch.as_tensor(TRUE_FC)[None], T_K, linewidth=torch.tensor([[1.2, 0.01]]))[0].double().numpy()
    s = Spectrum(intensity=mean_normalize(np.where(grid.mask, y, np.nan), grid.mask), grid=grid, temperature=T_K,
                 normalization="mean")
    kw = {"simulator": sim, "fit_linewidth": True, "n_starts": 2, "adam_steps": 4, "n_polish": 1, "start": TRUE_FC}
    prop = fit_spectrum(s, "gradient", **kw)
    aff = fit_spectrum(s, "gradient", linewidth_model="affine", **kw)
    assert aff.nmse < 0.5 * prop.nmse and aff.nmse < 2e-3
    assert abs(aff.simulated.metadata[LINEWIDTH_OFFSET] - 1.2) < 0.3
    assert LINEWIDTH_OFFSET in aff.message
    with pytest.raises(ValueError, match="fit_linewidth"):
        fit_spectrum(s, "gradient", simulator=sim, fit_linewidth=False, linewidth_model="affine")


def test_reference_prior_rules():
    m3 = ALUMINIUM.with_shells(3)
    pr = reference_prior(m3)                                # "added": only the third shell
    assert pr.active == tuple(n for n in m3.names if n.startswith("3"))
    for n, mu, sd, (lo, hi) in zip(m3.names, pr.mean, pr.sigma, m3.sampling_ranges):
        assert mu == m3.reference_constants[m3.names.index(n)]
        assert sd == (0.5 * (hi - lo) if n.startswith("3") else np.inf)
    full = reference_prior(ALUMINIUM, "all", width_scale=2.0)
    np.testing.assert_allclose(full.sigma, [hi - lo for lo, hi in ALUMINIUM.sampling_ranges])
    ref = np.array(ALUMINIUM.reference_constants)
    assert full.penalty(ref)[0] == 0.0
    z = np.zeros(5)
    z[0] = full.sigma[0]
    assert full.penalty(ref + z)[0] == pytest.approx(PRIOR_WEIGHT)
    assert reference_prior(ALUMINIUM, ["2YY"]).active == ("2YY",)
    assert shell_of("12XX") == 12
    with pytest.raises(ValueError, match="no constants"):
        reference_prior(ALUMINIUM, ["3XX"])
    with pytest.raises(ValueError, match="scope"):
        reference_prior(ALUMINIUM, "some")
    with pytest.raises(ValueError, match="σ"):
        GaussianPrior(("a",), (0.0,), (0.0,))
    assert full.to_dict()["active"] == list(ALUMINIUM.names)
    with pytest.raises(ValueError, match="build it for the fitted material"):
        pr.check_names(ALUMINIUM.names)


def test_prior_enters_the_objective_and_pulls_ill_determined_constants(sim, grid):
    with torch.no_grad():
        y = sim(torch.as_tensor(TRUE_FC)[None], T_K)[0].double().numpy()
    s = Spectrum(intensity=mean_normalize(np.where(grid.mask, y, np.nan), grid.mask), grid=grid, temperature=T_K,
                 normalization="mean")
    bounds = default_bounds(TRUE_FC)
    pr = reference_prior(ALUMINIUM, "all", weight=1.0)
    plain = FitProblem(sim, s, T_K, None, bounds, False, None)
    with_prior = FitProblem(sim, s, T_K, None, bounds, False, None, prior=pr)
    u = torch.as_tensor(np.stack([plain.to_u(TRUE_FC), plain.to_u(np.array(ALUMINIUM.reference_constants))]))
    diff = (with_prior.nmse_u(u)[0] - plain.nmse_u(u)[0]).numpy()
    np.testing.assert_allclose(diff, pr.penalty(plain.to_theta(u.numpy())), rtol=1e-10, atol=1e-12)
    assert diff[1] == pytest.approx(0.0, abs=1e-14)
    # a strong prior at the reference pulls the fitted constants from the truth towards it
    free = fit_spectrum(s, "gradient", simulator=sim, n_starts=1, adam_steps=3, n_polish=1, start=TRUE_FC)
    pulled = fit_spectrum(s, "gradient", simulator=sim, n_starts=1, adam_steps=3, n_polish=1, start=TRUE_FC,
                          prior=reference_prior(ALUMINIUM, "all", width_scale=0.02, weight=1.0))
    ref = np.array(ALUMINIUM.reference_constants)
    assert np.abs(pulled.force_constants - ref).sum() < 0.5 * np.abs(free.force_constants - ref).sum()


def test_result_records_the_prior_and_the_prior_narrows_the_background_fit_uncertainty(sim, grid):
    """With the background slope fitted (the default), the Gauss–Newton std sees the prior's rows: a tight prior on
    every constant gives std near its σ (far below the data-only std), and RESULT.json records prior and γ0."""
    with torch.no_grad():
        y = sim(torch.as_tensor(TRUE_FC)[None], T_K)[0].double().numpy()
    s = Spectrum(intensity=mean_normalize(np.where(grid.mask, y, np.nan), grid.mask), grid=grid, temperature=T_K,
                 normalization="mean")
    noisy = np.asarray(s.intensity, float).copy()
    noisy[grid.mask] += 0.05 * np.random.default_rng(3).standard_normal(int(grid.mask.sum()))
    s = Spectrum(intensity=mean_normalize(noisy, grid.mask), grid=grid, temperature=T_K, normalization="mean")
    kw = {"method": "gradient", "simulator": sim, "n_starts": 1, "adam_steps": 3, "n_polish": 1, "start": TRUE_FC,
          "fit_linewidth": False, "fit_background": True}
    free = fit_spectrum(s, **kw)
    tight = reference_prior(ALUMINIUM, "all", width_scale=1e-3, weight=1.0)
    pinned = fit_spectrum(s, prior=tight, **kw)
    assert np.all(pinned.std < 0.2 * free.std)
    out = pinned.to_dict()
    assert out["prior"]["active"] == list(ALUMINIUM.names) and out["linewidth_offset"] is None
    assert free.to_dict()["prior"] is None
