"""Series view of ML predictions beside fits (issue 16, item 4): report.ml_series and predict --series-plot."""
from __future__ import annotations

import json

import numpy as np
import pytest

from phonon_ml_core.cli import main
from phonon_ml_core.fitting.frequencies import frequency_fields
from phonon_ml_core.prediction.predict import shipped_bundle_path
from phonon_ml_core.report.ml_series import ml_series_figure, track_from_entries, tracks_from_result
from phonon_ml_core.specs import ALUMINIUM, get_material


def _entries(temps, shift=0.0, std=0.1, material=ALUMINIUM):
    out = []
    for t in temps:
        fc = np.array(material.reference_constants) * (1 - 2e-4 * t) + shift
        out.append({"names": list(material.names), "material": material.name, "temperature": float(t),
                    "force_constants": fc.tolist(), "std": [std] * material.n_constants, "nmse": 0.2,
                    **frequency_fields(material, fc, std=np.full(material.n_constants, std))})
    return out


def test_tracks_from_result_files_and_figure(tmp_path):
    temps = [640.0, 50.0, 350.0]
    (tmp_path / "ml.json").write_text(json.dumps(_entries(temps)))
    (tmp_path / "joint.json").write_text(json.dumps({"method": "joint-linear", "results": _entries(temps, 0.1),
                                                     "independent": _entries(temps, -0.1, std=None)}))
    (tmp_path / "fit.json").write_text(json.dumps({"method": "gradient", "results": _entries(temps, 0.2)}))
    ml, = tracks_from_result(tmp_path / "ml.json")
    joint, ind = tracks_from_result(tmp_path / "joint.json")
    fit, = tracks_from_result(tmp_path / "fit.json")
    assert (ml.style, joint.style, ind.style, fit.style) == ("band", "line", "points", "points")
    np.testing.assert_array_equal(ml.temperature, [50.0, 350.0, 640.0])          # sorted by temperature
    assert ml.force_constants[0, 0] > ml.force_constants[-1, 0]
    assert np.isnan(ind.std).all() and np.allclose(ml.std, 0.1)
    f, s = ml.highest_frequency("X")
    assert f.shape == (3,) and np.all(np.diff(f) < 0) and np.all(s > 0)
    out = ml_series_figure([ml, joint, ind, fit], tmp_path / "series.png", title="Al")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError):
        ml_series_figure([ml], tmp_path / "series.png")
    fe = get_material("Fe")
    with pytest.raises(ValueError, match="one material per figure"):
        ml_series_figure([ml, track_from_entries(_entries(temps, material=fe), "Fe")], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no temperature"):
        track_from_entries([{**_entries([50.0])[0], "temperature": None}], "bad")
    (tmp_path / "other.json").write_text(json.dumps({"something": 1}))
    with pytest.raises(ValueError, match="not a RESULT.json"):
        tracks_from_result(tmp_path / "other.json")


@pytest.mark.skipif(shipped_bundle_path() is None, reason="no bundle shipped in models/")
def test_predict_series_plot(tmp_path, capsys):
    from phonon_ml_core.simulator import simulate_spectrum
    from phonon_ml_core.specs.grid import standard_grid

    g = standard_grid()
    inputs = []
    for t, scale in ((100.0, 1.0), (500.0, 0.9)):
        simulate_spectrum(np.array(ALUMINIUM.reference_constants) * scale, t, grid=g,
                          linewidth=0.03).to_hdf5(tmp_path / f"s{t:.0f}.h5")
        inputs.append(str(tmp_path / f"s{t:.0f}.h5"))
    (tmp_path / "fit.json").write_text(json.dumps({"method": "gradient", "results": _entries([100.0, 500.0])}))
    fig, out = tmp_path / "series.png", tmp_path / "r.json"
    assert main(["predict", "--input", *inputs, "--output", str(out), "--samples", "50",
                 "--series-plot", str(fig), "--series-compare", str(tmp_path / "fit.json")]) == 0
    assert fig.read_bytes()[:4] == b"\x89PNG" and len(json.loads(out.read_text())) == 2
    assert main(["predict", "--input", inputs[0], "--output", str(tmp_path / "r1.json"),
                 "--series-compare", str(tmp_path / "fit.json")]) == 2
    assert "--series-compare needs --series-plot" in capsys.readouterr().err
    assert main(["predict", "--input", inputs[0], "--output", str(tmp_path / "r2.json"), "--samples", "20",
                 "--series-plot", str(tmp_path / "one.png")]) == 2
    assert "≥ 2 spectra" in capsys.readouterr().err
