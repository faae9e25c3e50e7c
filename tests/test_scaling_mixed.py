"""Mixed-material training: several data sets (materials, instruments) → one shared feature extractor, one
regressor (an ordinary bundle) per set, the membership recorded in mixed.json."""
from __future__ import annotations

import json

import numpy as np
import pytest

from phonon_ml_core.cli import main

SIM = ["simulate", "--count", "12", "--mesh-density", "6", "--no-progress", "--temperature-range", "100,400"]
TRAIN = ["train", "--epochs", "2", "--regressor-epochs", "2", "--physics-steps", "0", "--latent-dim", "4",
         "--batch-size", "8", "--no-progress"]


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    d = tmp_path_factory.mktemp("mixed")
    assert main([*SIM, "--seed", "1", "--material", "Cu", "--instrument", "ARCS", "--ei", "50",
                 "--output", str(d / "cu.h5")]) == 0
    assert main([*SIM, "--seed", "2", "--material", "Fe", "--instrument", "MERLIN", "--ei", "60",
                 "--output", str(d / "fe.h5")]) == 0
    return d


def test_two_materials_train_one_extractor_and_a_regressor_each(sets, capsys):
    from phonon_ml_core.data.spectrum import Spectrum
    from phonon_ml_core.learn.bundle import load_bundle
    from phonon_ml_core.specs import get_material

    out = sets / "both"
    assert main([*TRAIN, "--data", str(sets / "cu.h5"), str(sets / "fe.h5"), "--output", str(out)]) == 0
    assert "2 regressors" in capsys.readouterr().out
    manifest = json.loads((out / "mixed.json").read_text())
    members = {m["material"]: m for m in manifest["members"]}
    assert set(members) == {"Cu", "Fe"} and manifest["extractor"]["n_spectra"] == 24
    assert members["Cu"]["extractor_rows"] == [0, 12] and members["Fe"]["extractor_rows"] == [12, 24]
    cu, fe = (load_bundle(out / members[m]["bundle"]) for m in ("Cu", "Fe"))
    assert cu.material.same_as(get_material("Cu")) and fe.material.same_as(get_material("Fe"))
    assert list(cu.target_names[:3]) == ["1XX", "1XY", "1ZZ"] and len(fe.material.names) == 4  # fcc and bcc constants
    assert cu.experiment.instrument == "ARCS" and fe.experiment.instrument == "MERLIN"
    # one shared feature extractor: identical autoencoder weights and mask; separate regressors
    a, b = cu.autoencoder.state_dict(), fe.autoencoder.state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert np.array_equal(cu.grid.mask, fe.grid.mask)
    assert cu.regressor.state_dict().keys() == fe.regressor.state_dict().keys()
    # each member predicts spectra of its own material and experiment, as any bundle does
    from phonon_ml_core.prediction.predict import predict_spectra

    for m, data, bundle in (("Cu", "cu.h5", cu), ("Fe", "fe.h5", fe)):
        (entry,) = predict_spectra(bundle, [Spectrum.from_hdf5(sets / data)[0]], n_samples=20, simulate=False)
        assert list(entry["names"]) == list(get_material(m).names) and np.all(np.isfinite(entry["force_constants"]))
    with pytest.raises(ValueError, match="Fe"):
        predict_spectra(cu, [Spectrum.from_hdf5(sets / "fe.h5")[0]], n_samples=20, simulate=False)
    assert not list(sets.glob("*.checkpoints")) and not list(sets.glob(".both*"))


def test_mixed_training_refuses_fine_tuning_and_a_single_member(sets, capsys):
    args = [*TRAIN, "--data", str(sets / "cu.h5"), str(sets / "fe.h5"), "--output", str(sets / "bad")]
    assert main([*args, "--finetune", str(sets / "cu.h5")]) == 2
    assert "--finetune adapts a bundle of one material" in capsys.readouterr().err
    assert not (sets / "bad").exists()
    from phonon_ml_core.learn.mixed import train_mixed

    with pytest.raises(ValueError, match="at least two"):
        train_mixed([sets / "cu.h5"], sets / "bad", {})
