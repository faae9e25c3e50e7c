"""``phonon-ml fit``/``predict``/``dispersion`` for any material: reduced Mantid files in, RESULT.json with names,
material, lattice and zone-boundary frequencies out; clear errors before heavy work."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from phonon_ml_core.cli import main
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.physics.units import FC_TO_MEV2, MEV_PER_THZ
from phonon_ml_core.prediction.predict import shipped_bundle_path
from phonon_ml_core.preprocess.pipeline import detailed_balance_factor
from phonon_ml_core.readers import write_mantid_nexus
from phonon_ml_core.specs import ALUMINIUM, Experiment, Material, fit_bounds_rule, get_material, sampling_rule

FE = get_material("Fe")
T_K = 300.0


def _reduced_file(path, material, experiment, fc, temperature):
    """A Mantid SofQW processed NeXus file (rows |Q|, columns E) of S = χ''/(π(1 − e^{−E/kT})) from the simulator."""
    g = experiment.grid
    sim = get_simulator(material, experiment, grid=g)
    with torch.no_grad():
        chi = sim(torch.as_tensor(np.asarray(fc, float))[None], temperature)[0].double().numpy()
    chi = chi - np.nanmin(chi[g.mask]) + 0.1  # positive, as measured intensities
    s = np.where(g.mask, chi / detailed_balance_factor(g.energy, temperature)[:, None], np.nan)
    write_mantid_nexus(path, s.T, g.energy_edges, g.q_edges, errors=0.01 * np.abs(s.T),
                       logs={"Ei": experiment.ei_mev, "SampleTemp": temperature})
    return path


@pytest.fixture(scope="module")
def fe_run(tmp_path_factory):
    exp = Experiment.create("ARCS", 80.0)
    return _reduced_file(tmp_path_factory.mktemp("fe") / "fe_run.nxs", FE, exp, FE.reference_constants, T_K)


def test_fit_cli_on_a_reduced_mantid_file_of_iron(fe_run, tmp_path):
    out = tmp_path / "RESULT.json"
    rc = main(["fit", "--material", "fe", "--input", str(fe_run), "--output", str(out), "--max-evaluations", "30",
               "--no-fit-linewidth", "--no-fit-background"])
    assert rc == 0
    doc = json.loads(out.read_text())  # strict JSON (no NaN)
    (e,) = doc["results"]
    assert e["names"] == ["1XX", "1XY", "2XX", "2YY"] and e["material"] == FE.name and e["lattice"] == "bcc"
    assert len(e["force_constants"]) == 4 and e["reduced_input"] is True
    assert e["experiment"]["instrument"] == "ARCS" and e["experiment"]["ei_mev"] == 80.0
    assert e["temperature"] == pytest.approx(T_K)
    assert set(e["frequencies_thz"]) == {"H", "N", "P"} and set(e["frequencies_std_thz"]) == {"H", "N", "P"}
    assert e["nmse"] < 0.05
    # the reported frequencies are the BvK model's at the fitted constants; H is near the reference's
    model = FE.bvk_model(e["force_constants"])
    q_h = np.array([1.0, 0.0, 0.0]) * 2 * np.pi / model.lattice_parameter
    np.testing.assert_allclose(e["frequencies_thz"]["H"], np.sort(model.frequencies_thz(q_h)), rtol=1e-10)
    ref_h = FE.bvk_model().frequencies_thz(q_h)
    np.testing.assert_allclose(e["frequencies_thz"]["H"], ref_h, rtol=0.03)


def test_fit_cli_errors_before_heavy_work(fe_run, tmp_path, capsys):
    out = str(tmp_path / "R.json")
    assert main(["fit", "--material", "Xx", "--input", str(fe_run), "--output", out]) == 2
    assert "unknown material" in capsys.readouterr().err
    assert main(["fit", "--material", "Fe", "--start", "1,2,3,4,5", "--input", str(fe_run), "--output", out]) == 2
    assert "1XX,1XY,2XX,2YY" in capsys.readouterr().err
    h5 = tmp_path / "fe.h5"
    g = Experiment.create("ARCS", 80.0).grid
    Spectrum(intensity=np.where(g.mask, 0.0, np.nan), grid=g, temperature=T_K, material=FE).to_hdf5(h5)
    assert main(["fit", "--material", "Al", "--input", str(h5), "--output", out]) == 2
    err = capsys.readouterr().err
    assert "Fe" in err and "--material" in err
    assert not (tmp_path / "R.json").exists()


@pytest.mark.skipif(shipped_bundle_path() is None, reason="no shipped bundle")
def test_predict_cli_on_a_reduced_file_and_material_check(fe_run, tmp_path, capsys):
    al = _reduced_file(tmp_path / "al.nxs", ALUMINIUM, Experiment.create("ARCS", 50.0), ALUMINIUM.reference_constants,
                       100.0)
    out = tmp_path / "P.json"
    assert main(["predict", "--input", str(al), "--output", str(out), "--samples", "200"]) == 0
    (e,) = json.loads(out.read_text())
    assert e["names"] == list(ALUMINIUM.names) and e["material"] == ALUMINIUM.name and e["lattice"] == "fcc"
    assert e["nmse"] is not None and e["nmse"] < 0.3
    one_xx = e["force_constants"][0]
    # conventions §1: M ω_L²(X) = 16·1XX — the highest branch at X
    x_l = np.sqrt(16 * one_xx * FC_TO_MEV2 / ALUMINIUM.mass_u) / MEV_PER_THZ
    assert e["frequencies_thz"]["X"][2] == pytest.approx(x_l, rel=1e-9)
    assert all(v is not None and v > 0 for v in e["frequencies_std_thz"]["X"])
    assert main(["predict", "--material", "Fe", "--input", str(fe_run), "--output", str(tmp_path / "Q.json")]) == 2
    assert "trained for" in capsys.readouterr().err


def _sc_material(tmp_path):
    ref = (20.0, 2.0, 5.0, 4.0, 0.5)  # sc two shells: 1XX, 1YY, 2XX, 2XY, 2ZZ (N/m)
    d = FE.to_dict()
    d.update(name="sc test metal", lattice="sc", n_shells=2, names=["1XX", "1YY", "2XX", "2XY", "2ZZ"],
             reference_constants=list(ref), sampling_ranges=[list(r) for r in sampling_rule(ref)],
             fit_bounds=[list(r) for r in fit_bounds_rule(ref)], extended_reference={})
    p = tmp_path / "sc.json"
    Material.from_dict(d).to_json_file(p)
    return p


def test_dispersion_bcc_and_sc_with_bands(tmp_path):
    res = tmp_path / "r.json"
    fc = list(FE.reference_constants)
    res.write_text(json.dumps([{"names": list(FE.names), "material_spec": FE.to_dict(), "force_constants": fc,
                                "std": [0.5, 0.5, 0.5, 0.2]}]))
    png, csv = tmp_path / "fe.png", tmp_path / "fe.csv"
    assert main(["dispersion", "--result", str(res), "--output", str(png), "--csv", str(csv)]) == 0
    data = np.loadtxt(csv, delimiter=",")
    assert png.stat().st_size > 1000 and data.shape[1] == 7
    assert np.all(data[len(data) // 2:, 4:] >= 0) and np.nanmax(data[:, 4:]) > 0
    h = FE.bvk_model().frequencies_thz(np.array([2 * np.pi / FE.bvk_model().lattice_parameter, 0, 0])) * MEV_PER_THZ
    assert data[:, 1:4].max() >= h.max() - 1e-6
    sc = _sc_material(tmp_path)
    png2, csv2 = tmp_path / "sc.png", tmp_path / "sc.csv"
    assert main(["dispersion", "--material", str(sc), "--output", str(png2), "--csv", str(csv2)]) == 0
    mat = get_material(str(sc))
    a = mat.bvk_model().lattice_parameter
    x = mat.bvk_model().frequencies_thz(np.array([np.pi / a, 0, 0])) * MEV_PER_THZ  # X = (1/2, 0, 0) 2π/a
    data2 = np.loadtxt(csv2, delimiter=",")
    assert np.min(np.abs(data2[:, 1:4] - x).max(1)) < 1e-9  # the path passes through X
    assert main(["dispersion", "--material", "Fe", "--force-constants", "1,2,3", "--output",
                 str(tmp_path / "x.png")]) == 2
