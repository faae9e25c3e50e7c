"""The Mantid algorithms in plugins/ end to end: real Mantid when `import mantid.simpleapi` works, else the
stand-in in tests/mantid_standin (injected via sys.path inside the fixture only)."""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import numpy as np
import pytest

from mantid_standin.harness import (ALGS, ERRORS, ROOT, assert_sqw_layout, make_sqw, mantid_fixture,  # noqa: F401
                                   measured_like, table_values, tiny_grid)


# ------------------------------------------------------------------------------------------ registration
def test_plugins_registered_and_thin(mantid):
    from phonon_ml_core.mantid_support.adapter import plugins_directory

    d = plugins_directory()
    assert d == ROOT / "plugins"
    for name in ALGS:
        assert mantid.api.AlgorithmFactory.exists(name)
        text = (d / f"{name}.py").read_text()
        tree = ast.parse(text)
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert all((n.module or "").startswith("mantid") for n in top if isinstance(n, ast.ImportFrom))
        assert not [n for n in top if isinstance(n, ast.Import)], f"{name}: only mantid imports at module level"
        last = tree.body[-1]
        assert "AlgorithmFactory.subscribe" in ast.unparse(last) and name in ast.unparse(last)
        alg = mantid.api.AlgorithmManager.create(name)
        assert alg.name() == name and alg.version() == 1
        assert alg.category() == "Inelastic\\PhononML" and alg.summary() and alg.seeAlso()
        assert hasattr(mantid.sapi, name)


def test_plugin_literals_match_core(mantid):
    from phonon_ml_core.learn.networks import FAMILIES
    from phonon_ml_core.mantid_support.logs import TEMPERATURE_LOGS
    from phonon_ml_core.preprocess.background import ESTIMATORS
    from phonon_ml_core.specs import ALUMINIUM, STANDARD_EXPERIMENT, list_instruments

    def literal(alg, name):
        for node in ast.parse((ROOT / "plugins" / f"{alg}.py").read_text()).body:
            if isinstance(node, ast.Assign) and node.targets[0].id == name:
                return ast.literal_eval(node.value)
        raise AssertionError(f"{alg} lacks {name}")

    for n in ("SimulatePowderINS", "FitForceConstantsNelderMead", "PreprocessForML"):  # defaults from the specs
        alg = mantid.api.AlgorithmManager.create(n)
        assert alg.getProperty("Material").value == ALUMINIUM.element
        allowed = alg.getProperty("Instrument").validator.allowedValues()
        assert [a for a in allowed if a] == list(list_instruments())
    sim = mantid.api.AlgorithmManager.create("SimulatePowderINS")
    assert sim.getProperty("Instrument").value == STANDARD_EXPERIMENT.instrument
    for n in ("PreprocessForML", "FitForceConstantsNelderMead", "PredictForceConstants", "AdaptPhononModel"):
        assert mantid.api.AlgorithmManager.create(n).getProperty("TemperatureLog").value == TEMPERATURE_LOGS[0]
    assert not (ROOT / "plugins" / "FitForceConstantsNelderMead.py").read_text().count("120")
    assert sorted(literal("PreprocessForML", "BACKGROUNDS")) == sorted(ESTIMATORS)
    from phonon_ml_core.preprocess.background import DEFAULT_BACKGROUND
    assert literal("PreprocessForML", "BACKGROUNDS")[0] == DEFAULT_BACKGROUND
    assert literal("TrainPhononVAE", "FAMILIES") == list(FAMILIES)
    from phonon_ml_core.learn.defaults import TRAINABLE_LAYERS
    assert literal("AdaptPhononModel", "LAYERS") == list(TRAINABLE_LAYERS)
    assert mantid.api.AlgorithmManager.create("AdaptPhononModel").getProperty("Layers").value == TRAINABLE_LAYERS[0]


def test_train_defaults_are_the_cores(mantid):
    """TrainPhononVAE's defaults equal `phonon-ml train`'s (learn.setup.training_defaults): no drift."""
    from phonon_ml_core.learn.setup import training_defaults

    core = training_defaults()
    alg = mantid.api.AlgorithmManager.create("TrainPhononVAE")
    pairs = {"Family": "family", "LatentDim": "latent_dim", "KLWeight": "kl_weight", "Epochs": "epochs",
             "FinetuneEpochs": "finetune_epochs", "ExtendedEpochs": "extended_epochs",
             "RegressorEpochs": "regressor_epochs", "Optimizer": "optimizer", "BatchSize": "batch_size",
             "Patience": "patience", "RegressorCodes": "regressor_codes", "Seed": "seed"}
    differ = {prop: (alg.getProperty(prop).value, core[key]) for prop, key in pairs.items()
              if alg.getProperty(prop).value != core[key]}
    assert not differ, f"TrainPhononVAE defaults differ from the core's (plugin, core): {differ}"


def test_mantid_register_command(tmp_path, capsys):
    from phonon_ml_core.cli import main
    from phonon_ml_core.mantid_support.adapter import plugins_directory

    props = tmp_path / "Mantid.user.properties"
    props.write_text("# comment\ndatasearch.directories = /data\nuser.python.plugins.directories = /other/plugins\n")
    assert main(["mantid-register", "--properties-file", str(props)]) == 0
    text = props.read_text()
    assert "# comment\ndatasearch.directories = /data\n" in text
    assert f"user.python.plugins.directories = /other/plugins;{plugins_directory()}" in text
    assert main(["mantid-register", "--properties-file", str(props)]) == 0
    assert props.read_text() == text  # idempotent
    assert not [p for p in tmp_path.iterdir() if p.name != props.name]  # no temporary left
    fresh = tmp_path / "new.properties"
    assert main(["mantid-register", "--properties-file", str(fresh)]) == 0
    assert fresh.read_text() == f"user.python.plugins.directories = {plugins_directory()}\n"
    capsys.readouterr()
    assert main(["mantid-register", "--print"]) == 0
    assert capsys.readouterr().out.strip() == str(plugins_directory())
    assert main(["mantid-register", "--properties-file", str(tmp_path / "missing" / "p")]) == 2


# ------------------------------------------------------------------------------------------ SimulatePowderINS
def test_simulate_matches_core(mantid):
    from phonon_ml_core.specs import ALUMINIUM
    AL_REFERENCE_FC = np.array(ALUMINIUM.reference_constants)
    from phonon_ml_core.simulator import SimulationSettings, simulate_spectrum

    ws = mantid.sapi.SimulatePowderINS(Temperature=280.0, MeshDensity=6, Linewidth=0.02, OutputWorkspace="sim")
    assert mantid.api.mtd["sim"] is ws or mantid.api.mtd.doesExist("sim")
    ref = simulate_spectrum(AL_REFERENCE_FC, 280.0, settings=SimulationSettings(mesh_density=6), linewidth=0.02,
                            material=ALUMINIUM)
    assert_sqw_layout(ws, 70, 101)
    y = ws.extractY()
    np.testing.assert_allclose(y, ref.masked().intensity.T, rtol=1e-6, atol=1e-9, equal_nan=True)
    assert np.isnan(y).sum() == 70 * 101 - 4144
    np.testing.assert_allclose(ws.readX(0), ref.grid.energy_edges)
    np.testing.assert_allclose(ws.getAxis(1).extractValues(), ref.grid.q_edges)
    run = ws.getRun()
    assert run.getProperty("Ei").value == 50.0 and run.getProperty("SampleTemp").value == 280.0
    from phonon_ml_core.mantid_support.adapter import workspace_to_spectrum
    back = workspace_to_spectrum(ws)
    assert back.quantity == "chi''" and back.normalization == "mean" and back.grid.same_as(ref.grid)


def test_simulate_validation(mantid, tmp_path):
    with pytest.raises(ERRORS, match="ForceConstants"):  # Al has five (the count is the material's)
        mantid.sapi.SimulatePowderINS(ForceConstants=[1.0, 2.0, 3.0, 4.0], OutputWorkspace="bad")
    with pytest.raises(ERRORS, match="Ei"):
        mantid.sapi.SimulatePowderINS(Ei=8.0, OutputWorkspace="bad")
    with pytest.raises(ValueError, match="Temperature"):
        mantid.sapi.SimulatePowderINS(Temperature=-5.0, OutputWorkspace="bad")
    with pytest.raises(ValueError, match="ChopperPackage"):
        mantid.sapi.SimulatePowderINS(ChopperPackage="MERLIN-G", OutputWorkspace="bad")
    f = tmp_path / "phonopy.yaml"
    f.write_text("x")
    with pytest.raises(ERRORS, match="either ForceConstants or PhonopyFile"):
        mantid.sapi.SimulatePowderINS(ForceConstants=[1.0, 2.0, 3.0, 4.0, 5.0], PhonopyFile=str(f),
                                      OutputWorkspace="bad")
    assert not mantid.api.mtd.doesExist("bad")


def test_phonopy_projection(tmp_path):
    from phonon_ml_core.mantid_support.adapter import force_constants_from_phonopy
    from phonon_ml_core.specs import ALUMINIUM

    fc = np.array([9.0, 11.0, -2.0, 2.5, 0.4])
    ph = ALUMINIUM.bvk_model(fc, temperature_k=300).to_phonopy(3)
    ph.save(str(tmp_path / "phonopy.yaml"), settings={"force_constants": True})
    got, info = force_constants_from_phonopy(tmp_path / "phonopy.yaml")
    np.testing.assert_allclose(got, fc, atol=1e-8)
    assert info["residual"] < 1e-8 and abs(info["lattice_parameter"] - 4.0496) < 0.01


# ------------------------------------------------------------------------------------------ PreprocessForML
def test_preprocess_matches_core_both_orientations(mantid):
    from phonon_ml_core.preprocess.pipeline import preprocess_with_report
    from phonon_ml_core.readers._common import spectrum_on_axes

    y, ee, qe = measured_like()
    make_sqw(mantid, "raw", y, ee, qe, temperature=300.0)
    out = mantid.sapi.PreprocessForML(InputWorkspace="raw", OutputWorkspace="ready")
    assert_sqw_layout(out, 70, 101)
    spec = spectrum_on_axes(y, np.zeros_like(y), ee, qe, ei_mev=50.0, temperature=301.0, quantity="S")
    spec.errors = None
    ref, _ = preprocess_with_report(spec)
    np.testing.assert_allclose(out.extractY(), ref.masked().intensity.T, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert out.getRun().getProperty("SampleTemp").value == pytest.approx(301.0)  # time series averaged
    make_sqw(mantid, "raw_t", y, ee, qe, temperature=300.0, transposed=True)
    out_t = mantid.sapi.PreprocessForML(InputWorkspace="raw_t", OutputWorkspace="ready_t")
    np.testing.assert_allclose(out_t.extractY(), out.extractY(), rtol=1e-12, equal_nan=True)
    out_T = mantid.sapi.PreprocessForML(InputWorkspace="raw", Temperature=50.0, Background="none",
                                        OutputWorkspace="ready50")
    ref50, _ = preprocess_with_report(spec, temperature=50.0, background="none")
    np.testing.assert_allclose(out_T.extractY(), ref50.masked().intensity.T, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_preprocess_validation(mantid, tmp_path):
    y, ee, qe = measured_like()
    make_sqw(mantid, "tof", y, ee, qe, x_unit="TOF")
    with pytest.raises(ERRORS, match="not energy transfer"):
        mantid.sapi.PreprocessForML(InputWorkspace="tof", OutputWorkspace="o")
    make_sqw(mantid, "det", y, ee, qe, v_unit="SpectraNumber")
    with pytest.raises(ERRORS, match=r"not \|Q\|"):
        mantid.sapi.PreprocessForML(InputWorkspace="det", OutputWorkspace="o")
    make_sqw(mantid, "noei", y, ee, qe, ei=None)
    with pytest.raises(ERRORS, match="no Ei log"):
        mantid.sapi.PreprocessForML(InputWorkspace="noei", OutputWorkspace="o")
    make_sqw(mantid, "not", y, ee, qe, temperature=None)
    with pytest.raises(ERRORS, match="temperature is unknown"):
        mantid.sapi.PreprocessForML(InputWorkspace="not", OutputWorkspace="o")
    with pytest.raises(ERRORS, match="does not exist"):
        mantid.sapi.PreprocessForML(InputWorkspace="raw", ModelBundle=str(tmp_path / "nope"), OutputWorkspace="o")
    assert not mantid.api.mtd.doesExist("o")


# ------------------------------------------------------------------------------------------ FitForceConstantsNelderMead
FIT_COLUMNS = ["Input", "Index", "Name", "Value", "Std", "Units", "NMSE", "Evaluations", "Seconds", "Temperature",
               "Converged", "Linewidth", "StdCalibrated"]


def test_fit_matches_core(mantid):
    from phonon_ml_core.fitting.spectrum_fit import fit_spectrum
    from phonon_ml_core.mantid_support.adapter import spectrum_to_workspace, workspace_to_spectrum
    from phonon_ml_core.simulator import simulate_spectrum

    truth = np.array([10.0, 10.8, -2.5, 2.1, 0.1])
    s = simulate_spectrum(truth, 300.0, grid=tiny_grid())
    mantid.api.mtd.addOrReplace("tiny", spectrum_to_workspace(s))
    res = mantid.sapi.FitForceConstantsNelderMead(InputWorkspace="tiny", MaxEvaluations=15, OutputWorkspace="fit",
                                                  OutputFittedSpectrum="fitted")
    table, fitted = res
    ref = fit_spectrum(workspace_to_spectrum(mantid.api.mtd["tiny"]), max_evaluations=15, fit_linewidth=True,
                       fit_background=True)  # the algorithm's defaults
    vals, std, names = table_values(table)
    assert names == ["1XX", "1XY", "1ZZ", "2XX", "2YY"] and table.rowCount() == 5
    np.testing.assert_allclose(vals, ref.force_constants, rtol=1e-9)
    np.testing.assert_allclose(std, ref.std, rtol=1e-6, equal_nan=True)
    assert table.column("NMSE")[0] == pytest.approx(ref.nmse, rel=1e-9)
    assert table.column("Evaluations")[0] == ref.evaluations
    assert table.getColumnNames() == FIT_COLUMNS  # StdCalibrated appended: the older columns keep their places
    assert ref.std_calibrated is not None
    np.testing.assert_allclose(table.column("StdCalibrated"), ref.std_calibrated, rtol=1e-6, equal_nan=True)
    assert_sqw_layout(fitted, 7, 7)
    np.testing.assert_allclose(fitted.extractY(), ref.simulated.masked().intensity.T, rtol=1e-9, equal_nan=True)


def test_fit_validation(mantid):
    from phonon_ml_core.mantid_support.adapter import spectrum_to_workspace
    from phonon_ml_core.data.spectrum import Spectrum

    g = tiny_grid()
    ws = spectrum_to_workspace(Spectrum(intensity=np.random.default_rng(0).random(g.shape), grid=g))  # no T
    mantid.api.mtd.addOrReplace("noT", ws)
    with pytest.raises(ERRORS, match="temperature is unknown"):
        mantid.sapi.FitForceConstantsNelderMead(InputWorkspace="noT", OutputWorkspace="f")
    with pytest.raises(ERRORS, match="LowerBounds and UpperBounds"):
        mantid.sapi.FitForceConstantsNelderMead(InputWorkspace="noT", Temperature=300.0, LowerBounds=[0.0] * 5,
                                                OutputWorkspace="f")
    with pytest.raises(ERRORS, match="StartValues"):
        mantid.sapi.FitForceConstantsNelderMead(InputWorkspace="noT", Temperature=300.0, StartValues=[1.0, 2.0],
                                                OutputWorkspace="f")
    with pytest.raises(ValueError, match="Method"):
        mantid.sapi.FitForceConstantsNelderMead(InputWorkspace="noT", Method="lm", OutputWorkspace="f")


# ------------------------------------------------------------------------------------------ Train / Predict
@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    pytest.importorskip("phonon_ml_core.learn.training", reason="training core not importable yet")
    pytest.importorskip("phonon_ml_core.learn.bundle", reason="bundle core not importable yet")
    from phonon_ml_core.simulator.powder import PowderSimulator, SimulationSettings
    from phonon_ml_core.data.spectrum import Spectrum
    import torch

    g = tiny_grid()
    rng = np.random.default_rng(1)
    fc = np.array([10.35, 10.38, -2.77, 2.30, -0.25]) * rng.uniform(0.8, 1.2, (12, 5))
    sim = PowderSimulator(grid=g, settings=SimulationSettings(mesh_density=6), dtype=torch.float64)
    with torch.no_grad():
        y = sim(fc, 300.0).numpy()
    path = tmp_path_factory.mktemp("data") / "sim.h5"
    Spectrum(intensity=y, grid=g, temperature=300.0, normalization="mean", force_constants=fc).to_hdf5(path)
    return path


TRAIN = {"Family": "fcvae", "LatentDim": 3, "Epochs": 2, "FinetuneEpochs": 1, "ExtendedEpochs": 1,
         "RegressorEpochs": 2, "BatchSize": 4, "Seed": 3}


def test_train_matches_core(mantid, tiny_dataset, tmp_path):
    from phonon_ml_core.mantid_support.adapter import spectrum_to_workspace, train_bundle
    from phonon_ml_core.data.spectrum import Spectrum

    meas = Spectrum.from_hdf5(tiny_dataset)[0]
    mantid.api.mtd.addOrReplace("meas0", spectrum_to_workspace(meas))
    out = tmp_path / "bundle"
    got = mantid.sapi.TrainPhononVAE(SimulatedData=str(tiny_dataset), MeasuredWorkspaces=["meas0"],
                                     OutputBundle=str(out), **TRAIN)
    assert Path(got) == out and (out / "metadata.json").is_file()
    args = {"data": str(tiny_dataset), "output": str(tmp_path / "core"), "family": "fcvae", "latent_dim": 3,
            "kl_weight": 1e-6, "epochs": 2, "finetune_epochs": 1, "extended_epochs": 1, "regressor_epochs": 2,
            "optimizer": "adam", "lr": None, "batch_size": 4, "patience": 20, "regressor_codes": "sample", "seed": 3}
    train_bundle(args, [meas], ["meas0"])
    a = json.loads((out / "metadata.json").read_text())
    b = json.loads((tmp_path / "core" / "metadata.json").read_text())
    assert a["weights_sha256"] == b["weights_sha256"]
    assert a["data"]["finetune"] == [{"workspace": "meas0"}]


def test_train_validation(mantid, tiny_dataset, tmp_path):
    with pytest.raises(ERRORS, match="does not exist"):
        mantid.sapi.TrainPhononVAE(SimulatedData=str(tiny_dataset), OutputBundle=str(tmp_path / "no" / "b"), **TRAIN)
    (tmp_path / "exists").mkdir()
    with pytest.raises(ERRORS, match="already exists"):
        mantid.sapi.TrainPhononVAE(SimulatedData=str(tiny_dataset), OutputBundle=str(tmp_path / "exists"), **TRAIN)
    with pytest.raises(ERRORS, match="nowhere"):
        mantid.sapi.TrainPhononVAE(SimulatedData=str(tmp_path / "nowhere.h5"), OutputBundle=str(tmp_path / "b"),
                                   **TRAIN)
    with pytest.raises(ERRORS, match="no workspace named"):
        mantid.sapi.TrainPhononVAE(SimulatedData=str(tiny_dataset), MeasuredWorkspaces=["ghost"],
                                   OutputBundle=str(tmp_path / "b"), **TRAIN)
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(ERRORS, match="cannot write"):
            mantid.sapi.TrainPhononVAE(SimulatedData=str(tiny_dataset), OutputBundle=str(ro / "b"), **TRAIN)
    assert not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def tiny_bundle(tiny_dataset, tmp_path_factory):
    from phonon_ml_core.mantid_support.adapter import train_bundle

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    args = {"data": str(tiny_dataset), "output": str(out), "family": "fcvae", "latent_dim": 3, "kl_weight": 1e-6,
            "epochs": 2, "finetune_epochs": 0, "extended_epochs": 0, "regressor_epochs": 2, "optimizer": "adam",
            "lr": None, "batch_size": 4, "patience": 20, "regressor_codes": "sample", "seed": 0}
    return train_bundle(args)


def test_predict_matches_core(mantid, tiny_dataset, tiny_bundle):
    from phonon_ml_core.learn.bundle import load_bundle
    from phonon_ml_core.mantid_support.adapter import spectrum_to_workspace
    from phonon_ml_core.data.normalization import nmse
    from phonon_ml_core.simulator import SimulationSettings, simulate_spectrum
    from phonon_ml_core.data.spectrum import Spectrum

    data = Spectrum.from_hdf5(tiny_dataset)
    for i in (0, 1):
        mantid.api.mtd.addOrReplace(f"p{i}", spectrum_to_workspace(data[i]))
    table, rec = mantid.sapi.PredictForceConstants(InputWorkspace="p0", ModelBundle=str(tiny_bundle),
                                                   NumberOfSamples=64, OutputWorkspace="pred",
                                                   OutputReconstruction="rec")
    bundle = load_bundle(tiny_bundle)
    ref = bundle.predict(data[0], n_samples=64, seed=0)
    vals, std, names = table_values(table)
    np.testing.assert_allclose(vals, ref["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, ref["std"], rtol=1e-4, atol=1e-6)
    sim = simulate_spectrum(ref["mean"], 300.0, grid=bundle.grid, settings=SimulationSettings())
    assert table.column("NMSE")[0] == pytest.approx(float(nmse(data[0].intensity, sim.intensity, bundle.grid.mask)),
                                                    rel=1e-4)
    assert 0 <= table.column("NMSEBackgroundSlope")[0] <= table.column("NMSE")[0] + 1e-12
    assert_sqw_layout(rec, 7, 7)
    mantid.sapi.GroupWorkspaces(InputWorkspaces="p0,p1", OutputWorkspace="pg")
    gtable = mantid.sapi.PredictForceConstants(InputWorkspace="pg", ModelBundle=str(tiny_bundle), NumberOfSamples=64,
                                               ComputeNMSE=False, OutputWorkspace="predg")
    assert gtable.rowCount() == 10 and gtable.column("Input")[5:] == ["p1"] * 5
    np.testing.assert_allclose(gtable.column("Value")[:5], vals, rtol=1e-6)


def test_predict_validation(mantid, tiny_bundle, tmp_path):
    from phonon_ml_core.mantid_support.adapter import spectrum_to_workspace
    from phonon_ml_core.specs.grid import standard_grid
    from phonon_ml_core.data.spectrum import Spectrum

    g = standard_grid()
    mantid.api.mtd.addOrReplace("std", spectrum_to_workspace(
        Spectrum(intensity=np.random.default_rng(0).random(g.shape), grid=g, temperature=300.0)))
    with pytest.raises(ERRORS, match="mismatched grid"):
        mantid.sapi.PredictForceConstants(InputWorkspace="std", ModelBundle=str(tiny_bundle), OutputWorkspace="x")
    with pytest.raises(ERRORS, match="does not exist"):
        mantid.sapi.PredictForceConstants(InputWorkspace="std", ModelBundle=str(tmp_path / "gone"), OutputWorkspace="x")
    (tmp_path / "notabundle").mkdir()
    with pytest.raises(ERRORS, match="not a phonon-ml model bundle"):
        mantid.sapi.PredictForceConstants(InputWorkspace="std", ModelBundle=str(tmp_path / "notabundle"),
                                          OutputWorkspace="x")
    assert not mantid.api.mtd.doesExist("x")


def test_adapt_matches_core(mantid, tiny_dataset, tiny_bundle, tmp_path):
    """AdaptPhononModel = adaptation.finetune_bundle on the same spectra (same seed → same weights); the bundle
    it writes loads and records the workspaces; inputs without temperature or an existing output are refused."""
    import torch

    from phonon_ml_core.learn.adaptation import finetune_bundle
    from phonon_ml_core.learn.bundle import load_bundle
    from phonon_ml_core.mantid_support.adapter import spectrum_to_workspace
    from phonon_ml_core.data.spectrum import Spectrum

    data = Spectrum.from_hdf5(tiny_dataset)
    for i in (0, 1):
        mantid.api.mtd.addOrReplace(f"a{i}", spectrum_to_workspace(data[i]))
    mantid.sapi.GroupWorkspaces(InputWorkspaces="a0,a1", OutputWorkspace="ag")
    out = tmp_path / "adapted"
    mantid.sapi.AdaptPhononModel(InputWorkspace="ag", ModelBundle=str(tiny_bundle), OutputBundle=str(out), Steps=3,
                                 LearningRate=1e-3)
    adapted = load_bundle(out)
    assert adapted.metadata["adaptation"][-1]["sources"] == ["a0", "a1"]
    assert adapted.metadata["adaptation"][-1]["background_slope_profiled"] is True
    ref = finetune_bundle(load_bundle(tiny_bundle), Spectrum.stack([data[0], data[1]]), steps=3, lr=1e-3,
                          progress=False)
    for (k, v), (_, w) in zip(ref.regressor.state_dict().items(), adapted.regressor.state_dict().items()):
        torch.testing.assert_close(v, w, rtol=1e-5, atol=1e-6, msg=k)
    assert not out.with_name("adapted.checkpoints").exists()
    with pytest.raises(ERRORS, match="already exists"):
        mantid.sapi.AdaptPhononModel(InputWorkspace="a0", ModelBundle=str(tiny_bundle), OutputBundle=str(out))
    # Layers=bias: only the output layer's bias moves, as in the core; a value outside the list is refused
    mantid.sapi.AdaptPhononModel(InputWorkspace="ag", ModelBundle=str(tiny_bundle), OutputBundle=str(tmp_path / "bias"),
                                 Steps=3, LearningRate=1e-3, Layers="bias")
    biased, base = load_bundle(tmp_path / "bias"), load_bundle(tiny_bundle)
    assert biased.metadata["adaptation"][-1]["layers"] == "bias"
    moved = [k for (k, v), (_, w) in zip(base.regressor.state_dict().items(), biased.regressor.state_dict().items())
             if not torch.equal(v, w)]
    assert moved == [f"net.{len(base.regressor.net) - 1}.bias"], moved
    with pytest.raises(ERRORS):
        mantid.sapi.AdaptPhononModel(InputWorkspace="ag", ModelBundle=str(tiny_bundle),
                                     OutputBundle=str(tmp_path / "b3"), Layers="first")
    assert not (tmp_path / "b3").exists()
    ws = spectrum_to_workspace(Spectrum(intensity=data[0].intensity, grid=data.grid, normalization="mean"))
    mantid.api.mtd.addOrReplace("noT", ws)
    with pytest.raises(ERRORS, match="temperature"):
        mantid.sapi.AdaptPhononModel(InputWorkspace="noT", ModelBundle=str(tiny_bundle),
                                     OutputBundle=str(tmp_path / "b2"))
    assert not (tmp_path / "b2").exists()


def test_predict_and_adapt_take_an_ensemble(mantid, tiny_dataset, tiny_bundle, tmp_path):
    """ModelBundle may name an ensemble (learn/ensemble.py): the table holds the core ensemble's prediction, and
    AdaptPhononModel writes an ensemble whose every member was adapted."""
    from phonon_ml_core.learn.ensemble import EnsembleBundle, build_ensemble, load_model
    from phonon_ml_core.mantid_support.adapter import spectrum_to_workspace
    from phonon_ml_core.data.spectrum import Spectrum

    build_ensemble([tiny_bundle, tiny_bundle]).save(tmp_path / "ens")
    data = Spectrum.from_hdf5(tiny_dataset)
    mantid.api.mtd.addOrReplace("pe", spectrum_to_workspace(data[0]))
    table = mantid.sapi.PredictForceConstants(InputWorkspace="pe", ModelBundle=str(tmp_path / "ens"),
                                              NumberOfSamples=64, ComputeNMSE=False, OutputWorkspace="prede")
    ref = load_model(tmp_path / "ens").predict(data[0], n_samples=64, seed=0)
    vals, std, _ = table_values(table)
    np.testing.assert_allclose(vals, ref["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, ref["std"], rtol=1e-4, atol=1e-6)
    mantid.api.mtd.addOrReplace("pa", spectrum_to_workspace(data[1]))
    mantid.sapi.GroupWorkspaces(InputWorkspaces="pe,pa", OutputWorkspace="pga")
    mantid.sapi.AdaptPhononModel(InputWorkspace="pga", ModelBundle=str(tmp_path / "ens"), Steps=2,
                                 OutputBundle=str(tmp_path / "ens2"))
    adapted = load_model(tmp_path / "ens2")
    assert isinstance(adapted, EnsembleBundle) and len(adapted.members) == 2
    assert all(m.metadata["adaptation"][-1]["steps"] == 2 for m in adapted.members)
