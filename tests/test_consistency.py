"""Background-blind inputs, the predicted linewidth and the simulator-consistency (physics) stages."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from phonon_ml_core.preprocess.background import smooth_background_basis
from phonon_ml_core.learn.bundle import bundle_from_training, load_bundle
from phonon_ml_core.learn.consistency import consistency_nmse, outputs_to_physical
from phonon_ml_core.specs.grid import standard_grid
from phonon_ml_core.learn.networks import build_autoencoder
from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.learn.training import PipelineConfig, StageConfig, physics_simulator, train_pipeline
from phonon_ml_core.specs import ALUMINIUM

AL_REFERENCE_FC = np.array(ALUMINIUM.reference_constants)


@pytest.fixture(scope="module")
def nuisance_set() -> Spectrum:
    """30 simulated spectra with temperature (80–600 K) and linewidth (0–0.06) labels."""
    from phonon_ml_core.simulator.powder import PowderSimulator

    sim = PowderSimulator()
    rng = np.random.default_rng(4)
    n = 30
    fc = AL_REFERENCE_FC * rng.uniform(0.8, 1.2, (n, 5))
    fc[:, 4] = rng.uniform(-0.5, 0.5, n)
    temps = np.sort(rng.uniform(80, 600, n))
    gam = rng.uniform(0.0, 0.06, n)
    with torch.no_grad():
        x = sim(torch.as_tensor(fc), torch.as_tensor(temps), linewidth=torch.as_tensor(gam),
                allow_unstable=True).numpy()
    ok = np.isfinite(x[:, sim.grid.mask]).all(-1)
    return Spectrum(intensity=x[ok], grid=standard_grid(), temperature=temps[ok], normalization="mean",
                    force_constants=fc[ok], linewidth=gam[ok])


def _poly_background(grid, rng) -> np.ndarray:
    n_e, n_q = grid.shape
    e, q = np.meshgrid(np.linspace(-1, 1, n_e), np.linspace(0, 2, n_q), indexing="ij")
    c = rng.normal(size=10)
    return (c[0] + c[1] * e + c[2] * q + c[3] * e * e + c[4] * q * q + c[5] * e * q + c[6] * e ** 3
            + c[7] * q ** 3 + c[8] * e * e * q + c[9] * e * q * q)


def _scatter(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.full((v.shape[0], *mask.shape), np.nan)
    out[:, mask] = v
    return out


def test_basis_is_orthonormal_and_spans_the_cubic_polynomials() -> None:
    g = standard_grid()
    b = smooth_background_basis(g.mask, 3)
    assert b.shape == (g.n_valid, 10)
    np.testing.assert_allclose(b.T @ b, np.eye(10), atol=1e-10)
    bg = _poly_background(g, np.random.default_rng(0))[g.mask]
    np.testing.assert_allclose(b @ (b.T @ bg), bg, atol=1e-9 * np.abs(bg).max())
    with pytest.raises(ValueError, match="degree"):
        smooth_background_basis(g.mask, -1)


def test_code_is_blind_to_a_smooth_background_but_not_to_the_phonons(nuisance_set: Spectrum) -> None:
    g = nuisance_set.grid
    torch.manual_seed(0)
    ae = build_autoencoder("fcvae", g.mask, latent_dim=6, background_degree=3).eval()
    raw = build_autoencoder("fcvae", g.mask, latent_dim=6, background_degree=None).eval()
    x = np.asarray(nuisance_set.intensity[:4], float)
    bg = np.stack([0.3 * _poly_background(g, np.random.default_rng(k)) / 5 for k in range(4)])
    xb = mean_normalize(np.where(g.mask, 2.5 * x + bg, np.nan), g.mask)   # background and another scale
    with torch.no_grad():
        z = ae.encode(torch.as_tensor(x, dtype=torch.float32))[0]
        zb = ae.encode(torch.as_tensor(xb, dtype=torch.float32))[0]
        zr, zrb = (raw.encode(torch.as_tensor(v, dtype=torch.float32))[0] for v in (x, xb))
        other = ae.encode(torch.as_tensor(x[::-1].copy(), dtype=torch.float32))[0]
        ms = ae.model_space(torch.as_tensor(xb, dtype=torch.float32)).numpy()
    assert torch.allclose(z, zb, atol=2e-4)
    assert (zr - zrb).abs().max() > 10 * (z - zb).abs().max()       # without the projection it is not blind
    assert (other - z).abs().max() > 1e-2                           # other phonons, other codes
    # independent reference: least-squares cubic in physical E (meV) and |Q| (1/Å), subtracted, renormalised
    e, q = np.meshgrid(g.energy, g.q, indexing="ij")
    a = np.stack([e[g.mask] ** i * q[g.mask] ** (d - i) for d in range(4) for i in range(d + 1)], axis=1)
    v = xb[:, g.mask]
    resid = v - (a @ np.linalg.lstsq(a, v.T, rcond=None)[0]).T
    ref = mean_normalize(_scatter(resid, g.mask), g.mask)
    np.testing.assert_allclose(ms[:, g.mask], ref[:, g.mask], atol=2e-5)
    # missing valid pixels stay missing: they are neither scored in the loss nor invented by the projection
    holes = x[:1].copy()
    rows, cols = np.nonzero(g.mask)
    holes[0, rows[:20], cols[:20]] = np.nan
    with torch.no_grad():
        mh = ae.model_space(torch.as_tensor(holes, dtype=torch.float32)).numpy()
        assert torch.isfinite(ae.loss(torch.as_tensor(holes, dtype=torch.float32))["loss"])
    assert np.isnan(mh[0, rows[:20], cols[:20]]).all() and np.isfinite(mh[0, rows[20:], cols[20:]]).all()


def test_linewidth_labels_round_trip(nuisance_set: Spectrum, tmp_path: Path) -> None:
    nuisance_set.to_hdf5(tmp_path / "set.h5")
    back = Spectrum.from_hdf5(tmp_path / "set.h5")
    np.testing.assert_allclose(back.linewidths(), nuisance_set.linewidths())
    assert back[3].linewidth == pytest.approx(nuisance_set.linewidths()[3])
    with pytest.raises(ValueError, match="linewidth"):
        Spectrum(intensity=nuisance_set.intensity[:2], grid=nuisance_set.grid, linewidth=[0.01, -0.02])


def _config(physics_finetune_steps: int) -> PipelineConfig:
    return PipelineConfig(family="fcvae", latent_dim=4, seed=2,
                          pretrain=StageConfig(epochs=3, batch_size=8, val_fraction=0.0, patience=None),
                          finetune_epochs=2, extended_epochs=0,
                          regressor=StageConfig(epochs=30, batch_size=16, val_fraction=0.0, patience=None),
                          physics_steps=2, physics_batch=8, physics_finetune_steps=physics_finetune_steps,
                          physics_lr=1e-3, physics_finetune_lr=3e-3)


@pytest.fixture(scope="module")
def measured(nuisance_set: Spectrum) -> Spectrum:
    """Three of the spectra with noise and a smooth background: 'measured' data with known temperatures."""
    g = nuisance_set.grid
    idx = [2, 12, 25]
    rng = np.random.default_rng(9)
    x = np.asarray(nuisance_set.intensity[idx], float)
    noisy = x + 0.02 * rng.normal(size=x.shape) + 0.05 * _poly_background(g, rng) / 5
    return Spectrum(intensity=mean_normalize(np.where(g.mask, noisy, np.nan), g.mask), grid=g,
                    temperature=nuisance_set.temperatures()[idx], normalization="mean")


@pytest.fixture(scope="module")
def base_result(nuisance_set: Spectrum, measured: Spectrum):
    """The pipeline without the physics fine-tuning stage."""
    return train_pipeline(nuisance_set, _config(0), measured=measured, progress=False)


def _measured_nmse(ae, reg, target_mean, target_std, targets, sim, measured: Spectrum) -> float:
    with torch.no_grad():
        mu = ae.encode(torch.as_tensor(measured.intensity, dtype=torch.float32))[0]
        fc, gam = outputs_to_physical(reg(mu), target_mean, target_std, targets)
        per = consistency_nmse(sim, torch.as_tensor(measured.intensity, dtype=torch.float32),
                               torch.as_tensor(measured.temperatures()), fc, gam)
    return float(per.mean())


def test_physics_finetune_lowers_the_simulator_nmse_of_the_measured_spectra(nuisance_set: Spectrum, measured,
                                                                            base_result, tmp_path: Path) -> None:
    g = nuisance_set.grid
    sim = physics_simulator(nuisance_set)

    def nmse_after(steps: int):
        res = base_result if steps == 0 else train_pipeline(nuisance_set, _config(steps), measured=measured,
                                                            progress=False)
        assert res.regressor.n_outputs == 6                         # the 6th output is γ
        return _measured_nmse(res.autoencoder, res.regressor, res.target_mean, res.target_std, res.targets, sim,
                              measured), res

    before, _ = nmse_after(0)
    after, res = nmse_after(12)
    assert after < 0.9 * before, (before, after)
    stages = [r["stage"] for r in res.history]
    assert stages.count("physics") == 2 and stages.count("physics-finetune") == 12
    bundle = bundle_from_training(res, g)
    bundle.save(tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    assert loaded.autoencoder.background_degree == 3 and loaded.metadata["targets"][-1] == "linewidth"
    p = loaded.predict(measured, n_samples=50, seed=0)
    assert p["mean"].shape == (3, 5) and p["linewidth"].shape == (3,) and np.all(p["linewidth"] >= 0)
    np.testing.assert_allclose(p["mean"], bundle.predict(measured, n_samples=50, seed=0)["mean"], rtol=1e-6)


def test_physics_finetune_is_skipped_without_temperatures(nuisance_set: Spectrum, caplog) -> None:
    measured = Spectrum(intensity=nuisance_set.intensity[:2], grid=nuisance_set.grid, normalization="mean")
    with caplog.at_level("WARNING"):
        res = train_pipeline(nuisance_set, _config(3), measured=measured, progress=False)
    assert "physics-finetune stage skipped" in caplog.text
    assert [r["stage"] for r in res.history].count("physics-finetune") == 0


def test_finetune_command_adapts_a_bundle_without_simulated_data(nuisance_set: Spectrum, measured: Spectrum,
                                                                 base_result, tmp_path: Path) -> None:
    from phonon_ml_core.learn.adaptation import finetune_bundle
    from phonon_ml_core.cli import main

    bundle = bundle_from_training(base_result, nuisance_set.grid)
    sim = physics_simulator(nuisance_set)
    before = _measured_nmse(bundle.autoencoder, bundle.regressor, bundle.target_mean, bundle.target_std, bundle.targets,
                            sim, measured)
    adapted = finetune_bundle(bundle, measured, steps=12, lr=3e-3, progress=False)
    after = _measured_nmse(adapted.autoencoder, adapted.regressor, adapted.target_mean, adapted.target_std,
                           adapted.targets, sim, measured)
    assert after < 0.9 * before, (before, after)
    assert adapted.metadata["adaptation"][0]["steps"] == 12
    last = f"net.{len(bundle.regressor.net) - 1}."                  # by default only the output layer moves
    for (k, v), (_, w) in zip(bundle.regressor.state_dict().items(), adapted.regressor.state_dict().items()):
        assert torch.equal(v, w) != k.startswith(last), k
    # the original bundle is untouched
    assert _measured_nmse(bundle.autoencoder, bundle.regressor, bundle.target_mean, bundle.target_std, bundle.targets,
                          sim, measured) == pytest.approx(before)
    assert adapted.autoencoder is not bundle.autoencoder                  # no state shared with the input
    # the CLI writes a loadable bundle that records its adaptation (a stale checkpoint folder is no obstacle)
    bundle.save(tmp_path / "base")
    measured.to_hdf5(tmp_path / "meas.h5")
    (tmp_path / "adapted.checkpoints").mkdir()
    assert main(["finetune", "--model", str(tmp_path / "base"), "--input", str(tmp_path / "meas.h5"),
                 "--output", str(tmp_path / "adapted"), "--steps", "2", "--no-progress"]) == 0
    loaded = load_bundle(tmp_path / "adapted")
    assert loaded.metadata["adaptation"][-1]["n_spectra"] == 3 and not (tmp_path / "adapted.checkpoints").exists()
    assert main(["finetune", "--model", str(tmp_path / "base"), "--input", str(tmp_path / "meas.h5"),
                 "--output", str(tmp_path / "adapted"), "--steps", "2"]) == 2          # exists: refused
    no_t = Spectrum(intensity=measured.intensity, grid=measured.grid, normalization="mean")
    with pytest.raises(ValueError, match="temperature"):
        finetune_bundle(bundle, no_t, steps=2, progress=False)


def test_bias_adaptation_shifts_every_prediction_by_one_offset(nuisance_set: Spectrum, measured: Spectrum,
                                                                base_result, tmp_path: Path) -> None:
    """layers="bias" trains the output layer's bias only: the standardised outputs of every spectrum move by the
    same vector, so the differences between spectra (a trend in temperature) are kept exactly, and the misfit of
    the adaptation spectra still falls."""
    from phonon_ml_core.learn.adaptation import finetune_bundle
    from phonon_ml_core.cli import main

    bundle = bundle_from_training(base_result, nuisance_set.grid)
    sim = physics_simulator(nuisance_set)
    before = _measured_nmse(bundle.autoencoder, bundle.regressor, bundle.target_mean, bundle.target_std, bundle.targets,
                            sim, measured)
    adapted = finetune_bundle(bundle, measured, steps=12, lr=3e-3, trainable="bias", progress=False)
    after = _measured_nmse(adapted.autoencoder, adapted.regressor, adapted.target_mean, adapted.target_std,
                           adapted.targets, sim, measured)
    assert after < before, (before, after)
    bias = f"net.{len(bundle.regressor.net) - 1}.bias"
    for (k, v), (_, w) in zip(bundle.regressor.state_dict().items(), adapted.regressor.state_dict().items()):
        assert torch.equal(v, w) != (k == bias), k
    others = Spectrum(intensity=nuisance_set.intensity[:6], grid=nuisance_set.grid, normalization="mean")
    with torch.no_grad():
        mu = bundle.autoencoder.encode(torch.as_tensor(others.intensity, dtype=torch.float32))[0]
        shift = adapted.regressor(mu) - bundle.regressor(mu)
    assert float(shift.abs().max()) > 1e-3                      # it moved
    torch.testing.assert_close(shift, shift[:1].expand_as(shift), atol=1e-5, rtol=0)   # by one offset for all
    bundle.save(tmp_path / "base")
    measured.to_hdf5(tmp_path / "meas.h5")
    assert main(["finetune", "--model", str(tmp_path / "base"), "--input", str(tmp_path / "meas.h5"),
                 "--output", str(tmp_path / "adapted"), "--steps", "2", "--layers", "bias", "--no-progress"]) == 0
    assert load_bundle(tmp_path / "adapted").metadata["adaptation"][-1]["layers"] == "bias"
    with pytest.raises(ValueError, match="layers must be one of"):
        finetune_bundle(bundle, measured, steps=1, trainable="first", progress=False)


def test_temperature_conditioned_regressor(nuisance_set: Spectrum, measured: Spectrum, tmp_path: Path) -> None:
    """``regressor_temperature``: T (K) is a regressor input through training, physics stages, the bundle round
    trip and prediction; a prediction without a temperature is a clear error, and T changes the prediction."""
    from dataclasses import replace

    from phonon_ml_core.learn.networks import ForceConstantRegressor

    res = train_pipeline(nuisance_set, replace(_config(3), regressor_temperature=True), measured=measured,
                         progress=False)
    assert res.regressor.conditions == ("temperature",)
    assert res.regressor.net[0].in_features == res.autoencoder.latent_dim + 1
    assert np.isfinite(res.metrics["train"]["r2"]["1XX"])
    bundle = bundle_from_training(res, nuisance_set.grid)
    bundle.save(tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    assert loaded.requires_temperature and not ForceConstantRegressor(4).conditions
    p = loaded.predict(measured, n_samples=20, seed=0)
    np.testing.assert_allclose(p["mean"], bundle.predict(measured, n_samples=20, seed=0)["mean"], rtol=1e-6)
    same = loaded.predict(measured, n_samples=20, seed=0, temperature=measured.temperatures())
    np.testing.assert_allclose(same["mean"], p["mean"], rtol=1e-6)
    hot = loaded.predict(measured, n_samples=20, seed=0, temperature=900.0)
    assert not np.allclose(hot["mean"], p["mean"], rtol=1e-4)
    no_t = Spectrum(intensity=measured.intensity, grid=measured.grid, normalization="mean")
    with pytest.raises(ValueError, match="temperature"):
        loaded.predict(no_t, n_samples=5)
    with pytest.raises(ValueError, match="2 temperatures for 3 spectra"):
        loaded.predict(measured, n_samples=5, temperature=[300.0, 400.0])
    with pytest.raises(ValueError, match="unknown regressor condition"):
        ForceConstantRegressor(4, conditions=("pressure",))
    # the CLI: a spectrum without a temperature is a clear error (exit 2), --temperature supplies it
    from phonon_ml_core.cli import main

    no_t[0].to_hdf5(tmp_path / "noT.h5")
    assert main(["predict", "--model", str(tmp_path / "b"), "--input", str(tmp_path / "noT.h5"),
                 "--output", str(tmp_path / "r.json"), "--samples", "5"]) == 2
    assert not (tmp_path / "r.json").exists()
    assert main(["predict", "--model", str(tmp_path / "b"), "--input", str(tmp_path / "noT.h5"),
                 "--output", str(tmp_path / "r.json"), "--samples", "5", "--temperature", "300"]) == 0


@pytest.fixture(scope="module")
def richer_set(nuisance_set: Spectrum) -> Spectrum:
    """Six spectra of aluminium with three shells (third shell ±0.5 N/m): model error for a two-shell bundle."""
    from phonon_ml_core.simulator.factory import get_simulator

    al3 = ALUMINIUM.with_shells(3)
    sim = get_simulator(al3, grid=nuisance_set.grid)
    rng = np.random.default_rng(11)
    fc = np.zeros((6, al3.n_constants))
    fc[:, :5] = AL_REFERENCE_FC * rng.uniform(0.9, 1.1, (6, 5))
    fc[:, 5:] = rng.uniform(-0.5, 0.5, (6, al3.n_constants - 5))
    temps = np.linspace(100.0, 600.0, 6)
    with torch.no_grad():
        x = sim(torch.as_tensor(fc), torch.as_tensor(temps), linewidth=0.02).numpy()
    return Spectrum(intensity=x, grid=nuisance_set.grid, temperature=temps, normalization="mean",
                    force_constants=fc, linewidth=np.full(6, 0.02), material=al3)


def test_model_error_adaptation_learns_from_spectra_of_a_richer_model(nuisance_set: Spectrum, measured: Spectrum,
                                                                     richer_set: Spectrum, base_result,
                                                                     tmp_path: Path) -> None:
    """Spectra simulated with more shells are unlabelled data for a two-shell bundle: accepted (labels dropped),
    the adaptation lowers their two-shell misfit and records the richer model; other crystals stay refused."""
    from dataclasses import replace

    from phonon_ml_core.learn.adaptation import adaptation_inputs, finetune_bundle
    from phonon_ml_core.learn.matching import is_richer_model
    from phonon_ml_core.specs import get_material

    assert is_richer_model(ALUMINIUM, ALUMINIUM.with_shells(4))
    assert not is_richer_model(ALUMINIUM, ALUMINIUM) and not is_richer_model(ALUMINIUM, None)
    assert not is_richer_model(ALUMINIUM, get_material("Cu", n_shells=4))
    bundle = bundle_from_training(base_result, nuisance_set.grid)
    sim = physics_simulator(nuisance_set)
    unlabelled = replace(richer_set, material=None, force_constants=None)
    before = _measured_nmse(bundle.autoencoder, bundle.regressor, bundle.target_mean, bundle.target_std,
                            bundle.targets, sim, unlabelled)
    adapted = finetune_bundle(bundle, richer_set, steps=12, lr=3e-3, progress=False)
    after = _measured_nmse(adapted.autoencoder, adapted.regressor, adapted.target_mean, adapted.target_std,
                           adapted.targets, sim, unlabelled)
    assert after < 0.9 * before, (before, after)
    rec = adapted.metadata["adaptation"][-1]
    assert rec["model_error_shells"] == 3 and rec["n_spectra"] == 6
    # measured spectra and a richer set together: one set of 3 + 6 spectra
    both, shells = adaptation_inputs(bundle, [measured, richer_set])
    assert both.n_spectra == 9 and shells == 3 and both.material is None and both.force_constants is None
    assert adaptation_inputs(bundle, measured)[1] is None
    # the command line takes the richer set's file beside a measured one
    from phonon_ml_core.cli import main

    bundle.save(tmp_path / "base")
    richer_set.to_hdf5(tmp_path / "al3.h5")
    measured.to_hdf5(tmp_path / "meas.h5")
    assert main(["finetune", "--model", str(tmp_path / "base"), "--input", str(tmp_path / "al3.h5"),
                 str(tmp_path / "meas.h5"), "--output", str(tmp_path / "me"), "--steps", "2", "--layers", "all",
                 "--no-progress"]) == 0
    rec = load_bundle(tmp_path / "me").metadata["adaptation"][-1]
    assert rec["model_error_shells"] == 3 and rec["n_spectra"] == 9 and rec["layers"] == "all"
    # simulated with fewer shells, or another crystal, is not a richer model of the bundle's: refused with the
    # reason; a measurement (no labels, no simulator record) names only its crystal and is taken
    fewer = replace(richer_set, material=ALUMINIUM.with_shells(1), force_constants=None)
    with pytest.raises(ValueError, match="n_shells 2 ≠ 1"):
        finetune_bundle(bundle, replace(fewer, metadata={"simulated": True}), steps=1, progress=False)
    assert finetune_bundle(bundle, fewer, steps=1, progress=False).metadata["adaptation"][-1]["n_spectra"] == 6
    with pytest.raises(ValueError, match="element 'Al' ≠ 'Cu'"):
        finetune_bundle(bundle, replace(richer_set, material=get_material("Cu", n_shells=3)), steps=1,
                        progress=False)
