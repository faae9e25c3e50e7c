"""Training stages, checkpoints/resume, the regressor, bundles and the CLI on a tiny simulated set."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from phonon_ml_core.learn.bundle import load_bundle
from phonon_ml_core.specs.grid import Grid, standard_grid
from phonon_ml_core.learn.networks import build_autoencoder
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.specs import ALUMINIUM
from phonon_ml_core.learn.training import (PipelineConfig, StageConfig, autoencoder_loss, fit, load_checkpoint,
                                     train_pipeline)


@pytest.fixture(scope="session")
def tiny_set() -> Spectrum:
    """About 60 simulated, labelled spectra (unstable draws dropped); one simulator instance."""
    from phonon_ml_core.simulator.powder import PowderSimulator

    sim = PowderSimulator()
    rng = np.random.default_rng(0)
    AL_REFERENCE_FC = np.array(ALUMINIUM.reference_constants)
    fc = AL_REFERENCE_FC * rng.uniform(0.5, 1.5, (64, 5))
    fc[:, 2] = AL_REFERENCE_FC[2] * rng.uniform(0.5, 1.0, 64)  # keep 1XX + 1ZZ > 0 mostly
    fc[:, 4] = rng.uniform(-1.0, 1.0, 64)
    with torch.no_grad():
        x = sim(torch.as_tensor(fc, dtype=torch.float32), 300.0, allow_unstable=True).numpy()
    grid = standard_grid()
    ok = np.isfinite(x[:, grid.mask]).all(-1)
    return Spectrum(intensity=x[ok], grid=grid, temperature=300.0, normalization="mean", force_constants=fc[ok])


def _tensor(s: Spectrum, n: int | None = None) -> torch.Tensor:
    return torch.as_tensor(s.intensity[:n], dtype=torch.float32)


def _quick(**kw) -> StageConfig:
    return StageConfig(**{"epochs": 4, "batch_size": 16, "val_fraction": 0.0, "patience": None,
                          "checkpoint_every": 1, **kw})


def test_tiny_training_decreases_loss(tiny_set: Spectrum) -> None:
    torch.manual_seed(0)
    model = build_autoencoder("fcvae", tiny_set.grid.mask, latent_dim=8)
    x = _tensor(tiny_set, 32)
    res = fit(model, autoencoder_loss, (x,), None, _quick(epochs=4, batch_size=32), 1e-3, stage="pretrain", seed=0,
              progress=False)
    losses = [r["train_loss"] for r in res.history]
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0]


def test_resume_gives_same_weights(tiny_set: Spectrum, tmp_path: Path) -> None:
    x = _tensor(tiny_set, 32)
    cfg = _quick(epochs=4)

    def run(ck: Path, resume: bool = False, stop_at: int | None = None) -> torch.nn.Module:
        torch.manual_seed(3)
        model = build_autoencoder("fcvae", tiny_set.grid.mask, latent_dim=4)

        def on_epoch(rec: dict) -> None:
            if stop_at is not None and rec["epoch"] == stop_at:
                raise KeyboardInterrupt
        fit(model, autoencoder_loss, (x,), None, cfg, 1e-3, stage="pretrain", seed=5, checkpoint=ck,
            resume=resume, on_epoch=on_epoch, progress=False)
        return model

    full = run(tmp_path / "a.pt")
    again = run(tmp_path / "c.pt")  # same seed → same weights
    assert all(torch.equal(v, w) for v, w in zip(full.state_dict().values(), again.state_dict().values()))
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b.pt", stop_at=2)
    assert load_checkpoint(tmp_path / "b.pt")["epoch"] == 2
    resumed = run(tmp_path / "b.pt", resume=True)
    for (k, v), (_, w) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(v, w), k
    # a corrupted checkpoint is refused clearly
    (tmp_path / "b.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupted"):
        run(tmp_path / "b.pt", resume=True)


@pytest.fixture(scope="module")
def trained(tiny_set: Spectrum, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("work")
    cfg = PipelineConfig(family="fcvae", latent_dim=6, seed=1,
                         pretrain=StageConfig(epochs=6, batch_size=16, val_fraction=0.15, patience=None),
                         regressor=StageConfig(epochs=120, batch_size=64, lr=2e-3, val_fraction=0.15,
                                               patience=None, checkpoint_every=50),
                         regressor_codes="mean", background_degree=None)  # raw spectra: 60 spectra, 6 epochs
    result = train_pipeline(tiny_set, cfg, workdir=work, progress=False)
    return result, work


def test_pipeline_outputs_and_regressor_learns(trained) -> None:
    result, work = trained
    assert (work / "loss_curve.png").stat().st_size > 1000
    lines = (work / "training_log.jsonl").read_text().splitlines()
    assert len(lines) == 6 + 120 and json.loads(lines[0])["stage"] == "pretrain"
    r2 = result.metrics["train"]["r2"]
    assert r2["1XX"] > 0.6 and r2["1XY"] > 0.3, r2
    assert np.mean(list(r2.values())) > 0.2, r2


def test_bundle_round_trip_and_refusals(trained, tiny_set: Spectrum, tmp_path: Path) -> None:
    from phonon_ml_core.learn.bundle import bundle_from_training

    result, _ = trained
    bundle = bundle_from_training(result, tiny_set.grid, data={"n": tiny_set.n_spectra})
    path = bundle.save(tmp_path / "model")
    with pytest.raises(FileExistsError):
        bundle.save(path)
    loaded = load_bundle(path, grid=standard_grid(), family="fcvae")
    sub = tiny_set.intensity[:3]
    a, b = bundle.predict(sub, n_samples=500, seed=2), loaded.predict(sub, n_samples=500, seed=2)
    for k in ("mean_code_prediction", "mean", "std"):
        assert a[k].shape == (3, 5)
        np.testing.assert_array_equal(a[k], b[k])
    assert np.all(a["std"] > 0)
    one = loaded.predict(tiny_set[0], n_samples=200)
    assert one["mean"].shape == (5,)
    mu, lv = loaded.encode(tiny_set)
    assert mu.shape == (tiny_set.n_spectra, 6) and lv.shape == mu.shape
    # half-precision storage: half the weight bytes, float32 computation, predictions within the weights'
    # rounding (≈ 1e-3 relative), buffers exact
    half = bundle.save(tmp_path / "model16", weights_dtype="float16")
    loaded16 = load_bundle(half)
    assert loaded16.metadata["weights_dtype"] == "float16"
    assert (half / "autoencoder.safetensors").stat().st_size < 0.55 * (path / "autoencoder.safetensors").stat().st_size
    assert all(v.dtype in (torch.float32, torch.bool) for v in loaded16.autoencoder.state_dict().values())
    c = loaded16.predict(sub, n_samples=500, seed=2)
    np.testing.assert_allclose(c["mean"], a["mean"], rtol=0.01, atol=0.02)
    assert not np.array_equal(c["mean"], a["mean"])
    with pytest.raises(ValueError, match="weights_dtype"):
        bundle.save(tmp_path / "model8", weights_dtype="int8")
    assert "weights_dtype" not in bundle.metadata      # the in-memory weights stay float32
    import copy
    big = copy.deepcopy(bundle)
    with torch.no_grad():
        next(big.regressor.parameters()).view(-1)[0] = 1e6   # beyond float16's 65504
    with pytest.raises(ValueError, match="do not fit in float16"):
        big.save(tmp_path / "model_big", weights_dtype="float16")
    assert not (tmp_path / "model_big").exists()
    meta = loaded.metadata
    assert meta["grid"]["mask_sha256"] == standard_grid().mask_hash()
    assert meta["force_constants"]["names"] == ["1XX", "1XY", "1ZZ", "2XX", "2YY"]
    assert len(meta["target_standardisation"]["std"]) == 5 and "validation" in meta["metrics"]

    # refusals: wrong family, other grid, tampered weights, not a bundle
    with pytest.raises(ValueError, match="cnnae"):
        load_bundle(path, family="cnnae")
    other = Grid(q=standard_grid().q, energy=standard_grid().energy, mask=np.ones((70, 101), bool))
    with pytest.raises(ValueError, match="another grid"):
        load_bundle(path, grid=other)
    with pytest.raises(ValueError, match="different grid"):
        loaded.predict(Spectrum(intensity=np.zeros((70, 101)), grid=other))
    with pytest.raises(ValueError, match="not a phonon-ml model bundle"):
        load_bundle(tmp_path)
    w = path / "regressor.safetensors"
    raw = bytearray(w.read_bytes())
    raw[-3] ^= 0xFF
    w.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="SHA-256"):
        load_bundle(path)
    # overwrite is atomic and leaves a loadable bundle
    bundle.save(path, overwrite=True)
    assert load_bundle(path).family == "fcvae"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_data_errors(tiny_set: Spectrum) -> None:
    cfg = PipelineConfig(latent_dim=3, pretrain=StageConfig(epochs=0), regressor=StageConfig(epochs=0))
    with pytest.raises(ValueError, match="force_constants"):
        train_pipeline(replace(tiny_set, force_constants=None), cfg, progress=False)
    nan_set = replace(tiny_set, intensity=np.full((2, 70, 101), np.nan), force_constants=None, temperature=None)
    with pytest.raises(ValueError, match="NaN"):
        train_pipeline(tiny_set, cfg, measured=nan_set, progress=False)
    small = Grid.from_axes(np.linspace(0.5, 5, 20), np.linspace(5, 30, 10), ei_mev=40.0)
    other = Spectrum(intensity=np.random.default_rng(0).random((2, 10, 20)), grid=small)
    with pytest.raises(ValueError, match="different grid"):
        train_pipeline(tiny_set, cfg, measured=other, progress=False)


def test_cli_train(tiny_set: Spectrum, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from phonon_ml_core.cli import main

    data = tmp_path / "sim.h5"
    tiny_set.to_hdf5(data)
    unlabelled = tmp_path / "unlabelled.h5"
    replace(tiny_set, force_constants=None).to_hdf5(unlabelled)
    out = tmp_path / "bundle"
    assert main(["train", "--data", str(unlabelled), "--output", str(out)]) == 2
    assert "force_constants" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--output", str(out), "--family", "fcae", "--latent-dim", "3",
                 "--epochs", "1", "--regressor-epochs", "2", "--no-progress", "--seed", "4"]) == 0
    bundle = load_bundle(out)
    assert bundle.family == "fcae" and bundle.autoencoder.latent_dim == 3
    assert (out / "training_log.jsonl").exists() and not (tmp_path / "bundle.checkpoints").exists()
    assert main(["train", "--data", str(data), "--output", str(out), "--latent-dim", "0"]) == 2
    pred = bundle.predict(tiny_set[0], n_samples=10)
    np.testing.assert_array_equal(pred["std"], 0.0)


def test_augmented_loss_is_denoising_and_seeded():
    """Augmentation perturbs the inputs (noise, background slope, re-normalised) but not the targets, is
    reproducible from the generator, and falls back to the clean loss for validation (no generator)."""
    import numpy as np
    import torch

    from phonon_ml_core.specs.grid import standard_grid
    from phonon_ml_core.learn.networks import build_autoencoder
    from phonon_ml_core.learn.training import augmented_autoencoder_loss, autoencoder_loss

    g = standard_grid()
    torch.manual_seed(0)
    ae = build_autoencoder("fcae", g.mask, latent_dim=4)
    x = torch.as_tensor(np.where(g.mask, np.random.default_rng(0).normal(size=(3, *g.shape)), np.nan),
                        dtype=torch.float32)
    from phonon_ml_core.data.normalization import mean_normalize
    x = mean_normalize(x, g.mask)
    assert augmented_autoencoder_loss(0.0, 0.0, g.mask, g.energy) is autoencoder_loss
    fn = augmented_autoencoder_loss(0.05, 0.1, g.mask, g.energy)
    seen = []

    class Spy(torch.nn.Module):
        def loss(self, inp, generator=None, target=None):
            seen.append((inp, target))
            return {"loss": torch.zeros(())}

    fn(Spy(), (x,), torch.Generator().manual_seed(1))
    fn(Spy(), (x,), torch.Generator().manual_seed(1))
    (a, ta), (b, tb) = seen
    assert ta is x and tb is x                                  # targets are the clean spectra
    assert torch.allclose(a, b, equal_nan=True)                 # same generator state → same augmentation
    valid = torch.as_tensor(g.mask.copy())
    assert not torch.allclose(a[:, valid], x[:, valid])         # the inputs were perturbed ...
    assert torch.all(torch.abs(a[:, valid].mean(-1)) < 1e-5)    # ... and re-normalised
    assert torch.isnan(a[:, ~valid]).all()
    clean = fn(ae, (x,), None)["loss"]                          # validation: clean loss
    assert torch.allclose(clean, ae.loss(x)["loss"])


def test_on_the_fly_source_draws_fresh_deterministic_spectra(tmp_path):
    """On-the-fly pretraining data: each epoch a new seeded draw from the simulator, like the data set."""
    import numpy as np
    import torch

    from phonon_ml_core.simulator.dataset import SamplingConfig, generate_dataset
    from phonon_ml_core.simulator import SimulationSettings
    from phonon_ml_core.data.spectrum import Spectrum
    from phonon_ml_core.learn.training import PipelineConfig, StageConfig, simulator_source, train_pipeline

    path = generate_dataset(tmp_path / "d.h5", 12, SamplingConfig(seed=3, temperature_range=(100.0, 300.0)),
                            settings=SimulationSettings(mesh_density=6), progress=False)
    data = Spectrum.from_hdf5(path)
    draw = simulator_source(data, 4, seed=0)
    a0, a1, b0 = draw(0)[0], draw(1)[0], draw(0)[0]
    assert a0.shape == (4, 70, 101) and a0.dtype == torch.float32
    valid = torch.as_tensor(data.grid.mask.copy())
    assert torch.allclose(a0[:, valid], b0[:, valid])          # deterministic per epoch
    assert not torch.allclose(a0[:, valid], a1[:, valid])      # fresh spectra each epoch
    assert torch.all(torch.abs(a0[:, valid].mean(-1)) < 1e-4)  # mean-normalised like the file
    cfg = PipelineConfig(family="fcae", latent_dim=3, on_the_fly=4, pretrain=StageConfig(epochs=2, batch_size=4),
                         regressor=StageConfig(epochs=1, batch_size=4))
    res = train_pipeline(data, cfg, progress=False)
    assert [r["epoch"] for r in res.history if r["stage"] == "pretrain"] == [1, 2]
    assert np.isfinite(res.history[-1]["train_loss"])
