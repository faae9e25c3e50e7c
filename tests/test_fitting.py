"""Fits of force constants (phonon_ml_core.fitting.spectrum_fit, ``phonon-ml fit``) on a small grid for speed."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting import fit_series, fit_spectrum
from phonon_ml_core.fitting.inputs import default_bounds
from phonon_ml_core.fitting.problem import UNSTABLE_PENALTY
from phonon_ml_core.fitting.problem import FitProblem as _Problem
from phonon_ml_core.fitting.results import msq_combination
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.simulator.powder import SimulationSettings
from phonon_ml_core.specs import ALUMINIUM

AL_REFERENCE_FC = np.array(ALUMINIUM.reference_constants)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "al_arcs_ei50"
TRUE_FC = np.array([11.0, 9.8, -2.5, 2.6, 0.2])
T_K = 100.0
SETTINGS = SimulationSettings(mesh_density=16, bz_grid=8)


@pytest.fixture(scope="module")
def grid() -> Grid:
    return Grid.from_axes(np.arange(1.0, 8.01, 0.25), np.linspace(10.0, 45.0, 24))


@pytest.fixture(scope="module")
def sim(grid):
    return get_simulator(grid=grid, settings=SETTINGS)


def _noisy(sim, grid, sigma: float, seed: int = 1) -> Spectrum:
    with torch.no_grad():
        y = sim(torch.as_tensor(TRUE_FC)[None], T_K)[0].double().numpy()
    rng = np.random.default_rng(seed)
    y = np.where(grid.mask, y + sigma * rng.standard_normal(y.shape), np.nan)
    return Spectrum(intensity=mean_normalize(y, grid.mask), grid=grid, temperature=T_K, normalization="mean",
                    force_constants=TRUE_FC)


@pytest.fixture(scope="module")
def fits(sim, grid):
    """NM and gradient fits of a noisy spectrum, and a gradient fit of a 4× less noisy one (cached)."""
    noisy = _noisy(sim, grid, 0.02)
    quiet = _noisy(sim, grid, 0.005)
    out = {"noisy": noisy,
           "nm": fit_spectrum(noisy, "nelder-mead", simulator=sim, max_evaluations=500,
                              fit_linewidth=False, fit_background=False),
           "grad": fit_spectrum(noisy, "gradient", simulator=sim, n_starts=3, adam_steps=5, n_polish=1,
                                 fit_linewidth=False, fit_background=False),
           "grad_quiet": fit_spectrum(quiet, "gradient", simulator=sim, n_starts=3, adam_steps=5, n_polish=1,
                                       fit_linewidth=False, fit_background=False)}
    return out


def test_recovery_of_known_constants(fits):
    # tolerances: the first shell and the M<ω²> combination are pinned by powder data, the second shell is not
    for key in ("nm", "grad"):
        r = fits[key]
        assert r.force_constants.shape == (5,) and r.std.shape == (5,)
        assert abs(r.force_constants[0] - TRUE_FC[0]) < 0.4, (key, r.force_constants)   # 1XX within ~4 %
        assert abs(r.force_constants[1] - TRUE_FC[1]) < 0.6, (key, r.force_constants)   # 1XY within ~6 %
        assert abs(msq_combination(r.force_constants) / msq_combination(TRUE_FC) - 1) < 0.02
        assert np.all(np.abs(r.force_constants - TRUE_FC)[:2] < 5 * r.std[:2] + 0.05)  # errors match the std
        assert r.evaluations > 0 and r.seconds > 0 and r.spectra_simulated >= r.evaluations
        assert r.nmse < 0.2 and np.isfinite(r.nmse)
        assert r.simulated is not None and r.simulated.intensity.shape == fits["noisy"].intensity.shape


def test_methods_agree_on_simulated_data(fits):
    nm, gr = fits["nm"], fits["grad"]
    assert gr.nmse <= nm.nmse * 1.02 + 1e-4
    assert np.allclose(nm.force_constants[:2], gr.force_constants[:2], atol=0.3)
    assert abs(msq_combination(nm.force_constants) - msq_combination(gr.force_constants)) < 1.0


def test_uncertainty_shrinks_with_less_noise(fits):
    loud, quiet = fits["grad"].std, fits["grad_quiet"].std
    assert np.all(np.isfinite(loud)) and np.all(loud > 0)
    assert np.all(quiet[:3] < 0.5 * loud[:3]), (quiet, loud)  # 4× less noise → ~4× smaller std


def test_deterministic_for_a_seed(sim, grid):
    s = _noisy(sim, grid, 0.02, seed=3)
    kw = {"simulator": sim, "max_evaluations": 16, "n_starts": 3, "adam_steps": 3, "n_polish": 1, "uncertainty": False,
          "fit_linewidth": False, "fit_background": False}
    a = fit_spectrum(s, "gradient", seed=7, **kw)
    b = fit_spectrum(s, "gradient", seed=7, **kw)
    assert np.array_equal(a.force_constants, b.force_constants) and a.nmse == b.nmse
    c = fit_spectrum(s, "nelder-mead", simulator=sim, max_evaluations=30, uncertainty=False,
                     fit_linewidth=False, fit_background=False)
    d = fit_spectrum(s, "nelder-mead", simulator=sim, max_evaluations=30, uncertainty=False,
                     fit_linewidth=False, fit_background=False)
    assert np.array_equal(c.force_constants, d.force_constants)
    assert not c.converged and "did not converge" in c.message  # budget too small: says so, best point kept


def test_free_linewidth_and_unstable_penalty(sim, grid):
    s = _noisy(sim, grid, 0.02, seed=4)
    r = fit_spectrum(s, "gradient", simulator=sim, fit_linewidth=True, max_evaluations=25, n_starts=2,
                     adam_steps=3, n_polish=1, fit_background=False)
    assert r.linewidth is not None and 0 < r.linewidth < 0.3 and r.linewidth_std is not None
    prob = _Problem(sim, s, T_K, None, default_bounds(), False, None)
    bad = prob.to_u(np.array([1.0, 10.0, -5.0, 2.0, 0.0]))  # 1XX + 1ZZ < 0: unstable
    assert prob.nmse_np(bad) == UNSTABLE_PENALTY
    assert prob.nmse_np(prob.to_u(TRUE_FC)) < 0.2


def test_bad_inputs(sim, grid):
    s = _noisy(sim, grid, 0.02)
    with pytest.raises(ValueError, match="no finite values"):
        fit_spectrum(replace(s, intensity=np.full(grid.shape, np.nan)), simulator=sim)
    with pytest.raises(ValueError, match="method"):
        fit_spectrum(s, "simplex", simulator=sim)
    with pytest.raises(ValueError, match="start"):
        fit_spectrum(s, start=[1, 2, 3], simulator=sim)
    with pytest.raises(ValueError, match="set"):
        fit_spectrum(Spectrum.stack([s, s]), simulator=sim)
    with pytest.raises(ValueError, match="temperature"):
        fit_spectrum(replace(s, temperature=None), simulator=sim)
    raw = replace(s, intensity=np.where(grid.mask, 3.0 + 10 * s.intensity, np.nan), normalization="none")
    r = fit_spectrum(raw, "nelder-mead", simulator=sim, max_evaluations=10, uncertainty=False,
                     fit_linewidth=False, fit_background=False)
    assert "normalised" in r.message


def test_series_and_cli_round_trip(sim, grid, tmp_path):
    from phonon_ml_core.cli import main

    a, b = _noisy(sim, grid, 0.02, seed=5), replace(_noisy(sim, grid, 0.02, seed=6), temperature=200.0)
    series = fit_series([a, b], method="nelder-mead", simulator=sim, max_evaluations=40,
                        fit_linewidth=False, fit_background=False,
                        plot=tmp_path / "series.png")
    assert series.force_constants.shape == (2, 5) and (tmp_path / "series.png").stat().st_size > 1000
    assert set(series.trends) >= {"1XX", "2YY"} and "1XX" in series.table()
    f = tmp_path / "set.h5"
    Spectrum.stack([a, b]).to_hdf5(f)
    out = tmp_path / "RESULT.json"
    rc = main(["fit", "--method", "gradient", "--input", str(f), "--output", str(out), "--max-evaluations", "12",
               "--start", ",".join(str(x) for x in AL_REFERENCE_FC)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert len(doc["results"]) == 2
    for e, t in zip(doc["results"], (T_K, 200.0)):
        assert len(e["force_constants"]) == 5 and len(e["std"]) == 5
        for k in ("nmse", "evaluations", "seconds", "temperature", "linewidth", "converged", "method", "input"):
            assert k in e
        assert e["temperature"] == t and e["method"] == "gradient" and e["evaluations"] > 0
    assert main(["fit", "--input", str(f), "--output", str(out)]) == 2  # exists, no --overwrite
    empty = tmp_path / "empty.h5"
    replace(a, intensity=np.full(grid.shape, np.nan), force_constants=None).to_hdf5(empty)
    assert main(["fit", "--input", str(empty), "--output", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


def test_background_recovers_constants_and_slope(sim, grid, tmp_path):
    """A linear-in-E residual background biases the plain fit; fit_background=True recovers the constants and b1."""
    from phonon_ml_core.cli import main

    with torch.no_grad():
        y = sim(torch.as_tensor(TRUE_FC)[None], T_K)[0].double().numpy()  # mean-normalised: span 1
    e = np.broadcast_to(grid.energy[:, None], grid.shape)
    b0, b1 = 0.3, -0.012  # per meV: the background falls by ~0.4 spans across 10-45 meV
    rng = np.random.default_rng(8)
    x = np.where(grid.mask, y + b0 + b1 * (e - e[grid.mask].mean()) + 0.005 * rng.standard_normal(y.shape), np.nan)
    s = Spectrum(intensity=mean_normalize(x, grid.mask), grid=grid, temperature=T_K, normalization="mean")
    kw = {"simulator": sim, "n_starts": 3, "adam_steps": 5, "n_polish": 1, "fit_linewidth": False}
    plain = fit_spectrum(s, "gradient", fit_background=False, **kw)
    bg = fit_spectrum(s, "gradient", fit_background=True, **kw)
    assert plain.background is None and plain.to_dict()["background"] is None
    err_plain = np.abs(plain.force_constants - TRUE_FC)
    err_bg = np.abs(bg.force_constants - TRUE_FC)
    assert err_bg[0] < 0.2 and err_bg[1] < 0.3 and err_bg[0] < 0.5 * err_plain[0], (bg.force_constants,
                                                                                        plain.force_constants)
    assert abs(msq_combination(bg.force_constants) / msq_combination(TRUE_FC) - 1) < 0.01
    assert bg.nmse < 0.5 * plain.nmse
    assert bg.background[0] == 0.0 and abs(bg.background[1] / b1 - 1) < 0.05, bg.background  # b0 cancels
    assert 0 < bg.background_std[1] < 0.05 * abs(b1) and bg.correlation.shape == (6, 6)
    # the reported NMSE is the conventions' NMSE of the returned (background-including) model spectrum
    m = grid.mask
    assert np.isclose(bg.nmse, ((s.intensity[m] - bg.simulated.intensity[m]) ** 2).sum() / (s.intensity[m] ** 2).sum())
    assert abs(bg.simulated.intensity[m].mean()) < 1e-12 and np.isclose(np.ptp(bg.simulated.intensity[m]), 1.0)
    nm = fit_spectrum(s, "nelder-mead", simulator=sim, fit_background=True, max_evaluations=300, uncertainty=False,
                      fit_linewidth=False)
    assert abs(nm.force_constants[0] - TRUE_FC[0]) < 0.3 and abs(nm.background[1] / b1 - 1) < 0.05
    f = tmp_path / "bg.h5"
    s.to_hdf5(f)
    out = tmp_path / "RESULT.json"
    assert main(["fit", "--method", "gradient", "--input", str(f), "--output", str(out), "--max-evaluations", "15",
                 "--fit-background"]) == 0
    doc = json.loads(out.read_text())
    assert doc["fit_background"] is True
    e0 = doc["results"][0]["background"]
    assert e0["b0"] == 0.0 and e0["b1"] < 0 and e0["b1_std"] > 0 and 10 < e0["energy_mean"] < 45


def test_real_spectrum_quick_fit():
    path = DATA / "al_50K.h5"
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    s = Spectrum.from_hdf5(path)
    r = fit_spectrum(s, "gradient", max_evaluations=20, n_starts=2, adam_steps=3, n_polish=1,
                     fit_linewidth=False, fit_background=False)
    assert r.nmse < 0.25 and r.temperature == 50.0
    assert 8.0 < r.force_constants[0] < 12.5
