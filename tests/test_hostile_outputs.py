"""Honest output and one set of defaults (issue 18): fit defaults shared by the API, the CLI and Mantid; fit figures
that say what they show; read-only output folders refused before any work; Mantid algorithms with bad properties."""
from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import numpy as np
import pytest

from mantid_standin.harness import ERRORS, make_sqw, mantid_fixture, measured_like  # noqa: F401

from phonon_ml_core.fitting.defaults import FIT_DEFAULTS, METHODS
from phonon_ml_core.data.spectrum import Spectrum

FC = [10.35, 10.38, -2.77, 2.30, -0.25]


# ------------------------------------------------------------------------------------------------ one set of defaults
def test_api_and_cli_fit_defaults_are_the_same():
    from phonon_ml_core.cli.app import build_parser
    from phonon_ml_core.fitting import fit_spectrum

    sig = inspect.signature(fit_spectrum).parameters
    for name in ("method", "fit_linewidth", "fit_background", "seed", "n_starts", "adam_steps", "n_polish",
                 "uncertainty", "threads"):
        assert sig[name].default == getattr(FIT_DEFAULTS, name), name
    assert tuple(sig["linewidth_bounds"].default) == FIT_DEFAULTS.linewidth_bounds
    assert FIT_DEFAULTS.fit_linewidth and FIT_DEFAULTS.fit_background    # what the CLI always did
    from phonon_ml_core.cli.fit import apply_fit_defaults

    args = apply_fit_defaults(build_parser().parse_args(["fit", "--input", "x.h5", "--output", "r.json"]))
    assert (args.method, args.fit_linewidth, args.fit_background, args.seed) == \
        (FIT_DEFAULTS.method, FIT_DEFAULTS.fit_linewidth, FIT_DEFAULTS.fit_background, FIT_DEFAULTS.seed)
    assert args.method == METHODS[0]
    args = apply_fit_defaults(build_parser().parse_args(["fit", "-i", "x.h5", "-o", "r.json", "--no-fit-background",
                                                         "--method", "gradient", "--seed", "3"]))
    assert (args.method, args.fit_linewidth, args.fit_background, args.seed) == ("gradient", True, False, 3)


def test_mantid_fit_algorithm_declares_the_same_defaults(mantid):
    alg = mantid.api.AlgorithmManager.create("FitForceConstantsNelderMead")
    assert alg.getProperty("Method").value == FIT_DEFAULTS.method
    assert bool(alg.getProperty("FitLinewidth").value) is FIT_DEFAULTS.fit_linewidth
    assert bool(alg.getProperty("FitBackground").value) is FIT_DEFAULTS.fit_background
    assert int(alg.getProperty("Seed").value) == FIT_DEFAULTS.seed


# ------------------------------------------------------------------------------------------------------ fit figures
@pytest.fixture(scope="module")
def pinned_fit(tiny_grid):
    """A fit pinned by narrow bounds below the true 2XX: it ends on its upper bound (``at_bounds`` names it)."""
    import torch

    from phonon_ml_core.fitting import fit_spectrum
    from phonon_ml_core.simulator.factory import get_simulator

    sim = get_simulator(grid=tiny_grid, quantity="chi''")
    with torch.no_grad():
        y = sim(torch.as_tensor(np.array(FC)[None], dtype=sim.dtype), 300.0)[0].double().numpy()
    s = Spectrum(intensity=y, grid=tiny_grid, temperature=300.0, normalization="mean")
    bounds = np.array([[10.3, 10.4], [10.3, 10.4], [-2.8, -2.7], [1.0, 1.2], [-0.3, -0.2]])
    r = fit_spectrum(s, start=[10.35, 10.38, -2.77, 1.1, -0.25], bounds=bounds, max_evaluations=60,
                     uncertainty=False, simulator=sim, fit_linewidth=False, fit_background=False)
    assert "2XX" in r.at_bounds
    return r, s


def _capture(monkeypatch):
    """Collect the figures closed by the plotting code (they are saved, then closed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []
    real = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig) or real(fig))
    return figs


def _texts(fig) -> str:
    out = [fig._suptitle.get_text() if fig._suptitle else ""] + [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + [t.get_text() for t in ax.texts]
        if ax.get_legend():
            out += [t.get_text() for t in ax.get_legend().get_texts()]
    return "\n".join(out)


def _assert_units_on_every_panel(fig):
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        if ax.get_label() == "<colorbar>":
            assert ax.get_ylabel() or ax.get_xlabel(), "colour bar without a label"
            continue
        assert ax.get_xlabel() and ax.get_ylabel(), f"panel {ax.get_title()!r} lacks an axis label"


def test_single_fit_figure_says_what_it_shows(pinned_fit, tmp_path, monkeypatch):
    from phonon_ml_core.report.plotting import constants_label, fit_summary, plot_fit

    r, s = pinned_fit
    figs = _capture(monkeypatch)
    plot_fit(r, s, tmp_path / "fit.png")
    assert (tmp_path / "fit.png").stat().st_size > 10_000
    text = _texts(figs[-1])
    for phrase in ("nelder-mead", f"NMSE {r.nmse:.4f}", "N/m", "2XX", "AT BOUND", "|Q| (1/Å)",
                   "Energy transfer (meV)", "data", "fit", "residual"):
        assert phrase in text, phrase
    _assert_units_on_every_panel(figs[-1])
    from dataclasses import replace

    label = constants_label(replace(r, at_bounds=("2XX",)))
    assert "2XX = 1.20 N/m (AT BOUND)" in label and label.count("AT BOUND") == 1, label
    assert fit_summary(r).startswith("Al: nelder-mead fit at T = 300 K")


def test_series_figures_mark_constants_at_bounds(pinned_fit, tmp_path, monkeypatch):
    from dataclasses import replace

    from phonon_ml_core.report.series_figure import at_bound_mask, fits_figure

    r, _ = pinned_fit
    other = replace(r, temperature=200.0, at_bounds=())
    figs = _capture(monkeypatch)
    fits_figure([r, other], tmp_path / "series.png")
    text = _texts(figs[-1])
    assert "nelder-mead fits of 2 spectra" in text and "mean NMSE" in text and "AT A BOUND" in text
    assert "2XX (at a bound at 300 K)" in text and "1XX (N/m)" in text and "NMSE (dimensionless)" in text
    _assert_units_on_every_panel(figs[-1])
    mask = at_bound_mask(np.array([[1.0, 5.0], [2.0, 3.0]]), np.array([[1.0, 2.0], [0.0, 5.0]]))
    assert mask.tolist() == [[True, True], [True, False]]


def test_fit_cli_reports_a_bound_on_the_console_in_json_and_in_the_figure(pinned_fit, tmp_path, monkeypatch, capsys):
    """``phonon-ml fit --plot`` of one spectrum whose fit ends on a bound: a WARNING line naming the constant, the
    ``at_bounds`` field of RESULT.json, and the overlay figure with the constant marked."""
    import phonon_ml_core.fitting as fitting
    from phonon_ml_core.cli.app import main

    r, s = pinned_fit
    s.to_hdf5(tmp_path / "tiny.h5")
    monkeypatch.setattr(fitting, "fit_spectrum", lambda *a, **k: r)   # the pinned fit, without fitting again
    figs = _capture(monkeypatch)
    assert main(["fit", "-i", str(tmp_path / "tiny.h5"), "-o", str(tmp_path / "r.json"), "--plot",
                 str(tmp_path / "fit.png")]) == 0
    out = capsys.readouterr().out
    warning = [line for line in out.splitlines() if "WARNING: ended on a bound of the search:" in line]
    assert warning and "2XX" in warning[0], out
    assert "2XX" in json.loads((tmp_path / "r.json").read_text())["results"][0]["at_bounds"]
    text = _texts(figs[-1])
    assert "residual" in text and "AT BOUND" in text and (tmp_path / "fit.png").stat().st_size > 10_000


# --------------------------------------------------------------------------------------------- read-only folders
@pytest.fixture()
def read_only(tmp_path, monkeypatch):
    """A folder the writability check (os.access) reports as read-only (we may run as root: chmod would not stop
    writes); the production check is the real os.access."""
    ro = (tmp_path / "ro").resolve()
    ro.mkdir()
    real = os.access

    def access(path, mode, *args, **kwargs):
        p = Path(path).resolve()
        if mode & os.W_OK and (p == ro or ro in p.parents):
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.chdir(tmp_path)
    return ro


@pytest.mark.parametrize("argv,phrase", [
    (["latent-analysis", "--data", "{set}", "-o", "ro/lat"], "--output-dir ro/lat: cannot write"),
    (["latent-analysis", "--data", "{set}", "-o", "ro"], "cannot write"),
    (["evaluate", "-o", "ro/ev"], "--output-dir ro/ev: cannot write"),
    (["demo", "--output-dir", "ro/demo"], "--output-dir ro/demo: cannot write"),
    (["demo", "--output-dir", "ro"], "cannot write"),
    (["mantid-register", "--properties-file", "ro/Mantid.user.properties"], "--properties-file"),
    (["fit", "--input", "{set}", "-o", "ro/r.json"], "cannot write"),
    (["predict", "--input", "{set}", "-o", "ro/r.json"], "cannot write"),
    (["dispersion", "-o", "ro/d.png"], "cannot write"),
    (["train", "--data", "{set}", "--output", "ro/bundle"], "cannot write"),
], ids=["latent", "latent-self", "evaluate", "demo", "demo-self", "mantid-register", "fit", "predict", "dispersion",
        "train"])
def test_read_only_output_folders_are_refused(argv, phrase, read_only, tmp_path, capsys):
    from phonon_ml_core.cli.app import main
    from phonon_ml_core.data.normalization import mean_normalize
    from phonon_ml_core.specs.grid import standard_grid

    g = standard_grid()
    x = np.asarray(mean_normalize(np.random.default_rng(0).random((3, *g.shape)), g.mask))
    Spectrum(intensity=x, grid=g, temperature=np.full(3, 300.0), normalization="mean").to_hdf5(tmp_path / "set.h5")
    rc = main([a.replace("{set}", str(tmp_path / "set.h5")) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2 and phrase in err and "Traceback" not in err, err
    assert list(read_only.iterdir()) == [], "something was written into the read-only folder"


def test_mantid_register_refuses_a_read_only_properties_file(tmp_path, monkeypatch, capsys):
    from phonon_ml_core.cli.app import main

    props = tmp_path / "Mantid.user.properties"
    props.write_text("a = b\n")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, *a, **k: False if Path(p) == props and m & os.W_OK
                        else real(p, m, *a, **k))
    assert main(["mantid-register", "--properties-file", str(props)]) == 2
    assert "is read-only" in capsys.readouterr().err and props.read_text() == "a = b\n"


# ------------------------------------------------------------------------------------ public API: more bad arguments
@pytest.mark.parametrize("kwargs,phrase", [
    ({"linewidth": -0.1}, "linewidth"),
    ({"seed": -1}, "seed"),
    ({"n_starts": 0}, "n_starts"),
    ({"adam_steps": 1.5}, "adam_steps"),
    ({"method": "simplex"}, "method"),
    ({"max_evaluations": float("nan")}, "max_evaluations"),
])
def test_fit_spectrum_refuses_bad_options(kwargs, phrase):
    from phonon_ml_core.fitting import fit_spectrum
    from phonon_ml_core.data.normalization import mean_normalize
    from phonon_ml_core.specs.grid import standard_grid

    g = standard_grid()
    s = Spectrum(intensity=np.asarray(mean_normalize(np.random.default_rng(2).random(g.shape), g.mask)), grid=g,
                 temperature=300.0, normalization="mean")
    with pytest.raises(ValueError, match=phrase):
        fit_spectrum(s, **kwargs)


# ------------------------------------------------------------------------- Mantid algorithms with bad properties
FIT = {"InputWorkspace": "hostile_ws", "OutputWorkspace": "hostile_out", "MaxEvaluations": 1}
SIM = {"OutputWorkspace": "hostile_out"}
PRE = {"InputWorkspace": "hostile_ws", "OutputWorkspace": "hostile_out"}
MANTID_CASES = [
    ("FitForceConstantsNelderMead", {**FIT, "StartValues": [1.0, 2.0]}, "StartValues"),
    ("FitForceConstantsNelderMead", {**FIT, "LowerBounds": [1.0] * 5, "UpperBounds": [0.5] * 5}, "upper bound"),
    ("FitForceConstantsNelderMead", {**FIT, "LowerBounds": [1.0] * 5}, "LowerBounds"),
    ("FitForceConstantsNelderMead", {**FIT, "Material": "Xx"}, "Xx"),
    ("FitForceConstantsNelderMead", {**FIT, "Material": "Fe", "StartValues": FC}, "give 4 values"),
    ("FitForceConstantsNelderMead", {**FIT, "ChopperFrequency": 17}, "17"),
    ("FitForceConstantsNelderMead", {**FIT, "Temperature": 1e9}, "Temperature must be at most"),
    ("FitForceConstantsNelderMead", {**FIT, "StartValues": [np.nan, 1, 1, 1, 1]}, "StartValues must be finite"),
    ("FitForceConstantsNelderMead", {**FIT, "Instrument": "CNCS", "Ei": 200.0}, "outside the range"),
    ("SimulatePowderINS", {**SIM, "Temperature": 1e9}, "Temperature must be at most"),   # was: "lattice parameter"
    ("SimulatePowderINS", {**SIM, "ForceConstants": [np.nan, 1.0, 1.0, 1.0, 1.0]}, "must be finite"),
    ("SimulatePowderINS", {**SIM, "Material": "Fe", "ForceConstants": FC}, "Fe has 4 constants"),
    ("SimulatePowderINS", {**SIM, "Instrument": "CNCS", "Ei": 200.0}, "outside the range"),
    ("PreprocessForML", {**PRE, "Temperature": 1e9}, "Temperature must be at most"),
    ("PreprocessForML", {**PRE, "ModelBundle": "no/bundle"}, "does not exist"),
]


@pytest.mark.parametrize("alg_name,props,phrase", MANTID_CASES,
                         ids=[f"{a}-{'-'.join(k for k in p if k not in FIT)}" for a, p, _ in MANTID_CASES])
def test_mantid_algorithms_refuse_bad_properties(alg_name, props, phrase, mantid):
    y, ee, qe = measured_like()
    make_sqw(mantid, "hostile_ws", y, ee, qe)
    with pytest.raises(ERRORS, match=phrase):
        getattr(mantid.sapi, alg_name)(**props)
    assert not mantid.api.mtd.doesExist("hostile_out")


def test_corrupted_weights_with_a_matching_hash_are_blamed_on_the_bundle(tmp_path, capsys):
    """NaN weights whose SHA-256 was recomputed pass the hash check: the message must blame the bundle, not the
    user's spectrum or constants."""
    import hashlib
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from phonon_ml_core.cli.app import main
    from phonon_ml_core.data.jsonio import write_json
    from phonon_ml_core.data.normalization import mean_normalize
    from phonon_ml_core.learn.bundle import WEIGHT_FILES
    from phonon_ml_core.prediction.predict import shipped_bundle_path
    from phonon_ml_core.specs.grid import standard_grid

    bundle = tmp_path / "bundle"
    shutil.copytree(shipped_bundle_path(), bundle)
    f = bundle / WEIGHT_FILES[-1]
    state = load_file(f)
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, f)
    meta = json.loads((bundle / "metadata.json").read_text())
    meta["weights_sha256"][WEIGHT_FILES[-1]] = hashlib.sha256(f.read_bytes()).hexdigest()
    write_json(bundle / "metadata.json", meta)
    g = standard_grid()
    Spectrum(intensity=np.asarray(mean_normalize(np.random.default_rng(0).random(g.shape), g.mask)), grid=g,
             temperature=300.0, normalization="mean").to_hdf5(tmp_path / "x.h5")
    rc = main(["predict", "--model", str(bundle), "--input", str(tmp_path / "x.h5"), "-o", str(tmp_path / "r.json"),
               "--samples", "10"])
    err = capsys.readouterr().err
    assert rc == 2 and "weights are corrupted" in err and not (tmp_path / "r.json").exists(), err


def test_spectrum_comparison_with_a_fit_names_method_nmse_and_constants(pinned_fit, tmp_path, monkeypatch):
    """The demo's figure (plot_spectrum with compare=FitResult.simulated) says which fit it shows and how good."""
    from phonon_ml_core.report.plotting import plot_spectrum

    r, s = pinned_fit
    figs = _capture(monkeypatch)
    plot_spectrum(s, tmp_path / "cmp.png", title="preprocessed", compare=r.simulated)
    text = _texts(figs[-1])
    assert f"fit (nelder-mead): NMSE {r.nmse:.4f}" in text and "2XX = 1.20 N/m" in text, text
    _assert_units_on_every_panel(figs[-1])


def test_model_by_shipped_name_from_any_folder(tmp_path, monkeypatch, capsys):
    """`--model NAME` finds a shipped bundle by its folder name from any working folder; an unknown name is refused
    before any work with the shipped names listed; a folder path still wins."""
    from phonon_ml_core.cli.app import main
    from phonon_ml_core.data.normalization import mean_normalize
    from phonon_ml_core.prediction.predict import bundle_location, shipped_bundle_names, shipped_bundle_path
    from phonon_ml_core.specs.grid import standard_grid

    names = shipped_bundle_names()
    assert "al_arcs_ei50_fcvae" in names and len(names) >= 2, names
    other = next(n for n in names if n != "al_arcs_ei50_fcvae")
    monkeypatch.chdir(tmp_path)
    assert bundle_location(other) == shipped_bundle_path(other)
    g = standard_grid()
    Spectrum(intensity=np.asarray(mean_normalize(np.random.default_rng(1).random(g.shape), g.mask)), grid=g,
             temperature=300.0, normalization="mean").to_hdf5(tmp_path / "x.h5")
    assert main(["predict", "--model", other, "--input", "x.h5", "-o", "r.json", "--samples", "5"]) == 0
    rec = json.loads((tmp_path / "r.json").read_text())[0]
    from phonon_ml_core.learn.bundle import load_bundle
    assert rec["names"] == list(load_bundle(shipped_bundle_path(other)).names)
    capsys.readouterr()
    assert main(["predict", "--model", "no_such_bundle", "--input", "x.h5", "-o", "r2.json"]) == 2
    err = capsys.readouterr().err
    assert "--model no_such_bundle" in err and "al_arcs_ei50_fcvae" in err and not (tmp_path / "r2.json").exists()
    (tmp_path / other).mkdir()  # a local folder of that name is what the user means: it is used (and refused)
    assert main(["predict", "--model", other, "--input", "x.h5", "-o", "r3.json"]) == 2
    assert not (tmp_path / "r3.json").exists()
