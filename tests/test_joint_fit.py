"""Joint fit of a temperature series (phonon_ml_core.fitting.joint, ``phonon-ml fit --joint``) on a small grid."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting import fit_spectrum
from phonon_ml_core.fitting.joint import fit_joint
from phonon_ml_core.fitting.joint_model import SeriesModel
from phonon_ml_core.specs import ALUMINIUM
from test_fitting import SETTINGS, grid, sim  # noqa: F401  (the same small grid and simulator fixtures)

T = np.array([100.0, 300.0, 500.0])
FC_300 = np.array([11.0, 9.8, -2.5, 2.6, 0.2])
SLOPE = np.array([-0.004, -0.003, 0.0005, -0.001, 0.0])  # N/m per K
TRUE = FC_300 + np.outer(T - 300.0, SLOPE)


def _series(sim, grid, sigma: float, seed: int = 0) -> list[Spectrum]:
    with torch.no_grad():
        y = sim(torch.as_tensor(TRUE), torch.as_tensor(T), linewidth=torch.full((3,), 0.03)).numpy()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(3):
        yi = np.where(grid.mask, y[i] + sigma * rng.standard_normal(y[i].shape), np.nan)
        out.append(Spectrum(intensity=mean_normalize(yi, grid.mask), grid=grid, temperature=float(T[i]),
                            normalization="mean", force_constants=TRUE[i]))
    return out


@pytest.fixture(scope="module")
def joint(sim, grid):
    spectra = _series(sim, grid, 0.003)
    return spectra, fit_joint(spectra, simulators=[sim] * 3, model="linear", max_evaluations=60)


def test_series_model_design():
    m = SeriesModel("linear", np.array([100.0, 300.0, 500.0]))
    assert np.allclose(m.design(), [[1, -1], [1, 0], [1, 1]])
    assert SeriesModel("quadratic", np.array([0.0, 1.0, 2.0])).n_coefficients == 3
    free = SeriesModel("free", np.array([100.0, 300.0, 500.0]))
    assert np.allclose(free.design(np.array([200.0])), [[0.5, 0.5, 0.0]])
    line = torch.as_tensor(np.outer([100.0, 300.0, 500.0], [1.0, 2.0]))[None]  # straight lines cost nothing
    assert float(free.roughness(line, torch.ones(2))) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="distinct temperatures"):
        SeriesModel("quadratic", np.array([100.0, 200.0]))
    with pytest.raises(ValueError, match="unknown series model"):
        SeriesModel("cubic", np.array([1.0, 2.0]))


def test_joint_recovers_linear_truth(joint):
    spectra, r = joint
    assert r.force_constants.shape == (3, 5) and r.names == ALUMINIUM.names
    # first shell recovered within 0.25 N/m and within 4 σ; 1XX falls with temperature as the truth does
    err = np.abs(r.force_constants[:, :2] - TRUE[:, :2])
    assert np.all(err < 0.25), (r.force_constants, TRUE)
    assert np.all(err < 4 * r.std[:, :2] + 0.05)
    assert np.all(np.diff(r.force_constants[:, 0]) < 0)
    slope_1xx = r.series["coefficients"][1][0] / r.series["temperature_scale"]
    assert slope_1xx == pytest.approx(SLOPE[0], abs=0.0015)
    assert np.all(r.nmse < 0.01) and r.series["model"] == "linear"
    assert r.series["inflation"]["inflation"] < 1.25  # white noise, right model: ≈ 1
    e = r.entries[0]
    for key in ("frequencies_thz", "frequencies_std_thz", "identifiability", "std_statistical", "background",
                "linewidth", "covariance", "rms_frequency_thz", "lattice_parameter"):
        assert key in e
    assert e["identifiability"]["constants"]["1XX"]["flag"] == "determined"


def test_joint_nmse_close_to_independent_fits(joint, sim):
    spectra, r = joint
    ind = [fit_spectrum(s, "gradient", simulator=sim, fit_linewidth=True, fit_background=True, n_starts=2,
                        adam_steps=4, n_polish=1, max_evaluations=60, uncertainty=False) for s in spectra]
    nm = np.array([x.nmse for x in ind])
    # the joint model has fewer parameters: never better than the independent optimum by much, and close to it
    assert abs(r.mean_nmse - nm.mean()) < 0.1 * nm.mean() + 2e-4, (r.nmse, nm)


def test_joint_refuses_bad_inputs(sim, grid):
    spectra = _series(sim, grid, 0.003)
    with pytest.raises(ValueError, match="at least two spectra"):
        fit_joint(spectra[:1], simulators=[sim])
    with pytest.raises(ValueError, match="unknown series model"):
        fit_joint(spectra, model="cubic", simulators=[sim] * 3)
    with pytest.raises(ValueError, match="different materials"):
        from dataclasses import replace

        from phonon_ml_core.specs import get_material
        fit_joint([spectra[0], replace(spectra[1], material=get_material("Cu"))], simulators=[sim] * 2)


def test_cli_joint_writes_strict_json(sim, grid, tmp_path):
    from phonon_ml_core.cli import main

    spectra = _series(sim, grid, 0.003)
    paths = []
    for s in spectra:
        p = tmp_path / f"s{int(s.temperature)}.h5"
        s.to_hdf5(p)
        paths.append(str(p))
    out = tmp_path / "RESULT.json"
    rc = main(["fit", "--joint", "--input", *paths, "--output", str(out), "--max-evaluations", "8",
               "--series-model", "linear", "--plot", str(tmp_path / "series.png")])
    assert rc == 0
    text = out.read_text()
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert len(doc["results"]) == 3 and doc["method"] == "joint-linear"
    assert [e["temperature"] for e in doc["results"]] == T.tolist()
    assert [e["input"] for e in doc["results"]] == paths
    assert doc["series"]["model"] == "linear" and len(doc["series"]["coefficients"]) == 2
    assert len(doc["series"]["covariance"]) == 10
    for e in doc["results"]:
        assert len(e["force_constants"]) == 5 and e["names"] == list(ALUMINIUM.names)
        assert set(e["frequencies_thz"]) == {"X", "L"} and "determined" in e["identifiability"]
    assert (tmp_path / "series.png").stat().st_size > 1000
    assert main(["fit", "--joint", "--input", paths[0], "--output", str(tmp_path / "one.json")]) == 2
    assert main(["fit", "--series-model", "free", "--input", *paths, "--output", str(tmp_path / "x.json")]) == 2


def test_free_model_with_leave_one_out_smoothness(joint, sim):
    spectra, _ = joint
    r = fit_joint(spectra, simulators=[sim] * 3, model="free", smoothness_grid=(1e-2,), max_evaluations=12)
    val = r.series["smoothness_validation"]
    assert val["method"] == "leave-one-temperature-out" and r.series["smoothness"] == 1e-2
    assert {float(k) for k in val["mean_nmse_left_out"]} == {1e-2} and r.series["model"] == "free"
    assert len(r.series["coefficients"]) == 3 and np.all(np.isfinite(r.nmse))  # a tiny budget: structure only
    assert all(v > 0 for v in val["mean_nmse_left_out"].values())
