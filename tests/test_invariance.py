"""The temperature-invariance penalty of the physics stage (issue 16, item 5)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from phonon_ml_core.learn.configs import PipelineConfig, StageConfig
from phonon_ml_core.learn.consistency import TemperatureInvariance, consistency_loss, temperature_window_source
from phonon_ml_core.learn.pipeline import TrainingResult, physics_simulator, train_pipeline
from phonon_ml_core.learn.targets import Targets
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.specs import ALUMINIUM
from phonon_ml_core.specs.grid import standard_grid

REF = np.array(ALUMINIUM.reference_constants)
PROBE_TEMPERATURES = (60.0, 340.0, 620.0)
PHYSICS_STEPS = 8


@pytest.fixture(scope="module")
def labelled_set() -> Spectrum:
    """24 simulated spectra, constants 0.85–1.15 × reference, T 50–630 K, γ 0–0.05."""
    from phonon_ml_core.simulator.powder import PowderSimulator

    sim = PowderSimulator()
    rng = np.random.default_rng(11)
    n = 24
    fc = REF * rng.uniform(0.85, 1.15, (n, 5))
    fc[:, 4] = rng.uniform(-0.4, 0.4, n)
    temps = np.sort(rng.uniform(50, 630, n))
    gam = rng.uniform(0.0, 0.05, n)
    with torch.no_grad():
        x = sim(torch.as_tensor(fc), torch.as_tensor(temps), linewidth=torch.as_tensor(gam),
                allow_unstable=True).numpy()
    ok = np.isfinite(x[:, sim.grid.mask]).all(-1)
    return Spectrum(intensity=x[ok], grid=standard_grid(), temperature=temps[ok], normalization="mean",
                    force_constants=fc[ok], linewidth=gam[ok])


def _config(weight: float) -> PipelineConfig:
    return PipelineConfig(family="fcvae", latent_dim=4, seed=3,
                          pretrain=StageConfig(epochs=4, batch_size=8, val_fraction=0.0, patience=None),
                          regressor=StageConfig(epochs=20, batch_size=16, val_fraction=0.0, patience=None),
                          physics_steps=PHYSICS_STEPS, physics_batch=6, physics_lr=1e-3, temperature_invariance=weight)


@pytest.fixture(scope="module")
def trained(labelled_set: Spectrum) -> dict[float, TrainingResult]:
    return {w: train_pipeline(labelled_set, _config(w), progress=False) for w in (0.0, 10.0)}


def _temperature_response(res: TrainingResult, labelled_set: Spectrum) -> float:
    """Spread over temperature of the standardised predictions for fixed constants and γ (mean std over the
    probe temperatures, averaged over four constant sets and the outputs): the response to T alone."""
    sim = physics_simulator(labelled_set)
    labels = np.asarray(labelled_set.force_constants[:4], float)
    labels = np.concatenate([labels, np.full((4, 1), 0.02)], axis=1)
    inv = TemperatureInvariance(1.0, sim, res.autoencoder, res.targets, (50.0, 630.0))
    with torch.no_grad():
        preds = [res.regressor(inv.codes_at(torch.as_tensor(labels, dtype=torch.float32), t)) for t in
                 PROBE_TEMPERATURES]
    return float(torch.stack(preds).std(0).mean())


def test_invariance_reduces_the_response_to_temperature_alone(trained, labelled_set: Spectrum) -> None:
    off, on = (_temperature_response(trained[w], labelled_set) for w in (0.0, 10.0))
    assert on < 0.7 * off, (off, on)
    hist = [r for r in trained[10.0].history if r["stage"] == "physics"]
    assert len(hist) == PHYSICS_STEPS and all("train_invariance" in r and "train_nmse" in r for r in hist)
    assert not any("train_invariance" in r for r in trained[0.0].history)
    # the rest of the pipeline is untouched by the weight: same autoencoder
    for a, b in zip(trained[0.0].autoencoder.parameters(), trained[10.0].autoencoder.parameters()):
        assert torch.equal(a, b)


def test_config_round_trips_through_the_bundle(trained, labelled_set: Spectrum, tmp_path: Path,
                                                option_round_trip) -> None:
    option_round_trip(trained[10.0], labelled_set.grid, tmp_path, "temperature_invariance", 10.0)


def test_penalty_is_zero_for_a_regressor_that_ignores_its_input(labelled_set: Spectrum) -> None:
    """Analytic limit: a constant predictor has no response to temperature, so the penalty vanishes."""
    sim = physics_simulator(labelled_set)
    targets = Targets(ALUMINIUM.names, True)

    class Constant(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.b = torch.nn.Parameter(torch.zeros(targets.n_outputs))

        def forward(self, z, condition=None):
            return self.b.expand(z.shape[0], -1)

    from phonon_ml_core.learn.networks import build_autoencoder

    ae = build_autoencoder("fcvae", labelled_set.grid.mask, 4).eval()
    inv = TemperatureInvariance(2.0, sim, ae, targets, (50.0, 630.0))
    assert inv.ladder[0] == 50.0 and inv.ladder[-1] == 630.0
    x = torch.as_tensor(labelled_set.intensity[:4], dtype=torch.float32)
    labels = np.concatenate([labelled_set.force_constants[:4], labelled_set.linewidths()[:4, None]], axis=1)
    draw = temperature_window_source(torch.zeros(4, 4), x, labelled_set.temperatures()[:4], 4, 0, labels)
    batch = draw(0)
    assert len(batch) == 4
    mean, std = np.r_[REF, 0.03], np.ones(targets.n_outputs)
    out = consistency_loss(sim, mean, std, targets, True, inv)(Constant(), batch, torch.Generator().manual_seed(0))
    assert float(out["invariance"]) == 0.0
    assert float(out["loss"].detach()) == pytest.approx(float(out["nmse"]))
    with pytest.raises(ValueError, match="labels"):
        consistency_loss(sim, mean, std, targets, True, inv)(Constant(), batch[:3], None)
    with pytest.raises(ValueError, match="weight"):
        TemperatureInvariance(-1.0, sim, ae, targets, (50.0, 630.0))


def test_cli_flag_reaches_the_pipeline_config() -> None:
    from phonon_ml_core.cli.app import build_parser
    from phonon_ml_core.learn import setup

    p = build_parser()
    args = p.parse_args(["train", "--data", "a.h5", "--output", "b", "--temperature-invariance", "2.5"])
    assert args.temperature_invariance == 2.5
    assert p.parse_args(["train", "--data", "a.h5", "--output", "b"]).temperature_invariance == 0.0
    with pytest.raises(SystemExit):
        p.parse_args(["train", "--data", "a.h5", "--output", "b", "--temperature-invariance", "-1"])
    options = {k: v for k, v in vars(args).items() if k in setup.training_defaults()}  # as `train` hands them on
    assert setup.pipeline_config(options).temperature_invariance == 2.5
    assert setup.pipeline_config({}).temperature_invariance == 0.0
