"""Ensembles of bundles (learn/ensemble.py, `phonon-ml ensemble`): the prediction is the members' mean with the
law-of-total-variance std, the folder round-trips and is checked like a bundle, and predict / finetune / the
Mantid algorithms take an ensemble wherever they take a bundle."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.learn.bundle import Bundle, load_bundle
from phonon_ml_core.learn.ensemble import EnsembleBundle, build_ensemble, load_model
from phonon_ml_core.learn.networks import ForceConstantRegressor, build_autoencoder
from phonon_ml_core.simulator import SimulationSettings, simulate_spectrum
from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT, get_material
from phonon_ml_core.specs.grid import Grid

REPO = Path(__file__).resolve().parents[1]
SHARED_AL = REPO.parent / "shared" / "data" / "al_arcs_ei50"
GRID = Grid(q=np.array([2.0, 2.5, 3.0, 3.5, 4.0]), energy=np.array([12.0, 16.0, 20.0, 24.0, 28.0, 32.0]),
            mask=np.ones((6, 5), dtype=bool), ei_mev=50.0)
SETTINGS = SimulationSettings(mesh_density=6)


def random_bundle(seed: int, material=ALUMINIUM) -> Bundle:
    """An untrained fcvae bundle on GRID (random weights from ``seed``) that predicts the constants and γ."""
    torch.manual_seed(seed)
    ae = build_autoencoder("fcvae", GRID.mask, latent_dim=3, kl_weight=1e-6, hidden=8)
    names = [*material.names, "linewidth"]
    reg = ForceConstantRegressor(3, hidden=(8,), n_outputs=len(names))
    ref = np.array([*material.reference_constants, 0.02])
    meta = {"targets": names, "material": material.to_dict(), "quantity": "chi''"}  # experiment: ARCS on GRID
    return Bundle(ae, reg, GRID, target_mean=ref, target_std=np.full(len(names), 0.5), metadata=meta)


def spectra(n: int = 3) -> list[Spectrum]:
    fc = np.array(ALUMINIUM.reference_constants)
    return [simulate_spectrum(fc * (1 + 0.05 * i), 100.0 + 200 * i, grid=GRID, settings=SETTINGS, linewidth=0.02)
            for i in range(n)]


def test_prediction_is_the_members_mean_with_their_spread():
    members = [random_bundle(s) for s in (0, 1, 2)]
    ens = EnsembleBundle(members)
    x = Spectrum.stack(spectra())
    got = ens.predict(x, n_samples=50, seed=4)
    each = [m.predict(x, n_samples=50, seed=4 + 7919 * i) for i, m in enumerate(members)]
    means = np.stack([p["mean"] for p in each])
    np.testing.assert_allclose(got["mean"], means.mean(0), rtol=1e-12)
    np.testing.assert_allclose(got["member_spread"], means.std(0), rtol=1e-12)
    var = np.mean([p["std"] ** 2 for p in each], 0) + means.var(0)
    np.testing.assert_allclose(got["std"], np.sqrt(var), rtol=1e-12)
    assert np.all(got["std"] >= got["member_spread"]) and np.all(got["member_spread"] > 0)
    np.testing.assert_allclose(got["linewidth"], np.mean([p["linewidth"] for p in each], 0), rtol=1e-12)
    assert ens.names == ALUMINIUM.names and ens.grid.same_as(GRID) and ens.material.same_as(ALUMINIUM)


def test_members_must_agree_and_be_two_or_more():
    with pytest.raises(ValueError, match="at least two member bundles"):
        EnsembleBundle([random_bundle(0)])
    with pytest.raises(ValueError, match=r"member 1 does not match member 0: material Al \(4 shells\)"):
        EnsembleBundle([random_bundle(0), random_bundle(1, get_material("Al", 4))])
    with pytest.raises(ValueError, match="nest no ensembles"):
        EnsembleBundle([random_bundle(0), EnsembleBundle([random_bundle(1), random_bundle(2)])])


def test_round_trip_and_a_tampered_ensemble_is_refused(tmp_path):
    ens = EnsembleBundle([random_bundle(0), random_bundle(1)], {"description": "two seeds"})
    out = ens.save(tmp_path / "ens")
    assert sorted(p.name for p in out.iterdir()) == ["member_0", "member_1", "metadata.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["ens"]  # no temporary folder left behind
    back = load_model(out)
    assert isinstance(back, EnsembleBundle) and back.metadata["description"] == "two seeds"
    x = spectra(1)[0]
    np.testing.assert_allclose(back.predict(x, n_samples=20)["mean"], ens.predict(x, n_samples=20)["mean"],
                               rtol=1e-6)
    assert isinstance(load_model(out / "member_0"), Bundle)
    with pytest.raises(ValueError, match="is an ensemble of bundles: load it with .*load_model"):
        load_bundle(out)
    with pytest.raises(FileExistsError, match="already exists"):
        ens.save(out)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["kind"] == "ensemble" and meta["material"]["n_shells"] == 2 and meta["grid"]["n_valid"] == 30
    meta["members"] = ["member_0", "../elsewhere"]
    (out / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="'members' must list the member folders"):
        load_model(out)
    meta["members"] = ["member_0", "member_1"]
    (out / "metadata.json").write_text(json.dumps(meta))
    w = out / "member_1" / "regressor.safetensors"
    w.write_bytes(w.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="does not match the SHA-256"):
        load_model(out)


def test_cli_ensemble_predict_finetune_and_latent_refusal(tmp_path, capsys):
    from phonon_ml_core.cli.app import main

    for i in (0, 1):
        random_bundle(i).save(tmp_path / f"b{i}")
    Spectrum.stack(spectra()).to_hdf5(tmp_path / "x.h5")
    assert main(["ensemble", "--members", str(tmp_path / "b0"), str(tmp_path / "b1"), "-o", str(tmp_path / "e"),
                 "--weights-dtype", "float16"]) == 0
    assert "an ensemble of 2 Al bundles" in capsys.readouterr().out
    assert main(["predict", "--model", str(tmp_path / "e"), "--input", str(tmp_path / "x.h5"),
                 "-o", str(tmp_path / "r.json"), "--samples", "20", "--series-plot", str(tmp_path / "s.png")]) == 0
    recs = json.loads((tmp_path / "r.json").read_text())
    from phonon_ml_core.report.ml_series import ml_label
    assert (tmp_path / "s.png").stat().st_size > 0 and ml_label(recs).startswith("ML ensemble")
    assert len(recs) == 3 and all(len(r["force_constants"]) == 5 and len(r["member_spread"]) == 5 for r in recs)
    assert all(np.all(np.array(r["std"]) >= np.array(r["member_spread"])) and r["nmse"] > 0 for r in recs)
    assert all(r["std_meaning"].startswith("members' latent spread and their disagreement") for r in recs)
    assert main(["finetune", "--model", str(tmp_path / "e"), "--input", str(tmp_path / "x.h5"),
                 "-o", str(tmp_path / "e2"), "--steps", "3", "--no-progress"]) == 0
    before, after = load_model(tmp_path / "e"), load_model(tmp_path / "e2")
    assert isinstance(after, EnsembleBundle) and after.metadata["adaptation"][-1]["members"] == 2
    for b, a in zip(before.members, after.members):  # each member's output layer moved, the rest did not
        sb, sa = b.regressor.state_dict(), a.regressor.state_dict()
        last = sorted(k for k in sb if k.endswith("weight"))[-1]
        assert not torch.equal(sb[last], sa[last])
        assert all(torch.equal(sb[k], sa[k]) for k in sb if not k.startswith(last.rsplit(".", 1)[0]))
    assert not (tmp_path / "e2.checkpoints").exists()
    capsys.readouterr()
    assert main(["latent-analysis", "--model", str(tmp_path / "e"), "--data", str(tmp_path / "x.h5"),
                 "--output-dir", str(tmp_path / "la")]) == 2
    assert "each has its own latent space" in capsys.readouterr().err
    assert main(["ensemble", "--members", str(tmp_path / "b0"), "-o", str(tmp_path / "one")]) == 2
    assert "at least two member bundles" in capsys.readouterr().err and not (tmp_path / "one").exists()


def test_build_ensemble_takes_members_of_an_ensemble(tmp_path):
    EnsembleBundle([random_bundle(0), random_bundle(1)]).save(tmp_path / "e")
    random_bundle(2).save(tmp_path / "b2")
    ens = build_ensemble([tmp_path / "e", tmp_path / "b2"])
    assert len(ens.members) == 3 and len(ens.metadata["ensemble_sources"]) == 2


# -- the shipped four-shell ensemble ------------------------------------------------------------------------------
SHIPPED = REPO / "models" / "al_arcs_ei50_fcvae4_ensemble"


@pytest.mark.skipif(not SHIPPED.exists(), reason="shipped ensemble absent")
def test_shipped_four_shell_ensemble_reads_clean_and_measured_spectra():
    """Aluminium with four shells on the standard experiment; on a clean spectrum it recovers the first shell and
    the RMS frequency (M⟨ω²⟩) within 10 %; on measured spectra (when the shared data are present) its spectrum
    fits better than the two-shell default's (NMSE with the best background slope, as `phonon-ml fit`)."""
    from phonon_ml_core.fitting.results import msq_combination
    from phonon_ml_core.prediction.predict import predict_spectra, resolve_bundle

    ens = load_model(SHIPPED)
    al4 = get_material("Al", 4)
    assert isinstance(ens, EnsembleBundle) and len(ens.members) >= 3
    assert ens.material.same_as(al4) and ens.names == al4.names and ens.experiment.same_as(STANDARD_EXPERIMENT)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    true = np.array([10.0, 10.6, -2.6, 2.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # the demo's, two shells
    clean = simulate_spectrum(true, 300.0, grid=ens.grid, linewidth=0.02, material=al4)
    (e,) = predict_spectra(ens, [clean], n_samples=200)
    fc = np.array(e["force_constants"])
    assert abs(fc[0] / true[0] - 1) < 0.10 and abs(fc[1] / true[1] - 1) < 0.10, fc
    assert abs(msq_combination(fc, al4) / msq_combination(true, al4) - 1) < 0.10, fc
    assert e["nmse"] < 0.02 and np.all(np.array(e["std"]) >= np.array(e["member_spread"]))
    paths = [SHARED_AL / f"al_{t}K.h5" for t in (50, 280, 350, 540, 640)]
    if not all(p.exists() for p in paths):
        pytest.skip("shared data absent")
    measured = [Spectrum.from_hdf5(p) for p in paths]
    ours = predict_spectra(ens, measured, n_samples=200)
    default = predict_spectra(resolve_bundle(None), measured, n_samples=200)
    n_ours = np.array([o["nmse_background_slope"] for o in ours])
    n_default = np.array([d["nmse_background_slope"] for d in default])
    assert n_ours.mean() < n_default.mean() - 0.015 and np.all(n_ours < n_default + 0.005), (n_ours, n_default)
    assert np.all(np.diff([o["force_constants"][0] for o in ours]) < 0)  # 1XX softens from 50 to 640 K


def test_setup_installs_every_shipped_model_file(monkeypatch):
    """`pip install .` copies every file under models/, an ensemble's member folders included (setup.py
    data_files), so that a shipped bundle's name resolves after a plain install too."""
    text = (REPO / "setup.py").read_text(encoding="utf-8")
    monkeypatch.chdir(REPO)
    scope: dict = {}
    exec(text.split("\nsetup(")[0], scope)  # the module-level data_files list, without running setup()
    installed = {f for _, files in scope["MODEL_FILES"] for f in files}
    shipped = {p.relative_to(REPO).as_posix() for p in (REPO / "models").glob("*/**/*")
               if p.is_file() and not any(part.startswith(".") for part in p.parts)}  # the bundles, not README
    assert shipped and shipped <= installed, sorted(shipped - installed)
    assert any("/member_0/" in f for f in installed)


def test_measured_spectra_recording_two_shells_are_read_by_four_shell_models(tmp_path):
    """A preprocessed measured file records its crystal (aluminium, two shells by default); how many shells
    describe it is the reader's choice: a four-shell bundle predicts and adapts on it and `fit --shells 4` fits it.
    Another crystal is still refused, and so is a labelled set whose constants belong to another shell count."""
    from dataclasses import replace

    from phonon_ml_core.fitting.inputs import resolve_material
    from phonon_ml_core.learn.adaptation import finetune_bundle
    from phonon_ml_core.learn.matching import check_matches
    from phonon_ml_core.prediction.predict import predict_spectra

    al4 = get_material("Al", 4)
    measured = replace(spectra(1)[0], force_constants=None, linewidth=None, material=ALUMINIUM, metadata={})
    assert ALUMINIUM.same_crystal(al4) and not ALUMINIUM.same_crystal(get_material("Cu"))
    b4 = random_bundle(0, al4)
    (entry,) = predict_spectra(b4, [measured], n_samples=10)
    assert entry["names"] == list(al4.names) and np.isfinite(entry["nmse"])
    adapted = finetune_bundle(b4, [measured, measured], steps=2, progress=False)
    assert adapted.metadata["adaptation"][-1]["n_spectra"] == 2
    assert resolve_material(measured, al4) is al4
    with pytest.raises(ValueError, match="holds spectra of Cu .* the model bundle was trained for Al"):
        predict_spectra(b4, [replace(measured, material=get_material("Cu"))], n_samples=10)
    labelled = replace(spectra(1)[0], material=ALUMINIUM)  # its constants are two-shell ones
    assert labelled.force_constants is not None
    with pytest.raises(ValueError, match="n_shells 4 ≠ 2"):
        check_matches(al4, b4.experiment, labelled)
