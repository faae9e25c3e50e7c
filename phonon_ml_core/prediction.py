"""PredictForceConstants core: force constants with uncertainties from a model bundle, and the
spectrum simulated from them with its NMSE against the input (conventions §3, §6)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .constants import FORCE_CONSTANT_NAMES
from .fileio import atomic_path, check_output_path
from .normalization import nmse
from .spectrum import Spectrum

#: The bundle shipped with the package (models/ in the repository).
SHIPPED_BUNDLE_NAME = "al_arcs_ei50_fcvae"


def shipped_bundle_path() -> Path | None:
    """Path of the shipped pretrained bundle, or None when none is installed."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "models" / SHIPPED_BUNDLE_NAME, here / "models" / SHIPPED_BUNDLE_NAME):
        if cand.exists():
            return cand
    return None


def resolve_bundle(path: str | os.PathLike | None):
    """Load the bundle at ``path`` (the shipped one when None), with a clear error when absent."""
    from .bundle import load_bundle

    if path is None:
        path = shipped_bundle_path()
        if path is None:
            raise FileNotFoundError("no --model given and no bundle is shipped in models/: train one with "
                                    "`phonon-ml train` and pass --model BUNDLE")
    return load_bundle(path)


def predict_spectra(bundle: Any, spectra: Sequence[Spectrum], n_samples: int = 10000, seed: int = 0,
                    simulate: bool = True) -> list[dict[str, Any]]:
    """Force constants for each spectrum (on the bundle grid) from a loaded bundle.

    Per spectrum: ``force_constants`` (mean over ``n_samples`` latent draws, N/m), ``std``,
    ``mean_code_prediction`` and, when ``simulate`` and the temperature is known, ``reconstruction``
    (the spectrum simulated from the constants) and its ``nmse`` against the input.
    """
    from .simulator import SimulationSettings, simulate_spectrum

    out = []
    for s in spectra:
        pred = bundle.predict(s, n_samples=n_samples, seed=seed)
        t = s.temperature
        entry: dict[str, Any] = {"force_constants": pred["mean"], "std": pred["std"],
                                 "mean_code_prediction": pred["mean_code_prediction"], "nmse": float("nan"),
                                 "temperature": float("nan") if t is None else float(t), "reconstruction": None}
        if simulate and t is not None and np.isfinite(t):
            rec = simulate_spectrum(pred["mean"], float(t), grid=bundle.grid,
                                    settings=SimulationSettings(quantity=s.quantity, normalize=True))
            x = s if s.normalization == "mean" else s.normalized()
            entry["nmse"] = float(nmse(x.intensity, rec.intensity, bundle.grid.mask))
            entry["reconstruction"] = rec
        out.append(entry)
    return out


def result_records(entries: Sequence[dict[str, Any]], inputs: Sequence[str]) -> list[dict[str, Any]]:
    """RESULT.json entries (conventions §6): plain lists and floats, one per input spectrum."""
    records = []
    for e, name in zip(entries, inputs):
        rec = {"input": name, "names": list(FORCE_CONSTANT_NAMES)}
        for k, v in e.items():
            if k == "reconstruction":
                continue
            rec[k] = np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
        records.append(rec)
    return records


def write_results(path: str | os.PathLike, records: list[dict[str, Any]], overwrite: bool = False) -> Path:
    """Write RESULT.json atomically."""
    out = check_output_path(path, overwrite)
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(records, indent=2, allow_nan=True))
    return out
