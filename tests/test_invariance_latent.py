"""The feature extractor's latent temperature-invariance penalty in pretraining (issue 16, item 5)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from phonon_ml_core.learn.bundle import bundle_from_training, load_bundle
from phonon_ml_core.learn.configs import PipelineConfig, StageConfig
from phonon_ml_core.learn.consistency import second_temperature_spectra
from phonon_ml_core.learn.losses import autoencoder_loss, latent_invariance, latent_invariance_loss
from phonon_ml_core.learn.pipeline import TrainingResult, physics_simulator, train_pipeline
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.specs import ALUMINIUM
from phonon_ml_core.specs.grid import standard_grid

REF = np.array(ALUMINIUM.reference_constants)
PROBE_TEMPERATURES = (60.0, 340.0, 620.0)
WEIGHT = 1.0


@pytest.fixture(scope="module")
def labelled_set() -> Spectrum:
    """32 simulated spectra, constants 0.8–1.2 × reference, T 50–630 K, γ 0–0.05."""
    from phonon_ml_core.simulator.powder import PowderSimulator

    sim = PowderSimulator()
    rng = np.random.default_rng(5)
    n = 32
    fc = REF * rng.uniform(0.8, 1.2, (n, 5))
    fc[:, 4] = rng.uniform(-0.4, 0.4, n)
    temps = rng.uniform(50, 630, n)
    gam = rng.uniform(0.0, 0.05, n)
    with torch.no_grad():
        x = sim(torch.as_tensor(fc), torch.as_tensor(temps), linewidth=torch.as_tensor(gam),
                allow_unstable=True).numpy()
    ok = np.isfinite(x[:, sim.grid.mask]).all(-1)
    return Spectrum(intensity=x[ok], grid=standard_grid(), temperature=temps[ok], normalization="mean",
                    force_constants=fc[ok], linewidth=gam[ok])


def _config(weight: float, **kw) -> PipelineConfig:
    return PipelineConfig(family="fcvae", latent_dim=4, seed=2,
                          pretrain=StageConfig(epochs=12, batch_size=8, val_fraction=0.0, patience=None),
                          regressor=StageConfig(epochs=2, batch_size=16, val_fraction=0.0, patience=None),
                          latent_temperature_invariance=weight, **kw)


@pytest.fixture(scope="module")
def trained(labelled_set: Spectrum) -> dict[float, TrainingResult]:
    return {w: train_pipeline(labelled_set, _config(w), progress=False) for w in (0.0, WEIGHT)}


def _code_response(res: TrainingResult, labelled_set: Spectrum) -> float:
    """μ's spread over the probe temperatures at fixed constants and γ, relative to its spread over constants:
    the code's response to temperature alone (mean over six constant sets and the latent dimensions)."""
    sim = physics_simulator(labelled_set)
    fc = np.asarray(labelled_set.force_constants[:6], float)
    gam = np.full(6, 0.02)
    with torch.no_grad():
        mus = torch.stack([res.autoencoder.encode(second_temperature_spectra(sim, fc, gam, (t, t), 0))[0]
                           for t in PROBE_TEMPERATURES])                  # (n_T, 6, latent)
    return float((mus.std(0).mean(0) / mus.mean(0).std(0).clamp_min(1e-12)).mean())


def test_penalty_reduces_the_codes_response_to_temperature_alone(trained, labelled_set: Spectrum) -> None:
    off, on = (_code_response(trained[w], labelled_set) for w in (0.0, WEIGHT))
    assert on < 0.7 * off, (off, on)
    pre = [r for r in trained[WEIGHT].history if r["stage"] == "pretrain"]
    assert len(pre) == 12 and all("train_latent_invariance" in r for r in pre)
    assert pre[-1]["train_latent_invariance"] < pre[0]["train_latent_invariance"]
    assert not any("train_latent_invariance" in r for r in trained[0.0].history)


def test_config_round_trips_through_the_bundle(trained, labelled_set: Spectrum, tmp_path: Path) -> None:
    res = trained[WEIGHT]
    bundle_from_training(res, labelled_set.grid).save(tmp_path / "b")
    cfg = PipelineConfig.from_dict(load_bundle(tmp_path / "b").metadata["training"]["config"])
    assert cfg.latent_temperature_invariance == WEIGHT and cfg == res.config
    old = res.config.to_dict()
    del old["latent_temperature_invariance"]              # configs written before the option: off
    assert PipelineConfig.from_dict(old).latent_temperature_invariance == 0.0
    with pytest.raises(ValueError, match="latent_temperature_invariance"):
        PipelineConfig(latent_temperature_invariance=-1.0)


def test_refused_with_on_the_fly_pretraining(labelled_set: Spectrum) -> None:
    with pytest.raises(ValueError, match="on_the_fly"):
        train_pipeline(labelled_set, _config(WEIGHT, on_the_fly=8), progress=False)


def test_pairs_are_the_simulator_at_the_second_temperature(labelled_set: Spectrum) -> None:
    """Exact reference: with a one-temperature range the pairs are the simulator's spectra at that temperature,
    mean-normalised on the mask (mean 0, span 1), NaN outside it."""
    sim = physics_simulator(labelled_set)
    fc = np.asarray(labelled_set.force_constants[:3], float)
    gam = labelled_set.linewidths()[:3]
    x2 = second_temperature_spectra(sim, fc, gam, (300.0, 300.0), 0)
    with torch.no_grad():
        ref = sim(torch.as_tensor(fc, dtype=sim.dtype), torch.full((3,), 300.0, dtype=sim.dtype),
                  linewidth=torch.as_tensor(gam, dtype=sim.dtype))
    m = labelled_set.grid.mask
    v = x2[:, torch.as_tensor(m)]
    assert torch.isnan(x2[:, torch.as_tensor(~m)]).all()
    assert torch.allclose(v.mean(-1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(v.amax(-1) - v.amin(-1), torch.ones(3), atol=1e-5)
    r = ref[:, torch.as_tensor(m)].float()
    r = (r - r.mean(-1, keepdim=True)) / (r.amax(-1, keepdim=True) - r.amin(-1, keepdim=True))
    assert torch.allclose(v, r, atol=1e-5)
    # a wide range: temperatures from the ladder, so the spectra differ from the one-temperature ones
    assert not torch.allclose(second_temperature_spectra(sim, fc, gam, (50.0, 630.0), 1), x2, atol=1e-3)


def test_penalty_limits() -> None:
    """Analytic limits: identical pairs give 0; the penalty does not change when the code is rescaled (it cannot
    be met by shrinking the code); pairs with a NaN partner are left out; validation batches get the base loss."""
    class Linear(torch.nn.Module):
        def __init__(self, scale: float) -> None:
            super().__init__()
            self.scale = scale

        def encode(self, x):
            return self.scale * x.reshape(x.shape[0], -1)[:, :3], None

    gen = torch.Generator().manual_seed(0)
    x, x2 = torch.randn(16, 2, 2, generator=gen), torch.randn(16, 2, 2, generator=gen)
    assert float(latent_invariance(Linear(1.0), x, x)) == 0.0
    a, b = float(latent_invariance(Linear(1.0), x, x2)), float(latent_invariance(Linear(50.0), x, x2))
    assert a == pytest.approx(b, rel=1e-5) and a == pytest.approx(2.0, abs=0.8)  # unrelated pairs: ≈ 2
    x2n = x2.clone()
    x2n[:4] = float("nan")
    assert float(latent_invariance(Linear(1.0), x[4:], x2[4:])) == pytest.approx(
        float(latent_invariance(Linear(1.0), x, x2n)))

    def base(model, batch, gen):
        return {"loss": batch[0].sum() * 0 + 1.0}
    fn = latent_invariance_loss(base, 3.0)
    assert float(fn(Linear(1.0), (x,), None)["loss"]) == 1.0
    out = fn(Linear(1.0), (x, x2), gen)
    assert float(out["loss"]) == pytest.approx(1.0 + 3.0 * a, rel=1e-5) and "latent_invariance" in out
    assert latent_invariance_loss(autoencoder_loss, 0.0)  # weight 0: the base loss
    with pytest.raises(ValueError, match="≥ 0"):
        latent_invariance_loss(base, -1.0)
