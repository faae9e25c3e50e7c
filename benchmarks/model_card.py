"""Metrics of a bundle on a labelled simulated test set (the model card's table).

Run: ``python benchmarks/model_card.py --test al_test_1k.h5 [--model BUNDLE] [--samples 1000]``, with the test
set from ``phonon-ml simulate --count 1000 --seed 1234 --temperature-range 40,660 --linewidth-range 0,0.06``.
Prints R² and RMSE per constant (mean over latent samples), of the M⟨ω²⟩ combination, and of γ when predicted.
"""
from __future__ import annotations

import argparse

import numpy as np

from phonon_ml_core.fitting.spectrum_fit import msq_combination
from phonon_ml_core.prediction.predict import resolve_bundle
from phonon_ml_core.data.spectrum import Spectrum
from phonon_ml_core.learn.training import r2_score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--test", required=True, help="labelled simulated set (HDF5)")
    ap.add_argument("--model", default=None, help="bundle (default: the shipped one)")
    ap.add_argument("--samples", type=int, default=1000)
    args = ap.parse_args()
    bundle = resolve_bundle(args.model)
    test = Spectrum.from_hdf5(args.test)
    p = bundle.predict(test, n_samples=args.samples, seed=0)
    names = bundle.names
    y = np.broadcast_to(test.force_constants, (test.n_spectra, len(names)))
    r2, rmse = r2_score(y, p["mean"]), np.sqrt(((p["mean"] - y) ** 2).mean(0))
    for n, a, b in zip(names, r2, rmse):
        print(f"{n}: R² {a:.3f}, RMSE {b:.2f} N/m")
    m = r2_score(msq_combination(y, bundle.material)[:, None], msq_combination(p["mean"], bundle.material)[:, None])[0]
    print(f"M<w^2> combination: R² {m:.3f}")
    if "linewidth" in p and test.linewidth is not None:
        lw = test.linewidths()
        print(f"linewidth γ: R² {r2_score(lw[:, None], p['linewidth'][:, None])[0]:.3f}, "
              f"RMSE {np.sqrt(((p['linewidth'] - lw) ** 2).mean()):.4f}")


if __name__ == "__main__":
    main()
