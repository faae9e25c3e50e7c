"""The README's main job: `phonon-ml demo` end to end in its reduced mode, and the shipped bundle."""
from __future__ import annotations

import json

import numpy as np
import pytest

from phonon_ml_core.cli import main
from phonon_ml_core.report.demo import DEMO_TRUE_FC
from phonon_ml_core.prediction.predict import shipped_bundle_path
from phonon_ml_core.readers import read_spectrum


def test_demo_quick_runs_end_to_end(tmp_path, capsys, monkeypatch):
    """The reduced demo in a fresh folder with its default output (the README's phonon_ml_output/demo, parent
    created): one temperature, the shipped bundle's prediction and both fit methods on the measured-like Mantid
    file (stated tolerances: prediction 1XX, 1XY and M⟨ω²⟩ within 10 %, models/README.md; fits 1XX, 1XY within
    5 % and M⟨ω²⟩ within 3 %)."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "phonon_ml_output" / "demo"
    assert main(["demo", "--quick"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["true_force_constants"] == DEMO_TRUE_FC.tolist()
    (rec,) = summary["spectra"]
    assert rec["temperature"] == 300.0
    msq = lambda f: 4 * (2 * f[0] + f[2]) + 2 * (f[3] + 2 * f[4])  # noqa: E731  M<ω²>, conventions §1
    assert set(rec["fits"]) == {"nelder-mead", "gradient"}
    for fit in rec["fits"].values():
        # the simulated measurement went through the Mantid NeXus reader, rebinning, background subtraction
        # and detailed balance: the well-determined constants come back to a few per cent
        fc = np.array(fit["force_constants"])
        assert abs(fc[0] - DEMO_TRUE_FC[0]) < 0.05 * DEMO_TRUE_FC[0]
        assert abs(fc[1] - DEMO_TRUE_FC[1]) < 0.05 * DEMO_TRUE_FC[1]
        assert abs(msq(fc) - msq(DEMO_TRUE_FC)) < 0.03 * msq(DEMO_TRUE_FC)
        assert fit["nmse"] < 0.05
    if shipped_bundle_path() is not None:
        pred = np.array(rec["predicted"]["force_constants"])
        assert np.all(np.array(rec["predicted"]["std"]) > 0)
        assert abs(pred[0] - DEMO_TRUE_FC[0]) < 0.10 * DEMO_TRUE_FC[0], pred
        assert abs(pred[1] - DEMO_TRUE_FC[1]) < 0.10 * DEMO_TRUE_FC[1], pred
        assert abs(msq(pred) - msq(DEMO_TRUE_FC)) < 0.10 * msq(DEMO_TRUE_FC), pred
        assert rec["predicted"]["nmse"] < 0.1
    raw = read_spectrum(out / "al_300K_sqw.nxs")
    assert raw.quantity == "S" and raw.temperature == 300.0
    for name in ("report.md", "constants.png", "al_300K_sqw_fit.png", "al_300K_sqw_preprocessed.h5"):
        assert (out / name).stat().st_size > 0
    assert "| true |" in (out / "report.md").read_text()


def test_demo_input_without_temperature_asks_for_it(tmp_path, capsys):
    from phonon_ml_core.specs.grid import standard_grid
    from phonon_ml_core.simulator import simulate_spectrum

    s = simulate_spectrum(DEMO_TRUE_FC, 300.0, grid=standard_grid())
    from dataclasses import replace
    replace(s, temperature=None).to_hdf5(tmp_path / "no_t.h5")
    assert main(["demo", "--input", str(tmp_path / "no_t.h5"), "--no-predict", "--output-dir",
                 str(tmp_path / "d")]) == 2
    assert "pass --temperature" in capsys.readouterr().err
    assert main(["demo", "--temperature", "300", "--output-dir", str(tmp_path / "d2")]) == 2
    assert "--input" in capsys.readouterr().err


def test_demo_rejects_missing_input(tmp_path, capsys):
    assert main(["demo", "--input", str(tmp_path / "nope.nxs"), "--output-dir", str(tmp_path / "d")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.skipif(shipped_bundle_path() is None, reason="no bundle shipped in models/")
def test_shipped_bundle_predicts_demo_constants():
    """The shipped FCVAE bundle recovers the demo's constants from clean simulated spectra (stated tolerances:
    1XX and 1XY within 10 %, M⟨ω²⟩ within 10 %)."""
    from phonon_ml_core.learn.bundle import load_bundle
    from phonon_ml_core.simulator import simulate_spectrum

    bundle = load_bundle(shipped_bundle_path())
    for t in (50.0, 300.0, 640.0):
        s = simulate_spectrum(DEMO_TRUE_FC, t, grid=bundle.grid)
        pred = bundle.predict(s, n_samples=2000)
        fc = pred["mean"]
        assert np.all(pred["std"] > 0)
        assert abs(fc[0] - DEMO_TRUE_FC[0]) < 0.10 * DEMO_TRUE_FC[0], (t, fc)
        assert abs(fc[1] - DEMO_TRUE_FC[1]) < 0.10 * DEMO_TRUE_FC[1], (t, fc)
        msq = lambda f: 4 * (2 * f[0] + f[2]) + 2 * (f[3] + 2 * f[4])  # noqa: E731
        assert abs(msq(fc) - msq(DEMO_TRUE_FC)) < 0.10 * msq(DEMO_TRUE_FC), (t, fc)


def test_spectrum_missing_a_few_pixels_is_put_on_the_bundle_grid():
    """Preprocessed data whose low-|Q| edge misses a few of the model grid's pixels are predicted from (the
    missing pixels at the mean), while a spectrum lacking many pixels or on other axes is refused."""
    from dataclasses import replace

    from phonon_ml_core.specs.grid import Grid, standard_grid
    from phonon_ml_core.data.normalization import is_mean_normalized
    from phonon_ml_core.learn.inputs import onto_model_grid
    from phonon_ml_core.simulator import simulate_spectrum

    g = standard_grid()
    s = simulate_spectrum(DEMO_TRUE_FC, 300.0, grid=g)
    assert onto_model_grid(s, g) is s
    lost = g.mask.copy()
    cols = np.where(lost.any(0))[0]
    lost[:, cols[0]] = False  # the lowest-|Q| column: a few dozen pixels
    part = replace(s, grid=Grid(q=g.q, energy=g.energy, mask=lost, ei_mev=g.ei_mev),
                   intensity=np.where(lost, s.intensity * 3.0 + 1.0, np.nan), normalization="none")
    on = onto_model_grid(part, g)
    n_missing = int(g.mask.sum() - lost.sum())
    assert 0 < n_missing < 0.02 * g.n_valid and on.metadata["filled_pixels"] == n_missing
    assert on.grid is g and is_mean_normalized(on.intensity, g.mask)
    assert np.all(on.intensity[g.mask & ~lost] == 0.0)
    few = g.mask.copy()
    few[:, cols[:10]] = False
    with pytest.raises(ValueError, match="lacks"):
        onto_model_grid(replace(s, grid=Grid(q=g.q, energy=g.energy, mask=few, ei_mev=g.ei_mev),
                                 intensity=np.where(few, s.intensity, np.nan)), g)
    other = Grid.from_axes(g.q[:50], g.energy)
    with pytest.raises(ValueError, match="preprocess"):
        onto_model_grid(replace(s, grid=other, intensity=s.intensity[:, :50]), g)


@pytest.mark.skipif(shipped_bundle_path() is None, reason="no bundle shipped in models/")
def test_predict_command_writes_the_result_contract(tmp_path, capsys):
    """`phonon-ml predict` without --model (conventions §6): one entry per input spectrum with the five
    constants, their std, the NMSE of the spectrum simulated from them and the predicted linewidth; the
    shipped bundle is blind to a smooth background added to the input."""
    from phonon_ml_core.specs.grid import standard_grid
    from phonon_ml_core.data.normalization import mean_normalize
    from phonon_ml_core.simulator import simulate_spectrum
    from phonon_ml_core.data.spectrum import Spectrum

    g = standard_grid()
    s = simulate_spectrum(DEMO_TRUE_FC, 300.0, grid=g, linewidth=0.03)
    s.to_hdf5(tmp_path / "clean.h5")
    e, q = np.meshgrid(g.energy, g.q, indexing="ij")
    bg = 0.2 * (q / q.max()) ** 2 - 0.1 * e / e.max()
    Spectrum(intensity=mean_normalize(np.where(g.mask, s.intensity + bg, np.nan), g.mask), grid=g,
             temperature=200.0, normalization="mean").to_hdf5(tmp_path / "background.h5")
    out = tmp_path / "RESULT.json"
    assert main(["predict", "--input", str(tmp_path / "clean.h5"), str(tmp_path / "background.h5"),
                 "--output", str(out), "--samples", "200", "--temperature", "300"]) == 0
    clean, with_bg = json.loads(out.read_text())
    for rec in (clean, with_bg):
        assert len(rec["force_constants"]) == 5 and len(rec["std"]) == 5 and rec["temperature"] == 300.0
        assert 0 <= rec["nmse"] < 0.1 and 0 <= rec["linewidth"] < 0.1
        assert 0 <= rec["nmse_background_slope"] <= rec["nmse"] + 1e-12     # the fits' nuisance model never hurts
    assert with_bg["background_slope"] < 0 and abs(clean["background_slope"]) < abs(with_bg["background_slope"])
    assert with_bg["nmse_background_slope"] < with_bg["nmse"]             # the −0.1·E/E_max term is absorbed
    np.testing.assert_allclose(with_bg["force_constants"], clean["force_constants"], rtol=1e-3, atol=1e-3)
    assert main(["predict", "--input", str(tmp_path / "clean.h5"), "--output", str(out)]) == 2   # exists
    assert "already exists" in capsys.readouterr().err
    assert main(["predict", "--input", str(tmp_path / "clean.h5"), "--output", str(tmp_path / "r2.json"),
                 "--temperature", "-5"]) == 2
    assert "--temperature must be positive" in capsys.readouterr().err and not (tmp_path / "r2.json").exists()
