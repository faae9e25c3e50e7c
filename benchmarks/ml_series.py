"""The shipped model on temperatures it has not seen (issue 16, item 5): does a physical trend come from the model?

Two probes on the standard grid, simulated with the project's simulator (linewidth γ = 0.02, no noise), at
temperatures every ``--step`` K from 50 to 650 K:

* ``constant``: the same constants (the material's reference) at every T. A model whose trend is physical returns
  the same constants; whatever it returns is its response to the temperature nuisance alone (Debye–Waller factor,
  multiphonon scattering, a(T)), which it confounds with the constants.
* ``trend``: constants falling linearly with T (1XX from 9.6 to 7.8 N/m, the others scaled alike, as the joint fit of
  the shared spectra finds). Is the predicted 1XX monotonic, and how far is it from the truth?

Prints the predicted 1XX per T, its range and slope, and whether it falls monotonically; the shared measured
spectra are not used (they are scored in models/README.md and benchmarks/adapt.py).
Run: ``PYTHONPATH=. python benchmarks/ml_series.py [--model BUNDLE] [--step 50] [--samples 500]``.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from phonon_ml_core.prediction.predict import bundle_material, predict_spectra, resolve_bundle
from phonon_ml_core.simulator import simulate_spectrum


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--step", type=float, default=50.0)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bundle = resolve_bundle(args.model)
    material = bundle_material(bundle)
    temps = np.arange(50.0, 650.0 + 1e-9, args.step)
    ref = np.array(material.reference_constants)
    scale = 1.0 - (1.0 - 7.8 / 9.6) * (temps - 50.0) / 600.0  # 1XX 9.6 → 7.8 N/m
    truths = {"constant": np.repeat(ref[None], len(temps), 0),
              "trend": ref[None] * (9.6 / ref[0]) * scale[:, None]}
    for name, fcs in truths.items():
        spectra = [simulate_spectrum(fc, float(t), grid=bundle.grid, linewidth=0.02, material=material)
                   for fc, t in zip(fcs, temps)]
        entries = predict_spectra(bundle, spectra, n_samples=args.samples)
        pred = np.array([e["force_constants"] for e in entries])
        nm = np.array([e["nmse"] for e in entries])
        x = pred[:, 0]
        slope = np.polyfit(temps, x - fcs[:, 0], 1)[0]
        print(f"{name}: true 1XX " + " ".join(f"{v:.2f}" for v in fcs[:, 0]))
        print(f"{name}: pred 1XX " + " ".join(f"{v:.2f}" for v in x))
        print(f"  error range {np.ptp(x - fcs[:, 0]):.2f} N/m, error slope {slope * 100:+.3f} N/m per 100 K, "
              f"falls monotonically: {bool(np.all(np.diff(x) < 0))}, sign changes of Δ1XX: "
              f"{int(np.sum(np.diff(np.sign(np.diff(x))) != 0))}; NMSE mean {nm.mean():.4f}", flush=True)
        rmse = np.sqrt(((pred - fcs) ** 2).mean(0))
        print("  RMSE per constant (N/m): " + ", ".join(f"{n} {v:.2f}" for n, v in zip(material.names, rmse)))


if __name__ == "__main__":
    main()
