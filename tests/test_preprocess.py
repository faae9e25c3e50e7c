"""Preprocessing: rebinning, detailed balance, background, masks, pass-through, errors and the CLI."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from phonon_ml_core import cli
from phonon_ml_core.preprocess.background import ESTIMATORS, estimate_background, subtract_background
from phonon_ml_core.physics.units import KB_MEV_PER_K
from phonon_ml_core.specs.grid import Grid, edges_to_centres, kinematic_mask, standard_grid
from phonon_ml_core.data.normalization import is_mean_normalized, nmse
from phonon_ml_core.preprocess.pipeline import detailed_balance_factor, preprocess, preprocess_with_report, to_chi
from phonon_ml_core.readers import read_spectrum, write_mantid_nexus, write_nxspe
from phonon_ml_core.data.rebin import overlap_matrix, rebin2d
from phonon_ml_core.data.spectrum import Spectrum

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "al_arcs_ei50"


def signal(q, e):
    """A phonon-like, non-negative S(|Q|,E) that is ~0 at low |Q|."""
    return (q ** 2 * np.exp(-0.03 * q ** 2)
            * (np.exp(-0.5 * ((e - 20) / 3) ** 2) + 0.6 * np.exp(-0.5 * ((e - 36) / 2) ** 2)))


def background_of(e):
    return 0.8 + 0.02 * (e - 25) - 3e-4 * (e - 25) ** 2


def fine_spectrum(n_e=240, n_q=240, temperature=300.0, noise=0.0, two_theta=(1.0, 140.0), with_bg=True, seed=0):
    """S(|Q|,E) on an ARCS-like fine grid (|Q| 0–12, E −10–48 meV), NaN outside kinematic coverage."""
    qe, ee = np.linspace(0, 12, n_q + 1), np.linspace(-10, 48, n_e + 1)
    q, e = edges_to_centres(qe), edges_to_centres(ee)
    s = signal(q[None, :], e[:, None]) + (background_of(e)[:, None] if with_bg else 0.0)
    s = s + np.random.default_rng(seed).normal(0, noise, s.shape) if noise else s
    mask = kinematic_mask(q, e, 50.0, two_theta)
    s = np.where(mask, s, np.nan)
    grid = Grid(q=q, energy=e, mask=mask, ei_mev=50.0, q_edges=qe, energy_edges=ee)
    return Spectrum(intensity=s, grid=grid, temperature=temperature, quantity="S",
                    errors=np.where(mask, 0.01, np.nan))


# -- rebinning ------------------------------------------------------------------------------------------
def _slow_rebin(y, err, ee, qe, nee, nqe):
    """Reference: explicit loops over output and input bins."""
    out = np.full((nee.size - 1, nqe.size - 1), np.nan)
    oerr = np.full_like(out, np.nan)
    for j in range(out.shape[0]):
        for l in range(out.shape[1]):
            num = cov = var = 0.0
            for i in range(y.shape[0]):
                oe = max(0.0, min(ee[i + 1], nee[j + 1]) - max(ee[i], nee[j]))
                for k in range(y.shape[1]):
                    oq = max(0.0, min(qe[k + 1], nqe[l + 1]) - max(qe[k], nqe[l]))
                    a = oe * oq
                    if a > 0 and np.isfinite(y[i, k]):
                        num += a * y[i, k]
                        cov += a
                        var += (a * err[i, k]) ** 2
            if cov > 0:
                out[j, l] = num / cov
                oerr[j, l] = np.sqrt(var) / cov
    return out, oerr


def test_rebin_matches_slow_reference_with_nan_and_errors():
    rng = np.random.default_rng(0)
    ee = np.sort(np.concatenate([[0.0, 10.0], rng.uniform(0, 10, 9)]))
    qe = np.sort(np.concatenate([[0.0, 5.0], rng.uniform(0, 5, 11)]))
    y = rng.uniform(0, 2, (ee.size - 1, qe.size - 1))
    y[0, :3] = np.nan
    err = rng.uniform(0.05, 0.2, y.shape)
    nee, nqe = np.linspace(-1, 11, 6), np.linspace(0.3, 4.7, 8)
    r = rebin2d(y, ee, qe, nee, nqe, errors=err)
    ref, ref_err = _slow_rebin(y, err, ee, qe, nee, nqe)
    np.testing.assert_allclose(r.intensity, ref, rtol=1e-10)
    np.testing.assert_allclose(r.errors, ref_err, rtol=1e-10)


def test_rebin_conserves_integral_and_linear_density():
    rng = np.random.default_rng(1)
    nee, nqe = np.linspace(0, 8, 7), np.linspace(1, 6, 9)
    ee = np.unique(np.concatenate([nee, rng.uniform(0, 8, 30)]))
    qe = np.unique(np.concatenate([nqe, rng.uniform(1, 6, 40)]))
    y = rng.uniform(0, 3, (ee.size - 1, qe.size - 1))
    r0 = rebin2d(y, ee, qe, np.linspace(-1, 9, 4), np.linspace(0, 7, 5))   # output wider than input
    assert np.nansum(r0.intensity * r0.coverage * 10 / 3 * 7 / 4) == pytest.approx(
        np.sum(y * np.diff(ee)[:, None] * np.diff(qe)[None, :]), rel=1e-12)
    r = rebin2d(y, ee, qe, nee, nqe)
    area = np.diff(ee)[:, None] * np.diff(qe)[None, :]
    narea = np.diff(nee)[:, None] * np.diff(nqe)[None, :]
    assert np.sum(r.intensity * narea) == pytest.approx(np.sum(y * area), rel=1e-12)
    np.testing.assert_allclose(r.coverage, 1.0)
    # a density linear in E and |Q| averages to its value at the output bin centre
    ec, qc = edges_to_centres(ee), edges_to_centres(qe)
    lin = 2.0 + 0.5 * ec[:, None] - 0.3 * qc[None, :]
    r2 = rebin2d(lin, ee, qe, nee, nqe)
    want = 2.0 + 0.5 * edges_to_centres(nee)[:, None] - 0.3 * edges_to_centres(nqe)[None, :]
    np.testing.assert_allclose(r2.intensity, want, rtol=1e-12)
    # errors of uncorrelated equal pixels: σ/√n for n equal sub-bins
    r3 = rebin2d(np.ones((4, 4)), np.arange(5.0), np.arange(5.0), [0.0, 4.0], [0.0, 4.0], errors=np.ones((4, 4)))
    assert r3.errors[0, 0] == pytest.approx(0.25)
    assert overlap_matrix([0, 1, 2], [0.5, 1.5]).tolist() == [[0.5, 0.5]]


def test_rebin_500x500_is_fast():
    s = fine_spectrum(500, 500)
    preprocess(s)
    t0 = time.perf_counter()
    preprocess(s)
    assert time.perf_counter() - t0 < 0.5


# -- detailed balance -----------------------------------------------------------------------------------
def test_detailed_balance_closed_form():
    g = standard_grid()
    rng = np.random.default_rng(2)
    x = np.where(g.mask, rng.uniform(1, 2, g.shape), np.nan)
    err = np.where(g.mask, 0.1, np.nan)
    s = Spectrum(intensity=x, grid=g, temperature=280.0, quantity="S", errors=err)
    c = to_chi(s)
    f = np.pi * (1 - np.exp(-g.energy / (8.617333262e-2 * 280.0)))
    np.testing.assert_allclose(c.intensity, x * f[:, None], rtol=1e-8)
    np.testing.assert_allclose(c.errors, err * f[:, None], rtol=1e-8)
    assert c.quantity == "chi''"
    assert pytest.approx(8.617333262e-2) == KB_MEV_PER_K
    assert detailed_balance_factor(np.array([-5.0]), 300.0)[0] < 0    # χ'' is odd in E
    assert to_chi(s, temperature=50.0).temperature == 50.0


# -- background -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,tol", [("polynomial", 0.01), ("percentile", 0.01), ("minimum", 0.015),
                                        ("low_region", 0.01)])
def test_background_estimators_recover_injected_background(method, tol):
    g = standard_grid()
    q, e = np.meshgrid(g.q, g.energy)
    rng = np.random.default_rng(4)
    sig = np.where(q > 4.5, np.exp(-0.5 * ((q - 7) / 1.2) ** 2), 0.0) * (1 + 0.3 * np.sin(e / 4))
    x = sig + background_of(e) + rng.normal(0, 0.002, g.shape)
    b = estimate_background(np.where(g.mask, x, np.nan), g.mask, g.energy, method)
    rows = g.mask.sum(1) >= 10
    np.testing.assert_allclose(b[rows], background_of(g.energy)[rows], atol=tol)
    y = subtract_background(x, b)
    assert np.nanmedian(np.abs(y - sig)[g.mask & rows[:, None]]) < tol


def test_no_background_and_unknown():
    g = standard_grid()
    assert np.all(estimate_background(np.ones(g.shape), g.mask, g.energy, "none") == 0)
    with pytest.raises(ValueError, match="unknown background estimator"):
        estimate_background(np.ones(g.shape), g.mask, g.energy, "magic")
    assert set(ESTIMATORS) >= {"polynomial", "percentile", "minimum", "low_region", "none"}


# -- the pipeline ---------------------------------------------------------------------------------------
def test_preprocess_recovers_the_model_spectrum():
    s = fine_spectrum()
    out, rep = preprocess_with_report(s)
    g = standard_grid()
    assert out.quantity == "chi''" and out.normalization == "mean" and out.temperature == 300.0
    assert out.grid.shape == g.shape and is_mean_normalized(out.intensity, out.grid.mask)
    assert rep.n_valid + rep.n_lost == g.n_valid and rep.n_lost < 20
    assert out.metadata["preprocess"]["n_lost"] == rep.n_lost and out.metadata["background_subtracted"]
    # the injected background (quadratic in E) is removed exactly: same result as without it
    clean_in = preprocess(fine_spectrum(with_bg=False))
    np.testing.assert_allclose(out.intensity, clean_in.intensity, atol=1e-3)
    # without background subtraction the pipeline reproduces χ'' binned directly on the grid
    plain = preprocess(fine_spectrum(with_bg=False), background="none")
    clean = signal(g.q[None, :], g.energy[:, None]) * detailed_balance_factor(g.energy, 300.0)[:, None]
    ref = Spectrum(intensity=np.where(plain.grid.mask, clean, np.nan), grid=plain.grid).normalized()
    assert nmse(ref.intensity, plain.intensity, plain.grid.mask) < 1e-3
    assert out.errors is not None and np.all(np.isfinite(out.errors[out.grid.mask]))
    # idempotent
    again = preprocess(out)
    assert again is out


def test_preprocess_on_target_axes_unnormalised_chi():
    g = standard_grid()
    clean = signal(g.q[None, :], g.energy[:, None])
    s = Spectrum(intensity=np.where(g.mask, clean, np.nan), grid=g, quantity="chi''")
    out = preprocess(s, background="none")
    np.testing.assert_allclose(out.intensity[g.mask], s.normalized().intensity[g.mask])
    assert out.grid is g


def test_preprocess_set_of_spectra_and_temperature_override():
    a, b = fine_spectrum(120, 120), fine_spectrum(120, 120, temperature=600.0)
    st = Spectrum.stack([a, b])
    out = preprocess(st, temperature=100.0)
    assert out.is_set and np.all(out.temperatures() == 100.0)
    one = preprocess(a, temperature=100.0)
    np.testing.assert_allclose(out.intensity[0][one.grid.mask], one.intensity[one.grid.mask], atol=1e-10)


def test_shared_real_spectra_pass_through_unchanged():
    files = sorted(SHARED.glob("al_*K.h5")) if SHARED.is_dir() else []
    if not files:
        pytest.skip("shared real data ../shared/data/al_arcs_ei50 not present")
    for p in files:
        s = read_spectrum(p)
        out, rep = preprocess_with_report(s)
        assert rep.passthrough and out is s
        np.testing.assert_array_equal(out.intensity, s.intensity)


# -- bad input ------------------------------------------------------------------------------------------
def test_missing_or_bad_temperature():
    s = fine_spectrum(60, 60, temperature=None)
    with pytest.raises(ValueError, match="temperature is unknown.*--temperature"):
        preprocess(s)
    with pytest.raises(ValueError, match="must be positive"):
        preprocess(s, temperature=-5.0)
    assert preprocess(s, temperature=300.0).temperature == 300.0


def test_no_overlap_all_nan_inf_and_shapes():
    g = Grid(q=np.linspace(0.5, 3, 10), energy=np.linspace(60, 90, 12), mask=np.ones((12, 10), bool), ei_mev=120.0)
    s = Spectrum(intensity=np.ones(g.shape), grid=g, temperature=300.0, quantity="S")
    with pytest.raises(ValueError, match="no overlap with the target grid"):
        preprocess(s, grid=standard_grid())   # the default target follows the input's Ei (specs.default_grid)
    g2 = Grid(q=np.linspace(0.05, 0.3, 6), energy=np.linspace(10, 20, 12), mask=np.ones((12, 6), bool))
    s2 = Spectrum(intensity=np.ones(g2.shape), grid=g2, temperature=300.0, quantity="S")
    with pytest.raises(ValueError, match="no overlap with the target grid"):
        preprocess(s2)       # inside the axes, outside the valid region
    s3 = fine_spectrum(60, 60)
    s3.intensity[:] = np.nan
    with pytest.raises(ValueError, match="all NaN"):
        preprocess(s3)
    s4 = fine_spectrum(60, 60)
    s4.intensity[30, 30] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        preprocess(s4)
    with pytest.raises(ValueError, match="negative"):
        Spectrum(intensity=np.ones(g.shape), grid=g, errors=-np.ones(g.shape))
    with pytest.raises(ValueError, match="does not match the grid"):
        Spectrum(intensity=np.ones((3, 3)), grid=g)
    with pytest.raises(ValueError, match="unknown background"):
        preprocess(fine_spectrum(60, 60), background="rolling-ball")
    with pytest.raises(ValueError, match="lost"):
        preprocess(fine_spectrum(60, 60, two_theta=(40.0, 140.0)), max_lost_fraction=0.05)


# -- CLI ------------------------------------------------------------------------------------------------
def _write_sofqw(path, temperature=300.0):
    s = fine_spectrum(200, 200, temperature=temperature)
    logs = {"Ei": 50.0}
    if temperature is not None:
        logs["SampleTemp"] = [temperature - 1, temperature + 1]
    write_mantid_nexus(path, s.intensity.T, s.grid.energy_edges, s.grid.q_edges, errors=s.errors.T, logs=logs)
    return s


def test_cli_mantid_round_trip(tmp_path, capsys):
    src, out = tmp_path / "run.nxs", tmp_path / "out.h5"
    s = _write_sofqw(src)
    assert cli.main(["preprocess", "--input", str(src), "--output", str(out)]) == 0
    r = read_spectrum(out)
    assert r.quantity == "chi''" and r.normalization == "mean" and r.temperature == pytest.approx(300.0)
    np.testing.assert_allclose(r.intensity, preprocess(s).intensity, atol=1e-6)
    assert cli.main(["preprocess", "--input", str(src), "--output", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["preprocess", "--input", str(src), "--output", str(out), "--overwrite",
                     "--temperature", "100", "--background", "percentile"]) == 0
    assert read_spectrum(out).temperature == 100.0


def test_cli_errors_and_nxspe_and_passthrough(tmp_path, capsys):
    src = tmp_path / "cold.nxs"
    _write_sofqw(src, temperature=None)
    assert cli.main(["preprocess", "--input", str(src), "--output", str(tmp_path / "x.h5")]) == 2
    assert "--temperature" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()
    junk = tmp_path / "junk.nxs"
    junk.write_bytes(b"\x00garbage" * 50)
    assert cli.main(["preprocess", "--input", str(junk), "--output", str(tmp_path / "y.h5")]) == 2
    assert "not an HDF5/NeXus file" in capsys.readouterr().err
    # NXSPE: detectors covering 2θ = 2–140°, Ei = 50 meV
    polar = np.arange(2.0, 140.0, 0.5)
    ee = np.linspace(-10, 48, 117)
    ec = edges_to_centres(ee)
    from phonon_ml_core.readers.powder import q_of
    qd = q_of(np.radians(polar)[:, None], ec[None, :], 50.0)
    data = signal(qd, ec[None, :]) + background_of(ec)[None, :]
    data[:, ec >= 50] = np.nan
    nx = tmp_path / "run.nxspe"
    write_nxspe(nx, data, ee, polar, np.full(polar.size, 0.5), error=0.01 * np.ones_like(data), ei_mev=50.0,
                temperature=300.0)
    out = tmp_path / "nx.h5"
    assert cli.main(["preprocess", "--input", str(nx), "--output", str(out)]) == 0
    r = read_spectrum(out)
    ref = preprocess(fine_spectrum(300, 300))
    m = r.grid.mask & ref.grid.mask
    assert m.sum() > 4000 and nmse(ref.intensity, r.intensity, m) < 0.02
    files = sorted(SHARED.glob("al_*K.h5")) if SHARED.is_dir() else []
    if files:
        out2 = tmp_path / "real.h5"
        assert cli.main(["preprocess", "--input", str(files[0]), "--output", str(out2)]) == 0
        np.testing.assert_array_equal(read_spectrum(out2).intensity, read_spectrum(files[0]).intensity)
