"""REDUCED MODE (--quick): `phonon-ml demo --material Fe --instrument ARCS --ei 80` end to end, one temperature and a
tiny on-the-spot bundle; the full demo runs the same steps with three temperatures and a larger bundle."""
from __future__ import annotations

import json

import numpy as np
import pytest

from phonon_ml_core.cli import main
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.readers import read_spectrum
from phonon_ml_core.report.demo_data import DEMO_TRUE_SCALE, raw_grid
from phonon_ml_core.specs import STANDARD_EXPERIMENT, default_grid, get_material


def mean_square_frequency_bcc(fc) -> float:
    """M⟨ω²⟩ over the zone (N/m) of the bcc two-shell model: tr Σ_l φ(l) / 3 = 8·1XX + 2(2XX + 2·2YY)."""
    return 8 * fc[0] + 2 * (fc[2] + 2 * fc[3])


def test_raw_grid_of_the_standard_experiment_is_the_aluminium_demo_grid():
    g = raw_grid(STANDARD_EXPERIMENT)
    np.testing.assert_array_equal(g.q, np.arange(0.025, 10.2, 0.05))
    np.testing.assert_array_equal(g.energy, np.arange(5.125, 47.0, 0.25))
    assert g.ei_mev == 50.0 and g.two_theta_deg == (4.5, 137.15)


def test_demo_iron_on_arcs_at_80_mev_quick(tmp_path):
    out = tmp_path / "fe"
    assert main(["demo", "--material", "Fe", "--instrument", "ARCS", "--ei", "80", "--quick",
                 "--output-dir", str(out)]) == 0
    fe = get_material("Fe")
    truth = DEMO_TRUE_SCALE * np.asarray(fe.reference_constants)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["names"] == ["1XX", "1XY", "2XX", "2YY"] and summary["material"]["element"] == "Fe"
    assert summary["experiment"]["ei_mev"] == 80.0 and summary["experiment"]["instrument"] == "ARCS"
    np.testing.assert_allclose(summary["true_force_constants"], truth)
    # the measured-like Mantid file carries Ei, T and the instrument; preprocessing lands on the 80 meV default grid
    raw = read_spectrum(out / "fe_300K_sqw.nxs")
    assert raw.quantity == "S" and raw.temperature == 300.0 and raw.grid.ei_mev == 80.0 and raw.instrument == "ARCS"
    ready = Spectrum.from_hdf5(out / "fe_300K_sqw_preprocessed.h5")
    assert ready.material.same_as(fe) and ready.experiment.ei_mev == 80.0
    want = default_grid(80.0, "ARCS")
    np.testing.assert_array_equal(ready.grid.q, want.q)
    assert ready.grid.n_valid > 0.98 * want.n_valid
    (rec,) = summary["spectra"]
    # fits and the on-the-spot prediction, or a note saying why a step was skipped in this installation
    if rec["fits"]:
        assert set(rec["fits"]) == {"nelder-mead", "gradient"}
        for fit in rec["fits"].values():
            fc = np.array(fit["force_constants"])
            assert mean_square_frequency_bcc(fc) == pytest.approx(mean_square_frequency_bcc(truth), rel=0.05)
            assert fit["nmse"] < 0.1
    else:
        assert any("fits skipped" in n for n in summary["notes"])
    if rec["predicted"]:
        pred = np.array(rec["predicted"]["force_constants"])
        assert pred.shape == (4,) and abs(pred[0] - truth[0]) < 0.25 * truth[0]
        assert any("trained on the spot" in n for n in summary["notes"])
    else:
        assert any("prediction skipped" in n for n in summary["notes"])
    assert "| true |" in (out / "report.md").read_text()


def test_demo_unknown_material_or_instrument_fails_first(tmp_path, capsys):
    assert main(["demo", "--material", "Xx", "--output-dir", str(tmp_path / "a")]) == 2
    assert "unknown material" in capsys.readouterr().err
    assert main(["demo", "--material", "Fe", "--instrument", "IN5", "--output-dir", str(tmp_path / "b")]) == 2
    assert "unknown instrument" in capsys.readouterr().err and not (tmp_path / "b").exists()
