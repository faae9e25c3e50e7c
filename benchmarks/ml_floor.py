"""How close to the fits a machine-learning prediction must come (issue 16, item 5): the floor under the target.

On the real ARCS aluminium spectra (two-shell model, γ and the background slope free, gradient fits):

* ``fit bounds``: the constants free within the fit bounds (0.3–2 × reference);
* ``sampling ranges``: free within a bundle's training ranges (what its regressor can answer);
* ``prediction``: the bundle's prediction as it is (γ predicted, slope profiled);
* ``refit first shell`` / ``refit second shell`` / ``refit γ``: fits started at the prediction with the other
  constants held at their predicted values — which part of the prediction loses the NMSE.

Prints NMSE per temperature, the mean and 1XX for each row. No model is trained; nothing is selected.
Run: ``PYTHONPATH=. python benchmarks/ml_floor.py [--model BUNDLE] [--threads 2]`` (about 2 min on 2 cores).
"""
from __future__ import annotations

import argparse

import numpy as np

from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.fitting import fit_spectrum
from phonon_ml_core.prediction.predict import bundle_material, predict_spectra

from adapt import TEMPERATURES, bundle_and_spectra  # benchmarks/adapt.py, beside this script

#: Half-width (N/m) of the bounds that hold a constant at its predicted value.
HOLD = 1e-3


def held_bounds(pred: np.ndarray, ranges: np.ndarray, free: list[int]) -> np.ndarray:
    """``ranges`` for the constants in ``free`` (widened to hold the prediction), ±HOLD around the others."""
    b = np.array(ranges, float)
    for k in range(len(pred)):
        b[k] = (min(b[k, 0], pred[k]), max(b[k, 1], pred[k])) if k in free else (pred[k] - HOLD, pred[k] + HOLD)
    return b


def main() -> None:
    args, spectra, bundle = bundle_and_spectra(argparse.ArgumentParser(description=__doc__), samples=500, threads=2)
    material = bundle_material(bundle)
    sampling = np.array(material.sampling_ranges, float)
    first = [k for k, n in enumerate(material.names) if n.startswith("1")]
    second = [k for k, n in enumerate(material.names) if n.startswith("2")]
    preds = predict_spectra(bundle, spectra, n_samples=args.samples)
    rows: dict[str, list[tuple[float, float]]] = {}

    def fit(name: str, s: Spectrum, **kw) -> None:
        r = fit_spectrum(s, method="gradient", uncertainty=False, threads=args.threads, material=material, **kw)
        rows.setdefault(name, []).append((r.nmse, float(r.force_constants[0])))

    for s, p in zip(spectra, preds):
        fc = np.asarray(p["force_constants"], float)
        rows.setdefault("prediction", []).append((p["nmse_background_slope"], float(fc[0])))
        fit("fit bounds", s)
        fit("sampling ranges", s, bounds=sampling)
        fit("refit first shell", s, start=fc, bounds=held_bounds(fc, sampling, first))
        fit("refit second shell", s, start=fc, bounds=held_bounds(fc, sampling, second))
        fit("refit γ", s, start=fc, bounds=held_bounds(fc, sampling, []))
        print(f"T = {s.temperature:.0f} K done", flush=True)
    print("| constants | NMSE " + " / ".join(f"{t} K" for t in TEMPERATURES) + " | mean | 1XX (N/m) |")
    print("|---|---|---|---|")
    for name, vals in rows.items():
        n, x = np.array(vals).T
        print(f"| {name} | {' '.join(f'{v:.3f}' for v in n)} | {n.mean():.4f} | {' '.join(f'{v:.2f}' for v in x)} |")


if __name__ == "__main__":
    main()
