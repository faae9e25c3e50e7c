"""The evaluation report (phonon-ml evaluate) and the latent analysis, on a tiny budget."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from phonon_ml_core.report.evaluation import EvaluationBudget, ModelRecord, monotonicity, run_evaluation, study_targets
from phonon_ml_core.report.latent import analyse_latent, write_latent_analysis
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.specs import ALUMINIUM

AL_REFERENCE_FC = np.array(ALUMINIUM.reference_constants)

TINY_FIT = {"max_evaluations": 6, "n_starts": 2, "adam_steps": 1, "n_polish": 1}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """64 simulated, labelled spectra (T 40–660 K, γ 0–0.06) and three 'measured' files (simulated, 100–500 K)."""
    from phonon_ml_core.simulator.dataset import SamplingConfig, generate_dataset
    from phonon_ml_core.fitting.spectrum_fit import get_simulator
    from phonon_ml_core.specs.grid import standard_grid

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("evaluation_data")
    sim_path = generate_dataset(d / "sim.h5", 64, SamplingConfig(temperature_range=(40, 660),
                                                                 linewidth_range=(0, 0.06), seed=1),
                                progress=False)
    grid = standard_grid()
    sim = get_simulator(grid, "chi''")
    fc = np.stack([AL_REFERENCE_FC * 0.95, AL_REFERENCE_FC * 0.92, AL_REFERENCE_FC * 0.9])
    with torch.no_grad():
        y = sim(fc, np.array([100.0, 300.0, 500.0]), linewidth=np.array([0.02, 0.025, 0.03])).numpy()
    measured = []
    for k, t in enumerate((100.0, 300.0, 500.0)):
        p = d / f"meas_{t:.0f}K.h5"
        Spectrum(intensity=y[k], grid=grid, temperature=t, normalization="mean").to_hdf5(p)
        measured.append(p)
    return {"sim": Path(sim_path), "measured": measured}


@pytest.fixture(scope="module")
def report(tiny_data, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("report")
    budget = EvaluationBudget(name="test", n_simulated=64, families=("fcvae",), latent_dims=(4,),
                              pretrain_epochs=2, finetune_epochs=2, extended_epochs=1, regressor_epochs=2,
                              batch_size=32, n_samples=50, fit=TINY_FIT, physics_steps=1, physics_finetune_steps=2,
                              leave_one_out=True, fit_methods=("gradient", "nelder-mead"))
    summary = run_evaluation(out, measured_files=tiny_data["measured"], data=tiny_data["sim"], budget=budget,
                             progress=False)
    return out, summary


def test_report_builds(report) -> None:
    out, summary = report
    page = (out / "report.html").read_text()
    imgs = re.findall(r'<img src="([^"]+)"', page)
    assert len(imgs) >= 6
    for src in imgs + re.findall(r"<a href='([^']+)'", page):
        assert not src.startswith("/") and (out / src).is_file(), src
    assert (out / "summary.json").is_file() and json.loads((out / "summary.json").read_text())["best_model"]
    with open(out / "table1_nmse.csv") as f:
        rows = list(csv.DictReader(f))
    # three strategies + the fit benchmark, one NMSE column per measured temperature
    assert [r["model"] for r in rows] == ["fcvae-4-sim-only", "fcvae-4-fine-tuned", "fcvae-4-extended",
                                          "fcvae-4-fine-tuned, left out",
                                          "fit (gradient, γ and background slope free)",
                                          "fit (nelder-mead, γ and background slope free)"]
    for r in rows:
        vals = [float(r[k]) for k in ("nmse_100K", "nmse_300K", "nmse_500K", "mean_nmse")]
        assert all(np.isfinite(vals)) and all(v >= 0 for v in vals)
        if not r["model"].startswith("fit"):   # the ML rows with the fit's background slope profiled, and without
            assert float(r["mean_nmse"]) <= float(r["mean_nmse_no_background"]) + 1e-12
    with open(out / "r2_simulated_test.csv") as f:
        r2 = list(csv.DictReader(f))
    assert len(r2) == 3 and all(np.isfinite(float(r["r2_1XX"])) for r in r2)
    assert summary["monotonicity_1XX"]["fit"]["temperatures"] == [100.0, 300.0, 500.0]
    gap = summary["targets"]["fcvae_gap_to_fit"]           # the study's claims, from the table's own numbers
    ft = next(r for r in rows if r["model"] == "fcvae-4-fine-tuned")
    assert gap["model"] == "fcvae-4-fine-tuned" and gap["met"] == (gap["gap"] <= 0.01)
    assert gap["gap"] == pytest.approx(float(ft["mean_nmse"]) - summary["fit_mean_nmse"], abs=1e-6)
    assert "The study's claims on this run" in page
    assert summary["best_model"] != "fcvae-4-fine-tuned, left out"       # the best model has a bundle
    assert (out / "models" / "fcvae-4-extended" / "metadata.json").is_file()
    assert not (out / "work").exists()


def test_study_targets_rank_the_best_fine_tuned_model_of_each_family() -> None:
    t = np.array([50.0, 300.0, 600.0])

    def rec(family, dim, strategy, nmse, x1):
        return ModelRecord(family, dim, strategy, object(), None, 0.0, np.zeros(5), np.zeros(5),
                           np.column_stack([x1, np.ones((3, 4))]), np.zeros((3, 5)), np.array(nmse))

    records = [rec("fcvae", 30, "fine-tuned", [0.20, 0.21, 0.22], [9.0, 8.8, 8.9]),
               rec("fcvae", 10, "fine-tuned", [0.19, 0.20, 0.21], [9.0, 8.5, 8.0]),
               rec("fcvae", 10, "sim-only", [0.10, 0.10, 0.10], [9.0, 8.5, 8.0]),   # not fine-tuned: not ranked
               rec("fcae", 10, "fine-tuned", [0.20, 0.20, 0.20], [9.0, 8.5, 8.0]),
               rec("cnnae", 10, "fine-tuned", [0.18, 0.19, 0.20], [9.0, 8.5, 8.0])]
    out = study_targets(records, 0.195, t)
    assert out["best_fine_tuned"]["fcvae"]["model"] == "fcvae-10-fine-tuned"
    assert out["fcvae_gap_to_fit"]["gap"] == pytest.approx(0.005) and out["fcvae_gap_to_fit"]["met"]
    assert out["fcvae_better_than"] == {"fcae": True, "cnnae": False}
    assert out["fcvae_1xx_non_increasing"] == {"fcvae-30-fine-tuned": False, "fcvae-10-fine-tuned": True,
                                               "fcvae-10-sim-only": True}
    assert not study_targets(records, 0.17, t)["fcvae_gap_to_fit"]["met"]
    assert study_targets([], 0.19, t) == {}


def test_monotonicity_check() -> None:
    m = monotonicity(np.array([640, 50, 280]), np.array([7.8, 9.7, 8.4]), np.array([0.1, 0.1, 0.1]))
    assert m["non_increasing"] and m["temperatures"] == [50, 280, 640] and m["slope_per_100K"] < 0
    m = monotonicity(np.array([50, 280, 350]), np.array([9.7, 8.4, 8.6]), np.array([0.3, 0.3, 0.3]))
    assert not m["non_increasing"] and m["n_increasing_steps"] == 1 and m["n_significant_increasing_steps"] == 0


def test_latent_analysis(report, tiny_data, tmp_path) -> None:
    from phonon_ml_core.learn.bundle import load_bundle

    out, _ = report
    bundle = load_bundle(out / "models" / "fcvae-4-sim-only")
    data = Spectrum.from_hdf5(tiny_data["sim"])
    res = analyse_latent(bundle, data, threshold=0.01)
    L = bundle.autoencoder.latent_dim
    assert res.kl.shape == (L,) and np.all(res.kl >= 0)
    assert res.n_active == int((res.kl > 0.01).sum())
    assert list(res.kl[res.order]) == sorted(res.kl, reverse=True)
    assert res.fc_correlation.shape == (L, 6)  # 5 constants + T (temperatures vary)
    assert np.allclose(np.diag(res.latent_correlation), 1.0)
    assert np.all(np.abs(res.fc_correlation[np.isfinite(res.fc_correlation)]) <= 1.0)
    assert np.all(res.sensitivity_rms > 0)

    # a dimension the decoder ignores: zero its first-layer weights
    with torch.no_grad():
        bundle.autoencoder.decoder[0].weight[:, 1] = 0.0
    res = analyse_latent(bundle, data, threshold=0.01)
    assert res.sensitivity_rms[1] == 0.0 and res.sensitivity_max[1] == 0.0
    assert np.all(np.delete(res.sensitivity_rms, 1) > 0)
    summary = write_latent_analysis(res, tmp_path / "latent")
    for name in summary["files"].values():
        assert (tmp_path / "latent" / name).is_file()
    with open(tmp_path / "latent" / summary["files"]["latent_correlation_csv"]) as f:
        rows = list(csv.reader(f))
    assert len(rows) == L + 1 and all(float(rows[1 + d][1 + d]) == 1.0 for d in range(L))


def test_latent_analysis_cli(report, tiny_data, tmp_path) -> None:
    from phonon_ml_core.cli import main

    out, _ = report
    rc = main(["latent-analysis", "--model", str(out / "models" / "fcvae-4-fine-tuned"), "--data",
               str(tiny_data["sim"]), "--output-dir", str(tmp_path / "la"), "--max-spectra", "20", "--no-figures"])
    assert rc == 0
    s = json.loads((tmp_path / "la" / "latent_summary.json").read_text())
    assert len(s["kl_per_dimension"]) == 4 and s["n_spectra"] == 20
    assert s["n_active"] == sum(v > 0.01 for v in s["kl_per_dimension"])


def test_latent_analysis_deterministic_family(tiny_data) -> None:
    """fcae has no posterior: activity = relative variance of the codes (max 1), same threshold."""
    from phonon_ml_core.learn.bundle import Bundle
    from phonon_ml_core.learn.networks import ForceConstantRegressor, build_autoencoder

    data = Spectrum.from_hdf5(tiny_data["sim"])
    torch.manual_seed(0)
    ae = build_autoencoder("fcae", data.grid.mask, latent_dim=3)
    bundle = Bundle(ae, ForceConstantRegressor(3), data.grid, AL_REFERENCE_FC, np.ones(5))
    res = analyse_latent(bundle, data)
    assert res.activity_measure == "relative_code_variance" and res.logvar is None
    assert res.kl.shape == (3,) and np.isclose(res.kl.max(), 1.0) and np.all(res.kl >= 0)
    assert res.n_active == int((res.kl > 0.01).sum()) >= 1
    assert np.allclose(np.diag(res.latent_correlation), 1.0)


def test_evaluate_cli_without_measured(tiny_data, tmp_path) -> None:
    """The command line, simulated part only (`--measured` with no file): sim-only models, R² table, latent."""
    from phonon_ml_core.cli import main

    out = tmp_path / "ev"
    rc = main(["evaluate", "--measured", "--data", str(tiny_data["sim"]), "--output-dir", str(out),
               "--latent-dims", "3", "--epochs", "1", "--regressor-epochs", "1", "--no-models", "--no-progress"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["strategies"] == ["sim-only"] and any("no measured" in n for n in s["notes"])
    assert [m["name"] for m in s["models"]] == ["fcvae-3-sim-only"]
    page = (out / "report.html").read_text()
    assert "No measured spectra" in page
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (out / src).is_file()
    assert s["latent"]["latent_dim"] == 3 and not (out / "models").exists()


def test_evaluation_checks_inputs_before_simulating(tmp_path) -> None:
    """Measured spectra on another grid, a bad budget or threshold fail at once, before any simulation."""
    from phonon_ml_core.report.evaluation import get_budget
    from phonon_ml_core.specs.grid import Grid, standard_grid

    g = standard_grid()
    other = Grid.from_axes(g.q[:60], g.energy)
    bad = tmp_path / "other_grid.h5"
    Spectrum(intensity=np.where(other.mask, 1.0, np.nan) * np.linspace(0, 1, other.mask.size).reshape(other.shape),
             grid=other, temperature=300.0).normalized().to_hdf5(bad)
    budget = EvaluationBudget(name="test", n_simulated=20, pretrain_epochs=1, regressor_epochs=1)
    with pytest.raises(ValueError, match="preprocess"):
        run_evaluation(tmp_path / "out", measured_files=[bad], budget=budget, progress=False)
    assert not list((tmp_path / "out").glob("simulated_*"))
    with pytest.raises(ValueError, match="threshold"):
        run_evaluation(tmp_path / "out", measured_files=[], budget=budget, latent_threshold=-1, progress=False)
    with pytest.raises(ValueError, match="fit methods"):   # a budget object is checked as well
        run_evaluation(tmp_path / "out", measured_files=[], budget=EvaluationBudget(fit_methods=()), progress=False)
    for kw, message in [({"n_samples": 0}, "--samples"), ({"regressor_epochs": 0}, "at least 1 epoch"),
                        ({"fit_methods": ("lbfgs",)}, "fit methods"), ({"finetune_epochs": -1}, "≥ 0")]:
        with pytest.raises(ValueError, match=message):
            get_budget("quick", **kw)
