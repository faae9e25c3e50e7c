"""Priors in the joint fit and the nuisance options of ``phonon-ml fit`` (issue 16, item 3)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from phonon_ml_core.cli import main
from phonon_ml_core.fitting.joint import fit_joint
from phonon_ml_core.fitting.joint_model import SeriesModel
from phonon_ml_core.fitting.joint_problem import JointProblem
from phonon_ml_core.fitting.priors import reference_prior
from phonon_ml_core.specs import ALUMINIUM
from test_fitting import SETTINGS, grid, sim  # noqa: F401  (the small grid and simulator fixtures)
from test_joint_fit import TRUE, T, _series

REF = np.array(ALUMINIUM.reference_constants)


def test_joint_objective_adds_the_mean_prior_penalty(sim, grid):
    spectra = _series(sim, grid, 0.003)
    bounds = np.array(ALUMINIUM.fit_bounds)
    pr = reference_prior(ALUMINIUM, "all", weight=0.5)
    args = (spectra, [sim] * 3, T, SeriesModel("free", T), bounds, False, (1e-3, 0.3), 0.03, True)
    plain, with_prior = JointProblem(*args), JointProblem(*args, prior=pr)
    theta = torch.as_tensor(TRUE.ravel()[None])
    with torch.no_grad():
        d = float(with_prior.nmse(theta)[1][0] - plain.nmse(theta)[1][0])
    assert d == pytest.approx(pr.penalty(TRUE).mean(), rel=1e-10)
    # the Levenberg–Marquardt rows carry the same penalty: Σ w² = N × mean penalty (constants inside the bounds)
    from phonon_ml_core.fitting.joint import _wall_residuals

    jac, w = _wall_residuals(with_prior, TRUE.ravel())
    assert float((w ** 2).sum()) == pytest.approx(3 * pr.penalty(TRUE).mean(), rel=1e-10)
    assert jac.shape == (len(w), with_prior.n_params) and np.abs(jac).sum() > 0


def test_joint_prior_pulls_towards_the_reference_and_is_recorded(sim, grid):
    spectra = _series(sim, grid, 0.003)
    pr = reference_prior(ALUMINIUM, "all", width_scale=0.02, weight=1.0)
    pulled = fit_joint(spectra, simulators=[sim] * 3, max_evaluations=8, uncertainty=False, prior=pr)
    # the data alone give the truth (test_joint_fit); a strong prior at the reference wins
    assert np.abs(pulled.force_constants - REF).sum() < 0.5 * np.abs(TRUE - REF).sum()
    assert pulled.series["prior"]["active"] == list(ALUMINIUM.names)


def test_fit_cli_nuisance_options(sim, grid, tmp_path, capsys):
    s = _series(sim, grid, 0.003)
    paths = []
    for x in s[:2]:
        paths.append(str(tmp_path / f"s{int(x.temperature)}.h5"))
        x.to_hdf5(paths[-1])
    out = tmp_path / "r.json"
    assert main(["fit", "--method", "gradient", "--input", paths[0], "--output", str(out), "--max-evaluations",
                 "6", "--linewidth-model", "affine", "--prior", "all", "--prior-width-scale", "2"]) == 0
    doc = json.loads(out.read_text())
    assert doc["linewidth_model"] == "affine" and doc["prior"]["active"] == list(ALUMINIUM.names)
    assert "linewidth_offset" in doc["results"][0]["message"]
    assert main(["fit", "--joint", "--input", *paths, "--output", str(tmp_path / "j.json"),
                 "--linewidth-model", "affine"]) == 2
    assert "not available with --joint" in capsys.readouterr().err
    assert main(["fit", "--input", paths[0], "--output", str(tmp_path / "k.json"), "--prior", "all",
                 "--prior-width-scale", "0"]) == 2
    assert "--prior-width-scale must be > 0" in capsys.readouterr().err


def test_cli_choices_are_the_cores():
    from phonon_ml_core.cli import choices
    from phonon_ml_core.fitting.linewidth import LINEWIDTH_MODELS
    from phonon_ml_core.fitting.priors import PRIOR_SCOPES

    assert choices.LINEWIDTH_MODELS == LINEWIDTH_MODELS
    assert choices.PRIOR_CHOICES[1:] == PRIOR_SCOPES and choices.PRIOR_CHOICES[0] == "none"
