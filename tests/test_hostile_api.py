"""Bad input to the public API (issue 18): the documented exception, raised before heavy work, naming the problem;
and honest output (strict JSON, constants at bounds, Ctrl-C hints, nothing left behind)."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from phonon_ml_core.specs.grid import standard_grid
from phonon_ml_core.data.jsonio import dumps
from phonon_ml_core.data.normalization import mean_normalize
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.data.validation import (
    check_device,
    check_input_file,
    check_interval,
    check_number,
    check_spectrum_values,
    check_temperature,
)
from phonon_ml_core.fitting import fit_spectrum
from phonon_ml_core.preprocess.pipeline import preprocess


@pytest.fixture(scope="module")
def good() -> Spectrum:
    g = standard_grid()
    x = np.asarray(mean_normalize(np.random.default_rng(1).random(g.shape), g.mask), dtype=float)
    return Spectrum(intensity=x, grid=g, temperature=300.0, normalization="mean")


def _with(s: Spectrum, **kw) -> Spectrum:
    from dataclasses import replace
    return replace(s, **kw)


# (id, call(good spectrum), exception type, key phrase)
API_CASES = [
    ("fit-reversed-linewidth", lambda s: fit_spectrum(s, fit_linewidth=True, linewidth_bounds=(0.3, 0.001)),
     ValueError, "reversed"),
    ("fit-negative-linewidth", lambda s: fit_spectrum(s, linewidth_bounds=(-0.1, 0.3)), ValueError, "linewidth"),
    ("fit-max-evaluations-0", lambda s: fit_spectrum(s, max_evaluations=0), ValueError, "max_evaluations"),
    ("fit-none", lambda s: fit_spectrum(None), TypeError, "must be a Spectrum"),
    ("fit-array", lambda s: fit_spectrum(np.zeros((70, 83))), TypeError, "Spectrum(intensity="),
    ("fit-path", lambda s: fit_spectrum("file.h5"), TypeError, "read_spectrum"),
    ("fit-temperature-neg", lambda s: fit_spectrum(s, temperature=-3), ValueError, "positive"),
    ("fit-temperature-huge", lambda s: fit_spectrum(s, temperature=1e9), ValueError, "at most"),
    ("fit-no-temperature", lambda s: fit_spectrum(_with(s, temperature=None)), ValueError, "no temperature"),
    ("fit-all-nan", lambda s: fit_spectrum(_with(s, intensity=np.full(s.intensity.shape, np.nan),
                                                 normalization="none")), ValueError, "no finite values"),
    ("fit-inf", lambda s: fit_spectrum(_with(s, intensity=np.where(s.grid.mask, np.inf, np.nan),
                                             normalization="none")), ValueError, "infinite"),
    ("fit-fake-normalised", lambda s: fit_spectrum(_with(s, intensity=s.intensity * 5 + 2)), ValueError,
     "not mean-normalised"),
    ("fit-lattice-neg", lambda s: fit_spectrum(s, lattice_parameter=-4.0), ValueError, "lattice_parameter"),
    ("pre-none", lambda s: preprocess(None), TypeError, "must be a Spectrum"),
    ("pre-array", lambda s: preprocess(np.zeros((3, 3))), TypeError, "Spectrum"),
    ("pre-temperature-neg", lambda s: preprocess(s, temperature=-3), ValueError, "positive"),
    ("pre-temperature-nan", lambda s: preprocess(s, temperature=float("nan")), ValueError, "finite"),
    ("pre-temperature-huge", lambda s: preprocess(s, temperature=1e9), ValueError, "at most"),
    ("pre-min-coverage", lambda s: preprocess(s, min_coverage=2.0), ValueError, "min_coverage"),
]


@pytest.mark.parametrize("case_id,call,exc,phrase", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input(case_id, call, exc, phrase, good):
    with pytest.raises(exc) as info:
        call(good)
    assert phrase.lower() in str(info.value).lower(), str(info.value)


def test_predict_spectra_refuses_empty_and_bad(good):
    from phonon_ml_core.prediction.predict import predict_spectra, resolve_bundle

    bundle = resolve_bundle(None)
    with pytest.raises(ValueError, match="no spectra"):
        predict_spectra(bundle, [])
    with pytest.raises(ValueError, match="no temperature"):
        predict_spectra(bundle, [_with(good, temperature=None)], n_samples=10)
    with pytest.raises(ValueError, match="n_samples"):
        predict_spectra(bundle, [good], n_samples=0)
    with pytest.raises(ValueError, match="no finite values"):
        predict_spectra(bundle, [_with(good, intensity=np.full(good.intensity.shape, np.nan))], n_samples=10)


def test_validation_helpers(tmp_path):
    assert check_number("3", "--x", low=0) == 3.0
    assert check_number(4, "--n", low=1, low_inclusive=True, integer=True) == 4
    for bad in (None, True, "abc", float("nan"), float("inf")):
        with pytest.raises(ValueError, match="--x"):
            check_number(bad, "--x")
    with pytest.raises(ValueError, match="whole number"):
        check_number(2.5, "--n", integer=True)
    assert check_interval((1, 2), "r") == (1.0, 2.0)
    with pytest.raises(ValueError, match=r"write it as \(1, 2\)"):
        check_interval((2, 1), "r")
    with pytest.raises(ValueError, match="two numbers"):
        check_interval(5, "r")
    assert check_temperature(5.0) == 5.0
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        check_input_file(fifo, "--input")          # must not hang
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_input_file(tmp_path / "none.h5", "--input")
    with pytest.raises(IsADirectoryError):
        check_input_file(tmp_path, "--input")
    assert check_input_file(tmp_path, "--model", allow_dir=True) == tmp_path
    assert check_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="not a torch device"):
        check_device("tpu")
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            check_device("cuda")


def test_huge_intensities_are_refused_before_normalisation(good):
    s = _with(good, intensity=good.intensity * 1e300, normalization="none")
    with pytest.raises(ValueError, match="order"):
        check_spectrum_values(s, "x.h5")


def test_strict_json_for_any_parser():
    text = dumps({"nmse": float("nan"), "std": [1.0, float("inf"), np.float32("nan")], "n": np.int64(3)})
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert doc == {"nmse": None, "std": [1.0, None, None], "n": 3}


def test_fit_result_reports_constants_at_bounds(tiny_grid):
    """A fit pinned by narrow bounds below the true 2XX ends on its upper bound: ``at_bounds`` names it."""
    import torch

    from phonon_ml_core.simulator.factory import get_simulator

    sim = get_simulator(grid=tiny_grid, quantity="chi''")
    ref = np.array([10.35, 10.38, -2.77, 2.30, -0.25])
    with torch.no_grad():
        y = sim(torch.as_tensor(ref[None], dtype=sim.dtype), 300.0)[0].double().numpy()
    s = Spectrum(intensity=y, grid=tiny_grid, temperature=300.0, normalization="mean")
    bounds = np.array([[10.3, 10.4], [10.3, 10.4], [-2.8, -2.7], [1.0, 1.2], [-0.3, -0.2]])
    r = fit_spectrum(s, start=[10.35, 10.38, -2.77, 1.1, -0.25], bounds=bounds, max_evaluations=60,
                     uncertainty=False, simulator=sim, fit_linewidth=False, fit_background=False)
    assert "2XX" in r.at_bounds
    d = r.to_dict()
    assert "2XX" in d["at_bounds"]
    assert math.isfinite(d["nmse"])


def test_keyboard_interrupt_hints_are_true(monkeypatch, capsys):
    from phonon_ml_core.cli import app

    assert "--resume" in app.RESUME_HINTS["train"]     # a plain rerun of train starts again at epoch 1

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(app, "build_parser", interrupted)
    assert app.main(["fit"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def test_failed_command_leaves_no_empty_output_folder(tmp_path, monkeypatch, capsys):
    from phonon_ml_core.cli.app import main
    from phonon_ml_core.report import evaluation

    def fails(out, **kw):
        os.makedirs(out, exist_ok=True)
        raise ValueError("simulated failure after creating the folder")

    monkeypatch.setattr(evaluation, "run_evaluation", fails)
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "-o", "ev", "--measured"]) == 2
    assert "simulated failure" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()


def test_dispersion_csv_header_keeps_column_names(tmp_path, capsys):
    from phonon_ml_core.cli.app import main

    assert main(["dispersion", "-o", str(tmp_path / "d.png"), "--csv", str(tmp_path / "d.csv")]) == 0
    lines = (tmp_path / "d.csv").read_text().splitlines()
    assert lines[0].startswith("# ticks")
    assert lines[1] == "# distance_1/A,E1_meV,E2_meV,E3_meV"
    assert np.loadtxt(tmp_path / "d.csv", delimiter=",").shape[1] == 4


def test_a_parameter_just_inside_its_bound_is_at_the_bound():
    """Nelder–Mead stops within its simplex tolerance (xatol 1e-4 of the unit box) of an active bound: the 280 K
    aluminium fit ends with 2XX 1.2e-5 of the range below its upper bound, which must be reported."""
    from phonon_ml_core.fitting.results import parameters_at_bounds

    names = ("1XX", "1XY", "1ZZ", "2XX", "2YY", "linewidth")
    u = np.array([0.4, 0.5, 0.0, 1 - 1.2e-5, 0.02, 5e-4])
    assert parameters_at_bounds(u, names) == ("1ZZ", "2XX", "linewidth")
    assert parameters_at_bounds(np.full(6, 0.5), names) == ()
