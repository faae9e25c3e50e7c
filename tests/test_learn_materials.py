"""Machine learning for any material: named targets, bundles that record their material and experiment, the
mismatch check, old bundles, and the one training set-up shared by ``phonon-ml train`` and TrainPhononVAE."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.learn.bundle import load_bundle
from phonon_ml_core.learn.targets import LINEWIDTH, Targets
from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT, Experiment, get_material

REPO = Path(__file__).resolve().parents[1]
TINY = {"latent_dim": 3, "epochs": 2, "regressor_epochs": 2, "batch_size": 8, "background_degree": None,
        "checkpoint_every": 1}


@pytest.fixture(scope="module")
def iron():
    return get_material("Fe")


@pytest.fixture(scope="module")
def bcc_set_path(tiny_grid, iron, tmp_path_factory) -> Path:
    """20 bcc iron spectra on the tiny grid with varying γ, recorded with their material and experiment."""
    from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings

    sim = PowderSimulator(grid=tiny_grid, model=iron.bvk_model(),
                          settings=SimulationSettings(method="sphere", n_per_bin=32, bz_grid=4),
                          lattice_parameter=iron.lattice_parameter_at, dtype=torch.float64)
    rng = np.random.default_rng(0)
    fc = np.asarray(iron.reference_constants) * rng.uniform(0.85, 1.15, (24, iron.n_constants))
    gamma = rng.uniform(0.0, 0.05, 24)
    with torch.no_grad():
        x = sim(torch.as_tensor(fc), 300.0, linewidth=torch.as_tensor(gamma), allow_unstable=True).numpy()
    ok = np.isfinite(x[:, tiny_grid.mask]).all(-1)
    assert ok.sum() >= 16
    experiment = Experiment.create("ARCS", ei_mev=tiny_grid.ei_mev, grid=tiny_grid)
    s = Spectrum(intensity=x[ok][:20], grid=tiny_grid, temperature=300.0, normalization="mean",
                 force_constants=fc[ok][:20], linewidth=gamma[ok][:20], material=iron, experiment=experiment)
    path = tmp_path_factory.mktemp("bcc") / "fe.h5"
    s.to_hdf5(path)
    return path


@pytest.fixture(scope="module")
def bcc_bundle_path(bcc_set_path, tmp_path_factory) -> Path:
    from phonon_ml_core.learn.setup import train_to_bundle

    out = tmp_path_factory.mktemp("bundle") / "fe_bundle"
    train_to_bundle(bcc_set_path, out, {**TINY, "seed": 1}, progress=False)
    return out


def test_targets_are_named_from_the_material_and_linewidth(iron) -> None:
    t = Targets(iron.names, linewidth=True)
    assert t.names == ("1XX", "1XY", "2XX", "2YY", LINEWIDTH) and t.n_outputs == 5 and t.n_constants == 4
    fc, gamma = t.split(np.arange(10.0).reshape(2, 5))
    assert fc.shape == (2, 4) and gamma.tolist() == [4.0, 9.0]
    assert Targets.from_names(list(t.names)) == t
    with pytest.raises(ValueError, match="outputs"):
        t.split(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="linewidth"):
        Targets(("1XX", LINEWIDTH))


def test_outputs_to_physical_reads_gamma_by_name_for_bcc(iron) -> None:
    """Four bcc constants plus γ: the fifth output is γ, not a force constant (no 'sixth output' logic)."""
    from phonon_ml_core.learn.consistency import outputs_to_physical

    t = Targets(iron.names, linewidth=True)
    out = torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.05]])
    fc, gamma = outputs_to_physical(out, np.zeros(5), np.ones(5), t)
    assert fc.shape == (1, 4) and float(gamma[0]) == pytest.approx(0.05)
    fc, gamma = outputs_to_physical(out[:, :4], np.zeros(4), np.ones(4), Targets(iron.names))
    assert fc.shape == (1, 4) and gamma is None


def test_tiny_bcc_training_end_to_end(bcc_bundle_path, bcc_set_path, iron) -> None:
    b = load_bundle(bcc_bundle_path)
    assert b.names == iron.names == ("1XX", "1XY", "2XX", "2YY")
    assert b.target_names == (*iron.names, LINEWIDTH) and b.predicts_linewidth
    assert b.material.same_as(iron) and b.experiment.instrument == "ARCS"
    assert b.experiment.grid.same_as(b.grid)
    assert b.regressor.n_outputs == 5
    assert set(b.metadata["metrics"]["train"]["r2"]) == set(b.target_names)
    data = Spectrum.from_hdf5(bcc_set_path)
    pred = b.predict(data, n_samples=16)
    assert pred["mean"].shape == (data.n_spectra, 4) and pred["std"].shape == (data.n_spectra, 4)
    assert pred[LINEWIDTH].shape == (data.n_spectra,) and np.all(pred[LINEWIDTH] >= 0)


def test_bundle_refuses_data_of_another_material_or_experiment(bcc_bundle_path, bcc_set_path, tiny_grid) -> None:
    from phonon_ml_core.learn.adaptation import finetune_bundle

    b = load_bundle(bcc_bundle_path)
    data = Spectrum.from_hdf5(bcc_set_path)
    aluminium = replace(data, material=ALUMINIUM, force_constants=None)
    with pytest.raises(ValueError, match=r"material: element 'Fe' ≠ 'Al'.*lattice 'bcc' ≠ 'fcc'.*phonon-ml simulate"):
        b.predict(aluminium)
    sequoia = replace(data, experiment=Experiment.create("SEQUOIA", ei_mev=tiny_grid.ei_mev))
    with pytest.raises(ValueError, match="instrument ARCS ≠ SEQUOIA"):
        b.predict(sequoia)
    with pytest.raises(ValueError, match="material: element"):
        finetune_bundle(b, aluminium, steps=1, progress=False)
    # data that record neither are taken to be of the bundle's material and experiment
    plain = replace(data, material=None, experiment=None, force_constants=None)
    assert b.predict(plain, n_samples=4)["mean"].shape == (data.n_spectra, 4)


def test_shipped_bundle_loads_as_aluminium_with_identical_predictions() -> None:
    """Bundles written before materials were recorded are aluminium on the standard experiment; the shipped
    bundle's predictions are unchanged (numbers from the code before this change)."""
    measured = Path(REPO).parent / "shared" / "data" / "al_arcs_ei50" / "al_50K.h5"
    b = load_bundle(REPO / "models" / "al_arcs_ei50_fcvae")
    assert b.material.same_as(ALUMINIUM) and b.experiment.same_as(STANDARD_EXPERIMENT)
    assert b.names == ALUMINIUM.names and b.target_names == (*ALUMINIUM.names, LINEWIDTH)
    if not measured.exists():
        pytest.skip("shared data absent")
    p = b.predict(Spectrum.from_hdf5(measured), n_samples=200, seed=0)
    np.testing.assert_allclose(p["mean_code_prediction"], [9.63289737701416, 11.178638458251953, -2.3680837154388428,
                                                           2.044994354248047, 1.1000250577926636], rtol=1e-6)
    np.testing.assert_allclose(p["mean"], [9.661521911621094, 11.137690544128418, -2.4120664596557617,
                                           2.1509411334991455, 1.0374490022659302], rtol=1e-6)
    np.testing.assert_allclose(p["std"], [0.18241028487682343, 0.16183960437774658, 0.20131953060626984,
                                          0.42082804441452026, 0.11043968796730042], rtol=1e-5)
    assert p[LINEWIDTH] == pytest.approx(0.01359246764332056, rel=1e-6)


class _Reached(Exception):
    """Raised by the stand-in for train_pipeline: the set-up got this far."""


def test_cli_and_mantid_share_the_training_setup(tmp_path, monkeypatch) -> None:
    """`phonon-ml train` and the Mantid adapter both go through learn.setup.train_to_bundle: the same grid rule
    for fine-tuning spectra (a few missing edge pixels filled, as for prediction) and the same configuration."""
    import phonon_ml_core.learn.setup as setup
    from phonon_ml_core.cli.app import main
    from phonon_ml_core.specs.grid import Grid, standard_grid
    from phonon_ml_core.mantid_support.adapter import train_bundle

    seen = []

    def stand_in(simulated, cfg, measured=None, **kw):
        seen.append((cfg, measured))
        raise _Reached

    monkeypatch.setattr(setup, "train_pipeline", stand_in)
    grid = standard_grid()
    rng = np.random.default_rng(0)
    x = np.where(grid.mask, rng.normal(size=(3, *grid.shape)), np.nan)
    Spectrum(intensity=x, grid=grid, temperature=300.0, force_constants=np.tile(ALUMINIUM.reference_constants,
                                                                              (3, 1))).to_hdf5(tmp_path / "set.h5")
    gap = grid.mask.copy()
    gap[tuple(np.argwhere(gap)[:5].T)] = False  # five valid pixels the measured data lack (< 2 %)
    measured = Spectrum(intensity=np.where(gap, x[0], np.nan), grid=replace(grid, mask=gap), temperature=50.0)
    measured.to_hdf5(tmp_path / "m.h5")
    data = str(tmp_path / "set.h5")
    with pytest.raises(_Reached):
        main(["train", "--data", data, "--output", str(tmp_path / "cli"), "--finetune", str(tmp_path / "m.h5"),
              "--latent-dim", "3", "--epochs", "2", "--no-progress"])
    with pytest.raises(_Reached):
        train_bundle({"data": data, "output": str(tmp_path / "mantid"), "latent_dim": 3, "epochs": 2}, [measured],
                     ["m"])
    (cfg_cli, m_cli), (cfg_mantid, m_mantid) = seen
    assert cfg_cli == cfg_mantid
    assert m_cli.grid.same_as(grid) and m_mantid.grid.same_as(grid)
    assert m_cli.metadata["filled_pixels"] == m_mantid.metadata["filled_pixels"] == 5
    np.testing.assert_allclose(m_cli.intensity, m_mantid.intensity)
    # a spectrum on other axes is refused by both, naming the fix
    other = Spectrum(intensity=np.zeros((2, 2)), grid=Grid(q=np.array([1.0, 2.0]), energy=np.array([10.0, 20.0]),
                                                           mask=np.ones((2, 2), bool), ei_mev=50.0))
    other.to_hdf5(tmp_path / "o.h5")
    assert main(["train", "--data", data, "--output", str(tmp_path / "cli2"), "--finetune",
                 str(tmp_path / "o.h5")]) == 2
    with pytest.raises(ValueError, match="another grid"):
        train_bundle({"data": data, "output": str(tmp_path / "mantid2")}, [other], ["o"])


def test_training_set_of_another_material_than_its_finetuning_spectra_is_refused(bcc_set_path) -> None:
    from phonon_ml_core.learn.setup import fine_tuning_set

    data = Spectrum.from_hdf5(bcc_set_path)
    with pytest.raises(ValueError, match=r"al\.h5: the spectra do not match the simulated training set.*element"):
        fine_tuning_set(data, [replace(data[0], material=ALUMINIUM, force_constants=None)], ["al.h5"])


def test_training_defaults_fit_the_time_budget() -> None:
    """The defaults of `phonon-ml train` (docs/training.md, "Speed"): early stopping on the validation loss and
    epoch caps that keep 8,000 spectra within 15 minutes on 2 cores; the CLI and Mantid take them from the core."""
    from phonon_ml_core.cli.app import build_parser
    from phonon_ml_core.learn.setup import pipeline_config, training_defaults

    d = training_defaults()
    cfg = pipeline_config({})
    assert cfg.pretrain.epochs == d["epochs"] <= 60 and cfg.pretrain.patience == d["patience"] <= 10
    assert cfg.pretrain.val_fraction > 0 and cfg.regressor.epochs <= 200 and cfg.physics_steps == 0
    args = build_parser().parse_args(["train", "--data", "x.h5", "--output", "b"])
    assert pipeline_config({k: v for k, v in vars(args).items() if k in d}) == cfg
