"""PredictForceConstants core: force constants with uncertainties from a model bundle, and the
spectrum simulated from them with its NMSE against the input (conventions §3, §6)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from phonon_ml_core.data.fileio import check_output_path
from phonon_ml_core.specs.grid import Grid
from phonon_ml_core.data.jsonio import to_jsonable, write_json
from phonon_ml_core.data.normalization import nmse
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.data.validation import check_device, check_number, check_spectrum_values
from phonon_ml_core.fitting.frequencies import frequency_fields
from phonon_ml_core.fitting.problem import LINEWIDTH
from phonon_ml_core.fitting.residual_background import profiled_nmse
from phonon_ml_core.fitting.results import spec_fields
from phonon_ml_core.learn.inputs import onto_model_grid
from phonon_ml_core.prediction.inputs import check_material, read_inputs
from phonon_ml_core.simulator.factory import get_simulator
from phonon_ml_core.specs import ALUMINIUM, Experiment, Material

#: What a prediction's ``std`` is, recorded with it in RESULT.json.
STD_MEANING = {
    "bundle": "spread of the regressor over latent draws (the model's uncertainty given the spectrum's code): a lower "
              "bound, not a full error bar; it does not see how far the spectrum lies from the training set",
    "ensemble": "members' latent spread and their disagreement (law of total variance); member_spread is the "
                "disagreement alone, large where the spectrum lies off the simulated training set"}

#: The bundle shipped with the package (models/ in the repository).
SHIPPED_BUNDLE_NAME = "al_arcs_ei50_fcvae"


def bundle_search_paths(name: str = SHIPPED_BUNDLE_NAME) -> list[Path]:
    """Where shipped bundles are looked for: models/ of a source checkout (editable install), then
    share/phonon-ml/models under the install's data directory (``pip install .``, setup.py ``data_files``:
    the environment's prefix, the user base for ``--user``, Debian's /usr/local)."""
    import site
    import sys
    import sysconfig

    package = Path(__file__).resolve().parents[1]  # phonon_ml_core/
    roots = [sysconfig.get_path("data"), sys.prefix, getattr(site, "USER_BASE", None), "/usr/local"]
    out = [package.parent / "models" / name, package / "models" / name]
    out += [Path(r) / "share" / "phonon-ml" / "models" / name for r in dict.fromkeys(r for r in roots if r)]
    return out


def shipped_bundle_path(name: str = SHIPPED_BUNDLE_NAME) -> Path | None:
    """Path of the shipped bundle ``name`` (default: the default bundle), or None when it is not installed
    (:func:`bundle_search_paths`)."""
    return next((p for p in bundle_search_paths(name) if (p / "metadata.json").is_file()), None)


def shipped_bundle_names() -> list[str]:
    """Names of the shipped bundles installed (folders with a metadata.json beside the default bundle)."""
    names = set()
    for p in bundle_search_paths():
        if p.parent.is_dir():
            names.update(d.name for d in p.parent.iterdir() if (d / "metadata.json").is_file())
    return sorted(names)


def bundle_location(model: str | os.PathLike) -> Path:
    """``model`` as a path: itself when it exists, else the shipped bundle of that name (``--model
    al_arcs_ei50_fcvae4_ensemble`` works from any folder and after ``pip install .``); a missing one is an error
    naming the shipped bundles."""
    p = Path(model)
    if p.exists() or os.sep in str(model) or (os.altsep and os.altsep in str(model)):
        return p
    found = shipped_bundle_path(str(model))
    if found is None:
        raise FileNotFoundError(f"--model {model} does not exist: no such bundle folder, and no shipped bundle of that "
                                f"name (shipped: {', '.join(shipped_bundle_names()) or 'none installed'}): give a "
                                "bundle folder's path or a shipped bundle's name")
    return found


def resolve_bundle(path: str | os.PathLike | None):
    """Load the bundle at ``path`` (a folder, or a shipped bundle's name; the default bundle when None), with a
    clear error when absent."""
    from phonon_ml_core.learn.ensemble import load_model

    if path is None:
        path = shipped_bundle_path()
        if path is None:
            raise FileNotFoundError("no --model given and no shipped bundle found (looked in "
                                    + ", ".join(str(p) for p in bundle_search_paths()) + "): reinstall phonon-ml "
                                    "from its repository (pip install .), or train one with `phonon-ml train` "
                                    "and pass --model BUNDLE")
    return load_model(bundle_location(path))




def bundle_material(bundle: Any) -> Material:
    """The material a bundle was trained for (``bundle.material``; ALUMINIUM for bundles that predate it)."""
    m = getattr(bundle, "material", None)
    return ALUMINIUM if m is None else m


def bundle_experiment(bundle: Any) -> Experiment | None:
    """The experiment a bundle was trained for (``bundle.experiment``), or None for bundles that predate it."""
    return getattr(bundle, "experiment", None)


def read_inputs_on_grid(paths: Sequence[str | os.PathLike], grid: Grid, temperature: float | None = None,
                        material: Material | None = None, ei_mev: float | None = None
                        ) -> tuple[list[Spectrum], list[str]]:
    """Read each file (one spectrum or a set; reduced Mantid files are preprocessed onto ``grid``), put it on the
    bundle's ``grid`` (:func:`onto_model_grid`) and split sets: (single spectra, names ``path`` or ``path[i]``).
    ``temperature`` (K) overrides the files'; a file recording another material than ``material`` is refused."""
    spectra, names = [], []
    for inp in read_inputs(paths, grid=grid, ei_mev=ei_mev, temperature=temperature, material=material):
        try:
            s = onto_model_grid(inp.spectrum, grid)
        except ValueError as exc:
            raise ValueError(f"{inp.path}: {exc}") from None
        for i, one in enumerate(s):
            spectra.append(one)
            names.append(inp.path if not s.is_set else f"{inp.path}[{i}]")
    return spectra, names


def predict_spectra(bundle: Any, spectra: Sequence[Spectrum], n_samples: int = 10000, seed: int = 0,
                    simulate: bool = True, device: str = "cpu") -> list[dict[str, Any]]:
    """Force constants for each spectrum (on the bundle grid) from a loaded bundle.

    Per spectrum: ``force_constants`` (mean over ``n_samples`` latent draws, N/m, in the order of ``names``, the
    bundle material's), ``std``, ``mean_code_prediction``, the predicted intrinsic linewidth ``linewidth`` (γ) and
    ``linewidth_std`` when the bundle predicts one (None otherwise), the zone-boundary ``frequencies_thz`` with
    ``frequencies_std_thz`` (:mod:`phonon_ml_core.fitting.frequencies`), for an ensemble (:mod:`.learn.ensemble`)
    ``member_spread`` (N/m, the between-member part of ``std``), ``std_meaning`` (:data:`STD_MEANING`) and, when
    ``simulate`` and the temperature
    is known, ``reconstruction`` (the spectrum simulated from the constants and γ) and its ``nmse`` against the
    input, plus ``nmse_background_slope`` with the best residual background slope ``background_slope`` (per meV,
    :mod:`.residual_background`) added: the nuisance model of ``phonon-ml fit``, to compare with its NMSE.
    A spectrum that records another material than the bundle's is refused. ``device``: torch device of the
    simulated reconstructions (the networks' latent draws run on the CPU).
    """
    check_device(device, "device")
    material, experiment = bundle_material(bundle), bundle_experiment(bundle)
    if isinstance(spectra, Spectrum):
        spectra = list(spectra)
    if len(spectra) == 0:
        raise ValueError("no spectra to predict: the inputs hold zero spectra")
    check_number(n_samples, "n_samples", low=1, low_inclusive=True, integer=True)
    for i, s in enumerate(spectra):
        check_spectrum_values(s, f"spectrum {i}", need_temperature=simulate)
        check_material(s, material, f"spectrum {i}", by_model=True)
    out = []
    for s in spectra:
        s = onto_model_grid(s, bundle.grid)
        pred = bundle.predict(s, n_samples=n_samples, seed=seed)
        if not np.all(np.isfinite(pred["mean"])):
            raise ValueError("the model bundle predicts non-finite force constants for a finite input: its weights "
                             "are corrupted or were trained badly; reinstall the shipped bundle or retrain it")
        fc = material.check_force_constants(pred["mean"])
        t = s.temperature
        entry: dict[str, Any] = {"force_constants": fc, "std": pred["std"], "names": list(material.names),
                                 "mean_code_prediction": pred["mean_code_prediction"], "nmse": float("nan"),
                                 "temperature": float("nan") if t is None else float(t), "reconstruction": None,
                                 LINEWIDTH: None, "linewidth_std": None,
                                 "nmse_background_slope": float("nan"), "background_slope": float("nan")}
        if LINEWIDTH in pred:
            entry[LINEWIDTH], entry["linewidth_std"] = float(pred[LINEWIDTH]), float(pred["linewidth_std"])
        entry["std_meaning"] = STD_MEANING["ensemble" if "member_spread" in pred else "bundle"]
        if "member_spread" in pred:  # an ensemble: the spread between its members, part of ``std``
            entry["member_spread"] = pred["member_spread"]
        entry.update(frequency_fields(material, fc, std=pred["std"]))
        if simulate and t is not None and np.isfinite(t):
            sim = get_simulator(material, experiment, grid=bundle.grid,
                                quantity=s.quantity, dtype=torch.float32, device=device)
            with torch.no_grad():
                y = sim(np.asarray(fc, dtype=float)[None], float(t), linewidth=entry[LINEWIDTH])[0].cpu().numpy()
            rec = Spectrum(intensity=y.astype(np.float64), grid=bundle.grid, temperature=float(t),
                           quantity=s.quantity, normalization="mean", force_constants=np.asarray(fc, dtype=float),
                           linewidth=entry[LINEWIDTH], material=material, experiment=experiment,
                           metadata={"simulated": True, "from_prediction": True})
            x = s if s.normalization == "mean" else s.normalized()
            entry["nmse"] = float(nmse(x.intensity, rec.intensity, bundle.grid.mask))
            n_bg, slope, _ = profiled_nmse(x.intensity, rec.intensity, bundle.grid)
            entry["nmse_background_slope"], entry["background_slope"] = float(n_bg), float(slope)
            entry["reconstruction"] = rec
        out.append(entry)
    return out


def result_records(entries: Sequence[dict[str, Any]], inputs: Sequence[str], material: Material | None = None,
                   experiment: Experiment | None = None) -> list[dict[str, Any]]:
    """RESULT.json entries (conventions §6): plain lists and floats, one per input spectrum, with the names,
    material, lattice and the full material and experiment specs (``material`` default ALUMINIUM)."""
    fields = spec_fields(ALUMINIUM if material is None else material, experiment)
    records = []
    for e, name in zip(entries, inputs):
        rec = {"input": name, **fields}
        rec.update({k: v for k, v in e.items() if k != "reconstruction"})
        records.append(to_jsonable(rec))
    return records


def write_results(path: str | os.PathLike, records: list[dict[str, Any]], overwrite: bool = False) -> Path:
    """Write RESULT.json atomically as strict JSON (NaN → null)."""
    return write_json(check_output_path(path, overwrite), records)
